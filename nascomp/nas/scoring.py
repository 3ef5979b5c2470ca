"""Inherited-weight validation accuracy of candidate archs, memoised on disk so an interrupted search resumes.

Everything search measures about a candidate comes from here: `SupernetScorer.score(archs)` switches
the supernet to each arch (no rebuild) and runs the validation images through it
(`nascomp.nas.supernet.evaluate_archs`). The images are decoded once per scorer, not once per call
(`nascomp.data.DecodedEvalSet`; pass ``images`` to share them between scorers of the same split). The
validation split is fixed (`nascomp.data`); search never sees the test set.

Why a memo file: the same supernet weights always give the same score to the same arch, so a scorer
with a ``memo`` path appends every score to a JSON-lines file and a resumed run reads them back
instead of re-evaluating. Search algorithms stay pure functions of their seed and these scores, so
replaying them over the memo reproduces an uninterrupted run exactly. A line cut short by a kill is
ignored.

Under ``torchrun`` every rank scores a share of the candidates and the results are all-gathered, so
all ranks take the same decisions; only rank 0 reads and writes the memo, and gives what it read to the others
(scorers are made at the same points on every rank).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from nascomp.core.distributed import DistInfo
from nascomp.data import DecodedEvalSet
from nascomp.nas.supernet import Supernet, evaluate_archs
from nascomp.spaces import Arch

__all__ = ["SupernetScorer", "read_memo"]


def _key(arch: Arch) -> str:
    d = arch.to_dict()
    d.pop("name", None)
    return json.dumps(d, sort_keys=True)


def read_memo(path: str | Path) -> dict[str, dict]:
    """Scores stored in a memo file, by arch key (unreadable trailing lines from a kill are skipped)."""
    out: dict[str, dict] = {}
    path = Path(path)
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
            out[_key(Arch.from_dict(row["arch"]))] = row["score"]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return out


def _drop_torn_line(path: Path) -> None:
    """Cut a last line that a kill left without its newline, so appended lines start on a line of their own."""
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)


class SupernetScorer:
    """Top-1 / top-5 / loss of archs with the supernet's weights on a fixed evaluation set."""

    def __init__(
        self,
        supernet: Supernet,
        dataset,
        transform,
        *,
        batch_size: int = 256,
        device: str | torch.device | None = None,
        memo: str | Path | None = None,
        dist: DistInfo | None = None,
        quiet: bool = True,
        workers: int | None = None,
        images: DecodedEvalSet | None = None,
    ):
        self.supernet = supernet
        self.dataset, self.transform = dataset, transform
        self.images = images  # decoded on the first call that runs an arch
        self.batch_size, self.device, self.quiet, self.workers = batch_size, device, quiet, workers
        self.dist = dist or DistInfo()
        self.memo = Path(memo) if memo else None
        if self.memo and self.dist.is_main:
            _drop_torn_line(self.memo)
        self._scores = read_memo(self.memo) if self.memo and self.dist.is_main else {}
        if self.memo and self.dist.enabled:
            # every rank starts from rank 0's reading: read on its own, a rank may find the file before rank 0 has appended
            # the last scores, then ask for other archs than rank 0 and take another share of the work (a missing score)
            shared = [self._scores]
            torch.distributed.broadcast_object_list(shared, src=0)
            self._scores = shared[0]
        self.evaluated = 0  # archs actually run (not read from the memo)

    @classmethod
    def of_images(
        cls, supernet: Supernet, images: DecodedEvalSet, *, memo: str | Path | None = None, dist: DistInfo | None = None, quiet: bool = True
    ) -> SupernetScorer:
        """A scorer on already decoded images (their split, transform, batch size, device and workers)."""
        return cls(
            supernet,
            images.dataset,
            images.transform,
            batch_size=images.batch_size,
            device=images.device,
            memo=memo,
            dist=dist,
            quiet=quiet,
            workers=images.workers,
            images=images,
        )

    def __len__(self) -> int:
        return len(self._scores)

    def score(self, archs: Iterable[Arch]) -> list[dict]:
        """Scores of ``archs`` in order; only archs not seen before are run, all of them in one batch."""
        archs = list(archs)
        todo: dict[str, Arch] = {}
        for a in archs:
            k = _key(a)
            if k not in self._scores and k not in todo:
                todo[k] = a
        if todo:
            keys = list(todo)
            mine = keys[self.dist.rank :: self.dist.world_size]
            if self.images is None:
                device = self.device or next(self.supernet.parameters()).device
                self.images = DecodedEvalSet(self.dataset, self.transform, batch_size=self.batch_size, device=device, workers=self.workers)
            results = evaluate_archs(
                self.supernet,
                [todo[k] for k in mine],
                self.dataset,
                self.transform,
                quiet=self.quiet,
                device=self.images.device,
                images=self.images,
            )
            new = dict(zip(mine, results))
            if self.dist.enabled:
                gathered: list = [None] * self.dist.world_size
                torch.distributed.all_gather_object(gathered, new)
                new = {k: v for part in gathered for k, v in part.items()}
            self.evaluated += len(mine)
            self._scores.update(new)
            if self.memo and self.dist.is_main:
                self._append([(todo[k], new[k]) for k in keys])
        return [dict(self._scores[_key(a)]) for a in archs]

    def _append(self, rows: Sequence[tuple[Arch, dict]]) -> None:
        assert self.memo is not None  # called only when scores are memoised
        self.memo.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps({"arch": a.to_dict(), "score": s}) + "\n" for a, s in rows)
        with open(self.memo, "a") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
