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
