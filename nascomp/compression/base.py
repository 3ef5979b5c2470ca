"""What a compression method is: it turns a trained model into a smaller student, which is then distilled.

Two kinds of method chain together (``shrink,int8``): a *student* method (`CompressionMethod`: minivit,
drop-blocks, shrink, torch-pruning) makes a smaller model that is trained by distillation; a *deployment* method
(int8) turns the trained model into a file for a runtime and measures it there (``kind = "deploy"``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nascomp.core.checks import main_process
from nascomp.core.errors import NascompError
from nascomp.core.runlog import RunLogger, make_logger

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Student", "CompressionMethod", "CompressContext", "CompressResult", "log_result"]


@dataclass
class Student:
    """The compressed structure before training: the module, the spec that rebuilds it, and what was done."""

    model: nn.Module
    spec: dict
    structure: dict = field(default_factory=dict)


@dataclass
class CompressContext:
    """What a method may need besides the model: the dataset (loaded on first use), and the run's settings."""

    dry_run: bool = False
    seed: int = 0
    quiet: bool = True
    device: str | None = None
    loader: Callable[[], object] | None = None
    _bundle: object = None

    def data(self):
        """The run's `DataBundle` (loaded once; a method that needs data fails clearly without it)."""
        if self._bundle is None:
            if self.loader is None:
                raise NascompError("this compression method needs the training data (--data)")
            self._bundle = self.loader()
        return self._bundle


class CompressionMethod:
    """One compression method. ``make_student`` changes ``base`` (a copy of the trained model, or a freshly
    initialised one) in place into the student; ``spec`` is the trained model's spec. ``check`` validates the
    options against the model before any work; ``needs_data`` methods read data through ``context`` (calibration,
    scoring)."""

    name = "base"
    kind = "student"
    needs_data = False

    def check(self, base: nn.Module, options: dict) -> None:
        """Raise `NascompError` if the options cannot work on ``base`` (called before data is loaded)."""

    def make_student(self, base: nn.Module, spec: dict, options: dict, context: CompressContext | None = None) -> Student:
        raise NotImplementedError


@dataclass
class CompressResult:
    """What compression did (``summary``: params and MACs before and after, the structure, the distillation) and,
    unless it was a dry run, the result: the trained student (``model``, its run directory ``out`` and ``metrics``),
    the int8 file of its runtime (``onnx`` for ONNX Runtime, ``pte`` for ExecuTorch) with its accuracy and latency measured in that
    runtime in ``metrics["int8"]``, and for ``auto`` the comparison ``table`` (one row per method, chain and runtime)."""

    summary: dict
    model: nn.Module
    out: Path | None = None
    metrics: dict | None = None
    onnx: Path | None = None
    table: list[dict] | None = None
    pte: Path | None = None

    @property
    def test_top1(self) -> float | None:
        metrics = self.metrics or {}
        return (metrics.get("int8") or metrics).get("test", {}).get("top1")

    @property
    def latency_ms(self) -> float | None:
        """Median latency measured on the target: of the int8 file after int8, else of the fp32 model (latency budgets), in
        the run's runtime."""
        metrics = self.metrics or {}
        report = (metrics.get("int8") or {}).get("latency") or metrics.get("latency")
        return report["latency_ms"] if report else None


def log_result(logger: str | RunLogger | None, out: Path, rows: dict | list[dict], step: int) -> None:
    """Result row(s) in the run's log at ``step`` (where training ended): numbers as ``compress/...`` scalars (several rows:
    row i at step + i) and the rows as the table ``compress/result``. A rerun replaces them, never logs them twice."""
    rows = [rows] if isinstance(rows, dict) else rows
    log = make_logger(logger, out, run_name=out.name, rank=0 if main_process() else 1, resume=True, resume_step=step)
    with contextlib.nullcontext() if isinstance(logger, RunLogger) else log:  # a caller's logger stays open
        for i, row in enumerate(rows):
            log.scalars({f"compress/{k}": v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}, step + i)
        log.table("compress/result", rows, step)
