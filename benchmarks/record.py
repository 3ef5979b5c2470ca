"""The header every benchmark result starts with: when, on what and by which command it was measured, and the load."""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

from nascomp.profiling.host import host_facts, load_average

MACHINE = "2-core x86 CPU VM, shared with other jobs"
ROOT = Path(__file__).resolve().parents[1]


def portable(value):
    """``value`` (a string, or lists/dicts of them) with no machine paths: the repository root dropped (paths become
    repository-relative), the temporary folder written ``<tmp>`` and the home folder ``~``. Every recorded result
    (benchmarks/results, experiments) goes through this; tests/test_records.py checks that none has an absolute path."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(portable(v) for v in value)
    if not isinstance(value, str):
        return value
    for prefix, short in (
        (str(ROOT), ""),
        (os.path.realpath(tempfile.gettempdir()), "<tmp>"),
        (tempfile.gettempdir(), "<tmp>"),
        (os.path.expanduser("~"), "~"),
    ):
        if prefix and prefix != "/":
            # re.sub calls the lambda before the loop moves on, so the late binding of `short` is what is wanted
            value = re.sub(
                re.escape(prefix) + r"(/|(?=[\s'\"]|$))",
                lambda m: (short + m[1]) if short else ("" if m[1] else "."),  # noqa: B023
                value,
            )
    return value


def run_header() -> dict:
    """Date (UTC), machine, the command line, host facts and the load average at the start."""
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": MACHINE,
        "command": portable("python " + " ".join(shlex.quote(a) for a in sys.argv)),
        "host": host_facts(),
        "load_average_start": load_average(),
    }
