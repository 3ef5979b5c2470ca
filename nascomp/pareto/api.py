"""`pareto_front`: the non-dominated rows of a result table, their hypervolume and a plot."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nascomp.core.errors import NascompError
from nascomp.core.validate import output_file
from nascomp.pareto.front import default_reference, objective_sense
from nascomp.pareto.plot import label_text, plot_front
from nascomp.pareto.table import Table, load_rows

__all__ = ["ParetoResult", "pareto_front"]


@dataclass
class ParetoResult:
    """The front (rows with their label and objective values), its hypervolume and the plots written."""

    table: Table
    objectives: list[tuple[str, str]]
    front: list[dict]
    hypervolume: float
    reference: list[float]
    plots: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "objectives": [{"column": c, "sense": s} for c, s in self.objectives],
            "points": len(self.table.rows),
            "dropped_rows_missing_values": self.table.dropped,
            "front": self.front,
            "hypervolume": self.hypervolume,
            "reference": self.reference,
            "plots": [str(p) for p in self.plots],
        }


def _filtered(rows: list[dict], filters: Mapping[str, object]) -> list[dict]:
    for col, value in filters.items():
        rows = [r for r in rows if r.get(col) == value or str(r.get(col)) == str(value)]
    return rows


def pareto_front(
    source: str | os.PathLike | Sequence[Mapping],
    x: str = "latency_ms",
    y: str = "top1",
    *,
    objectives: Sequence[str] = (),
    maximize: Sequence[str] = (),
    minimize: Sequence[str] = (),
    filters: Mapping[str, object] | None = None,
    reference: Sequence[float] | None = None,
    plot: str | os.PathLike | Literal[False] | None = None,
    label: str | None = None,
    group: str | None = None,
    title: str | None = None,
    protocol: str | None = None,
    log_x: bool = False,
    xlabel: str | None = None,
    ylabel: str | None = None,
    label_dominated: bool | None = None,
    size: str | None = None,
) -> ParetoResult:
    """The Pareto front of a result table over ``x``, ``y`` and further ``objectives``.

    Args:
        source: a CSV/JSON/JSONL file, a run directory (its candidates/results file), or a list of row dicts.
        x: the first objective column. Names that look like accuracy (top1, acc...) are maximised,
            the rest (latency, energy, MACs, params) minimised, unless listed in ``maximize`` / ``minimize``.
        y: the second objective column.
        objectives: further objective columns.
        filters: keep rows whose column equals the value.
        reference: the hypervolume reference point, one value per objective (default: worst + 10 % of the range).
        plot: the PNG to write (an SVG is written beside it); default the source folder's ``pareto.png`` for a
            file or folder, none for rows; ``False``: no plot.
        label: plot appearance: the column naming each point.
        group: plot appearance: the column that colours the points.
        title: plot appearance: the title.
        protocol: plot appearance: the measurement protocol printed under the plot.
        log_x: plot appearance: a logarithmic x axis.
        xlabel: plot appearance: the x axis label.
        ylabel: plot appearance: the y axis label.
        label_dominated: plot appearance: also label dominated points (default: when there are at most 16 points).
        size: a column that scales the points' areas.

    Returns:
        `ParetoResult` (front rows, hypervolume, reference, plot paths).
    """
    columns = [x, y, *objectives]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise NascompError(f"objective column(s) {repeated} given twice; each objective is one column (--x, --y, --objective)")
    clash = set(maximize) & set(minimize)
    if clash:
        raise NascompError(f"{sorted(clash)} cannot be both maximised and minimised")
    senses = ["max" if c in maximize else "min" if c in minimize else objective_sense(c) for c in columns]
    if plot is None and isinstance(source, (str, os.PathLike)):
        src = Path(source)
        plot = (src if src.is_dir() else src.parent) / "pareto.png"
    plot_path = output_file(plot, "--out") if plot else None
    rows = load_rows(source) if isinstance(source, (str, os.PathLike)) else [dict(r) for r in source]
    table = Table.from_rows(_filtered(rows, filters or {}), columns, senses)
    if reference is not None and len(reference) != len(columns):
        raise NascompError(f"the reference point needs {len(columns)} values, one per objective {columns}")
    if log_x and any(v <= 0 for v in table.values[:, 0]):
        raise NascompError(f"--log-x needs positive values of {x}; the smallest is {min(table.values[:, 0]):g}")
    ref = [float(v) for v in (reference if reference is not None else default_reference(table.values, senses))]  # plain floats: they print
    label = label or next((c for c in ("model", "name", "id", "rank") if any(c in r for r in table.rows)), None)
    if protocol is None:
        values = {r.get("protocol") for r in table.rows if r.get("protocol")}
        protocol = values.pop() if len(values) == 1 else None
    paths: list[Path] = []
    if plot_path is not None:
        paths = plot_front(
            table,
            plot_path,
            label=label,
            group=group,
            title=title,
            protocol=protocol,
            log_x=log_x,
            xlabel=xlabel,
            ylabel=ylabel,
            label_dominated=label_dominated,
            size=size,
        )
    front = [
        {**({label: label_text(table.rows[i].get(label))} if label else {}), **{c: table.rows[i][c] for c in columns}}
        for i in table.front()
    ]
    return ParetoResult(table, list(zip(columns, senses)), front, table.hypervolume(ref), ref, [Path(p) for p in paths])
