"""Publication-ready Pareto plots: the front as a staircase, labelled points, the measurement protocol underneath."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from nascomp.core.errors import NascompError
from nascomp.pareto.front import front_indices
from nascomp.pareto.table import Table

__all__ = ["axis_label", "label_text", "plot_front"]

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


# the figure's type: sizes for a single-column paper figure, fonts kept as text in the SVG, no top or right spine
_STYLE: dict[Any, Any] = {
    "font.size": 8.5,
    "axes.labelsize": 9,
    "axes.titlesize": 10,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "font.family": "DejaVu Sans",
    "svg.fonttype": "none",
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_FADED = 0.4  # the alpha of dominated points, on the axes and in the legend


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
    placed: list = []
    labelled_px = ax.transData.transform(np.array([(x, y) for x, y, _, _ in items])) if items else np.zeros((0, 2))

    def inside(box, pts) -> int:
        return int(np.sum((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1))) if len(pts) else 0

    for i, (x, y, text, style) in enumerate(items):
        best: tuple | None = None
        for rank, (dx, dy, dist) in enumerate(candidates):
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
            t = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, **style)
            box = t.get_window_extent(renderer).expanded(1.04, 1.12)
            t.remove()
            cost: float = 10 * sum(box.overlaps(p) for p in placed) + 3 * inside(box, marker_px) + inside(box, line_px)
            centre = np.array([(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2])
            gaps = np.linalg.norm(labelled_px - centre, axis=1)
            if len(gaps) > 1 and np.delete(gaps, i).min() < gaps[i]:
                cost += 2
            if box.x0 < axes_box.x0 or box.x1 > axes_box.x1 or box.y0 < axes_box.y0 or box.y1 > axes_box.y1:
                cost += 4
            cost += 0.05 * rank
            if best is None or cost < best[0]:
                best = (cost, dx, dy, ha, va, dist, box)
        assert best is not None  # candidates is not empty
        _, dx, dy, ha, va, dist, box = best
        arrow = {"arrowprops": {"arrowstyle": "-", "color": "#555555", "lw": 0.7, "shrinkA": 0, "shrinkB": 3}} if dist > 5 else {}
        ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, **style, **arrow)
        placed.append(box)


def plot_front(
    table: Table,
    out: str | Path,
    label: str | None = None,
    group: str | None = None,
    title: str | None = None,
    protocol: str | None = None,
    log_x: bool = False,
    xlabel: str | None = None,
    ylabel: str | None = None,
    label_dominated: bool | None = None,
    size: str | None = None,
) -> list[Path]:
    """Scatter of the first two objectives with the front highlighted; writes ``out`` (.png) and the .svg beside it.

    ``size``: a column whose values scale the points' areas (e.g. checkpoint size), the largest drawn at 240 pt².
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(table.columns) < 2:
        raise NascompError("a plot needs two objectives (--x and --y)")
    xs, ys = table.values[:, 0], table.values[:, 1]
    front = set(front_indices(table.values[:, :2], table.senses[:2]))
    dominated = [i for i in range(len(xs)) if i not in front]
    front_idx = sorted(front, key=lambda i: xs[i])
    label_dominated = len(xs) <= 16 if label_dominated is None else label_dominated
    areas = _point_areas(table, size)
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.6, 3.9), dpi=150)
        groups, colours, markers = _draw_points(ax, table, front, group, areas)
        sx, sy = _staircase(xs[front_idx], ys[front_idx], table.senses[0], table.senses[1])
        ax.plot(sx, sy, color="black", lw=1.0, alpha=0.8, zorder=3)
        handles = _legend_handles(group, groups, colours, markers)
        _set_axes(ax, table, log_x, xlabel, ylabel)
        _mark_better_corner(ax, table.senses)
        ax.legend(
            handles=handles,
            loc="best",
            frameon=True,
            framealpha=0.9,
            edgecolor="#dddddd",
            handletextpad=0.4,
            borderpad=0.5,
            labelspacing=0.35,
        )
        if title:
            ax.set_title(title)
        fig.tight_layout()
        if label:
            _label_points(ax, fig, table, label, front_idx, dominated if label_dominated else [], sx, sy)
        if protocol:
            wrapped = "\n".join(textwrap.wrap(protocol, 118))
            fig.text(0.01, 0.0, wrapped, ha="left", va="top", fontsize=6.3, color="#444444", transform=fig.transFigure)
        paths = _save(fig, Path(out))
        plt.close(fig)
    return paths


def _point_areas(table: Table, size: str | None) -> np.ndarray | None:
    """Marker areas in proportion to the ``size`` column (the largest 240 pt²), or None for the fixed sizes."""
    if not size:
        return None
    sizes = np.array([float(r.get(size) or 0.0) for r in table.rows])
    return 20 + 220 * sizes / max(sizes.max(), 1e-12)


def _draw_points(ax, table: Table, front: set[int], group: str | None, areas: np.ndarray | None) -> tuple[list, dict, dict]:
    """Scatter each group's dominated points faded and its front points outlined, so the front stands out in every
    group; returns the groups with their colours and markers, for the legend."""
    import matplotlib.pyplot as plt

    xs, ys = table.values[:, 0], table.values[:, 1]
    groups = sorted({str(r.get(group)) for r in table.rows}) if group else [None]
    palette = plt.get_cmap("tab10")
    colours = {g: palette(k % 10) for k, g in enumerate(groups)}
    markers = dict(zip(groups, "osD^vP*Xhp" * 3))
    for g in groups:
        members = [i for i in range(len(xs)) if group is None or str(table.rows[i].get(group)) == g]
        dom = [i for i in members if i not in front]
        fr = [i for i in members if i in front]
        colour = colours[g] if group else "#1f5fa8"
        if dom:
            ax.scatter(
                xs[dom],
                ys[dom],
                s=30 if areas is None else areas[dom],
                marker=markers[g],
                color=colour if group else "#8c8c8c",
                alpha=_FADED,
                linewidths=0,
                zorder=2,
            )
        if fr:
            ax.scatter(
                xs[fr],
                ys[fr],
                s=48 if areas is None else areas[fr],
                marker=markers[g],
                color=colour,
                edgecolors="black",
                linewidths=0.7,
                zorder=4,
            )
    return groups, colours, markers


def _legend_handles(group: str | None, groups: list, colours: dict, markers: dict) -> list:
    """One entry per group (when grouped), then what the front line and the faded points mean."""
    from matplotlib.lines import Line2D

    handles = []
    if group:
        handles += [Line2D([], [], ls="none", marker=markers[g], color=colours[g], markersize=6, label=g) for g in groups]
    handles += [
        Line2D(
            [],
            [],
            color="black",
            lw=1.0,
            marker="o",
            markerfacecolor="white" if group else "#1f5fa8",
            markeredgecolor="black",
            markersize=6,
            label="Pareto-optimal",
        ),
        Line2D([], [], ls="none", marker="o", color="#8c8c8c", alpha=_FADED, markersize=5.5, label="dominated (faded)"),
    ]
    return handles


def _set_axes(ax, table: Table, log_x: bool, xlabel: str | None, ylabel: str | None) -> None:
    """Scale, labels, a light grid behind the points, and margins that keep edge points off the frame."""
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


def _mark_better_corner(ax, senses: list[str]) -> None:
    """Arrows in the corner the objectives improve towards, so a reader need not work out which way is better."""
    better_x = "←" if senses[0] == "min" else "→"
    better_y = "↑" if senses[1] == "max" else "↓"
    corner_x = 0.02 if senses[0] == "min" else 0.98
    corner_y = 0.97 if senses[1] == "max" else 0.03
    ax.text(
        corner_x,
        corner_y,
        f"better {better_x}{better_y}",
        transform=ax.transAxes,
        ha="left" if corner_x < 0.5 else "right",
        va="top" if corner_y > 0.5 else "bottom",
        fontsize=7.5,
        color="#555555",
    )


def _label_points(ax, fig, table: Table, label: str, front_idx: list[int], dominated: list[int], sx: np.ndarray, sy: np.ndarray) -> None:
    """Label the front's points and the ``dominated`` ones (smaller, greyer), kept off the points and the staircase
    line ``sx``, ``sy``; points whose label is empty stay unlabelled."""
    xs, ys = table.values[:, 0], table.values[:, 1]
    items = [(xs[i], ys[i], label_text(table.rows[i].get(label)), {"fontsize": 7.5, "color": "#111111"}) for i in front_idx]
    items += [(xs[i], ys[i], label_text(table.rows[i].get(label)), {"fontsize": 6.8, "color": "#7a7a7a"}) for i in dominated]
    line = (
        np.concatenate([np.linspace((sx[k], sy[k]), (sx[k + 1], sy[k + 1]), 12) for k in range(len(sx) - 1)])
        if len(sx) > 1
        else np.zeros((0, 2))
    )
    _place_labels(ax, fig, [it for it in items if it[2]], table.values[:, :2], line)


def _save(fig, out: Path) -> list[Path]:
    """Write ``out`` as a 300 dpi PNG and an SVG beside it, each atomically (a reader never sees half an image)."""
    from nascomp.core.io import atomic_write_bytes

    paths = []
    for suffix in (".png", ".svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=suffix[1:], dpi=300, bbox_inches="tight", pad_inches=0.05)
        target = out.with_suffix(suffix)
        atomic_write_bytes(target, buf.getvalue())
        paths.append(target)
    return paths
