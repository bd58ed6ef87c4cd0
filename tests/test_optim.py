"""torchmanual.optim: SGD and gradient clipping, checked against torch.optim.SGD and
torch.nn.utils in float64."""

import copy
import itertools

import pytest
import torch
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

from torchmanual import optim

STEPS = 50
TOL = 1e-12  # relative, on every parameter after every step


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """DESIGN.md's max|a−b| / max(1e-8, |a|+|b|)."""
    return ((a - b).abs().max() / (a.abs() + b.abs()).max().clamp_min(1e-8)).item()


def max_rel_err(m1: torch.nn.Module, m2: torch.nn.Module) -> float:
    """Relative error over all parameters at once (one vector each, which keeps tests fast)."""
    vec = torch.nn.utils.parameters_to_vector
    return relative_error(vec(m1.parameters()), vec(m2.parameters()))


def make_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()


def make_data(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(16, 5, generator=g, dtype=torch.float64),
        torch.randn(16, 3, generator=g, dtype=torch.float64),
    )


def backward(model: torch.nn.Module, data) -> torch.Tensor:
    x, y = data
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    return loss


def train_step(model, opt, data) -> None:
    opt.zero_grad()
    backward(model, data)
    opt.step()


def valid_configs():
    for momentum, dampening, nesterov, weight_decay, maximize in itertools.product(
        [0.0, 0.9], [0.0, 0.1], [False, True], [0.0, 1e-2], [False, True]
    ):
        if nesterov and (momentum <= 0 or dampening != 0):
            continue
        yield {
            "momentum": momentum,
            "dampening": dampening,
            "nesterov": nesterov,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }


CONFIGS = list(valid_configs())


def config_id(cfg) -> str:
    return "-".join(f"{k}={v}" for k, v in cfg.items())


def test_all_valid_combinations_are_covered():
    assert len(CONFIGS) == 20


@pytest.mark.parametrize("foreach", [None, False], ids=["foreach", "loop"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_trajectory_matches_torch_sgd(cfg, foreach):
    data = make_data()
    ours_model, torch_model = make_model(), make_model()
    ours = optim.SGD(ours_model.parameters(), lr=0.05, foreach=foreach, **cfg)
    ref = torch.optim.SGD(torch_model.parameters(), lr=0.05, **cfg)
    for step in range(STEPS):
        train_step(ours_model, ours, data)
        train_step(torch_model, ref, data)
        err = max_rel_err(ours_model, torch_model)
        assert err <= TOL, f"step {step}: relative error {err:.3e}"
    # the run did move the parameters (else the comparison would prove nothing)
    assert max_rel_err(ours_model, make_model()) > 1e-3
    if cfg["momentum"]:
        for p, q in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
            assert (
                relative_error(ours.state[p]["momentum_buffer"], ref.state[q]["momentum_buffer"])
                <= TOL
            )


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_step_leaves_grad_as_torch_does(cfg):
    ours_model, torch_model = make_model(), make_model()
    ours = optim.SGD(ours_model.parameters(), lr=0.1, **cfg)
    ref = torch.optim.SGD(torch_model.parameters(), lr=0.1, foreach=False, **cfg)
    for _ in range(2):  # the 2nd step runs the momentum-update branch
        train_step(ours_model, ours, make_data())
        train_step(torch_model, ref, make_data())
        for p, q in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
            assert torch.equal(p.grad, q.grad)


RESUME_CONFIGS = [
    {"momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-2},
    {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2, "maximize": True},
    {"momentum": 0.0, "weight_decay": 1e-2},
]


@pytest.mark.parametrize("cfg", RESUME_CONFIGS, ids=config_id)
@pytest.mark.parametrize(
    ("first", "second"),
    [
        (optim.SGD, optim.SGD),
        (torch.optim.SGD, optim.SGD),
        (optim.SGD, torch.optim.SGD),
    ],
    ids=["ours-to-ours", "torch-to-ours", "ours-to-torch"],
)
def test_resume_from_state_dict_continues_identically(first, second, cfg):
    data = make_data()
    ref_model = make_model()
    ref = torch.optim.SGD(ref_model.parameters(), lr=0.05, **cfg)
    model = make_model()
    opt = first(model.parameters(), lr=0.05, **cfg)
    for _ in range(10):
        train_step(ref_model, ref, data)
        train_step(model, opt, data)
    saved_params = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())

    resumed = make_model(seed=123)
    resumed.load_state_dict(saved_params)
    resumed_opt = second(resumed.parameters(), lr=1.0)  # hyper-parameters come from the dict
    resumed_opt.load_state_dict(saved_opt)
    assert resumed_opt.param_groups[0]["lr"] == 0.05
    if cfg["momentum"]:
        assert set(saved_opt["state"][0]) == {"momentum_buffer"}
    for step in range(10):
        train_step(ref_model, ref, data)
        train_step(resumed, resumed_opt, data)
        err = max_rel_err(resumed, ref_model)
        assert err <= TOL, f"step {step} after resuming: relative error {err:.3e}"


def test_state_dict_has_torch_layout():
    data = make_data()
    m1, m2 = make_model(), make_model()
    ours = optim.SGD(m1.parameters(), lr=0.1, momentum=0.9)
    ref = torch.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9)
    train_step(m1, ours, data)
    train_step(m2, ref, data)
    sd_ours, sd_ref = ours.state_dict(), ref.state_dict()
    assert sd_ours["state"].keys() == sd_ref["state"].keys()
    for i in sd_ref["state"]:
        assert sd_ours["state"][i].keys() == sd_ref["state"][i].keys()
        torch.testing.assert_close(
            sd_ours["state"][i]["momentum_buffer"], sd_ref["state"][i]["momentum_buffer"]
        )
    for key in ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize", "params"):
        assert sd_ours["param_groups"][0][key] == sd_ref["param_groups"][0][key]


def test_step_lr_scheduler_changes_lr_like_torch():
    data = make_data()
    m1, m2 = make_model(), make_model()
    ours = optim.SGD(m1.parameters(), lr=0.1, momentum=0.9)
    ref = torch.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9)
    s1 = torch.optim.lr_scheduler.StepLR(ours, step_size=3, gamma=0.5)
    s2 = torch.optim.lr_scheduler.StepLR(ref, step_size=3, gamma=0.5)
    lrs = []
    for _ in range(10):
        train_step(m1, ours, data)
        train_step(m2, ref, data)
        s1.step()
        s2.step()
        assert s1.get_last_lr() == s2.get_last_lr()
        assert ours.param_groups[0]["lr"] == ref.param_groups[0]["lr"]
        lrs.append(ours.param_groups[0]["lr"])
        assert max_rel_err(m1, m2) <= TOL
    assert lrs[-1] == pytest.approx(0.1 * 0.5**3)


def test_param_groups_with_different_hyperparameters_match_torch():
    data = make_data()
    m1, m2 = make_model(), make_model()

    def groups(m):
        return [
            {"params": [m[0].weight, m[2].weight]},
            {"params": [m[0].bias, m[2].bias], "lr": 0.01, "momentum": 0.5, "nesterov": True},
        ]

    ours = optim.SGD(groups(m1), lr=0.1, momentum=0.9, weight_decay=1e-2)
    ref = torch.optim.SGD(groups(m2), lr=0.1, momentum=0.9, weight_decay=1e-2)
    for _ in range(20):
        train_step(m1, ours, data)
        train_step(m2, ref, data)
        assert max_rel_err(m1, m2) <= TOL


def test_params_without_grad_and_mixed_dtypes_match_torch():
    torch.manual_seed(0)
    base = [
        torch.randn(4, 3, dtype=torch.float64),
        torch.randn(5),
        torch.randn(2, dtype=torch.float64),
    ]
    p1 = [torch.nn.Parameter(t.clone()) for t in base]
    p2 = [torch.nn.Parameter(t.clone()) for t in base]
    ours = optim.SGD(p1, lr=0.1, momentum=0.9)
    ref = torch.optim.SGD(p2, lr=0.1, momentum=0.9)
    for step in range(5):
        g = torch.Generator().manual_seed(step)
        for a, b in zip(p1[:2], p2[:2], strict=True):  # the last parameter never gets a grad
            a.grad = torch.randn(a.shape, generator=g, dtype=a.dtype)
            b.grad = a.grad.clone()
        ours.step()
        ref.step()
        for a, b in zip(p1, p2, strict=True):
            assert torch.equal(a, b)
    assert p2[2] not in ref.state and p1[2] not in ours.state
    assert torch.equal(p1[2], base[2])


def test_closure_loss_is_returned_like_torch():
    data = make_data()
    m1, m2 = make_model(), make_model()
    ours = optim.SGD(m1.parameters(), lr=0.1)
    ref = torch.optim.SGD(m2.parameters(), lr=0.1)

    def closure(model, opt):
        def run():
            opt.zero_grad()
            return backward(model, data)

        return run

    for _ in range(3):
        l1 = ours.step(closure(m1, ours))
        l2 = ref.step(closure(m2, ref))
        assert torch.equal(l1, l2)
    assert ours.step() is None


def test_zero_grad_like_torch():
    m = make_model()
    opt = optim.SGD(m.parameters(), lr=0.1)
    backward(m, make_data())
    opt.zero_grad(set_to_none=False)
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in m.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_step_hooks_run_as_torch_runs_them():
    """SGD's step wrapper is lighter than torch.optim's (no profiler range unless one
    records) but runs the same hooks in the same order with the same arguments."""
    m = make_model()
    calls: list[tuple[str, object]] = []
    for cls in (optim.SGD, torch.optim.SGD):
        opt = cls(m.parameters(), lr=0.1)
        calls.clear()

        def replace_closure(o, args, kwargs):
            calls.append(("pre", args[0] is o))
            return (args[0],), {"closure": lambda: 7.0}  # pre-hooks may replace the arguments

        handles = [
            register_optimizer_step_pre_hook(lambda o, a, k: calls.append(("global pre", len(a)))),
            opt.register_step_pre_hook(replace_closure),
            opt.register_step_post_hook(lambda o, a, k: calls.append(("post", k["closure"]()))),
            register_optimizer_step_post_hook(lambda o, a, k: calls.append(("global post", None))),
        ]
        try:
            backward(m, make_data())
            assert opt.step() == 7.0
        finally:
            for handle in handles:
                handle.remove()
        assert calls == [("global pre", 1), ("pre", True), ("post", 7.0), ("global post", None)]
        bad = opt.register_step_pre_hook(lambda o, a, k: "not a tuple")
        with pytest.raises(RuntimeError, match="must return None or a tuple"):
            opt.step()
        bad.remove()


def test_profiler_sees_torchs_optimizer_ranges():
    m = make_model()
    opt = optim.SGD(m.parameters(), lr=0.1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        backward(m, make_data())
        opt.step()
        opt.zero_grad()
    names = {event.key for event in prof.key_averages()}
    assert {"Optimizer.step#SGD.step", "Optimizer.zero_grad#SGD.zero_grad"} <= names
    assert all(p.grad is None for p in m.parameters())


def test_lr_scheduler_sees_the_step_called(recwarn):
    """torch's schedulers warn when their step comes before optimizer.step; it does not."""
    m = make_model()
    opt = optim.SGD(m.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train_step(m, opt, make_data())
    scheduler.step()
    assert not [w for w in recwarn if "lr_scheduler.step()" in str(w.message)]
    assert opt.param_groups[0]["lr"] == 0.05


def test_tensor_lr_matches_float_lr():
    data = make_data()
    m1, m2 = make_model(), make_model()
    ours = optim.SGD(m1.parameters(), lr=torch.tensor(0.05, dtype=torch.float64), momentum=0.9)
    ref = torch.optim.SGD(m2.parameters(), lr=0.05, momentum=0.9)
    for _ in range(5):
        train_step(m1, ours, data)
        train_step(m2, ref, data)
    assert max_rel_err(m1, m2) <= TOL


def test_sparse_gradient_raises():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        optim.SGD(emb.parameters(), lr=0.1).step()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -0.1}, r"learning rate: -0\.1"),
        ({"lr": float("nan")}, r"learning rate: nan"),
        ({"lr": torch.tensor([0.1, 0.2])}, r"lr .*1 element.*\(2,\)"),
        ({"momentum": -0.5}, r"momentum value: -0\.5"),
        ({"weight_decay": -1e-3}, r"weight_decay value: -0\.001"),
        ({"nesterov": True}, r"Nesterov.*momentum=0\.0"),
        ({"nesterov": True, "momentum": 0.9, "dampening": 0.1}, r"Nesterov.*dampening=0\.1"),
        ({"momentum": "fast"}, r"momentum .*'fast'"),
    ],
)
def test_invalid_hyperparameters_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optim.SGD(make_model().parameters(), **kwargs)


def test_invalid_param_group_override_raises():
    m = make_model()
    with pytest.raises(ValueError, match=r"learning rate: -1\.0"):
        optim.SGD([{"params": m[0].parameters()}, {"params": m[2].parameters(), "lr": -1.0}])
    opt = optim.SGD(m[0].parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"Nesterov"):
        opt.add_param_group({"params": m[2].parameters(), "nesterov": True})


# --- param_groups: the slides' unregularised biases --------------------------------------


def norm_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.BatchNorm1d(8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()


def test_param_groups_split_weights_from_biases_and_1d():
    model = norm_model()
    decay, no_decay = optim.param_groups(model, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [id(p) for p in decay["params"]] == [id(model[0].weight), id(model[3].weight)]
    expected = [model[0].bias, model[1].weight, model[1].bias, model[3].bias]
    assert [id(p) for p in no_decay["params"]] == [id(p) for p in expected]


def test_param_groups_decay_weights_only_like_torch():
    m1, m2 = norm_model(), norm_model()
    ours = optim.SGD(optim.param_groups(m1, 0.1), lr=0.5)
    ref = torch.optim.SGD(optim.param_groups(m2, 0.1), lr=0.5)
    for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
        p.grad, q.grad = torch.zeros_like(p), torch.zeros_like(q)
    ours.step()
    ref.step()
    for p, q, p0 in zip(m1.parameters(), m2.parameters(), norm_model().parameters(), strict=True):
        assert torch.equal(p, q)
        if p.dim() >= 2:  # W ← W − αλW with a zero data gradient
            torch.testing.assert_close(p, p0 * (1 - 0.5 * 0.1))
        else:
            assert torch.equal(p, p0)


def test_param_groups_skips_frozen_and_rejects_negative_decay():
    model = norm_model()
    model[0].weight.requires_grad_(False)
    decay, _ = optim.param_groups(model, 0.0)
    assert [id(p) for p in decay["params"]] == [id(model[3].weight)]
    with pytest.raises(ValueError, match=r"-0\.5"):
        optim.param_groups(model, -0.5)


# --- gradient clipping ---------------------------------------------------------------------


def grad_params(seed: int = 0, scale: float = 1.0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (3,), (2, 2, 2), (5,)]
    params = []
    for i, shape in enumerate(shapes):
        p = torch.nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float64))
        if i != 3:  # one parameter has no grad: it must be skipped
            p.grad = scale * torch.randn(shape, generator=g, dtype=torch.float64)
        params.append(p)
    return params


def clone_params(params):
    out = []
    for p in params:
        q = torch.nn.Parameter(p.detach().clone())
        q.grad = None if p.grad is None else p.grad.clone()
        out.append(q)
    return out


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e3], ids=["clips", "no-op"])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours = grad_params(scale=3.0)
    ref = clone_params(ours)
    n1 = optim.clip_grad_norm_(ours, max_norm, norm_type)
    n2 = torch.nn.utils.clip_grad_norm_(ref, max_norm, norm_type)
    assert n1.dtype == n2.dtype and n1.shape == n2.shape == ()
    torch.testing.assert_close(n1, n2, rtol=1e-14, atol=0)
    for p, q in zip(ours, ref, strict=True):
        if q.grad is None:
            assert p.grad is None
        else:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-14, atol=0)
    if max_norm < n2:
        assert torch.linalg.vector_norm(
            torch.cat([p.grad.flatten() for p in ours if p.grad is not None]), norm_type
        ).item() == pytest.approx(max_norm, rel=1e-5)


def test_clip_grad_norm_single_tensor_generator_and_empty_like_torch():
    (p,) = grad_params(scale=5.0)[:1]
    (q,) = clone_params([p])
    torch.testing.assert_close(
        optim.clip_grad_norm_(p, 1.0), torch.nn.utils.clip_grad_norm_(q, 1.0)
    )
    torch.testing.assert_close(p.grad, q.grad, rtol=1e-14, atol=0)

    m1, m2 = make_model(), make_model()
    backward(m1, make_data())
    backward(m2, make_data())
    n1 = optim.clip_grad_norm_(m1.parameters(), 0.01)  # a generator, read once
    n2 = torch.nn.utils.clip_grad_norm_(m2.parameters(), 0.01)
    torch.testing.assert_close(n1, n2, rtol=1e-14, atol=0)
    assert max_rel_err(m1, m2) == 0.0
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-14, atol=0)

    empty = torch.nn.Parameter(torch.ones(3))
    assert torch.equal(
        optim.clip_grad_norm_([empty], 1.0), torch.nn.utils.clip_grad_norm_([empty], 1.0)
    )


def test_clip_grad_norm_mixed_dtypes_like_torch():
    ours = grad_params(scale=3.0)
    single = torch.nn.Parameter(torch.ones(3, 2, dtype=torch.float32))
    single.grad = torch.full((3, 2), 2.0)
    ours.append(single)
    ref = clone_params(ours)
    n1 = optim.clip_grad_norm_(ours, 1.0)
    n2 = torch.nn.utils.clip_grad_norm_(ref, 1.0)
    torch.testing.assert_close(n1, n2)
    for p, q in zip(ours, ref, strict=True):
        if q.grad is not None:
            torch.testing.assert_close(p.grad, q.grad)


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_clip_grad_norm_nonfinite(bad):
    ours = grad_params()
    ours[0].grad[0, 0] = bad
    ref = clone_params(ours)
    with pytest.raises(RuntimeError, match=str(bad)):
        optim.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(clone_params(ours), 1.0, error_if_nonfinite=True)
    n1 = optim.clip_grad_norm_(ours, 1.0)
    n2 = torch.nn.utils.clip_grad_norm_(ref, 1.0)
    torch.testing.assert_close(n1, n2, equal_nan=True)
    for p, q in zip(ours, ref, strict=True):
        if q.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, equal_nan=True)


@pytest.mark.parametrize("clip_value", [0.0, 0.3, 10.0])
def test_clip_grad_value_matches_torch(clip_value):
    ours = grad_params()
    ref = clone_params(ours)
    assert optim.clip_grad_value_(ours, clip_value) is None
    torch.nn.utils.clip_grad_value_(ref, clip_value)
    for p, q in zip(ours, ref, strict=True):
        if q.grad is None:
            assert p.grad is None
        else:
            assert torch.equal(p.grad, q.grad)
            assert p.grad.abs().max().item() <= clip_value
    (p,) = grad_params()[:1]
    (q,) = clone_params([p])
    optim.clip_grad_value_(p, clip_value)
    torch.nn.utils.clip_grad_value_(q, clip_value)
    assert torch.equal(p.grad, q.grad)


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_negative_clip_thresholds_raise(bad):
    with pytest.raises(ValueError, match=rf"max_norm must be >= 0, got {bad}"):
        optim.clip_grad_norm_(grad_params(), bad)
    with pytest.raises(ValueError, match=rf"clip_value must be >= 0, got {bad}"):
        optim.clip_grad_value_(grad_params(), bad)
