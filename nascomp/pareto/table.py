"""Result tables for Pareto analysis: rows from CSV/JSON/JSONL files or run directories, with objectives picked out."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nascomp.core.errors import NascompError
from nascomp.pareto.front import front_indices, hypervolume, objective_sense

__all__ = ["RUN_DIR_FILES", "load_rows", "Table"]

RUN_DIR_FILES = ("pareto.csv", "results.csv", "candidates.csv", "candidates.jsonl", "results.jsonl", "history.jsonl", "population.jsonl")


def _flatten(record: dict, prefix: str = "") -> dict:
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        elif not isinstance(value, list):
            out[name] = value
    return out


def _number(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text) if text else None
        except ValueError:
            return value
    return value


def _read_file(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="") as f:
                return [{k: _number(v) for k, v in row.items() if k} for row in csv.DictReader(f)]
        if suffix == ".jsonl":
            rows = []
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if line.strip():
                    try:
                        rows.append(_flatten(json.loads(line)))
                    except json.JSONDecodeError as e:
                        raise NascompError(f"cannot read {path}: line {number} is not JSON ({e.msg} at column {e.colno})") from None
            return rows
        if suffix == ".json":
            doc = json.loads(path.read_text())
            if isinstance(doc, list):
                return [_flatten(r) for r in doc if isinstance(r, dict)]
            for key in ("rows", "candidates", "results", "front"):
                if isinstance(doc.get(key), list):
                    return [_flatten(r) for r in doc[key] if isinstance(r, dict)]
            return [_flatten(doc)]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, csv.Error) as e:
        raise NascompError(f"cannot read {path}: {e}") from None
    raise NascompError(f"{path}: expected a .csv, .json or .jsonl file")


def load_rows(source: str | os.PathLike) -> list[dict]:
    """Rows from a CSV/JSON/JSONL file, or from a run directory (first of RUN_DIR_FILES; else its profile JSONs)."""
    path = Path(source)
    if path.is_file():
        return _read_file(path)
    if not path.is_dir():
        raise NascompError(f"{source} not found: give a CSV/JSON/JSONL file or a run directory")
    for name in RUN_DIR_FILES:
        if (path / name).is_file():
            return _read_file(path / name)
    rows: list[dict] = []
    for f in sorted(path.glob("*.json")):
        rows.extend(r for r in _read_file(f) if "latency_ms" in r or "top1" in r)
    if rows:
        return rows
    raise NascompError(f"{source} holds none of {', '.join(RUN_DIR_FILES)} nor profile JSON files (`nascomp profile --out`)")


@dataclass
class Table:
    """The rows that have every objective, their objective matrix and senses."""

    rows: list[dict]
    columns: list[str]
    senses: list[str]
    values: np.ndarray
    dropped: int = 0

    @classmethod
    def from_rows(cls, rows: Iterable[dict], columns: Sequence[str], senses: Sequence[str] | None = None) -> Table:
        rows = list(rows)
        if not rows:
            raise NascompError("the input has no rows")
        missing = [c for c in columns if all(c not in r for r in rows)]
        if missing:
            raise NascompError(f"column(s) {missing} not in the input; available: {', '.join(sorted({k for r in rows for k in r}))}")
        kept = [r for r in rows if all(isinstance(r.get(c), (int, float)) and math.isfinite(r[c]) for c in columns)]
        if not kept:
            raise NascompError(f"no row has numeric values for all of {list(columns)}")
        senses = list(senses) if senses else [objective_sense(c) for c in columns]
        values = np.array([[float(r[c]) for c in columns] for r in kept])
        return cls(kept, list(columns), senses, values, dropped=len(rows) - len(kept))

    def front(self) -> list[int]:
        return front_indices(self.values, self.senses)

    def hypervolume(self, reference: Sequence[float] | None = None) -> float:
        return hypervolume(self.values, self.senses, reference)


# ---------------------------------------------------------------------------------------------- plotting
