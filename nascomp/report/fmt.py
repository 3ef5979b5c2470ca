"""Numbers as the report prints them (units, signs, intervals), and the intervals it computes itself."""

from __future__ import annotations

import math

__all__ = ["data", "pct", "signed", "ci", "count", "duration", "ms", "megabytes", "wilson", "difference_ci"]

_Z95 = 1.959964


def data(described: dict | None) -> str | None:
    """``DataBundle.describe()`` (dataset, split sizes, classes) in words."""
    if not described:
        return None
    classes = f", {described['classes']} classes" if described.get("classes") else ""
    return (
        f"{described.get('dataset')}: {described.get('train')} training / {described.get('val')} validation / "
        f"{described.get('test')} test images{classes}"
    )


def pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f} %"


def signed(value: float, digits: int = 2) -> str:
    return f"{value:+.{digits}f}".replace("-", "−")


def ci(low: float, high: float, digits: int = 2, sign: bool = True) -> str:
    show = (lambda v: signed(v, digits)) if sign else (lambda v: f"{v:.{digits}f}")
    return f"95 % CI {show(low)} to {show(high)}"


def count(value: float | None) -> str:
    """1234567 -> '1.23 M' (G, M, k): parameter and MAC counts."""
    if value is None:
        return "–"
    for factor, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.{2 if abs(value) / factor < 100 else 1}f} {unit}"
    return f"{value:g}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.{3 if value < 10 else 2 if value < 100 else 1}f} ms"


def megabytes(n_bytes: float | None) -> str:
    return "–" if n_bytes is None else f"{n_bytes / 2**20:.2f} MB"


def wilson(top1: float, n: int) -> tuple[float, float]:
    """95 % Wilson score interval (in %) of an accuracy ``top1`` (%) measured on ``n`` images."""
    p, z2 = top1 / 100, _Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return 100 * (centre - half), 100 * (centre + half)


def difference_ci(a: float, n_a: int, b: float, n_b: int) -> tuple[float, float, float]:
    """``a - b`` (points) with a 95 % normal interval, treating the two accuracies as independent samples.

    For two models scored on the same images this is conservative (their errors are correlated)."""
    se = 100 * math.sqrt(sum(t / 100 * (1 - t / 100) / n for t, n in ((a, n_a), (b, n_b))))
    d = a - b
    return d, d - _Z95 * se, d + _Z95 * se
