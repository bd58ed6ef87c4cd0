"""``torchmanual init-stats``: the slides' activation statistics across initialisations.

torchmanual init-stats --activation tanh --init small      # one case: the slides' table
torchmanual init-stats --all                               # the slides' five cases
tensorboard --logdir runs/init-stats                       # compare them side by side
"""

from __future__ import annotations

import argparse
import json
import sys

from torchmanual.experiments import (
    ACTIVATIONS,
    SLIDE_CASES,
    format_comparison,
    init_stats,
    init_stats_all,
)
from torchmanual.init import SCHEMES

HELP = "activation mean/std per layer of a deep net, by activation and initialisation"

DEFAULT_LOGDIR = "runs/init-stats"
DEFAULT_ACTIVATION = "tanh"
DEFAULT_INIT = "xavier"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--activation",
        choices=list(ACTIVATIONS),
        help=f"the hidden layers' activation (default: {DEFAULT_ACTIVATION})",
    )
    parser.add_argument(
        "--init",
        choices=list(SCHEMES),
        help="small: 0.01·randn, unit: randn, xavier: randn/√fan_in, "
        f"he: randn/√(fan_in/2) (default: {DEFAULT_INIT})",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="run the slides' five cases ("
        + ", ".join(f"{a}+{i}" for a, i in SLIDE_CASES)
        + ") and print a comparison table",
    )
    parser.add_argument(
        "--layers", type=_positive_int, default=10, help="hidden layers (default: %(default)s)"
    )
    parser.add_argument(
        "--width", type=_positive_int, default=500, help="units per layer (default: %(default)s)"
    )
    parser.add_argument(
        "--samples", type=_positive_int, default=1000, help="rows of X (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    parser.add_argument(
        "--logdir",
        default=DEFAULT_LOGDIR,
        help="TensorBoard folder; each case writes <activation>-<init> "
        "('none': off; default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _fail(message: str, status: int) -> int:
    print(f"torchmanual init-stats: error: {message}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    if args.all and (args.activation or args.init):
        return _fail("--all runs the slides' five cases; leave out --activation/--init", 2)
    logdir = None if args.logdir.lower() == "none" else args.logdir
    settings = dict(layers=args.layers, width=args.width, samples=args.samples, seed=args.seed)
    try:
        if args.all:
            results = init_stats_all(**settings, logdir=logdir)
        else:
            activation = args.activation or DEFAULT_ACTIVATION
            init = args.init or DEFAULT_INIT
            results = [init_stats(activation, init, **settings, logdir=logdir)]
    except OSError as error:
        return _fail(f"cannot write TensorBoard logs to {logdir}: {error}", 1)

    if args.json:
        if args.all:
            print(json.dumps({"runs": [r.to_dict() for r in results]}))
        else:
            print(json.dumps(results[0].to_dict()))
        return 0
    print(format_comparison(results) if args.all else results[0].format_table())
    if logdir is not None:
        print(f"\nTensorBoard runs: {', '.join(r.logdir for r in results)}")
        print(f"view them with:   tensorboard --logdir {logdir}")
    return 0
