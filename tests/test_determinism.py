"""Same seed, same result: ``torchmanual train`` is bit-reproducible on CPU.

Each run is a fresh process (nothing shared but the command line); the runs go in parallel
to keep the wall time down. What holds where is documented in the README ("Determinism").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from torchmanual.cli import main
from torchmanual.train import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
# Batch norm, a cosine schedule, momentum, weight decay and shuffling: every source of state.
ARGS = [
    "train",
    "--dataset",
    "spiral",
    "--hidden",
    "16",
    "16",
    "--batch-norm",
    "--schedule",
    "cosine",
    "--weight-decay",
    "1e-3",
    "--epochs",
    "3",
    "--json",
    "--quiet",
]


def _start(tmp_path: Path, name: str, *extra: str) -> tuple[subprocess.Popen, Path]:
    checkpoint = tmp_path / f"{name}.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torchmanual", *ARGS, "--checkpoint", str(checkpoint)]
    process = subprocess.Popen(
        [*command, *extra],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, checkpoint


def _finish(process: subprocess.Popen, checkpoint: Path) -> tuple[dict, dict]:
    try:
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 0, err[-2000:]
    result = json.loads(out)
    result.pop("seconds")
    result.pop("logdir")
    return result, load_checkpoint(checkpoint)


def _assert_identical(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        # Bit for bit: the raw bytes (nan == nan, and -0.0 != 0.0).
        raw_a, raw_b = a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)
        assert torch.equal(raw_a, raw_b), f"{where} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.slow
def test_two_runs_with_the_same_seed_are_bit_identical(tmp_path):
    runs = {
        "first": _start(tmp_path, "first", "--seed", "7", "--logdir", "none"),
        "second": _start(tmp_path, "second", "--seed", "7", "--logdir", "none"),
        # The monitor only observes, and --deterministic changes nothing on CPU.
        "logged": _start(
            tmp_path, "logged", "--seed", "7", "--deterministic", "--logdir", str(tmp_path)
        ),
        "other seed": _start(tmp_path, "other", "--seed", "8", "--logdir", "none"),
    }
    results = {name: _finish(*run) for name, run in runs.items()}
    first, first_state = results["first"]
    for name in ("second", "logged"):
        result, state = results[name]
        assert result == first, name
        for state_ in (state, first_state):
            state_["history"].pop("seconds", None)  # wall time, the one thing that may differ
        for key in ("model", "optimizer", "scheduler", "rng", "history", "epoch", "step"):
            _assert_identical(state[key], first_state[key], f"{name}: {key}")
    assert results["other seed"][0]["train_loss"] != first["train_loss"]


def test_same_seed_in_one_process_gives_identical_losses(capsys):
    """main() twice in this process: no state leaks from one run into the next."""
    outputs = []
    for _ in range(2):
        assert main([*ARGS, "--epochs", "2", "--logdir", "none", "--seed", "3"]) == 0
        result = json.loads(capsys.readouterr().out)
        result.pop("seconds")
        outputs.append(result)
    assert outputs[0] == outputs[1]


def test_deterministic_flag_leaves_torchs_global_mode_as_it_was(capsys):
    assert not torch.are_deterministic_algorithms_enabled()
    assert main([*ARGS, "--epochs", "1", "--logdir", "none", "--deterministic"]) == 0
    capsys.readouterr()
    assert not torch.are_deterministic_algorithms_enabled()
