"""`nascomp` command line: parses arguments and dispatches to one module per sub-command.

Each module in ``COMMANDS`` defines ``register(subparsers)`` (adds its parser and sets ``func``).
A `NascompError` anywhere becomes one ``error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nascomp import __version__
from nascomp.errors import EXIT_USER_ERROR, NascompError

COMMANDS = (
    "nascomp.commands.train",
    "nascomp.commands.flops",
    "nascomp.commands.export",
    "nascomp.commands.supernet",
    "nascomp.commands.search",
    "nascomp.commands.compress",
    "nascomp.commands.adapt",
    "nascomp.commands.profile",
    "nascomp.commands.pareto",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nascomp", description="Search, compress and profile vision transformers under a budget.")
    parser.add_argument("--version", action="version", version=f"nascomp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except NascompError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
