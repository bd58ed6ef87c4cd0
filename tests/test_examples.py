"""The examples run, and say what the slides say."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_two_layer_net_matches_the_slides_numpy_loop(capsys):
    example = load_example("two_layer_net")
    numpy_losses, torch_losses = example.train_both(steps=30, seed=1)
    assert len(numpy_losses) == len(torch_losses) == 30
    assert example.max_relative_difference(numpy_losses, torch_losses) < 1e-9
    assert torch_losses[-1] < 0.5 * torch_losses[0]  # it trains
    example.main(["--steps", "3"])
    out = capsys.readouterr().out
    assert "numpy" in out and "torchmanual" in out and "largest relative difference" in out


# Each example below runs through its main(argv) with small settings, so none can rot.


def _has_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def test_logic_and_xor_circles_as_in_the_slides(tmp_path, capsys):
    example = load_example("logic")
    results = example.main(["--epochs-circles", "150", "--outdir", str(tmp_path)])
    accuracy = {r.name: r.accuracy for r in results}
    assert accuracy["AND, 1 neuron"] == 1.0
    # A line separates at most 3 of XOR's 4 rows; one hidden layer of 2 units separates all.
    assert accuracy["XOR, 1 neuron"] <= 0.75
    assert accuracy["XOR, 2 hidden units"] == 1.0
    assert accuracy["circles, 4 hidden units"] >= 0.97
    out = capsys.readouterr().out
    assert "XOR, 2 hidden units" in out and "restart" in out
    if _has_matplotlib():
        assert (tmp_path / "decision_boundaries.png").stat().st_size > 0


def test_regression_fits_the_slides_three_curves(tmp_path, capsys):
    example = load_example("regression")
    fits = example.main(["--steps", "800", "--outdir", str(tmp_path)])
    assert [f.name for f in fits] == ["square", "reciprocal", "sin"]
    for f in fits:
        assert f.test_mse < 2e-3, f.name
        assert f.relative_mse < 0.15, f.name  # explains > 85% of the test targets' variance
    assert "test MSE" in capsys.readouterr().out
    if _has_matplotlib():
        assert (tmp_path / "fits.png").stat().st_size > 0


def test_random_search_loses_to_gradient_descent(tmp_path, capsys):
    example = load_example("random_search")
    result = example.main(["--trials", "100", "--epochs", "2", "--logdir", str(tmp_path)])
    assert result["random_search_accuracy"] < 0.4  # the slides' ~15% on CIFAR-10
    assert result["sgd_accuracy"] > 0.85
    assert result["sgd_loss"] < 0.1 * result["random_search_loss"]
    out = capsys.readouterr().out
    assert "random search, 100 trials" in out and "SGD, 2 epochs" in out
    for run in ("random-search", "sgd"):  # both loss curves, for TensorBoard
        assert any((tmp_path / run).glob("events.out.tfevents.*")), run


def test_numerical_gradient_centred_beats_forward_difference(capsys):
    example = load_example("numerical_gradient")
    errors = example.main(["--samples", "3", "--classes", "4"])
    assert errors["centred_error"] < 1e-6
    assert errors["forward_error"] > 100 * errors["centred_error"]
    out = capsys.readouterr().out
    assert "W + h in dim 1" in out and "analytic" in out


def test_init_statistics_runs_the_five_cases(tmp_path, capsys):
    example = load_example("init_statistics")
    argv = ["--layers", "3", "--width", "30", "--samples", "30"]
    results = example.main([*argv, "--logdir", str(tmp_path / "tb"), "--outdir", str(tmp_path)])
    assert len(results) == 5 and all(r.activations is None for r in results)
    assert len(list((tmp_path / "tb").iterdir())) == 5
    assert "tanh+small" in capsys.readouterr().out
    if _has_matplotlib():
        assert (tmp_path / "histograms.png").stat().st_size > 0


def test_vanishing_gradients_prints_the_ratio_per_case(tmp_path, capsys):
    example = load_example("vanishing_gradients")
    argv = ["--depth", "10", "--width", "16", "--steps", "5", "--logdir", str(tmp_path)]
    results = example.main([*argv, "--cases", "sigmoid-small", "relu-he"])
    assert results[0].ratio_initial < 1e-3 < results[1].ratio_initial
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relu-he", "sigmoid-small"]
    out = capsys.readouterr().out
    assert "sigmoid-small" in out and "tensorboard --logdir" in out
