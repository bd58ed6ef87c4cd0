"""``torchmanual explain``: the slides' worked backprop examples, gate by gate, through a Tape.

Each example builds its circuit from torchmanual's Functions inside a
:class:`torchmanual.tape.Tape`, runs backward, and prints the tape's walkthrough (one row per
gate in backward order: upstream, local, downstream) and the gradients of the inputs::

    torchmanual explain                       # the sigmoid neuron, gate by gate
    torchmanual explain --example add-mul     # (x + y)·z at x=-2, y=5, z=-4
    torchmanual explain --example two-layer --json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

import torchmanual.functional as F
from torchmanual.tape import Tape, _jsonable, format_value

HELP = "replay the slides' worked backprop examples gate by gate (upstream × local = downstream)"


@dataclass
class Example:
    """What an example leaves behind: its tape, the inputs whose gradients it reports, and
    a few lines of commentary."""

    title: str
    tape: Tape
    inputs: dict[str, Tensor]
    notes: list[str] = field(default_factory=list)
    output: str = "f"


def _scalars(**values: float) -> dict[str, Tensor]:
    # float64 so the printed two decimals are the slides' numbers, not float32 rounding.
    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in values.items()}


def add_mul() -> Example:
    """``f = (x + y)·z`` at x=-2, y=5, z=-4: q = 3, f = -12, ∂f/∂z = q, ∂f/∂x = ∂f/∂y = z."""
    v = _scalars(x=-2.0, y=5.0, z=-4.0)
    with Tape(names=v) as tape:
        q = F.add(v["x"], v["y"])
        f = F.mul(q, v["z"])
        tape.name(q=q, f=f)
    f.backward()
    return Example(
        "f(x, y, z) = (x + y)·z at x=-2, y=5, z=-4 (slides §7)",
        tape,
        v,
        ["add distributes ∂f/∂q = z = -4 to x and y; multiply switches: ∂f/∂z = q = 3"],
    )


def _neuron_inputs() -> dict[str, Tensor]:
    return _scalars(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)


def sigmoid_neuron() -> Example:
    """``f = 1/(1 + exp(-(w0 x0 + w1 x1 + w2)))`` from the gates *, +, ×(-1), exp, +1, 1/x."""
    v = _neuron_inputs()
    with Tape(names=v) as tape:
        dot = F.add(F.add(F.mul(v["w0"], v["x0"]), F.mul(v["w1"], v["x1"])), v["w2"])
        f = F.reciprocal(F.shift(F.exp(F.scale(dot, -1.0)), 1.0))
        tape.name(dot=dot, f=f)
    f.backward()
    return Example(
        "sigmoid neuron, gate by gate: f = 1/(1 + exp(-(w0·x0 + w1·x1 + w2))) (slides §7)",
        tape,
        v,
        [
            "1/x: (-1/1.37²)(1.00) = -0.53;  +1: (1)(-0.53) = -0.53;  "
            "exp: (e^-1)(-0.53) = -0.20;  ×(-1): (-1)(-0.20) = 0.20",
            "the adds distribute 0.20; each multiply sends the other input × 0.20",
        ],
    )


def sigmoid_gate() -> Example:
    """The same neuron with the sigmoid as one gate: σ(1 − σ) = (0.73)(0.27) = 0.20."""
    v = _neuron_inputs()
    with Tape(names=v) as tape:
        dot = F.add(F.add(F.mul(v["w0"], v["x0"]), F.mul(v["w1"], v["x1"])), v["w2"])
        f = F.sigmoid(dot)
        tape.name(dot=dot, f=f)
    f.backward()
    return Example(
        "sigmoid neuron with one sigmoid gate: dσ/dx = (1 − σ(x))σ(x) (slides §7)",
        tape,
        v,
        ["σ's local gradient (1 − 0.73)(0.73) = 0.20 does in one step what four gates did"],
    )


def two_layer(lr: float = 0.1) -> Example:
    """One step of the slides' two-layer network (§2) at a tiny size, in matrix form:
    ``h = σ(x W1ᵀ)``, ``y_pred = h W2ᵀ``, ``loss = Σ (y_pred − y)²``, then SGD."""
    g = torch.Generator().manual_seed(0)
    n, d_in, hidden, d_out = 4, 2, 3, 1

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    x, y = randn(n, d_in), randn(n, d_out)
    w1 = randn(hidden, d_in).requires_grad_()  # (out, in), as torch.nn.Linear
    w2 = randn(d_out, hidden).requires_grad_()
    with Tape(names={"x": x, "y": y, "w1": w1, "w2": w2}) as tape:
        h = F.sigmoid(F.linear(x, w1))
        y_pred = F.linear(h, w2)
        loss = F.mse_loss(y_pred, y, reduction="sum")
        tape.name(h=h, y_pred=y_pred, loss=loss)
    loss.backward()
    with torch.no_grad():  # the update itself is not part of the circuit
        new_loss = (torch.sigmoid(x @ (w1 - lr * w1.grad).T) @ (w2 - lr * w2.grad).T - y) ** 2
        new_loss = new_loss.sum().item()
    return Example(
        f"two-layer network, one step in matrix form: x ({n}×{d_in}) → Linear → Sigmoid "
        f"→ Linear → Σ(y_pred − y)² (slides §2, §8)",
        tape,
        {"w1": w1, "w2": w2},
        output="loss",
        notes=[
            "MSE sends 2(y_pred − y) (the slides' grad_y_pred); Linear sends dh = dy W2 and "
            "dW2 = dyᵀ h; Sigmoid multiplies by h(1 − h)",
            f"one SGD step (lr={lr}): loss {loss.item():.4f} → {new_loss:.4f}",
        ],
    )


EXAMPLES: dict[str, Callable[[], Example]] = {
    "add-mul": add_mul,
    "sigmoid-neuron": sigmoid_neuron,
    "sigmoid-gate": sigmoid_gate,
    "two-layer": two_layer,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--example",
        choices=list(EXAMPLES),
        default="sigmoid-neuron",
        help="which worked example to replay (default: sigmoid-neuron)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _gradient_lines(inputs: dict[str, Tensor], output: str) -> list[str]:
    width = max(map(len, inputs))
    lines = []
    for name, t in inputs.items():
        grad = t.grad
        if grad is not None and grad.dim() > 0:
            # Small enough to print in full: the reader can check it by hand.
            text = "\n".join(
                (" " * (width + len(output) + 8) if k else "")
                + "["
                + ", ".join(f"{v:6.2f}" for v in row)
                + "]"
                for k, row in enumerate(grad.reshape(grad.shape[0], -1).tolist())
            )
        else:
            text = format_value(grad)
        lines.append(f"  ∂{output}/∂{name.ljust(width)} = {text}")
    return lines


def run(args: argparse.Namespace) -> int:
    example = EXAMPLES[args.example]()
    example.tape.close()
    gradients = {name: _jsonable(t.grad) for name, t in example.inputs.items()}
    if args.json:
        print(
            json.dumps(
                {
                    "example": args.example,
                    "title": example.title,
                    **example.tape.to_dict(),
                    "gradients": gradients,
                }
            )
        )
        return 0
    print(example.title)
    print()
    print(example.tape)
    print()
    print("Gradients of the inputs:")
    print("\n".join(_gradient_lines(example.inputs, example.output)))
    for note in example.notes:
        print(f"  · {note}")
    return 0
