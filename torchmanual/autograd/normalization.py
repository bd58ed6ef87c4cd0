"""Batch normalisation: the slides' remedy for vanishing and exploding gradients (section 10).

"Standardise the activations, then shift and scale": ``y = γ (x − μ) / √(σ² + ε) + β``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from torchmanual.autograd.function import ManualFunction, opmath, tangent
from torchmanual.autograd.registry import Sample, leaf, register, smooth_values


def _reduce_dims(x: Tensor) -> tuple[int, ...]:
    """Every dim but the channel dim 1: (N, C) → (0,), (N, C, L) → (0, 2)."""
    return (0,) if x.dim() == 2 else (0, 2)


def _per_channel(v: Tensor, x: Tensor) -> Tensor:
    """A (C,) vector shaped to broadcast against x: (C,) for 2-D, (C, 1) for 3-D input."""
    return v if x.dim() == 2 else v.unsqueeze(-1)


def _statistics(x: Tensor, mean: Tensor | None, var: Tensor | None, eps: float):
    """(μ, 1/√(σ² + ε)) broadcastable against x: the batch's, or the given running ones."""
    if mean is None:
        var, mean = torch.var_mean(x, dim=_reduce_dims(x), unbiased=False, keepdim=True)
        return mean, torch.rsqrt(var + eps)
    return _per_channel(mean, x), _per_channel(torch.rsqrt(var + eps), x)


def _batch_norm_reference(x, weight, bias, mean, var, eps):
    training = mean is None
    return torch.nn.functional.batch_norm(
        x, mean, var, weight, bias, training=training, momentum=0.0, eps=eps
    )


def _batch_norm_samples(dtype: torch.dtype, device: torch.device) -> list[Sample]:
    def values(shape, seed, low=-2.0, high=2.0, grad=True):
        return leaf(smooth_values(shape, dtype, device, low=low, high=high, seed=seed), grad)

    return [
        Sample(
            (values((6, 3), 0), values((3,), 1), values((3,), 2), None, None, 1e-5), "train 2-d"
        ),
        Sample(
            (values((4, 3, 5), 3), values((3,), 4), values((3,), 5), None, None, 1e-5), "train 3-d"
        ),
        Sample((values((6, 3), 6), None, None, None, None, 1e-3), "train no affine"),
        Sample(
            (
                values((6, 3), 7),
                values((3,), 8),
                values((3,), 9),
                values((3,), 10, grad=False),
                values((3,), 11, 0.5, 2.0, grad=False),
                1e-5,
            ),
            "eval 2-d",
        ),
        Sample(
            (
                values((4, 3, 5), 12),
                values((3,), 13),
                values((3,), 14),
                values((3,), 15, grad=False),
                values((3,), 16, 0.5, 2.0, grad=False),
                1e-5,
            ),
            "eval 3-d",
        ),
    ]


@register(_batch_norm_reference, _batch_norm_samples)
class BatchNorm(ManualFunction):
    """``y = γ x̂ + β`` with ``x̂ = (x − μ) / √(σ² + ε)``, per channel (dim 1).

    Training (``mean``/``var`` None): μ, σ² are the batch's (biased variance), and the
    backward is the closed-form batch-norm gradient — every x̂ depends on every x of its
    channel through μ and σ², so ``dx = (1/√(σ²+ε)) (dx̂ − mean(dx̂) − x̂ mean(dx̂ x̂))``
    with ``dx̂ = γ dy``; ``dγ = Σ dy x̂``, ``dβ = Σ dy``. Evaluation (running ``mean`` and
    ``var`` given): a fixed per-channel affine map, ``dx = γ dy / √(var + ε)``.

    Shape: ``x (N, C)`` or ``(N, C, L)``; ``weight``, ``bias``, ``mean``, ``var`` ``(C,)``.

    >>> x = torch.tensor([[1.0], [3.0]], requires_grad=True)
    >>> y = BatchNorm.apply(x, None, None, None, None, 0.0); y.flatten().tolist()
    [-1.0, 1.0]
    """

    @staticmethod
    def forward(x, weight, bias, mean, var, eps: float) -> Tensor:
        dtype = x.dtype
        x, weight, bias, mean, var = map(opmath, (x, weight, bias, mean, var))
        # NOTE: torch's own kernel for the value: it sums the statistics sequentially in a
        # wider accumulator and applies x·α + β with α = γ/σ, β = β − μα — no composition of
        # public reductions rounds the same, and one kernel beats the five of the formula.
        # (torch.batch_norm, not F.batch_norm: the latter refuses eps = 0 in training.)
        y = torch.batch_norm(x, weight, bias, mean, var, mean is None, 0.0, eps, False)
        return y.to(dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        x, weight, _, mean, var, ctx.eps = inputs
        # NOTE: x, not x̂: backward recomputes x̂ from x so double backward sees how x̂
        # depends on x (a saved x̂ would be a constant to autograd).
        ctx.save_for_backward(x, weight, mean, var)
        ctx.save_for_forward(x, weight, mean, var)

    @staticmethod
    def backward(ctx: Any, grad: Tensor):
        saved = ctx.saved_tensors
        x, weight, mean, var = map(opmath, saved)
        grad = opmath(grad)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dims = _reduce_dims(x)
        mu, invstd = _statistics(x, mean, var, ctx.eps)
        x_hat = (x - mu) * invstd
        grad_x = grad_w = grad_b = None
        if need_w:
            grad_w = (grad * x_hat).sum(dims)
        if need_b:
            grad_b = grad.sum(dims)
        if need_x:
            # NOTE: dx̂ = γ dy, and γ is constant per channel, so it factors out of the means:
            # dx = γ/σ (dy − mean(dy) − x̂ mean(dy x̂)). Scaling last (torch's order) keeps an
            # infinite γ from turning the means of ±inf into nan.
            scale = invstd if weight is None else invstd * _per_channel(weight, x)
            if mean is None:  # training: μ and σ² depend on x too
                grad_x = scale * (
                    grad
                    - grad.mean(dims, keepdim=True)
                    - x_hat * (grad * x_hat).mean(dims, keepdim=True)
                )
            else:
                grad_x = grad * scale
        # Each gradient in its input's dtype: under autocast a bfloat16 x meets float32 γ, β,
        # whose gradients stay float32 (computed in float32, never rounded to bfloat16).
        x_dtype = saved[0].dtype
        w_dtype = x_dtype if saved[1] is None else saved[1].dtype
        grads = (
            None if grad_x is None else grad_x.to(x_dtype),
            None if grad_w is None else grad_w.to(w_dtype),
            None if grad_b is None else grad_b.to(w_dtype),
        )
        return (*grads, None, None, None)

    @staticmethod
    def jvp(ctx: Any, tx, tw, tb, _tmean, _tvar, _teps) -> Tensor:
        x, weight, mean, var = ctx.saved_tensors
        dims = _reduce_dims(x)
        mu, invstd = _statistics(x, mean, var, ctx.eps)
        x_hat = (x - mu) * invstd
        tx = tangent(tx, x)
        if mean is None:
            t_hat = invstd * (
                tx - tx.mean(dims, keepdim=True) - x_hat * (tx * x_hat).mean(dims, keepdim=True)
            )
        else:
            t_hat = tx * invstd
        out = t_hat if weight is None else t_hat * _per_channel(weight, x)
        if tw is not None:
            out = out + x_hat * _per_channel(tw, x)
        if tb is not None:
            out = out + _per_channel(tb, x)
        return out
