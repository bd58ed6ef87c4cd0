"""Distributed data parallel: 2 CPU processes (gloo on 127.0.0.1) train as one process does.

Every scenario runs in one pair of spawned processes (``_worker``), started once for the
module with a hard deadline and always killed afterwards; the tests then compare what each
rank wrote with single-process runs of the same scenario.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import Dataset

from torchmanual.nn import MLP, CrossEntropyLoss
from torchmanual.optim import SGD
from torchmanual.train import CheckpointError, NonFiniteLossError, fit, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
WORLD_SIZE = 2
DEADLINE_S = 240  # a loaded 2-core machine; about 5 s on an idle one
CHILD_ENV = {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the scenarios (run by each rank, and by one process for comparison) ----------------------


def make_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, dtype=torch.float64, generator=g), torch.randint(3, (n,), generator=g)


class MapDataset(Dataset):
    """A map-style dataset (not a TensorDataset), so fit goes through a DataLoader."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class Recorder:
    def __init__(self):
        self.steps, self.epochs = [], []

    def on_step(self, step, loss, optimizer):
        self.steps.append((step, loss))

    def on_epoch(self, epoch, history):
        self.epochs.append(epoch)


def setup(lr: float = 0.1):
    torch.manual_seed(0)
    model = MLP([4, 16, 16, 3], activation="tanh", dtype=torch.float64)
    optimizer = SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-3)
    return model, optimizer


# name -> (n samples, batch size, epochs, map-style dataset?)
SCENARIOS = {
    # 40 samples in batches of 8, 2 epochs: 10 steps, 4 samples per rank per step.
    "even": (40, 8, 2, False),
    # Batches of 5 (3 + 2 per rank) and a last batch of 1 (rank 1's share is empty).
    "uneven": (41, 5, 1, False),
    "map-style": (41, 5, 1, True),
}


def run_scenario(name: str, checkpoint: Path | None = None, monitor=None, **kwargs):
    n, batch_size, epochs, map_style = SCENARIOS[name]
    x, y = make_data(n)
    train = MapDataset(x, y) if map_style else (x, y)
    test = make_data(20, seed=1)
    model, optimizer = setup()
    history = fit(
        model,
        CrossEntropyLoss(),
        optimizer,
        train,
        test,
        epochs=kwargs.pop("epochs", epochs),
        batch_size=batch_size,
        checkpoint=checkpoint,
        monitor=monitor,
        progress=False,
        **kwargs,
    )
    return model, history


def run_poisoned() -> dict | None:
    x, y = make_data(40)
    x[13, 2] = math.nan
    model, optimizer = setup()
    try:
        fit(model, CrossEntropyLoss(), optimizer, (x, y), epochs=2, batch_size=8, progress=False)
    except NonFiniteLossError as error:
        return {"epoch": error.epoch, "step": error.step, "loss": str(error.loss)}
    return None


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(CHILD_ENV)
    torch.set_num_threads(1)
    out_dir = Path(out)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=timedelta(seconds=DEADLINE_S),
    )
    results = {}
    try:
        for name in SCENARIOS:
            recorder = Recorder()
            checkpoint = out_dir / f"{name}.pt"
            model, history = run_scenario(name, checkpoint, recorder)
            results[name] = {
                "history": history.to_dict(),
                "monitor_steps": len(recorder.steps),
                "monitor_epochs": len(recorder.epochs),
            }
            torch.save(model.state_dict(), out_dir / f"{name}-rank{rank}.weights")

        # Resume: only rank 0 reads the checkpoint (rank 1's path does not even exist).
        first = out_dir / "resume.pt"
        path = first if rank == 0 else out_dir / "nowhere" / "resume.pt"
        run_scenario("even", path, epochs=1)
        model, history = run_scenario("even", path, resume=True)
        torch.save(model.state_dict(), out_dir / f"resumed-rank{rank}.weights")
        results["resumed"] = {"history": history.to_dict()}

        # A corrupt checkpoint: every rank gets rank 0's CheckpointError; nobody hangs.
        corrupt = out_dir / "corrupt.pt"
        if rank == 0:
            corrupt.write_bytes(b"\x00garbage")
        dist.barrier()
        try:
            run_scenario("even", corrupt, resume=True)
            results["corrupt"] = None
        except CheckpointError as error:
            results["corrupt"] = str(error)

        # A nan in one sample reaches one rank's shard only, yet every rank stops at the
        # same step with NonFiniteLossError (the global loss decides; nobody hangs).
        results["diverged"] = run_poisoned()
    finally:
        (out_dir / f"results-rank{rank}.json").write_text(json.dumps(results))
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Spawn the 2 ranks once; kill them if they outlive the deadline."""
    out = tmp_path_factory.mktemp("ddp")
    context = mp.start_processes(
        _worker, args=(free_port(), str(out)), nprocs=WORLD_SIZE, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"the DDP workers did not finish within {DEADLINE_S} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
            process.join()
    results = [json.loads((out / f"results-rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    return out, results


def _max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def _weights(out: Path, name: str, rank: int) -> dict:
    return torch.load(out / f"{name}-rank{rank}.weights", weights_only=True)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_two_ranks_with_half_batches_end_where_one_process_does(ranks, name):
    out, results = ranks
    single, history = run_scenario(name)
    expected = single.state_dict()
    for rank in range(WORLD_SIZE):
        difference = _max_difference(_weights(out, name, rank), expected)
        assert difference < 1e-6, f"rank {rank}: max weight difference {difference:.3g}"
        got = results[rank][name]["history"]
        assert got["step"] == history.step
        assert got["train_loss"] == pytest.approx(history.train_loss, rel=1e-9)
        assert got["test_loss"] == pytest.approx(history.test_loss, rel=1e-9)
    # The ranks hold the very same weights (DDP all-reduced gradients, one optimizer rule).
    assert _max_difference(_weights(out, name, 0), _weights(out, name, 1)) == 0.0


def test_ten_steps_match_to_float64_precision(ranks):
    out, _ = ranks
    single, history = run_scenario("even")
    assert history.step == 10
    difference = _max_difference(_weights(out, "even", 1), single.state_dict())
    print(f"DDP vs one process after 10 steps: max weight difference {difference:.3g}")
    assert difference < 1e-12


def test_only_rank_0_monitors_and_checkpoints(ranks):
    out, results = ranks
    assert results[0]["even"]["monitor_steps"] == 10
    assert results[0]["even"]["monitor_epochs"] == 2
    assert results[1]["even"]["monitor_steps"] == results[1]["even"]["monitor_epochs"] == 0
    state = load_checkpoint(out / "even.pt")
    assert state["step"] == 10
    # The checkpoint holds the bare model's keys, so one process can resume it.
    assert _max_difference(state["model"], _weights(out, "even", 0)) == 0.0
    assert not list(out.glob(".*.tmp"))


def test_resume_reads_the_checkpoint_on_rank_0_only(ranks):
    out, results = ranks
    assert not (out / "nowhere").exists()
    single, history = run_scenario("even")
    for rank in range(WORLD_SIZE):
        assert _max_difference(_weights(out, "resumed", rank), single.state_dict()) < 1e-6
        assert results[rank]["resumed"]["history"]["step"] == history.step


def test_a_distributed_checkpoint_resumes_in_one_process(ranks, tmp_path):
    out, _ = ranks
    path = tmp_path / "run.pt"
    path.write_bytes((out / "even.pt").read_bytes())
    model, history = run_scenario("even", path, resume=True, epochs=3)
    single, expected = run_scenario("even", epochs=3)
    assert history.step == expected.step == 15
    assert _max_difference(model.state_dict(), single.state_dict()) < 1e-6


def test_every_rank_gets_rank_0s_checkpoint_error(ranks):
    _, results = ranks
    for rank in range(WORLD_SIZE):
        message = results[rank]["corrupt"]
        assert message and "corrupt.pt" in message and "corrupt or truncated file" in message


def test_every_rank_stops_at_the_same_non_finite_step(ranks):
    _, results = ranks
    expected = run_poisoned()
    assert expected is not None and expected["loss"] == "nan"
    for rank in range(WORLD_SIZE):
        assert results[rank]["diverged"] == expected


def test_distributed_true_without_a_process_group_is_refused():
    model, optimizer = setup()
    with pytest.raises(ValueError, match="init_process_group"):
        fit(
            model,
            CrossEntropyLoss(),
            optimizer,
            make_data(8),
            epochs=1,
            batch_size=4,
            progress=False,
            distributed=True,
        )


def test_torchrun_environment_is_read():
    from torchmanual.commands.train import World, torchrun_world

    assert torchrun_world({}) == World()
    assert torchrun_world({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == World(3, 4, 1)
    with pytest.raises(ValueError, match="RANK='x'"):
        torchrun_world({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="RANK=2, WORLD_SIZE=2"):
        torchrun_world({"RANK": "2", "WORLD_SIZE": "2"})


def _cli(*args: str, launcher: list[str] | None = None) -> dict:
    env = {**os.environ, **CHILD_ENV, "PYTHONPATH": str(REPO)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", *(launcher or []), "torchmanual", "train", *args]
    done = subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=DEADLINE_S
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, f"one JSON object from rank 0 only, got: {done.stdout}"
    return json.loads(lines[0])


@pytest.mark.slow
def test_torchrun_two_processes_report_world_size_2(tmp_path):
    torchrun = [
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(free_port()),
        "-m",
    ]
    common = ["--dataset", "xor", "--epochs", "30", "--json", "--quiet", "--logdir"]
    result = _cli(*common, str(tmp_path / "runs"), launcher=torchrun)
    assert result["world_size"] == 2 and result["epochs"] == 30
    # Only rank 0 wrote TensorBoard logs: one run folder, one event file.
    assert len(list(Path(result["logdir"]).glob("events.out.tfevents.*"))) == 1
    single = _cli(*common, "none")
    assert single["world_size"] == 1
    # xor's batch of 4 is 2 + 2: the same run, up to float32 rounding.
    assert math.isclose(result["train_loss"], single["train_loss"], rel_tol=1e-5)
    assert math.isclose(result["test_loss"], single["test_loss"], rel_tol=1e-5)
