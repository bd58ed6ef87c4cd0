"""torchmanual.nn: drop-in for torch.nn — same init, state_dict, repr, values and gradients."""

import itertools
from collections import OrderedDict

import pytest
import torch

import torchmanual.nn as tnn

F64 = torch.float64


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=F64)


# (name, constructor args, kwargs, input maker) for every module torch.nn also has.
DROP_INS = [
    ("Linear", (5, 3), {}, lambda: randn(4, 5)),
    ("Linear", (5, 3), {"bias": False}, lambda: randn(2, 6, 5)),
    ("Sigmoid", (), {}, lambda: randn(4, 5)),
    ("Tanh", (), {}, lambda: randn(4, 5)),
    ("ReLU", (), {}, lambda: randn(4, 5)),
    ("LeakyReLU", (0.2,), {}, lambda: randn(4, 5)),
    ("PReLU", (), {}, lambda: randn(4, 5)),
    ("PReLU", (5,), {"init": 0.1}, lambda: randn(4, 5, 3)),
    ("ELU", (), {"alpha": 0.5}, lambda: randn(4, 5)),
    ("GELU", (), {}, lambda: randn(4, 5)),
    ("GELU", (), {"approximate": "tanh"}, lambda: randn(4, 5)),
    ("SiLU", (), {}, lambda: randn(4, 5)),
    ("Softplus", (), {"beta": 2.0, "threshold": 5.0}, lambda: randn(4, 5)),
    ("BatchNorm1d", (5,), {}, lambda: randn(8, 5)),
    ("BatchNorm1d", (5,), {"momentum": None}, lambda: randn(8, 5, 3)),
    ("BatchNorm1d", (5,), {"affine": False}, lambda: randn(8, 5)),
    ("BatchNorm1d", (5,), {"track_running_stats": False}, lambda: randn(8, 5)),
]


def make_pair(name, args, kwargs, seed=0):
    torch.manual_seed(seed)
    ours = (
        getattr(tnn, name)(*args, **kwargs, dtype=F64)
        if _factory(name)
        else getattr(tnn, name)(*args, **kwargs).double()
    )
    torch.manual_seed(seed)
    theirs = (
        getattr(torch.nn, name)(*args, **kwargs, dtype=F64)
        if _factory(name)
        else getattr(torch.nn, name)(*args, **kwargs).double()
    )
    return ours, theirs


def _factory(name):
    return name in {"Linear", "PReLU", "BatchNorm1d"}


def ids(case):
    name, args, kwargs, _ = case
    return f"{name}{args}{kwargs or ''}"


@pytest.mark.parametrize("case", DROP_INS, ids=[ids(c) for c in DROP_INS])
def test_same_init_state_dict_and_repr_as_torch(case):
    name, args, kwargs, _ = case
    ours, theirs = make_pair(name, args, kwargs)
    assert repr(ours) == repr(theirs)
    mine, expected = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(expected)
    for key in expected:
        assert torch.equal(mine[key], expected[key]), key
    # load_state_dict works both ways.
    ours.load_state_dict(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    assert isinstance(ours, torch.nn.Module)


@pytest.mark.parametrize("case", DROP_INS, ids=[ids(c) for c in DROP_INS])
@pytest.mark.parametrize("training", [True, False])
def test_same_values_and_gradients_as_torch(case, training):
    name, args, kwargs, make_input = case
    ours, theirs = make_pair(name, args, kwargs)
    ours.train(training)
    theirs.train(training)
    for step in range(3):  # several steps: running statistics must evolve identically
        x = make_input().requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        out, expected = ours(x), theirs(x_ref)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-13)
        grad = torch.randn_like(out)
        out.backward(grad)
        expected.backward(grad)
        torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-10, atol=1e-12)
        for (key, p), (_, p_ref) in zip(
            ours.named_parameters(), theirs.named_parameters(), strict=True
        ):
            torch.testing.assert_close(
                p.grad, p_ref.grad, rtol=1e-10, atol=1e-12, msg=f"step {step} {key}"
            )
        for key, buf in theirs.state_dict().items():
            torch.testing.assert_close(
                ours.state_dict()[key], buf, rtol=1e-12, atol=1e-14, msg=f"step {step} buffer {key}"
            )


def test_factory_arguments_place_parameters():
    layer = tnn.Linear(3, 2, device="cpu", dtype=torch.float64)
    assert layer.weight.dtype == F64 and layer.bias.device.type == "cpu"
    maxout = tnn.Maxout(3, 2, pieces=3, dtype=torch.float16)
    assert maxout.weight.shape == (6, 3) and maxout.weight.dtype == torch.float16


def test_inplace_is_refused_at_construction():
    for cls in (tnn.ReLU, tnn.LeakyReLU, tnn.ELU, tnn.SiLU):
        with pytest.raises(NotImplementedError, match=r"inplace=True"):
            cls(inplace=True)


def test_unsupported_loss_options_are_refused_at_construction():
    with pytest.raises(NotImplementedError, match="weight"):
        tnn.CrossEntropyLoss(weight=torch.ones(3))
    with pytest.raises(NotImplementedError, match="label_smoothing=0.1"):
        tnn.CrossEntropyLoss(label_smoothing=0.1)
    with pytest.raises(NotImplementedError, match="pos_weight"):
        tnn.BCEWithLogitsLoss(pos_weight=torch.ones(3))
    with pytest.raises(ValueError, match="reduction='avg'"):
        tnn.HingeLoss(reduction="avg")


LOSSES = [
    ("MSELoss", lambda: (randn(4, 3), randn(4, 3))),
    ("CrossEntropyLoss", lambda: (randn(4, 3), torch.tensor([0, 2, 1, 1]))),
    ("BCELoss", lambda: (torch.rand(4, 3, dtype=F64) * 0.9 + 0.05, torch.rand(4, 3, dtype=F64))),
    ("BCEWithLogitsLoss", lambda: (randn(4, 3), torch.rand(4, 3, dtype=F64))),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("name", "make"), LOSSES, ids=[n for n, _ in LOSSES])
def test_loss_modules_match_torch(name, make, reduction):
    ours, theirs = (
        getattr(tnn, name)(reduction=reduction),
        getattr(torch.nn, name)(reduction=reduction),
    )
    assert repr(ours) == repr(theirs)
    x, target = make()
    x.requires_grad_()
    out, expected = ours(x, target), theirs(x, target)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-14)
    (g,) = torch.autograd.grad(out.sum(), x)
    (g_ref,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-14)


def test_slide_losses_against_torch_relatives():
    scores, sign = randn(6), torch.tensor([1.0, -1, 1, 1, -1, -1], dtype=F64)
    torch.testing.assert_close(
        tnn.LogisticLoss()(scores, sign),
        torch.nn.SoftMarginLoss()(scores, sign),
        rtol=1e-12,
        atol=0,
    )
    torch.testing.assert_close(
        tnn.HingeLoss(reduction="none")(scores, sign), torch.relu(1 - sign * scores), rtol=0, atol=0
    )
    s, y = randn(5, 4), torch.tensor([0, 3, 1, 2, 3])
    torch.testing.assert_close(
        tnn.MulticlassSVMLoss(margin=0.5)(s, y),
        torch.nn.MultiMarginLoss(margin=0.5)(s, y) * 4,
        rtol=1e-12,
        atol=0,
    )


def torch_mlp(sizes, act=torch.nn.ReLU):
    layers = OrderedDict()
    for i, (a, b) in enumerate(itertools.pairwise(sizes), start=1):
        layers[f"fc{i}"] = torch.nn.Linear(a, b)
        if i < len(sizes) - 1:
            layers[f"act{i}"] = act()
    return torch.nn.Sequential(layers)


def test_mlp_is_the_equivalent_torch_sequential():
    torch.manual_seed(3)
    ours = tnn.MLP([4, 16, 8, 3], activation="tanh")
    torch.manual_seed(3)
    theirs = torch_mlp([4, 16, 8, 3], torch.nn.Tanh)
    assert [n for n, _ in ours.named_children()] == ["fc1", "act1", "fc2", "act2", "fc3"]
    assert isinstance(ours, torch.nn.Sequential)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(5, 4)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-6, atol=1e-7)


def test_drop_in_training_changes_no_number():
    """Swap torch.nn for torchmanual.nn in a float64 training loop: same trajectory."""

    def train(nn, optim_cls):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).double()
        loss_fn = nn.CrossEntropyLoss()
        optimizer = optim_cls(model.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(16, 3, generator=g, dtype=F64), torch.randint(0, 2, (16,), generator=g)
        for _ in range(20):
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        return model.state_dict()

    class Namespace:
        Sequential = torch.nn.Sequential
        Linear, Tanh, CrossEntropyLoss = tnn.Linear, tnn.Tanh, tnn.CrossEntropyLoss

    ours = train(Namespace, torch.optim.SGD)
    theirs = train(torch.nn, torch.optim.SGD)
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-12, atol=1e-14)


def test_mlp_options():
    bn = tnn.MLP([4, 8, 8, 2], activation="elu", batch_norm=True, bias=False)
    names = [n for n, _ in bn.named_children()]
    assert names == ["fc1", "bn1", "act1", "fc2", "bn2", "act2", "fc3"]
    assert bn.fc1.bias is None and isinstance(bn.act1, tnn.ELU)
    maxout = tnn.MLP([4, 8, 2], activation="maxout")
    assert [n for n, _ in maxout.named_children()] == ["fc1", "fc2"]
    assert isinstance(maxout.fc1, tnn.Maxout) and isinstance(maxout.fc2, tnn.Linear)
    assert maxout(torch.randn(3, 4)).shape == (3, 2)
    custom = tnn.MLP([4, 8, 2], activation=torch.nn.Hardtanh)
    assert isinstance(custom.act1, torch.nn.Hardtanh)
    double = tnn.MLP([4, 8, 2], activation="prelu", dtype=torch.float64)
    assert all(p.dtype == F64 for p in double.parameters())


def test_mlp_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match=r"unknown activation 'swish'.*sigmoid, tanh, relu"):
        tnn.MLP([2, 3], activation="swish")
    with pytest.raises(ValueError, match=r"got \[2\]"):
        tnn.MLP([2])
    with pytest.raises(ValueError, match=r"got \[2, 0, 1\]"):
        tnn.MLP([2, 0, 1])
    with pytest.raises(TypeError, match="activation must be a name or a torch.nn.Module class"):
        tnn.MLP([2, 3, 1], activation=torch.relu)
    with pytest.raises(ValueError, match="pieces must be a positive int, got 0"):
        tnn.Maxout(3, 2, pieces=0)


def test_batchnorm_standardises_then_shifts_and_scales():
    bn = tnn.BatchNorm1d(3).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 5.0]))
    out = bn(randn(64, 3) * 7 + 4)
    torch.testing.assert_close(out.mean(0), bn.bias.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(out.std(0, unbiased=False), bn.weight.detach(), rtol=1e-4, atol=0)


def test_batchnorm_errors_name_the_shape():
    bn = tnn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 3\)"):
        bn(torch.randn(1, 3))
    with pytest.raises(ValueError, match=r"running_mean must have shape \(4,\)"):
        bn.eval()
        bn(torch.randn(5, 4))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (64, 7, 33)], ids=str)
def test_batchnorm_training_values_bit_for_bit_with_torch(dtype, shape):
    """Training-mode values equal F.batch_norm's exactly (its sequential sums and x·α + β)."""
    from torchmanual.autograd.normalization import BatchNorm

    gen = torch.Generator().manual_seed(7)
    x = torch.randn(shape, generator=gen, dtype=dtype) * 3 + 1
    weight = torch.randn(shape[1], generator=gen, dtype=dtype)
    bias = torch.randn(shape[1], generator=gen, dtype=dtype)
    actual = BatchNorm.apply(x, weight, bias, None, None, 1e-5)
    expected = torch.nn.functional.batch_norm(x, None, None, weight, bias, training=True, eps=1e-5)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0, equal_nan=True)
