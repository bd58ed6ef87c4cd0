"""torchmanual.functional: torch-compatible calls and clear errors for bad input."""

import inspect

import pytest
import torch
import torch.nn.functional as TF

import torchmanual.functional as F


def f64(*shape: int, requires_grad: bool = True) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, requires_grad=requires_grad)


def test_every_public_name_of_the_design_exists():
    for name in (
        "add",
        "mul",
        "maximum",
        "exp",
        "reciprocal",
        "scale",
        "shift",
        "linear",
        "sigmoid",
        "tanh",
        "relu",
        "leaky_relu",
        "prelu",
        "elu",
        "gelu",
        "silu",
        "softplus",
        "step",
        "maxout",
        "mse_loss",
        "hinge_loss",
        "logistic_loss",
        "multiclass_svm_loss",
        "cross_entropy",
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
    ):
        assert callable(getattr(F, name)), name
        assert getattr(F, name).__doc__, f"{name} needs a docstring"


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("leaky_relu", {"negative_slope": 0.01}),
        ("elu", {"alpha": 1.0}),
    ],
)
def test_defaults_match_torch(name, params):
    ours = inspect.signature(getattr(F, name)).parameters
    theirs = inspect.signature(getattr(TF, name)).parameters
    for param, default in params.items():
        assert ours[param].default == default == theirs[param].default


def test_defaults_of_torch_builtins():
    # torch's C builtins have no inspectable signature: their documented defaults, and
    # calls that rely on them agree.
    x = f64(5)
    for name, param, default in (
        ("gelu", "approximate", "none"),
        ("softplus", "beta", 1.0),
        ("softplus", "threshold", 20.0),
        ("linear", "bias", None),
    ):
        assert inspect.signature(getattr(F, name)).parameters[param].default == default
    torch.testing.assert_close(F.gelu(x), TF.gelu(x), rtol=1e-12, atol=0)
    torch.testing.assert_close(F.softplus(x * 30), TF.softplus(x * 30), rtol=1e-12, atol=0)


def test_python_numbers_are_accepted_like_torch():
    x = f64(3)
    torch.testing.assert_close(F.add(x, 2), x + 2)
    torch.testing.assert_close(F.mul(x, 0.5), x * 0.5)
    torch.testing.assert_close(F.maximum(x, 0.0), torch.maximum(x, torch.tensor(0.0).double()))


def test_linear_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"3 features \(shape \(4, 3\)\).*\(2, 5\)"):
        F.linear(f64(4, 3), f64(2, 5))
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\).*got \(3,\)"):
        F.linear(f64(4, 3), f64(2, 3), f64(3))
    with pytest.raises(ValueError, match="0-d"):
        F.linear(torch.tensor(1.0, dtype=torch.float64), f64(2, 3))
    with pytest.raises(ValueError, match=r"weight must be 2-D.*\(3,\)"):
        F.linear(f64(4, 3), f64(3))
    with pytest.raises(TypeError, match="float32.*float64|float64.*float32"):
        F.linear(torch.randn(4, 3), f64(2, 3))


def test_broadcast_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"\(2,\) and \(3,\)"):
        F.add(f64(2), f64(3))


@pytest.mark.parametrize("fn", [F.hinge_loss, F.logistic_loss])
def test_plus_minus_one_targets(fn):
    scores = f64(4)
    with pytest.raises(ValueError, match="target must be -1 or 1, found 0.0"):
        fn(scores, torch.tensor([1.0, -1.0, 0.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"target shape \(3,\).*input shape \(4,\)"):
        fn(scores, torch.ones(3, dtype=torch.float64))
    with pytest.raises(NotImplementedError, match=r"target.detach\(\)"):
        fn(scores, torch.ones(4, dtype=torch.float64, requires_grad=True))
    # Integer ±1 targets are fine and behave like float ones.
    ints = torch.tensor([1, -1, 1, -1])
    torch.testing.assert_close(fn(scores, ints), fn(scores, ints.double()))


@pytest.mark.parametrize("fn", [F.cross_entropy, F.multiclass_svm_loss])
def test_class_index_out_of_range_names_the_index(fn):
    scores = f64(3, 5)
    with pytest.raises(IndexError, match=r"class index 7.*5 classes \(valid indices are 0..4\)"):
        fn(scores, torch.tensor([0, 7, 1]))
    with pytest.raises(IndexError, match="class index -1"):
        fn(scores, torch.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match=r"target shape \(2,\)"):
        fn(scores, torch.tensor([0, 1]))
    with pytest.raises(NotImplementedError, match="class probabilities"):
        fn(scores, torch.rand(3, 5, dtype=torch.float64))


def test_cross_entropy_unsupported_options_are_named():
    scores, target = f64(3, 5), torch.tensor([0, 1, 2])
    with pytest.raises(NotImplementedError, match="label_smoothing=0.1"):
        F.cross_entropy(scores, target, label_smoothing=0.1)
    with pytest.raises(NotImplementedError, match="weight"):
        F.cross_entropy(scores, target, weight=torch.ones(5))
    with pytest.raises(NotImplementedError, match="ignore_index=-100"):
        F.cross_entropy(scores, torch.tensor([0, -100, 2]))
    with pytest.raises(NotImplementedError, match="ignore_index=1"):
        F.cross_entropy(scores, target, ignore_index=1)
    # An ignore_index no target uses changes nothing.
    torch.testing.assert_close(
        F.cross_entropy(scores, target, ignore_index=4), TF.cross_entropy(scores, target)
    )


def test_binary_cross_entropy_needs_probabilities():
    target = torch.rand(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\], found 1.5"):
        F.binary_cross_entropy(torch.tensor([0.2, 1.5, 0.3], dtype=torch.float64), target)
    with pytest.raises(ValueError, match="found -0.1"):
        F.binary_cross_entropy(torch.tensor([-0.1, 0.5, 0.3], dtype=torch.float64), target)
    with pytest.raises(ValueError, match="found nan"):
        F.binary_cross_entropy(torch.tensor([float("nan"), 0.5, 0.3]).double(), target)
    with pytest.raises(NotImplementedError, match="pos_weight"):
        F.binary_cross_entropy_with_logits(f64(3), target, pos_weight=torch.ones(3))


def test_non_float_tensors_are_refused_with_their_dtype():
    with pytest.raises(TypeError, match="floating-point.*int64"):
        F.sigmoid(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="floating-point.*bool"):
        F.mul(f64(2), torch.tensor([True, False]))
    with pytest.raises(TypeError, match="must be a torch.Tensor, got list"):
        F.relu([1.0, 2.0])
    with pytest.raises(TypeError, match="a must be a Python number, got Tensor"):
        F.scale(f64(2), torch.tensor(2.0))


def test_bad_options_name_the_value_and_choices():
    x = f64(3)
    with pytest.raises(ValueError, match="reduction='avg'.*mean, sum, none"):
        F.mse_loss(x, x.detach(), reduction="avg")
    with pytest.raises(ValueError, match="approximate='fast'.*'none', 'tanh'"):
        F.gelu(x, approximate="fast")
    with pytest.raises(NotImplementedError, match="inplace=True"):
        F.relu(x, inplace=True)
    with pytest.raises(ValueError, match="beta=0"):
        F.softplus(x, beta=0)
    with pytest.raises(ValueError, match=r"prelu\(\): weight must have 1 or 4 elements.*\(3,\)"):
        F.prelu(f64(2, 4), f64(3))
    with pytest.raises(ValueError, match="pieces must be a positive int, got 0"):
        F.maxout(f64(2, 3), f64(4, 3), pieces=0)
    with pytest.raises(ValueError, match="5 rows, not a multiple of pieces=2"):
        F.maxout(f64(2, 3), f64(5, 3))


def test_loss_shape_mismatch_names_shapes():
    with pytest.raises(
        ValueError, match=r"target shape \(3, 1\) does not match input shape \(3,\)"
    ):
        F.mse_loss(f64(3), f64(3, 1))


@pytest.mark.parametrize(
    ("ours", "theirs", "args"),
    [
        (F.sigmoid, torch.sigmoid, lambda: (f64(4, 3),)),
        (F.leaky_relu, TF.leaky_relu, lambda: (f64(4, 3), 0.2)),
        (F.softplus, TF.softplus, lambda: (f64(4, 3), 2.0, 1.0)),
        (
            lambda x: F.gelu(x, "tanh"),
            lambda x: TF.gelu(x, approximate="tanh"),
            lambda: (f64(4, 3),),
        ),
        (F.linear, TF.linear, lambda: (f64(4, 3), f64(2, 3), f64(2))),
        (F.cross_entropy, TF.cross_entropy, lambda: (f64(4, 3), torch.tensor([0, 2, 1, 2]))),
        (
            F.binary_cross_entropy_with_logits,
            TF.binary_cross_entropy_with_logits,
            lambda: (f64(5), torch.rand(5, dtype=torch.float64)),
        ),
    ],
)
def test_functional_calls_match_torch_nn_functional(ours, theirs, args):
    inputs = args()
    mine = ours(*inputs)
    torch.testing.assert_close(mine, theirs(*inputs), rtol=1e-12, atol=1e-14)
    grad_ours = torch.autograd.grad(mine.sum(), inputs[0])
    grad_theirs = torch.autograd.grad(theirs(*inputs).sum(), inputs[0])
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-12, atol=1e-14)
