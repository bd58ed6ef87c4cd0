"""The slides' worked examples (SLIDES.md section 7), with the slides' numbers."""

import pytest
import torch

import torchmanual.functional as F


def scalars(*values: float) -> list[torch.Tensor]:
    return [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]


def test_add_then_multiply_circuit():
    """f(x, y, z) = (x + y) z at x=-2, y=5, z=-4."""
    x, y, z = scalars(-2.0, 5.0, -4.0)
    q = F.add(x, y)
    q.retain_grad()
    f = F.mul(q, z)
    f.backward()
    assert q.item() == 3.0 and f.item() == -12.0
    assert q.grad.item() == -4.0  # ∂f/∂q = z
    assert z.grad.item() == 3.0  # ∂f/∂z = q
    assert x.grad.item() == -4.0 and y.grad.item() == -4.0  # add distributes ∂f/∂q


def sigmoid_neuron_from_gates(w0, x0, w1, x1, w2):
    """1 / (1 + exp(-(w0 x0 + w1 x1 + w2))) built from the slides' gates."""
    dot = F.add(F.add(F.mul(w0, x0), F.mul(w1, x1)), w2)
    negated = F.scale(dot, -1.0)
    exped = F.exp(negated)
    shifted = F.shift(exped, 1.0)
    out = F.reciprocal(shifted)
    return out, [dot, negated, exped, shifted]


def test_sigmoid_neuron_gate_by_gate():
    w0, x0, w1, x1, w2 = scalars(2.0, -1.0, -3.0, -2.0, -3.0)
    out, wires = sigmoid_neuron_from_gates(w0, x0, w1, x1, w2)
    for wire in wires:
        wire.retain_grad()
    out.backward()
    dot, negated, exped, shifted = wires
    assert dot.item() == 1.0
    assert round(out.item(), 2) == 0.73
    assert round(shifted.item(), 2) == 1.37
    # Backward, gate by gate, as the slides walk it.
    assert round(shifted.grad.item(), 2) == -0.53  # 1/x: (-1/1.37²)(1.00)
    assert round(exped.grad.item(), 2) == -0.53  # +1: (1)(-0.53)
    assert round(negated.grad.item(), 2) == -0.20  # exp: (e^-1)(-0.53)
    assert round(dot.grad.item(), 2) == 0.20  # ×(-1): (-1)(-0.20)
    grads = {
        name: round(t.grad.item(), 2)
        for name, t in zip(("w0", "x0", "w1", "x1", "w2"), (w0, x0, w1, x1, w2), strict=True)
    }
    assert grads == {"w0": -0.20, "x0": 0.39, "w1": -0.39, "x1": -0.59, "w2": 0.20}


def test_sigmoid_neuron_with_one_sigmoid_gate_gives_the_same_gradients():
    gates = scalars(2.0, -1.0, -3.0, -2.0, -3.0)
    one = scalars(2.0, -1.0, -3.0, -2.0, -3.0)
    out_gates, _ = sigmoid_neuron_from_gates(*gates)
    out_gates.backward()
    w0, x0, w1, x1, w2 = one
    dot = F.add(F.add(F.mul(w0, x0), F.mul(w1, x1)), w2)
    dot.retain_grad()
    out = F.sigmoid(dot)
    out.backward()
    # dσ/dx = (1 − σ) σ = (0.27)(0.73) = 0.20, in one step.
    assert round(dot.grad.item(), 2) == 0.20
    assert out.item() == pytest.approx(out_gates.item(), rel=1e-15)
    for a, b in zip(gates, one, strict=True):
        assert a.grad.item() == pytest.approx(b.grad.item(), rel=1e-12)


def test_gradients_sum_at_a_branch():
    """A value feeding two gates receives the sum of both flows (f = x·x + x)."""
    (x,) = scalars(3.0)
    f = F.add(F.mul(x, x), x)
    f.backward()
    assert x.grad.item() == 2 * 3.0 + 1.0


def test_max_routes_and_add_distributes():
    x, y = scalars(4.0, 2.0)
    F.maximum(x, y).backward()
    assert (x.grad.item(), y.grad.item()) == (1.0, 0.0)
