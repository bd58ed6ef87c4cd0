# ruff: noqa: E501  (the catalogue is a table: one case per line)
"""The bad-input catalogue: every misuse gets a typed error whose message names the culprit.

Each case asserts the exception type *and* that the message names the offending value,
shape, dtype or option, so a user reading it knows what to change. Training failures
also keep what was already achieved (the last good checkpoint), and no checkpoint can run
code on load.
"""

from __future__ import annotations

import builtins
import math
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import torchmanual.functional as F
import torchmanual.nn as tnn
from torchmanual import data
from torchmanual.cli import main
from torchmanual.optim import SGD, clip_grad_norm_, clip_grad_value_
from torchmanual.train import (
    CheckpointError,
    NonFiniteLossError,
    evaluate,
    fit,
    load_checkpoint,
    save_checkpoint,
)

X = torch.randn(4, 5)
LONG = torch.long


def t(*values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype)


def case(id: str, call: Callable[[], object], error: type[BaseException], *names: str):
    return pytest.param(call, error, names, id=id)


def _assert_raises_naming(call, error, names):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert type(info.value) is error or isinstance(info.value, error)
    for name in names:
        assert name in message, f"{name!r} not named in: {message}"
    assert "\n" not in message.strip(), f"not one line: {message}"


# --- shapes --------------------------------------------------------------------------------

SHAPES = [
    case("Linear features", lambda: tnn.Linear(3, 2)(X), ValueError, "5 features", "(4, 5)", "(2, 3)"),
    case("Maxout features", lambda: tnn.Maxout(3, 2)(X), ValueError, "5 features", "(4, 3)"),
    case("BatchNorm1d channels", lambda: tnn.BatchNorm1d(3)(X), ValueError, "(5,)", "(4, 5)", "(3,)"),
    case("BatchNorm1d eval channels", lambda: tnn.BatchNorm1d(3).eval()(X), ValueError, "(4, 5)", "(3,)"),
    case("BatchNorm1d 1-D", lambda: tnn.BatchNorm1d(3)(torch.randn(3)), ValueError, "1D"),
    case("BatchNorm1d 4-D", lambda: tnn.BatchNorm1d(3)(torch.randn(2, 3, 4, 5)), ValueError, "4D"),
    case("PReLU channels", lambda: tnn.PReLU(3)(X), ValueError, "1 or 5 elements", "(4, 5)", "(3,)"),
    case("MLP input", lambda: tnn.MLP([3, 4, 2])(X), ValueError, "5 features", "(4, 5)"),
    case("MSELoss", lambda: tnn.MSELoss()(X, torch.randn(4, 3)), ValueError, "(4, 3)", "(4, 5)"),
    case("BCELoss", lambda: tnn.BCELoss()(torch.rand(4, 5), torch.rand(4)), ValueError, "(4,)", "(4, 5)"),
    case("BCEWithLogitsLoss", lambda: tnn.BCEWithLogitsLoss()(X, torch.rand(5)), ValueError, "(5,)", "(4, 5)"),
    case("HingeLoss", lambda: tnn.HingeLoss()(X, torch.ones(4)), ValueError, "(4,)", "(4, 5)"),
    case("LogisticLoss", lambda: tnn.LogisticLoss()(X, torch.ones(5, 4)), ValueError, "(5, 4)", "(4, 5)"),
    case("CrossEntropyLoss", lambda: tnn.CrossEntropyLoss()(X, torch.zeros(3, dtype=LONG)), ValueError, "(3,)", "(4, 5)", "expected target shape (4,)"),
    case("CrossEntropyLoss 3-D", lambda: tnn.CrossEntropyLoss()(torch.randn(2, 3, 4), torch.zeros(2, 4, dtype=LONG)), NotImplementedError, "(2, 3, 4)"),
    case("MulticlassSVMLoss", lambda: tnn.MulticlassSVMLoss()(X, torch.zeros(5, dtype=LONG)), ValueError, "(5,)", "(4, 5)"),
    case("add", lambda: F.add(X, torch.randn(3)), ValueError, "(4, 5)", "(3,)", "broadcast"),
    case("mul", lambda: F.mul(X, torch.randn(4)), ValueError, "(4, 5)", "(4,)"),
    case("maximum", lambda: F.maximum(X, torch.randn(2, 5)), ValueError, "(4, 5)", "(2, 5)"),
    case("linear bias", lambda: F.linear(X, torch.randn(2, 5), torch.randn(3)), ValueError, "bias", "(2,)", "(3,)"),
    case("linear 1-D weight", lambda: F.linear(X, torch.randn(5)), ValueError, "weight", "(5,)"),
    case("linear 0-d input", lambda: F.linear(torch.tensor(1.0), torch.randn(2, 1)), ValueError, "0-d"),
    case("maxout pieces", lambda: F.maxout(X, torch.randn(3, 5), None, 2), ValueError, "3 rows", "pieces=2"),
    case("batch_norm 4-D", lambda: F.batch_norm(torch.randn(2, 3, 4, 5), None, None, training=True), ValueError, "(2, 3, 4, 5)"),
    case("cross_entropy", lambda: F.cross_entropy(X, torch.zeros(4, 1, dtype=LONG)), ValueError, "(4, 1)"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "names"), SHAPES)
def test_shape_mismatch(call, error, names):
    _assert_raises_naming(call, error, names)


# --- dtypes, types -------------------------------------------------------------------------

DTYPES = [
    case("Linear int input", lambda: tnn.Linear(5, 2)(torch.ones(4, 5, dtype=LONG)), TypeError, "input", "torch.int64"),
    case("Linear mixed dtypes", lambda: tnn.Linear(5, 2)(X.double()), TypeError, "torch.float64", "torch.float32"),
    case("relu int", lambda: F.relu(torch.ones(3, dtype=torch.int32)), TypeError, "torch.int32"),
    case("sigmoid list", lambda: F.sigmoid([0.5]), TypeError, "torch.Tensor", "list"),
    case("cross_entropy float target", lambda: F.cross_entropy(X, torch.zeros(4)), NotImplementedError, "torch.float32", "class indices"),
    case("mse_loss int target", lambda: F.mse_loss(X, torch.ones(4, 5, dtype=LONG)), TypeError, "target", "torch.int64"),
    case("bce bool target", lambda: F.binary_cross_entropy(torch.rand(3), torch.ones(3, dtype=torch.bool)), TypeError, "target", "torch.bool"),
    case("scale tensor factor", lambda: F.scale(X, torch.tensor(2.0)), TypeError, "a must be a Python number", "Tensor"),
    case("leaky_relu bool slope", lambda: F.leaky_relu(X, True), TypeError, "negative_slope", "bool"),
    case("hinge target str", lambda: F.hinge_loss(X, "1"), TypeError, "target", "str"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "names"), DTYPES)
def test_wrong_dtype_or_type(call, error, names):
    _assert_raises_naming(call, error, names)


# --- target and input values ---------------------------------------------------------------

VALUES = [
    case("class index too large", lambda: F.cross_entropy(X, t(0, 1, 5, 2, dtype=LONG)), IndexError, "class index 5", "5 classes", "0..4"),
    case("class index negative", lambda: F.cross_entropy(X, t(0, -1, 4, 2, dtype=LONG)), IndexError, "class index -1"),
    case("class index as module", lambda: tnn.CrossEntropyLoss()(X, t(9, 0, 0, 0, dtype=LONG)), IndexError, "class index 9"),
    case("svm class index", lambda: tnn.MulticlassSVMLoss()(X, t(0, 7, 4, 2, dtype=LONG)), IndexError, "class index 7"),
    case("ignore_index target", lambda: F.cross_entropy(X, t(0, -100, 4, 2, dtype=LONG)), NotImplementedError, "ignore_index=-100"),
    case("hinge 0 target", lambda: tnn.HingeLoss()(X, torch.zeros(4, 5)), ValueError, "-1 or 1", "found 0.0"),
    case("logistic 2 target", lambda: F.logistic_loss(X, torch.full((4, 5), 2.0)), ValueError, "-1 or 1", "found 2.0"),
    case("hinge nan target", lambda: F.hinge_loss(X, torch.full((4, 5), math.nan)), ValueError, "found nan"),
    case("hinge target needs grad", lambda: F.hinge_loss(X, torch.ones(4, 5, requires_grad=True)), NotImplementedError, "target", "detach"),
    case("probability above 1", lambda: tnn.BCELoss()(t(0.2, 1.5), t(0.0, 1.0)), ValueError, "[0, 1]", "found 1.5", "with_logits"),
    case("probability below 0", lambda: F.binary_cross_entropy(t(-0.25, 0.5), t(0.0, 1.0)), ValueError, "found -0.25"),
    case("probability nan", lambda: F.binary_cross_entropy(t(math.nan, 0.5), t(0.0, 1.0)), ValueError, "found nan"),
    case("bce target above 1", lambda: F.binary_cross_entropy(t(0.2, 0.5), t(0.0, 2.0)), ValueError, "target", "found 2.0"),
    case("softplus beta 0", lambda: F.softplus(X, beta=0), ValueError, "beta=0"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "names"), VALUES)
def test_bad_values(call, error, names):
    _assert_raises_naming(call, error, names)


def test_bce_target_outside_0_1_is_refused_as_torch_refuses_it():
    """Found while writing this catalogue: torch raises, torchmanual computed a number."""
    with pytest.raises(RuntimeError, match="target should be between 0 and 1"):
        torch.nn.functional.binary_cross_entropy(t(0.2, 0.5), t(0.0, 2.0))
    with pytest.raises(ValueError, match=r"target must be in \[0, 1\], found -1.0"):
        F.binary_cross_entropy(t(0.2, 0.5), t(-1.0, 1.0))


# --- options -------------------------------------------------------------------------------

OPTIONS = [
    case("reduction", lambda: F.mse_loss(X, X, reduction="avg"), ValueError, "reduction='avg'", "mean, sum, none"),
    case("module reduction", lambda: tnn.HingeLoss(reduction="avg"), ValueError, "reduction='avg'"),
    case("gelu approximate", lambda: tnn.GELU(approximate="fast")(X), ValueError, "approximate='fast'", "'tanh'"),
    case("relu inplace", lambda: F.relu(X, inplace=True), NotImplementedError, "inplace=True"),
    case("LeakyReLU inplace", lambda: tnn.LeakyReLU(inplace=True), NotImplementedError, "inplace=True"),
    case("label_smoothing", lambda: tnn.CrossEntropyLoss(label_smoothing=0.1), NotImplementedError, "label_smoothing=0.1"),
    case("class weights", lambda: tnn.CrossEntropyLoss(weight=torch.ones(5)), NotImplementedError, "weight="),
    case("BCELoss weight", lambda: tnn.BCELoss(weight=torch.ones(3)), NotImplementedError, "weight="),
    case("pos_weight", lambda: F.binary_cross_entropy_with_logits(X, X, pos_weight=torch.ones(5)), NotImplementedError, "pos_weight"),
    case("svm margin str", lambda: tnn.MulticlassSVMLoss(margin="1")(X, torch.zeros(4, dtype=LONG)), TypeError, "margin", "str"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "names"), OPTIONS)
def test_bad_options(call, error, names):
    _assert_raises_naming(call, error, names)


# --- constructors and optimizers -----------------------------------------------------------


def _params():
    return [torch.nn.Parameter(torch.randn(3))]


CONSTRUCTORS = [
    case("Maxout in_features 0", lambda: tnn.Maxout(0, 2), ValueError, "in_features", "got 0"),
    case("Maxout pieces 0", lambda: tnn.Maxout(2, 2, pieces=0), ValueError, "pieces", "got 0"),
    case("Maxout out_features float", lambda: tnn.Maxout(2, 2.5), ValueError, "out_features", "2.5"),
    case("MLP one size", lambda: tnn.MLP([2]), ValueError, "[2]"),
    case("MLP zero width", lambda: tnn.MLP([2, 0, 1]), ValueError, "[2, 0, 1]"),
    case("MLP float width", lambda: tnn.MLP([2, 3.5, 1]), ValueError, "3.5"),
    case("MLP activation", lambda: tnn.MLP([2, 3, 1], activation="swish"), ValueError, "'swish'", "relu"),
    case("MLP activation type", lambda: tnn.MLP([2, 3, 1], activation=42), TypeError, "42"),
    case("MLP init", lambda: tnn.MLP([2, 3, 1], init="bogus"), ValueError, "'bogus'", "he"),
    case("Linear negative", lambda: tnn.Linear(-1, 2), RuntimeError, "-1"),
    case("SGD lr", lambda: SGD(_params(), lr=-1), ValueError, "learning rate", "-1"),
    case("SGD lr nan", lambda: SGD(_params(), lr=math.nan), ValueError, "learning rate", "nan"),
    case("SGD lr str", lambda: SGD(_params(), lr="fast"), ValueError, "lr", "'fast'"),
    case("SGD momentum", lambda: SGD(_params(), lr=0.1, momentum=-0.5), ValueError, "momentum", "-0.5"),
    case("SGD weight_decay", lambda: SGD(_params(), lr=0.1, weight_decay=-1), ValueError, "weight_decay", "-1"),
    case("SGD nesterov", lambda: SGD(_params(), lr=0.1, nesterov=True), ValueError, "Nesterov", "momentum=0.0"),
    case("SGD no parameters", lambda: SGD([], lr=0.1), ValueError, "empty parameter list"),
    case("clip max_norm", lambda: clip_grad_norm_(_params(), -1), ValueError, "max_norm", "-1"),
    case("clip max_norm nan", lambda: clip_grad_norm_(_params(), math.nan), ValueError, "max_norm", "nan"),
    case("clip value", lambda: clip_grad_value_(_params(), -2.0), ValueError, "clip_value", "-2.0"),
    case("data set", lambda: data.load("mnist"), ValueError, "'mnist'", "spiral"),
    case("data size", lambda: data.spiral(n=0), ValueError, "n must be", "got 0"),
    case("standardize empty", lambda: data.standardize(torch.empty(0, 2)), ValueError, "got 0"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "names"), CONSTRUCTORS)
def test_invalid_constructor_and_optimizer_arguments(call, error, names):
    _assert_raises_naming(call, error, names)


# --- empty batches -------------------------------------------------------------------------


def _tiny_model():
    torch.manual_seed(0)
    model = tnn.MLP([2, 4, 2])
    return model, SGD(model.parameters(), lr=0.1)


def _fit(train, **kwargs):
    model, optimizer = _tiny_model()
    kwargs.setdefault("epochs", 1)
    kwargs.setdefault("batch_size", 4)
    return fit(model, tnn.CrossEntropyLoss(), optimizer, train, progress=False, **kwargs)


EMPTY = [
    case("fit on no data", lambda: _fit((torch.empty(0, 2), torch.empty(0, dtype=LONG))), ValueError, "train is empty"),
    case("evaluate on no data", lambda: evaluate(tnn.Linear(2, 2), tnn.CrossEntropyLoss(), (torch.empty(0, 2), torch.empty(0, dtype=LONG))), ValueError, "empty dataset"),
    case("batch norm, one sample", lambda: tnn.BatchNorm1d(5)(torch.randn(1, 5)), ValueError, "more than 1 value per channel", "(1, 5)"),
    case("batch norm, no sample", lambda: tnn.BatchNorm1d(5)(torch.randn(0, 5)), ValueError, "(0, 5)"),
    case("batch size 0", lambda: _fit(data.xor().train, batch_size=0), ValueError, "batch_size", "got 0"),
    case("epochs -1", lambda: _fit(data.xor().train, epochs=-1), ValueError, "epochs", "got -1"),
    case("inputs and targets differ", lambda: _fit((torch.randn(4, 2), torch.zeros(3, dtype=LONG))), ValueError, "4 vs 3"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "names"), EMPTY)
def test_empty_batches_and_bad_fit_arguments(call, error, names):
    _assert_raises_naming(call, error, names)


def test_empty_batch_losses_follow_torch():
    """Not an error in torch either: a 'mean' over nothing is nan, a 'sum' is 0."""
    scores, target = torch.empty(0, 3), torch.empty(0, dtype=LONG)
    assert math.isnan(F.cross_entropy(scores, target).item())
    assert F.cross_entropy(scores, target, reduction="sum").item() == 0.0
    assert tnn.Linear(3, 2)(scores).shape == (0, 2)


# --- NaN / inf, when the caller asks for the check -----------------------------------------


def test_non_finite_inputs_pass_unless_checking_is_on():
    assert math.isnan(F.relu(t(math.nan)).item())  # torch's behaviour: nan propagates


FINITE = [
    case("relu nan", lambda: F.relu(t(1.0, math.nan)), ValueError, "relu()", "input", "nan", "(1,)"),
    case("linear inf weight", lambda: F.linear(X, t(1.0, math.inf, 0.0, 0.0, 0.0).reshape(1, 5)), ValueError, "weight", "inf", "(0, 1)"),
    case("mse -inf target", lambda: tnn.MSELoss()(X, torch.full((4, 5), -math.inf)), ValueError, "target", "-inf", "(0, 0)"),
    case("MLP nan input", lambda: tnn.MLP([5, 3, 2])(X.index_fill(0, torch.tensor([2]), math.nan)), ValueError, "linear", "input", "nan", "(2, 0)"),
    case("nan parameter", lambda: _nan_prelu(), ValueError, "prelu()", "weight", "nan"),
    case("add nan number", lambda: F.add(X, math.nan), ValueError, "add()", "y", "nan"),
    case("cross_entropy inf score", lambda: F.cross_entropy(X.index_fill(1, torch.tensor([3]), math.inf), torch.zeros(4, dtype=LONG)), ValueError, "input", "inf", "(0, 3)"),
]  # fmt: skip


def _nan_prelu():
    layer = tnn.PReLU()
    with torch.no_grad():
        layer.weight.fill_(math.nan)
    return layer(X)


@pytest.mark.parametrize(("call", "error", "names"), FINITE)
def test_non_finite_inputs_when_checking(call, error, names):
    with F.check_finite():
        _assert_raises_naming(call, error, names)
    call()  # off again outside the context: no error


def test_check_finite_nests_and_decorates():
    @F.check_finite()
    def checked():
        return F.relu(t(math.inf))

    with pytest.raises(ValueError, match="input contains inf"):
        checked()
    with F.check_finite(), F.check_finite(enabled=False):
        assert F.relu(t(math.inf)).item() == math.inf


# --- training: non-finite loss, unwritable places, broken and malicious checkpoints --------


class InfAt:
    """Cross-entropy that returns inf on its ``at``-th call (a blow-up on a known step)."""

    def __init__(self, at: int):
        self.at, self.calls = at, 0

    def __call__(self, output, target):
        self.calls += 1
        loss = F.cross_entropy(output, target)
        return loss * math.inf if self.calls == self.at else loss


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    model, optimizer = _tiny_model()
    xor = data.xor()  # 4 samples, batch 2: 2 steps per epoch
    kept = {}

    class Keep:
        def on_epoch(self, epoch, history):
            kept[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    with pytest.raises(NonFiniteLossError) as info:
        fit(model, InfAt(6), optimizer, xor.train, epochs=5, batch_size=2, checkpoint=path,
            monitor=Keep(), progress=False)  # fmt: skip
    message = str(info.value)
    for name in ("became inf", "epoch 3, step 6", str(path), "learning rate"):
        assert name in message
    state = load_checkpoint(path)
    assert state["epoch"] == 2
    assert all(torch.equal(state["model"][k], v) for k, v in kept[2].items())
    # The inf step was refused before it touched the weights.
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cli_non_finite_loss_exits_1_and_leaves_a_loadable_checkpoint(capsys, tmp_path):
    path = tmp_path / "run.pt"
    args = ["train", "--dataset", "reciprocal", "--preprocess", "none", "--lr", "1e6"]
    status = main([*args, "--logdir", "none", "--quiet", "--checkpoint", str(path)])
    err = capsys.readouterr().err
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert "training loss became" in err and "--lr" in err
    if path.exists():
        state = load_checkpoint(path)
        assert all(torch.isfinite(v).all() for v in state["model"].values())


def _blocked_directory(tmp_path: Path) -> Path:
    """A path nobody can create, not even root: its parent is a regular file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    return blocker / "sub"


def test_unwritable_log_directory(capsys, tmp_path):
    logdir = _blocked_directory(tmp_path)
    status = main(["train", "--dataset", "xor", "--epochs", "1", "--logdir", str(logdir)])
    err = capsys.readouterr().err
    assert status == 1
    assert "cannot log to" in err and str(logdir) in err and "Traceback" not in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anyway")
def test_read_only_log_directory(capsys, tmp_path):
    logdir = tmp_path / "ro"
    logdir.mkdir()
    logdir.chmod(0o500)
    try:
        status = main(["train", "--dataset", "xor", "--epochs", "1", "--logdir", str(logdir)])
    finally:
        logdir.chmod(0o700)
    assert status == 1 and "cannot log to" in capsys.readouterr().err


def test_unwritable_checkpoint_fails_before_training(capsys, tmp_path):
    path = _blocked_directory(tmp_path) / "run.pt"
    status = main(["train", "--dataset", "xor", "--logdir", "none", "--checkpoint", str(path)])
    err = capsys.readouterr().err
    assert status == 1
    assert f"cannot write the checkpoint {path}" in err and "is not a directory" in err
    assert "Traceback" not in err


def test_checkpoint_path_that_is_a_directory(capsys, tmp_path):
    status = main(["train", "--dataset", "xor", "--logdir", "none", "--checkpoint", str(tmp_path)])
    assert status == 1 and "it is a directory" in capsys.readouterr().err


def test_disk_full_during_training_is_one_line(capsys, tmp_path, monkeypatch):
    path = tmp_path / "run.pt"

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("torchmanual.train.save_checkpoint", full)
    args = ["train", "--dataset", "xor", "--epochs", "2", "--logdir", "none", "--quiet"]
    status = main([*args, "--checkpoint", str(path)])
    err = capsys.readouterr().err
    assert status == 1 and f"cannot write {path}: No space left on device" in err


def _good_checkpoint(path: Path) -> bytes:
    model, optimizer = _tiny_model()
    fit(model, tnn.CrossEntropyLoss(), optimizer, data.xor().train, epochs=1, batch_size=4,
        checkpoint=path, progress=False)  # fmt: skip
    return path.read_bytes()


BROKEN = {
    "truncated": lambda good: good[: len(good) // 2],
    "truncated to the header": lambda good: good[:64],
    "empty file": lambda good: b"",
    "garbage": lambda good: b"\x00garbage\xff" * 50,
    "bit rot": lambda good: good[:200] + bytes(b ^ 0xFF for b in good[200:400]) + good[400:],
}


@pytest.mark.parametrize("damage", list(BROKEN.values()), ids=list(BROKEN))
def test_corrupt_or_truncated_checkpoint(tmp_path, damage):
    path = tmp_path / "run.pt"
    path.write_bytes(damage(_good_checkpoint(path)))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and ("corrupt" in message or "damaged" in message)


def test_foreign_checkpoints(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="no 'torchmanual.checkpoint' format marker"):
        load_checkpoint(path)
    torch.save(torch.nn.Linear(2, 2), path)  # a whole pickled module
    with pytest.raises(CheckpointError, match=r"Python objects \(torch\.nn\.modules\.linear"):
        load_checkpoint(path)
    model, optimizer = _tiny_model()
    weights = {**model.state_dict(), "fc1.weight": torch.zeros(9, 9)}
    save_checkpoint(path, {"epoch": 1, "step": 1, "model": weights, "optimizer": {}, "rng": {},
                           "history": {}})  # fmt: skip
    with pytest.raises(CheckpointError, match=r"'fc1.weight' is \(9, 9\) in the checkpoint"):
        fit(model, tnn.CrossEntropyLoss(), optimizer, data.xor().train, epochs=2, batch_size=4,
            checkpoint=path, resume=True, progress=False)  # fmt: skip


class Payload:
    """Unpickling this calls ``open(marker, 'w')``: code running at load time."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def _malicious(path: Path, marker: Path, *, raw_pickle: bool) -> None:
    state = {"format": "torchmanual.checkpoint", "version": 1, "epoch": 1, "step": 1,
             "model": {"fc1.weight": Payload(marker)}, "optimizer": {}, "rng": {},
             "history": {}}  # fmt: skip
    if raw_pickle:  # the legacy (non-zip) format torch.load also reads
        path.write_bytes(pickle.dumps(state, protocol=2))
    else:
        torch.save(state, path)


@pytest.mark.parametrize("raw_pickle", [False, True], ids=["torch.save zip", "raw pickle"])
def test_malicious_checkpoint_runs_no_code(capsys, tmp_path, raw_pickle):
    # The payload is live: plain pickle would run it and create the control marker.
    control = tmp_path / "control-marker"
    _malicious(tmp_path / "control.pt", control, raw_pickle=True)
    with open(tmp_path / "control.pt", "rb") as file:
        pickle.load(file).get("model")["fc1.weight"].close()
    assert control.exists()

    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    _malicious(path, marker, raw_pickle=raw_pickle)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    # (pickle names builtins.open by its home, io.open)
    assert "io.open" in message and "refuses to load" in message and "nothing" in message
    status = main(["train", "--dataset", "xor", "--logdir", "none", "--quiet",
                   "--checkpoint", str(path), "--resume"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1 and "io.open" in err
    assert not marker.exists(), "code in the checkpoint ran"


# --- the command line ----------------------------------------------------------------------

CLI_CHOICES = [
    (["train", "--dataset", "mnist"], "'mnist'"),
    (["train", "--activation", "swish"], "'swish'"),
    (["train", "--init", "bogus"], "'bogus'"),
    (["train", "--loss", "hinge"], "'hinge'"),
    (["train", "--schedule", "linear"], "'linear'"),
    (["train", "--device", "tpu"], "'tpu'"),
    (["train", "--preprocess", "pca"], "'pca'"),
    (["train", "--epochs", "ten"], "'ten'"),
    (["fly"], "'fly'"),
]


@pytest.mark.parametrize(("args", "named"), CLI_CHOICES, ids=[a[-1] for a, _ in CLI_CHOICES])
def test_unknown_cli_choices_exit_2_naming_them(capsys, args, named):
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert named in err and ("invalid choice" in err or "invalid int value" in err)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--batch-size", "0"], "--batch-size must be positive, got 0"),
        (["--lr", "-0.1"], "--lr must be positive, got -0.1"),
        (["--resume"], "--resume needs --checkpoint"),
        (["--dataset", "sin", "--loss", "cross_entropy"], "--loss cross_entropy does not fit"),
    ],
)
def test_inconsistent_cli_arguments_exit_2(capsys, args, named):
    assert main(["train", "--logdir", "none", *args]) == 2
    assert named in capsys.readouterr().err


def test_malformed_torchrun_environment_exits_2(capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    monkeypatch.setenv("RANK", "0")
    assert main(["train", "--logdir", "none"]) == 2
    assert "WORLD_SIZE='two' is not an integer" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK")
    assert main(["train", "--logdir", "none"]) == 2
    assert "RANK is not set" in capsys.readouterr().err


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
