"""The losses beyond the registry suite: the slides' facts with numbers, reductions, edges.

``tests/test_functions.py`` already puts every loss under gradcheck, gradgradcheck, forward
AD, vmap and the comparison with torch; here are the facts the slides state about them.
"""

from __future__ import annotations

import doctest

import pytest
import torch
import torch.nn.functional as F

import torchmanual.autograd.losses as losses
from torchmanual.autograd import REGISTRY
from torchmanual.autograd.losses import (
    MSE,
    BinaryCrossEntropy,
    BinaryCrossEntropyWithLogits,
    CrossEntropy,
    Hinge,
    Logistic,
    MulticlassSVM,
)

f64 = torch.float64


def t(values, dtype=f64, requires_grad=False):
    return torch.tensor(values, dtype=dtype, requires_grad=requires_grad)


def test_docstring_examples():
    result = doctest.testmod(losses, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_every_loss_is_registered():
    names = {
        "MSE",
        "Hinge",
        "Logistic",
        "MulticlassSVM",
        "CrossEntropy",
        "BinaryCrossEntropy",
        "BinaryCrossEntropyWithLogits",
    }
    assert names <= set(REGISTRY)
    for name in names:
        assert REGISTRY[name].edge_samples is not None, f"{name} needs edge samples"


# ---------------------------------------------------------------------------------------
# The slides' facts, with numbers
# ---------------------------------------------------------------------------------------

# CS231n's three images (rows) scored for the classes cat, car, frog; labels cat, car, frog.
CS231N_SCORES = [[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]]
CS231N_LABELS = [0, 1, 2]


def test_multiclass_svm_cs231n_example():
    s = t(CS231N_SCORES, requires_grad=True)
    y = torch.tensor(CS231N_LABELS)
    per_example = MulticlassSVM.apply(s, y, 1.0, "none")
    torch.testing.assert_close(per_example, t([2.9, 0.0, 12.9]), rtol=0, atol=1e-12)
    mean = MulticlassSVM.apply(s, y, 1.0, "mean")
    assert round(mean.item(), 2) == 5.27
    mean.backward()
    # cat: only car violates the margin; car: none; frog: both cat and car do.
    expected = t([[-1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, -2.0]]) / 3
    torch.testing.assert_close(s.grad, expected, rtol=0, atol=0)


@pytest.mark.parametrize(("row", "loss"), [(0, 2.9), (1, 0.0), (2, 12.9)])
def test_multiclass_svm_one_example_at_a_time(row, loss):
    s = t(CS231N_SCORES[row])
    out = MulticlassSVM.apply(s, torch.tensor(CS231N_LABELS[row]), 1.0, "none")
    assert out.shape == ()
    assert out.item() == pytest.approx(loss, abs=1e-12)


def test_multiclass_svm_is_torch_multi_margin_times_class_count():
    s = t(CS231N_SCORES)
    y = torch.tensor(CS231N_LABELS)
    for margin in (1.0, 0.5, 3.0):
        ours = MulticlassSVM.apply(s, y, margin, "none")
        torch.testing.assert_close(
            ours, 3 * F.multi_margin_loss(s, y, margin=margin, reduction="none")
        )


def test_multiclass_svm_kink_counts_zero():
    # s_cat - s_car + 1 = 0 exactly: on the kink, so no gradient from that term (as torch).
    s = t([1.5, 2.5, 0.5], requires_grad=True)
    loss = MulticlassSVM.apply(s, torch.tensor(1), 1.0, "sum")
    loss.backward()
    assert loss.item() == 0.0
    assert s.grad.tolist() == [0.0, 0.0, 0.0]


def test_bce_with_logits_gradient_is_delta_a_minus_y():
    """Slides section 8: with sigmoid outputs and the cross-entropy cost, δ(L) = a(L) − y."""
    z = t([0.0, 2.0, -1.0, 4.5], requires_grad=True)
    y = t([1.0, 0.0, 1.0, 1.0])
    BinaryCrossEntropyWithLogits.apply(z, y, "sum").backward()
    a = torch.sigmoid(z.detach())
    assert torch.equal(z.grad, a - y)
    assert z.grad[0].item() == -0.5  # σ(0) − 1


def test_sigmoid_then_bce_gives_the_same_delta():
    """The sigmoid's σ(1 − σ) cancels BCE's 1/(p(1 − p)): δ = a − y either way."""
    z = t([0.3, -1.2, 2.0], requires_grad=True)
    y = t([1.0, 0.0, 0.25])
    BinaryCrossEntropy.apply(torch.sigmoid(z), y, "sum").backward()
    torch.testing.assert_close(z.grad, torch.sigmoid(z.detach()) - y, rtol=1e-12, atol=1e-15)


def test_bce_is_the_slides_k_sigmoid_cost():
    """J(Θ) = −1/m Σ_i Σ_k [y log h + (1 − y) log(1 − h)] = 'sum' / m = K · 'mean'."""
    gen = torch.Generator().manual_seed(0)
    m, k = 6, 4
    logits = torch.randn(m, k, generator=gen, dtype=f64)
    h = torch.sigmoid(logits)
    y = (torch.rand(m, k, generator=gen, dtype=f64) > 0.5).to(f64)
    j = -(y * torch.log(h) + (1 - y) * torch.log(1 - h)).sum() / m
    for fn, x in ((BinaryCrossEntropy, h), (BinaryCrossEntropyWithLogits, logits)):
        torch.testing.assert_close(fn.apply(x, y, "sum") / m, j, rtol=1e-12, atol=0)
        torch.testing.assert_close(k * fn.apply(x, y, "mean"), j, rtol=1e-12, atol=0)


def test_mse_gradient_is_the_slides_numpy_loop():
    """Slides section 2: loss = square(y_pred − y).sum(); grad_y_pred = 2.0 * (y_pred − y)."""
    gen = torch.Generator().manual_seed(0)
    y_pred = torch.randn(4, 3, generator=gen, dtype=f64, requires_grad=True)
    y = torch.randn(4, 3, generator=gen, dtype=f64)
    loss = MSE.apply(y_pred, y, "sum")
    torch.testing.assert_close(loss, ((y_pred.detach() - y) ** 2).sum())
    loss.backward()
    assert torch.equal(y_pred.grad, 2.0 * (y_pred.detach() - y))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_gradients_are_torchs_to_the_bit(dtype, reduction):
    """(ŷ − y)·(2/N)·g in torch's order: both gradients equal torch's bit for bit."""
    gen = torch.Generator().manual_seed(5)
    y_hat = torch.randn(37, 3, generator=gen, dtype=dtype).requires_grad_()
    y = torch.randn(37, 3, generator=gen, dtype=dtype).requires_grad_()
    shape = (37, 3) if reduction == "none" else ()
    upstream = torch.rand(shape, generator=gen, dtype=dtype) + 0.5
    ours = torch.autograd.grad(MSE.apply(y_hat, y, reduction), (y_hat, y), upstream)
    theirs = torch.autograd.grad(F.mse_loss(y_hat, y, reduction=reduction), (y_hat, y), upstream)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _assert_torchs_bits(ours, theirs, inputs, gen):
    """Loss and every input gradient (random upstream) equal torch's own bit for bit."""
    ours_in = [x.detach().clone().requires_grad_(x.requires_grad) for x in inputs]
    out, expected = ours(*ours_in), theirs(*inputs)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    upstream = torch.rand(expected.shape, generator=gen, dtype=expected.dtype) + 0.5
    wrt = [x for x in inputs if x.requires_grad]
    ours_wrt = [x for x in ours_in if x.requires_grad]
    grads = torch.autograd.grad(out, ours_wrt, upstream)
    for a, b in zip(grads, torch.autograd.grad(expected, wrt, upstream), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_loss_and_gradients_are_torchs_to_the_bit(dtype, reduction):
    """Scalar libm logs, g·(p − y)/max(p(1 − p), ε) then / N, and −logit(p): torch's bits."""
    gen = torch.Generator().manual_seed(6)
    p = (0.02 + 0.96 * torch.rand(37, 3, generator=gen, dtype=dtype)).requires_grad_()
    y = torch.rand(37, 3, generator=gen, dtype=dtype).requires_grad_()
    _assert_torchs_bits(
        lambda p, y: BinaryCrossEntropy.apply(p, y, reduction),
        lambda p, y: F.binary_cross_entropy(p, y, reduction=reduction),
        (p, y),
        gen,
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_loss_and_gradients_are_torchs_to_the_bit(dtype, reduction):
    """(1 − y) z − log σ(z), (σ(z) − y)·g and −z·g, then / N: torch's bits."""
    gen = torch.Generator().manual_seed(7)
    z = (4 * torch.randn(100, 10, generator=gen, dtype=dtype)).requires_grad_()
    y = torch.rand(100, 10, generator=gen, dtype=dtype).requires_grad_()
    _assert_torchs_bits(
        lambda z, y: BinaryCrossEntropyWithLogits.apply(z, y, reduction),
        lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction=reduction),
        (z, y),
        gen,
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_svm_gradients_are_torchs_to_the_bit(dtype, reduction):
    """1/(NC) per active term, their running sum at y_i, × (g·C): multi_margin_loss × C's bits."""
    gen = torch.Generator().manual_seed(11)
    s = (0.5 * torch.randn(37, 7, generator=gen, dtype=dtype)).requires_grad_()
    y = torch.randint(7, (37,), generator=gen)
    shape = (37,) if reduction == "none" else ()
    upstream = torch.rand(shape, generator=gen, dtype=dtype) + 0.5
    (ours,) = torch.autograd.grad(MulticlassSVM.apply(s, y, 1.0, reduction), s, upstream)
    theirs = 7 * F.multi_margin_loss(s, y, margin=1.0, reduction=reduction)
    torch.testing.assert_close(ours, torch.autograd.grad(theirs, s, upstream)[0], rtol=0, atol=0)


def test_hinge_is_zero_beyond_the_margin():
    f = t([1.0, 1.5, 1000.0, -2.0, -1.0, 0.25, -0.5], requires_grad=True)
    y = t([1.0, 1.0, 1.0, -1.0, -1.0, 1.0, -1.0])
    loss = Hinge.apply(f, y, "none")
    # y f ≥ 1: beyond (or exactly at) the margin, no loss and no gradient.
    assert loss.tolist()[:5] == [0.0] * 5
    assert loss.tolist()[5:] == [0.75, 0.5]
    loss.sum().backward()
    assert f.grad.tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 1.0]


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_logistic_is_finite_at_plus_minus_1000(reduction):
    f = t([1000.0, -1000.0, 1000.0, -1000.0], requires_grad=True)
    y = t([1.0, 1.0, -1.0, -1.0])
    loss = Logistic.apply(f, y, reduction)
    expected = t([0.0, 1000.0, 1000.0, 0.0])
    expected = {"none": expected, "sum": expected.sum(), "mean": expected.mean()}[reduction]
    assert torch.equal(loss.detach(), expected)
    loss.backward(torch.ones_like(loss))
    scale = 0.25 if reduction == "mean" else 1.0
    assert torch.equal(f.grad, scale * t([0.0, -1.0, 1.0, 0.0]))
    # (torch's F.soft_margin_loss, log1p(exp(-y f)), gives inf and a nan gradient here.)


def test_logistic_equals_torch_soft_margin_loss_where_that_is_finite():
    gen = torch.Generator().manual_seed(0)
    f = (6 * torch.rand(5, 7, generator=gen, dtype=f64) - 3).requires_grad_()
    y = torch.where(torch.rand(5, 7, generator=gen) > 0.5, 1.0, -1.0).to(f64)
    f_ref = f.detach().clone().requires_grad_()
    for reduction in ("none", "sum", "mean"):
        ours, theirs = (
            Logistic.apply(f, y, reduction),
            F.soft_margin_loss(f_ref, y, reduction=reduction),
        )
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
        g = torch.randn(ours.shape, generator=gen, dtype=f64)
        (grad,) = torch.autograd.grad(ours, f, g)
        (grad_ref,) = torch.autograd.grad(theirs, f_ref, g)
        torch.testing.assert_close(grad, grad_ref, rtol=1e-12, atol=1e-14)


def test_logistic_gradient_is_minus_y_sigma_minus_yf():
    f = t([0.0, 1.0, -2.0], requires_grad=True)
    y = t([1.0, -1.0, 1.0])
    Logistic.apply(f, y, "sum").backward()
    torch.testing.assert_close(f.grad, -y * torch.sigmoid(-y * f.detach()), rtol=1e-15, atol=0)
    assert f.grad[0].item() == -0.5


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    x = t([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]], requires_grad=True)
    y = torch.tensor([0, 2])
    CrossEntropy.apply(x, y, "mean").backward()
    expected = (torch.softmax(x.detach(), -1) - F.one_hot(y, 3).to(f64)) / 2
    torch.testing.assert_close(x.grad, expected, rtol=1e-14, atol=1e-16)


def test_cross_entropy_is_stable_at_1000():
    x = t([[1000.0, -1000.0, 0.0], [-1000.0, 0.0, 1000.0]], requires_grad=True)
    loss = CrossEntropy.apply(x, torch.tensor([1, 2]), "none")
    assert loss.tolist() == [2000.0, 0.0]
    loss.sum().backward()
    assert x.grad.tolist() == [[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]]


def test_binary_cross_entropy_at_exactly_0_and_1():
    """torch's conventions: logs clamped at −100, gradient denominator at 1e-12 (a float)."""
    p = t([0.0, 1.0, 0.0, 1.0], requires_grad=True)
    y = t([1.0, 0.0, 0.0, 1.0], requires_grad=True)
    loss = BinaryCrossEntropy.apply(p, y, "none")
    assert loss.tolist() == [100.0, 100.0, 0.0, 0.0]
    loss.sum().backward()
    assert torch.isfinite(p.grad).all()
    assert p.grad[0].item() == pytest.approx(-1e12, rel=1e-8)
    assert p.grad[2:].tolist() == [0.0, 0.0]
    # ∂L/∂y = log(1 − p) − log p is not clamped (as torch): ±inf at p = 0 or 1.
    assert y.grad.tolist() == [float("inf"), float("-inf")] * 2


def test_target_gradients_match_torch():
    gen = torch.Generator().manual_seed(3)
    p = 0.05 + 0.9 * torch.rand(4, 5, generator=gen, dtype=f64)
    z = torch.randn(4, 5, generator=gen, dtype=f64)
    y = torch.rand(4, 5, generator=gen, dtype=f64)
    cases = [
        (MSE, F.mse_loss, z),
        (BinaryCrossEntropy, F.binary_cross_entropy, p),
        (BinaryCrossEntropyWithLogits, F.binary_cross_entropy_with_logits, z),
    ]
    for fn, ref, x in cases:
        for reduction in ("none", "sum", "mean"):
            ours_y, ref_y = y.clone().requires_grad_(), y.clone().requires_grad_()
            out, expected = fn.apply(x, ours_y, reduction), ref(x, ref_y, reduction=reduction)
            g = torch.randn(out.shape, generator=gen, dtype=f64)
            (grad,) = torch.autograd.grad(out, ours_y, g)
            (grad_ref,) = torch.autograd.grad(expected, ref_y, g)
            torch.testing.assert_close(grad, grad_ref, rtol=1e-12, atol=1e-14)
    # BCE with logits: ∂L/∂y = −z.
    y_leaf = y.clone().requires_grad_()
    BinaryCrossEntropyWithLogits.apply(z, y_leaf, "sum").backward()
    assert torch.equal(y_leaf.grad, -z)


@pytest.mark.parametrize("fn", [Hinge, Logistic])
def test_label_losses_give_labels_no_gradient(fn):
    f = t([0.3, -0.7], requires_grad=True)
    y = t([1.0, -1.0], requires_grad=True)
    fn.apply(f, y, "sum").backward()
    assert f.grad is not None and y.grad is None


# ---------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------


def _args(name: str, n: int, reduction: str):
    """Arguments for a batch of n examples (rows); the first one needs a gradient."""
    gen = torch.Generator().manual_seed(n)
    vector = torch.randn(n, generator=gen, dtype=f64)
    signs = torch.where(torch.rand(n, generator=gen) > 0.5, 1.0, -1.0).to(f64)
    soft = torch.rand(n, generator=gen, dtype=f64)
    labels = torch.randint(4, (n,), generator=gen)
    if name in ("MulticlassSVM", "CrossEntropy"):
        scores = torch.randn(n, 4, generator=gen, dtype=f64).requires_grad_()
        return (
            (scores, labels, 1.0, reduction)
            if name == "MulticlassSVM"
            else (scores, labels, reduction)
        )
    if name == "BinaryCrossEntropy":
        return (0.05 + 0.9 * vector.sigmoid()).requires_grad_(), soft, reduction
    target = {"MSE": soft, "Hinge": signs, "Logistic": signs, "BinaryCrossEntropyWithLogits": soft}
    return vector.requires_grad_(), target[name], reduction


LOSSES = [
    "MSE",
    "Hinge",
    "Logistic",
    "MulticlassSVM",
    "CrossEntropy",
    "BinaryCrossEntropy",
    "BinaryCrossEntropyWithLogits",
]


@pytest.mark.parametrize("name", LOSSES)
def test_reductions_sum_is_n_times_mean_and_none_has_one_loss_per_example(name):
    fn, n = REGISTRY[name].function, 6
    none = fn.apply(*_args(name, n, "none"))
    total = fn.apply(*_args(name, n, "sum"))
    mean = fn.apply(*_args(name, n, "mean"))
    assert none.shape == (n,)
    assert total.shape == mean.shape == ()
    torch.testing.assert_close(total, n * mean, rtol=1e-14, atol=0)
    torch.testing.assert_close(total, none.sum(), rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", LOSSES)
def test_mean_gradient_is_sum_gradient_over_n(name):
    fn, n = REGISTRY[name].function, 6
    grads = {}
    for reduction in ("sum", "mean"):
        args = _args(name, n, reduction)
        fn.apply(*args).backward()
        grads[reduction] = args[0].grad
    torch.testing.assert_close(grads["mean"], grads["sum"] / n, rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("name", LOSSES)
def test_empty_batch(name):
    """Mean over no examples is nan (as torch), the sum 0, and 'none' is empty."""
    fn = REGISTRY[name].function
    mean = fn.apply(*_args(name, 0, "mean"))
    assert mean.shape == () and mean.isnan()
    args = _args(name, 0, "sum")
    total = fn.apply(*args)
    assert total.item() == 0.0
    total.backward()
    assert args[0].grad.shape == args[0].shape
    assert fn.apply(*_args(name, 0, "none")).shape == (0,)


def test_multiclass_svm_empty_mean_is_nan_where_torch_returns_garbage():
    # torch's multi_margin_loss on a (0, C) batch returns uninitialised memory for 'mean'
    # (seen: 4.7e-310); ours follows every other mean over nothing, like cross_entropy.
    s = torch.zeros(0, 3, dtype=f64)
    assert MulticlassSVM.apply(s, torch.zeros(0, dtype=torch.long), 1.0, "mean").isnan()
    assert F.cross_entropy(s, torch.zeros(0, dtype=torch.long)).isnan()


def test_unknown_reduction_is_rejected():
    with pytest.raises(ValueError, match="'avg'"):
        MSE.apply(t([1.0]), t([0.0]), "avg")


# ---------------------------------------------------------------------------------------
# Function transforms over a batch of losses
# ---------------------------------------------------------------------------------------


def test_vmap_and_grad_over_cross_entropy_batches():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 4, generator=gen, dtype=f64)
    y = torch.randint(4, (3, 5), generator=gen)
    batched = torch.func.vmap(lambda xi, yi: CrossEntropy.apply(xi, yi, "mean"))(x, y)
    looped = torch.stack([F.cross_entropy(xi, yi) for xi, yi in zip(x, y, strict=True)])
    torch.testing.assert_close(batched, looped, rtol=1e-12, atol=0)
    grads = torch.func.vmap(torch.func.grad(lambda xi, yi: CrossEntropy.apply(xi, yi, "sum")))(x, y)
    expected = torch.softmax(x, -1) - F.one_hot(y, 4).to(f64)
    torch.testing.assert_close(grads, expected, rtol=1e-12, atol=1e-15)


def test_cross_entropy_hessian_is_diag_p_minus_ppt():
    x = t([0.2, -1.0, 0.7])
    hessian = torch.func.hessian(lambda v: CrossEntropy.apply(v, torch.tensor(1), "sum"))(x)
    p = torch.softmax(x, -1)
    torch.testing.assert_close(hessian, torch.diag(p) - torch.outer(p, p), rtol=1e-12, atol=1e-15)


def test_multiclass_svm_jvp_matches_gradient():
    s = t(CS231N_SCORES)
    y = torch.tensor(CS231N_LABELS)
    v = torch.linspace(-1, 1, 9, dtype=f64).reshape(3, 3)
    _, jvp = torch.func.jvp(lambda u: MulticlassSVM.apply(u, y, 1.0, "mean"), (s,), (v,))
    grad = torch.func.grad(lambda u: MulticlassSVM.apply(u, y, 1.0, "mean"))(s)
    torch.testing.assert_close(jvp, (grad * v).sum(), rtol=1e-14, atol=0)
