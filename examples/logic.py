"""The slides' logic problems (SLIDES.md section 12): AND, XOR and concentric circles.

- AND with a single neuron: one ``Linear(2, 1)`` and a sigmoid output (1 node).
- XOR: a single neuron cannot separate it (at most 3 of the 4 rows), one hidden layer of 2
  sigmoid units can (3 nodes in all). A 2-2-1 network has local minima, so training restarts
  from the next seed until every row is right, and says how many restarts it took.
- Concentric circles with one hidden layer of 4 units.

Every model ends in one logit trained with ``BCEWithLogitsLoss`` (the slides' δ = a − y) and
torchmanual's SGD. With matplotlib installed, the decision boundaries are saved as a PNG.

    python examples/logic.py [--epochs-circles 300] [--outdir runs/logic]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

import torchmanual.nn as tnn
from torchmanual import data
from torchmanual.optim import SGD


@dataclass
class Solved:
    """A trained model and how it did."""

    name: str
    model: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor
    accuracy: float
    note: str = ""


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of rows whose logit has the sign of the label (logit > 0 ⇔ σ > 0.5 ⇔ class 1)."""
    with torch.no_grad():
        return ((model(x) > 0).float() == y).float().mean().item()


def train(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    momentum: float = 0.9,
    stop_below: float | None = None,
) -> float:
    """Full-batch gradient descent on the binary cross-entropy; returns the last loss.

    With ``stop_below``, stops early once the loss is below it (checked every 20 epochs).
    """
    loss_fn = tnn.BCEWithLogitsLoss()
    optimizer = SGD(model.parameters(), lr=lr, momentum=momentum)
    loss = torch.tensor(float("nan"))
    for epoch in range(epochs):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        if stop_below is not None and epoch % 20 == 0 and loss.item() < stop_below:
            break
    return loss.item()


def _binary(problem: data.Data, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    x, y = getattr(problem, split).tensors
    return x, y.float().unsqueeze(1)  # one logit per row, targets (n, 1) in {0, 1}


def solve_and(epochs: int = 200, seed: int = 0) -> Solved:
    """AND with the slides' single neuron: ``σ(w₁x₁ + w₂x₂ + b)``."""
    x, y = _binary(data.and_())
    torch.manual_seed(seed)
    neuron = tnn.Linear(2, 1)
    train(neuron, x, y, epochs=epochs, lr=0.5)
    return Solved("AND, 1 neuron", neuron, x, y, accuracy(neuron, x, y))


def fail_xor(epochs: int = 200, seed: int = 0) -> Solved:
    """XOR with a single neuron: a line separates at most 3 of the 4 rows."""
    x, y = _binary(data.xor())
    torch.manual_seed(seed)
    neuron = tnn.Linear(2, 1)
    train(neuron, x, y, epochs=epochs, lr=0.5)
    return Solved("XOR, 1 neuron", neuron, x, y, accuracy(neuron, x, y), "not linearly separable")


def solve_xor(epochs: int = 600, seed: int = 0, restarts: int = 10) -> Solved:
    """XOR with one hidden layer of 2 sigmoid units, restarting from the next seed if stuck."""
    # NOTE: measured over seeds 0..19 (sigmoid, Xavier init, lr 0.5, momentum 0.9, full
    # batch, 600 epochs) 18 of 20 solve it; the other two sit in a local minimum that more
    # epochs do not leave, so a restart from a new seed is the honest fix. Tanh units solved
    # only 5-9 of 20 with the same settings.
    x, y = _binary(data.xor())
    for attempt in range(restarts):
        torch.manual_seed(seed + attempt)
        model = tnn.MLP([2, 2, 1], activation="sigmoid", init="xavier")
        train(model, x, y, epochs=epochs, lr=0.5, stop_below=0.05)
        acc = accuracy(model, x, y)
        if acc == 1.0:
            break
    note = f"seed {seed + attempt}, {attempt} restart{'s' if attempt != 1 else ''}"
    return Solved("XOR, 2 hidden units", model, x, y, acc, note)


def solve_circles(epochs: int = 300, seed: int = 0) -> Solved:
    """Two concentric circles with one hidden layer of 4 ReLU units (test accuracy)."""
    # NOTE: 4 ReLU units draw a quadrilateral between the rings (radius 0.5 and 1, noise 0.1).
    # Full-batch descent with lr 1.0 and momentum 0.9 reached >= 98% test accuracy for seeds
    # 0..7 in 150 epochs; tanh units reached 97-99%, and 2-4-2 tanh at lr 0.5 for 30 epochs
    # only 94%.
    problem = data.circles(seed=seed)
    x, y = _binary(problem)
    x_test, y_test = _binary(problem, "test")
    torch.manual_seed(seed)
    model = tnn.MLP([2, 4, 1], activation="relu", init="xavier")
    train(model, x, y, epochs=epochs, lr=1.0)
    acc = accuracy(model, x_test, y_test)
    return Solved("circles, 4 hidden units", model, x_test, y_test, acc, "test split")


def plot(results: list[Solved], path: Path) -> Path | None:
    """Save each model's decision boundary over its data; None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 4))
    for ax, r in zip(axes, results, strict=True):
        lo = r.x.min(0).values - 0.5
        hi = r.x.max(0).values + 0.5
        u, v = torch.meshgrid(
            torch.linspace(lo[0], hi[0], 200), torch.linspace(lo[1], hi[1], 200), indexing="xy"
        )
        with torch.no_grad():
            p = torch.sigmoid(r.model(torch.stack([u.ravel(), v.ravel()], 1))).reshape(u.shape)
        ax.contourf(u, v, p, levels=[0, 0.5, 1], colors=["#f4cccc", "#cfe2f3"])
        ax.contour(u, v, p, levels=[0.5], colors="k", linewidths=1)
        labels = r.y.ravel().bool()
        ax.scatter(*r.x[~labels].T, c="#cc0000", s=12, label="0")
        ax.scatter(*r.x[labels].T, c="#0b5394", s=12, label="1")
        ax.set_title(f"{r.name}\naccuracy {r.accuracy:.1%}")
        ax.set_aspect("equal")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> list[Solved]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs-gates", type=int, default=200, help="AND and 1-neuron XOR")
    parser.add_argument("--epochs-xor", type=int, default=600, help="2-2-1 XOR, per attempt")
    parser.add_argument("--epochs-circles", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--outdir", type=Path, default=Path("runs/logic"), help="where the PNG is saved"
    )
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)

    results = [
        solve_and(args.epochs_gates, args.seed),
        fail_xor(args.epochs_gates, args.seed),
        solve_xor(args.epochs_xor, args.seed),
        solve_circles(args.epochs_circles, args.seed),
    ]
    for r in results:
        note = f"  ({r.note})" if r.note else ""
        print(f"{r.name:<26} accuracy {r.accuracy:7.1%}{note}")
    if not args.no_plot:
        path = plot(results, args.outdir / "decision_boundaries.png")
        print(f"decision boundaries: {path}" if path else "matplotlib not installed: no plot")
    return results


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny models: one thread is fastest
    main()
