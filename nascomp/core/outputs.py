"""Run directories: never write over another run, a saved model or the command's own input, and one writer at a time.

Every command that writes ``--out`` checks it with `claim_output` before any work starts:

- a folder that holds another nascomp run or a saved model is refused in one line, unless the user resumes it
  (``resume``) or replaces it (``overwrite``: its files are removed when the work starts, never before);
- the command's own input (a saved model, a teacher, a checkpoint's folder, a data folder) is refused even with
  ``overwrite``: writing there would destroy what the run reads;
- ``resume`` where there is nothing to resume says so, instead of silently starting afresh;
- a folder with files nascomp did not write is refused (nascomp never deletes them).

`output_lock` then holds an exclusive ``flock`` on ``OUT/.nascomp.lock`` for the run, so a second process pointed at the
same ``--out`` stops with one line naming the first one instead of interleaving writes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nascomp.core.errors import NascompError
from nascomp.core.validate import output_dir

__all__ = ["LOCK_FILE", "holds", "OutputClaim", "claim_output", "output_lock"]

LOCK_FILE = ".nascomp.lock"
# files whose presence says what a folder holds (the first match names it)
_MARKERS = (
    ("run.json", "a search run"),
    ("table.json", "a compression comparison (--method auto)"),
    ("export.json", "an ExecuTorch export"),
    ("model.json", "a saved model"),
    ("checkpoints", "a training run (checkpoints)"),
    ("metrics.json", "a finished run (metrics.json)"),
    ("int8.json", "an int8 deployment"),
)


def holds(path: str | os.PathLike) -> str | None:
    """What a folder holds in a user's words (``"a saved model"``...), ``None`` when it is absent or empty."""
    path = Path(path)
    if not path.is_dir():
        return None
    names = {p.name for p in path.iterdir()} - {LOCK_FILE}
    if not names:
        return None
    for marker, what in _MARKERS:
        if marker in names:
            return what
    return "files nascomp did not write"


@dataclass
class OutputClaim:
    """A checked output folder: ``replace`` when its previous run is to be removed as the work starts (`output_lock` does it)."""

    path: Path
    previous: str | None
    replace: bool = False
    resume: bool = False


def _same_or_inside(inner: Path, outer: Path) -> bool:
    try:
        inner.resolve().relative_to(outer.resolve())
        return True
    except ValueError:
        return False


def claim_output(
    path: str | os.PathLike | None,
    name: str = "--out",
    *,
    resume: bool = False,
    overwrite: bool = False,
    inputs: Iterable[object] = (),
    resumable: tuple[str, ...] = (),
) -> OutputClaim | None:
    """Check ``path`` before any work (see the module docstring); ``resumable`` names what ``resume`` may continue
    (e.g. ``("a training run (checkpoints)", "a finished run (metrics.json)", "a saved model")``; empty: anything nascomp wrote)."""
    if path is None:
        return None
    folder = output_dir(path, name)
    assert folder is not None  # output_dir returns None only for None
    for given in inputs:
        if isinstance(given, (str, os.PathLike)) and str(given) and Path(given).exists() and _same_or_inside(Path(given), folder):
            raise NascompError(
                f"{name} {folder} is where this command reads {given} from; writing there would destroy it. Choose another folder"
            )
    previous = holds(folder)
    if resume and overwrite:
        raise NascompError(f"{name}: resume continues a run and overwrite replaces it; choose one")
    if resume:
        if previous is None:
            raise NascompError(f"{name} {folder} holds no run to resume; drop --resume to start one there")
        if previous == "files nascomp did not write" or (resumable and previous not in resumable):
            raise NascompError(f"{name} {folder} holds {previous}, not a run this command can resume; choose the run's own folder")
        return OutputClaim(folder, previous, resume=True)
    if previous is None:
        return OutputClaim(folder, None)
    if previous == "files nascomp did not write":
        raise NascompError(f"{name} {folder} holds files nascomp did not write; choose an empty or new folder (nascomp never deletes them)")
    if not overwrite:
        raise NascompError(
            f"{name} {folder} already holds {previous}; choose a new folder, add --resume to continue it, or --overwrite to replace it"
        )
    return OutputClaim(folder, previous, replace=True)


@contextlib.contextmanager
def output_lock(claim: OutputClaim | None, main: bool = True) -> Iterator[None]:
    """Hold ``OUT/.nascomp.lock`` exclusively for the block (the main process only), replacing a previous run first when the
    claim says so. A second writer fails at once, naming the first."""
    if claim is None or not main:
        yield
        return
    claim.path.mkdir(parents=True, exist_ok=True)
    lock = claim.path / LOCK_FILE
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise NascompError(
                f"another nascomp process (pid {owner}) is writing {claim.path}; wait for it to finish or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        if claim.replace:
            for child in claim.path.iterdir():
                if child.name != LOCK_FILE:
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            claim.replace = False
        yield
    finally:  # the file stays (unlinking it would let a waiting writer lock an orphan while a third locks a new file)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
