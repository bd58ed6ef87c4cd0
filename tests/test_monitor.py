"""Tests for torchmanual.monitor.ActivationStats: the logs are read back with TensorBoard's
own event reader and, in one integration test, served by a real ``tensorboard`` process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.tensorboard import SummaryWriter

from torchmanual.monitor import ActivationStats

LAYERS = ["fc1", "act1", "fc2", "act2", "fc3"]
PARAMS = [f"fc{i}.{kind}" for i in (1, 2, 3) for kind in ("weight", "bias")]
ALL = {k: 0 for k in ("compressedHistograms", "images", "audio", "scalars", "histograms")}
ALL["tensors"] = 0


def make_mlp(seed: int = 0) -> nn.Sequential:
    """Linear/Tanh/Linear/ReLU/Linear named as torchmanual.nn.MLP names its layers."""
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(
            fc1=nn.Linear(6, 8),
            act1=nn.Tanh(),
            fc2=nn.Linear(8, 8),
            act2=nn.ReLU(),
            fc3=nn.Linear(8, 3),
        )
    )


class History:
    """What torchmanual.train.fit passes to on_epoch."""

    def __init__(self) -> None:
        self.record: dict[str, list] = {"train_loss": [], "test_loss": [], "test_accuracy": []}

    def to_dict(self) -> dict[str, list]:
        return self.record


def train(model, monitor, steps, *, lr=0.1, seed=1, epoch_every=None, regression=False):
    """A fit-like loop on random data driving the monitor through its protocol."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    history = History()
    for step in range(steps):
        x = torch.randn(16, 6, generator=gen)
        y = torch.randint(0, 3, (16,), generator=gen)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if monitor is not None:
            monitor.on_step(step, loss, opt)
        if epoch_every and (step + 1) % epoch_every == 0:
            history.record["train_loss"].append(loss.item())
            history.record["test_loss"].append(loss.item() + 0.5)
            history.record["test_accuracy"].append(
                None if regression else 0.25 * len(history.record["train_loss"])
            )
            if monitor is not None:
                monitor.on_epoch(len(history.record["train_loss"]), history)
    return opt, history


def read(logdir) -> EventAccumulator:
    acc = EventAccumulator(str(logdir), size_guidance=ALL)
    acc.Reload()
    return acc


def steps_of(acc: EventAccumulator, tag: str) -> list[int]:
    return [event.step for event in acc.Scalars(tag)]


def value(acc: EventAccumulator, tag: str, step: int = 0) -> float:
    (event,) = [e for e in acc.Scalars(tag) if e.step == step]
    return event.value


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())


# ---------------------------------------------------------------------------- what is logged
def test_every_layer_and_parameter_is_logged_every_n_steps(tmp_path):
    model = make_mlp()
    with ActivationStats(model, tmp_path, every=4) as monitor:
        train(model, monitor, steps=10)
    assert monitor.layer_names == LAYERS
    acc = read(tmp_path)
    scalars, histograms = set(acc.Tags()["scalars"]), set(acc.Tags()["histograms"])

    logged = [0, 4, 8]  # the 1st, 5th and 9th of 10 steps
    for layer in LAYERS:
        for stat in ("mean", "std"):
            assert steps_of(acc, f"activations/{layer}/{stat}") == logged
        assert f"activations/{layer}" in histograms
        assert len(acc.Histograms(f"activations/{layer}")) == len(logged)
    # saturation only where there are bounds, dead units only for the ReLU family
    assert steps_of(acc, "activations/act1/saturated") == logged
    assert steps_of(acc, "activations/act2/dead") == logged
    saturated = {t for t in scalars if t.endswith("/saturated")}
    dead = {t for t in scalars if t.endswith("/dead")}
    assert saturated == {"activations/act1/saturated"}
    assert dead == {"activations/act2/dead"}
    for param in PARAMS:
        assert steps_of(acc, f"gradients/{param}/norm") == logged
        assert steps_of(acc, f"updates/{param}/ratio") == logged
        assert len(acc.Histograms(f"gradients/{param}")) == len(logged)
    assert steps_of(acc, "loss/train") == logged
    assert steps_of(acc, "lr") == logged
    assert value(acc, "lr") == pytest.approx(0.1)
    # 3 scalars per Linear, 3 per activation, 2 per param, plus loss/train and lr
    assert len(scalars) == 5 * 2 + 2 + 2 * len(PARAMS) + 2


def test_logged_values_equal_a_direct_computation(tmp_path):
    model = make_mlp()
    with torch.no_grad():
        model.fc1.weight.mul_(4.0)  # so that part of the tanh layer saturates
        # 3 units always off (dead), 3 always on, 2 on for some samples only: 3/8 dead
        model.fc2.bias.copy_(torch.tensor([-50.0] * 3 + [50.0] * 3 + [0.0] * 2))
    x = torch.randn(32, 6, generator=torch.Generator().manual_seed(3))
    target = torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(4))

    with torch.no_grad():  # the layer outputs, computed directly
        outputs = {}
        h = x
        for name, layer in model.named_children():
            h = layer(h)
            outputs[name] = h.clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with ActivationStats(model, tmp_path, every=1) as monitor:
        loss = nn.functional.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        monitor.on_step(7, loss, opt)
    acc = read(tmp_path)

    for name, out in outputs.items():
        assert value(acc, f"activations/{name}/mean", 7) == pytest.approx(
            out.mean().item(), abs=1e-6
        )
        assert value(acc, f"activations/{name}/std", 7) == pytest.approx(
            out.std(correction=0).item(), rel=1e-6
        )
        (hist,) = acc.Histograms(f"activations/{name}")
        h = hist.histogram_value
        assert hist.step == 7
        assert h.num == out.numel() == sum(h.bucket)
        assert (h.min, h.max) == pytest.approx((out.min().item(), out.max().item()))
        assert h.sum_squares == pytest.approx(out.square().sum().item(), rel=1e-5)
        assert h.bucket_limit[-1] == pytest.approx(out.max().item())

    tanh = outputs["act1"]
    saturated = (tanh.abs() >= 0.99).float().mean().item()
    assert 0 < saturated < 1
    assert value(acc, "activations/act1/saturated", 7) == pytest.approx(saturated)
    on_fraction = (outputs["act2"] > 0).float().mean(dim=0)
    assert ((on_fraction > 0) & (on_fraction < 1)).sum() == 2  # the mixed units are alive
    assert value(acc, "activations/act2/dead", 7) == pytest.approx(3 / 8)
    assert value(acc, "loss/train", 7) == pytest.approx(loss.item())

    for name, p in model.named_parameters():
        g_norm = p.grad.norm().item()
        assert value(acc, f"gradients/{name}/norm", 7) == pytest.approx(g_norm, rel=1e-6)
        ratio = 0.05 * g_norm / p.detach().norm().item()
        assert value(acc, f"updates/{name}/ratio", 7) == pytest.approx(ratio, rel=1e-5)
        (hist,) = acc.Histograms(f"gradients/{name}")
        assert hist.histogram_value.num == p.numel()
        assert hist.histogram_value.max == pytest.approx(p.grad.max().item())


def test_sigmoid_saturation_uses_its_own_bounds(tmp_path):
    model = nn.Sequential(OrderedDict(act=nn.Sigmoid()))
    x = torch.tensor([[-10.0, 0.0, 10.0, 4.0]])  # σ ≈ 4.5e-5, 0.5, 0.99995, 0.982
    with ActivationStats(model, tmp_path, every=1, gradients=False) as monitor:
        model(x)
        monitor.step()
    assert value(read(tmp_path), "activations/act/saturated") == pytest.approx(0.5)


def test_torchmanual_classes_are_recognised_by_name(tmp_path):
    # torchmanual.nn's modules do not subclass torch.nn's; the class name is what counts.
    class Sigmoid(nn.Module):
        def forward(self, x):
            return torch.sigmoid(x)

    class Step(nn.Module):
        def forward(self, x):
            return (x > 0).to(x.dtype)

    model = nn.Sequential(
        OrderedDict(fc1=nn.Linear(3, 4), act1=Sigmoid(), fc2=nn.Linear(4, 4), act2=Step())
    )
    with ActivationStats(model, tmp_path, every=1, gradients=False) as monitor:
        model(torch.randn(5, 3))
        monitor.step()
    tags = read(tmp_path).Tags()["scalars"]
    assert "activations/act1/saturated" in tags and "activations/act1/dead" not in tags
    assert "activations/act2/dead" in tags and "activations/act2/saturated" not in tags


def test_logged_steps_are_multiples_of_every_whatever_the_first_step_number(tmp_path):
    model = make_mlp()
    x = torch.randn(4, 6)
    with ActivationStats(model, tmp_path, every=4, gradients=False) as monitor:
        for step in range(1, 11):  # torchmanual.train.fit counts from 1
            model(x)
            monitor.on_step(step, 1.0, None)
        # numbers that jump (a resume) and then skip: multiples of 4 where the stride allows,
        # and never more than 4 calls without a log (100 was not predicted; 103 is the 4th)
        for step in range(100, 130, 3):
            model(x)
            monitor.on_step(step, 1.0, None)
    assert steps_of(read(tmp_path), "activations/fc1/mean") == [1, 4, 8, 103, 112, 124]


def test_manual_step_counts_and_options(tmp_path):
    model = make_mlp()
    with ActivationStats(model, tmp_path, every=2, histograms=False, gradients=False) as monitor:
        for _ in range(5):
            loss = model(torch.randn(4, 6)).square().mean()
            loss.backward()
            monitor.step(loss)
    acc = read(tmp_path)
    assert steps_of(acc, "activations/fc1/mean") == [0, 2, 4]
    assert steps_of(acc, "loss/train") == [0, 2, 4]
    assert acc.Tags()["histograms"] == []
    assert not [t for t in acc.Tags()["scalars"] if t.startswith(("gradients/", "updates/"))]


def test_on_epoch_metrics_hparams_and_layout_land_in_the_same_run(tmp_path):
    model = make_mlp()
    hparams = {"lr": 0.1, "hidden": [8, 8], "activation": "tanh", "batch_size": 16}
    with ActivationStats(model, tmp_path, every=5, hparams=hparams) as monitor:
        train(model, monitor, steps=10, epoch_every=5)
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []  # no hparams sub-run
    acc = read(tmp_path)
    # epoch metrics share the step axis: logged at the epoch's last step (4 and 9)
    for tag in ("loss/test", "accuracy/test", "loss/train_epoch", "epoch"):
        assert steps_of(acc, tag) == [4, 9]
    assert value(acc, "accuracy/test", 9) == pytest.approx(0.5)
    assert value(acc, "epoch", 9) == 2
    assert steps_of(acc, "lr") == [0, 4, 5, 9]  # logged steps + epoch ends

    plugins = plugin_event_accumulator.EventAccumulator(str(tmp_path), size_guidance=ALL)
    plugins.Reload()
    content = plugins.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["lr"].number_value == pytest.approx(0.1)
    assert start.session_start_info.hparams["hidden"].string_value == "[8, 8]"
    assert start.session_start_info.hparams["activation"].string_value == "tanh"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    metric_tags = {m.name.tag for m in experiment.experiment.metric_infos}
    assert metric_tags == {"loss/test", "accuracy/test", "loss/train_epoch"}

    (config,) = acc.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(config.tensor_proto.string_val[0])
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert charts["layer mean"] == [f"^activations/{n}/mean$" for n in LAYERS]
    assert charts["layer std"] == [f"^activations/{n}/std$" for n in LAYERS]
    assert charts["gradient norm"] == [f"^gradients/{p}/norm$".replace(".", r"\.") for p in PARAMS]


def test_regression_history_skips_accuracy(tmp_path):
    model = make_mlp()
    with ActivationStats(model, tmp_path, every=50) as monitor:
        train(model, monitor, steps=3, epoch_every=3, regression=True)
    tags = read(tmp_path).Tags()["scalars"]
    assert "loss/test" in tags and "accuracy/test" not in tags


# ---------------------------------------------------------------------------- never changes
def test_outputs_and_gradients_are_identical_with_and_without_the_monitor(tmp_path):
    watched, plain = make_mlp(seed=5), make_mlp(seed=5)
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(0))
    with ActivationStats(watched, tmp_path, every=1, hparams={"a": 1}) as monitor:
        train(watched, monitor, steps=4)
    train(plain, None, steps=4)
    for (name, a), b in zip(watched.named_parameters(), plain.parameters(), strict=True):
        assert torch.equal(a, b), name
        assert torch.equal(a.grad, b.grad), name

    # one more monitored forward/backward, compared bit for bit with an unmonitored one
    with ActivationStats(watched, tmp_path / "again", every=1) as monitor:
        out_w = watched(x)
        out_w.square().sum().backward()
        monitor.step()
        grads_w = [p.grad.clone() for p in watched.parameters()]
    out_p = plain(x)
    out_p.square().sum().backward()
    assert torch.equal(out_w, out_p)
    for a, b in zip(grads_w, [p.grad for p in plain.parameters()], strict=True):
        assert torch.equal(a, b)


class CountOps(TorchFunctionMode):
    """Counts every torch function called while active."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def ops_in_forward(model, x) -> int:
    with CountOps() as counter:
        model(x)
    return counter.calls


def test_forward_hook_does_no_work_on_steps_that_are_not_logged(tmp_path):
    model = make_mlp()
    x = torch.randn(2, 6)
    plain = ops_in_forward(model, x)
    with ActivationStats(model, tmp_path, every=3) as monitor:
        assert ops_in_forward(model, x) > plain + len(LAYERS)  # step 0 is logged
        monitor.step()
        for _ in range(2):  # steps 1 and 2 are not: not a single torch op more
            assert ops_in_forward(model, x) == plain
            monitor.step()
        assert ops_in_forward(model, x) > plain + len(LAYERS)  # step 3 is logged again


# ---------------------------------------------------------------------------- lifetime
def test_hooks_are_removed_after_the_with_block(tmp_path):
    model = make_mlp()
    before = hook_count(model)
    with ActivationStats(model, tmp_path, every=1) as monitor:
        assert hook_count(model) == before + len(LAYERS)
        train(model, monitor, steps=2)
    assert hook_count(model) == before
    assert monitor.closed
    with pytest.raises(RuntimeError, match="closed"):
        monitor.on_step(2, torch.tensor(1.0), None)
    monitor.close()  # idempotent


def test_hooks_are_removed_when_the_body_raises(tmp_path):
    model = make_mlp()
    before = hook_count(model)
    with pytest.raises(ZeroDivisionError), ActivationStats(model, tmp_path, every=1) as monitor:
        train(model, monitor, steps=1)
        model(torch.randn(2, 6))
        _ = 1 / 0
    assert hook_count(model) == before
    assert monitor.closed
    assert monitor.writer.all_writers is None  # the writer it created was closed
    # what was logged before the exception is on disk
    assert steps_of(read(tmp_path), "activations/fc1/mean") == [0]


def test_a_given_writer_is_used_and_left_open(tmp_path):
    model = make_mlp()
    writer = SummaryWriter(tmp_path)
    with ActivationStats(model, writer, every=1) as monitor:
        train(model, monitor, steps=1)
    writer.add_scalar("after/close", 1.0, 0)  # still usable: the monitor did not close it
    writer.close()
    tags = read(tmp_path).Tags()["scalars"]
    assert "after/close" in tags and "activations/fc1/mean" in tags


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("every", [0, -3])
def test_every_below_one_is_a_value_error(tmp_path, every):
    model = make_mlp()
    with pytest.raises(ValueError, match="every"):
        ActivationStats(model, tmp_path, every=every)
    assert hook_count(model) == 0


def test_unwritable_logdir_names_the_path(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    bad = blocker / "logs"
    model = make_mlp()
    with pytest.raises(OSError, match="a_file"):
        ActivationStats(model, bad)
    assert hook_count(model) == 0


def test_bad_writer_type_is_a_type_error():
    with pytest.raises(TypeError, match="writer_or_logdir"):
        ActivationStats(make_mlp(), 42)


# ---------------------------------------------------------------------------- real server
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read().decode())


def test_tensorboard_server_serves_the_run(tmp_path):
    logdir = tmp_path / "logs"
    model = make_mlp()
    with ActivationStats(model, logdir / "mlp", every=2, hparams={"lr": 0.1}) as monitor:
        train(model, monitor, steps=4, epoch_every=4)

    port = _free_port()
    log = (tmp_path / "tensorboard.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
         "--host", "127.0.0.1", "--port", str(port), "--load_fast=false"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/data/plugin"
    scalars = histograms = layout = plugins = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.poll() is not None:
                break
            try:
                scalars = _get_json(f"{base}/scalars/tags").get("mlp", {})
                histograms = _get_json(f"{base}/histograms/tags").get("mlp", {})
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass  # not listening yet
            if "activations/fc3/std" in scalars and "gradients/fc3.bias" in histograms:
                layout = _get_json(f"{base}/custom_scalars/layout")
                plugins = _get_json(f"http://127.0.0.1:{port}/data/plugins_listing")
                break
            time.sleep(0.25)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    output = Path(log.name).read_text()[-2000:]
    assert scalars, f"tensorboard served no scalars for run 'mlp':\n{output}"
    for layer in LAYERS:
        assert f"activations/{layer}/mean" in scalars
        assert f"activations/{layer}/std" in scalars
        assert f"activations/{layer}" in histograms
    for param in PARAMS:
        assert f"gradients/{param}" in histograms
        assert f"gradients/{param}/norm" in scalars
    charts = {c["title"] for category in layout["category"] for c in category["chart"]}
    assert {"layer mean", "layer std", "gradient norm"} <= charts
    assert plugins["hparams"]["enabled"] and plugins["custom_scalars"]["enabled"]


# ---------------------------------------------------------------------------- the real thing
def test_with_torchmanual_mlp_and_fit(tmp_path):
    """torchmanual.nn.MLP's classes are recognised by name, and fit drives the protocol."""
    tnn = pytest.importorskip("torchmanual.nn")
    training = pytest.importorskip("torchmanual.train")
    if not (hasattr(tnn, "MLP") and hasattr(training, "fit")):
        pytest.skip("torchmanual.nn.MLP or torchmanual.train.fit not written yet")
    torch.manual_seed(0)
    model = tnn.MLP([2, 8, 8, 3], activation="relu")
    x = torch.randn(64, 2)
    data = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with ActivationStats(model, tmp_path, every=3, hparams={"lr": 0.1}) as monitor:
        training.fit(
            model, nn.CrossEntropyLoss(), opt, data, data, epochs=2, batch_size=16,
            monitor=monitor, progress=False, seed=0,
        )  # fmt: skip
    acc = read(tmp_path)
    tags = set(acc.Tags()["scalars"])
    assert monitor.layer_names == LAYERS
    assert {"activations/act1/dead", "activations/act2/dead"} <= tags
    assert not any(t.endswith("/saturated") for t in tags)
    assert steps_of(acc, "activations/fc1/mean") == [1, 3, 6]  # fit counts steps from 1
    assert steps_of(acc, "accuracy/test") == [4, 8]  # 4 steps per epoch
    assert {f"gradients/{p}" for p in PARAMS} <= set(acc.Tags()["histograms"])


@pytest.mark.cuda
def test_cuda_statistics_stay_on_the_device_until_written(tmp_path):
    model = make_mlp().cuda()
    x = torch.randn(32, 6, device="cuda")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with ActivationStats(model, tmp_path, every=1) as monitor:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")  # any host sync in the hooks raises
        try:
            out = model(x)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        loss = out.square().mean()
        loss.backward()
        opt.step()
        monitor.step(loss, opt)  # the one read-back
    acc = read(tmp_path)
    assert value(acc, "activations/fc3/mean") == pytest.approx(out.mean().item(), abs=1e-5)
    assert len(acc.Histograms("gradients/fc1.weight")) == 1
