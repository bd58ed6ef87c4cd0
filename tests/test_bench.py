"""``torchmanual bench``: what it reports, not how fast anything is (no timing assertions).

The runs here are tiny (one network, two rounds of a few milliseconds) so the tests take
seconds; they check the JSON's shape, that every ratio is a positive finite number, and
that torchmanual never keeps more for backward than torch.nn does.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
import torch

import torchmanual.functional as F
import torchmanual.nn as tnn
from torchmanual import bench
from torchmanual.cli import main
from torchmanual.optim import SGD

QUICK = ["--rounds", "2", "--round-time", "0.005", "--warmup", "0", "--device", "cpu"]
ROW_KEYS = {
    "size",
    "variant",
    "device",
    "layers",
    "batch",
    "ours_ms",
    "torch_ms",
    "ratio",
    "ratio_min",
    "ratio_max",
    "rounds",
    "steps_per_round",
    "gflop_per_step",
    "ours_matmul_fraction",
    "torch_matmul_fraction",
    "ours_saved_bytes",
    "torch_saved_bytes",
    "ours_saved_tensors",
    "torch_saved_tensors",
    "target",
    "meets_target",
    "notes",
}


def run_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(["bench", *args])
    return status, out.getvalue()


def positive_finite(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def report() -> dict:
    status, out = run_cli(
        "--json", "--sizes", "tiny", "--variants", "eager", "compile",
        "--compile-backend", "aot_eager", *QUICK,
    )  # fmt: skip
    assert status == 0
    assert out.count("\n") == 1, "--json prints exactly one line: one JSON object"
    return json.loads(out)


def test_json_has_every_section(report):
    assert set(report) == {"machine", "rows", "matmul", "two_layer", "settings"}
    assert {"torch", "torch_threads", "cpu_count", "load_average"} <= set(report["machine"])
    assert report["settings"]["sizes"] == ["tiny"]
    assert [(r["size"], r["variant"], r["device"]) for r in report["rows"]] == [
        ("tiny", "eager", "cpu"),
        ("tiny", "compile", "cpu"),
    ]


def test_rows_hold_positive_finite_ratios_and_times(report):
    for row in report["rows"]:
        assert set(row) == ROW_KEYS
        assert row["layers"] == [2, 8, 2] and row["batch"] == 4
        for key in ("ours_ms", "torch_ms", "ratio", "ratio_min", "ratio_max", "gflop_per_step"):
            assert positive_finite(row[key]), (key, row[key])
        assert row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
        assert positive_finite(row["ours_matmul_fraction"])
        assert positive_finite(row["torch_matmul_fraction"])
        assert row["rounds"] == 2 and row["steps_per_round"] >= 1
    eager, compiled = report["rows"]
    assert eager["target"] == bench.TARGETS["tiny"] and isinstance(eager["meets_target"], bool)
    assert compiled["target"] is None and "fullgraph=True" in compiled["notes"][0]


def test_saved_bytes_are_counted_and_never_exceed_torch_nn(report):
    for row in report["rows"]:
        assert row["ours_saved_bytes"] > 0 and row["torch_saved_bytes"] > 0
        assert row["ours_saved_bytes"] <= row["torch_saved_bytes"], row


def test_matmul_and_two_layer_sections(report):
    mm = report["matmul"]["cpu"]
    assert mm["shape"] == [1024, 1024, 1024]
    for key in ("gflops", "gflops_before", "gflops_after"):
        assert positive_finite(mm[key])
    two = report["two_layer"]
    assert two["network"] == {"N": 64, "D_in": 1000, "H": 100, "D_out": 10, "lr": 1e-4}
    assert two["dtype"] == "float64"
    for key in ("torchmanual_ms", "numpy_ms", "ratio", "torch_ms", "torch_ratio"):
        assert positive_finite(two[key])
    assert isinstance(two["meets_target"], bool)


def test_two_layer_steps_take_the_same_step():
    """numpy, torchmanual and plain torch run the slides' loop on the same arrays and take
    the same steps, so the bench compares the same arithmetic."""
    numpy_step, torchmanual_step = bench.two_layer_pair(seed=3)
    torch_step = bench.two_layer_torch_step(seed=3)
    start = [w.copy() for w in numpy_step.weights()]
    for _ in range(3):
        for step in (numpy_step, torchmanual_step, torch_step):
            step()
    expected = numpy_step.weights()
    assert all(not np.array_equal(w, w0) for w, w0 in zip(expected, start, strict=True))
    for step in (torchmanual_step, torch_step):
        for w, e in zip(step.weights(), expected, strict=True):
            np.testing.assert_allclose(w, e, rtol=1e-10, atol=1e-12)


def test_table_on_stdout():
    status, out = run_cli("--sizes", "tiny", "--variants", "eager", "--no-two-layer", *QUICK)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("| size | network, batch | variant |")
    assert any(line.startswith("| tiny | 2-8-2, 4 | eager | cpu |") for line in lines)
    assert any(line.startswith("matmul throughput (cpu") for line in lines)
    assert any(line.startswith("machine:") for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rounds", "0"], "--rounds"),
        (["--round-time", "0"], "--round-time"),
        (["--threads", "0"], "--threads"),
    ],
)
def test_bad_arguments_exit_2(args, message, capsys):
    assert main(["bench", *args]) == 2
    assert message in capsys.readouterr().err


def test_quick_skips_large_and_sizes_choose():
    parser_args = ["--json", "--quick", "--sizes", "tiny", "large", "--variants", "eager"]
    status, out = run_cli(*parser_args, "--no-two-layer", *QUICK)
    assert status == 0
    assert [r["size"] for r in json.loads(out)["rows"]] == ["tiny"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_a_clear_error(capsys):
    assert main(["bench", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


@pytest.mark.parametrize("size", list(bench.SIZES))
def test_saved_for_backward_at_every_size(size):
    """torchmanual keeps no more for backward than torch.nn, at every benchmarked size."""
    layers, batch = bench.SIZES[size]
    ours, theirs = bench.make_models(layers, torch.device("cpu"), torch.float32)
    x, y = bench.make_data(layers, batch, torch.device("cpu"), torch.float32)
    ours_bytes, _ = bench.saved_for_backward(lambda: bench.ours_loss(ours)(x, y))
    theirs_bytes, _ = bench.saved_for_backward(lambda: bench.torch_loss(theirs)(x, y))
    assert 0 < ours_bytes <= theirs_bytes


def test_both_sides_do_the_same_math():
    """One step on each side from the same weights gives the same weights (float64)."""
    layers, batch = bench.SIZES["small"]
    cpu = torch.device("cpu")
    ours, theirs = bench.make_models(layers, cpu, torch.float64)
    x, y = bench.make_data(layers, batch, cpu, torch.float64)
    bench.training_step(bench.ours_loss(ours), SGD(ours.parameters(), lr=0.1), x, y)()
    step = bench.training_step(
        bench.torch_loss(theirs), torch.optim.SGD(theirs.parameters(), lr=0.1), x, y
    )
    step()
    for (name, p), q in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14, msg=name)


@pytest.mark.parametrize(
    "activation", ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "silu", "softplus"]
)
def test_fused_mlp_is_bit_for_bit_the_per_gate_mlp(activation):
    """The fused network the bench times computes exactly what the gates one by one do."""
    torch.manual_seed(0)
    fused = tnn.MLP([5, 16, 8, 3], activation=activation, dtype=torch.float64)
    per_gate = tnn.MLP([5, 16, 8, 3], activation=activation, dtype=torch.float64)
    per_gate.load_state_dict(fused.state_dict())
    per_gate.fuse = False
    x = torch.randn(7, 5, dtype=torch.float64)
    y = torch.randint(3, (7,))
    results = []
    for model in (fused, per_gate):
        loss = F.cross_entropy(model(x), y)
        results.append((loss, torch.autograd.grad(loss, list(model.parameters()))))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.equal(loss_a, loss_b)
    for a, b in zip(grads_a, grads_b, strict=True):
        assert torch.equal(a, b)


def test_interleaving_alternates_the_order():
    calls: list[str] = []
    timing = bench.interleaved(
        lambda: calls.append("a"), lambda: calls.append("b"), 4, 1, torch.device("cpu")
    )
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert len(timing.ratios) == 4 and all(positive_finite(r) for r in timing.ratios)


def test_gflop_per_step_counts_three_products_per_layer_but_the_first():
    # layer 1: 2 products × 2·4·2·8 = 256 (no dx for the data); layer 2: 3 × 2·4·8·2 = 384
    assert bench.gflop_per_step((2, 8, 2), 4) == pytest.approx(640e-9)


# --- CUDA (skipped without a GPU) -------------------------------------------------------


@pytest.mark.cuda
def test_cuda_graph_replay_matches_eager_steps():
    """A whole training step captured in a CUDA graph replays with identical results."""
    cuda = torch.device("cuda")
    layers, batch = bench.SIZES["tiny"]
    eager, _ = bench.make_models(layers, cuda, torch.float32)
    graphed, _ = bench.make_models(layers, cuda, torch.float32)
    x, y = bench.make_data(layers, batch, cuda, torch.float32)
    eager_step = bench.training_step(
        lambda x, y: F.cross_entropy(eager(x), y), SGD(eager.parameters(), lr=0.1), x, y
    )
    graphed_step = bench.training_step(
        lambda x, y: F.cross_entropy(graphed(x), y), SGD(graphed.parameters(), lr=0.1), x, y
    )
    replay = bench.cuda_graphed(graphed_step, cuda)  # 3 warm-up steps + 1 captured step
    for _ in range(4):
        eager_step()
    for _ in range(5):
        eager_step()
        replay()
    torch.cuda.synchronize()
    for (name, p), q in zip(eager.state_dict().items(), graphed.state_dict().values(), strict=True):
        torch.testing.assert_close(q, p, rtol=0, atol=0, msg=name)


@pytest.mark.cuda
def test_bench_cuda_rows_include_graph_replay():
    status, out = run_cli(
        "--json", "--sizes", "tiny", "--variants", "eager", "--no-two-layer",
        "--rounds", "2", "--round-time", "0.005", "--warmup", "0", "--device", "cuda",
    )  # fmt: skip
    assert status == 0
    rows = json.loads(out)["rows"]
    assert {(r["variant"], r["device"]) for r in rows} == {("eager", "cuda"), ("graph", "cuda")}
    assert all(positive_finite(r["ratio"]) for r in rows)
