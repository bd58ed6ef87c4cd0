"""``torchmanual bench``: a torchmanual training step against the same step in torch.nn."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from torchmanual.bench import SIZES, VARIANTS, Settings, default_devices, format_table
from torchmanual.bench import run as run_bench

HELP = "time a training step of torchmanual against torch.nn side by side (interleaved A/B)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes",
        nargs="+",
        choices=list(SIZES),
        default=None,
        metavar="SIZE",
        help=f"networks to time (default: all; choices: {', '.join(SIZES)})",
    )
    parser.add_argument("--quick", action="store_true", help="skip the large network")
    parser.add_argument(
        "--rounds",
        type=int,
        default=11,
        help="interleaved A/B rounds per row after warm-up (default: 11)",
    )
    parser.add_argument(
        "--round-time",
        type=float,
        default=0.25,
        metavar="SECONDS",
        help="time each side runs per round, in whole steps (default: 0.25)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="warm-up time per row before timing (default: 0.5)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(VARIANTS),
        help="eager and/or torch.compile (default: both; CUDA adds CUDA-graph rows)",
    )
    parser.add_argument(
        "--compile-backend",
        default="inductor",
        help="torch.compile backend for the compile variant (default: inductor)",
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda", "all"],
        default="all",
        help="where to run (default: all = the CPU, and CUDA when a GPU is present)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"torch intra-op threads (default: torch's, {torch.get_num_threads()} here)",
    )
    parser.add_argument(
        "--no-two-layer",
        dest="two_layer",
        action="store_false",
        help="skip the slides' numpy two-layer loop vs its torchmanual twin",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _error(message: str) -> int:
    print(f"torchmanual bench: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.rounds < 1:
        return _error(f"--rounds must be at least 1, got {args.rounds}")
    if args.round_time <= 0 or args.warmup < 0:
        return _error("--round-time must be positive and --warmup not negative")
    if args.threads is not None:
        if args.threads < 1:
            return _error(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        return _error("--device cuda: no CUDA GPU is available")
    devices = default_devices() if args.device == "all" else (args.device,)
    sizes = list(args.sizes or SIZES)
    if args.quick:
        sizes = [s for s in sizes if s != "large"]
    settings = Settings(
        sizes=sizes,
        rounds=args.rounds,
        round_seconds=args.round_time,
        warmup_seconds=args.warmup,
        variants=tuple(args.variants),
        compile_backend=args.compile_backend,
        devices=devices,
        two_layer=args.two_layer,
        seed=args.seed,
    )
    progress = None if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    result = run_bench(settings, progress)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table(result))
    return 0
