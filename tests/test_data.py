"""torchmanual.data: the slides' problems, digits, and the preprocessing from the slides."""

import dataclasses
import math
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchmanual import data
from torchmanual.data import (
    DATASETS,
    Data,
    Standardize,
    Whiten,
    load,
    preprocess,
    regression,
    standardize,
    whiten,
)

EXPECTED = {
    # name: (task, in_features, out_features, num_classes)
    "and": ("classification", 2, 2, 2),
    "xor": ("classification", 2, 2, 2),
    "circles": ("classification", 2, 2, 2),
    "spiral": ("classification", 2, 3, 3),
    "digits": ("classification", 64, 10, 10),
    "square": ("regression", 1, 1, None),
    "reciprocal": ("regression", 1, 1, None),
    "sin": ("regression", 1, 1, None),
}


def test_datasets_lists_every_name():
    assert set(DATASETS) == set(EXPECTED)
    assert len(DATASETS) == len(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_load_gives_consistent_data(name):
    d = load(name)
    task, in_features, out_features, num_classes = EXPECTED[name]
    assert isinstance(d, Data)
    assert (d.name, d.task, d.in_features, d.out_features, d.num_classes) == (
        name,
        task,
        in_features,
        out_features,
        num_classes,
    )
    for split in (d.train, d.test):
        x, y = split.tensors
        assert x.dtype == torch.float32
        assert x.ndim == 2 and x.shape[1] == in_features
        assert y.shape[0] == x.shape[0]
        assert torch.isfinite(x).all()
        if task == "classification":
            assert y.dtype == torch.int64 and y.ndim == 1
            assert set(y.unique().tolist()) == set(range(num_classes))
        else:
            assert y.dtype == torch.float32 and y.shape == (x.shape[0], 1)


@pytest.mark.parametrize("name", ["circles", "spiral", "square", "reciprocal", "sin"])
def test_random_problems_are_seeded_and_leave_the_global_rng_alone(name):
    before = torch.get_rng_state()
    a, b, c = load(name, seed=0), load(name, seed=0), load(name, seed=1)
    assert torch.equal(torch.get_rng_state(), before)
    for first, second in zip(
        a.train.tensors + a.test.tensors, b.train.tensors + b.test.tensors, strict=True
    ):
        assert torch.equal(first, second)
    assert not torch.equal(a.train.tensors[0], c.train.tensors[0])
    # The test split is an independent draw, not a copy of the training split.
    assert not torch.equal(a.train.tensors[0], a.test.tensors[0])


def test_dtype_keyword():
    for name in DATASETS:
        d = load(name, dtype=torch.float64)
        assert d.train.tensors[0].dtype == torch.float64
        assert d.test.tensors[0].dtype == torch.float64
        if d.task == "regression":
            assert d.train.tensors[1].dtype == torch.float64


@pytest.mark.parametrize(
    ("loader", "targets"), [(data.and_, [0, 0, 0, 1]), (data.xor, [0, 1, 1, 0])]
)
def test_logic_gates_are_the_truth_table(loader, targets):
    d = loader()
    x, y = d.train.tensors
    assert x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert y.tolist() == targets
    assert torch.equal(d.test.tensors[0], x) and torch.equal(d.test.tensors[1], y)


def test_circles_geometry():
    d = data.circles(n=1001, noise=0.0, factor=0.3)
    x, y = d.train.tensors
    assert x.shape == (1001, 2) and len(d.test) == 1001
    radius = x.norm(dim=1)
    assert (y == 0).sum() == 500 and (y == 1).sum() == 501
    torch.testing.assert_close(radius[y == 0], torch.ones(500))
    torch.testing.assert_close(radius[y == 1], torch.full((501,), 0.3))
    noisy = data.circles(n=1000, noise=0.1, factor=0.3).train.tensors[0]
    assert 0.05 < (noisy.norm(dim=1)[:500] - 1).std() < 0.2


def test_spiral_follows_cs231n():
    d = data.spiral(n=50, classes=4, noise=0.0)
    x, y = d.train.tensors
    assert x.shape == (200, 2) and d.num_classes == 4 and d.out_features == 4
    assert torch.equal(y, torch.arange(4).repeat_interleave(50))
    # Arm k: radius linspace(0, 1, n), angle linspace(4k, 4k + 4, n); x = r sin t, y = r cos t.
    r = torch.linspace(0, 1, 50, dtype=torch.float64)
    t = torch.linspace(8.0, 12.0, 50, dtype=torch.float64)
    expected = torch.stack([r * torch.sin(t), r * torch.cos(t)], dim=1).float()
    torch.testing.assert_close(x[100:150], expected)


@pytest.mark.parametrize(
    ("name", "fn", "low", "high"),
    [
        ("square", torch.square, -1.0, 1.0),
        ("reciprocal", torch.reciprocal, 1.0, 100.0),
        ("sin", torch.sin, 1.0, 2 * math.pi),
    ],
)
def test_regression_curves(name, fn, low, high):
    d = regression(name, n=500, dtype=torch.float64)
    for x, y in (d.train.tensors, d.test.tensors):
        assert x.shape == y.shape == (500, 1)
        assert x.min() >= low and x.max() <= high
        # Uniform on the whole interval: both ends are approached.
        assert x.min() < low + 0.05 * (high - low) and x.max() > high - 0.05 * (high - low)
        torch.testing.assert_close(y, fn(x))
        assert torch.all(x[1:] >= x[:-1])  # sorted, for plotting
    noisy = regression(name, n=500, noise=0.1, dtype=torch.float64)
    x, y = noisy.train.tensors
    assert 0.07 < (y - fn(x)).std() < 0.13


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"'cube'.*square, reciprocal, sin"):
        regression("cube")
    with pytest.raises(ValueError, match=r"'mnist'.*and, xor, circles, spiral, digits, square"):
        load("mnist")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: data.circles(n=1), "n must be an integer >= 2, got 1"),
        (lambda: data.circles(factor=1.5), "factor must be between 0 and 1.*1.5"),
        (lambda: data.circles(noise=-0.1), "noise must be .* got -0.1"),
        (lambda: data.spiral(classes=1), "classes must be an integer >= 2, got 1"),
        (lambda: data.spiral(n=0), "n must be an integer >= 1, got 0"),
        (lambda: regression("sin", n=2.5), "n must be an integer >= 1, got 2.5"),
    ],
)
def test_bad_arguments_name_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_digits_split():
    d = data.digits()
    x_train, y_train = d.train.tensors
    x_test, y_test = d.test.tensors
    assert len(d.train) == 1437 and len(d.test) == 360
    assert x_train.dtype == torch.float32 and x_train.shape[1] == 64
    assert x_train.min() == 0 and x_train.max() == 1 and x_test.max() <= 1
    # Stratified: each class's share of the test split is its share of the whole.
    all_counts = torch.bincount(torch.cat([y_train, y_test]), minlength=10)
    test_counts = torch.bincount(y_test, minlength=10)
    assert torch.all((test_counts - 0.2 * all_counts).abs() <= 1)
    again, other = data.digits(), data.digits(seed=1)
    assert torch.equal(again.test.tensors[0], x_test)
    assert not torch.equal(other.test.tensors[0], x_test)


def test_digits_without_scikit_learn_says_what_to_install(monkeypatch):
    for module in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` fail
    with pytest.raises(ImportError, match=r'pip install "torchmanual\[data\]"'):
        data.digits()


def test_data_is_frozen_and_has_a_short_repr():
    d = data.spiral(n=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.name = "other"
    assert repr(d) == (
        "Data(name='spiral', task='classification', train=30, test=30, "
        "in_features=2, out_features=3)"
    )


# --- preprocessing ---------------------------------------------------------------------------


def _correlated(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.tensor([[3.0, 0.0, 0.0], [2.0, 0.5, 0.0], [-1.0, 1.0, 1.0]], dtype=torch.float64)
    return torch.randn(n, 3, generator=g, dtype=torch.float64) @ mix + 5.0 + shift


def test_standardize_uses_training_statistics_for_test():
    train_x, test_x = _correlated(1000, 0), _correlated(1000, 1, shift=2.0)
    stats = standardize(train_x)
    assert isinstance(stats, Standardize)
    z = stats(train_x)
    torch.testing.assert_close(z.mean(0), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(z.std(0, correction=0), torch.ones(3, dtype=torch.float64))
    expected = (test_x - train_x.mean(0)) / train_x.std(0, correction=0)
    torch.testing.assert_close(stats(test_x), expected)
    # The shifted test split keeps its shift: it was not standardised with its own mean.
    assert torch.all(stats(test_x).mean(0) > 0.1)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 60),
    features=st.integers(1, 6),
    scale=st.floats(1e-3, 1e3),
    offset=st.floats(-1e3, 1e3),
)
def test_standardize_property(seed, n, features, scale, offset):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g, dtype=torch.float64) * scale + offset
    z = standardize(x)(x)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(
        z.mean(0), torch.zeros(features, dtype=torch.float64), atol=1e-9, rtol=0
    )
    torch.testing.assert_close(z.std(0, correction=0), torch.ones(features, dtype=torch.float64))


def test_standardize_only_centres_constant_features():
    train_x = torch.tensor([[0.0, 1.0], [0.0, 3.0], [0.0, 5.0]])
    stats = standardize(train_x)
    assert stats.std[0] == 1.0  # not 0: no division by ~0
    out = stats(torch.tensor([[0.5, 3.0]]))
    assert out.tolist() == [[0.5, 0.0]]


def test_whiten_gives_identity_covariance_on_train_only():
    train_x, test_x = _correlated(2000, 0), _correlated(2000, 1, shift=1.0)
    stats = whiten(train_x)
    assert isinstance(stats, Whiten)
    z = stats(train_x)
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(z.mean(0), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(z.T @ z / len(z), eye, atol=1e-3, rtol=0)
    # Test data goes through the training mean and matrix, not statistics of its own.
    expected = (test_x - train_x.mean(0)) @ stats.matrix
    torch.testing.assert_close(stats(test_x), expected)
    zt = stats(test_x)
    assert (zt.mean(0).abs() > 0.05).any()


def test_whiten_float32_and_degenerate_directions():
    x = _correlated(500, 0).float()
    x = torch.cat([x, x[:, :1] * 2.0], dim=1)  # a 4th feature that adds no variance direction
    z = whiten(x)(x)
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    covariance = z.T @ z / len(z)
    # Three real directions whitened to 1; the empty one stays ~0 instead of exploding.
    eigenvalues = torch.linalg.eigvalsh(covariance.double())
    torch.testing.assert_close(
        eigenvalues[1:], torch.ones(3, dtype=torch.float64), atol=1e-3, rtol=0
    )
    assert eigenvalues[0].abs() < 1e-3


def test_transforms_check_the_feature_count():
    stats = standardize(torch.randn(10, 3, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=r"fitted on 3 features.*\(4, 2\)"):
        stats(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="2-D floating-point"):
        whiten(torch.zeros(5, dtype=torch.int64))


@pytest.mark.parametrize("method", ["standardize", "whiten"])
def test_preprocess_fits_on_train_and_applies_to_both(method):
    d = load("reciprocal", n=300)
    new, transform = preprocess(d, method)
    x = new.train.tensors[0]
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std(correction=0)) - 1) < 1e-3
    torch.testing.assert_close(new.test.tensors[0], transform(d.test.tensors[0]))
    # Targets untouched, the original Data unchanged.
    assert torch.equal(new.train.tensors[1], d.train.tensors[1])
    assert torch.equal(new.test.tensors[1], d.test.tensors[1])
    assert d.train.tensors[0].mean() > 40
    assert (new.name, new.task, new.in_features, new.out_features) == (
        "reciprocal",
        "regression",
        1,
        1,
    )


def test_preprocess_none_and_unknown():
    d = data.xor()
    assert preprocess(d, None) == (d, None)
    assert preprocess(d, "none") == (d, None)
    with pytest.raises(ValueError, match=r"'pca'.*none, standardize, whiten"):
        preprocess(d, "pca")


def test_map_updates_in_features():
    d = data.circles(n=20)
    mapped = d.map(lambda x: torch.cat([x, x**2], dim=1))
    assert mapped.in_features == 4
    assert mapped.train.tensors[0].shape == (20, 4) and mapped.test.tensors[0].shape == (20, 4)
