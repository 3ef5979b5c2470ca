"""Sections every kind of report shares: training curves, TensorBoard scalars, time per stage, warnings, what is missing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nascomp.core.errors import NascompError
from nascomp.report import fmt, svg
from nascomp.report.html import Column, Html, Section, figure, table

__all__ = ["Content", "training_curves", "tensorboard_curves", "timing", "MAX_POINTS"]

MAX_POINTS = 400  # per curve: a long run's TensorBoard scalars are thinned to this many points for the page


@dataclass
class Content:
    """What one kind of run contributes to its page."""

    title: str
    subtitle: str
    sections: list[Section] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


_YES_NO: dict[Any, str] = {True: "yes", False: "no"}


def training_curves(histories: Sequence[tuple[str, list[dict] | None]]) -> Html | None:
    """Loss and validation top-1 per epoch of ``fit`` histories (``metrics.json["history"]``), one line per run."""
    runs = [(name, h) for name, h in histories if h]
    if not runs:
        return None
    charts = []
    for key, ylabel in (("train_loss", "training loss"), ("val_top1", "validation top-1 (%)"), ("val_loss", "validation loss")):
        series = [
            svg.Series(
                name,
                [(r["epoch"], r[key]) for r in h if r.get(key) is not None],
                [f"{name}, epoch {r['epoch']}: {ylabel} {r[key]:.4g}" for r in h if r.get(key) is not None],
            )
            for name, h in runs
        ]
        series = [s for s in series if s.points]
        if series:
            charts.append(
                figure(svg.line_chart(series, xlabel="epoch", ylabel=ylabel, label=f"{ylabel} per epoch", height=250, width=svg.THIRD))
            )
    return Html('<div class="grid3">' + "".join(charts) + "</div>")


def _thinned(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    if len(points) <= MAX_POINTS:
        return points
    stride = -(-len(points) // MAX_POINTS)
    return points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])


def tensorboard_curves(run_dir: Path, warnings: list[str]) -> Html | None:
    """A chart per scalar tag of the run's TensorBoard event files (``RUN_DIR/tb``), when there are any."""
    from nascomp.core.runlog import read_scalars

    try:
        scalars = read_scalars(run_dir)
    except NascompError as e:
        warnings.append(str(e))
        return None
    if not scalars:
        return None
    charts = []
    for tag, points in scalars.items():
        if len(points) < 2:  # a value, not a curve (e.g. a compression run's result row): its tables show it
            continue
        shown = _thinned(points)
        series = svg.Series(tag, shown, [f"{tag} at step {s}: {v:.5g}" for s, v in shown])
        charts.append(
            figure(
                svg.line_chart([series], xlabel="step", ylabel=tag, label=f"{tag} (TensorBoard)", height=240, width=svg.HALF),
                f"{tag}: {len(points)} points" + (f", {len(shown)} shown" if len(shown) < len(points) else ""),
            )
        )
    return Html('<div class="grid2">' + "".join(charts) + "</div>") if charts else None


def timing(stages: dict[str, dict], warnings: list[str]) -> Html:
    """Wall and CPU time per stage (``timings.json["stages"]``), as bars and a table."""
    for name, rec in stages.items():
        if rec.get("finished") is False:
            warnings.append(f"stage {name} did not finish in its last session ({rec.get('sessions', '?')} session(s) so far)")
    wall = sum(r.get("wall_s", 0.0) for r in stages.values())
    cpu = sum(r.get("cpu_s", 0.0) for r in stages.values())
    longest = max(max(r.get("wall_s", 0.0), r.get("cpu_s", 0.0)) for r in stages.values())
    unit, scale = ("hours", 3600) if longest > 3 * 3600 else ("minutes", 60) if longest > 180 else ("seconds", 1)
    bars = [
        svg.Bar(
            name,
            r.get("wall_s", 0.0) / scale,
            r.get("cpu_s", 0.0) / scale,
            f"{name}: {fmt.duration(r.get('wall_s'))} wall, {fmt.duration(r.get('cpu_s'))} CPU",
        )
        for name, r in stages.items()
    ]
    chart = svg.bar_chart(bars, xlabel=unit, label="wall and CPU time per stage", legend=("wall", "CPU (all threads)"))
    rows = [
        {
            "stage": name,
            "wall_s": r.get("wall_s"),
            "cpu_s": r.get("cpu_s"),
            "sessions": r.get("sessions"),
            "finished": _YES_NO.get(r.get("finished")),
        }
        for name, r in stages.items()
    ]
    columns = [
        Column("stage", "stage"),
        Column("wall_s", "wall", fmt.duration, numeric=True),
        Column("cpu_s", "CPU", fmt.duration, numeric=True),
        Column("sessions", "sessions", numeric=True, tip="sessions that worked on the stage (a resumed stage has more than one)"),
        Column("finished", "finished"),
    ]
    summary = Html(
        f"<p>{len(stages)} stages took <b>{fmt.duration(wall)}</b> wall and {fmt.duration(cpu)} CPU "
        "(process time, all threads) in the sessions that ran them.</p>"
    )
    return Html(summary + figure(chart) + table(columns, rows, name="timings"))
