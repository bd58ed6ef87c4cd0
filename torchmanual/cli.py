"""The ``torchmanual`` command line: one subcommand per module in ``torchmanual.commands``.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int`` (the exit status). Every command takes ``--json`` and then prints
exactly one JSON object on stdout. Bad arguments exit with status 2 (argparse's
convention) and a message that lists the valid choices.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# NOTE: command modules are imported only when the parser is built, so `import torchmanual`
# pays nothing for the CLI.
COMMANDS: dict[str, str] = {
    "train": "torchmanual.commands.train",
    "init-stats": "torchmanual.commands.init_stats",
    "gradcheck": "torchmanual.commands.gradcheck",
    "explain": "torchmanual.commands.explain",
    "bench": "torchmanual.commands.bench",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchmanual",
        description="The slides on neural networks and backpropagation, as PyTorch code.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
