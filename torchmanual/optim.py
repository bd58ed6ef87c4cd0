"""Hand-written SGD and gradient clipping: the slides' optimisation (SLIDES.md sections 6, 8, 10).

:class:`SGD` is the slides' ``W(t+1) = W(t) - α ∇_W L`` as a ``torch.optim.Optimizer``, with
momentum, Nesterov momentum, weight decay and ``maximize`` carrying exactly
``torch.optim.SGD``'s semantics, so the two are interchangeable (``state_dict`` included).
:func:`param_groups` applies the slides' rule that biases are not regularised.
:func:`clip_grad_norm_` and :func:`clip_grad_value_` are the slides' gradient clipping, the
remedy for exploding gradients; they return what ``torch.nn.utils``'s functions return.

>>> import torch
>>> from torchmanual import optim
>>> model = torch.nn.Linear(3, 1)
>>> opt = optim.SGD(optim.param_groups(model, weight_decay=1e-4), lr=0.1, momentum=0.9)
>>> model(torch.randn(8, 3)).pow(2).mean().backward()
>>> norm = optim.clip_grad_norm_(model.parameters(), max_norm=1.0)
>>> opt.step()
>>> opt.zero_grad()
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import optimizer as _torch_optimizer

__all__ = ["SGD", "clip_grad_norm_", "clip_grad_value_", "param_groups"]

# Device types with native multi-tensor (torch._foreach_*) kernels; on "cpu" the foreach ops
# loop in C++, which still beats a Python loop over parameters.
_FOREACH_DEVICES = ("cpu", "cuda", "xpu", "mtia")
# Subclasses (e.g. DTensor) may not dispatch foreach ops correctly; torch makes the same check.
_FOREACH_TYPES = (Tensor, torch.nn.Parameter)


def _foreach_supported(device: torch.device, tensors: list[Tensor]) -> bool:
    """True when ``tensors`` (all on ``device``) are plain tensors foreach kernels accept."""
    if device.type not in _FOREACH_DEVICES and (
        device.type != torch._C._get_privateuse1_backend_name()
    ):
        return False
    # NOTE: type() rather than isinstance(): a subclass may not dispatch foreach ops; this
    # per-tensor check is cheap, unlike tensor attribute access, which dominates small steps.
    return all(type(t) in _FOREACH_TYPES for t in tensors)


def _group_by_device_and_dtype(
    tensorlists: list[list[Tensor | None]],
) -> dict[tuple[torch.device, torch.dtype], tuple[list[list[Tensor | None]], list[int]]]:
    """Split parallel tensor lists by the (device, dtype) of the first list's tensors.

    Foreach kernels need one device and dtype per call. This is torch's C++ bucketing helper
    (the one torch.optim uses): a Python loop reading ``.device``/``.dtype`` per tensor costs
    more than the whole update for small parameters. Entries of later lists may be None.
    """
    return torch._C._group_tensors_by_device_and_dtype(tensorlists, True)


def _as_float(name: str, value: Any) -> float:
    """A hyper-parameter as a Python float; a 1-element tensor is read out."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{name} as a tensor must have 1 element, got shape {tuple(value.shape)}"
            )
        return float(value.item())
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


class SGD(torch.optim.Optimizer):
    r"""Stochastic gradient descent, optionally with momentum: the slides' ``W ← W − α g``.

    For each parameter θ with gradient ∇ (negated when ``maximize``), per step t:

    .. code-block:: text

        g   = ∇ + λ θ                          (weight_decay λ: the slides' D = Δ/m + λΘ)
        b_t = g                        t = 1   (momentum μ ≠ 0: the buffer starts at g,
        b_t = μ b_{t-1} + (1 − τ) g    t > 1    so dampening τ applies from the 2nd step)
        g   = g + μ b_t  (nesterov)  or  b_t   (plain momentum)
        θ   = θ − α g                          (lr α)

    This is ``torch.optim.SGD``'s algorithm, operation for operation, so trajectories agree
    to rounding and a ``state_dict`` (per-parameter ``'momentum_buffer'``) moves between the
    two optimizers in either direction. Param groups, ``zero_grad``, step hooks and
    ``torch.optim.lr_scheduler`` work as for any ``Optimizer``; torch's
    ``Optimizer.step#SGD.step`` / ``zero_grad`` profiler ranges are entered only while a
    profiler records (torch.optim enters them on every call, ~20 µs each on a small CPU).

    Args:
        params: parameters or param-group dicts (see :func:`param_groups`).
        lr: learning rate α >= 0 (a float, or a 1-element tensor read each step).
        momentum: momentum factor μ >= 0.
        dampening: dampening τ for momentum.
        weight_decay: L2 penalty λ >= 0.
        nesterov: Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
        maximize: ascend the objective instead of descending it.
        foreach: ``None`` (default) uses the multi-tensor ``torch._foreach_*`` path wherever
            the tensors support it and a per-tensor loop elsewhere; ``False`` forces the loop;
            ``True`` requires foreach. Same meaning as torch's ``foreach`` argument.

    Sparse gradients are not supported (RuntimeError); use ``torch.optim.SGD`` for those.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
        }
        # Validate the defaults even when every group overrides them, as torch does.
        self._check_hyperparameters(defaults)
        super().__init__(params, defaults)

    @staticmethod
    def _check_hyperparameters(group: dict[str, Any]) -> None:
        """Raise ValueError naming the offending value; ``not (x >= 0)`` also rejects NaN."""
        lr = _as_float("lr", group["lr"])
        momentum = _as_float("momentum", group["momentum"])
        dampening = _as_float("dampening", group["dampening"])
        weight_decay = _as_float("weight_decay", group["weight_decay"])
        if not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr} (must be >= 0)")
        if not momentum >= 0.0:
            raise ValueError(f"Invalid momentum value: {momentum} (must be >= 0)")
        if not weight_decay >= 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay} (must be >= 0)")
        if group["nesterov"] and (momentum <= 0.0 or dampening != 0.0):
            raise ValueError(
                "Nesterov momentum requires a momentum > 0 and zero dampening, "
                f"got momentum={momentum}, dampening={dampening}"
            )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group, filling defaults, and validate its hyper-parameters."""
        super().add_param_group(param_group)
        # Groups may override any default, so a group can be invalid when the defaults are not.
        self._check_hyperparameters(self.param_groups[-1])

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # A state_dict saved by torch.optim.SGD (or an older version) may lack these keys.
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)

    def _patch_step_function(self) -> None:
        # torch.optim's own, with a lighter step wrapper (see _with_step_hooks).
        self._zero_grad_profile_name = f"Optimizer.zero_grad#{type(self).__name__}.zero_grad"
        cls = type(self)
        if not getattr(cls.step, "hooked", None):
            cls.step = _with_step_hooks(cls.step)  # type: ignore[method-assign]
            cls.step.hooked = True  # type: ignore[attr-defined]

    @torch._disable_dynamo
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's ``.grad``: to None (default), or to zeros, as torch's."""
        if not set_to_none or _profiling():
            super().zero_grad(set_to_none)
            return
        # NOTE: torch's set_to_none loop without the profiler range torch enters even when
        # no profiler records (~20 µs here: a tenth of a tiny network's whole step).
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad = None

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one update on every parameter that has a ``.grad``.

        ``closure`` (optional) re-evaluates the model and returns the loss; it runs with grad
        enabled before the update, and its result is returned (``None`` without a closure).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.param_groups:
                self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        momentum = _as_float("momentum", group["momentum"])
        params: list[Tensor] = []
        grads: list[Tensor] = []
        bufs: list[Tensor | None] = []
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            if g.layout is not torch.strided:
                raise RuntimeError(
                    f"torchmanual.optim.SGD does not support sparse gradients ({g.layout}, "
                    f"parameter of shape {tuple(p.shape)}); use torch.optim.SGD for those"
                )
            params.append(p)
            grads.append(g)
            if momentum != 0.0:
                bufs.append(self.state[p].get("momentum_buffer"))
        if not params:
            return

        hyper = {
            "lr": _as_float("lr", group["lr"]),
            "momentum": momentum,
            "dampening": _as_float("dampening", group["dampening"]),
            "weight_decay": _as_float("weight_decay", group["weight_decay"]),
            "nesterov": bool(group["nesterov"]),
            "maximize": bool(group["maximize"]),
        }
        foreach = group.get("foreach")
        lists = [params, grads, bufs] if momentum != 0.0 else [params, grads]
        for (device, _), (sub, _) in _group_by_device_and_dtype(lists).items():
            p_sub, g_sub = sub[0], sub[1]
            b_sub = sub[2] if momentum != 0.0 else []
            use_foreach = foreach is not False and _foreach_supported(device, p_sub + g_sub)
            if foreach and not use_foreach:
                raise RuntimeError(
                    "foreach=True was passed, but the foreach API does not support these "
                    f"tensors (device {device}, types {sorted({type(p).__name__ for p in p_sub})})"
                )
            update = _sgd_foreach if use_foreach else _sgd_loop
            new_bufs = update(p_sub, g_sub, b_sub, **hyper)
            if momentum != 0.0:
                for p, buf in zip(p_sub, new_bufs, strict=True):
                    self.state[p]["momentum_buffer"] = buf


def _profiling() -> bool:
    """Whether a torch profiler records on this thread (its ranges are wanted only then)."""
    return torch._C._autograd._profiler_enabled()


def _with_step_hooks(step: Callable[..., Any]) -> Callable[..., Any]:
    """``step`` as torch.optim wraps it: global then per-optimizer pre-hooks (which may
    replace the arguments), the step, the profiler's entry point, per-optimizer then global
    post-hooks — all inside torch's ``Optimizer.step#<class>.step`` profiler range.

    torch enters that range on every step, profiler or not (~20 µs here); this wrapper
    enters it only while a profiler records.
    """

    @functools.wraps(step)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        optimizer = args[0]
        if _profiling():
            name = f"Optimizer.step#{type(optimizer).__name__}.step"
            with torch.autograd.profiler.record_function(name):
                return _run_with_step_hooks(step, optimizer, args, kwargs)
        return _run_with_step_hooks(step, optimizer, args, kwargs)

    return wrapper


def _run_with_step_hooks(
    step: Callable[..., Any], optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict
) -> Any:
    # (the hooks receive args with the optimizer first, as torch passes them)
    for pre_hook in itertools.chain(
        _torch_optimizer._global_optimizer_pre_hooks.values(),
        optimizer._optimizer_step_pre_hooks.values(),
    ):
        result = pre_hook(optimizer, args, kwargs)
        if result is not None:
            if not (isinstance(result, tuple) and len(result) == 2):
                raise RuntimeError(
                    f"{step} must return None or a tuple of (new_args, new_kwargs), "
                    f"but got {result}."
                )
            args, kwargs = result
    out = step(*args, **kwargs)
    optimizer._optimizer_step_code()
    for post_hook in itertools.chain(
        optimizer._optimizer_step_post_hooks.values(),
        _torch_optimizer._global_optimizer_post_hooks.values(),
    ):
        post_hook(optimizer, args, kwargs)
    return out


def _sgd_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    bufs: list[Tensor | None],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> list[Tensor]:
    """One SGD step on tensors of one device and dtype with multi-tensor kernels.

    Returns the momentum buffers (empty when momentum is 0).
    """
    # `owned` tracks whether `grads` are temporaries we may update in place; until then they
    # are the parameters' .grad tensors, which the step must leave untouched.
    owned = False
    if maximize:
        grads = torch._foreach_neg(grads)
        owned = True
    if weight_decay != 0.0:
        if owned:
            torch._foreach_add_(grads, params, alpha=weight_decay)
        else:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
            owned = True
    if momentum != 0.0:
        if all(b is not None for b in bufs):
            ready: list[Tensor] = bufs  # type: ignore[assignment]
            torch._foreach_mul_(ready, momentum)
            torch._foreach_add_(ready, grads, alpha=1.0 - dampening)
        else:
            # First step (or a partially restored state): a new buffer starts at g itself,
            # undamped, exactly as torch.optim.SGD does.
            ready = []
            for b, g in zip(bufs, grads, strict=True):
                if b is None:
                    b = g.detach().clone()
                else:
                    b.mul_(momentum).add_(g, alpha=1.0 - dampening)
                ready.append(b)
        if nesterov:
            if owned:
                torch._foreach_add_(grads, ready, alpha=momentum)
            else:
                grads = torch._foreach_add(grads, ready, alpha=momentum)
        else:
            grads = ready
        bufs = ready
    torch._foreach_add_(params, grads, alpha=-lr)
    return bufs  # type: ignore[return-value]


def _sgd_loop(
    params: list[Tensor],
    grads: list[Tensor],
    bufs: list[Tensor | None],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> list[Tensor]:
    """The same step as :func:`_sgd_foreach`, one tensor at a time (no foreach support)."""
    new_bufs: list[Tensor] = []
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        if maximize:
            g = -g
        if weight_decay != 0.0:
            g = g.add(p, alpha=weight_decay)
        if momentum != 0.0:
            b = bufs[i]
            if b is None:
                b = g.detach().clone()
            else:
                b.mul_(momentum).add_(g, alpha=1.0 - dampening)
            new_bufs.append(b)
            g = g.add(b, alpha=momentum) if nesterov else b
        p.add_(g, alpha=-lr)
    return new_bufs


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split ``model``'s trainable parameters into a decayed and a non-decayed group.

    The slides regularise only the weights: ``D_ij = Δ_ij / m + λ Θ_ij`` for ``j ≠ 0`` and
    ``D_i0 = Δ_i0 / m`` for the bias column (section 8). Parameters with >= 2 dims get
    ``weight_decay``; 1-d (and 0-d) parameters, i.e. biases and norm scales/shifts, get 0.

    Returns ``[{'params': weights, 'weight_decay': weight_decay},
    {'params': biases_and_1d, 'weight_decay': 0.0}]``, ready for :class:`SGD` (or any
    ``torch.optim`` optimizer). Parameters with ``requires_grad=False`` are left out.
    """
    weight_decay = _as_float("weight_decay", weight_decay)
    if not weight_decay >= 0.0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay} (must be >= 0)")
    decay: list[Tensor] = []
    no_decay: list[Tensor] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _grads_of(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    r"""Scale all gradients together so their joint p-norm is at most ``max_norm``.

    The slides' gradient clipping against exploding gradients (section 10):

    .. code-block:: text

        total = ‖ (‖g_1‖_p, ‖g_2‖_p, ...) ‖_p       (the norm of all grads as one vector)
        g_i  ← g_i · min(1, max_norm / (total + 1e-6))

    Same result as ``torch.nn.utils.clip_grad_norm_``. ``parameters`` is a tensor or an
    iterable of tensors; those without ``.grad`` are skipped. ``norm_type`` may be
    ``float('inf')`` (largest absolute entry). Returns the total norm before clipping, a
    tensor (``tensor(0.)`` when there are no gradients). With ``error_if_nonfinite=True`` a
    NaN/inf total norm raises RuntimeError instead of scaling. A negative or NaN ``max_norm``
    raises ValueError (torch would flip the gradients' signs).
    """
    norm_type = float(norm_type)
    max_norm = float(max_norm)
    # NOTE: torch accepts a negative max_norm and then flips every gradient's sign; that is
    # never intended, so it is an error here.
    if not max_norm >= 0.0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm}")
    grads = _grads_of(parameters)
    if not grads:
        return torch.tensor(0.0)
    with torch.no_grad():
        groups = [
            (device, sub[0])
            for (device, _), (sub, _) in _group_by_device_and_dtype([grads]).items()
        ]
        norms: list[Tensor] = []
        for device, sub in groups:
            if _foreach_supported(device, sub):
                norms.extend(torch._foreach_norm(sub, norm_type))
            else:
                norms.extend(torch.linalg.vector_norm(g, norm_type) for g in sub)
        first_device = grads[0].device
        total = torch.linalg.vector_norm(
            torch.stack([n.to(first_device) for n in norms]), norm_type
        )
        if error_if_nonfinite and not bool(torch.isfinite(total)):
            raise RuntimeError(
                f"The total norm of order {norm_type} of the gradients is {total.item()}, "
                "non-finite, so it cannot be clipped; pass error_if_nonfinite=False to scale "
                "by it anyway"
            )
        # NOTE: +1e-6 keeps the division finite when the norm is 0 (torch's constant), and the
        # coefficient is always applied, clamped at 1, so there is no host sync on the norm.
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for device, sub in groups:
            c = coef.to(device)
            if _foreach_supported(device, sub):
                torch._foreach_mul_(sub, c)
            else:
                for g in sub:
                    g.mul_(c)
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    r"""Clamp every gradient entry to ``[-clip_value, clip_value]``, in place (section 10).

    ``g ← min(max(g, −c), c)``. Same result as ``torch.nn.utils.clip_grad_value_``;
    ``parameters`` is a tensor or an iterable of tensors, those without ``.grad`` skipped.
    Returns ``None``, like torch. A negative or NaN ``clip_value`` raises ValueError.
    """
    clip_value = float(clip_value)
    # NOTE: torch accepts a negative clip_value and then sets every entry to it; an error here.
    if not clip_value >= 0.0:
        raise ValueError(f"clip_value must be >= 0, got {clip_value}")
    grads = _grads_of(parameters)
    with torch.no_grad():
        for (device, _), ([sub], _) in _group_by_device_and_dtype([grads]).items():
            if _foreach_supported(device, sub):
                torch._foreach_clamp_min_(sub, -clip_value)
                torch._foreach_clamp_max_(sub, clip_value)
            else:
                for g in sub:
                    g.clamp_(min=-clip_value, max=clip_value)
