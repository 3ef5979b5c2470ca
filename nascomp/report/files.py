"""The files of one run, read tolerantly: a file that is not there is noted with what it would have shown.

Run directories of nascomp 0.1 / 0.2 lack some files (timings, the stand-alone comparison, versions); the report
renders what exists and lists the rest under "Not available". A file that exists but is not valid JSON is an
error (`NascompError`): the run is damaged, and a report that silently skipped it would mislead.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

__all__ = ["RunFiles", "natural_key", "core_io"]


def natural_key(path: Path) -> list:
    """``step-10`` after ``step-9``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def core_io():
    """`nascomp.core.io`, imported on use: it loads torch, which ``import nascomp.report`` must not."""
    from nascomp.core import io

    return io


class RunFiles:
    def __init__(self, root: Path):
        self.root = root
        self.missing: list[str] = []  # "FILE: what it would have shown"

    def lack(self, rel: str, shows: str) -> None:
        self.missing.append(f"{rel}: {shows}")

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def json(self, rel: str, shows: str) -> Any | None:
        path = self.root / rel
        if not path.is_file():
            self.lack(rel, shows)
            return None
        return core_io().read_json(path)

    def csv(self, rel: str, shows: str) -> list[dict] | None:
        path = self.root / rel
        if not path.is_file():
            self.lack(rel, shows)
            return None
        with path.open(newline="") as f:
            return list(csv.DictReader(f))

    def each_json(self, pattern: str, shows: str) -> list[Any]:
        """Every file matching ``pattern`` in natural order; none: noted as missing."""
        paths = sorted(self.root.glob(pattern), key=natural_key)
        if not paths:
            self.lack(pattern, shows)
        return [core_io().read_json(p) for p in paths]
