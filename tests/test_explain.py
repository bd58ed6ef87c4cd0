"""``torchmanual explain``: the slides' worked examples replayed through the tape."""

import json
import re

import pytest
import torch

from torchmanual.autograd import function
from torchmanual.cli import main
from torchmanual.commands.explain import EXAMPLES


def run(capsys, *argv: str) -> str:
    assert main(["explain", *argv]) == 0
    return capsys.readouterr().out


def row(text: str, gate: str) -> list[str]:
    """The first table row of ``gate``, split into cells."""
    return next(line for line in text.splitlines() if re.match(rf"#\d+\s+{gate}\s", line)).split()


def test_default_is_the_sigmoid_neuron_gate_by_gate(capsys):
    out = run(capsys)
    assert out.startswith("sigmoid neuron, gate by gate")
    assert row(out, "Reciprocal")[-4:] == ["0.73", "1.00", "-0.53", "-0.53"]
    assert row(out, "Shift")[-3:] == ["-0.53", "1.00", "-0.53"]
    assert row(out, "Exp")[-3:] == ["-0.53", "0.37", "-0.20"]
    assert row(out, "Scale")[-3:] == ["-0.20", "-1.00", "0.20"]
    grads = dict(re.findall(r"^  ∂f/∂(\w+)\s*= (\S+)", out, re.M))
    assert grads == {"w0": "-0.20", "x0": "0.39", "w1": "-0.39", "x1": "-0.59", "w2": "0.20"}
    assert function._observers == []


def test_add_mul(capsys):
    out = run(capsys, "--example", "add-mul")
    assert "x=-2, y=5, z=-4" in out
    # Mul: output f = -12, upstream 1, local z = -4, downstream ∂f/∂q = -4; then ∂f/∂z = q = 3.
    assert row(out, "Mul")[-4:] == ["-12.00", "1.00", "-4.00", "-4.00"]
    assert row(out, "Add")[-4:] == ["3.00", "-4.00", "1.00", "-4.00"]
    assert "q = 3.00" in out
    assert dict(re.findall(r"^  ∂f/∂(\w+)\s*= (\S+)", out, re.M)) == {
        "x": "-4.00",
        "y": "-4.00",
        "z": "3.00",
    }


def test_sigmoid_gate_gives_0_20_in_one_step(capsys):
    out = run(capsys, "--example", "sigmoid-gate")
    assert row(out, "Sigmoid")[-4:] == ["0.73", "1.00", "0.20", "0.20"]
    assert "Reciprocal" not in out
    assert "∂f/∂x1 = -0.59" in out


def test_two_layer_shows_matrix_shapes_and_one_step(capsys):
    out = run(capsys, "--example", "two-layer")
    assert "loss" in row(out, "MSE") and "h" in row(out, "Sigmoid")
    # The hidden layer's pre-activation, a (4, 3) matrix, summarised.
    assert row(out, "Sigmoid")[2:6] == ["#0", "=", "(4,", "3)"]
    w1_rows = re.search(r"∂loss/∂w1 = (.*?)\n  ∂loss/∂w2", out, re.S).group(1).splitlines()
    assert len(w1_rows) == 3  # W1 is (hidden=3, in=2), printed in full
    before, after = map(float, re.search(r"loss (\d+\.\d+) → (\d+\.\d+)", out).groups())
    assert after < before


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_json(capsys, example):
    data = json.loads(run(capsys, "--example", example, "--json"))
    assert data["example"] == example
    assert data["records"] and all(r["upstream"] is not None for r in data["records"])
    assert data["gradients"]
    for leaf in data["leaves"]:
        if leaf["name"] in data["gradients"]:
            assert leaf["grad"] == data["gradients"][leaf["name"]]


def test_json_has_the_slides_numbers(capsys):
    data = json.loads(run(capsys, "--json"))
    assert {k: round(v, 2) for k, v in data["gradients"].items()} == {
        "w0": -0.20,
        "x0": 0.39,
        "w1": -0.39,
        "x1": -0.59,
        "w2": 0.20,
    }
    reciprocal = data["records"][-1]
    assert reciprocal["gate"] == "Reciprocal" and round(reciprocal["downstream"][0], 2) == -0.53


def test_two_layer_gradients_match_torch(capsys):
    data = json.loads(run(capsys, "--example", "two-layer", "--json"))
    g = torch.Generator().manual_seed(0)
    x, y = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((4, 2), (4, 1)))
    w1, w2 = (
        torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_() for s in ((3, 2), (1, 3))
    )
    ((torch.sigmoid(x @ w1.T) @ w2.T - y) ** 2).sum().backward()
    for name, p in (("w1", w1), ("w2", w2)):
        got = torch.tensor(data["gradients"][name], dtype=torch.float64)
        torch.testing.assert_close(got, p.grad, rtol=1e-12, atol=1e-14)


def test_unknown_example_exits_2_and_lists_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", "--example", "nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert all(name in err for name in EXAMPLES)
