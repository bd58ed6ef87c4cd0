"""The slides' optimisation Method 1 against Method 2 (SLIDES.md section 6), on the digits.

A linear classifier ``s = W x`` with the bias as a last column of ``W`` (inputs get a constant
1), scored by the slides' multiclass SVM loss:

- Method 1, random search: draw 1000 random ``W = randn(10, 65) * 0.0001`` and keep the one
  with the lowest training loss (on CIFAR-10 the slides report 15.5% test accuracy).
- Method 2, follow the slope: minibatch SGD on the same ``W`` from the same kind of start,
  with the gradient from torchmanual's hand-written backward.

Both write their training loss to TensorBoard (``runs/random-search/{random-search,sgd}``):
the best loss so far per trial, and the minibatch loss per SGD step.

    python examples/random_search.py [--trials 1000] [--epochs 20] [--logdir runs/random-search]
    tensorboard --logdir runs/random-search
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

import torchmanual.functional as F
import torchmanual.nn as tnn
from torchmanual import data
from torchmanual.optim import SGD
from torchmanual.train import fit


def with_bias_column(x: torch.Tensor) -> torch.Tensor:
    """Append the constant input 1, so the last column of ``W`` is the bias (section 1)."""
    return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)


def accuracy(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (F.linear(x, w).argmax(dim=1) == y).double().mean().item()


def random_search(
    x: torch.Tensor,
    y: torch.Tensor,
    trials: int = 1000,
    scale: float = 1e-4,
    seed: int = 0,
    writer: Any = None,
) -> tuple[torch.Tensor, float]:
    """The slides' loop: keep the random ``W`` with the lowest loss; returns it and its loss.

    ``writer`` (a ``SummaryWriter``), if given, gets the best loss so far at every trial.
    """
    g = torch.Generator().manual_seed(seed)
    best_loss, best_w = float("inf"), None
    with torch.no_grad():
        for trial in range(1, trials + 1):
            w = torch.randn(10, x.shape[1], generator=g) * scale  # random parameters
            loss = F.multiclass_svm_loss(F.linear(x, w), y).item()  # loss on the training set
            if loss < best_loss:  # keep track of the best solution
                best_loss, best_w = loss, w
            if writer is not None:
                writer.add_scalar("loss/train", best_loss, trial)
    return best_w, best_loss


class LossLogger:
    """The smallest ``fit`` monitor: the minibatch loss of every step to TensorBoard."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def on_step(self, step: int, loss: float, optimizer: Any) -> None:
        self.writer.add_scalar("loss/train", loss, step)

    def on_epoch(self, epoch: int, history: Any) -> None:
        pass


def gradient_descent(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 20,
    lr: float = 0.05,
    scale: float = 1e-4,
    seed: int = 0,
    writer: Any = None,
) -> tuple[torch.Tensor, float]:
    """Minibatch SGD (32 per batch, momentum 0.9) on ``W``; returns it and its training loss.

    ``writer`` (a ``SummaryWriter``), if given, gets every step's minibatch loss.
    """
    model = tnn.Linear(x.shape[1], 10, bias=False)  # the bias is W's last column
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.weight.copy_(torch.randn(10, x.shape[1], generator=g) * scale)
    optimizer = SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = tnn.MulticlassSVMLoss()
    monitor = LossLogger(writer) if writer is not None else None
    history = fit(
        model,
        loss_fn,
        optimizer,
        (x, y),
        epochs=epochs,
        batch_size=32,
        monitor=monitor,
        progress=False,
    )
    return model.weight.detach(), history.train_loss[-1]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000, help="random W's to try")
    parser.add_argument("--epochs", type=int, default=20, help="SGD epochs")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logdir", default="runs/random-search", help="TensorBoard ('none': off)")
    args = parser.parse_args(argv)

    digits = data.digits(seed=args.seed)
    x, y = digits.train.tensors
    x_test, y_test = digits.test.tensors
    x, x_test = with_bias_column(x), with_bias_column(x_test)

    writers = {"random-search": None, "sgd": None}
    if args.logdir.lower() != "none":
        from torch.utils.tensorboard import SummaryWriter

        # NOTE: purge_step=0: a rerun replaces the curves of the last run in the same folder.
        for name in writers:
            writers[name] = SummaryWriter(str(Path(args.logdir) / name), purge_step=0)
    try:
        w_random, loss_random = random_search(
            x, y, args.trials, seed=args.seed, writer=writers["random-search"]
        )
        w_sgd, loss_sgd = gradient_descent(
            x, y, epochs=args.epochs, lr=args.lr, seed=args.seed, writer=writers["sgd"]
        )
    finally:
        for writer in writers.values():
            if writer is not None:
                writer.close()
    result = {
        "random_search_accuracy": accuracy(w_random, x_test, y_test),
        "sgd_accuracy": accuracy(w_sgd, x_test, y_test),
        "random_search_loss": loss_random,
        "sgd_loss": loss_sgd,
    }
    print(f"digits: {len(y)} training and {len(y_test)} test images, linear classifier W (10, 65)")
    print(f"{'method':<36}{'train SVM loss':>15}{'test accuracy':>15}")
    rows = [
        (f"1: random search, {args.trials} trials", loss_random, result["random_search_accuracy"]),
        (f"2: SGD, {args.epochs} epochs", loss_sgd, result["sgd_accuracy"]),
    ]
    for method, loss, acc in rows:
        print(f"{method:<36}{loss:>15.4f}{acc:>15.1%}")
    if args.logdir.lower() != "none":
        print(f"TensorBoard: tensorboard --logdir {args.logdir}")
    return result


if __name__ == "__main__":
    torch.set_num_threads(1)  # small matrices: one thread is fastest
    main()
