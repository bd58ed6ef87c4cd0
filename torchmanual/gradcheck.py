"""Gradient checking, the slides' way (section 5) and torch's.

"In practice: always use the analytic gradient, but check it with the numerical gradient."
``numerical_gradient`` is the slides' loop (nudge one entry, evaluate, restore it);
``relative_error`` is CS231n's; ``check`` runs torch's gradcheck family on a Function and
reports, per check, whether it passed and the worst relative error between the analytic
and the numerical gradient; ``check_all`` does that for every Function in the REGISTRY.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from torchmanual.autograd import REGISTRY
from torchmanual.autograd.registry import Entry

CHECKS = ("gradcheck", "gradgradcheck", "forward_ad", "vmap", "undefined_grad")


def numerical_gradient(
    f: Callable[[Tensor], Tensor | float], x: Tensor, h: float = 1e-5, centered: bool = True
) -> Tensor:
    """The gradient of the scalar ``f(x)`` by finite differences, one entry at a time.

    ``centered=True`` uses ``(f(x+h) - f(x-h)) / 2h`` (error O(h²), the slides' gradient
    check); ``centered=False`` the slides' forward difference ``(f(x+h) - f(x)) / h``.
    ``x`` is changed in place and every entry is restored after use ("very important!").
    Approximate and slow — one or two evaluations of ``f`` per entry — which is why the
    slides check the analytic gradient with it once and then switch it off.

    >>> x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> numerical_gradient(lambda t: (t ** 2).sum(), x).tolist()
    [2.0000000000575113, 3.999999999848569]
    """
    if h <= 0:
        raise ValueError(f"numerical_gradient needs a step h > 0, got h={h}")
    if not x.is_floating_point():
        raise TypeError(f"numerical_gradient needs a floating-point x, got dtype {x.dtype}")
    grad = torch.zeros_like(x)
    with torch.no_grad():
        fx = None if centered else float(f(x))
        for ix in itertools.product(*(range(n) for n in x.shape)):
            old = x[ix].item()
            x[ix] = old + h
            f_plus = float(f(x))
            if centered:
                x[ix] = old - h
                grad[ix] = (f_plus - float(f(x))) / (2 * h)
            else:
                grad[ix] = (f_plus - fx) / h
            x[ix] = old  # restore — very important!
    return grad


def relative_error(a: Tensor, b: Tensor) -> float:
    """CS231n's ``max |a - b| / max(1e-8, |a| + |b|)``, elementwise, as a float.

    Around 1e-7 or less is a pass for float64 with a smooth function; 1e-2 or more means
    the gradient is wrong. Empty tensors have error 0.
    """
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        raise ValueError(
            f"relative_error needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.numel() == 0:
        return 0.0
    return ((a - b).abs() / (a.abs() + b.abs()).clamp_min(1e-8)).max().item()


@dataclass
class CheckResult:
    """The outcome of ``check``: per check, ``True``/``False``; the failures' messages."""

    name: str
    checks: dict[str, bool] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    max_rel_error: float = 0.0

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    def merge(self, other: CheckResult) -> None:
        for check, ok in other.checks.items():
            self.checks[check] = self.checks.get(check, True) and ok
            if not ok and check not in self.errors:
                self.errors[check] = other.errors.get(check, "")
        self.max_rel_error = max(self.max_rel_error, other.max_rel_error)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "checks": dict(self.checks), "max_rel_error": self.max_rel_error}


def _torch_check(check: str, fn: Callable[..., Tensor], inputs: tuple[Any, ...]) -> None:
    off = dict(check_undefined_grad=False, check_batched_grad=False, raise_exception=True)
    if check == "gradcheck":
        torch.autograd.gradcheck(fn, inputs, **off)
    elif check == "gradgradcheck":
        torch.autograd.gradgradcheck(
            fn, inputs, check_undefined_grad=False, check_batched_grad=False, raise_exception=True
        )
    elif check == "forward_ad":
        torch.autograd.gradcheck(fn, inputs, check_forward_ad=True, check_backward_ad=False, **off)
    elif check == "vmap":
        torch.autograd.gradcheck(
            fn,
            inputs,
            check_undefined_grad=False,
            check_batched_grad=True,
            check_forward_ad=True,
            check_batched_forward_grad=True,
            raise_exception=True,
        )
    elif check == "undefined_grad":
        torch.autograd.gradcheck(
            fn, inputs, check_undefined_grad=True, check_batched_grad=False, raise_exception=True
        )
    else:
        raise ValueError(f"unknown check {check!r}; valid checks are {', '.join(CHECKS)}")


def _numerical_vs_analytic(fn: Callable[..., Tensor], inputs: tuple[Any, ...]) -> float:
    """Worst relative error between backward and the slides' numerical gradient.

    The output is reduced to a scalar with fixed random weights, so every output entry's
    gradient is exercised, not only their sum.
    """
    wrt = [a for a in inputs if isinstance(a, Tensor) and a.requires_grad]
    if not wrt:
        return 0.0
    out = fn(*inputs)
    weights = torch.randn(
        out.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    ).to(out)
    analytic = torch.autograd.grad((out * weights).sum(), wrt, allow_unused=True)
    worst = 0.0
    for x, g in zip(wrt, analytic, strict=True):
        numeric = numerical_gradient(lambda _: (fn(*inputs) * weights).sum(), x.detach())
        worst = max(worst, relative_error(torch.zeros_like(x) if g is None else g, numeric))
    return worst


def check(
    fn: Callable[..., Tensor], *inputs: Any, checks: Iterable[str] = CHECKS, name: str = ""
) -> CheckResult:
    """Run the gradcheck family on ``fn(*inputs)``; never raises for a failing check.

    Tensors in ``inputs`` with ``requires_grad`` are checked (use float64). The checks:
    ``gradcheck`` (backward vs finite differences), ``gradgradcheck`` (double backward),
    ``forward_ad`` (``jvp``), ``vmap`` (batched backward and forward gradients) and
    ``undefined_grad`` (an output gradient that is None). ``max_rel_error`` compares the
    analytic gradient with ``numerical_gradient``.

    >>> x = torch.randn(3, dtype=torch.float64, requires_grad=True)
    >>> check(torch.sigmoid, x).passed
    True
    """
    result = CheckResult(name or getattr(fn, "__name__", "fn"))
    for check_name in checks:
        try:
            _torch_check(check_name, fn, inputs)
            result.checks[check_name] = True
        except Exception as error:  # a failing check is a result, not a crash
            result.checks[check_name] = False
            result.errors[check_name] = f"{type(error).__name__}: {error}"
    try:
        result.max_rel_error = _numerical_vs_analytic(fn, inputs)
    except Exception as error:
        result.checks["gradcheck"] = False
        result.errors.setdefault("gradcheck", f"{type(error).__name__}: {error}")
        result.max_rel_error = float("inf")
    return result


def check_entry(entry: Entry, checks: Iterable[str] = CHECKS) -> CheckResult:
    """``check`` on every float64 sample of a REGISTRY entry, merged into one result."""
    checks = tuple(checks)
    result = CheckResult(entry.name, {c: True for c in checks})
    for sample in entry.samples(torch.float64, torch.device("cpu")):
        if not sample.differentiable:
            continue
        outcome = check(entry, *sample.args, checks=checks, name=entry.name)
        for check_name, message in outcome.errors.items():
            outcome.errors[check_name] = f"[{sample.label}] {message}"
        result.merge(outcome)
    return result


def check_all(
    names: Iterable[str] | None = None, checks: Iterable[str] = CHECKS
) -> list[CheckResult]:
    """``check_entry`` for every REGISTRY entry (or the ``names`` given)."""
    selected = list(REGISTRY) if names is None else list(names)
    unknown = [n for n in selected if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown Function(s) {unknown}; registered: {', '.join(REGISTRY)}")
    return [check_entry(REGISTRY[n], checks) for n in selected]


__all__ = [
    "CHECKS",
    "CheckResult",
    "check",
    "check_all",
    "check_entry",
    "numerical_gradient",
    "relative_error",
]
