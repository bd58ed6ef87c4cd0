"""The slides' experiments reproduce what the slides say (SLIDES.md sections 9 and 10)."""

import itertools
import json
import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from torchmanual import cli
from torchmanual.experiments import (
    FLOW_CASES,
    SLIDE_CASES,
    format_comparison,
    format_flow_table,
    gradient_flow,
    init_stats,
    init_stats_all,
)

# Small sizes where the slides' qualitative results still hold (measured over seeds 0-2).
WIDTH, SAMPLES = 200, 200


def _events(run_dir) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "histograms": 0})
    accumulator.Reload()
    return accumulator


def _cli(command_line: str) -> int:
    return cli.main(command_line.split())


def _ratios(values: list[float]) -> list[float]:
    return [b / a for a, b in itertools.pairwise(values)]


# --------------------------------------------------------------------------- init statistics


def test_tanh_small_init_shrinks_std_by_001_sqrt_width_per_layer_until_zero():
    result = init_stats("tanh", "small", layers=8, width=100, samples=SAMPLES)
    factor = 0.01 * math.sqrt(100)  # tanh is ≈ linear near 0: std × 0.01·√width per layer
    stds = [result.input.std, *result.stds]
    for ratio in _ratios(stds):
        assert ratio == pytest.approx(factor, rel=0.1)
    assert result.stds[-1] < 1e-6  # the last layers are ~0
    # ...and so are the weight gradients, next to the Xavier case's.
    xavier = init_stats("tanh", "xavier", layers=8, width=100, samples=SAMPLES)
    assert max(s.grad_norm for s in result.layers) < 1e-3 * min(s.grad_norm for s in xavier.layers)


def test_tanh_unit_init_saturates_nearly_every_unit():
    result = init_stats("tanh", "unit", layers=5, width=WIDTH, samples=SAMPLES)
    for layer in result.layers:
        assert layer.saturated > 0.8  # within 0.01 of ±1
        assert layer.std > 0.9  # the values sit at -1 and +1
    xavier = init_stats("tanh", "xavier", layers=5, width=WIDTH, samples=SAMPLES)
    assert all(layer.saturated < 0.05 for layer in xavier.layers)


def test_tanh_xavier_decays_gently():
    result = init_stats("tanh", "xavier", layers=10, width=WIDTH, samples=SAMPLES)
    stds = result.stds
    assert all(b < a for a, b in itertools.pairwise(stds))  # decays...
    assert stds[-1] > 0.1  # ...but gently: still far from 0 after ten layers
    assert all(r > 0.7 for r in _ratios(stds))


def test_relu_xavier_halves_the_variance_per_layer():
    result = init_stats("relu", "xavier", layers=6, width=WIDTH, samples=SAMPLES)
    # NOTE: from layer 2 on the input of every layer is a ReLU output, whose second moment is
    # half its pre-activation's: Var halves per layer (Xavier assumed a linear activation).
    variance_ratios = [r**2 for r in _ratios(result.stds)]
    assert all(0.3 < r < 0.7 for r in variance_ratios)
    geometric_mean = math.prod(variance_ratios) ** (1 / len(variance_ratios))
    assert geometric_mean == pytest.approx(0.5, abs=0.08)
    assert result.stds[-1] < 0.2 * result.stds[0]


def test_relu_he_keeps_the_std_steady_through_all_layers():
    result = init_stats("relu", "he", layers=10, width=WIDTH, samples=SAMPLES)
    first = result.stds[0]
    assert all(first / 2 < s < first * 2 for s in result.stds)
    variance_ratios = [r**2 for r in _ratios(result.stds)]
    geometric_mean = math.prod(variance_ratios) ** (1 / len(variance_ratios))
    assert geometric_mean == pytest.approx(1.0, abs=0.1)


def test_init_stats_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = init_stats("relu", "he", layers=3, width=30, samples=40, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    b = init_stats("relu", "he", layers=3, width=30, samples=40, seed=5)
    c = init_stats("relu", "he", layers=3, width=30, samples=40, seed=6)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != c.to_dict()


def test_input_statistics_are_those_of_randn():
    result = init_stats("linear", "xavier", layers=2, width=100, samples=500)
    assert abs(result.input.mean) < 0.01
    assert result.input.std == pytest.approx(1.0, abs=0.01)
    # Xavier was derived for linear units: the variance is kept exactly in expectation.
    assert result.stds[-1] == pytest.approx(1.0, abs=0.1)


def test_init_stats_rejects_unknown_names_and_sizes():
    with pytest.raises(ValueError, match="unknown activation 'swish'.*tanh"):
        init_stats("swish", "he")
    with pytest.raises(ValueError, match="unknown init 'kaiming'.*xavier"):
        init_stats("relu", "kaiming")
    with pytest.raises(ValueError, match="width must be a positive int"):
        init_stats("relu", "he", width=0)


def test_init_stats_writes_histograms_stats_and_gradient_norms_per_layer(tmp_path):
    result = init_stats("tanh", "xavier", layers=4, width=30, samples=40, logdir=tmp_path)
    run = tmp_path / "tanh-xavier"
    assert result.logdir == str(run)
    events = _events(run)
    tags = events.Tags()
    assert {"activations/mean", "activations/std", "activations/saturated"} <= set(tags["scalars"])
    assert "gradients/weight_norm" in tags["scalars"]
    assert {"activations", "gradients"} <= set(tags["histograms"])
    # The step is the layer: 0 is the input, 1..4 the hidden layers.
    stds = events.Scalars("activations/std")
    assert [e.step for e in stds] == [0, 1, 2, 3, 4]
    assert [e.value for e in stds] == pytest.approx([result.input.std, *result.stds], rel=1e-6)
    assert [e.step for e in events.Histograms("activations")] == [0, 1, 2, 3, 4]
    norms = events.Scalars("gradients/weight_norm")
    assert [e.value for e in norms] == pytest.approx([s.grad_norm for s in result.layers])
    assert all(e.value > 0 for e in norms)


def test_rerunning_a_case_replaces_its_curves(tmp_path):
    init_stats("relu", "he", layers=5, width=20, samples=20, logdir=tmp_path)
    init_stats("relu", "he", layers=2, width=20, samples=20, logdir=tmp_path, seed=1)
    events = _events(tmp_path / "relu-he")
    assert [e.step for e in events.Scalars("activations/std")] == [0, 1, 2]


def test_the_slides_five_cases_compare_in_one_table():
    results = init_stats_all(layers=3, width=40, samples=40)
    assert [(r.activation, r.init) for r in results] == list(SLIDE_CASES)
    table = format_comparison(results)
    lines = table.splitlines()
    assert "3 layers of 40 units" in lines[0]
    for activation, init in SLIDE_CASES:
        assert f"{activation}+{init}" in lines[1]
    assert [line.split()[0] for line in lines[2:6]] == ["input", "1", "2", "3"]
    assert "saturated (last)" in table


# --------------------------------------------------------------------------- CLI


def test_cli_json_is_exactly_the_issue_s_object(capsys, tmp_path):
    status = _cli(
        "init-stats --activation relu --init he --layers 3 --width 20 --samples 30 "
        "--logdir none --json"
    )
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["activation", "init", "input", "layers"]
    assert out["activation"] == "relu" and out["init"] == "he"
    assert set(out["input"]) == {"mean", "std"}
    assert [layer["layer"] for layer in out["layers"]] == [1, 2, 3]
    assert all(set(layer) == {"layer", "mean", "std"} for layer in out["layers"])
    expected = init_stats("relu", "he", layers=3, width=20, samples=30).to_dict()
    assert out == expected


def test_cli_prints_the_slides_table_and_logs_to_runs_by_default(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status = _cli("init-stats --init small --layers 2 --width 20 --samples 20")
    assert status == 0
    out = capsys.readouterr().out
    assert out.startswith("tanh + small: 2 layers of 20 units, 20 samples, seed 0")
    assert [line.split()[0] for line in out.splitlines()[2:5]] == ["input", "1", "2"]
    assert "tensorboard --logdir runs/init-stats" in out
    assert any((tmp_path / "runs/init-stats/tanh-small").glob("events.out.tfevents.*"))


def test_cli_logdir_none_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _cli("init-stats --layers 2 --width 10 --samples 10 --logdir none") == 0
    assert list(tmp_path.iterdir()) == []
    assert "tensorboard" not in capsys.readouterr().out


def test_cli_all_writes_one_run_per_case_into_one_folder(capsys, tmp_path):
    small = "init-stats --all --layers 2 --width 20 --samples 20"
    status = _cli(f"{small} --logdir {tmp_path}")
    assert status == 0
    out = capsys.readouterr().out
    assert out.startswith("std per layer (2 layers of 20 units")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{a}-{i}" for a, i in SLIDE_CASES)
    status = _cli(f"{small} --logdir none --json")
    assert status == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [(r["activation"], r["init"]) for r in runs] == list(SLIDE_CASES)


def test_cli_reports_an_unwritable_logdir_with_status_1(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert _cli(f"init-stats --layers 1 --width 5 --samples 5 --logdir {blocker}") == 1
    assert "cannot write TensorBoard logs" in capsys.readouterr().err


def test_cli_rejects_bad_arguments_with_status_2(capsys):
    assert cli.main(["init-stats", "--all", "--init", "he"]) == 2
    assert "--all runs the slides' five cases" in capsys.readouterr().err
    for argv in (["--activation", "swish"], ["--init", "kaiming"], ["--width", "0"]):
        with pytest.raises(SystemExit) as error:
            cli.main(["init-stats", *argv])
        assert error.value.code == 2
    assert "invalid choice: 'kaiming'" in capsys.readouterr().err


# --------------------------------------------------------------------------- gradient flow

FLOW = dict(depth=10, width=32, steps=15, batch_size=32)


def test_sigmoid_small_init_gradient_vanishes_he_and_batchnorm_do_not():
    results = {r.name: r for r in gradient_flow(["sigmoid-small", "relu-he", "relu-he-bn"], **FLOW)}
    vanishing = results["sigmoid-small"]
    assert vanishing.ratio_initial < 1e-3 and vanishing.ratio_final < 1e-3
    # Orders of magnitude, layer after layer: each layer back gets a smaller gradient.
    norms = vanishing.initial_norms
    assert all(a < b for a, b in itertools.pairwise(norms))
    for name in ("relu-he", "relu-he-bn"):
        assert results[name].ratio_initial > 1e-2, name
        assert results[name].ratio_final > 1e-2, name
        assert not results[name].diverged
        assert results[name].loss_final < results[name].loss_initial


def test_weights_above_one_explode_and_clipping_keeps_training_finite():
    results = {r.name: r for r in gradient_flow(["relu-unit", "relu-unit-clip", "relu-he"], **FLOW)}
    exploding, clipped, he = results["relu-unit"], results["relu-unit-clip"], results["relu-he"]
    assert max(exploding.initial_norms) > 1e4 * max(he.initial_norms)
    assert exploding.diverged and exploding.test_accuracy is None
    assert not clipped.diverged and clipped.steps == FLOW["steps"]
    assert math.isfinite(clipped.loss_final) and clipped.loss_final < clipped.loss_initial


def test_gradient_flow_logs_per_layer_gradient_norms(tmp_path):
    (result,) = gradient_flow(["relu-he"], depth=3, width=8, steps=4, log_every=2, logdir=tmp_path)
    assert result.logdir == str(tmp_path / "relu-he")
    scalars = set(_events(result.logdir).Tags()["scalars"])
    for i in range(1, 5):  # 3 hidden layers + the output layer
        assert f"gradients/fc{i}.weight/norm" in scalars
    assert {"gradient_flow/first_over_last", "gradient_flow/by_layer_initial"} <= scalars
    events = _events(result.logdir)
    by_layer = events.Scalars("gradient_flow/by_layer_initial")
    assert [e.value for e in by_layer] == pytest.approx(result.initial_norms, rel=1e-6)


def test_gradient_flow_table_and_errors():
    results = gradient_flow(["sigmoid-small", "relu-unit"], depth=3, width=8, steps=3)
    table = format_flow_table(results)
    assert "sigmoid-small" in table and "relu-unit" in table
    assert set(FLOW_CASES) >= {r.name for r in results}
    with pytest.raises(ValueError, match="unknown gradient-flow case 'tanh'"):
        gradient_flow(["tanh"])
    with pytest.raises(ValueError, match="regression"):
        gradient_flow(["relu-he"], dataset="sin", steps=1)
