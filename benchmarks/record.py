"""The header every benchmark result starts with: when, on what and by which command it was measured, and the load."""

from __future__ import annotations

import datetime as dt
import shlex
import sys

from nascomp.profiling.host import host_facts, load_average

MACHINE = "2-core x86 CPU VM, shared with other jobs"


def run_header() -> dict:
    """Date (UTC), machine, the command line, host facts and the load average at the start."""
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": MACHINE,
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "host": host_facts(),
        "load_average_start": load_average(),
    }
