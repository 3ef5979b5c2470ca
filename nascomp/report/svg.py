"""Inline SVG charts for the HTML report: scatter with a Pareto front, line charts, intervals, bars.

Each chart is one ``<svg class="chart">`` string with no external reference. Every data mark carries the class
``mark`` and a ``<title>`` (the browser's hover tooltip), which is also what the browser test counts to prove
a chart is not empty. Charts scale to their container (``viewBox``) and use the page's fonts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = [
    "Point",
    "Series",
    "Interval",
    "Bar",
    "scatter",
    "line_chart",
    "interval_chart",
    "bar_chart",
    "nice_ticks",
    "PALETTE",
    "FULL",
    "HALF",
    "THIRD",
]

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#be123c", "#4d7c0f", "#a16207")
_INK, _MUTED, _GRID = "#1e293b", "#64748b", "#e2e8f0"
FULL, HALF, THIRD = 1080, 530, 350  # chart widths (px) that fill a section, or one column of two or three: 1:1 at desktop width
_MARGIN = {"left": 64, "right": 20, "top": 16, "bottom": 48}


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    tip: str  # the hover text
    front: bool = False  # on the Pareto front
    chosen: bool = False  # the run's pick
    label: str = ""  # written beside the point (for plots of a few named points)


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    tips: Sequence[str] = ()  # one per point; default "name: x, y"


@dataclass(frozen=True)
class Interval:
    label: str
    value: float
    low: float
    high: float
    tip: str = ""


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    inner: float | None = None  # a second, narrower bar inside (e.g. CPU time inside wall time)
    tip: str = ""


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 x 10^k apart) from at or below ``low`` to at or above ``high``."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"cannot place ticks on [{low}, {high}]")
    if high <= low:
        low, high = low - (abs(low) * 0.1 or 1.0), high + (abs(high) * 0.1 or 1.0)
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(i * step, 12) for i in range(first, max(last, first + 1) + 1)]


def _tick_text(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    if abs(value) >= 1e6 and decimals == 0:
        return f"{value:.3g}"
    return f"{value:,.{decimals}f}".replace(",", "\u2009")  # thin-space thousands separator


@dataclass
class _Frame:
    """The plot area and its two linear scales."""

    height: int
    xticks: list[float]
    yticks: list[float]
    width: int = FULL
    margin: dict = field(default_factory=lambda: dict(_MARGIN))

    @property
    def inner(self) -> tuple[float, float, float, float]:
        m = self.margin
        return m["left"], m["top"], self.width - m["right"], self.height - m["bottom"]

    def x(self, value: float) -> float:
        left, _, right, _ = self.inner
        lo, hi = self.xticks[0], self.xticks[-1]
        return left + (value - lo) / (hi - lo) * (right - left)

    def y(self, value: float) -> float:
        _, top, _, bottom = self.inner
        lo, hi = self.yticks[0], self.yticks[-1]
        return bottom - (value - lo) / (hi - lo) * (bottom - top)

    def axes(self, xlabel: str, ylabel: str) -> list[str]:
        left, top, right, bottom = self.inner
        out = []
        ystep = self.yticks[1] - self.yticks[0]
        for t in self.yticks:
            y = self.y(t)
            out.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{_GRID}"/>')
            out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_tick_text(t, ystep)}</text>')
        xstep = self.xticks[1] - self.xticks[0]
        for t in self.xticks:
            x = self.x(t)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 5}" stroke="{_MUTED}"/>')
            out.append(f'<text x="{x:.1f}" y="{bottom + 19}" text-anchor="middle" class="tick">{_tick_text(t, xstep)}</text>')
        out.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="{_MUTED}"/>')
        out.append(
            f'<text x="{(left + right) / 2:.1f}" y="{self.height - 8}" text-anchor="middle" class="axis-label">{escape(xlabel)}</text>'
        )
        out.append(
            f'<text transform="translate(14 {(top + bottom) / 2:.1f}) rotate(-90)" text-anchor="middle" class="axis-label">'
            f"{escape(ylabel)}</text>"
        )
        return out


def _svg(frame_height: int, label: str, body: list[str], width: int) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {frame_height}" style="max-width:{width}px" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>' + "".join(body) + "</svg>"
    )


def _span(values: Sequence[float], pad: float = 0.04) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    margin = (hi - lo) * pad
    return lo - margin, hi + margin


def _mark(shape: str, tip: str, **attrs) -> str:
    text = " ".join(f'{k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<{shape} class="mark" {text}><title>{escape(tip)}</title></{shape}>'


def _legend(entries: Sequence[tuple[str, str, str]], x: float, y: float) -> list[str]:
    """(label, colour, style) entries in one row at (x, y); style: dot | ring | line | dash."""
    out, cursor = [], x
    for label, colour, style in entries:
        if style in ("line", "dash"):
            dash = ' stroke-dasharray="5 4"' if style == "dash" else ""
            out.append(f'<line x1="{cursor}" x2="{cursor + 16}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="2"{dash}/>')
        elif style == "ring":
            out.append(f'<circle cx="{cursor + 8}" cy="{y}" r="6" fill="none" stroke="{colour}" stroke-width="2.5"/>')
        else:
            out.append(f'<circle cx="{cursor + 8}" cy="{y}" r="4.5" fill="{colour}"/>')
        out.append(f'<text x="{cursor + 22}" y="{y + 4}" class="legend">{escape(label)}</text>')
        cursor += 36 + 7.2 * len(label)
    return out


def scatter(
    points: Sequence[Point],
    *,
    xlabel: str,
    ylabel: str,
    label: str,
    xline: tuple[float, str] | None = None,
    names: tuple[str, str, str] = ("candidate", "Pareto front", "chosen"),
    height: int = 380,
    width: int = FULL,
) -> str:
    """Candidates as dots; the Pareto front highlighted and joined by a line; the chosen point ringed; ``xline``: a limit.

    ``names``: the legend's words for a point, a front point and the chosen one."""
    if not points:
        raise ValueError("a scatter needs at least one point")
    xs = [p.x for p in points] + ([xline[0]] if xline else [])
    frame = _Frame(height, nice_ticks(*_span(xs)), nice_ticks(*_span([p.y for p in points])), width)
    frame.margin["top"] = 34  # room for the legend
    body = frame.axes(xlabel, ylabel)
    left, top, right, bottom = frame.inner
    if xline is not None:
        x = frame.x(xline[0])
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="{PALETTE[5]}" stroke-width="1.5" stroke-dasharray="5 4"/>'
        )
        body.append(f'<text x="{x - 6:.1f}" y="{top + 12}" text-anchor="end" class="note" fill="{PALETTE[5]}">{escape(xline[1])}</text>')
    front = sorted((p for p in points if p.front), key=lambda p: p.x)
    if len(front) > 1:
        path = " ".join(f"{frame.x(p.x):.1f},{frame.y(p.y):.1f}" for p in front)
        body.append(f'<polyline points="{path}" fill="none" stroke="{PALETTE[1]}" stroke-width="2" opacity="0.8"/>')
    for p in sorted(points, key=lambda p: (p.front, p.chosen)):  # the front and the pick on top
        cx, cy = frame.x(p.x), frame.y(p.y)
        body.append(
            _mark(
                "circle",
                p.tip,
                cx=f"{cx:.1f}",
                cy=f"{cy:.1f}",
                r=5.5 if p.front else 4.5,
                fill=PALETTE[1] if p.front else "#94a3b8",
                fill_opacity="0.9",
                stroke="white",
                stroke_width="1",
            )
        )
        if p.chosen:
            body.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="10" fill="none" stroke="{PALETTE[0]}" stroke-width="2.5"/>')
        if p.label:
            anchor, dx = ("end", -14) if cx > (left + right) / 2 else ("start", 14)
            body.append(f'<text x="{cx + dx:.1f}" y="{cy + 4:.1f}" text-anchor="{anchor}" class="legend">{escape(p.label)}</text>')
    legend = [(names[0], "#94a3b8", "dot"), (names[1], PALETTE[1], "dot"), (names[2], PALETTE[0], "ring")]
    if xline is not None:
        legend.append(("budget", PALETTE[5], "dash"))
    body += _legend(legend, left, 14)
    return _svg(height, label, body, frame.width)


def line_chart(
    series: Sequence[Series], *, xlabel: str, ylabel: str, label: str, height: int = 300, width: int = FULL, integer_x: bool = True
) -> str:
    """One line with markers per series (a one-point series is a marker alone)."""
    points = [pt for s in series for pt in s.points]
    if not points:
        raise ValueError("a line chart needs at least one point")
    xs = [x for x, _ in points]
    xlo, xhi = (min(xs), max(xs)) if max(xs) > min(xs) else (min(xs) - 1, max(xs) + 1)
    xticks = nice_ticks(xlo, xhi, 6)
    if integer_x and xticks[1] - xticks[0] < 1:  # steps, epochs, generations: no tick between two integers
        xticks = [float(v) for v in range(math.floor(xlo), math.ceil(xhi) + 1)]
    frame = _Frame(height, xticks, nice_ticks(*_span([y for _, y in points], 0.06)), width)
    frame.margin["top"] = 34 if len(series) > 1 else 16
    body = frame.axes(xlabel, ylabel)
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        coords = [(frame.x(x), frame.y(y)) for x, y in s.points]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        radius = 3.5 if len(coords) <= 60 else 2
        for k, ((x, y), (vx, vy)) in enumerate(zip(coords, s.points, strict=True)):
            tip = s.tips[k] if k < len(s.tips) else f"{s.name}: {xlabel} {vx:g}, {vy:.4g}"
            body.append(_mark("circle", tip, cx=f"{x:.1f}", cy=f"{y:.1f}", r=radius, fill=colour, stroke="white", stroke_width="0.8"))
    if len(series) > 1:
        body += _legend([(s.name, PALETTE[i % len(PALETTE)], "line") for i, s in enumerate(series)], frame.inner[0], 14)
    return _svg(height, label, body, frame.width)


def interval_chart(rows: Sequence[Interval], *, xlabel: str, label: str, zero: bool = True, width: int = FULL) -> str:
    """A value with its interval per row (a forest plot); ``zero`` draws the no-difference line."""
    if not rows:
        raise ValueError("an interval chart needs at least one row")
    values = [v for r in rows for v in (r.low, r.high, r.value)] + ([0.0] if zero else [])
    row_height, label_width = 44, 230
    height = 56 + row_height * len(rows)
    low, high = _span(values, 0.08)
    if min(values) >= 0:  # latencies, accuracies: the axis does not go below zero
        low = max(0.0, low)
    frame = _Frame(height, nice_ticks(low, high), [0.0, 1.0], width)
    frame.margin.update(left=label_width, top=12, bottom=44)
    left, top, right, bottom = frame.inner
    body = []
    step = frame.xticks[1] - frame.xticks[0]
    for t in frame.xticks:
        x = frame.x(t)
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="{_GRID}"/>')
        body.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle" class="tick">{_tick_text(t, step)}</text>')
    body.append(f'<text x="{(left + right) / 2:.1f}" y="{height - 8}" text-anchor="middle" class="axis-label">{escape(xlabel)}</text>')
    if zero:
        x0 = frame.x(0.0)
        body.append(
            f'<line x1="{x0:.1f}" x2="{x0:.1f}" y1="{top}" y2="{bottom}" stroke="{_MUTED}" stroke-width="1.5" stroke-dasharray="4 3"/>'
        )
    for i, r in enumerate(rows):
        y = top + row_height * (i + 0.5)
        lo, hi, mid = frame.x(r.low), frame.x(r.high), frame.x(r.value)
        colour = PALETTE[0]
        body.append(f'<text x="{left - 12}" y="{y + 4:.1f}" text-anchor="end" class="row-label">{escape(r.label)}</text>')
        body.append(
            _mark(
                "line",
                r.tip or f"{r.label}: {r.value:.2f} ({r.low:.2f} to {r.high:.2f})",
                x1=f"{lo:.1f}",
                x2=f"{hi:.1f}",
                y1=f"{y:.1f}",
                y2=f"{y:.1f}",
                stroke=colour,
                stroke_width="3",
                stroke_linecap="round",
            )
        )
        body.append(f'<line x1="{lo:.1f}" x2="{lo:.1f}" y1="{y - 7:.1f}" y2="{y + 7:.1f}" stroke="{colour}" stroke-width="2"/>')
        body.append(f'<line x1="{hi:.1f}" x2="{hi:.1f}" y1="{y - 7:.1f}" y2="{y + 7:.1f}" stroke="{colour}" stroke-width="2"/>')
        body.append(
            f'<rect x="{mid - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{PALETTE[1]}" transform="rotate(45 {mid:.1f} {y:.1f})"/>'
        )
    return _svg(height, label, body, frame.width)


def bar_chart(bars: Sequence[Bar], *, xlabel: str, label: str, legend: tuple[str, str] | None = None, width: int = FULL) -> str:
    """Horizontal bars, one per row; ``inner`` values drawn as narrower bars inside; ``legend``: (outer, inner) names."""
    if not bars:
        raise ValueError("a bar chart needs at least one bar")
    row_height, label_width = 28, 170
    top_margin = 34 if legend else 12
    height = top_margin + 44 + row_height * len(bars)
    frame = _Frame(height, nice_ticks(0.0, max(max(b.value, b.inner or 0.0) for b in bars) or 1.0), [0.0, 1.0], width)
    frame.margin.update(left=label_width, top=top_margin, bottom=44)
    left, top, right, bottom = frame.inner
    body = []
    step = frame.xticks[1] - frame.xticks[0]
    for t in frame.xticks:
        x = frame.x(t)
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" stroke="{_GRID}"/>')
        body.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle" class="tick">{_tick_text(t, step)}</text>')
    body.append(f'<text x="{(left + right) / 2:.1f}" y="{height - 8}" text-anchor="middle" class="axis-label">{escape(xlabel)}</text>')
    for i, b in enumerate(bars):
        y = top + row_height * i + 4
        body.append(f'<text x="{left - 10}" y="{y + 14}" text-anchor="end" class="row-label">{escape(b.label)}</text>')
        bar_width = max(1.0, frame.x(b.value) - left)
        body.append(
            _mark(
                "rect",
                b.tip or f"{b.label}: {b.value:g}",
                x=left,
                y=f"{y:.1f}",
                width=f"{bar_width:.1f}",
                height=row_height - 8,
                fill=PALETTE[0],
                fill_opacity="0.3",
                rx="2",
            )
        )
        if b.inner is not None:
            inner = max(1.0, frame.x(b.inner) - left)
            body.append(
                f'<rect x="{left}" y="{y + 6:.1f}" width="{inner:.1f}" height="{row_height - 20}" fill="{PALETTE[0]}" rx="1">'
                f"<title>{escape(b.tip or f'{b.label}: {b.inner:g}')}</title></rect>"
            )
    if legend:
        body += [
            f'<rect x="{left}" y="8" width="16" height="12" fill="{PALETTE[0]}" fill-opacity="0.3"/>',
            f'<text x="{left + 22}" y="18" class="legend">{escape(legend[0])}</text>',
            f'<rect x="{left + 40 + 6.5 * len(legend[0])}" y="11" width="16" height="6" fill="{PALETTE[0]}"/>',
            f'<text x="{left + 62 + 6.5 * len(legend[0])}" y="18" class="legend">{escape(legend[1])}</text>',
        ]
    return _svg(height, label, body, frame.width)
