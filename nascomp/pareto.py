"""Pareto fronts: non-dominated sorting, hypervolume, loading result tables, and publication-ready plots.

Objectives are columns with a sense: minimise (latency, energy, MACs, params) or maximise
(accuracy). `objective_sense` guesses the sense from the column name; callers can override it.
Hypervolume is computed exactly (slicing over objectives) after turning every objective into one
to minimise, so it works for any number of objectives; it is meant for the small sets a search
front or a model zoo produces (tens to a few hundred points).
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from nascomp.errors import NascompError

__all__ = [
    "objective_sense",
    "dominates",
    "non_dominated_sort",
    "pareto_front",
    "hypervolume",
    "default_reference",
    "load_rows",
    "Table",
    "axis_label",
    "label_text",
    "plot_front",
    "RUN_DIR_FILES",
]

_MAXIMISE_HINTS = ("top1", "top5", "acc", "accuracy", "map", "miou", "score", "fps", "throughput", "hypervolume")


def objective_sense(column: str) -> str:
    """'max' for accuracy-like columns (top1, acc, mAP, fps...), 'min' otherwise (latency, energy, MACs, params)."""
    name = column.lower()
    return "max" if any(h in name for h in _MAXIMISE_HINTS) and "err" not in name else "min"


def _as_minimisation(values: np.ndarray, senses: Sequence[str]) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(senses):
        raise ValueError(f"values must be (n, {len(senses)}), got {values.shape}")
    for s in senses:
        if s not in ("min", "max"):
            raise ValueError(f"sense must be 'min' or 'max', got {s!r}")
    flip = np.array([-1.0 if s == "max" else 1.0 for s in senses])
    return values * flip


def dominates(a: Sequence[float], b: Sequence[float], senses: Sequence[str]) -> bool:
    """a is at least as good as b in every objective and strictly better in one."""
    a_, b_ = _as_minimisation(np.array([a, b]), senses)
    return bool(np.all(a_ <= b_) and np.any(a_ < b_))


def non_dominated_sort(values: np.ndarray, senses: Sequence[str]) -> list[list[int]]:
    """Fronts of indices, best first (Deb et al.'s fast non-dominated sort, O(m n^2)). Duplicates share a front."""
    v = _as_minimisation(values, senses)
    n = len(v)
    if n == 0:
        return []
    le = np.all(v[:, None, :] <= v[None, :, :], axis=2)
    lt = np.any(v[:, None, :] < v[None, :, :], axis=2)
    dom = le & lt  # dom[i, j]: i dominates j
    counts = dom.sum(axis=0)
    fronts, current = [], [i for i in range(n) if counts[i] == 0]
    while current:
        fronts.append(sorted(current))
        nxt = []
        for i in current:
            for j in np.flatnonzero(dom[i]):
                counts[j] -= 1
                if counts[j] == 0:
                    nxt.append(int(j))
        current = nxt
    return fronts


def pareto_front(values: np.ndarray, senses: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, ordered by the first objective (best first)."""
    fronts = non_dominated_sort(values, senses)
    if not fronts:
        return []
    v = _as_minimisation(values, senses)
    return sorted(fronts[0], key=lambda i: tuple(v[i]))


def default_reference(values: np.ndarray, senses: Sequence[str], margin: float = 0.1) -> np.ndarray:
    """The worst value of each objective pushed ``margin`` of its range further out (in the objective's own units)."""
    values = np.asarray(values, dtype=float)
    lo, hi = values.min(axis=0), values.max(axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
    return np.array([hi[k] + margin * span[k] if s == "min" else lo[k] - margin * span[k] for k, s in enumerate(senses)])


def _hv_min(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume of minimisation points strictly better than ``ref`` in every objective."""
    if len(points) == 0:
        return 0.0
    m = points.shape[1]
    if m == 1:
        return float(ref[0] - points[:, 0].min())
    if m == 2:
        pts = points[np.lexsort((points[:, 1], points[:, 0]))]
        volume, best_y = 0.0, ref[1]
        for x, y in pts:
            if y < best_y:
                volume += (ref[0] - x) * (best_y - y)
                best_y = y
        return float(volume)
    pts = points[np.argsort(points[:, -1], kind="stable")]
    volume = 0.0
    for i in range(len(pts)):
        upper = pts[i + 1, -1] if i + 1 < len(pts) else ref[-1]
        depth = upper - pts[i, -1]
        if depth > 0:
            volume += depth * _hv_min(pts[: i + 1, :-1], ref[:-1])
    return float(volume)


def hypervolume(values: np.ndarray, senses: Sequence[str], reference: Sequence[float] | None = None) -> float:
    """Volume of objective space dominated by ``values`` and bounded by ``reference`` (default: `default_reference`).

    Points that do not beat the reference in every objective add nothing.
    """
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return 0.0
    ref = np.asarray(reference if reference is not None else default_reference(values, senses), dtype=float)
    v = _as_minimisation(values, senses)
    r = _as_minimisation(ref[None, :], senses)[0]
    inside = v[np.all(v < r, axis=1)]
    if len(inside) == 0:
        return 0.0
    front = inside[non_dominated_sort(inside, ["min"] * v.shape[1])[0]]
    return _hv_min(front, r)


# ---------------------------------------------------------------------------------------------- tables

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
            return [_flatten(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
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


def load_rows(source: str | Path) -> list[dict]:
    """Rows from a CSV/JSON/JSONL file, or from a run directory (first of RUN_DIR_FILES; else its profile JSONs)."""
    path = Path(source)
    if path.is_file():
        return _read_file(path)
    if not path.is_dir():
        raise NascompError(f"{source} not found: give a CSV/JSON/JSONL file or a run directory")
    for name in RUN_DIR_FILES:
        if (path / name).is_file():
            return _read_file(path / name)
    rows = []
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
    def from_rows(cls, rows: Iterable[dict], columns: Sequence[str], senses: Sequence[str] | None = None) -> "Table":
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
        return pareto_front(self.values, self.senses)

    def hypervolume(self, reference: Sequence[float] | None = None) -> float:
        return hypervolume(self.values, self.senses, reference)


# ---------------------------------------------------------------------------------------------- plotting

_AXIS_LABELS = {
    "latency_ms": "Latency (ms, median)",
    "energy_mj": "Energy per inference (mJ)",
    "top1": "ImageNet-1k top-1 accuracy (%)",
    "top5": "ImageNet-1k top-5 accuracy (%)",
    "params": "Parameters",
    "params_m": "Parameters (M)",
    "macs": "MACs",
    "gmacs": "MACs (G) — what papers call FLOPs",
}


def label_text(value: Any) -> str:
    """How a label cell is printed: 3.0 -> '3' (CSV readers turn ids and ranks into floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def axis_label(column: str) -> str:
    return _AXIS_LABELS.get(column, column.replace("_", " "))


def _staircase(xs: np.ndarray, ys: np.ndarray, x_sense: str, y_sense: str) -> tuple[np.ndarray, np.ndarray]:
    """The boundary of the region the front dominates, as a step line through the front points."""
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    sx, sy = [xs[0]], [ys[0]]
    for i in range(1, len(xs)):
        if x_sense == "min":  # beyond x_i the best reachable y is still y_{i-1} until x_i: step after
            sx += [xs[i], xs[i]]
            sy += [ys[i - 1], ys[i]]
        else:  # better x is larger: the later point's y already holds before it
            sx += [xs[i - 1], xs[i]]
            sy += [ys[i], ys[i]]
    return np.array(sx), np.array(sy)


def _place_labels(ax, fig, items: list[tuple[float, float, str, dict]], markers: np.ndarray, line: np.ndarray) -> None:
    """Greedy label placement: for each point (front first) try positions at growing distances in 8 directions
    and keep the cheapest: overlapping another label costs most, covering a marker less, sitting nearer to
    another labelled point than to its own (which would misattribute it) and crossing the front line least;
    far positions get a leader line back to their point."""
    renderer = fig.canvas.get_renderer()
    axes_box = ax.get_window_extent(renderer)
    marker_px = ax.transData.transform(markers) if len(markers) else np.zeros((0, 2))
    line_px = ax.transData.transform(line) if len(line) else np.zeros((0, 2))
    directions = [(1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1), (0, -1), (1, 0), (-1, 0)]
    candidates = [(dx * d, dy * d * 0.8, d) for d in (5, 12, 22) for dx, dy in directions]
    placed = []
    labelled_px = ax.transData.transform(np.array([(x, y) for x, y, _, _ in items])) if items else np.zeros((0, 2))

    def inside(box, pts) -> int:
        return int(np.sum((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1))) if len(pts) else 0

    for i, (x, y, text, style) in enumerate(items):
        best = None
        for rank, (dx, dy, dist) in enumerate(candidates):
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
            t = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, **style)
            box = t.get_window_extent(renderer).expanded(1.04, 1.12)
            t.remove()
            cost = 10 * sum(box.overlaps(p) for p in placed) + 3 * inside(box, marker_px) + inside(box, line_px)
            centre = np.array([(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2])
            gaps = np.linalg.norm(labelled_px - centre, axis=1)
            if len(gaps) > 1 and np.delete(gaps, i).min() < gaps[i]:
                cost += 2
            if box.x0 < axes_box.x0 or box.x1 > axes_box.x1 or box.y0 < axes_box.y0 or box.y1 > axes_box.y1:
                cost += 4
            cost += 0.05 * rank
            if best is None or cost < best[0]:
                best = (cost, dx, dy, ha, va, dist, box)
        _, dx, dy, ha, va, dist, box = best
        arrow = {"arrowprops": {"arrowstyle": "-", "color": "#555555", "lw": 0.7, "shrinkA": 0, "shrinkB": 3}} if dist > 5 else {}
        ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, **style, **arrow)
        placed.append(box)


def plot_front(table: Table, out: str | Path, label: str | None = None, group: str | None = None, title: str | None = None,
               protocol: str | None = None, log_x: bool = False, xlabel: str | None = None, ylabel: str | None = None,
               label_dominated: bool | None = None) -> list[Path]:
    """Scatter of the first two objectives with the front highlighted; writes ``out`` (.png) and the .svg beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nascomp.io import atomic_write_bytes

    if len(table.columns) < 2:
        raise NascompError("a plot needs two objectives (--x and --y)")
    xs, ys = table.values[:, 0], table.values[:, 1]
    front = set(pareto_front(table.values[:, :2], table.senses[:2]))
    dominated = [i for i in range(len(xs)) if i not in front]
    front_idx = sorted(front, key=lambda i: xs[i])
    label_dominated = len(xs) <= 16 if label_dominated is None else label_dominated

    rc = {"font.size": 8.5, "axes.labelsize": 9, "axes.titlesize": 10, "legend.fontsize": 7.5, "xtick.labelsize": 8,
          "ytick.labelsize": 8, "font.family": "DejaVu Sans", "svg.fonttype": "none", "axes.spines.top": False,
          "axes.spines.right": False}
    with plt.rc_context(rc):
        fig, ax = plt.subplots(figsize=(5.6, 3.9), dpi=150)
        groups = sorted({str(r.get(group)) for r in table.rows}) if group else [None]
        palette = plt.get_cmap("tab10")
        colours = {g: palette(k % 10) for k, g in enumerate(groups)}
        markers = dict(zip(groups, "osD^vP*Xhp" * 3))
        faded = 0.4
        for g in groups:
            members = [i for i in range(len(xs)) if group is None or str(table.rows[i].get(group)) == g]
            dom = [i for i in members if i not in front]
            fr = [i for i in members if i in front]
            colour = colours[g] if group else "#1f5fa8"
            if dom:
                ax.scatter(xs[dom], ys[dom], s=30, marker=markers[g], color=colour if group else "#8c8c8c", alpha=faded,
                           linewidths=0, zorder=2)
            if fr:
                ax.scatter(xs[fr], ys[fr], s=48, marker=markers[g], color=colour, edgecolors="black", linewidths=0.7, zorder=4)
        sx, sy = _staircase(xs[front_idx], ys[front_idx], table.senses[0], table.senses[1])
        ax.plot(sx, sy, color="black", lw=1.0, alpha=0.8, zorder=3)
        from matplotlib.lines import Line2D

        handles = []
        if group:
            handles += [Line2D([], [], ls="none", marker=markers[g], color=colours[g], markersize=6, label=g) for g in groups]
        handles += [
            Line2D([], [], color="black", lw=1.0, marker="o", markerfacecolor="white" if group else "#1f5fa8",
                   markeredgecolor="black", markersize=6, label="Pareto-optimal"),
            Line2D([], [], ls="none", marker="o", color="#8c8c8c", alpha=faded, markersize=5.5, label="dominated (faded)"),
        ]
        if log_x:  # plain numbers (5, 10, 20, 50...) read better in a paper than powers of ten
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel or axis_label(table.columns[0]))
        ax.set_ylabel(ylabel or axis_label(table.columns[1]))
        ax.grid(True, which="major", color="#e6e6e6", lw=0.6, zorder=0)
        ax.set_axisbelow(True)
        ax.margins(x=0.08, y=0.1)
        better_x = "←" if table.senses[0] == "min" else "→"
        better_y = "↑" if table.senses[1] == "max" else "↓"
        corner_x = 0.02 if table.senses[0] == "min" else 0.98
        corner_y = 0.97 if table.senses[1] == "max" else 0.03
        ax.text(corner_x, corner_y, f"better {better_x}{better_y}", transform=ax.transAxes, ha="left" if corner_x < 0.5 else "right",
                va="top" if corner_y > 0.5 else "bottom", fontsize=7.5, color="#555555")
        ax.legend(handles=handles, loc="best", frameon=True, framealpha=0.9, edgecolor="#dddddd", handletextpad=0.4,
                  borderpad=0.5, labelspacing=0.35)
        if title:
            ax.set_title(title)
        fig.tight_layout()
        if label:
            items = [(xs[i], ys[i], label_text(table.rows[i].get(label)), {"fontsize": 7.5, "color": "#111111"}) for i in front_idx]
            if label_dominated:
                items += [(xs[i], ys[i], label_text(table.rows[i].get(label)), {"fontsize": 6.8, "color": "#7a7a7a"}) for i in dominated]
            # keep labels off the points and off the front's staircase line
            line = np.concatenate([np.linspace((sx[k], sy[k]), (sx[k + 1], sy[k + 1]), 12) for k in range(len(sx) - 1)]) \
                if len(sx) > 1 else np.zeros((0, 2))
            _place_labels(ax, fig, [it for it in items if it[2]], table.values[:, :2], line)
        if protocol:
            wrapped = "\n".join(textwrap.wrap(protocol, 118))
            fig.text(0.01, 0.0, wrapped, ha="left", va="top", fontsize=6.3, color="#444444", transform=fig.transFigure)
        out = Path(out)
        paths = []
        for suffix in (".png", ".svg"):
            buf = io.BytesIO()
            fig.savefig(buf, format=suffix[1:], dpi=300, bbox_inches="tight", pad_inches=0.05)
            target = out.with_suffix(suffix)
            atomic_write_bytes(target, buf.getvalue())
            paths.append(target)
        plt.close(fig)
    return paths
