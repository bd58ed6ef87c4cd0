"""The slides' losses (section 4) with their gradients by hand, and the reductions.

Every loss takes ``reduction`` ('mean', 'sum' or 'none') and reduces inside the Function:
'sum' is an add gate over the per-example losses (it distributes the upstream gradient
unchanged), 'mean' is that sum followed by a scale gate 1/N, so backward hands every term
``grad / N``. The gradient of a loss is its local gradient × that upstream share.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from torchmanual.autograd.function import FLOAT32, ManualFunction, sum_to, tangent
from torchmanual.autograd.registry import (
    UNARY_SHAPES,
    Sample,
    SampleMaker,
    leaf,
    register,
    smooth_values,
)

REDUCTIONS = ("mean", "sum", "none")

# NOTE: torch clamps p(1 - p) at a *float* 1e-12 even for float64, i.e. at this value;
# using it makes BCE's gradient at p = 0 or 1 equal torch's to the last bit, not to 4e-9.
_BCE_EPS = 9.999999960041972e-13
# log p and log(1 - p) are clamped at -100, so p = 0 or 1 gives a finite loss (as torch).
_BCE_LOG_MIN = -100.0
# The x of xlogy(x, p) = x log p when only log p is wanted (see BinaryCrossEntropy): a 1
# of p's own dtype, so the result keeps it (a 0-d p too) and no cast is run.
_ONES = {
    dt: torch.tensor(1, dtype=dt)
    for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


# An ignore_index for F.nll_loss that no class index can equal.
_NO_CLASS = -(2**63)


def _reduction_is_valid(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def _broadcast_numel(a: Tensor, b: Tensor) -> int:
    """The number of per-element losses: the elements of a and b broadcast together."""
    # NOTE: equal shapes (what functional passes) skip torch.broadcast_shapes' Python work.
    return a.numel() if a.shape == b.shape else math.prod(torch.broadcast_shapes(a.shape, b.shape))


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    """The per-example losses summed ('sum'), averaged ('mean') or kept ('none')."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")


def _reduce_tangent(t: Tensor, reduction: str, n: int) -> Tensor:
    """``_reduce`` for a jvp: the per-example tangents reduced as the losses were.

    An empty 'mean' has no input directions at all, so its jvp is 0 (an empty Jacobian
    times a tangent), not the nan of a mean over nothing.
    """
    return t.sum() if reduction == "mean" and n == 0 else _reduce(t, reduction)


def _upstream(grad: Tensor, reduction: str, n: int, per_row: bool = False) -> Tensor:
    """The gradient reaching each per-example loss: ``grad / N`` for 'mean', else ``grad``.

    ``per_row``: the loss of a row of class scores, so a 'none' gradient ``(N,)`` gets a
    trailing axis to broadcast over the classes.
    """
    if reduction == "mean":
        # NOTE: an empty batch has no terms to receive grad / 0; skipping the division
        # keeps double backward free of 0/0 = nan (0 · inf) for the upstream gradient.
        return grad / n if n else grad
    return grad.unsqueeze(-1) if per_row and reduction == "none" else grad


def _mean_of(grad: Tensor, reduction: str, n: int, negate: bool = False) -> Tensor:
    """A full gradient divided by N for 'mean' (torch's order: its losses divide last).

    ``negate``: the gradient's sign flipped too, folded into the division for 'mean'
    (``-(a / N)`` is ``a / -N`` to the bit).
    """
    # NOTE: an empty batch has no terms to divide (as _upstream).
    if reduction == "mean" and n:
        return grad / (-n if negate else n)
    return -grad if negate else grad


def _class_mask(scores: Tensor, target: Tensor) -> Tensor:
    """Boolean one-hot of the target classes, shaped like ``scores``."""
    classes = torch.arange(scores.shape[-1], device=scores.device)
    # NOTE: a comparison, not F.one_hot: a bool mask for torch.where, and vmap-safe.
    return classes == target.unsqueeze(-1)


# ---------------------------------------------------------------------------------------
# Sample makers
# ---------------------------------------------------------------------------------------

TargetMaker = Callable[[tuple[int, ...], torch.dtype, torch.device, int, bool], Tensor]


def _real_targets(low: float, high: float) -> TargetMaker:
    def make(shape, dtype, device, seed, contiguous):
        return smooth_values(
            shape, dtype, device, low=low, high=high, seed=seed, contiguous=contiguous
        )

    return make


def _sign_targets(shape, dtype, device, seed, contiguous) -> Tensor:
    u = smooth_values(shape, dtype, device, low=-1, high=1, seed=seed, contiguous=contiguous)
    return torch.where(u >= 0, 1.0, -1.0).to(dtype)


def _binary_targets(shape, dtype, device, seed, contiguous) -> Tensor:
    return _real_targets(0.0, 1.0)(shape, dtype, device, seed, contiguous).round()


def _elementwise_samples(
    target: TargetMaker,
    *,
    target_grad: bool,
    low: float = -3.0,
    high: float = 3.0,
    kinks: tuple[float, ...] = (),
    hard_targets: bool = False,
) -> SampleMaker:
    """(input, target, reduction) over every shape of ``UNARY_SHAPES`` × every reduction.

    ``hard_targets`` adds a (3, 4) sample per reduction whose targets are exactly 0 or 1.
    """

    def make(dtype: torch.dtype, device: torch.device) -> list[Sample]:
        samples = []
        for i, (label, shape, contiguous) in enumerate(UNARY_SHAPES):
            for reduction in REDUCTIONS:
                x = smooth_values(
                    shape,
                    dtype,
                    device,
                    low=low,
                    high=high,
                    kinks=kinks,
                    seed=i,
                    contiguous=contiguous,
                )
                y = target(shape, dtype, device, 50 + i, contiguous)
                samples.append(
                    Sample((leaf(x), leaf(y, target_grad), reduction), f"{label}, {reduction}")
                )
        if hard_targets:
            for reduction in REDUCTIONS:
                x = smooth_values((3, 4), dtype, device, low=low, high=high, seed=90)
                y = _binary_targets((3, 4), dtype, device, 91, True)
                samples.append(
                    Sample((leaf(x), leaf(y, target_grad), reduction), f"0/1 targets, {reduction}")
                )
        return samples

    return make


def _elementwise_edges(
    inputs: tuple[float, ...], targets: tuple[float, ...], *, target_grad: bool
) -> SampleMaker:
    """Every (input, target) pair of the given values, for every reduction."""

    def make(dtype: torch.dtype, device: torch.device) -> list[Sample]:
        x = torch.tensor(inputs, dtype=dtype, device=device)
        y = torch.tensor(targets, dtype=dtype, device=device)
        x, y = x[:, None].expand(-1, len(y)).clone(), y[None, :].expand(len(x), -1).clone()
        return [Sample((leaf(x), leaf(y, target_grad), r), f"edges, {r}") for r in REDUCTIONS]

    return make


CLASS_SHAPES: tuple[tuple[str, int | None, int, bool], ...] = (
    ("one example", None, 7, True),  # scores (C,), target 0-d
    ("batch", 5, 7, True),
    ("non-contiguous", 5, 7, False),
    ("empty batch", 0, 7, True),
)


def _class_samples(*, svm_margin: float | None = None, empty: bool = True) -> SampleMaker:
    """(scores, class indices[, margin], reduction) over ``CLASS_SHAPES`` × reductions.

    With ``svm_margin``, every margin term ``s_j - s_y + margin`` is kept at least 0.1
    from its kink (0.05 plus room for bfloat16 rounding).
    """

    def make(dtype: torch.dtype, device: torch.device) -> list[Sample]:
        samples = []
        for i, (label, n, c, contiguous) in enumerate(CLASS_SHAPES):
            if n == 0 and not empty:
                continue
            shape = (c,) if n is None else (n, c)
            scores = smooth_values(
                shape, torch.float64, torch.device("cpu"), seed=10 + i, contiguous=contiguous
            )
            gen = torch.Generator().manual_seed(20 + i)
            target = torch.randint(c, () if n is None else (n,), generator=gen)
            if svm_margin is not None:
                _separate_margins(scores, target, svm_margin)
            scores, target = scores.to(device=device, dtype=dtype), target.to(device)
            extra = () if svm_margin is None else (svm_margin,)
            for reduction in REDUCTIONS:
                args = (leaf(scores.clone()), leaf(target), *extra, reduction)
                samples.append(Sample(args, f"{label}, {reduction}"))
        return samples

    return make


def _separate_margins(scores: Tensor, target: Tensor, margin: float) -> None:
    """Shift (in place, strides kept) each s_j whose margin term is within 0.1 of 0."""
    while True:
        z = margin - scores.gather(-1, target.unsqueeze(-1)) + scores
        near = (z.abs() < 0.1) & ~_class_mask(scores, target)
        if not near.any():
            return
        scores.add_(torch.where(near, 0.25, 0.0))


def _class_edges(rows: list[list[float]], target: list[int], *extra: Any) -> SampleMaker:
    def make(dtype: torch.dtype, device: torch.device) -> list[Sample]:
        x = torch.tensor(rows, dtype=dtype, device=device)
        t = torch.tensor(target, device=device)
        return [Sample((leaf(x), leaf(t), *extra, r), f"edges, {r}") for r in REDUCTIONS]

    return make


def _concat(*makers: SampleMaker) -> SampleMaker:
    def make(dtype: torch.dtype, device: torch.device) -> list[Sample]:
        return [s for maker in makers for s in maker(dtype, device)]

    return make


INF, NAN = math.inf, math.nan


# ---------------------------------------------------------------------------------------
# Squared error
# ---------------------------------------------------------------------------------------


def _mse_reference(input: Tensor, target: Tensor, reduction: str) -> Tensor:
    return F.mse_loss(input, target, reduction=reduction)


@register(
    _mse_reference,
    _elementwise_samples(_real_targets(-3.0, 3.0), target_grad=True),
    _elementwise_edges(
        (0.0, -0.0, 1e-300, 1.0, -1000.0, 1e200, INF, NAN),
        (0.0, 1.0, -1000.0, INF, -INF, NAN),
        target_grad=True,
    ),
)
class MSE(ManualFunction):
    """Squared error ``L = (ŷ - y)²``; 'mean' is the slides' regression cost ``1/N Σ (ŷ - y)²``.

    ``∂L/∂ŷ = 2(ŷ - y)`` and ``∂L/∂y = -2(ŷ - y)`` (times ``1/N`` for 'mean'). The slides'
    numpy loop writes the same gradient: ``grad_y_pred = 2.0 * (y_pred - y)``.

    Shapes: ``input`` and ``target`` alike (broadcast gradients are summed back); output
    0-d for 'mean'/'sum', the input's shape for 'none'.

    >>> y_hat = torch.tensor([1.0, 3.0], requires_grad=True)
    >>> loss = MSE.apply(y_hat, torch.tensor([0.0, 0.0]), "mean"); loss.item()
    5.0
    >>> loss.backward(); y_hat.grad.tolist()
    [1.0, 3.0]
    """

    # NOTE: losses in float32, as torch's autocast computes its own.
    autocast = FLOAT32

    @staticmethod
    def forward(input: Tensor, target: Tensor, reduction: str) -> Tensor:
        diff = input - target
        return _reduce(diff * diff, reduction)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor, str], output: Tensor) -> None:
        input, target, ctx.reduction = inputs
        ctx.n = _broadcast_numel(input, target)
        ctx.save_for_backward(input, target)
        ctx.save_for_forward(input, target)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        x, y = ctx.saved_tensors
        need_x, need_y, _ = ctx.needs_input_grad
        # NOTE: torch's order, (ŷ − y)·(2/N)·g with 2/N one scalar: the same bits as torch's
        # mse_loss backward, in three kernels. (An empty batch has no terms to divide.)
        norm = 2 / ctx.n if ctx.reduction == "mean" and ctx.n else 2
        g = (x - y) * norm * grad
        return (
            sum_to(g, x.shape) if need_x else None,
            sum_to(-g, y.shape) if need_y else None,
            None,
        )

    @staticmethod
    def jvp(ctx: Any, tx: Tensor | None, ty: Tensor | None, _reduction: None) -> Tensor:
        x, y = ctx.saved_tensors
        if ty is None:
            t = tx
        elif tx is None:
            t = -ty
        else:
            t = tx - ty
        return _reduce_tangent(2 * (x - y) * t, ctx.reduction, ctx.n)


# ---------------------------------------------------------------------------------------
# Hinge and logistic losses (labels y ∈ {-1, 1})
# ---------------------------------------------------------------------------------------


def _hinge_reference(scores: Tensor, target: Tensor, reduction: str) -> Tensor:
    return _reduce(torch.relu(1 - target * scores), reduction)


@register(
    _hinge_reference,
    # NOTE: the margin 1 - y f is 0 where f = y; keep f 0.05 from ±1.
    _elementwise_samples(_sign_targets, target_grad=False, kinks=(-1.0, 1.0)),
    _elementwise_edges(
        (1.0, -1.0, 0.0, 0.5, 2.0, 1000.0, -1000.0, INF, -INF, NAN),
        (1.0, -1.0),
        target_grad=False,
    ),
)
class Hinge(ManualFunction):
    """The hinge loss ``L = max(0, 1 - y f)`` for labels ``y ∈ {-1, 1}``.

    ``∂L/∂f = -y`` where the margin ``1 - y f > 0``, else 0: zero beyond the margin and
    zero at the kink ``y f = 1`` exactly (ReLU'(0) = 0, torch's convention; a nan margin
    passes the gradient, as torch's relu does). No gradient for the labels.

    Shapes: ``scores`` and ``target`` alike; output 0-d, or the scores' shape for 'none'.

    >>> f = torch.tensor([0.5, 2.0, 1.0], requires_grad=True)
    >>> loss = Hinge.apply(f, torch.tensor([1.0, 1.0, 1.0]), "none"); loss.tolist()
    [0.5, 0.0, 0.0]
    >>> loss.sum().backward(); f.grad.tolist()
    [-1.0, 0.0, 0.0]
    """

    # NOTE: losses in float32, as torch's autocast computes its own.
    autocast = FLOAT32

    @staticmethod
    def forward(scores: Tensor, target: Tensor, reduction: str) -> Tensor:
        return _reduce(torch.relu(1 - target * scores), reduction)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor, str], output: Tensor) -> None:
        scores, target, ctx.reduction = inputs
        ctx.n = _broadcast_numel(scores, target)
        ctx.save_for_backward(scores, target)
        ctx.save_for_forward(scores, target)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None
        f, y = ctx.saved_tensors
        g = _upstream(grad, ctx.reduction, ctx.n)
        # NOTE: `margin <= 0` (not `> 0`) so a nan margin routes the gradient, as torch.
        return sum_to(torch.where(1 - y * f <= 0, 0.0, -y * g), f.shape), None, None

    @staticmethod
    def jvp(ctx: Any, tf: Tensor | None, _target: None, _reduction: None) -> Tensor:
        f, y = ctx.saved_tensors
        tf = tangent(tf, f)
        return _reduce_tangent(torch.where(1 - y * f <= 0, 0.0, -y * tf), ctx.reduction, ctx.n)


def _logistic_reference(scores: Tensor, target: Tensor, reduction: str) -> Tensor:
    # NOTE: -logsigmoid(y f), not F.soft_margin_loss: the same formula, but torch's
    # soft_margin_loss is log1p(exp(-y f)), inf at y f = -1000 (true value 1000) with a nan
    # gradient; tests/test_losses.py compares with soft_margin_loss where it is finite.
    return _reduce(-F.logsigmoid(target * scores), reduction)


@register(
    _logistic_reference,
    _elementwise_samples(_sign_targets, target_grad=False),
    _elementwise_edges(
        (0.0, 1.0, -20.0, 30.0, -30.0, 1000.0, -1000.0, 1e300, INF, -INF, NAN),
        (1.0, -1.0),
        target_grad=False,
    ),
)
class Logistic(ManualFunction):
    """The logistic loss ``L = log(1 + exp(-y f))`` for labels ``y ∈ {-1, 1}``.

    Computed as the stable softplus ``max(m, 0) + log1p(exp(-|m|))`` with ``m = -y f``,
    so ``f = ±1000`` gives 1000 or 0, never inf. ``∂L/∂f = -y σ(-y f)``. No gradient for
    the labels. Same formula as ``F.soft_margin_loss``, which overflows for ``y f < -710``.

    >>> f = torch.tensor([0.0, -1000.0], requires_grad=True)
    >>> loss = Logistic.apply(f, torch.tensor([1.0, 1.0]), "none"); loss.tolist()
    [0.6931471824645996, 1000.0]
    >>> loss.sum().backward(); f.grad.tolist()
    [-0.5, -1.0]
    """

    # NOTE: losses in float32, as torch's autocast computes its own.
    autocast = FLOAT32

    @staticmethod
    def forward(scores: Tensor, target: Tensor, reduction: str) -> Tensor:
        # NOTE: softplus(−yf) as −log σ(yf) by F.logsigmoid (stable: min(yf, 0) − log1p(e^−|yf|),
        # exp never sees a positive argument): torch's own loss bits, one kernel instead of six.
        return _reduce(-F.logsigmoid(target * scores), reduction)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor, str], output: Tensor) -> None:
        scores, target, ctx.reduction = inputs
        ctx.n = _broadcast_numel(scores, target)
        ctx.save_for_backward(scores, target)
        ctx.save_for_forward(scores, target)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None
        f, y = ctx.saved_tensors
        # NOTE: σ(-y f) is recomputed from the saved scores so double backward reaches f.
        local = -y * torch.sigmoid(-(y * f))
        return sum_to(local * _upstream(grad, ctx.reduction, ctx.n), f.shape), None, None

    @staticmethod
    def jvp(ctx: Any, tf: Tensor | None, _target: None, _reduction: None) -> Tensor:
        f, y = ctx.saved_tensors
        return _reduce_tangent(-y * torch.sigmoid(-(y * f)) * tangent(tf, f), ctx.reduction, ctx.n)


# ---------------------------------------------------------------------------------------
# Multiclass: SVM and softmax cross-entropy (class indices)
# ---------------------------------------------------------------------------------------


def _svm_reference(scores: Tensor, target: Tensor, margin: float, reduction: str) -> Tensor:
    if scores.dtype in (torch.float16, torch.bfloat16):
        # NOTE: torch's CPU multi_margin_loss has no half kernels; run it in float32.
        return _svm_reference(scores.float(), target, margin, reduction).to(scores.dtype)
    # torch divides each L_i by the class count C; the slides' loss does not.
    loss = F.multi_margin_loss(scores, target, margin=margin, reduction=reduction)
    return loss * scores.shape[-1]


def _svm_active(scores: Tensor, target: Tensor, margin: float) -> tuple[Tensor, Tensor]:
    """The masks of the j ≠ y_i whose margin term is positive, and of the targets y_i."""
    z = margin - scores.gather(-1, target.unsqueeze(-1)) + scores
    is_target = _class_mask(scores, target)
    # NOTE: strictly > 0: a term exactly at its kink gets 0, like torch's multi_margin_loss.
    return (z > 0) & ~is_target, is_target


def _svm_coefficients(scores: Tensor, target: Tensor, margin: float) -> Tensor:
    """``∂L_i/∂s_ij``: 1 for each j ≠ y_i with a positive margin term, -(their count) at y_i."""
    active, is_target = _svm_active(scores, target, margin)
    count = active.sum(-1, keepdim=True).to(scores.dtype)
    return torch.where(is_target, -count, active.to(scores.dtype))


@register(
    _svm_reference,
    # NOTE: no empty batch: torch's multi_margin_loss on (0, C) returns uninitialised
    # memory for 'mean' (ours gives nan, like every other mean of nothing; see test_losses).
    _class_samples(svm_margin=1.0, empty=False),
    _concat(
        # Ties: margin terms exactly 0 (kinks), equal scores, ±1000, one class only.
        _class_edges(
            [[1.5, 2.5, 0.5], [2.0, 2.0, 2.0], [1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.5]],
            [1, 0, 1, 1],
            1.0,
        ),
        _class_edges([[2.0, 2.0, 1.0], [0.0, 0.0, 0.0]], [0, 2], 0.0),
        _class_edges([[3.0], [-2.0]], [0, 0], 1.0),
    ),
)
class MulticlassSVM(ManualFunction):
    """The slides' multiclass SVM loss ``L_i = Σ_{j≠y_i} max(0, s_j - s_{y_i} + margin)``.

    Not divided by the class count C (torch's ``multi_margin_loss`` divides by C).
    ``∂L_i/∂s_j = 1`` for each j ≠ y_i whose margin term is positive, and
    ``∂L_i/∂s_{y_i} = -(number of such j)``; a term exactly at its kink counts 0, as torch.

    Shapes: ``scores (N, C)`` with ``target (N,)`` int64 class indices, or ``(C,)`` with a
    0-d target; output 0-d, or ``(N,)`` (0-d for one example) for 'none'.

    The CS231n example: cat scores [3.2, 5.1, -1.7] with label cat.

    >>> s = torch.tensor([3.2, 5.1, -1.7], dtype=torch.float64, requires_grad=True)
    >>> loss = MulticlassSVM.apply(s, torch.tensor(0), 1.0, "sum"); round(loss.item(), 10)
    2.9
    >>> loss.backward(); s.grad.tolist()
    [-1.0, 1.0, 0.0]
    """

    # NOTE: losses in float32, as torch's autocast computes its own.
    autocast = FLOAT32

    @staticmethod
    def forward(scores: Tensor, target: Tensor, margin: float, reduction: str) -> Tensor:
        # NOTE: (margin - s_y) + s_j, torch's order, so exact ties land on 0 alike.
        z = margin - scores.gather(-1, target.unsqueeze(-1)) + scores
        # NOTE: terms with z > 0 only, torch's test: a nan term counts 0 (as in torch, and as
        # backward's active set has it), where clamp_min(0) would make the loss nan.
        terms = torch.where(~_class_mask(scores, target) & (z > 0), z, 0.0)
        return _reduce(terms.sum(-1), reduction)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor, float, str], output: Tensor) -> None:
        scores, target, ctx.margin, ctx.reduction = inputs
        ctx.n = target.numel()
        ctx.save_for_backward(scores, target)
        ctx.save_for_forward(scores, target)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        scores, target = ctx.saved_tensors
        c = scores.shape[-1]
        active, _ = _svm_active(scores, target, ctx.margin)
        # NOTE: torch's rounding (its loss is ours / C, so the reference is it × C): each
        # active term gets 1/(NC) (1/C unless 'mean'), the target −1/(NC) − 1/(NC) − …
        # summed in order, then all × (g·C); a count times 1/N rounds differently.
        share = 1 / (ctx.n * c) if ctx.reduction == "mean" and ctx.n else 1 / c
        minus = active.to(scores.dtype) * -share
        # NOTE: scatter_add_ adds a row's −share one by one into y_i, as torch's loop does
        # (a sum would regroup them); in place on the fresh +share, so no copy is made.
        local = (-minus).scatter_add_(-1, target.unsqueeze(-1).expand_as(scores), minus)
        g = grad * c
        return local * (g.unsqueeze(-1) if ctx.reduction == "none" else g), None, None, None

    @staticmethod
    def jvp(ctx: Any, ts: Tensor | None, _target: None, _margin: None, _reduction: None) -> Tensor:
        scores, target = ctx.saved_tensors
        coefficients = _svm_coefficients(scores, target, ctx.margin)
        return _reduce_tangent((coefficients * tangent(ts, scores)).sum(-1), ctx.reduction, ctx.n)


def _log_softmax(x: Tensor) -> Tensor:
    """``log softmax(x)`` over the last axis: ``(x - max) - log Σ exp(x - max)``, torch's order.

    Subtracting the row max makes it stable (no exp of a positive number).
    """
    # NOTE: the max is detached: softmax ignores shifts, so its gradient path is pure cost.
    # NOTE: written out (not torch.log_softmax) so that a backward differentiated again
    # (double backward) uses only elementary ops whose derivatives are the slides' too.
    shifted = x - x.amax(-1, keepdim=True).detach()
    return shifted - torch.log(torch.exp(shifted).sum(-1, keepdim=True))


_CE_EDGE_ROWS = [
    [1000.0, -1000.0, 0.0],
    [-1000.0, 1000.0, 0.0],
    [1000.0, 1000.0, -1000.0],
    [2.0, 2.0, 2.0],
    [-INF, 0.0, 1.0],
    [30.0, 0.0, 0.0],
]


def _cross_entropy_reference(input: Tensor, target: Tensor, reduction: str) -> Tensor:
    return F.cross_entropy(input, target, reduction=reduction)


@register(
    _cross_entropy_reference,
    _class_samples(),
    _concat(
        # ±1000 spreads, a tie, a -inf score, a near-certain row; one class only.
        _class_edges(_CE_EDGE_ROWS, [1, 1, 0, 2, 2, 0]),
        _class_edges([[-1000.0], [1000.0]], [0, 0]),
    ),
)
class CrossEntropy(ManualFunction):
    """Softmax cross-entropy ``L_i = -log softmax(x_i)[y_i] = logsumexp(x_i) - x_{i,y_i}``.

    Stable: the log-sum-exp is taken after subtracting each row's max (torch's own order),
    so scores of ±1000 give finite losses. ``∂L_i/∂x_i = softmax(x_i) - onehot(y_i)``
    (× 1/N for 'mean'); an empty batch gives nan for 'mean', as torch.

    Shapes: ``input (N, C)`` with ``target (N,)`` int64 class indices, or ``(C,)`` with a
    0-d target; output 0-d, or ``(N,)`` (0-d for one example) for 'none'.

    >>> x = torch.zeros(2, 4, requires_grad=True)
    >>> loss = CrossEntropy.apply(x, torch.tensor([0, 3]), "mean"); round(loss.item(), 4)
    1.3863
    >>> loss.backward(); x.grad[0].tolist()
    [-0.375, 0.125, 0.125, 0.125]
    """

    # NOTE: losses in float32, as torch's autocast computes its own.
    autocast = FLOAT32

    @staticmethod
    def forward(input: Tensor, target: Tensor, reduction: str) -> Tensor:
        # NOTE: the value −log softmax(x)[y], reduced, in torch's two kernels (the same
        # stable formula as _log_softmax, row max first) instead of eleven small ops;
        # forward computes values only, so no torch derivative is involved. No index is
        # ignored (the int64 minimum cannot be a class), and any index outside 0..C-1
        # raises IndexError, so functional.cross_entropy needs no check of its own on CPU.
        _reduction_is_valid(reduction)
        return F.nll_loss(
            torch.log_softmax(input, -1), target, reduction=reduction, ignore_index=_NO_CLASS
        )

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor, str], output: Tensor) -> None:
        input, target, ctx.reduction = inputs
        ctx.n = target.numel()
        ctx.save_for_backward(input, target)
        ctx.save_for_forward(input, target)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None
        x, target = ctx.saved_tensors
        g = _upstream(grad, ctx.reduction, ctx.n, per_row=True)
        if torch.is_grad_enabled():
            # Double backward (create_graph): softmax recomputed from the saved input through
            # the hand-written log-softmax, so this backward is differentiable in x by hand.
            p = torch.exp(_log_softmax(x))
            local = torch.where(_class_mask(x, target), p - 1, p)
            return local * g, None, None
        # NOTE: first order (no graph is recorded): the same p − onehot in three kernels —
        # softmax, 1 subtracted in place at each target class, times the upstream share.
        local = torch.softmax(x, -1).scatter_(-1, target.unsqueeze(-1), -1.0, reduce="add")
        return local * g, None, None

    @staticmethod
    def jvp(ctx: Any, tx: Tensor | None, _target: None, _reduction: None) -> Tensor:
        x, target = ctx.saved_tensors
        p = torch.exp(_log_softmax(x))
        local = torch.where(_class_mask(x, target), p - 1, p)
        return _reduce_tangent((local * tangent(tx, x)).sum(-1), ctx.reduction, ctx.n)


# ---------------------------------------------------------------------------------------
# Binary cross-entropy: on probabilities, and on logits
# ---------------------------------------------------------------------------------------


def _bce_reference(input: Tensor, target: Tensor, reduction: str) -> Tensor:
    return F.binary_cross_entropy(input, target, reduction=reduction)


@register(
    _bce_reference,
    _elementwise_samples(
        _real_targets(0.0, 1.0), target_grad=True, low=0.05, high=0.95, hard_targets=True
    ),
    _elementwise_edges(
        (0.0, 1.0, 1e-50, 1e-10, 0.5, 1 - 1e-10), (0.0, 1.0, 0.5, 0.25), target_grad=True
    ),
)
class BinaryCrossEntropy(ManualFunction):
    """Binary cross-entropy on probabilities ``L = -[y log p + (1 - y) log(1 - p)]``.

    With torch's conventions exactly: each log is clamped at ≥ -100 (so p = 0 or 1 gives a
    finite loss, at most 100), ``∂L/∂p = (p - y) / max(p(1 - p), 1e-12)``, and the target
    gets ``∂L/∂y = log(1 - p) - log p`` (unclamped, as torch: ±inf at p = 0 or 1).

    The slides' K-sigmoid cost ``J(Θ) = -1/m Σ_i Σ_k [y_k log h_k + (1 - y_k) log(1 - h_k)]``
    is this loss over the m × K outputs: ``'sum' / m``, i.e. K × 'mean' (for K = 1, 'mean').
    Prefer BinaryCrossEntropyWithLogits on the pre-sigmoid values: stable, and δ = a - y.

    >>> p = torch.tensor([0.8, 0.0], requires_grad=True)
    >>> loss = BinaryCrossEntropy.apply(p, torch.tensor([1.0, 1.0]), "none"); loss.tolist()
    [0.2231435328722, 100.0]
    >>> loss.sum().backward(); [f"{g:.4g}" for g in p.grad.tolist()]
    ['-1.25', '-1e+12']
    """

    # NOTE: losses in float32, as torch's autocast computes its own.
    autocast = FLOAT32

    @staticmethod
    def forward(input: Tensor, target: Tensor, reduction: str) -> Tensor:
        # NOTE: log1p(-p), torch's choice: accurate for tiny p, where log(1 - p) is not.
        # NOTE: log as xlogy(1, ·): its kernel calls libm's scalar log like torch's BCE kernel
        # (torch.log's vectorised log differs in the last bit); a tensor 1 skips wrapping.
        one = _ONES.get(input.dtype, 1)
        log_1mp = torch.special.xlog1py(one, -input).clamp_min(_BCE_LOG_MIN)
        log_p = torch.xlogy(one, input).clamp_min(_BCE_LOG_MIN)
        return _reduce((target - 1) * log_1mp - target * log_p, reduction)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor, str], output: Tensor) -> None:
        input, target, ctx.reduction = inputs
        ctx.n = _broadcast_numel(input, target)
        ctx.save_for_backward(input, target)
        ctx.save_for_forward(input, target)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        p, y = ctx.saved_tensors
        need_p, need_y, _ = ctx.needs_input_grad
        # NOTE: torch's order, g·(p − y) / max(p(1 − p), ε), then / N for 'mean', and
        # ∂L/∂y as −logit(p) = −log(p / (1 − p)) (one kernel): torch's bits exactly.
        grad_p = grad_y = None
        if need_p:
            grad_p = grad * (p - y) / ((1 - p) * p).clamp_min(_BCE_EPS)
            grad_p = sum_to(_mean_of(grad_p, ctx.reduction, ctx.n), p.shape)
        if need_y:
            grad_y = _mean_of(torch.logit(p) * grad, ctx.reduction, ctx.n, negate=True)
            grad_y = sum_to(grad_y, y.shape)
        return grad_p, grad_y, None

    @staticmethod
    def jvp(ctx: Any, tp: Tensor | None, ty: Tensor | None, _reduction: None) -> Tensor:
        p, y = ctx.saved_tensors
        # NOTE: a missing tangent adds nothing; zeros would make inf·0 = nan at p = 0 or 1.
        out = None if tp is None else tp * (p - y) / ((1 - p) * p).clamp_min(_BCE_EPS)
        if ty is not None:
            dy = torch.logit(p) * -ty
            out = dy if out is None else out + dy
        return _reduce_tangent(out, ctx.reduction, ctx.n)


def _bce_with_logits_reference(input: Tensor, target: Tensor, reduction: str) -> Tensor:
    return F.binary_cross_entropy_with_logits(input, target, reduction=reduction)


@register(
    _bce_with_logits_reference,
    _elementwise_samples(_real_targets(0.0, 1.0), target_grad=True, hard_targets=True),
    _elementwise_edges(
        (0.0, 1.0, -20.0, 40.0, 1000.0, -1000.0, INF, -INF, NAN),
        (0.0, 1.0, 0.3),
        target_grad=True,
    ),
)
class BinaryCrossEntropyWithLogits(ManualFunction):
    """Binary cross-entropy on logits ``z``: ``L = -[y log σ(z) + (1 - y) log(1 - σ(z))]``.

    Computed as ``(1 - y) z + softplus(-z)``, stable for any ``z`` (±1000 gives 1000 or 0).
    ``∂L/∂z = σ(z) - y``: the slides' output error ``δ(L) = a(L) - y`` (section 8), the
    sigmoid's derivative cancelled by the cross-entropy's. ``∂L/∂y = -z``.

    The slides' K-sigmoid cost ``J(Θ)`` on the m × K pre-sigmoid outputs is this loss's
    ``'sum' / m``, i.e. K × 'mean' (for K = 1, 'mean').

    >>> z = torch.tensor([0.0, 2.0], requires_grad=True)
    >>> loss = BinaryCrossEntropyWithLogits.apply(z, torch.tensor([1.0, 0.0]), "sum")
    >>> loss.backward(); z.grad.tolist() == (torch.sigmoid(z) - torch.tensor([1.0, 0.0])).tolist()
    True
    """

    # NOTE: losses in float32, as torch's autocast computes its own.
    autocast = FLOAT32

    @staticmethod
    def forward(input: Tensor, target: Tensor, reduction: str) -> Tensor:
        # NOTE: softplus(-z) as -log σ(z) by F.logsigmoid (stable: min(z, 0) - log1p(e^-|z|)),
        # torch's own form: the same bits as torch's loss, in one kernel instead of seven.
        return _reduce((1 - target) * input - F.logsigmoid(input), reduction)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor, str], output: Tensor) -> None:
        input, target, ctx.reduction = inputs
        ctx.n = _broadcast_numel(input, target)
        ctx.save_for_backward(input, target)
        ctx.save_for_forward(input, target)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        z, y = ctx.saved_tensors
        need_z, need_y, _ = ctx.needs_input_grad
        # NOTE: a = σ(z) recomputed from the saved z, so double backward reaches z.
        # NOTE: torch's order, (a - y)·g and -z·g, then / N for 'mean': torch's bits exactly.
        grad_z = grad_y = None
        if need_z:
            grad_z = sum_to(_mean_of((torch.sigmoid(z) - y) * grad, ctx.reduction, ctx.n), z.shape)
        if need_y:
            grad_y = sum_to(_mean_of(z * grad, ctx.reduction, ctx.n, negate=True), y.shape)
        return grad_z, grad_y, None

    @staticmethod
    def jvp(ctx: Any, tz: Tensor | None, ty: Tensor | None, _reduction: None) -> Tensor:
        z, y = ctx.saved_tensors
        out = None if tz is None else (torch.sigmoid(z) - y) * tz
        if ty is not None:
            out = -z * ty if out is None else out - z * ty
        return _reduce_tangent(out, ctx.reduction, ctx.n)
