"""torchmanual.init: the slides' initialisations (SLIDES.md section 9) against torch.nn.init."""

import math

import pytest
import torch

import torchmanual.functional as F
from torchmanual import init
from torchmanual.nn import MLP
from torchmanual.optim import SGD

OUT, IN = 2000, 1000  # a weight in torch's (out, in) layout: fan_in = 1000, fan_out = 2000

# scheme function, the slides' std for an (OUT, IN) weight
STD_FORMULAS = [
    (init.small_normal_, 0.01),
    (init.unit_normal_, 1.0),
    (init.xavier_, 1.0 / math.sqrt(IN)),
    (init.glorot_normal_, math.sqrt(2.0 / (IN + OUT))),
    (init.he_, 1.0 / math.sqrt(IN / 2.0)),
]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("fn", "std"), STD_FORMULAS, ids=lambda v: getattr(v, "__name__", ""))
def test_empirical_std_matches_the_slides_formula(fn, std):
    w = fn(torch.empty(OUT, IN), generator=gen())
    # 2e6 samples: the sample std is within ~0.1% of the truth, so 2% is a loose, safe bound.
    assert w.std().item() == pytest.approx(std, rel=0.02)
    assert abs(w.mean().item()) < 0.01 * std


def test_uniform_is_within_eps_with_the_uniform_std():
    eps = 0.05
    w = init.uniform_(torch.empty(OUT, IN), eps, generator=gen())
    assert w.abs().max().item() <= eps
    assert w.std().item() == pytest.approx(eps / math.sqrt(3.0), rel=0.02)


# Each scheme draws exactly what its torch.nn.init counterpart draws from the same generator.
TORCH_COUNTERPARTS = [
    (
        init.xavier_,
        lambda w, g: torch.nn.init.kaiming_normal_(w, nonlinearity="linear", generator=g),
    ),
    (init.he_, lambda w, g: torch.nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g)),
    (init.glorot_normal_, lambda w, g: torch.nn.init.xavier_normal_(w, generator=g)),
    (init.small_normal_, lambda w, g: torch.nn.init.normal_(w, 0.0, 0.01, generator=g)),
    (init.unit_normal_, lambda w, g: torch.nn.init.normal_(w, 0.0, 1.0, generator=g)),
    (
        lambda w, generator: init.uniform_(w, 0.3, generator=generator),
        lambda w, g: torch.nn.init.uniform_(w, -0.3, 0.3, generator=g),
    ),
    (init.zeros_, lambda w, g: torch.nn.init.zeros_(w)),
    (
        lambda w, generator: init.constant_(w, 0.7, generator=generator),
        lambda w, g: torch.nn.init.constant_(w, 0.7),
    ),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("fn", "ref"), TORCH_COUNTERPARTS)
def test_matches_torch_nn_init_draw_for_draw(fn, ref, dtype):
    ours = fn(torch.empty(30, 17, dtype=dtype), generator=gen(3))
    theirs = ref(torch.empty(30, 17, dtype=dtype), gen(3))
    # NOTE: he_ computes 1/sqrt(fan_in/2), torch sqrt(2)/sqrt(fan_in): equal up to an ulp.
    torch.testing.assert_close(ours, theirs, rtol=1e-12 if dtype == torch.float64 else 0, atol=0)


@pytest.mark.parametrize("name", sorted(init.SCHEMES))
def test_in_place_on_a_parameter_returns_it_and_records_no_graph(name):
    p = torch.nn.Parameter(torch.full((40, 30), 5.0))
    out = init.SCHEMES[name](p, generator=gen())
    assert out is p
    assert out.grad_fn is None and p.requires_grad
    assert not torch.equal(p.detach(), torch.full((40, 30), 5.0))


@pytest.mark.parametrize("name", ["small", "unit", "xavier", "glorot", "he"])
def test_generator_makes_draws_reproducible(name):
    fn = init.SCHEMES[name]
    a = fn(torch.empty(20, 10), generator=gen(1))
    b = fn(torch.empty(20, 10), generator=gen(1))
    c = fn(torch.empty(20, 10), generator=gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_fans_of_a_conv_weight_include_the_kernel_like_torch():
    ours = init.he_(torch.empty(8, 4, 3, 3), generator=gen(5))
    theirs = torch.nn.init.kaiming_normal_(
        torch.empty(8, 4, 3, 3), nonlinearity="relu", generator=gen(5)
    )
    torch.testing.assert_close(ours, theirs)


def test_scheme_names():
    assert set(init.SCHEMES) == {"zeros", "small", "unit", "xavier", "glorot", "he"}


@pytest.mark.parametrize("fn", [init.xavier_, init.glorot_normal_, init.he_])
@pytest.mark.parametrize("shape", [(5,), ()])
def test_fan_schemes_reject_tensors_with_fewer_than_2_dims(fn, shape):
    with pytest.raises(
        ValueError,
        match=r"at least 2 dims.*shape "
        + str(tuple(shape)).replace("(", r"\(").replace(")", r"\)"),
    ):
        fn(torch.empty(shape))


@pytest.mark.parametrize("fn", [init.small_normal_, init.unit_normal_, init.zeros_])
def test_fan_free_schemes_accept_1d(fn):
    assert fn(torch.ones(7)).shape == (7,)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "x"])
def test_bad_std_and_eps_raise_naming_the_value(bad):
    with pytest.raises(ValueError, match=r"std .*" + str(bad).replace(".", r"\.")):
        init.small_normal_(torch.empty(3, 3), std=bad)
    with pytest.raises(ValueError, match=r"eps .*" + str(bad).replace(".", r"\.")):
        init.uniform_(torch.empty(3, 3), bad)


def test_zero_element_weight_is_a_no_op():
    assert init.he_(torch.empty(0, 5)).shape == (0, 5)


def nested_model() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(400, 300),
        torch.nn.BatchNorm1d(300),
        torch.nn.ReLU(),
        torch.nn.Sequential(torch.nn.Linear(300, 200), torch.nn.ReLU()),
        torch.nn.Linear(200, 10),
    )


def test_apply_initialises_every_linear_and_zeros_biases():
    model = nested_model()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(3.0)
    assert init.apply_(model, "he", generator=gen()) is model
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    for lin in linears:
        fan_in = lin.weight.shape[1]
        assert lin.weight.std().item() == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.1)
        assert torch.equal(lin.bias, torch.zeros_like(lin.bias))
    bn = model[1]
    assert torch.equal(bn.weight, torch.full_like(bn.weight, 3.0))  # 1-d weight: untouched
    assert torch.equal(bn.bias, torch.zeros_like(bn.bias))


def test_apply_zeros_scheme_zeros_every_weight():
    model = init.apply_(nested_model(), "zeros")
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            assert not m.weight.any() and not m.bias.any()


def test_apply_works_on_a_custom_module_with_weight_and_bias():
    class Affine(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(6, 4))
            self.bias = torch.nn.Parameter(torch.ones(6))

    m = init.apply_(Affine(), "xavier", generator=gen(9))
    torch.testing.assert_close(m.weight, init.xavier_(torch.empty(6, 4), generator=gen(9)))
    assert not m.bias.any()


def test_apply_unknown_scheme_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"'kaiming'.*glorot.*he.*small.*unit.*xavier.*zeros"):
        init.apply_(nested_model(), "kaiming")


def train_sigmoid_mlp(initialise, steps: int = 20) -> torch.nn.Sequential:
    """The slides' symmetry experiment: a torchmanual sigmoid MLP, MSE regression, our SGD."""
    g = gen(7)
    x = torch.randn(32, 3, generator=g, dtype=torch.float64)
    y = torch.randn(32, 1, generator=g, dtype=torch.float64)
    model = MLP([3, 6, 1], activation="sigmoid", dtype=torch.float64)  # fc1, act1, fc2
    initialise(model)
    opt = SGD(model.parameters(), lr=0.5)
    for _ in range(steps):
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
    return model


def constant_init(model):
    for m in (model[0], model[2]):
        init.constant_(m.weight, 0.3)
        init.zeros_(m.bias)


@pytest.mark.parametrize(
    "initialise",
    [constant_init, lambda m: init.apply_(m, "zeros")],
    ids=["constant", "zeros"],
)
def test_equal_weights_keep_hidden_units_identical_after_training(initialise):
    model = train_sigmoid_mlp(initialise)
    fc1, fc2 = model[0], model[2]
    # every hidden unit got the same update: rows of fc1 (and entries of fc2) stay equal ...
    torch.testing.assert_close(fc1.weight, fc1.weight[:1].expand_as(fc1.weight), rtol=0, atol=1e-12)
    torch.testing.assert_close(fc1.bias, fc1.bias[:1].expand_as(fc1.bias), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        fc2.weight, fc2.weight[:, :1].expand_as(fc2.weight), rtol=0, atol=1e-12
    )
    # ... although training did move the network
    assert not torch.equal(fc2.weight, torch.full_like(fc2.weight, 0.3))


@pytest.mark.parametrize(
    "initialise",
    [
        lambda m: [init.uniform_(m[i].weight, 0.1, generator=gen(i)) for i in (0, 2)],
        lambda m: init.apply_(m, "small", generator=gen()),
    ],
    ids=["uniform", "small"],
)
def test_random_init_breaks_the_symmetry(initialise):
    w = train_sigmoid_mlp(initialise)[0].weight
    row_gaps = torch.cdist(w, w) + torch.eye(w.shape[0], dtype=w.dtype)  # ignore the diagonal
    assert row_gaps.min().item() > 1e-4
