"""Property-based tests (hypothesis): every registered Function against torch's own op.

For every entry of ``torchmanual.autograd.REGISTRY``, hypothesis draws arguments with the
entry's structure — random shapes (0-d and empty included), broadcasting pairs for the
binary gates, strided, transposed and expanded (stride-0) inputs, float32 and float64, and
values including ±0, ±inf, nan, huge and tiny magnitudes — and checks that torchmanual's
forward and backward equal the entry's ``reference`` (same values within a tolerance, the
same nan and inf pattern exactly), or that both raise. Through ``torchmanual.functional``,
arguments torch refuses (shapes that do not broadcast, class indices out of range,
probabilities outside [0, 1], ...) must be refused with a clear error naming the function.

Inputs are views of leaf tensors, so a strided or expanded layout reaches the Function
itself; gradients are compared on the leaves. Entries without a hand-written strategy below
(a Function registered later) are still covered: their registry samples are the template,
with every differentiable tensor refilled with drawn values.

Failures found here are pinned as regular tests at the end of this file. The example count
is kept small (the whole file runs in well under a minute); raise it to hunt for bugs with
``TORCHMANUAL_PROPERTY_EXAMPLES=2000``. Runs are derandomized (the same examples every
time) unless ``TORCHMANUAL_PROPERTY_RANDOM=1``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import torchmanual.functional as TF
from torchmanual.autograd import REGISTRY
from torchmanual.autograd.registry import Entry

EXAMPLES = int(os.environ.get("TORCHMANUAL_PROPERTY_EXAMPLES", "50"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("TORCHMANUAL_PROPERTY_RANDOM") != "1",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
DTYPES = (torch.float64, torch.float32)
# Tolerances for finite values (non-finite ones must match exactly).
TOLERANCE = {torch.float64: (1e-9, 1e-12), torch.float32: (2e-4, 1e-5)}
# Huge finite magnitudes per dtype; "bounded" keeps sums of products from overflowing in
# one summation order but not another (matmul, batch statistics), which is float
# arithmetic, not a bug.
HUGE = {torch.float64: 1e300, torch.float32: 1e37}
BOUNDED = {torch.float64: 1e100, torch.float32: 1e15}


# --- values, shapes, layouts ---------------------------------------------------------------


def values(dtype: torch.dtype, *, bounded: bool = False, finite: bool = False, low=None, high=None):
    """One float: ordinary, exactly 0, ±inf, nan, huge, tiny (denormal included)."""
    if low is not None:
        return st.one_of(
            st.floats(low, high, allow_nan=False),
            st.sampled_from([low, high, (low + high) / 2]),
        )
    huge = (BOUNDED if bounded else HUGE)[dtype]
    tiny = 5e-324 if dtype == torch.float64 else 1e-45
    special = [0.0, -0.0, 1.0, -1.0, huge, -huge, tiny, -tiny, 1e-30, 30.0, -30.0, 1000.0]
    if not finite:
        special += [math.inf, -math.inf, math.nan]
    return st.one_of(
        st.floats(-5, 5, width=64 if dtype == torch.float64 else 32),
        st.sampled_from(special),
        st.floats(-huge, huge, allow_nan=False, allow_infinity=False),
    )


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 0, max_side: int = 4):
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(
        tuple
    )


LAYOUTS = ("contiguous", "transposed", "strided", "expanded")


@dataclass
class Leaf:
    """A leaf tensor and the view of it handed to the Function."""

    base: torch.Tensor
    view: torch.Tensor


def tensor(data, shape, dtype, elements, *, layout=None, requires_grad=True) -> Leaf:
    """A view with ``shape`` and a drawn layout, backed by a fresh leaf."""
    ndim = len(shape)
    if layout is None:
        layout = data.draw(st.sampled_from(LAYOUTS), label="layout")
    if layout == "transposed" and ndim >= 2:
        alloc = tuple(reversed(shape))
    elif layout == "strided" and ndim >= 1:
        alloc = (*shape[:-1], 2 * shape[-1])
    elif layout == "expanded" and ndim >= 1:
        alloc = (1, *shape[1:])
    else:
        layout, alloc = "contiguous", shape
    n = math.prod(alloc)
    flat = data.draw(st.lists(elements, min_size=n, max_size=n), label="values")
    base = torch.tensor(flat, dtype=torch.float64).reshape(alloc).to(dtype)
    base.requires_grad_(requires_grad)
    if layout == "transposed":
        view = base.permute(*reversed(range(ndim)))
    elif layout == "strided":
        view = base[..., ::2]
    elif layout == "expanded":
        view = base.expand(shape)
    else:
        view = base
    assert view.shape == shape
    return Leaf(base, view)


def broadcast_pair(data, max_dims: int = 3):
    """Two shapes that broadcast: a result shape, each side dropping lead dims or using 1s."""
    result = data.draw(shapes(0, max_dims), label="result shape")

    def side(label):
        keep = data.draw(st.integers(0, len(result)), label=f"{label} dims")
        dims = result[len(result) - keep :]
        ones = data.draw(st.lists(st.booleans(), min_size=keep, max_size=keep), label=label)
        return tuple(1 if one else d for d, one in zip(dims, ones, strict=True))

    return side("x"), side("y")


# --- argument strategies per registry entry ------------------------------------------------
# Each returns (args, leaves): the Function's positional arguments (views), and the leaves
# whose gradients are compared.


Args = tuple[tuple[Any, ...], list[torch.Tensor]]


def _unary(data, dtype, *extra) -> Args:
    x = tensor(data, data.draw(shapes(), label="shape"), dtype, values(dtype))
    return (x.view, *extra), [x.base]


def _binary(data, dtype) -> Args:
    sx, sy = broadcast_pair(data)
    x = tensor(data, sx, dtype, values(dtype))
    y = tensor(data, sy, dtype, values(dtype))
    return (x.view, y.view), [x.base, y.base]


def _number(data, low: float, high: float, label: str) -> float:
    return data.draw(
        st.one_of(st.floats(low, high, allow_nan=False), st.sampled_from([0.0, low, high])),
        label=label,
    )


def _prelu(data, dtype) -> Args:
    shape = data.draw(shapes(0, 3, 0, 4), label="shape")
    channels = shape[1] if len(shape) >= 2 else 1
    n = data.draw(st.sampled_from(sorted({1, channels})), label="weights")
    x = tensor(data, shape, dtype, values(dtype))
    w = tensor(data, (n,), dtype, values(dtype), layout="contiguous")
    return (x.view, w.base), [x.base, w.base]


def _affine(data, dtype, pieces: int = 1, with_pieces: bool = False) -> Args:
    lead = data.draw(shapes(0, 2, 0, 3), label="batch shape")
    n_in = data.draw(st.integers(1, 4), label="in")
    n_out = data.draw(st.integers(1, 3), label="out") * pieces
    elements = values(dtype, bounded=True)
    x = tensor(data, (*lead, n_in), dtype, elements)
    w = tensor(data, (n_out, n_in), dtype, elements)
    leaves = [x.base, w.base]
    bias = None
    if data.draw(st.booleans(), label="bias"):
        b = tensor(data, (n_out,), dtype, elements)
        bias = b.view
        leaves.append(b.base)
    args = (x.view, w.view, bias, pieces) if with_pieces else (x.view, w.view, bias)
    return args, leaves


def _maxout(data, dtype) -> Args:
    return _affine(data, dtype, data.draw(st.integers(1, 3), label="pieces"), with_pieces=True)


def _batch_norm(data, dtype) -> Args:
    training = data.draw(st.booleans(), label="training")
    n = data.draw(st.integers(2 if training else 0, 5), label="N")
    channels = data.draw(st.integers(1, 3), label="C")
    shape = (n, channels)
    if data.draw(st.booleans(), label="3-d"):
        shape = (n, channels, data.draw(st.integers(1, 3), label="L"))
    # NOTE: normalising is ill-conditioned where |x| ≫ its spread (x − μ cancels), so the
    # magnitudes stay moderate and the tolerance grows with them (see _tolerance).
    elements = st.one_of(
        st.floats(-10, 10),
        st.sampled_from([0.0, -0.0, 1e3, -1e3, 1e-30, math.inf, -math.inf, math.nan]),
    )
    x = tensor(data, shape, dtype, elements)
    leaves = [x.base]
    weight = bias = mean = var = None
    if data.draw(st.booleans(), label="affine"):
        # NOTE: γ normal or 0 (nan allowed): torch computes x·α + (β − μα) with α = γ/σ,
        # torchmanual (x − μ)/σ·γ + β; where α under- or overflows (γ = ±inf, or denormal)
        # torch gives nan and torchmanual ±inf. Elsewhere the two agree to rounding.
        gammas = elements.filter(lambda v: not math.isinf(v) and (v == 0 or abs(v) >= 1e-30))
        w = tensor(data, (channels,), dtype, gammas, layout="contiguous")
        b = tensor(data, (channels,), dtype, elements, layout="contiguous")
        weight, bias = w.base, b.base
        leaves += [w.base, b.base]
    if not training:
        mean = tensor(data, (channels,), dtype, elements, layout="contiguous").base.detach()
        variances = values(dtype, bounded=True, low=0.0, high=1e6)
        var = tensor(data, (channels,), dtype, variances, layout="contiguous").base.detach()
    eps = data.draw(st.sampled_from([1e-5, 1e-3, 0.1]), label="eps")
    return (x.view, weight, bias, mean, var, eps), leaves


REDUCTION = st.sampled_from(["mean", "sum", "none"])


def _elementwise_loss(target_elements, target_grad: bool, input_elements=None):
    def draw(data, dtype) -> Args:
        shape = data.draw(shapes(), label="shape")
        x = tensor(data, shape, dtype, input_elements(dtype) if input_elements else values(dtype))
        y = tensor(data, shape, dtype, target_elements(dtype), requires_grad=target_grad)
        reduction = data.draw(REDUCTION, label="reduction")
        leaves = [x.base, y.base] if target_grad else [x.base]
        return (x.view, y.view, reduction), leaves

    return draw


def _class_loss(svm: bool):
    def draw(data, dtype) -> Args:
        reduction = data.draw(REDUCTION, label="reduction")
        classes = data.draw(st.integers(1, 4), label="C")
        # NOTE: no empty batch for the SVM: torch's multi_margin_loss returns uninitialised
        # memory for an empty 'mean' or 'sum' (found here; see the registry's note).
        batch = data.draw(st.one_of(st.none(), st.integers(1 if svm else 0, 4)), label="N")
        shape = (classes,) if batch is None else (batch, classes)
        x = tensor(data, shape, dtype, values(dtype))
        n = math.prod(shape[:-1])
        target = torch.tensor(
            data.draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)),
            dtype=torch.long,
        ).reshape(shape[:-1])
        if svm:
            margin = _number(data, -2.0, 3.0, "margin")
            return (x.view, target, margin, reduction), [x.base]
        return (x.view, target, reduction), [x.base]

    return draw


def _signs(dtype):
    return st.sampled_from([-1.0, 1.0])


def _probabilities(dtype):
    tiny = 5e-324 if dtype == torch.float64 else 1e-45
    return st.one_of(
        st.floats(0.0, 1.0, width=64 if dtype == torch.float64 else 32),
        st.sampled_from([0.0, 1.0, 0.5, tiny, 1e-12, 1 - 1e-7]),
    )


STRATEGIES: dict[str, Callable[[Any, torch.dtype], Args]] = {
    "Add": _binary,
    "Mul": _binary,
    "Max": _binary,
    "Exp": _unary,
    "Reciprocal": _unary,
    "Scale": lambda data, dtype: _unary(data, dtype, _number(data, -1e3, 1e3, "a")),
    "Shift": lambda data, dtype: _unary(data, dtype, _number(data, -1e3, 1e3, "c")),
    "Sigmoid": _unary,
    "Tanh": _unary,
    "ReLU": _unary,
    "LeakyReLU": lambda data, dtype: _unary(data, dtype, _number(data, -2.0, 2.0, "slope")),
    "PReLU": _prelu,
    "ELU": lambda data, dtype: _unary(data, dtype, _number(data, -2.0, 3.0, "alpha")),
    "GELU": lambda data, dtype: _unary(
        data, dtype, data.draw(st.sampled_from(["none", "tanh"]), label="approximate")
    ),
    "SiLU": _unary,
    "Softplus": lambda data, dtype: _unary(
        data,
        dtype,
        data.draw(st.sampled_from([1.0, 2.0, 0.5, -1.0]), label="beta"),
        data.draw(st.sampled_from([20.0, 5.0, 0.0, 1.5]), label="threshold"),
    ),
    "Step": _unary,
    "Maxout": _maxout,
    "Linear": _affine,
    "BatchNorm": _batch_norm,
    "MSE": _elementwise_loss(values, target_grad=True),
    "Hinge": _elementwise_loss(_signs, target_grad=False),
    "Logistic": _elementwise_loss(_signs, target_grad=False),
    "MulticlassSVM": _class_loss(svm=True),
    "CrossEntropy": _class_loss(svm=False),
    "BinaryCrossEntropy": _elementwise_loss(
        _probabilities, target_grad=True, input_elements=_probabilities
    ),
    "BinaryCrossEntropyWithLogits": _elementwise_loss(values, target_grad=True),
}


def _from_template(entry: Entry) -> Callable[[Any, torch.dtype], Args]:
    """An entry without a strategy: a registry sample, differentiable tensors redrawn."""

    def draw(data, dtype) -> Args:
        samples = entry.samples(dtype, torch.device("cpu"))
        sample = data.draw(st.sampled_from(samples), label="template").clone()
        args, leaves = [], []
        for arg in sample.args:
            if isinstance(arg, torch.Tensor) and arg.requires_grad:
                leaf = tensor(data, tuple(arg.shape), dtype, values(dtype, bounded=True))
                args.append(leaf.view)
                leaves.append(leaf.base)
            else:
                args.append(arg)
        return tuple(args), leaves

    return draw


def strategy(name: str) -> Callable[[Any, torch.dtype], Args]:
    return STRATEGIES.get(name) or _from_template(REGISTRY[name])


# --- the comparison ------------------------------------------------------------------------


def _outcome(fn, args, leaves, grad_seed: int):
    """(output, gradients of the leaves) or the exception ``fn`` raised."""
    for leaf in leaves:
        leaf.grad = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(*args)
            grads = [None] * len(leaves)
            if out.requires_grad and leaves:
                g = torch.Generator().manual_seed(grad_seed)
                grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.dtype)
                grads = torch.autograd.grad(out, leaves, grad_out, allow_unused=True)
    except (RuntimeError, ValueError, IndexError, TypeError) as error:
        return error
    grads = [torch.zeros_like(x) if g is None else g for g, x in zip(grads, leaves, strict=True)]
    return out.detach(), [g.detach() for g in grads]


def _describe(args) -> str:
    parts = []
    for a in args:
        if isinstance(a, torch.Tensor):
            parts.append(f"tensor{tuple(a.shape)} stride {a.stride()} {a.dtype}: {a.tolist()}")
        else:
            parts.append(repr(a))
    return "; ".join(parts)


def _largest_finite(t) -> float:
    if not isinstance(t, torch.Tensor) or not t.numel():
        return 0.0
    finite = t.detach()[t.detach().isfinite()]
    return finite.abs().max().item() if finite.numel() else 0.0


# Entries checked from a template are composite (fused layers: a matmul, then an activation):
# a 1-ulp difference in the pre-activation z, from another matmul path, is amplified by a
# saturating derivative computed as 1 − y² (tanh at z ≈ 10 loses 8 of float64's digits, in
# torch as here), so their tolerance is wider.
TEMPLATE_TOLERANCE = {torch.float64: (1e-6, 1e-12), torch.float32: (2e-3, 1e-5)}


def _tolerance(entry: Entry, args, dtype) -> tuple[float, float]:
    rtol, atol = (TOLERANCE if entry.name in STRATEGIES else TEMPLATE_TOLERANCE)[dtype]
    if entry.name == "BatchNorm":
        # Rounding in x − μ (≈ ε_machine·|x|) is amplified by γ/√(σ² + ε) ≤ γ/√ε.
        x, weight, _, _, _, eps = args
        gain = (1 + _largest_finite(x)) * (1 + _largest_finite(weight)) / math.sqrt(eps)
        atol = max(atol, 1e3 * torch.finfo(dtype).eps * gain)
    return rtol, atol


def _assert_close(ours, theirs, tolerance, what: str, args, nan_inputs: bool = False) -> None:
    """Same shape, dtype, nan and inf pattern; finite values within ``tolerance``.

    ``nan_inputs``: a gradient where some input or output is nan. torch's own backward is not
    consistent there (e.g. its ELU backward gives nan in vectorised lanes and a number in
    the scalar tail for the same nan input), so a position that is nan on one side only is
    not compared; every other position still is.
    """
    rtol, atol = tolerance
    if nan_inputs:
        keep = ~(ours.isnan() ^ theirs.isnan())
        ours, theirs = ours[keep], theirs[keep]
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != torch's {theirs.shape}"
    assert ours.dtype == theirs.dtype, f"{what}: dtype {ours.dtype} != torch's {theirs.dtype}"
    # Non-finite values must match exactly (position and sign); finite ones within tolerance,
    # scaled by the largest finite magnitude involved.
    same_nan = torch.equal(ours.isnan(), theirs.isnan())
    assert same_nan, (
        f"{what}: nan pattern differs\nours   {ours}\ntorch's {theirs}\n{_describe(args)}"
    )
    inf = ours.isinf() | theirs.isinf()
    assert torch.equal(ours[inf], theirs[inf]), (
        f"{what}: inf pattern differs\nours   {ours}\ntorch's {theirs}\n{_describe(args)}"
    )
    finite = ours.isfinite() & theirs.isfinite()
    a, b = ours[finite].double(), theirs[finite].double()
    if a.numel():
        error = (a - b).abs()
        # Elementwise, plus a few ulps of the largest entry: an entry that is a sum of
        # cancelling terms (e.g. GELU'(x) = Φ(x) + xφ(x) near x = -5, in float32) carries
        # the rounding of those terms, not of its own small size.
        largest = torch.maximum(a.abs().max(), b.abs().max())
        ulps = 16 * torch.finfo(ours.dtype).eps * largest
        bound = atol + ulps + rtol * torch.maximum(a.abs(), b.abs())
        assert bool((error <= bound).all()), (
            f"{what}: max difference {error.max().item():.3g}\nours   {ours}\n"
            f"torch's {theirs}\n{_describe(args)}"
        )


def check_against_torch(entry: Entry, args, leaves, dtype) -> None:
    ours = _outcome(entry, args, leaves, grad_seed=1)
    theirs = _outcome(entry.reference, args, leaves, grad_seed=1)
    if isinstance(theirs, Exception):
        assert isinstance(ours, Exception), (
            f"{entry.name}: torch raised {theirs!r} but torchmanual did not\n{_describe(args)}"
        )
        return
    assert not isinstance(ours, Exception), (
        f"{entry.name}: torchmanual raised {ours!r} where torch did not\n{_describe(args)}"
    )
    tolerance = _tolerance(entry, args, dtype)
    _assert_close(ours[0], theirs[0], tolerance, f"{entry.name} forward", args)
    # A nan anywhere on the way (an input, or made inside: inf·0, inf − inf) leaves the
    # gradient's nan positions to conventions torch does not keep itself (see _assert_close).
    nan_inputs = bool(ours[0].isnan().any() or theirs[0].isnan().any()) or any(
        isinstance(a, torch.Tensor) and a.is_floating_point() and bool(a.isnan().any())
        for a in args
    )
    for i, (g, g_ref) in enumerate(zip(ours[1], theirs[1], strict=True)):
        _assert_close(g, g_ref, tolerance, f"{entry.name} gradient {i}", args, nan_inputs)


@pytest.mark.parametrize("name", sorted(REGISTRY))
@SETTINGS
@given(data=st.data())
def test_matches_torch(name, data):
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    args, leaves = strategy(name)(data, dtype)
    check_against_torch(REGISTRY[name], args, leaves, dtype)


def test_every_registered_function_has_a_strategy_or_a_template():
    for name, entry in REGISTRY.items():
        if name not in STRATEGIES:
            assert entry.samples(torch.float64, torch.device("cpu")), name


# --- through torchmanual.functional: refused where torch refuses ---------------------------


def _refused_alike(ours_call, torch_call, fn: str, stricter: bool = False) -> None:
    """torch raises ⇒ torchmanual raises a typed error naming ``fn``; else both agree.

    ``stricter``: where torch accepts more than it documents (e.g. any bias that broadcasts
    in F.linear), torchmanual may refuse instead, with a ValueError naming ``fn``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = torch_call()
    except (RuntimeError, ValueError, IndexError) as error:
        with pytest.raises((ValueError, IndexError, TypeError, NotImplementedError)) as info:
            ours_call()
        assert f"{fn}()" in str(info.value), f"{info.value} (torch: {error})"
        return
    try:
        got = ours_call()
    except ValueError as error:
        if not stricter:
            raise
        assert f"{fn}()" in str(error)
        return
    torch.testing.assert_close(got, expected, equal_nan=True, rtol=1e-9, atol=1e-12)


@SETTINGS
@given(data=st.data(), fn=st.sampled_from(["add", "mul", "maximum"]))
def test_binary_gates_refuse_shapes_torch_cannot_broadcast(data, fn):
    sx = data.draw(shapes(0, 3, 0, 3), label="x shape")
    sy = data.draw(shapes(0, 3, 0, 3), label="y shape")
    x = torch.randn(sx, dtype=torch.float64)
    y = torch.randn(sy, dtype=torch.float64)
    _refused_alike(lambda: getattr(TF, fn)(x, y), lambda: getattr(torch, fn)(x, y), fn)


@SETTINGS
@given(data=st.data())
def test_linear_refuses_what_torch_refuses(data):
    x = torch.randn(data.draw(shapes(0, 3, 0, 3), label="input"), dtype=torch.float64)
    w = torch.randn(data.draw(shapes(1, 3, 0, 3), label="weight"), dtype=torch.float64)
    b = (
        torch.randn(data.draw(shapes(0, 2, 0, 3), label="bias"), dtype=torch.float64)
        if data.draw(st.booleans(), label="bias?")
        else None
    )
    _refused_alike(
        lambda: TF.linear(x, w, b),
        lambda: torch.nn.functional.linear(x, w, b),
        "linear",
        # torch adds any bias that broadcasts (documented: (out,) and ()) and takes a 1-D
        # weight; torchmanual wants weight (out, in) and says so.
        stricter=w.dim() == 1 or (b is not None and tuple(b.shape) not in ((w.shape[0],), ())),
    )


@SETTINGS
@given(data=st.data())
def test_cross_entropy_refuses_class_indices_out_of_range(data):
    classes = data.draw(st.integers(1, 4), label="C")
    n = data.draw(st.integers(1, 4), label="N")
    x = torch.randn(n, classes, dtype=torch.float64)
    target = torch.tensor(
        data.draw(st.lists(st.integers(-3, classes + 2), min_size=n, max_size=n)), dtype=torch.long
    )
    if bool((target == -100).any()):
        return  # torch's ignore_index: torchmanual refuses it on purpose (NotImplementedError)
    _refused_alike(
        lambda: TF.cross_entropy(x, target),
        lambda: torch.nn.functional.cross_entropy(x, target),
        "cross_entropy",
    )


@SETTINGS
@given(data=st.data())
def test_binary_cross_entropy_refuses_probabilities_outside_0_1(data):
    shape = data.draw(shapes(0, 2, 0, 3), label="shape")
    p = tensor(data, shape, torch.float64, values(torch.float64), layout="contiguous").base
    y = tensor(data, shape, torch.float64, values(torch.float64), layout="contiguous").base
    p, y = p.detach(), y.detach()
    _refused_alike(
        lambda: TF.binary_cross_entropy(p, y),
        lambda: torch.nn.functional.binary_cross_entropy(p, y),
        "binary_cross_entropy",
    )


# --- regressions: failures the properties found, pinned ------------------------------------


def test_batch_norm_gradient_with_an_infinite_weight_is_torchs():
    """γ = inf on a constant channel: torch's dx is ±inf; γ·dy before the means made nan."""
    entry = REGISTRY["BatchNorm"]
    x = torch.zeros(2, 1, dtype=torch.float64, requires_grad=True)
    weight = torch.tensor([math.inf], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    args = (x, weight, bias, None, None, 1e-5)
    check_against_torch(entry, args, [x, weight, bias], torch.float64)
    grad_x = torch.autograd.grad(entry(*args), x, torch.tensor([[1.0], [-2.0]]).double())[0]
    assert grad_x.isinf().all()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_multiclass_svm_skips_a_nan_margin_term_as_torch_does(reduction):
    """torch adds a term only where z > 0; clamp_min(0) made a nan score's loss nan."""
    entry = REGISTRY["MulticlassSVM"]
    scores = torch.tensor([[0.0, math.nan], [2.0, 1.0]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 1])
    args = (scores, target, 0.0, reduction)
    check_against_torch(entry, args, [scores], torch.float64)
    loss = entry(*args)
    assert torch.isfinite(loss).all()


def test_linear_takes_torchs_0d_bias():
    """torch documents a 0-d bias (added to every output); torchmanual refused it."""
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    for weight, bias, inputs in ((w, b, x), (w, b, x[0]), (w, b, x[None])):
        ours = TF.linear(inputs, weight, bias)
        theirs = torch.nn.functional.linear(inputs, weight, bias)
        torch.testing.assert_close(ours, theirs)
        leaves = [t for t in (x, w, b) if t is not None]
        g = torch.ones_like(ours)
        for a, e in zip(
            torch.autograd.grad(ours, leaves, g, allow_unused=True),
            torch.autograd.grad(theirs, leaves, g, allow_unused=True),
            strict=True,
        ):
            assert (a is None) == (e is None)
            if a is not None:
                torch.testing.assert_close(a, e)
    with pytest.raises(ValueError, match=r"weight must be 2-D \(out, in\), got shape \(3,\)"):
        TF.linear(x, w[0], b)  # torch's 1-D weight form: refused, by design
