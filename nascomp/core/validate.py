"""Checks of what a user passes, made before any work starts, and output folders that vanish when a run fails.

Every public function validates its paths and numbers with these helpers first, so the Python API and the
CLI (a thin client of it) fail the same way: one `NascompError` naming the option and the fix, nothing written.
``name`` is the option as the CLI spells it (``--epochs``); API users see the same words.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nascomp.core.errors import NascompError, ResumableError

__all__ = ["positive", "non_negative", "fraction", "duration", "output_dir", "output_file", "removed_on_failure"]


def _number(name: str, value, integer: bool) -> float:
    # an integer option takes an integer type: 1.0 epochs would pass a value check and fail deep inside range()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (integer and not isinstance(value, numbers.Integral)):
        raise NascompError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not math.isfinite(value):
        raise NascompError(f"{name} must be finite, got {value!r}")
    return value  # type: ignore[return-value]  # a numbers.Real that is not a bool: int, float or a numpy scalar


def positive(name: str, value, integer: bool = True):
    """``value`` if it is > 0 (``None`` passes: the default applies)."""
    if value is not None and _number(name, value, integer) <= 0:
        raise NascompError(f"{name} must be positive, got {value!r}")
    return value


def non_negative(name: str, value, integer: bool = True):
    """``value`` if it is >= 0 (``None`` passes)."""
    if value is not None and _number(name, value, integer) < 0:
        raise NascompError(f"{name} must be 0 or more, got {value!r}")
    return value


def fraction(name: str, value, low_open: bool = True, high_open: bool = True):
    """``value`` if it lies in (0, 1) (ends included where not open; ``None`` passes)."""
    if value is None:
        return value
    v = _number(name, value, integer=False)
    if (v <= 0 if low_open else v < 0) or (v >= 1 if high_open else v > 1):
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise NascompError(f"{name} must lie in {lo}0, 1{hi}, got {value!r}")
    return value


_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def duration(name: str, value) -> float | None:
    """Seconds from ``90s``, ``30m``, ``2h``, ``1.5h`` or a plain number of seconds (``None`` passes)."""
    if value is None:
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", value.lower())
        if not match:
            raise NascompError(f"{name} must be a duration such as 90s, 30m or 2h, got {value!r}")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
        if seconds <= 0:
            raise NascompError(f"{name} must be positive, got {value!r}")
        return seconds
    positive(name, value, integer=False)
    return float(value)


def _blocking_file(path: Path) -> Path | None:
    """The first existing non-directory among ``path`` and its parents, which makes ``path`` impossible."""
    for p in (path, *path.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def output_dir(path: str | os.PathLike | None, name: str = "--out") -> Path | None:
    """A folder nascomp may create and write: not a file, not below a file, writable where it exists.

    Nothing is created here; `removed_on_failure` creates it when the work starts.
    """
    if path is None:
        return None
    path = Path(path)
    if str(path).strip() == "":
        raise NascompError(f"{name} is empty; give a folder path")
    if path.exists() and not path.is_dir():
        raise NascompError(f"{name} {path} is a file, not a folder; choose a folder path")
    blocker = _blocking_file(path)
    if blocker is not None:
        raise NascompError(f"{name} {path} cannot be created: {blocker} is a file; choose a folder path elsewhere")
    existing = _first_existing(path)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise NascompError(f"{name} {path}: {existing} is not writable; choose another folder")
    try:  # permissions are not the whole story (/proc, read-only mounts, full quotas): try it, leaving nothing behind
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".nascomp-probe-"))
    except OSError as e:
        raise NascompError(f"{name} {path}: cannot create folders in {existing} ({e.strerror}); choose another folder") from None
    return path


def _first_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if p.exists():
            return p
    return Path.cwd()


def output_file(path: str | os.PathLike | None, name: str = "--out") -> Path | None:
    """A file nascomp may write: not a folder, its folder creatable and writable."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise NascompError(f"{name} {path} is a folder; give a file path")
    output_dir(path.parent, name)
    return path


@contextlib.contextmanager
def removed_on_failure(path: str | os.PathLike | None) -> Iterator[Path | None]:
    """Create the output folder ``path``; if the work inside fails, remove it again when this call created it.

    A folder that existed before (a resumed run) is left as it is; an interrupt (Ctrl-C, a kill) or a full disk
    (`ResumableError`) leaves the folder too, so the run can be resumed.
    """
    if path is None:
        yield None
        return
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except ResumableError:
        raise
    except Exception:
        if missing:  # the topmost folder this call created, with everything below it
            shutil.rmtree(missing[-1], ignore_errors=True)
        raise
