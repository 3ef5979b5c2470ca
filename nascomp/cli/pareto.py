"""`nascomp pareto INPUT --x latency_ms --y top1 [--out pareto.png]`: the non-dominated front of a result table, plotted.

INPUT is a CSV/JSON/JSONL file or a run directory. Objectives whose name looks like accuracy
(top1, acc, ...) are maximised, the others (latency, energy, MACs, params) minimised; override
with --maximize / --minimize. Writes PNG and SVG.
"""

from __future__ import annotations

import argparse

from nascomp.cli.common import print_json

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pareto", help="non-dominated front, hypervolume and plot of a result table", description=__doc__)
    p.add_argument("input", metavar="INPUT", help="CSV/JSON/JSONL file or run directory")
    p.add_argument("--x", default="latency_ms", help="x objective column (default: %(default)s)")
    p.add_argument("--y", default="top1", help="y objective column (default: %(default)s)")
    p.add_argument("--objective", action="append", default=[], help="further objective column for sorting and hypervolume")
    p.add_argument("--maximize", action="append", default=[], metavar="COL", help="treat COL as to be maximised")
    p.add_argument("--minimize", action="append", default=[], metavar="COL", help="treat COL as to be minimised")
    p.add_argument("--filter", action="append", default=[], metavar="COL=VALUE", help="keep rows whose COL equals VALUE")
    p.add_argument("--reference", help="hypervolume reference point, comma-separated in objective order (default: worst + 10%% of range)")
    p.add_argument("--out", help="plot file (.png; the .svg is written beside it); default: INPUT's folder/pareto.png")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--label", help="column naming each point (default: model or name when present)")
    p.add_argument("--group", help="colour points by this column (e.g. family)")
    p.add_argument("--title")
    p.add_argument("--protocol", help="measurement protocol printed under the plot (default: the input's protocol column)")
    p.add_argument("--log-x", action="store_true")
    p.add_argument("--xlabel")
    p.add_argument("--ylabel")
    p.add_argument(
        "--label-dominated",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also label dominated points (default: when there are at most 16 points)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _filters(items: list[str]) -> dict:
    from nascomp.core.errors import NascompError

    out: dict[str, object] = {}
    for f in items:
        col, sep, value = f.partition("=")
        if not sep:
            raise NascompError(f"--filter {f!r}: expected COL=VALUE")
        try:
            out[col] = float(value)
        except ValueError:
            out[col] = value
    return out


def _reference(text: str | None) -> list[float] | None:
    from nascomp.core.errors import NascompError

    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise NascompError(f"--reference {text!r}: expected comma-separated numbers") from None


def run(args: argparse.Namespace) -> int:
    import nascomp

    result = nascomp.pareto_front(
        args.input,
        args.x,
        args.y,
        objectives=args.objective,
        maximize=args.maximize,
        minimize=args.minimize,
        filters=_filters(args.filter),
        reference=_reference(args.reference),
        plot=False if args.no_plot else args.out,
        label=args.label,
        group=args.group,
        title=args.title,
        protocol=args.protocol,
        log_x=args.log_x,
        xlabel=args.xlabel,
        ylabel=args.ylabel,
        label_dominated=args.label_dominated,
    )
    doc = result.to_dict()
    if args.json:
        print_json(doc)
        return 0
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console()
    columns = [c for c, _ in result.objectives]
    first = result.front[0] if result.front else {}
    header = [k for k in first if k not in columns] + columns
    t = RichTable(*header, title=f"Pareto front: {len(result.front)} of {len(result.table.rows)} points")
    for row in result.front:
        t.add_row(*[f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in row])
    console.print(t)
    console.print(
        f"hypervolume {result.hypervolume:.6g} (reference {', '.join(f'{v:.4g}' for v in result.reference)}; "
        + ", ".join(f"{c} {s}imised" for c, s in result.objectives)
        + ")"
    )
    if result.table.dropped:
        console.print(f"[yellow]{result.table.dropped} row(s) without numeric {columns} were left out[/]")
    for p in result.plots:
        console.print(f"wrote {p}")
    return 0
