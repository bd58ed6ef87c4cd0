"""The CLI: every subcommand exists, has --help, and ``gradcheck`` reports as specified."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from torchmanual.autograd import REGISTRY
from torchmanual.autograd.registry import Entry
from torchmanual.cli import COMMANDS, main
from torchmanual.gradcheck import CHECKS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_module_exists_and_has_help(command, capsys):
    module = importlib.import_module(COMMANDS[command])
    assert module.HELP and callable(module.add_arguments) and callable(module.run)
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--json" in capsys.readouterr().out


def test_python_dash_m_runs_the_cli():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "torchmanual", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0
    for command in COMMANDS:
        assert command in done.stdout


def test_gradcheck_json_schema(capsys):
    assert main(["gradcheck", "Mul", "Sigmoid", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["name"] for f in report["functions"]] == ["Mul", "Sigmoid"]
    for function in report["functions"]:
        assert set(function) == {"name", "checks", "max_rel_error"}
        assert function["checks"] == {check: True for check in CHECKS}
        assert 0 <= function["max_rel_error"] < 1e-6


def test_gradcheck_exits_1_when_a_backward_is_wrong(capsys, monkeypatch):
    from test_gradcheck import WrongSigmoid

    right = REGISTRY["Sigmoid"]
    wrong = Entry("WrongSigmoid", WrongSigmoid, right.reference, right.samples)
    monkeypatch.setitem(REGISTRY, "WrongSigmoid", wrong)
    assert main(["gradcheck", "WrongSigmoid", "--checks", "gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "✗" in out and "0 passed, 1 failed" in out and "WrongSigmoid gradcheck" in out


def test_gradcheck_unknown_function_exits_2(capsys):
    assert main(["gradcheck", "Nope"]) == 2
    assert "unknown Function 'Nope'; choose from Add, Mul" in capsys.readouterr().err
