"""torchmanual.train: the fit loop, its checkpoints, and its failure modes.

Uses torch.nn and torch.optim only, so it checks that fit works with any model/optimizer.
"""

import itertools
import json
import math
import os
import sys
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from torchmanual import data
from torchmanual.train import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    History,
    Monitor,
    NonFiniteLossError,
    evaluate,
    fit,
    load_checkpoint,
    resolve_device,
    save_checkpoint,
)


@pytest.fixture(autouse=True)
def _one_thread():
    # NOTE: these models are tiny; with 2 shared cores, intra-op threads only contend.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mlp(*sizes, activation=nn.ReLU, dropout=0.0):
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [nn.Linear(fan_in, fan_out), activation()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers[: -2 if dropout else -1])


def small_spiral():
    return data.spiral(n=60, classes=3)


def setup(seed=0, dropout=0.2, scheduler=True):
    """A model/optimizer/scheduler whose every piece of state matters for resuming."""
    torch.manual_seed(seed)
    model = mlp(2, 32, 32, 3, dropout=dropout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    sched = (
        torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5) if scheduler else None
    )
    return model, optimizer, sched


def run(model, optimizer, sched=None, d=None, **kwargs):
    d = d or small_spiral()
    kwargs.setdefault("epochs", 2)
    kwargs.setdefault("batch_size", 16)
    kwargs.setdefault("progress", False)
    return fit(model, nn.CrossEntropyLoss(), optimizer, d.train, d.test, scheduler=sched, **kwargs)


# --- learning ------------------------------------------------------------------------------


def test_solves_xor():
    d = data.xor()
    torch.manual_seed(0)
    model = mlp(2, 8, 2, activation=nn.Tanh)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    h = fit(
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        d.train,
        d.test,
        epochs=100,
        batch_size=4,
        progress=False,
    )
    assert h.test_accuracy[-1] == 1.0
    assert h.train_loss[-1] < 0.01


def test_solves_spiral_in_a_few_hundred_steps():
    d = data.spiral()
    torch.manual_seed(0)
    model = mlp(2, 64, 64, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    h = fit(
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        d.train,
        d.test,
        epochs=15,
        batch_size=32,
        progress=False,
    )
    assert h.step == 15 * math.ceil(900 / 32)  # 435 steps
    assert h.test_accuracy[-1] >= 0.95
    assert h.train_loss[-1] < h.train_loss[0] / 5


def test_solves_circles():
    d = data.circles()
    torch.manual_seed(0)
    model = mlp(2, 16, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    h = fit(
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        d.train,
        d.test,
        epochs=30,
        batch_size=16,
        progress=False,
    )
    assert h.test_accuracy[-1] >= 0.97


def test_fits_the_square_curve():
    d = data.regression("square")
    torch.manual_seed(0)
    model = mlp(1, 32, 1, activation=nn.Tanh)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    h = fit(
        model, nn.MSELoss(), optimizer, d.train, d.test, epochs=100, batch_size=32, progress=False
    )
    assert h.task == "regression"
    assert h.test_loss[-1] < 2e-3  # the targets' own variance is ~0.09
    assert h.test_accuracy == [None] * 100


# --- history, task, evaluation ---------------------------------------------------------------


def test_history_shape_and_json():
    model, optimizer, _ = setup(dropout=0.0, scheduler=False)
    h = run(model, optimizer, epochs=3, batch_size=50)
    assert isinstance(h, History)
    assert h.epochs == 3 and h.step == 3 * math.ceil(180 / 50)
    for values in (h.train_loss, h.test_loss, h.test_accuracy, h.seconds):
        assert len(values) == 3 and all(isinstance(v, float) and math.isfinite(v) for v in values)
    assert all(0.0 <= a <= 1.0 for a in h.test_accuracy)
    restored = History.from_dict(json.loads(json.dumps(h.to_dict())))
    assert restored == h


def test_without_test_split():
    d = small_spiral()
    model, optimizer, _ = setup(scheduler=False)
    h = fit(
        model, nn.CrossEntropyLoss(), optimizer, d.train, epochs=2, batch_size=32, progress=False
    )
    assert h.test_loss == [None, None] and h.test_accuracy == [None, None]


def test_train_loss_is_the_size_weighted_mean_of_batch_losses():
    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    y = torch.randn(10, 1, generator=torch.Generator().manual_seed(1))
    model = nn.Linear(2, 1)
    losses = []

    class Record:
        def on_step(self, step, loss, optimizer):
            losses.append(loss)

    # lr=0: the weights never move, so the epoch's loss is the loss of the whole split.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    h = fit(
        model,
        nn.MSELoss(),
        optimizer,
        (x, y),
        (x, y),
        epochs=1,
        batch_size=4,
        monitor=Record(),
        progress=False,
    )
    assert len(losses) == 3  # batches of 4, 4, 2
    expected = nn.functional.mse_loss(model(x), y).item()
    assert h.train_loss[0] == pytest.approx(expected, rel=1e-6)
    assert h.test_loss[0] == pytest.approx(expected, rel=1e-6)


def test_task_detection_and_override():
    x = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    y_float = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    h = fit(
        model,
        nn.MSELoss(),
        optimizer,
        (x, y_float),
        (x, y_float),
        epochs=1,
        batch_size=2,
        progress=False,
    )
    assert h.task == "regression" and h.test_accuracy == [None]
    y_class = torch.tensor([0, 1])
    h = fit(
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        (x, y_class),
        (x, y_class),
        epochs=1,
        batch_size=2,
        progress=False,
    )
    assert h.task == "classification" and h.test_accuracy[0] is not None
    h = fit(
        model, nn.CrossEntropyLoss(), optimizer, (x, y_class), (x, y_class),
        epochs=1, batch_size=2, progress=False, task="regression",
    )  # fmt: skip
    assert h.test_accuracy == [None]
    with pytest.raises(ValueError, match=r"task must be .* got 'classify'"):
        fit(model, nn.MSELoss(), optimizer, (x, y_float), epochs=1, batch_size=2, task="classify")


def test_evaluate_accuracy_is_argmax_over_the_last_dim():
    model = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
    x = torch.eye(3).repeat(4, 1)  # argmax of row i is i % 3
    y = torch.tensor([0, 1, 2] * 3 + [1, 2, 0])  # the last 3 wrong
    loss, accuracy = evaluate(model, nn.CrossEntropyLoss(), TensorDataset(x, y))
    assert accuracy == 9 / 12
    assert loss == pytest.approx(nn.functional.cross_entropy(x, y).item(), rel=1e-6)


class ModeProbe(nn.Module):
    """Records (training, grad enabled) at every forward."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 3)
        self.seen = []

    def forward(self, x):
        self.seen.append((self.training, torch.is_grad_enabled(), x.shape[0]))
        return self.linear(x)


def test_train_mode_for_training_eval_mode_without_grad_for_evaluation():
    d = small_spiral()
    model = ModeProbe()
    model.eval()  # the mode the caller left it in comes back afterwards
    model.linear.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        d.train,
        d.test,
        epochs=1,
        batch_size=60,
        progress=False,
    )
    assert model.seen == [(True, True, 60)] * 3 + [(False, False, 180)]
    assert not model.training and model.linear.training


def test_monitor_protocol():
    events = []

    class Recorder:
        def on_step(self, step, loss, optimizer):
            grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
            events.append(("step", step, type(loss), all(g is not None for g in grads)))

        def on_epoch(self, epoch, history):
            events.append(("epoch", epoch, history.epochs, history.step))

    assert isinstance(Recorder(), Monitor)
    model, optimizer, _ = setup(scheduler=False)
    run(model, optimizer, epochs=2, batch_size=90, monitor=Recorder())
    assert events == [
        ("step", 1, float, True),
        ("step", 2, float, True),
        ("epoch", 1, 1, 2),
        ("step", 3, float, True),
        ("step", 4, float, True),
        ("epoch", 2, 2, 4),
    ]

    class EpochsOnly:
        epochs = []

        def on_epoch(self, epoch, history):
            self.epochs.append(epoch)

    monitor = EpochsOnly()
    run(*setup()[:2], epochs=2, monitor=monitor)
    assert monitor.epochs == [1, 2]


def test_generic_dataset_goes_through_a_dataloader():
    d = data.xor()

    class Pairs(Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i], self.y[i]

    torch.manual_seed(0)
    model = mlp(2, 8, 2, activation=nn.Tanh)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    h = fit(
        model, nn.CrossEntropyLoss(), optimizer, Pairs(*d.train.tensors), Pairs(*d.test.tensors),
        epochs=100, batch_size=2, progress=False,
    )  # fmt: skip
    assert h.step == 200 and h.task == "classification" and h.test_accuracy[-1] == 1.0


def test_reduce_lr_on_plateau_gets_a_metric():
    model, optimizer, _ = setup(scheduler=False)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, patience=0, factor=0.5, threshold=10.0
    )
    run(model, optimizer, sched, epochs=3)
    # threshold=10 (relative) means no epoch counts as an improvement, so the lr halves.
    assert optimizer.param_groups[0]["lr"] < 0.1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"epochs": -1}, ValueError, "epochs must be an integer >= 0, got -1"),
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": 2.5}, ValueError, "batch_size must be an integer >= 1, got 2.5"),
        ({"resume": True}, ValueError, "resume=True needs checkpoint=PATH"),
        ({"device": "tpu9"}, ValueError, "unknown device 'tpu9'"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    model, optimizer, _ = setup()
    with pytest.raises(error, match=message):
        run(model, optimizer, **kwargs)


def test_bad_dataset_types():
    model, optimizer, _ = setup()
    with pytest.raises(TypeError, match=r"train must be a TensorDataset.*got list"):
        fit(model, nn.CrossEntropyLoss(), optimizer, [1, 2], epochs=1, batch_size=1)
    x, y = torch.zeros(3, 2), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="differ in length: 3 vs 4"):
        fit(model, nn.CrossEntropyLoss(), optimizer, (x, y), epochs=1, batch_size=1)


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' was asked for but CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.cuda
def test_fit_on_cuda_with_a_checkpoint(tmp_path):
    model, optimizer, sched = setup()
    h = run(model, optimizer, sched, device="cuda", epochs=2, checkpoint=tmp_path / "gpu.pt")
    assert next(model.parameters()).is_cuda and h.epochs == 2
    state = load_checkpoint(tmp_path / "gpu.pt")
    assert state["rng"]["cuda"] is not None
    model2, optimizer2, sched2 = setup(seed=1)
    h2 = run(
        model2,
        optimizer2,
        sched2,
        device="cuda",
        epochs=3,
        checkpoint=tmp_path / "gpu.pt",
        resume=True,
    )
    assert h2.epochs == 3 and h2.train_loss[:2] == h.train_loss


# --- progress --------------------------------------------------------------------------------


def test_progress_bar_only_on_a_terminal_and_only_when_asked(capsys, monkeypatch):
    model, optimizer, _ = setup()
    run(model, optimizer, epochs=1, progress=True)  # stderr is not a terminal under pytest
    assert capsys.readouterr() == ("", "")

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    run(model, optimizer, epochs=1, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "epoch 1/1" in err and "loss=" in err and "acc=" in err

    run(model, optimizer, epochs=1, progress=False)
    assert capsys.readouterr() == ("", "")


# --- checkpoints -----------------------------------------------------------------------------


def assert_same_state(a, b):
    a, b = a.state_dict(), b.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_is_bit_exact(tmp_path):
    path = tmp_path / "run.pt"
    torch.manual_seed(1234)  # the global RNG drives dropout: both runs start from the same
    straight_model, straight_opt, straight_sched = setup()
    straight = run(straight_model, straight_opt, straight_sched, epochs=6)

    torch.manual_seed(1234)
    model, optimizer, sched = setup()
    first = run(model, optimizer, sched, epochs=3, checkpoint=path)
    assert first.epochs == 3 and load_checkpoint(path)["epoch"] == 3

    # A new process would start with other weights and another global RNG state.
    torch.manual_seed(99)
    model, optimizer, sched = setup(seed=7)
    resumed = run(model, optimizer, sched, epochs=6, checkpoint=path, resume=True)

    assert_same_state(model, straight_model)
    resumed_state, straight_state = optimizer.state_dict(), straight_opt.state_dict()
    assert resumed_state["param_groups"] == straight_state["param_groups"]
    for index, buffers in straight_state["state"].items():  # the momentum buffers
        assert torch.equal(
            resumed_state["state"][index]["momentum_buffer"], buffers["momentum_buffer"]
        )
    assert sched.state_dict() == straight_sched.state_dict()
    assert resumed.train_loss == straight.train_loss
    assert resumed.test_loss == straight.test_loss
    assert resumed.test_accuracy == straight.test_accuracy
    assert resumed.step == straight.step == 6 * math.ceil(180 / 16)
    assert resumed.train_loss[:3] == first.train_loss
    assert load_checkpoint(path)["epoch"] == 6


def test_resume_at_the_target_epoch_only_loads(tmp_path):
    path = tmp_path / "run.pt"
    model, optimizer, sched = setup()
    h = run(model, optimizer, sched, epochs=2, checkpoint=path)
    again, optimizer2, sched2 = setup(seed=5)
    h2 = run(again, optimizer2, sched2, epochs=2, checkpoint=path, resume=True)
    assert h2 == h  # same history, timing included: nothing was re-run
    assert_same_state(again, model)


def test_resume_with_other_batch_size_warns(tmp_path):
    path = tmp_path / "run.pt"
    run(*setup(), epochs=1, checkpoint=path)
    with pytest.warns(UserWarning, match="batch_size=32, but it was written with batch_size=16"):
        run(*setup(), epochs=2, batch_size=32, checkpoint=path, resume=True)


def test_checkpoint_contents_load_with_weights_only(tmp_path):
    path = tmp_path / "sub" / "run.pt"  # missing directories are created
    model, optimizer, sched = setup()
    h = run(model, optimizer, sched, epochs=2, checkpoint=path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT and raw["version"] == CHECKPOINT_VERSION
    assert raw["epoch"] == 2 and raw["step"] == h.step
    assert raw["history"] == h.to_dict()
    assert raw["model"].keys() == model.state_dict().keys()
    assert raw["scheduler"]["last_epoch"] == 2
    assert set(raw["rng"]) == {"torch", "shuffle", "cuda"}
    assert sorted(os.listdir(path.parent)) == ["run.pt"]


class FailingSave:
    """Stands in for torch.save: writes part of the file, then fails as a full disk would."""

    def __init__(self):
        self.calls = 0

    def __call__(self, obj, f, *args, **kwargs):
        self.calls += 1
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")


def test_failed_write_keeps_the_old_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    model, optimizer, sched = setup()
    run(model, optimizer, sched, epochs=2, checkpoint=path)
    before = path.read_bytes()

    failing = FailingSave()
    monkeypatch.setattr(torch, "save", failing)
    with pytest.raises(OSError, match="No space left"):
        run(model, optimizer, sched, epochs=4, checkpoint=path, resume=True)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"epoch": 9})
    monkeypatch.undo()

    assert failing.calls == 2
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 2
    assert os.listdir(tmp_path) == ["run.pt"]


def test_save_and_load_checkpoint_round_trip(tmp_path):
    path = tmp_path / "state.pt"
    state = {
        "epoch": 1,
        "step": 5,
        "model": {"w": torch.arange(3.0)},
        "optimizer": {},
        "rng": {},
        "history": {"x": [1.0, None]},
    }
    save_checkpoint(path, state)
    save_checkpoint(path, {**state, "epoch": 2})  # replaces an existing file
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 2 and torch.equal(loaded["model"]["w"], torch.arange(3.0))
    assert loaded["history"] == {"x": [1.0, None]}
    assert os.listdir(tmp_path) == ["state.pt"]


def resume_error(path, model_sizes=(2, 32, 32, 3)):
    torch.manual_seed(0)
    model = mlp(*model_sizes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(CheckpointError) as info:
        run(model, optimizer, epochs=3, checkpoint=path, resume=True)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert info.value.path == str(path)
    assert isinstance(info.value, RuntimeError)
    return message


def good_checkpoint(path):
    model, optimizer, _ = setup(dropout=0.0, scheduler=False)
    run(model, optimizer, epochs=1, checkpoint=path)
    return path.read_bytes()


def test_missing_checkpoint(tmp_path):
    assert "file does not exist" in resume_error(tmp_path / "nope.pt")
    assert "not a regular file" in resume_error(tmp_path)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda good: good[: len(good) // 2], id="truncated"),
        pytest.param(lambda good: good[:100], id="truncated-header"),
        pytest.param(lambda good: b"", id="empty"),
        pytest.param(lambda good: b"\x00garbage\xff" * 100, id="garbage"),
        pytest.param(lambda good: b"epoch: 3\nmodel: fc1\n", id="text"),
    ],
)
def test_corrupt_checkpoint(tmp_path, damage):
    path = tmp_path / "run.pt"
    path.write_bytes(damage(good_checkpoint(path)))
    message = resume_error(path)
    assert "corrupt" in message


def test_foreign_torch_files(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    assert "not a torchmanual checkpoint" in resume_error(path)
    torch.save(torch.zeros(3), path)
    assert "not a torchmanual checkpoint" in resume_error(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(nn.Linear(2, 2), path)  # a pickled module: weights_only refuses it
    assert "not a torchmanual checkpoint" in resume_error(path)


def test_checkpoint_from_a_newer_version_or_missing_fields(tmp_path):
    path = tmp_path / "run.pt"
    good_checkpoint(path)
    state = torch.load(path, weights_only=True)
    torch.save({**state, "version": CHECKPOINT_VERSION + 1}, path)
    assert "newer torchmanual" in resume_error(path)
    torch.save({k: v for k, v in state.items() if k != "optimizer"}, path)
    assert "'optimizer' is missing" in resume_error(path)


def test_checkpoint_for_another_model(tmp_path):
    path = tmp_path / "run.pt"
    good_checkpoint(path)  # a 2-32-32-3 MLP
    message = resume_error(path, model_sizes=(2, 16, 16, 3))
    assert "does not fit this model: '0.weight' is (32, 2) in the checkpoint but (16, 2)" in message
    message = resume_error(path, model_sizes=(2, 32, 3))
    assert "does not fit this model" in message and "unexpected '4.weight'" in message


def test_checkpoint_for_another_optimizer_or_scheduler(tmp_path):
    path = tmp_path / "run.pt"
    good_checkpoint(path)
    torch.manual_seed(0)
    model = mlp(2, 32, 32, 3)
    groups = [{"params": list(model[0].parameters())}, {"params": list(model[2:].parameters())}]
    optimizer = torch.optim.SGD(groups, lr=0.1)
    with pytest.raises(CheckpointError, match="optimizer state does not fit"):
        run(model, optimizer, epochs=2, checkpoint=path, resume=True)
    model, optimizer, sched = setup(dropout=0.0)
    with pytest.raises(CheckpointError, match="written without a learning-rate scheduler"):
        run(model, optimizer, sched, epochs=2, checkpoint=path, resume=True)


# --- non-finite losses -----------------------------------------------------------------------


class NaNAt:
    """Cross-entropy that turns nan on call number ``at`` (a stand-in for a blow-up)."""

    def __init__(self, at):
        self.at, self.calls = at, 0

    def __call__(self, output, target):
        if torch.is_grad_enabled():
            self.calls += 1
        loss = nn.functional.cross_entropy(output, target)
        return loss * float("nan") if self.calls == self.at else loss


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    d = small_spiral()
    model, optimizer, _ = setup(scheduler=False)
    snapshots = {}

    class Snapshot:
        def on_epoch(self, epoch, history):
            snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    steps_per_epoch = math.ceil(180 / 16)  # 12
    bad_step = 2 * steps_per_epoch + 5  # in epoch 3
    with pytest.raises(NonFiniteLossError) as info:
        fit(
            model, NaNAt(bad_step), optimizer, d.train, d.test, epochs=5, batch_size=16,
            checkpoint=path, monitor=Snapshot(), progress=False,
        )  # fmt: skip
    error = info.value
    assert isinstance(error, RuntimeError)
    assert (error.epoch, error.step) == (3, bad_step) and math.isnan(error.loss)
    message = str(error)
    assert f"epoch 3, step {bad_step}" in message
    assert "learning rate" in message and "gradient clipping" in message and str(path) in message
    saved = load_checkpoint(path)
    assert saved["epoch"] == 2 and saved["history"]["step"] == 2 * steps_per_epoch
    for key, value in snapshots[2].items():
        assert torch.equal(saved["model"][key], value)
    # The broken step was refused: the weights are finite, the gradients never computed.
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert os.listdir(tmp_path) == ["run.pt"]


def test_a_learning_rate_far_too_high_is_reported():
    d = data.regression("reciprocal")  # raw inputs up to 100: a large lr explodes fast
    torch.manual_seed(0)
    model = mlp(1, 16, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=10.0)
    pattern = r"loss became (inf|nan) at epoch 1, step \d+: "
    with pytest.raises(NonFiniteLossError, match=pattern) as info:
        fit(
            model, nn.MSELoss(), optimizer, d.train, d.test, epochs=5, batch_size=16, progress=False
        )
    assert "checkpoint" not in str(info.value)  # none was written, so none is promised
