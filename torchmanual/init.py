"""The slides' weight initialisations (SLIDES.md section 9), in the style of ``torch.nn.init``.

Every function fills a tensor in place under ``torch.no_grad()``, accepts an optional
``generator`` (like ``torch.nn.init``) and returns the tensor, so it works on an
``nn.Parameter`` that requires grad.

Fans follow torch's layout: a weight is ``(out, in)``, so ``fan_in = weight.shape[1]`` and
``fan_out = weight.shape[0]``. The slides write ``randn(fan_in, fan_out)``, the transpose; the
statistics are the same.

>>> import torch
>>> from torchmanual import init
>>> layer = torch.nn.Linear(500, 100)
>>> _ = init.apply_(layer, "he")
>>> bool(layer.bias.eq(0).all())
True
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = [
    "SCHEMES",
    "apply_",
    "constant_",
    "glorot_normal_",
    "he_",
    "small_normal_",
    "uniform_",
    "unit_normal_",
    "xavier_",
    "zeros_",
]


def _fans(tensor: torch.Tensor) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight in torch's ``(out, in, *kernel)`` layout."""
    if tensor.dim() < 2:
        raise ValueError(
            "fan_in/fan_out need a weight with at least 2 dims in torch's (out, in) layout, "
            f"got a tensor of shape {tuple(tensor.shape)}"
        )
    # NOTE: dims past the second (a conv kernel) multiply both fans, as torch.nn.init does;
    # for a Linear weight this is exactly fan_in = shape[1], fan_out = shape[0].
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _check_spread(name: str, value: float) -> float:
    """Validate a std or eps: a finite number >= 0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _normal_(tensor: torch.Tensor, std: float, generator: torch.Generator | None) -> torch.Tensor:
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def zeros_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill with ``W = 0``: the slides' all-zero initialisation (section 9).

    Every hidden unit then computes the same thing and receives the same update forever (the
    symmetry problem); use it for biases, not weights. ``generator`` is accepted so every
    scheme has the same signature, and is unused.
    """
    with torch.no_grad():
        return tensor.zero_()


def constant_(
    tensor: torch.Tensor, val: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill with ``W = val``: the slides' all-equal weights (section 9), which keep symmetry.

    ``generator`` is accepted for a uniform signature, and is unused.
    """
    with torch.no_grad():
        return tensor.fill_(val)


def small_normal_(
    tensor: torch.Tensor, std: float = 0.01, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill with ``W = std · randn``, the slides' ``0.01 * randn(D, H)`` (section 9).

    Fine for small networks; in deep tanh networks the activations shrink layer after layer
    toward zero. Any shape is accepted (no fan is needed). ``std`` must be finite and >= 0.
    """
    return _normal_(tensor, _check_spread("std", std), generator)


def unit_normal_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill with ``W = 1.0 · randn`` (section 9).

    Too large for deep networks: in a deep tanh network almost every unit saturates at ±1 and
    the gradients vanish. Any shape is accepted.
    """
    return _normal_(tensor, 1.0, generator)


def uniform_(
    tensor: torch.Tensor, eps: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill with ``W ~ U[-eps, eps]``: the slides' symmetry breaking with ε small (section 9).

    Any shape is accepted. ``eps`` must be finite and >= 0.
    """
    eps = _check_spread("eps", eps)
    with torch.no_grad():
        return tensor.uniform_(-eps, eps, generator=generator)


def xavier_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Xavier (Glorot et al., 2010), the slides' form: ``W = randn / sqrt(fan_in)`` (section 9).

    Std ``1 / sqrt(fan_in)``, derived for linear activations: it keeps the variance of
    ``W x`` equal to that of ``x``. Same distribution as
    ``torch.nn.init.kaiming_normal_(w, nonlinearity='linear')``. Needs >= 2 dims.
    """
    fan_in, _ = _fans(tensor)
    if tensor.numel() == 0:
        return tensor
    return _normal_(tensor, 1.0 / math.sqrt(fan_in), generator)


def glorot_normal_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Glorot's normal form: ``W ~ N(0, std²)``, ``std = sqrt(2 / (fan_in + fan_out))`` (section 9).

    Same distribution as ``torch.nn.init.xavier_normal_`` (gain 1). Needs >= 2 dims.
    """
    fan_in, fan_out = _fans(tensor)
    if tensor.numel() == 0:
        return tensor
    return _normal_(tensor, math.sqrt(2.0 / (fan_in + fan_out)), generator)


def he_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """He et al. (2015), for ReLU: ``W = randn / sqrt(fan_in / 2)`` (section 9).

    Std ``sqrt(2 / fan_in)``: ReLU zeroes half its inputs, so the factor 2 keeps the
    activation variance constant through depth. Same distribution as
    ``torch.nn.init.kaiming_normal_(w, nonlinearity='relu')``. Needs >= 2 dims.
    """
    fan_in, _ = _fans(tensor)
    if tensor.numel() == 0:
        return tensor
    return _normal_(tensor, 1.0 / math.sqrt(fan_in / 2.0), generator)


SCHEMES: dict[str, Callable[..., torch.Tensor]] = {
    "zeros": zeros_,
    "small": small_normal_,
    "unit": unit_normal_,
    "xavier": xavier_,
    "glorot": glorot_normal_,
    "he": he_,
}
"""Scheme name -> in-place initialiser ``fn(tensor, generator=None)``; used by :func:`apply_`."""


def apply_(
    module: torch.nn.Module, scheme: str, generator: torch.Generator | None = None
) -> torch.nn.Module:
    """Initialise every weight of ``module`` by scheme name and zero every bias, in place.

    A weight is a parameter named ``weight`` with >= 2 dims, in ``module`` or any submodule
    (``torch.nn.Linear``, ``torchmanual.nn.Linear``, ...); it gets ``SCHEMES[scheme]``. Every
    parameter named ``bias`` is set to 0. One-dimensional ``weight`` parameters (norm scales,
    PReLU slopes) are left as they are. A parameter shared by several submodules is
    initialised once. Returns ``module``.

    Raises ValueError for a scheme name not in :data:`SCHEMES`.
    """
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; valid schemes: {sorted(SCHEMES)}")
    init_fn = SCHEMES[scheme]
    for name, param in module.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "weight" and param.dim() >= 2:
            init_fn(param, generator=generator)
        elif leaf == "bias":
            zeros_(param)
    return module
