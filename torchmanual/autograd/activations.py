"""The slides' activation functions (section 3), each with its derivative written by hand.

Every activation is one short class, like the gates: ``forward`` computes, ``setup_context``
keeps what backward needs (the output where the slide states the derivative in terms of
it: σ(1−σ), 1−y²), ``backward`` is the slide's derivative × upstream gradient and ``jvp``
the same derivative applied to an input tangent. Kinks follow torch's conventions, stated
in each docstring, and values and gradients equal torch's own ops, ±inf and nan included.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from torchmanual.autograd.function import FLOAT32, LOWER, ManualFunction, opmath, sum_to, tangent
from torchmanual.autograd.gates import Linear
from torchmanual.autograd.registry import (
    EDGE_VALUES,
    NONFINITE_VALUES,
    Sample,
    SampleMaker,
    leaf,
    register,
    smooth_values,
    unary_edges,
    unary_samples,
)

# torch's constants (ATen's GeluKernel), so both GELUs match torch to the last bits.
_SQRT1_2 = math.sqrt(0.5)  # 1/√2
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)  # φ(0) = 1/√(2π)
_TANH_BETA = math.sqrt(2.0 / math.pi)  # √(2/π)
_TANH_KAPPA = 0.044715


def _variants(*makers: SampleMaker) -> SampleMaker:
    """All makers' samples, each labelled with its non-tensor arguments (slope, alpha, ...).

    A parametrised Function is registered once; its samples cover every parameter value.
    """

    def make(dtype: torch.dtype, device: torch.device) -> list[Sample]:
        samples = []
        for maker in makers:
            for sample in maker(dtype, device):
                params = ", ".join(repr(a) for a in sample.args if not isinstance(a, Tensor))
                samples.append(Sample(sample.args, f"{sample.label} ({params})"))
        return samples

    return make


# ---------------------------------------------------------------------------------------
# Saturating: sigmoid and tanh, whose derivatives are written with their own output.
# ---------------------------------------------------------------------------------------


@register(torch.sigmoid, unary_samples(kinks=()), unary_edges())
class Sigmoid(ManualFunction):
    """``σ(x) = 1 / (1 + e⁻ˣ)``; derivative ``σ(x)(1 − σ(x))``, from the saved output.

    The derivative is at most 0.25 (at x = 0) and vanishes as |x| grows: a saturated
    sigmoid "kills" the gradient, and a chain of them shrinks it by ≥ 4× per layer.

    >>> x = torch.tensor(0.0, requires_grad=True)
    >>> Sigmoid.apply(x).backward(); x.grad.item()
    0.25
    """

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        # NOTE: torch.sigmoid is the safe form of 1/(1+e⁻ˣ) (no overflow at x = -1000).
        return torch.sigmoid(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        # NOTE: grad·(1−y)·y in torch's order of operations, for bit-identical results.
        return grad * (1 - y) * y

    @staticmethod
    def jvp(ctx: Any, tx: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return tx * (1 - y) * y


@register(torch.tanh, unary_samples(kinks=()), unary_edges())
class Tanh(ManualFunction):
    """``tanh(x) = (eˣ − e⁻ˣ)/(eˣ + e⁻ˣ)``; derivative ``1 − tanh²(x) = 1 − y²`` (saved output).

    Zero-centred, squashes to [−1, 1]; the derivative is at most 1 (at x = 0) and still
    saturates for large |x|.

    >>> x = torch.tensor(0.0, requires_grad=True)
    >>> Tanh.apply(x).backward(); x.grad.item()
    1.0
    """

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return _times_one_minus_square(grad, y)

    @staticmethod
    def jvp(ctx: Any, tx: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return _times_one_minus_square(tx, y)


def _times_one_minus_square(t: Tensor, y: Tensor) -> Tensor:
    """``t · (1 − y²)`` with ``1 − y²`` rounded once."""
    # NOTE: addcmul's fused multiply-add, as torch's tanh_backward kernel computes it (two
    # roundings, 1 − fl(y²), differ from it in the last bit for most y); half types in
    # float32, rounded once at the end, as torch does: torch's bits in every dtype.
    y32, t32 = opmath(y), opmath(t)
    out = t32 * torch.addcmul(y32.new_ones(()), y32, y32, value=-1)
    return out if out.dtype == t.dtype else out.to(t.dtype)


# ---------------------------------------------------------------------------------------
# The ReLU family: piecewise linear, a kink at 0.
# ---------------------------------------------------------------------------------------

# The integer type of each float type's width, for a select done on the bits.
_BITS = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}
# NOTE: 0-d CPU constants for the CPU hot path: an op given a Python number wraps it in a
# fresh tensor on every call (~4 µs here, more than the kernel on a small tensor); a 0-d
# tensor of any float dtype leaves the result's dtype to the other operand.
_ZERO = torch.zeros(())
_ONE_BITS = {bits: torch.ones((), dtype=bits) for bits in set(_BITS.values())}


def _zero_where_not_positive(y: Tensor, t: Tensor, overwrite: bool = False) -> Tensor:
    """``t`` where ``y > 0`` or y is nan, else exactly 0: ReLU's local gradient times ``t``.

    The slides' formula is ``where(y <= 0, 0, t)``, and that is what runs whenever a graph
    is being built (double backward), under torch.func transforms and while compiling.
    ``overwrite``: ``t`` is a temporary of the caller's, which the CPU fast path may
    reuse for the result instead of allocating one.
    """
    # (is_compiling first: Dynamo cannot trace the checks below.)
    if torch.compiler.is_compiling() or t.device.type != "cpu":
        return torch.where(y <= 0, 0.0, t)
    bits = _BITS.get(t.dtype)
    if (
        bits is None
        or t.numel() < 4096  # NOTE: below this, where()'s one kernel beats three
        or y.shape != t.shape
        or torch.is_grad_enabled()
        or torch._C._are_functorch_transforms_active()
        or torch._C._functorch.is_legacy_batchedtensor(t)  # gradcheck's batched grad
    ):
        return torch.where(torch.le(y, _ZERO), _ZERO, t)
    # NOTE: the same select on t's bits: times 1 (keep) or 0 (drop) as integers. Exact —
    # an inf or nan upstream value in a dead unit still becomes +0.0, as with where() —
    # and on CPU 3x cheaper than where(), whose kernel is not vectorised (and than a bool
    # mask: comparisons are slow kernels too). |y|'s bits are 0 for ±0 and positive for
    # y > 0 or nan (of either sign): min(bits, 1) is the 0/1 factor.
    keep = torch.abs(y).view(bits).clamp_max_(_ONE_BITS[bits])
    if overwrite:
        t.view(bits).mul_(keep)
        return t
    return keep.mul_(t.view(bits)).view(t.dtype)


@register(torch.relu, unary_samples(), unary_edges())
class ReLU(ManualFunction):
    """``max(0, x)``; derivative 1 for x > 0, 0 for x < 0, and **0 at x = 0** (torch's choice).

    No saturation for x > 0 and cheap; a unit whose input stays negative gets no gradient
    and never updates ("dying ReLU"). nan passes through, with the upstream gradient.

    >>> x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    >>> ReLU.apply(x).sum().backward(); x.grad.tolist()
    [0.0, 0.0, 1.0]
    """

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        # NOTE: clamp_min (torch's relu), not where(x > 0, x, 0), which would turn nan into 0.
        return x.clamp_min(0)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        # NOTE: the mask from the output, y ≤ 0 ⇒ 0 (torch's test), so a nan keeps its gradient.
        return _zero_where_not_positive(y, grad)

    @staticmethod
    def jvp(ctx: Any, tx: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return _zero_where_not_positive(y, tx)


@register(
    F.leaky_relu,
    _variants(unary_samples(0.01), unary_samples(0.2)),
    _variants(unary_edges(0.01), unary_edges(0.2)),
)
class LeakyReLU(ManualFunction):
    """``max(a·x, x)`` for a slope ``a`` (0.01 by default); derivative 1 for x > 0, else ``a``.

    At x = 0 the derivative is ``a`` (torch's ``x > 0 ? 1 : a``). Never saturates and never
    kills the gradient.

    >>> x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    >>> LeakyReLU.apply(x, 0.2).sum().backward(); x.grad.tolist()
    [0.20000000298023224, 0.20000000298023224, 1.0]
    """

    @staticmethod
    def forward(x: Tensor, negative_slope: float) -> Tensor:
        return torch.where(x > 0, x, x * negative_slope)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, float], output: Tensor) -> None:
        x, ctx.negative_slope = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return torch.where(x > 0, grad, grad * ctx.negative_slope), None

    @staticmethod
    def jvp(ctx: Any, tx: Tensor, _: None) -> Tensor:
        (x,) = ctx.saved_tensors
        return torch.where(x > 0, tx, tx * ctx.negative_slope)


def _channel_view(weight: Tensor, x: Tensor) -> Tensor:
    """PReLU's weight as a view that broadcasts over ``x``: ``(1, C, 1, ..., 1)``.

    Channels are dimension 1; an input with fewer than 2 dimensions has no channel
    dimension and a one-element weight (``torch.nn.functional.prelu``'s rule).
    """
    shape = [1] * x.dim()
    if x.dim() > 1:
        shape[1] = weight.numel()
    return weight.reshape(shape)


def _prelu_samples(dtype: torch.dtype, device: torch.device) -> list[Sample]:
    def values(shape: tuple[int, ...], seed: int, contiguous: bool = True) -> Tensor:
        x = smooth_values(shape, dtype, device, kinks=(0.0,), seed=seed, contiguous=contiguous)
        return leaf(x)

    def slopes(n: int, seed: int) -> Tensor:
        return leaf(smooth_values((n,), dtype, device, low=0.05, high=0.5, seed=seed))

    return [
        Sample((values((), 0), slopes(1, 1)), "0-d"),
        Sample((values((7,), 2), slopes(1, 3)), "vector, one α"),
        Sample((values((5, 7), 4), slopes(1, 5)), "matrix, one α"),
        Sample((values((5, 7), 6), slopes(7, 7)), "matrix, α per channel"),
        Sample((values((2, 3, 4), 8), slopes(3, 9)), "3-d, α per channel"),
        Sample((values((5, 7), 10, False), slopes(7, 11)), "non-contiguous"),
        Sample((values((0, 3), 12), slopes(3, 13)), "empty"),
    ]


def _prelu_edges(dtype: torch.dtype, device: torch.device) -> list[Sample]:
    values = EDGE_VALUES + NONFINITE_VALUES
    x = torch.tensor(values, dtype=dtype, device=device)
    per_channel = smooth_values((len(values),), dtype, device, low=0.05, high=0.5, seed=0)
    return [
        Sample((leaf(x), leaf(torch.tensor([0.25], dtype=dtype, device=device))), "edges, one α"),
        Sample((leaf(x[None].clone()), leaf(per_channel)), "edges, α per channel"),
    ]


@register(F.prelu, _prelu_samples, _prelu_edges)
class PReLU(ManualFunction):
    """``max(α·x, x)`` with a learned slope α, one or one per channel (dimension 1).

    Derivatives (torch's convention at x = 0: the x ≤ 0 branch):
    ``∂f/∂x = 1`` for x > 0, else ``α``; ``∂f/∂α = 0`` for x > 0, else ``x`` — summed over
    every non-channel dimension, because one α fed all of those positions ("backprop
    into α"). Shapes: ``x (N, C, *)`` or any shape with a one-element α; ``weight (C,)``
    or ``(1,)`` (or 0-d); any other weight size raises ``ValueError``.

    >>> x = torch.tensor([-2.0, 3.0]); a = torch.tensor([0.25], requires_grad=True)
    >>> PReLU.apply(x, a).sum().backward(); a.grad.tolist()
    [-2.0]
    """

    # NOTE: torch's autocast lists prelu with the matmuls (lower precision).
    autocast = LOWER

    @staticmethod
    def forward(x: Tensor, weight: Tensor) -> Tensor:
        channels = x.shape[1] if x.dim() > 1 else 1
        if weight.numel() not in (1, channels):
            # NOTE: checked here too, because (N, 1, ...) would silently broadcast to (N, C, ...).
            raise ValueError(
                f"prelu: weight has {weight.numel()} elements but the input of shape "
                f"{tuple(x.shape)} has {channels} channel(s) (dimension 1); "
                f"expected 1 or {channels}"
            )
        return torch.where(x > 0, x, _channel_view(weight, x) * x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor], output: Tensor) -> None:
        x, weight = inputs
        need_x, _ = ctx.needs_input_grad
        # x for both masks and ∂f/∂α; α only for ∂f/∂x.
        ctx.save_for_backward(x, weight if need_x else None)
        ctx.save_for_forward(x, weight)
        ctx.weight_shape, ctx.view_shape = weight.shape, _channel_view(weight, x).shape

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad
        grad_x = grad_w = None
        positive = x > 0
        if need_x:
            grad_x = torch.where(positive, grad, _channel_view(weight, x) * grad)
        if need_w:
            # NOTE: where(), not a mask multiply: at x = +inf, x·grad·0 would be nan.
            per_position = torch.where(positive, 0.0, x * grad)
            grad_w = sum_to(per_position, ctx.view_shape).reshape(ctx.weight_shape)
        return grad_x, grad_w

    @staticmethod
    def jvp(ctx: Any, tx: Tensor | None, tw: Tensor | None) -> Tensor:
        x, weight = ctx.saved_tensors
        negative = _channel_view(weight, x) * tangent(tx, x)
        if tw is not None:
            negative = negative + _channel_view(tw, x) * x
        return torch.where(x > 0, tangent(tx, x), negative)


@register(
    F.elu,
    _variants(unary_samples(1.0), unary_samples(0.5)),
    _variants(unary_edges(1.0), unary_edges(0.5)),
)
class ELU(ManualFunction):
    """``x`` for x > 0, ``α(eˣ − 1)`` for x ≤ 0; derivative 1 for x > 0, ``α eˣ = f(x) + α``
    for x ≤ 0 (so at x = 0 it is α, torch's convention).

    ReLU's benefits with outputs closer to zero mean, at the price of an exp.

    >>> x = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    >>> ELU.apply(x, 0.5).sum().backward(); [round(g, 4) for g in x.grad.tolist()]
    [0.1839, 0.5, 1.0]
    """

    @staticmethod
    def forward(x: Tensor, alpha: float) -> Tensor:
        # NOTE: the value by torch's elu: its kernel's α(eˣ − 1) (SLEEF/libm expm1) is not
        # torch.expm1's in every last bit; one kernel, not four.
        return F.elu(x, alpha)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, float], output: Tensor) -> None:
        x, ctx.alpha = inputs
        # NOTE: saves x, not f(x): f(x) + α cancels catastrophically for x ≪ 0 (f → −α),
        # while α·eˣ keeps every digit; torch's elu backward computes α·eˣ too.
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        # NOTE: exp of min(x, 0): no inf in the unused branch to turn double backward nan.
        negative = grad * ctx.alpha * torch.exp(x.clamp(max=0))
        return torch.where(x <= 0, negative, grad), None

    @staticmethod
    def jvp(ctx: Any, tx: Tensor, _: None) -> Tensor:
        (x,) = ctx.saved_tensors
        return torch.where(x <= 0, tx * ctx.alpha * torch.exp(x.clamp(max=0)), tx)


# ---------------------------------------------------------------------------------------
# Smooth ReLU variants: GELU, SiLU, Softplus.
# ---------------------------------------------------------------------------------------


def _gelu_reference(x: Tensor, approximate: str) -> Tensor:
    return F.gelu(x, approximate=approximate)


@register(
    _gelu_reference,
    _variants(unary_samples("none", kinks=()), unary_samples("tanh", kinks=())),
    _variants(unary_edges("none"), unary_edges("tanh")),
)
class GELU(ManualFunction):
    """``x·Φ(x)``, Φ the standard normal CDF; ``approximate='tanh'`` uses Φ's tanh form.

    ``'none'``: ``f = ½x(1 + erf(x/√2))``, ``f' = Φ(x) + x·φ(x)``, φ(x) = e^(−x²/2)/√(2π).
    ``'tanh'``: ``f = ½x(1 + tanh u)``, ``u = √(2/π)(x + 0.044715x³)``,
    ``f' = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²)``.
    Smooth everywhere; at x = −inf both are nan (0·inf), as torch.

    >>> x = torch.tensor(0.0, requires_grad=True)
    >>> GELU.apply(x, "none").backward(); x.grad.item()
    0.5
    """

    @staticmethod
    def forward(x: Tensor, approximate: str) -> Tensor:
        # NOTE: the value by torch's gelu: its kernel's erf/tanh (SLEEF, libm) are not
        # torch.erf's/torch.tanh's, so no composition has its bits; one kernel, not six.
        return F.gelu(x, approximate=approximate)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, str], output: Tensor) -> None:
        x, ctx.approximate = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def _derivative(x: Tensor, approximate: str) -> Tensor:
        if approximate == "tanh":
            x_sq = x * x
            tanh_inner = torch.tanh(_TANH_BETA * (x + _TANH_KAPPA * (x_sq * x)))
            left_derivative = 0.5 * (1 + tanh_inner)
            inner_derivative = _TANH_BETA * (1 + 3 * _TANH_KAPPA * x_sq)
            right_derivative = 0.5 * x * (1 - tanh_inner * tanh_inner) * inner_derivative
            return left_derivative + right_derivative
        cdf = 0.5 * (1 + torch.erf(x * _SQRT1_2))
        pdf = _INV_SQRT_2PI * torch.exp(x * x * -0.5)
        return cdf + x * pdf

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        # NOTE: the terms in torch's order (ATen's GeluKernel), for bit-identical results.
        return (opmath(grad) * GELU._derivative(opmath(x), ctx.approximate)).to(grad.dtype), None

    @staticmethod
    def jvp(ctx: Any, tx: Tensor, _: None) -> Tensor:
        (x,) = ctx.saved_tensors
        return (opmath(tx) * GELU._derivative(opmath(x), ctx.approximate)).to(tx.dtype)


@register(F.silu, unary_samples(kinks=()), unary_edges())
class SiLU(ManualFunction):
    """``x·σ(x)`` (sigmoid linear unit, "swish"); derivative ``σ(x)(1 + x(1 − σ(x)))``.

    Smooth and non-monotonic (minimum ≈ −0.278 at x ≈ −1.278); silu(−inf) is nan (−inf·0),
    as torch.

    >>> x = torch.tensor(0.0, requires_grad=True)
    >>> SiLU.apply(x).backward(); x.grad.item()
    0.5
    """

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        # NOTE: torch's op: its exp (SLEEF/libm) is not torch.exp (MKL): no composition's bits.
        return F.silu(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return SiLU._times_derivative(x, grad)

    @staticmethod
    def jvp(ctx: Any, tx: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return SiLU._times_derivative(x, tx)

    @staticmethod
    def _times_derivative(x: Tensor, t: Tensor) -> Tensor:
        """``t · σ(x)(1 + x(1 − σ(x)))`` in torch's rounding: ``(t·σ) · fma(x, 1 − σ, 1)``."""
        x32, t32 = opmath(x), opmath(t)
        # NOTE: torch.sigmoid is silu_backward's own σ: the same 1/(1 + e⁻ˣ), the same exp.
        s = torch.sigmoid(x32)
        one = s.new_ones(())
        # NOTE: 1 + x(1 − σ) as one fused multiply-add, as torch's compiled kernel rounds it.
        out = (t32 * s) * torch.addcmul(one, x32, one - s)
        return out if out.dtype == t.dtype else out.to(t.dtype)


def _softplus_edges(beta: float, threshold: float) -> SampleMaker:
    # The threshold itself: β·x == threshold is still on the log branch (strict >).
    return unary_edges(beta, threshold, values=(*EDGE_VALUES, threshold / beta, *NONFINITE_VALUES))


@register(
    F.softplus,
    _variants(unary_samples(1.0, 20.0, kinks=()), unary_samples(2.0, 5.0, kinks=(2.5,))),
    _variants(_softplus_edges(1.0, 20.0), _softplus_edges(2.0, 5.0)),
)
class Softplus(ManualFunction):
    """``log(1 + e^(βx)) / β``, and ``x`` itself where ``β·x > threshold`` (torch's rule).

    Derivative ``σ(βx)``, and 1 on the linear part. A smooth ReLU: never exactly zero
    gradient, so no unit dies. Stable for large |x|: e^(βx) is only evaluated below the
    threshold (βx ≤ 20 by default), and e^(βx) → 0 for x → −∞ gives 0, not nan.
    (The value jumps by log1p(e^(−threshold))/β at the threshold, as torch's does.)

    >>> x = torch.tensor([-1000.0, 0.0, 1000.0], requires_grad=True)
    >>> y = Softplus.apply(x, 1.0, 20.0); y.sum().backward()
    >>> y.tolist(), x.grad.tolist()
    ([0.0, 0.6931471824645996, 1000.0], [0.0, 0.5, 1.0])
    """

    # NOTE: torch's CUDA autocast computes softplus in float32 (CPU: input's dtype).
    autocast = {"cuda": FLOAT32}

    @staticmethod
    def forward(x: Tensor, beta: float, threshold: float) -> Tensor:
        # NOTE: the value by torch's softplus: its kernel's exp (SLEEF, libm) is not
        # torch.exp's, so no composition has its bits; one kernel, not six.
        return F.softplus(x, beta, threshold)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, float, float], output: Tensor) -> None:
        x, ctx.beta, ctx.threshold = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return Softplus._times_derivative(ctx, x, grad), None, None

    @staticmethod
    def jvp(ctx: Any, tx: Tensor, _beta: None, _threshold: None) -> Tensor:
        (x,) = ctx.saved_tensors
        return Softplus._times_derivative(ctx, x, tx)

    @staticmethod
    def _times_derivative(ctx: Any, x: Tensor, t: Tensor) -> Tensor:
        scaled = opmath(x) * ctx.beta
        linear = scaled > ctx.threshold
        z = torch.exp(torch.where(linear, 0.0, scaled))
        # NOTE: t·z/(z+1), torch's form of t·σ(βx) (same algebra), for bit-identical results.
        return torch.where(linear, t, (opmath(t) * z / (z + 1)).to(t.dtype))


# ---------------------------------------------------------------------------------------
# The perceptron's step: the activation gradient descent cannot train.
# ---------------------------------------------------------------------------------------


def _step_reference(x: Tensor) -> Tensor:
    # ones_like/zeros_like carry no graph: torch's answer for the gradient is "none", i.e. 0.
    return torch.where(x > 0, torch.ones_like(x), torch.zeros_like(x))


@register(_step_reference, unary_samples(), unary_edges())
class Step(ManualFunction):
    """The perceptron's step: 1 where x > 0, else 0 (nan included), in x's dtype.

    Derivative 0 everywhere except at the origin, where it does not exist; backward
    returns 0. That is why the step is never trained by gradient descent (the slides): the
    gradient tells a weight nothing about which way to move — every update
    ``W −= lr·∂L/∂W`` is zero — so networks use sigmoid, tanh, ReLU and the like, whose
    derivatives carry information. The graph stays connected (a weight before a step gets
    a zero gradient, not None), so the effect can be seen.

    >>> x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    >>> y = Step.apply(x); y.sum().backward(); y.tolist(), x.grad.tolist()
    ([0.0, 0.0, 1.0], [0.0, 0.0, 0.0])
    """

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return (x > 0).to(x.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        pass  # a zero derivative needs nothing

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        # NOTE: zeros, not grad·0: a nan or inf upstream gradient must still give 0.
        return torch.zeros_like(grad)

    @staticmethod
    def jvp(ctx: Any, tx: Tensor) -> Tensor:
        return torch.zeros_like(tx)


# ---------------------------------------------------------------------------------------
# Maxout: a max over affine pieces.
# ---------------------------------------------------------------------------------------


def _by_piece(z: Tensor, pieces: int) -> Tensor:
    """``(*, out·pieces)`` viewed as ``(*, out, pieces)``: row o·pieces + k is piece k of unit o."""
    # NOTE: reshape, not unflatten (no vmap batching rule), with explicit sizes (empty batches).
    return z.reshape(*z.shape[:-1], z.shape[-1] // pieces, pieces)


def _max_over_pieces(
    x: Tensor, weight: Tensor, bias: Tensor | None, pieces: int
) -> tuple[Tensor, Tensor]:
    """The max over each unit's pieces of ``x Wᵀ + b``, and the winning piece's index."""
    z = _by_piece(Linear.forward(x, weight, bias), pieces)
    # NOTE: argmax + gather, not max(dim): same values and first-index ties, but
    # torch 2.13's CPU max(dim) costs ~16 ms a call on a tiny tensor with 2 threads.
    winners = z.argmax(-1)
    return z.gather(-1, winners.unsqueeze(-1)).squeeze(-1), winners


def _maxout_reference(x: Tensor, weight: Tensor, bias: Tensor | None, pieces: int) -> Tensor:
    z = F.linear(x, weight, bias)
    return z.unflatten(-1, (weight.shape[0] // pieces, pieces)).max(-1).values


def _maxout_case(
    dtype: torch.dtype,
    device: torch.device,
    shape: tuple[int, ...],
    out: int,
    pieces: int,
    bias: bool,
    seed: int,
    contiguous: bool = True,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Inputs whose winning piece leads the runner-up by ≥ 0.05 everywhere.

    gradcheck's finite differences (eps = 1e-6) then never switch the winner, and float16
    rounding cannot either.
    """

    def values(shape: tuple[int, ...], seed: int, contiguous: bool = True) -> Tensor:
        return smooth_values(shape, dtype, device, low=-1, high=1, seed=seed, contiguous=contiguous)

    while True:
        x = values(shape, seed, contiguous)
        w = values((out * pieces, shape[-1]), seed + 1)
        b = values((out * pieces,), seed + 2) if bias else None
        z = F.linear(x.double(), w.double(), None if b is None else b.double())
        top2 = z.unflatten(-1, (out, pieces)).topk(2, dim=-1).values
        if top2.numel() == 0 or (top2[..., 0] - top2[..., 1]).min() >= 0.05:
            return leaf(x), leaf(w), None if b is None else leaf(b)
        seed += 1000


def _maxout_samples(dtype: torch.dtype, device: torch.device) -> list[Sample]:
    cases = [
        ("batch", (4, 3), 2, 2, True, True),
        ("one example", (3,), 2, 2, True, True),
        ("3-d input", (2, 3, 3), 2, 2, True, True),
        ("no bias", (4, 3), 2, 2, False, True),
        ("3 pieces", (4, 3), 2, 3, True, True),
        ("non-contiguous", (4, 3), 2, 2, True, False),
        ("empty batch", (0, 3), 2, 2, True, True),
    ]
    return [
        Sample((*_maxout_case(dtype, device, shape, out, k, bias, 10 * i, contig), k), label)
        for i, (label, shape, out, k, bias, contig) in enumerate(cases)
    ]


def _maxout_edges(dtype: torch.dtype, device: torch.device) -> list[Sample]:
    def t(rows: list[list[float]] | list[float]) -> Tensor:
        return leaf(torch.tensor(rows, dtype=dtype, device=device))

    inf, nan = math.inf, math.nan
    x = t([[0.0, 0.0, 0.0], [1.0, -1.0, 1000.0], [-20.0, 1e-300, 1.0], [-1000.0, 20.0, -0.0]])
    # Unit 0's pieces are equal rows (a tie everywhere); unit 1's differ.
    w = t([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [-1.0, 0.0, 1.0], [0.5, 0.5, 0.5]])
    b = t([0.5, 0.5, 0.0, 1.0])
    extremes = t([[inf, 1.0, 0.0], [-inf, 0.0, 1.0], [nan, 1.0, 1.0], [1.0, 1.0, 1.0]])
    return [
        Sample((x, w, b, 2), "ties and extremes"),
        Sample((x.detach().clone().requires_grad_(), w.detach().clone(), None, 2), "no bias"),
        Sample((extremes, w.detach().clone().requires_grad_(), b.detach().clone(), 2), "inf, nan"),
    ]


@register(_maxout_reference, _maxout_samples, _maxout_edges)
class Maxout(ManualFunction):
    """``max_k (w_kᵀx + b_k)`` over ``pieces`` affine maps per output unit.

    ``z = x Wᵀ + b`` viewed as ``(*, out, pieces)`` — row ``o·pieces + k`` of W is piece k
    of unit o — and the output is its max over pieces (``forward`` also returns the winning
    piece's index, an internal output for backward). Backward: max routes the upstream
    gradient to the winning piece (ties → the index ``torch.max(dim)`` returns, the first),
    then the affine gate's backward ``dx = dz W``, ``dW = dzᵀx``, ``db = Σ dz``.
    Generalises ReLU (pieces (w, 0)) and leaky ReLU (pieces (w, 0.01w)); never saturates.

    Shapes: ``input (*, in)``, ``weight (out·pieces, in)``, ``bias (out·pieces)`` or None
    → ``(*, out)``.

    >>> x = torch.tensor([[1.0, 2.0]])
    >>> w = torch.tensor([[1.0, 1.0], [0.0, 0.0]], requires_grad=True)  # ReLU(x₀ + x₁)
    >>> Maxout.apply(x, w, None, 2).sum().backward(); w.grad.tolist()
    [[1.0, 2.0], [0.0, 0.0]]
    """

    # NOTE: a matmul, so it runs in the autocast dtype, as torch's linear would.
    autocast = LOWER
    internal_outputs = True  # forward returns (values, winners); apply returns the values

    @staticmethod
    def forward(
        input: Tensor, weight: Tensor, bias: Tensor | None, pieces: int
    ) -> tuple[Tensor, Tensor]:
        return _max_over_pieces(input, weight, bias, pieces)

    @staticmethod
    def setup_context(
        ctx: Any, inputs: tuple[Tensor, Tensor, Tensor | None, int], output: tuple[Tensor, Tensor]
    ) -> None:
        x, weight, _, ctx.pieces = inputs
        need_x, need_w, _, _ = ctx.needs_input_grad
        # NOTE: the winners are an output (an index, not differentiable), so backward and
        # jvp route through them without computing the affine map a second time.
        winners = output[1]
        ctx.mark_non_differentiable(winners)
        # The winners, plus only what the affine backward will read: W for dx, x for dW.
        ctx.save_for_backward(x if need_w else None, weight if need_x else None, winners)
        ctx.save_for_forward(x, weight, winners)
        ctx.set_materialize_grads(False)  # the index's gradient is always None: make none

    @staticmethod
    def backward(
        ctx: Any, grad: Tensor | None, _grad_winners: None = None
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None]:
        # (torch.func's grad transforms pass no gradient at all for the index output.)
        if grad is None:
            return None, None, None, None
        x, weight, winners = ctx.saved_tensors
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        # Max routes: the winner gets the upstream gradient, the other pieces 0.
        won = winners.unsqueeze(-1) == torch.arange(ctx.pieces, device=winners.device)
        grad_z = torch.where(won, grad.unsqueeze(-1), 0.0)
        grad_z = grad_z.reshape(*grad_z.shape[:-2], grad_z.shape[-2] * ctx.pieces)
        grad_x = grad_z.matmul(weight) if need_x else None
        grad_w = grad_b = None
        if need_w or need_b:
            rows = grad_z.reshape(-1, grad_z.shape[-1])  # every example is a branch of W and b
            if need_w:
                grad_w = rows.t().mm(x.reshape(-1, x.shape[-1]))
            if need_b:
                grad_b = rows.sum(0)
        return grad_x, grad_w, grad_b, None

    @staticmethod
    def jvp(
        ctx: Any, tx: Tensor | None, tw: Tensor | None, tb: Tensor | None, _: None
    ) -> tuple[Tensor, None]:
        x, weight, winners = ctx.saved_tensors
        tz = tangent(tx, x).matmul(weight.t())
        if tw is not None:
            tz = tz + x.matmul(tw.t())
        if tb is not None:
            tz = tz + tb
        return _by_piece(tz, ctx.pieces).gather(-1, winners.unsqueeze(-1)).squeeze(-1), None
