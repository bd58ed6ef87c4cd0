"""The slides' gates (section 7): add, multiply, max, exp, 1/x, a·x, c+x and the affine map.

Every gate is one short class: ``forward`` computes, ``setup_context`` keeps what backward
needs ("must keep these around!"), ``backward`` is the slide's local gradient × upstream
gradient, ``jvp`` the same local gradient applied to an input tangent.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from torchmanual.autograd.function import FLOAT32, LOWER, ManualFunction, sum_to, tangent
from torchmanual.autograd.registry import (
    Sample,
    binary_edges,
    binary_samples,
    leaf,
    register,
    smooth_values,
    unary_edges,
    unary_samples,
)


@register(torch.add, binary_samples(), binary_edges())
class Add(ManualFunction):
    """``z = x + y``. Local gradients 1 and 1: add distributes the upstream gradient.

    Broadcast inputs receive the sum of the flows over the broadcast dimensions.

    >>> x, y = torch.tensor(-2.0, requires_grad=True), torch.tensor(5.0, requires_grad=True)
    >>> Add.apply(x, y).backward(); (x.grad.item(), y.grad.item())
    (1.0, 1.0)
    """

    @staticmethod
    def forward(x: Tensor, y: Tensor) -> Tensor:
        return x + y

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor], output: Tensor) -> None:
        x, y = inputs
        ctx.x_shape, ctx.y_shape = x.shape, y.shape

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        need_x, need_y = ctx.needs_input_grad
        return (
            sum_to(grad, ctx.x_shape) if need_x else None,
            sum_to(grad, ctx.y_shape) if need_y else None,
        )

    @staticmethod
    def jvp(ctx: Any, tx: Tensor | None, ty: Tensor | None) -> Tensor:
        if tx is None:
            return ty.expand(torch.broadcast_shapes(ctx.x_shape, ty.shape)).clone()
        if ty is None:
            return tx.expand(torch.broadcast_shapes(tx.shape, ctx.y_shape)).clone()
        return tx + ty


@register(torch.mul, binary_samples(), binary_edges())
class Mul(ManualFunction):
    """``z = x · y``. Local gradients y and x: multiply "switches" its inputs.

    >>> x, y = torch.tensor(3.0, requires_grad=True), torch.tensor(-4.0, requires_grad=True)
    >>> Mul.apply(x, y).backward(); (x.grad.item(), y.grad.item())
    (-4.0, 3.0)
    """

    @staticmethod
    def forward(x: Tensor, y: Tensor) -> Tensor:
        return x * y

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor], output: Tensor) -> None:
        x, y = inputs
        ctx.save_for_backward(x, y)
        ctx.save_for_forward(x, y)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, y = ctx.saved_tensors
        need_x, need_y = ctx.needs_input_grad
        return (
            sum_to(grad * y, x.shape) if need_x else None,
            sum_to(grad * x, y.shape) if need_y else None,
        )

    @staticmethod
    def jvp(ctx: Any, tx: Tensor | None, ty: Tensor | None) -> Tensor:
        x, y = ctx.saved_tensors
        if tx is None:
            return x * ty
        if ty is None:
            return tx * y
        return tx * y + x * ty


@register(torch.maximum, binary_samples(separate=True), binary_edges())
class Max(ManualFunction):
    """``z = max(x, y)`` elementwise. Max routes the upstream gradient to the larger input.

    At a tie (x == y) each input gets half, as torch does; where either input is nan, both
    get the full gradient (torch's convention too).

    >>> x, y = torch.tensor(2.0, requires_grad=True), torch.tensor(-1.0, requires_grad=True)
    >>> Max.apply(x, y).backward(); (x.grad.item(), y.grad.item())
    (1.0, 0.0)
    """

    @staticmethod
    def forward(x: Tensor, y: Tensor) -> Tensor:
        return torch.maximum(x, y)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor], output: Tensor) -> None:
        x, y = inputs
        ctx.save_for_backward(x, y)
        ctx.save_for_forward(x, y)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, y = ctx.saved_tensors
        need_x, need_y = ctx.needs_input_grad
        # NOTE: halving at ties (torch's subgradient choice) keeps d(x)+d(y) = upstream.
        routed = torch.where(x == y, grad / 2, grad)
        return (
            sum_to(torch.where(x < y, 0.0, routed), x.shape) if need_x else None,
            sum_to(torch.where(x > y, 0.0, routed), y.shape) if need_y else None,
        )

    @staticmethod
    def jvp(ctx: Any, tx: Tensor | None, ty: Tensor | None) -> Tensor:
        x, y = ctx.saved_tensors
        tx, ty = tangent(tx, x), tangent(ty, y)
        share_x = torch.where(x == y, 0.5, (x > y).to(tx.dtype))
        return ty + share_x * (tx - ty)


@register(torch.exp, unary_samples(kinks=()), unary_edges())
class Exp(ManualFunction):
    """``y = eˣ``; local gradient ``eˣ = y``, so backward reuses the saved output.

    >>> x = torch.tensor(0.0, requires_grad=True)
    >>> Exp.apply(x).backward(); x.grad.item()
    1.0
    """

    # NOTE: torch's CUDA autocast computes exp in float32 (CPU: in the input's dtype).
    autocast = {"cuda": FLOAT32}

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return torch.exp(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return grad * y

    @staticmethod
    def jvp(ctx: Any, tx: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return tx * y


@register(torch.reciprocal, unary_samples(low=0.2, high=3.0, kinks=()), unary_edges())
class Reciprocal(ManualFunction):
    """``y = 1/x``; local gradient ``-1/x² = -y²`` (from the saved output).

    At x = 0 the value is inf and the gradient -inf (times the upstream sign), as torch.

    >>> x = torch.tensor(1.37, dtype=torch.float64, requires_grad=True)
    >>> Reciprocal.apply(x).backward(); round(x.grad.item(), 2)
    -0.53
    """

    # NOTE: torch's CUDA autocast computes reciprocal in float32 (CPU: input's dtype).
    autocast = {"cuda": FLOAT32}

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return torch.reciprocal(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        # NOTE: -grad * (y*y), torch's order of operations, for bit-identical results.
        return -grad * (y * y)

    @staticmethod
    def jvp(ctx: Any, tx: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return -tx * (y * y)


def _scale_reference(x: Tensor, a: float) -> Tensor:
    return x * a


@register(_scale_reference, unary_samples(-1.0, kinks=()), unary_edges(2.5))
class Scale(ManualFunction):
    """``y = a·x`` for a constant number ``a``; local gradient ``a``.

    >>> x = torch.tensor(0.20, dtype=torch.float64, requires_grad=True)
    >>> Scale.apply(x, -1.0).backward(); x.grad.item()
    -1.0
    """

    @staticmethod
    def forward(x: Tensor, a: float) -> Tensor:
        return x * a

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, float], output: Tensor) -> None:
        ctx.a = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.a, None

    @staticmethod
    def jvp(ctx: Any, tx: Tensor, _: None) -> Tensor:
        return tx * ctx.a


def _shift_reference(x: Tensor, c: float) -> Tensor:
    return x + c


@register(_shift_reference, unary_samples(1.0, kinks=()), unary_edges(1.0))
class Shift(ManualFunction):
    """``y = c + x`` for a constant number ``c``; local gradient 1.

    >>> x = torch.tensor(0.37, requires_grad=True)
    >>> Shift.apply(x, 1.0).backward(); x.grad.item()
    1.0
    """

    @staticmethod
    def forward(x: Tensor, c: float) -> Tensor:
        return x + c

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, float], output: Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None

    @staticmethod
    def jvp(ctx: Any, tx: Tensor, _: None) -> Tensor:
        # NOTE: a fresh tensor: forward AD must not alias the input tangent as the output's.
        return tx.clone()


def _linear_samples(dtype: torch.dtype, device: torch.device) -> list[Sample]:
    def values(shape: tuple[int, ...], seed: int, contiguous: bool = True) -> Tensor:
        return leaf(
            smooth_values(shape, dtype, device, low=-1, high=1, seed=seed, contiguous=contiguous)
        )

    return [
        Sample((values((4, 3), 0), values((2, 3), 1), values((2,), 2)), "batch"),
        Sample((values((3,), 3), values((2, 3), 4), values((2,), 5)), "one example"),
        Sample((values((2, 4, 3), 6), values((5, 3), 7), values((5,), 8)), "3-d input"),
        Sample((values((4, 3), 9), values((2, 3), 10), None), "no bias"),
        Sample(
            (values((4, 3), 11, False), values((2, 3), 12, False), values((2,), 13)),
            "non-contiguous",
        ),
        Sample((values((0, 3), 14), values((2, 3), 15), values((2,), 16)), "empty batch"),
    ]


@register(torch.nn.functional.linear, _linear_samples)
class Linear(ManualFunction):
    """The affine gate ``y = x Wᵀ + b`` (weight ``(out, in)``, as torch).

    The slides' ``f = W x`` on a batch of row vectors. Backward: ``dx = dy W``,
    ``dW = dyᵀ x`` summed over the batch, ``db = Σ_batch dy`` (the bias fed every row).

    Shape: ``x (*, in)``, ``W (out, in)``, ``b (out)`` → ``(*, out)``.

    >>> x, W = torch.ones(2, 3), torch.ones(4, 3, requires_grad=True)
    >>> Linear.apply(x, W, None).sum().backward(); W.grad[0].tolist()
    [2.0, 2.0, 2.0]
    """

    # NOTE: a matmul: torch's autocast runs linear/addmm in the lower precision.
    autocast = LOWER

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        # NOTE: the value by torch's own linear: one call (addmm for a batch matrix) and no
        # Python-side Wᵀ view, which costs as much as a tiny layer's arithmetic.
        return torch.nn.functional.linear(x, weight, bias)

    @staticmethod
    def setup_context(
        ctx: Any, inputs: tuple[Tensor, Tensor, Tensor | None], output: Tensor
    ) -> None:
        x, weight, _ = inputs
        need_x, need_w, _ = ctx.needs_input_grad
        # Only what backward will read: W for dx, x for dW.
        ctx.save_for_backward(x if need_w else None, weight if need_x else None)
        ctx.save_for_forward(x, weight)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x = grad.matmul(weight) if need_x else None
        grad_w = grad_b = None
        if need_w or need_b:
            rows = grad.reshape(-1, grad.shape[-1])  # every example is a branch of W and b
            if need_w:
                grad_w = rows.t().mm(x.reshape(-1, x.shape[-1]))
            if need_b:
                grad_b = rows.sum(0)
        return grad_x, grad_w, grad_b

    @staticmethod
    def jvp(ctx: Any, tx: Tensor | None, tw: Tensor | None, tb: Tensor | None) -> Tensor:
        x, weight = ctx.saved_tensors
        out = tangent(tx, x).matmul(weight.t())
        if tw is not None:
            out = out + x.matmul(tw.t())
        return out if tb is None else out + tb
