"""The slides' regression problems (SLIDES.md sections 1, 8 and 12): x², 1/x and sin x.

Universal approximation at work: one hidden layer of ReLU units, a linear output and the
mean squared error (the slides' regression network), trained by full-batch gradient descent
with momentum (torchmanual's SGD). Inputs and targets are standardised on the training split
(section 11); the test MSE is reported in the original units, and as a share of the test
targets' variance (1 − R²). With seed 0, most of 1/x's error is one test point at x ≈ 1.06
(y ≈ 0.94), left of every training point (the smallest is x ≈ 1.44): the network
extrapolates there.

    python examples/regression.py [--hidden 50] [--steps 2000] [--outdir runs/regression]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

import torchmanual.nn as tnn
from torchmanual import data
from torchmanual.optim import SGD

PROBLEMS = ("square", "reciprocal", "sin")
FORMULAS = {"square": "x² on [-1, 1]", "reciprocal": "1/x on [1, 100]", "sin": "sin x on [1, 2π]"}


@dataclass
class Fit:
    """A fitted curve: the model maps standardised x to standardised y."""

    name: str
    model: torch.nn.Module
    test_mse: float
    relative_mse: float
    x_test: torch.Tensor
    y_test: torch.Tensor
    prediction: torch.Tensor


def fit_curve(
    name: str, *, hidden: int = 50, steps: int = 2000, lr: float = 0.05, n: int = 200, seed: int = 0
) -> Fit:
    """Fit one of the slides' curves with ``Linear(1, hidden) → ReLU → Linear(hidden, 1)``."""
    problem = data.regression(name, n=n, seed=seed)
    x_raw, y_raw = problem.train.tensors
    x_test_raw, y_test = problem.test.tensors
    # NOTE: standardising x matters for 1/x on [1, 100] and sin x on [1, 2π] (raw sin inputs
    # left every ReLU unit on one side: test MSE 0.53, the variance). Standardising y matters
    # for 1/x, whose targets have std 0.09: the raw MSE gradient is then ~100x smaller, and
    # after 2000 steps the training MSE was 20x worse than with standardised targets.
    x_scale, y_scale = data.standardize(x_raw), data.standardize(y_raw)
    x, y, x_test = x_scale(x_raw), y_scale(y_raw), x_scale(x_test_raw)

    torch.manual_seed(seed)
    model = tnn.MLP([1, hidden, 1], activation="relu", init="he")
    loss_fn = tnn.MSELoss()
    # NOTE: lr 0.1 diverged for every curve with 50 units; 0.05 is stable.
    optimizer = SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()

    with torch.no_grad():
        # Back to the original units: y = standardised y · std + mean.
        prediction = model(x_test) * y_scale.std + y_scale.mean
    test_mse = loss_fn(prediction, y_test).item()
    relative = test_mse / y_test.var(correction=0).item()
    return Fit(name, model, test_mse, relative, x_test_raw, y_test, prediction)


def plot(fits: list[Fit], path: Path) -> Path | None:
    """Save each curve and its fit on the test points; None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(fits), figsize=(4 * len(fits), 3.5))
    for ax, f in zip(axes, fits, strict=True):
        ax.plot(f.x_test.ravel(), f.y_test.ravel(), "k.", markersize=3, label="test data")
        ax.plot(f.x_test.ravel(), f.prediction.ravel(), "C1-", label="network")
        ax.set_title(f"{FORMULAS[f.name]}\ntest MSE {f.test_mse:.2g}")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> list[Fit]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=50, help="hidden ReLU units")
    parser.add_argument("--steps", type=int, default=2000, help="full-batch gradient steps")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--samples", type=int, default=200, help="points per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--outdir", type=Path, default=Path("runs/regression"))
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)

    settings = dict(hidden=args.hidden, steps=args.steps, lr=args.lr, n=args.samples)
    fits = [fit_curve(name, **settings, seed=args.seed) for name in PROBLEMS]
    print(f"1-{args.hidden}-1 ReLU network, {args.steps} full-batch steps, MSE loss")
    print(f"{'problem':<18}{'test MSE':>12}{'MSE / Var(y)':>14}")
    for f in fits:
        print(f"{FORMULAS[f.name]:<18}{f.test_mse:>12.3g}{f.relative_mse:>14.3g}")
    if not args.no_plot:
        path = plot(fits, args.outdir / "fits.png")
        print(f"fits: {path}" if path else "matplotlib not installed: no plot")
    return fits


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny models: one thread is fastest
    main()
