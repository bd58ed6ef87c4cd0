"""``torchmanual train``: results that must hold, JSON output, resume, and clear errors."""

import json

import pytest
import torch

from torchmanual.cli import main
from torchmanual.commands.train import DEFAULTS

KEYS = {
    "dataset",
    "task",
    "epochs",
    "train_loss",
    "test_loss",
    "seconds",
    "logdir",
    "device",
    "world_size",
}


def train(capsys, *args: str) -> dict:
    status = main(["train", "--json", "--quiet", *args])
    out = capsys.readouterr().out
    assert status == 0, out
    return json.loads(out)


def test_xor_with_the_slides_two_hidden_units(capsys):
    result = train(capsys, "--dataset", "xor", "--logdir", "none")
    assert DEFAULTS["xor"]["hidden"] == [2]
    assert set(result) == KEYS | {"test_accuracy"}
    assert result["task"] == "classification" and result["device"] == "cpu"
    assert result["world_size"] == 1
    assert result["test_accuracy"] == 1.0
    assert result["logdir"] is None


def test_circles_with_the_slides_four_hidden_units(capsys):
    result = train(capsys, "--dataset", "circles", "--logdir", "none")
    assert DEFAULTS["circles"]["hidden"] == [4]
    assert result["test_accuracy"] >= 0.97


@pytest.mark.parametrize(
    ("dataset", "max_mse"), [("square", 1e-3), ("reciprocal", 1e-2), ("sin", 1e-3)]
)
def test_regression_curves_are_fitted(capsys, dataset, max_mse):
    result = train(capsys, "--dataset", dataset, "--logdir", "none")
    assert result["task"] == "regression" and "test_accuracy" not in result
    assert result["test_loss"] < max_mse


@pytest.mark.slow
def test_digits_default_reaches_98_percent(capsys):
    """scikit-learn's MLPClassifier reaches about 97.5% on the same split."""
    result = train(capsys, "--dataset", "digits", "--logdir", "none")
    assert result["test_accuracy"] >= 0.98


def test_logs_every_layer_to_tensorboard(capsys, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(
        capsys, "--dataset", "xor", "--epochs", "20", "--every", "5", "--logdir", str(tmp_path)
    )
    assert result["logdir"].startswith(str(tmp_path))
    events = EventAccumulator(result["logdir"], size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    scalars, histograms = set(events.Tags()["scalars"]), set(events.Tags()["histograms"])
    for layer in ("fc1", "act1", "fc2"):
        assert {f"activations/{layer}/mean", f"activations/{layer}/std"} <= scalars
    assert "activations/act1/saturated" in scalars  # xor's default hidden units are tanh
    assert {"gradients/fc1.weight", "gradients/fc2.weight"} <= histograms
    assert {"loss/train", "loss/test", "accuracy/test"} <= scalars


def test_resume_continues_to_the_same_result(capsys, tmp_path):
    checkpoint = str(tmp_path / "spiral.pt")
    common = ["--dataset", "spiral", "--hidden", "16", "--logdir", "none"]
    straight = train(capsys, *common, "--epochs", "4")
    train(capsys, *common, "--epochs", "2", "--checkpoint", checkpoint)
    resumed = train(capsys, *common, "--epochs", "4", "--checkpoint", checkpoint, "--resume")
    assert resumed["epochs"] == 4
    for key in ("train_loss", "test_loss", "test_accuracy"):
        assert resumed[key] == straight[key]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "mnist"], "invalid choice: 'mnist' (choose from 'and', 'xor'"),
        (["--activation", "swish"], "invalid choice: 'swish'"),
        (["--device", "tpu"], "invalid choice: 'tpu'"),
        (["--lr", "fast"], "invalid float value: 'fast'"),
    ],
)
def test_bad_arguments_exit_2_listing_the_choices(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resume"], "--resume needs --checkpoint"),
        (["--dataset", "digits", "--loss", "mse"], "--loss mse does not fit"),
        (["--dataset", "sin", "--loss", "cross_entropy"], "choose mse"),
        (["--epochs", "0"], "--epochs must be positive, got 0"),
    ],
)
def test_inconsistent_arguments_exit_2(capsys, args, message):
    assert main(["train", "--logdir", "none", *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_corrupt_or_foreign_checkpoint_is_one_line(capsys, tmp_path):
    missing = tmp_path / "missing.pt"
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path in (missing, corrupt, foreign):
        status = main(
            [
                "train",
                "--dataset",
                "xor",
                "--logdir",
                "none",
                "--quiet",
                "--checkpoint",
                str(path),
                "--resume",
            ]
        )
        err = capsys.readouterr().err
        assert status == 1
        assert str(path) in err and len(err.strip().splitlines()) == 1
        assert "Traceback" not in err


def test_non_finite_loss_stops_with_the_likely_cause(capsys, tmp_path):
    checkpoint = tmp_path / "run.pt"
    status = main(
        [
            "train",
            "--dataset",
            "reciprocal",
            "--preprocess",
            "none",
            "--lr",
            "1e6",
            "--logdir",
            "none",
            "--quiet",
            "--checkpoint",
            str(checkpoint),
        ]
    )
    err = capsys.readouterr().err
    assert status == 1
    assert "learning rate" in err.lower()
