"""The `nascomp` command line, a thin client of the Python API: one module per sub-command (see `main`)."""

from nascomp.cli.main import main

__all__ = ["main"]
