"""``torchmanual gradcheck``: every Function × every check, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys

from torchmanual.autograd import REGISTRY
from torchmanual.gradcheck import CHECKS, CheckResult, check_all

HELP = "check every Function's hand-written backward (gradcheck, double backward, jvp, vmap)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "functions",
        nargs="*",
        metavar="FUNCTION",
        help=f"Functions to check (default: all): {', '.join(REGISTRY)}",
    )
    parser.add_argument(
        "--checks",
        nargs="+",
        choices=CHECKS,
        default=list(CHECKS),
        help="which checks to run (default: all)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def format_table(results: list[CheckResult], checks: list[str]) -> str:
    """One row per Function: ✓/✗ per check and the worst relative error."""
    name_width = max([len("Function"), *(len(r.name) for r in results)])
    header = ["Function".ljust(name_width), *checks, "max rel error"]
    lines = ["  ".join(header)]
    for r in results:
        marks = ["✓" if r.checks[c] else "✗" for c in checks]
        cells = [mark.center(len(c)) for mark, c in zip(marks, checks, strict=True)]
        lines.append("  ".join([r.name.ljust(name_width), *cells, f"{r.max_rel_error:.1e}"]))
    failed = [r for r in results if not r.passed]
    passed = len(results) - len(failed)
    lines.append(f"\n{passed} passed, {len(failed)} failed")
    for r in failed:
        for check_name, message in r.errors.items():
            lines.append(f"✗ {r.name} {check_name}: {message.splitlines()[0][:300]}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    unknown = [name for name in args.functions if name not in REGISTRY]
    if unknown:
        print(
            f"torchmanual gradcheck: error: unknown Function {unknown[0]!r}; "
            f"choose from {', '.join(REGISTRY)}",
            file=sys.stderr,
        )
        return 2
    results = check_all(args.functions or None, args.checks)
    if args.json:
        print(json.dumps({"functions": [r.to_dict() for r in results]}))
    else:
        print(format_table(results, list(args.checks)))
    return 0 if all(r.passed for r in results) else 1
