"""`nascomp` command line: parse the arguments, call the Python API, print the result.

Each sub-command is one module here with ``register(subparsers)`` (its arguments) and ``run(args)`` (the call
into `nascomp`'s public functions). Only the module of the sub-command being run is imported, and those
modules import the library inside ``run``, so ``nascomp --help`` and ``nascomp SUBCOMMAND --help`` load no
torch. A `NascompError` anywhere becomes one ``error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import re
import signal
import sys
import threading
from typing import NoReturn

from nascomp.core.errors import EXIT_USER_ERROR, NascompError, cli_mode
from nascomp.core.version import __version__

# sub-command -> (module, one-line help shown by `nascomp --help`)
COMMANDS = {
    "search": ("nascomp.cli.search", "S3 search: evolve the space by E-T error, then evolutionary search under a budget"),
    "supernet": ("nascomp.cli.supernet", "S3 search spaces and weight-entangled supernet"),
    "train": ("nascomp.cli.train", "train a timm model or arch JSON (optionally distilling from a teacher)"),
    "flops": ("nascomp.cli.flops", "count params and MACs (attention included)"),
    "compress": (
        "nascomp.cli.compress",
        "compress a trained Swin or ViT/DeiT (MiniViT weight multiplexing, drop-blocks) with distillation",
    ),
    "adapt": ("nascomp.cli.adapt", "parameter-efficient transfer: KAdaptation, LoRA, LoKr, linear probe, full"),
    "profile": ("nascomp.cli.profile", "measure latency/energy on a target; build latency lookup tables"),
    "export": ("nascomp.cli.export", "export a model to ONNX or ExecuTorch (verified in the runtime on real images)"),
    "pareto": ("nascomp.cli.pareto", "non-dominated front, hypervolume and plot of a result table"),
    "report": ("nascomp.cli.report", "a self-contained HTML report of a run directory or profile JSON"),
}


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one ``error:`` line (with where to find the options), exit status 2, instead of
    the usage block first: the line that says what is wrong stays the one the user reads."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message} (`{self.prog} --help` lists the options)\n")


def _chosen(argv: list[str]) -> str | None:
    return next((a for a in argv if a in COMMANDS), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the sub-command named in ``argv`` gets its full argument list (all of them when None)."""
    parser = OneLineParser(prog="nascomp", description="Search, compress and profile vision transformers under a budget.")
    parser.add_argument("--version", action="version", version=f"nascomp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=OneLineParser)
    chosen = _chosen(argv) if argv is not None else None
    for name, (module, text) in COMMANDS.items():
        if argv is None or name == chosen:
            importlib.import_module(module).register(subparsers)
        else:
            subparsers.add_parser(name, help=text)
    return parser


class Terminated(BaseException):
    """SIGTERM (a scheduler or ``kill``) as an exception, so it unwinds like Ctrl-C: files are closed, locks released."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


def _own_flags(parser: argparse.ArgumentParser, argv: list[str]) -> dict[str, str]:
    """``--dest`` -> the flag this command spells it with, where they differ (``search``: ``--epochs`` is ``--supernet-epochs``),
    so a message naming an option by its library name names the flag the user can type."""
    out: dict[str, str] = {}
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(sub for name, sub in action.choices.items() if name in argv)
            elif action.option_strings and action.dest != argparse.SUPPRESS:
                default = f"--{action.dest.replace('_', '-')}"
                if default not in action.option_strings:
                    out[default] = max(action.option_strings, key=len)
    return out


def _in_flags(message: str, flags: dict[str, str]) -> str:
    return re.sub(r"(?<![\w-])--[a-z][a-z0-9-]*", lambda m: flags.get(m.group(0), m.group(0)), message)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    cli_mode(True)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() else None
    try:
        result = args.func(args)
    except NascompError as e:
        print(f"error: {_in_flags(str(e), _own_flags(parser, argv))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (KeyboardInterrupt, Terminated) as e:
        name, code = ("SIGTERM", 143) if isinstance(e, Terminated) else ("Ctrl-C", 130)
        hint = "rerun the same command with --resume to continue" if hasattr(args, "resume") else "nothing half-written was left"
        print(f"interrupted ({name}); {hint}", file=sys.stderr)
        return code
    finally:
        cli_mode(False)  # a Python caller of main() in the same process goes back to argument names
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
