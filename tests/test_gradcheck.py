"""torchmanual.gradcheck: the slides' numerical gradient, relative error, and the checker."""

import json
from typing import Any

import pytest
import torch

from torchmanual.autograd import REGISTRY, ManualFunction
from torchmanual.gradcheck import (
    CHECKS,
    check,
    check_all,
    check_entry,
    numerical_gradient,
    relative_error,
)


def test_numerical_gradient_of_a_known_function():
    x = torch.tensor([[0.5, -1.0], [2.0, 3.0]], dtype=torch.float64)
    before = x.clone()
    grad = numerical_gradient(lambda t: (t**3).sum(), x)
    torch.testing.assert_close(grad, 3 * before**2, rtol=1e-8, atol=1e-8)
    assert torch.equal(x, before), "every nudged entry must be restored"


def test_forward_difference_is_first_order_and_centred_second_order():
    x = torch.tensor([1.0], dtype=torch.float64)
    exact = torch.exp(x)
    forward = numerical_gradient(torch.exp, x, h=1e-3, centered=False)
    centred = numerical_gradient(torch.exp, x, h=1e-3, centered=True)
    assert (centred - exact).abs().item() < 1e-6 < (forward - exact).abs().item()


def test_slides_numerical_gradient_example():
    """The slides' worked loss: nudging W[1] by 1e-4 changes the loss 1.25347 → 1.25322."""
    assert round((1.25322 - 1.25347) / 0.0001, 6) == -2.5
    # And the routine reproduces a linear loss's slope exactly that way.
    w = torch.tensor([0.34, -1.11, 0.78], dtype=torch.float64)
    slope = torch.tensor([-2.5, 0.6, 0.0], dtype=torch.float64)
    grad = numerical_gradient(lambda t: (t * slope).sum() + 1.25347, w, h=1e-4, centered=False)
    torch.testing.assert_close(grad, slope, rtol=0, atol=1e-9)


def test_numerical_gradient_handles_0d_and_rejects_bad_arguments():
    x = torch.tensor(2.0, dtype=torch.float64)
    assert numerical_gradient(lambda t: t * t, x).item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="h=0"):
        numerical_gradient(lambda t: t, x, h=0)
    with pytest.raises(TypeError, match="int64"):
        numerical_gradient(lambda t: t, torch.tensor([1, 2]))


def test_relative_error():
    a = torch.tensor([1.0, 2.0, 0.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(torch.tensor([1.0]), torch.tensor([3.0])) == pytest.approx(0.5)
    assert relative_error(torch.zeros(0), torch.zeros(0)) == 0.0
    with pytest.raises(ValueError, match=r"\(2,\) and \(3,\)"):
        relative_error(torch.zeros(2), torch.zeros(3))


class WrongSigmoid(ManualFunction):
    """σ with the classic mistake: backward σ(1 + σ). Not registered: it is meant to fail."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad * y * (1 + y)

    @staticmethod
    def jvp(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return t * y * (1 + y)


def test_checker_catches_a_wrong_backward():
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    result = check(WrongSigmoid.apply, x, name="WrongSigmoid")
    assert not result.passed
    assert not result.checks["gradcheck"] and not result.checks["forward_ad"]
    assert "Jacobian mismatch" in result.errors["gradcheck"]
    assert result.max_rel_error > 0.1


def test_checker_passes_a_right_backward_and_reports_every_check():
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    result = check(REGISTRY["Sigmoid"].function.apply, x)
    assert result.passed and set(result.checks) == set(CHECKS)
    assert result.max_rel_error < 1e-7


def test_check_all_covers_the_registry_and_rejects_unknown_names():
    results = check_all(["Mul", "Exp"])
    assert [r.name for r in results] == ["Mul", "Exp"]
    assert all(r.passed for r in results)
    json.dumps([r.to_dict() for r in results])
    with pytest.raises(ValueError, match="NoSuchGate"):
        check_all(["NoSuchGate"])


def test_check_entry_merges_samples():
    result = check_entry(REGISTRY["Linear"], checks=("gradcheck",))
    assert result.checks == {"gradcheck": True}
