"""The slides' numerical gradient, step by step, against the analytic one (SLIDES.md section 5).

The loss is the slides' multiclass SVM loss with L2 regularisation,
``L(W) = 1/N Σ_i Σ_{j≠y_i} max(0, s_j − s_{y_i} + 1) + λ Σ W²`` with ``s = W x``, of a small
random ``W`` (10 classes × 64 pixels + a bias column) on a few digits, in float64.

1. The slides' walk-through: nudge one entry of ``W`` by h, re-evaluate the loss, divide.
2. The whole numerical gradient, the slides' forward difference ``(f(x+h) − f(x)) / h`` and
   the centred difference ``(f(x+h) − f(x−h)) / 2h``, with h = 1e-5
   (``torchmanual.gradcheck.numerical_gradient``).
3. The analytic gradient: one backward pass through torchmanual's hand-written Functions.
4. The relative errors ``|a − n| / max(1e-8, |a| + |n|)`` (worst entry): the forward
   difference is off by O(h) (here h·λ, from the curvature of λ Σ W²), the centred one only by
   rounding — "use the analytic gradient, check it with the numerical one".

    python examples/numerical_gradient.py [--samples 5] [--classes 10]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

import torchmanual.functional as F
from torchmanual import data
from torchmanual.gradcheck import numerical_gradient, relative_error

H = 1e-5  # the slides' step


def make_loss(
    x: torch.Tensor, y: torch.Tensor, reg: float
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The slides' full loss: mean multiclass SVM loss plus ``reg · Σ W²``."""

    def loss(w: torch.Tensor) -> torch.Tensor:
        scores = F.linear(x, w)  # s = W x, one row of scores per example
        # Σ W² as a sum-reduced squared error against 0: a torchmanual Function, so its
        # backward (2W) is hand-written too.
        penalty = F.mse_loss(w, torch.zeros_like(w), reduction="sum")
        return F.multiclass_svm_loss(scores, y) + reg * penalty

    return loss


def setup(
    samples: int = 5, classes: int = 10, scale: float = 0.01, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A few digits of the first ``classes`` classes (with the bias column) and a random W."""
    digits = data.digits(seed=seed, dtype=torch.float64)
    x, y = digits.train.tensors
    keep = y < classes
    x, y = x[keep][:samples], y[keep][:samples]
    x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(classes, x.shape[1], generator=g, dtype=torch.float64) * scale
    return x, y, w


def analytic_gradient(
    loss: Callable[[torch.Tensor], torch.Tensor], w: torch.Tensor
) -> torch.Tensor:
    """One backward pass: exact, fast."""
    w = w.detach().clone().requires_grad_(True)
    loss(w).backward()
    return w.grad


def walk_through(
    loss: Callable[[torch.Tensor], torch.Tensor], w: torch.Tensor, dims: int = 3
) -> list[str]:
    """The slides' table: W + h in one dimension at a time, the new loss, the slope."""
    w = w.clone()
    with torch.no_grad():
        base = loss(w).item()
        lines = [f"W = [{', '.join(f'{v:.4f}' for v in w.flatten()[:dims])}, ...]  loss {base:.8f}"]
        flat = w.view(-1)
        for i in range(dims):
            old = flat[i].item()
            flat[i] = old + H
            nudged = loss(w).item()
            flat[i] = old  # restore — very important!
            lines.append(
                f"W + h in dim {i + 1}: loss {nudged:.8f}  →  dW_{i + 1} = "
                f"({nudged:.8f} − {base:.8f}) / {H:g} = {(nudged - base) / H:.4f}"
            )
    return lines


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5, help="digits in the loss")
    parser.add_argument("--classes", type=int, default=10, help="rows of W (2..10)")
    parser.add_argument("--reg", type=float, default=1.0, help="λ of the L2 penalty")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x, y, w = setup(args.samples, args.classes, seed=args.seed)
    loss = make_loss(x, y, args.reg)
    print(f"multiclass SVM loss + {args.reg:g}·ΣW² of W {tuple(w.shape)} on {len(y)} digits")
    print("\n".join(walk_through(loss, w)))

    start = time.perf_counter()
    forward = numerical_gradient(loss, w.clone(), h=H, centered=False)
    seconds_forward = time.perf_counter() - start
    start = time.perf_counter()
    centred = numerical_gradient(loss, w.clone(), h=H, centered=True)
    seconds_centred = time.perf_counter() - start
    start = time.perf_counter()
    analytic = analytic_gradient(loss, w)
    seconds_analytic = time.perf_counter() - start

    result = {
        "forward_error": relative_error(forward, analytic),
        "centred_error": relative_error(centred, analytic),
    }
    rows = [
        ("numerical, forward difference", f"{result['forward_error']:.2e}", seconds_forward),
        ("numerical, centred difference", f"{result['centred_error']:.2e}", seconds_centred),
        ("analytic (torchmanual backward)", "-", seconds_analytic),
    ]
    print(f"\n{f'gradient of {w.numel()} entries':<34}{'rel. error':>12}{'seconds':>10}")
    for method, error, seconds in rows:
        print(f"{method:<34}{error:>12}{seconds:>10.3f}")
    return result


if __name__ == "__main__":
    torch.set_num_threads(1)  # small matrices: one thread is fastest
    main()
