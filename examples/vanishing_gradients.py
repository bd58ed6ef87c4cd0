"""Vanishing and exploding gradients (SLIDES.md section 10), and the slides' remedies.

Deep MLPs (10 hidden layers) trained on the spiral data for a few hundred SGD steps:
sigmoid with 0.01·randn weights (the gradient vanishes on its way back), ReLU with N(0, 1)
weights (above 1: it explodes and the loss goes non-finite), the same with gradient
clipping, ReLU with He initialisation, and He with BatchNorm1d. The summary shows, per case,
the first layer's weight-gradient norm over the last layer's; TensorBoard shows every
layer's gradient norm over training.

    python examples/vanishing_gradients.py [--depth 10] [--width 64] [--steps 300]
    tensorboard --logdir runs/gradient-flow
"""

from __future__ import annotations

import argparse

import torch

from torchmanual.experiments import FLOW_CASES, FlowResult, format_flow_table, gradient_flow


def main(argv: list[str] | None = None) -> list[FlowResult]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(FLOW_CASES), default=list(FLOW_CASES))
    parser.add_argument("--depth", type=int, default=10, help="hidden layers")
    parser.add_argument("--width", type=int, default=64, help="units per hidden layer")
    parser.add_argument("--steps", type=int, default=300, help="SGD steps per case")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logdir", default="runs/gradient-flow", help="TensorBoard ('none': off)")
    args = parser.parse_args(argv)

    logdir = None if args.logdir.lower() == "none" else args.logdir
    settings = dict(depth=args.depth, width=args.width, steps=args.steps, lr=args.lr)
    results = gradient_flow(args.cases, **settings, seed=args.seed, logdir=logdir)
    print(f"{args.depth} hidden layers of {args.width} units, up to {args.steps} SGD steps")
    print(format_flow_table(results))
    if logdir is not None:
        print(f"\nTensorBoard: tensorboard --logdir {logdir}")
    return results


if __name__ == "__main__":
    torch.set_num_threads(1)  # small matrices: one thread is fastest
    main()
