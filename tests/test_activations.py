"""The slides' facts about activations (section 3), beyond the registry-driven suite.

``tests/test_functions.py`` already puts every activation under gradcheck, double backward,
forward AD, vmap and parity with torch at kinks and extremes; these tests pin down what the
slides say about each one.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from torchmanual.autograd import REGISTRY
from torchmanual.autograd import function as function_module
from torchmanual.autograd.activations import (
    ELU,
    GELU,
    Maxout,
    PReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softplus,
    Step,
    Tanh,
    _zero_where_not_positive,
)
from torchmanual.autograd.gates import Add, Mul
from torchmanual.autograd.layers import LinearActivation

F64 = torch.float64
ACTIVATIONS = (
    "Sigmoid",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "GELU",
    "SiLU",
    "Softplus",
    "Step",
    "Maxout",
)


def grad_of(fn, x: torch.Tensor) -> torch.Tensor:
    """The elementwise derivative f'(x) (backward of the sum)."""
    x = x.detach().clone().requires_grad_()
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    return g


def test_every_activation_is_registered():
    assert set(ACTIVATIONS) <= set(REGISTRY)
    for name in ACTIVATIONS:
        assert REGISTRY[name].edge_samples is not None, f"{name} needs kink/extreme samples"


# --- Sigmoid and tanh: saturating, derivative from the output ---------------------------


def test_sigmoid_derivative_peaks_at_quarter_at_zero():
    x = torch.linspace(-10, 10, 2001, dtype=F64)  # includes 0 exactly
    d = grad_of(Sigmoid.apply, x)
    assert d[1000].item() == 0.25
    assert d.max().item() == 0.25
    assert d.argmax().item() == 1000
    assert d[0].item() < 1e-4 and d[-1].item() < 1e-4  # saturated: the gradient is killed


def test_tanh_derivative_peaks_at_one_at_zero():
    x = torch.linspace(-10, 10, 2001, dtype=F64)
    d = grad_of(Tanh.apply, x)
    assert d[1000].item() == 1.0
    assert d.max().item() == 1.0
    assert d[0].item() < 1e-8 and d[-1].item() < 1e-8


@pytest.mark.parametrize("fn", [Sigmoid, Tanh])
def test_sigmoid_and_tanh_backward_use_the_saved_output(fn):
    x = torch.tensor([-2.0, 0.5, 3.0], dtype=F64, requires_grad=True)
    y = fn.apply(x)
    (saved,) = y.grad_fn.saved_tensors
    assert torch.equal(saved, y)  # σ(1−σ) and 1−y² need only the output ("keep it around")


def test_sigmoid_neuron_as_one_gate_slide_numbers():
    """The slides' neuron f = σ(w0·x0 + w1·x1 + w2), backward through the one sigmoid gate."""
    w0, x0, w1, x1, w2 = (
        torch.tensor(v, dtype=F64, requires_grad=True) for v in (2.0, -1.0, -3.0, -2.0, -3.0)
    )
    dot = Add.apply(Add.apply(Mul.apply(w0, x0), Mul.apply(w1, x1)), w2)
    f = Sigmoid.apply(dot)
    f.backward()
    assert dot.item() == 1.0
    assert round(f.item(), 2) == 0.73
    # dσ/dx = (1 − σ)σ = 0.20 at the gate, in one step.
    assert round(w2.grad.item(), 2) == 0.20
    grads = [round(t.grad.item(), 2) for t in (w0, x0, w1, x1, w2)]
    assert grads == [-0.20, 0.39, -0.39, -0.59, 0.20]


# --- ReLU family: kinks at exactly 0 --------------------------------------------------


def test_relu_derivative_at_zero_is_zero_as_torch():
    x = torch.tensor([-0.0, 0.0, -1.0, 1e-300, 2.0], dtype=F64)
    assert grad_of(ReLU.apply, x).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert grad_of(ReLU.apply, x).tolist() == grad_of(torch.relu, x).tolist()


def _special_values(dtype: torch.dtype, n: int, seed: int) -> torch.Tensor:
    """n values mixing ordinary numbers with ±0, ±inf, both nan signs and the tiniest ones."""
    g = torch.Generator().manual_seed(seed)
    info = torch.finfo(dtype)
    special = torch.tensor(
        [0.0, -0.0, math.inf, -math.inf, math.nan, info.tiny, -info.tiny, info.max, 1.0, -1.0],
        dtype=dtype,
    )
    special = torch.cat([special, -special[4:5]])  # a nan with its sign bit set, as x86 makes
    values = torch.randn(n, generator=g).to(dtype)
    where = torch.randint(n, (n // 4,), generator=g)
    values[where] = special[torch.randint(len(special), (n // 4,), generator=g)]
    return values


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_relu_backward_large_tensor_path_is_torchs_to_the_bit(dtype, layout):
    """Above 4096 values the CPU backward selects on the bits; it must equal torch's ReLU
    backward bit for bit: ±0, inf and either nan in x or in the upstream gradient."""
    shape = (96, 64)  # 6144 values: the large-tensor path
    x = _special_values(dtype, 6144, 0).reshape(shape).requires_grad_()
    upstream = _special_values(dtype, 6144, 1).reshape(shape)
    if layout == "transposed":
        upstream = upstream.reshape(64, 96).t()
    expected = torch.autograd.grad(torch.relu(x), x, upstream)[0]
    bits = {8: torch.int64, 4: torch.int32, 2: torch.int16}[expected.element_size()]

    def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
        # NOTE: nan payloads are not compared: torch's own bfloat16 kernel keeps them in one
        # layout and rewrites them in another.
        both_nan = a.isnan() & b.isnan()
        return torch.equal(a.isnan(), b.isnan()) and torch.equal(
            a.view(bits)[~both_nan], b.view(bits)[~both_nan]
        )

    actual = torch.autograd.grad(ReLU.apply(x), x, upstream)[0]
    assert same_bits(actual, expected)
    # The fused layers' in-place use (in a backward: no grad mode): the result written
    # over a temporary upstream.
    y = torch.relu(x.detach())
    scratch = upstream.clone()
    with torch.no_grad():
        result = _zero_where_not_positive(y, scratch, overwrite=True)
    assert same_bits(result, expected)
    if layout == "contiguous":
        assert result.data_ptr() == scratch.data_ptr()  # no new tensor was allocated


def _assert_fused_layer_gives(
    expected: torch.Tensor, activation: str, x: torch.Tensor, upstream: torch.Tensor
) -> None:
    """The fused layer (weight 1, no bias) applies the activation's own local gradient."""
    out = LinearActivation.apply(x[:, None], torch.ones(1, 1, dtype=x.dtype), None, activation, ())
    (network,) = torch.autograd.grad(out, x, upstream[:, None])
    torch.testing.assert_close(network, expected, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_tanh_gradient_is_torchs_to_the_bit(dtype):
    """1 − y² rounded once (a fused multiply-add, half types in float32), as torch's
    tanh_backward: the same bits for every value, saturated and special ones included."""
    x = (3 * _special_values(dtype, 4096, 2).double()).to(dtype).requires_grad_()
    upstream = _special_values(dtype, 4096, 3)
    expected = torch.autograd.grad(torch.tanh(x), x, upstream)[0]
    actual = torch.autograd.grad(Tanh.apply(x), x, upstream)[0]
    torch.testing.assert_close(actual, expected, rtol=0, atol=0, equal_nan=True)
    _assert_fused_layer_gives(expected, "tanh", x, upstream)


def test_dying_relu_unit_never_updates():
    """A unit whose input is negative for every example gets exactly zero weight gradient."""
    x = torch.rand(16, 3, dtype=F64)  # all-positive inputs
    w = torch.tensor([[-1.0, -2.0, -0.5]], dtype=F64, requires_grad=True)
    ReLU.apply(x @ w.t()).sum().backward()
    assert torch.equal(w.grad, torch.zeros_like(w))


@pytest.mark.parametrize("slope", [0.01, 0.2])
def test_leaky_relu_never_kills_the_gradient(slope):
    from torchmanual.autograd.activations import LeakyReLU

    x = torch.tensor([-1000.0, -1.0, -0.0, 0.0, 1.0, 1000.0], dtype=F64)
    d = grad_of(lambda t: LeakyReLU.apply(t, slope), x)
    assert d.tolist() == [slope, slope, slope, slope, 1.0, 1.0]  # x > 0 ? 1 : slope


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_elu_derivative_is_f_plus_alpha_on_the_negative_side(alpha):
    x = torch.tensor([-3.0, -1.0, -0.25, 0.0], dtype=F64)
    d = grad_of(lambda t: ELU.apply(t, alpha), x)
    f = ELU.apply(x, alpha)
    torch.testing.assert_close(d, f + alpha, rtol=1e-15, atol=0)  # α eˣ = f(x) + α
    assert d[-1].item() == alpha  # at 0, the x ≤ 0 branch (torch's convention)


def test_elu_gradient_keeps_its_digits_far_on_the_negative_side():
    """α·eˣ from the saved input, not f(x) + α, which cancels to almost nothing at x = −30."""
    x = torch.tensor([-30.0], dtype=F64)
    d = grad_of(lambda t: ELU.apply(t, 1.0), x)
    assert d.item() == pytest.approx(math.exp(-30.0), rel=1e-15)


# --- PReLU: backprop into α ------------------------------------------------------------


def test_prelu_alpha_gradient_is_sum_of_x_times_upstream_over_negative_x():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, generator=gen, dtype=F64)
    x[0, 0, 0] = 0.0  # a kink: contributes 0·g to α and α·g to x, as torch
    g = torch.randn(4, 3, 5, generator=gen, dtype=F64)
    alpha = torch.tensor([0.25, 0.1, -0.3], dtype=F64, requires_grad=True)
    xr = x.clone().requires_grad_()
    PReLU.apply(xr, alpha).backward(g)
    expected_alpha = torch.where(x <= 0, x * g, 0.0).sum(dim=(0, 2))
    torch.testing.assert_close(alpha.grad, expected_alpha, rtol=1e-13, atol=1e-15)
    expected_x = torch.where(x > 0, g, alpha.detach()[None, :, None] * g)
    torch.testing.assert_close(xr.grad, expected_x, rtol=0, atol=0)
    # and exactly what torch computes
    alpha_ref = alpha.detach().clone().requires_grad_()
    F.prelu(x, alpha_ref).backward(g)
    torch.testing.assert_close(alpha.grad, alpha_ref.grad, rtol=1e-13, atol=1e-15)


def test_prelu_alpha_is_learned_by_sgd():
    """The slides' "backprop into α": gradient descent on α alone recovers the true slope."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(256, 4, generator=gen, dtype=F64)
    target = F.prelu(x, torch.tensor([0.05], dtype=F64))
    alpha = torch.tensor([0.5], dtype=F64, requires_grad=True)
    losses = []
    for _ in range(200):
        loss = ((PReLU.apply(x, alpha) - target) ** 2).mean()
        losses.append(loss.item())
        (grad,) = torch.autograd.grad(loss, alpha)
        with torch.no_grad():
            alpha -= 1.0 * grad
    assert alpha.item() == pytest.approx(0.05, abs=1e-6)
    assert losses[-1] < 1e-10 < losses[0]


def test_prelu_weight_shapes_follow_torch():
    x = torch.tensor(-2.0, dtype=F64, requires_grad=True)
    for weight in (torch.tensor(0.25, dtype=F64), torch.tensor([0.25], dtype=F64)):
        weight.requires_grad_()
        y = PReLU.apply(x, weight)
        assert y.shape == F.prelu(x, weight).shape == ()
        (gw,) = torch.autograd.grad(y, weight)
        assert gw.shape == weight.shape and gw.item() == -2.0


def test_prelu_needs_input_grad_is_honoured():
    x = torch.tensor([[-1.0, 2.0], [3.0, -4.0]], dtype=F64)
    alpha = torch.tensor([0.1, 0.2], dtype=F64, requires_grad=True)
    y = PReLU.apply(x, alpha)
    assert y.grad_fn.saved_tensors[1] is None  # α is only needed for ∂f/∂x
    (gw,) = torch.autograd.grad(y.sum(), alpha)
    assert gw.tolist() == [-1.0, -4.0]
    xr = x.clone().requires_grad_()
    (gx,) = torch.autograd.grad(PReLU.apply(xr, alpha.detach()).sum(), xr)
    assert gx.tolist() == [[0.1, 1.0], [1.0, 0.2]]


def test_prelu_with_the_wrong_number_of_channels_raises_not_broadcasts():
    alpha = torch.tensor([0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match=r"4 elements .* \(2, 1, 3\) has 1 channel"):
        PReLU.apply(torch.randn(2, 1, 3), alpha)  # would broadcast to (2, 4, 3) silently
    with pytest.raises(ValueError, match="3 channel"):
        PReLU.apply(torch.randn(2, 3), alpha)
    with pytest.raises(ValueError, match="1 channel"):
        PReLU.apply(torch.randn(4), alpha)  # a 1-d input has no channel dimension


# --- Smooth variants -------------------------------------------------------------------


def test_gelu_tanh_approximation_is_close_to_exact():
    x = torch.linspace(-6, 6, 601, dtype=F64)
    exact, approx = GELU.apply(x, "none"), GELU.apply(x, "tanh")
    assert (exact - approx).abs().max().item() < 1e-3
    assert not torch.equal(exact, approx)
    d_exact, d_approx = (
        grad_of(lambda t: GELU.apply(t, "none"), x),
        grad_of(lambda t: GELU.apply(t, "tanh"), x),
    )
    assert (d_exact - d_approx).abs().max().item() < 1e-2
    # Φ(x) + xφ(x), written out
    phi = torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * torch.erfc(-x / math.sqrt(2))
    torch.testing.assert_close(d_exact, cdf + x * phi, rtol=1e-12, atol=1e-15)


def test_silu_derivative_is_the_slide_formula():
    x = torch.linspace(-8, 8, 161, dtype=F64)
    s = torch.sigmoid(x)
    torch.testing.assert_close(grad_of(SiLU.apply, x), s * (1 + x * (1 - s)), rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_silu_is_torchs_to_the_bit(dtype):
    """Value and gradient equal torch's bit for bit: σ as torch.sigmoid computes it (the
    1/(1 + e⁻ˣ) of torch's kernel), then (g·σ)·(1 + x(1 − σ)) with one fused multiply-add,
    half types in float32 — saturated (|x| ≫ 17), underflowing and special values included."""
    x = (12 * _special_values(dtype, 4096, 4).double()).to(dtype).requires_grad_()
    x.data[:6] = torch.tensor([-1000.0, -100.0, -20.0, 20.0, 100.0, 1000.0])
    upstream = _special_values(dtype, 4096, 5)
    y_ref = F.silu(x)
    expected = torch.autograd.grad(y_ref, x, upstream)[0]
    y = SiLU.apply(x)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0, equal_nan=True)
    actual = torch.autograd.grad(y, x, upstream)[0]
    torch.testing.assert_close(actual, expected, rtol=0, atol=0, equal_nan=True)
    _assert_fused_layer_gives(expected, "silu", x, upstream)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("beta", "threshold"), [(1.0, 20.0), (2.0, 5.0), (0.5, 20.0)])
def test_softplus_is_stable_at_plus_minus_1000(dtype, beta, threshold):
    x = torch.tensor([-1000.0, -100.0, 0.0, 100.0, 1000.0], dtype=dtype, requires_grad=True)
    y = Softplus.apply(x, beta, threshold)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    assert 0.0 <= y[0].item() < 1e-30 and y[-1].item() == 1000.0
    assert 0.0 <= g[0].item() < 1e-30 and g[-1].item() == 1.0
    torch.testing.assert_close(y, F.softplus(x, beta, threshold))


def test_softplus_gradient_is_sigmoid_of_beta_x():
    x = torch.linspace(-5, 2.4, 75, dtype=F64)  # below the threshold 5/β = 2.5
    torch.testing.assert_close(
        grad_of(lambda t: Softplus.apply(t, 2.0, 5.0), x),
        torch.sigmoid(2.0 * x),
        rtol=1e-14,
        atol=1e-300,
    )


# --- Step: zero gradient, never trained ---------------------------------------------------


def test_step_values_and_zero_gradient_everywhere():
    x = torch.tensor([-math.inf, -1.0, -0.0, 0.0, 1e-300, 1.0, math.inf, math.nan], dtype=F64)
    xr = x.clone().requires_grad_()
    y = Step.apply(xr)
    assert y.dtype == x.dtype
    assert y.tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    upstream = torch.tensor([1.0, math.inf, math.nan, -1.0, 2.0, 3.0, 4.0, 5.0], dtype=F64)
    (g,) = torch.autograd.grad(y, xr, upstream)
    assert torch.equal(g, torch.zeros_like(x))  # even an inf/nan upstream gives 0


def test_perceptron_with_step_is_never_trained_by_gradient_descent():
    """Why the slides drop the step: gradient descent leaves a step unit's weights unchanged."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(32, 2, generator=gen, dtype=F64)
    y = (x[:, 0] + x[:, 1] > 0).to(F64)  # separable
    w = torch.tensor([[1.0, -1.0]], dtype=F64, requires_grad=True)
    start = w.detach().clone()
    for _ in range(10):
        loss = ((Step.apply(x @ w.t()).squeeze(1) - y) ** 2).mean()
        assert loss.item() > 0
        (grad,) = torch.autograd.grad(loss, w)
        assert torch.equal(grad, torch.zeros_like(w))
        with torch.no_grad():
            w -= 0.5 * grad
    assert torch.equal(w.detach(), start)


# --- Maxout: generalises ReLU and leaky ReLU, routes the gradient to the winner ---------------


def _maxout_pair(x, w, b, pieces, fn):
    """Values and input/weight gradients of Maxout and of ``fn`` on the same inputs."""
    xa, wa = x.clone().requires_grad_(), w.clone().requires_grad_()
    out = Maxout.apply(xa, wa, b, pieces)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=out.dtype)
    out.backward(g)
    xb, wb = x.clone().requires_grad_(), w.clone().requires_grad_()
    ref = fn(xb, wb)
    ref.backward(g)
    return (out, xa.grad, wa.grad), (ref, xb.grad, wb.grad)


@pytest.mark.parametrize(("second_piece", "activation"), [(0.0, F.relu), (0.01, F.leaky_relu)])
def test_maxout_generalises_relu_and_leaky_relu(second_piece, activation):
    """Pieces (w, 0) give ReLU(wᵀx); pieces (w, 0.01w) give leaky ReLU(wᵀx)."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(6, 3, generator=gen, dtype=F64)
    w = torch.randn(2, 3, generator=gen, dtype=F64)
    # Unit o's pieces are rows 2o and 2o + 1.
    pieces_w = torch.stack([w, second_piece * w], dim=1).reshape(4, 3)
    ours = Maxout.apply(x, pieces_w, None, 2)
    torch.testing.assert_close(ours, activation(x @ w.t()), rtol=1e-15, atol=0)
    # The gradient for x agrees too: routed to w where wᵀx > 0, to the second piece otherwise.
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    g = torch.randn(6, 2, generator=gen, dtype=F64)
    Maxout.apply(xa, pieces_w, None, 2).backward(g)
    activation(xb @ w.t()).backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-14, atol=1e-15)


def test_maxout_matches_the_reference_and_routes_only_to_the_winner():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(5, 4, generator=gen, dtype=F64)
    w = torch.randn(6, 4, generator=gen, dtype=F64)
    b = torch.randn(6, generator=gen, dtype=F64).requires_grad_()
    ours, ref = _maxout_pair(
        x, w, b, 3, lambda x, w: F.linear(x, w, b).reshape(5, 2, 3).max(-1).values
    )
    for a, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, r, rtol=1e-13, atol=1e-15)
    # Each unit's upstream gradient reaches exactly one piece's bias.
    b.grad = None
    Maxout.apply(x[:1], w, b, 3).sum().backward()
    assert b.grad.reshape(2, 3).count_nonzero(dim=-1).tolist() == [1, 1]


def test_maxout_tie_goes_to_the_first_piece_as_torch_max():
    x = torch.tensor([[1.0, 2.0]], dtype=F64)
    w = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=F64, requires_grad=True)  # equal pieces
    b = torch.zeros(2, dtype=F64, requires_grad=True)
    Maxout.apply(x, w, b, 2).sum().backward()
    assert b.grad.tolist() == [1.0, 0.0]
    assert w.grad.tolist() == [[1.0, 2.0], [0.0, 0.0]]


def test_maxout_returns_one_tensor_and_tapes_see_it():
    x = torch.randn(2, 3, dtype=F64)
    w = torch.randn(4, 3, dtype=F64, requires_grad=True)
    seen = []
    function_module._observers.append(lambda cls, args, out: seen.append((cls, out)))
    try:
        out = Maxout.apply(x, w, None, 2)
    finally:
        function_module._observers.pop()
    assert isinstance(out, torch.Tensor) and out.shape == (2, 2)
    assert len(seen) == 1 and seen[0][0] is Maxout and seen[0][1] is out
    assert out.grad_fn is not None


def test_maxout_never_saturates():
    """Linear in each regime: the gradient does not shrink for large inputs."""
    w = torch.tensor([[1.0], [-1.0]], dtype=F64)  # max(x, −x) = |x|
    x = torch.tensor([[-1000.0], [-20.0], [20.0], [1000.0]], dtype=F64)
    d = grad_of(lambda t: Maxout.apply(t, w, None, 2), x)
    assert d.squeeze(1).tolist() == [-1.0, -1.0, 1.0, 1.0]


# --- torch.func transforms over the forward (the registry checks batch the backward) -----


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_torch_func_jacrev_jacfwd_and_vmap_agree_with_torch(name):
    entry = REGISTRY[name]
    wrt = 1 if name == "Maxout" else 0  # Maxout: the weight, the others: the input
    for sample in entry.samples(F64, torch.device("cpu")):
        args = [a.detach() if isinstance(a, torch.Tensor) else a for a in sample.args]
        if args[wrt].numel() == 0 or entry(*args).numel() == 0:
            continue

        def ours(t, args=args):
            return entry(*args[:wrt], t, *args[wrt + 1 :])

        def theirs(t, args=args):
            return entry.reference(*args[:wrt], t, *args[wrt + 1 :])

        where = f"{name} [{sample.label}]"
        expected = torch.autograd.functional.jacobian(theirs, args[wrt])
        for transform in (torch.func.jacrev, torch.func.jacfwd):
            torch.testing.assert_close(
                transform(ours)(args[wrt]),
                expected,
                rtol=1e-12,
                atol=1e-15,
                msg=lambda m, t=transform, where=where: f"{where} {t.__name__}: {m}",
            )
        batch = torch.stack([args[wrt], 2 * args[wrt]])
        torch.testing.assert_close(
            torch.func.vmap(ours)(batch),
            torch.stack([theirs(t) for t in batch]),
            rtol=1e-12,
            atol=1e-15,
            msg=lambda m, where=where: f"{where} vmap: {m}",
        )
