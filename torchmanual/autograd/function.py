"""The base class every torchmanual gate, activation and loss derives from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

# A callable ``observer(function_class, args, output)`` per active torchmanual.Tape.
# NOTE: a plain list, so the hot path with no tape is one truthiness test.
_observers: list[Callable[[type[ManualFunction], tuple[Any, ...], Any], None]] = []


class ManualFunction(torch.autograd.Function):
    """A ``torch.autograd.Function`` whose ``backward`` is a slide's formula written by hand.

    Subclasses define ``forward`` (compute only), ``setup_context`` (save what backward
    needs), ``backward`` (upstream gradient × local gradient, in differentiable tensor
    ops, so double backward works) and ``jvp`` (forward-mode AD). ``generate_vmap_rule``
    lets ``torch.func.vmap`` batch them.
    """

    generate_vmap_rule = True

    @classmethod
    def apply(cls, *args: Any) -> Any:
        output = super().apply(*args)
        if _observers:
            for observe in _observers:
                observe(cls, args, output)
        return output


def tangent(t: Tensor | None, like: Tensor) -> Tensor:
    """A jvp input tangent, with ``None`` (no tangent given) read as zeros."""
    return torch.zeros_like(like) if t is None else t


def sum_to(grad: Tensor, shape: torch.Size) -> Tensor:
    """Sum a gradient over the dimensions an input was broadcast along.

    The slides' rule at a branch: a value that fed several places receives the sum of
    all the flows that come back.
    """
    return grad if grad.shape == shape else grad.sum_to_size(shape)
