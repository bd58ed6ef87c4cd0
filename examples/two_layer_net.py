"""The slides' two-layer network (SLIDES.md section 2), twice: numpy by hand, and torchmanual.

Both start from the same random arrays, in float64: the slides' numpy loop with its
gradients written out, and the same network built from torchmanual modules (Linear without
bias, Sigmoid), the functional sum-of-squares loss and torchmanual.optim.SGD. The two loss
curves agree to rounding: torchmanual's backward *is* the slides' algebra.

    python examples/two_layer_net.py [--steps 2000]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import torchmanual.functional as F
import torchmanual.nn as tnn
from torchmanual.optim import SGD

N, D_IN, H, D_OUT = 64, 1000, 100, 10
LEARNING_RATE = 1e-4


def slides_numpy(x, y, w1, w2, steps: int) -> list[float]:
    """The slides' loop, verbatim but for the loss history."""
    w1, w2 = w1.copy(), w2.copy()
    losses = []
    for _ in range(steps):
        h = 1 / (1 + np.exp(-x.dot(w1)))
        y_pred = h.dot(w2)
        loss = np.square(y_pred - y).sum()
        losses.append(float(loss))
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h.T.dot(grad_y_pred)
        grad_h = grad_y_pred.dot(w2.T)
        grad_w1 = x.T.dot(grad_h * h * (1 - h))
        w1 -= LEARNING_RATE * grad_w1
        w2 -= LEARNING_RATE * grad_w2
    return losses


def torchmanual_twin(x, y, w1, w2, steps: int) -> list[float]:
    """The same network as modules; torch's weight layout is (out, in), so W = wᵀ."""
    model = torch.nn.Sequential(
        tnn.Linear(D_IN, H, bias=False, dtype=torch.float64),
        tnn.Sigmoid(),
        tnn.Linear(H, D_OUT, bias=False, dtype=torch.float64),
    )
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w1.T))
        model[2].weight.copy_(torch.from_numpy(w2.T))
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = SGD(model.parameters(), lr=LEARNING_RATE)
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(model(x), y, reduction="sum")  # the slides' Σ (ŷ − y)²
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses


def train_both(steps: int = 2000, seed: int = 0) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((N, D_IN)), rng.standard_normal((N, D_OUT))
    w1, w2 = rng.standard_normal((D_IN, H)), rng.standard_normal((H, D_OUT))
    return slides_numpy(x, y, w1, w2, steps), torchmanual_twin(x, y, w1, w2, steps)


def max_relative_difference(a: list[float], b: list[float]) -> float:
    a_, b_ = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a_ - b_) / np.maximum(1e-8, np.abs(a_) + np.abs(b_))))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    numpy_losses, torch_losses = train_both(args.steps, args.seed)
    print(f"{'':12}{'first loss':>16}{'last loss':>16}")
    print(f"{'numpy':12}{numpy_losses[0]:>16.6f}{numpy_losses[-1]:>16.6f}")
    print(f"{'torchmanual':12}{torch_losses[0]:>16.6f}{torch_losses[-1]:>16.6f}")
    print(
        f"largest relative difference over {args.steps} steps: "
        f"{max_relative_difference(numpy_losses, torch_losses):.2e}"
    )


if __name__ == "__main__":
    main()
