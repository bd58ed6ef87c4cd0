"""SIGKILL at random moments: a loadable checkpoint is always left, and --resume finishes
the run exactly where an uninterrupted one ends.

Each trial starts ``torchmanual train --checkpoint``, kills it with SIGKILL at a random
moment once a checkpoint exists, checks that the checkpoint loads, resumes (and kills the
resumed run too), then resumes to the end and compares the final JSON with an uninterrupted
run's, number for number. xor writes a checkpoint every ~10 ms (600 tiny epochs), so many
kills land in the middle of a write; spiral carries batch-norm and scheduler state.
Trials run in parallel threads to bound the wall time; the seed of the kill moments is in
every failure message.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from torchmanual.cli import main
from torchmanual.train import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

REPO = Path(__file__).resolve().parents[1]
COMMON = ["--json", "--quiet", "--logdir", "none"]
CONFIGS = {
    "xor": ["--dataset", "xor", "--epochs", "400"],
    "spiral": ["--dataset", "spiral", "--hidden", "16", "--batch-norm", "--schedule", "cosine",
               "--epochs", "30"],
}  # fmt: skip
TRIALS = [("xor", 0), ("xor", 1), ("spiral", 2)]
KILLS_PER_TRIAL = 2
MAX_DELAY_S = 2.5  # after the first checkpoint appears; a run takes ~2-5 s after start-up
TIMEOUT_S = 300
SEED = int(os.environ.get("TORCHMANUAL_KILL_SEED", time.time_ns() % 100_000))


def _command(config: str, checkpoint: Path | None, resume: bool = False) -> list[str]:
    command = [sys.executable, "-m", "torchmanual", "train", *CONFIGS[config], *COMMON]
    if checkpoint is not None:
        command += ["--checkpoint", str(checkpoint)]
    return command + (["--resume"] if resume else [])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _result(stdout: str) -> dict:
    result = json.loads(stdout)
    return {k: v for k, v in result.items() if k not in ("seconds", "logdir")}


def _run_to_end(command: list[str], cwd: Path) -> dict:
    done = subprocess.run(
        command, env=_env(), cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return _result(done.stdout)


def _run_and_kill(command: list[str], cwd: Path, checkpoint: Path, delay: float) -> bool:
    """Start, wait for a checkpoint, SIGKILL after ``delay`` s; True if it was still running."""
    before = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
    process = subprocess.Popen(
        command, env=_env(), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        # A new checkpoint (or the run's end) first, so there is something to resume.
        while process.poll() is None and time.monotonic() < deadline:
            if checkpoint.exists() and checkpoint.stat().st_mtime_ns != before:
                break
            time.sleep(0.01)
        time.sleep(delay)
        alive = process.poll() is None
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        return alive
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _trial(config: str, index: int, workdir: Path) -> dict:
    rng = random.Random(SEED * 100 + index)
    where = workdir / f"trial-{index}"
    where.mkdir()
    checkpoint = where / "run.pt"
    killed_at = []
    for kill in range(KILLS_PER_TRIAL):
        delay = rng.uniform(0.0, MAX_DELAY_S)
        command = _command(config, checkpoint, resume=kill > 0)
        alive = _run_and_kill(command, where, checkpoint, delay)
        state = load_checkpoint(checkpoint)  # raises if the kill left it broken
        assert 1 <= state["epoch"] == len(state["history"]["train_loss"])
        killed_at.append({"delay": round(delay, 3), "alive": alive, "epoch": state["epoch"]})
    temp_files = sum(p.name.endswith(".tmp") for p in where.iterdir())
    final = _run_to_end(_command(config, checkpoint, resume=True), where)
    # A kill mid-write leaves a temp file; the next successful save removes it.
    assert [p.name for p in where.iterdir()] == ["run.pt"]
    return {"config": config, "kills": killed_at, "temp files": temp_files, "final": final}


def _reference(config: str, capsys) -> dict:
    """The uninterrupted run, in this process (one thread, as the subprocesses)."""
    assert main(["train", *CONFIGS[config], *COMMON]) == 0
    return _result(capsys.readouterr().out)


@pytest.mark.slow
def test_sigkill_leaves_a_loadable_checkpoint_and_resume_matches(tmp_path, capsys):
    with ThreadPoolExecutor(max_workers=len(TRIALS)) as pool:
        trials = [pool.submit(_trial, config, index, tmp_path) for config, index in TRIALS]
        references = {config: _reference(config, capsys) for config in CONFIGS}
        reports = [trial.result() for trial in trials]
    with capsys.disabled():
        print(f"\nkill seed {SEED}")
        for report in reports:
            print({k: v for k, v in report.items() if k != "final"})
    for report in reports:
        where = f"seed {SEED}, kills {report['kills']}"
        assert report["final"] == references[report["config"]], where
    mid_run = sum(kill["alive"] for report in reports for kill in report["kills"])
    # The moments are random, but most kills must land while a run is still going.
    assert mid_run >= len(TRIALS), f"only {mid_run} kills landed mid-run (seed {SEED})"


def test_a_save_removes_temp_files_of_dead_writers_on_this_host_only(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname().replace("/", "_")
    stale = tmp_path / f".run.pt.{host}.{dead.pid}.0badc0de.tmp"
    live = tmp_path / f".run.pt.{host}.{os.getppid()}.0badc0de.tmp"
    elsewhere = tmp_path / f".run.pt.another-host.{dead.pid}.0badc0de.tmp"
    other_file = tmp_path / f".other.pt.{host}.{dead.pid}.0badc0de.tmp"
    for path in (stale, live, elsewhere, other_file):
        path.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path / "run.pt", {"epoch": 0})
    assert not stale.exists()
    assert live.exists() and elsewhere.exists() and other_file.exists()
