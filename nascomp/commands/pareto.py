"""`nascomp pareto INPUT --x latency_ms --y top1 [--out pareto.png]`: the non-dominated front of a result table, plotted.

INPUT is a CSV/JSON/JSONL file or a run directory. Objectives whose name looks like accuracy
(top1, acc, ...) are maximised, the others (latency, energy, MACs, params) minimised; override
with --maximize / --minimize. Writes PNG and SVG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable

from nascomp.commands.common import print_json
from nascomp.errors import NascompError

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
    p.add_argument("--label-dominated", action=argparse.BooleanOptionalAction, default=None,
                   help="also label dominated points (default: when there are at most 16 points)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _apply_filters(rows: list[dict], filters: list[str]) -> list[dict]:
    for f in filters:
        col, sep, value = f.partition("=")
        if not sep:
            raise NascompError(f"--filter {f!r}: expected COL=VALUE")
        try:
            wanted: object = float(value)
        except ValueError:
            wanted = value
        rows = [r for r in rows if r.get(col) == wanted or str(r.get(col)) == value]
    return rows


def run(args: argparse.Namespace) -> int:
    from nascomp.pareto import Table, default_reference, label_text, load_rows, objective_sense, plot_front

    columns = [args.x, args.y, *args.objective]
    clash = set(args.maximize) & set(args.minimize)
    if clash:
        raise NascompError(f"{sorted(clash)} cannot be both maximised and minimised")
    senses = ["max" if c in args.maximize else "min" if c in args.minimize else objective_sense(c) for c in columns]
    rows = _apply_filters(load_rows(args.input), args.filter)
    table = Table.from_rows(rows, columns, senses)
    reference = None
    if args.reference:
        try:
            reference = [float(v) for v in args.reference.split(",")]
        except ValueError:
            raise NascompError(f"--reference {args.reference!r}: expected comma-separated numbers") from None
        if len(reference) != len(columns):
            raise NascompError(f"--reference needs {len(columns)} values, one per objective {columns}")
    ref = reference or list(default_reference(table.values, senses))
    front = table.front()
    label = args.label or next((c for c in ("model", "name", "id", "rank") if any(c in r for r in table.rows)), None)
    protocol = args.protocol
    if protocol is None:
        values = {r.get("protocol") for r in table.rows if r.get("protocol")}
        protocol = values.pop() if len(values) == 1 else None
    paths = []
    if not args.no_plot:
        src = Path(args.input)
        out = Path(args.out) if args.out else (src if src.is_dir() else src.parent) / "pareto.png"
        paths = plot_front(table, out, label=label, group=args.group, title=args.title, protocol=protocol, log_x=args.log_x,
                           xlabel=args.xlabel, ylabel=args.ylabel, label_dominated=args.label_dominated)
    doc = {
        "objectives": [{"column": c, "sense": s} for c, s in zip(columns, senses)],
        "points": len(table.rows),
        "dropped_rows_missing_values": table.dropped,
        "front": [{**({label: label_text(table.rows[i].get(label))} if label else {}), **{c: table.rows[i][c] for c in columns}}
                  for i in front],
        "hypervolume": table.hypervolume(ref),
        "reference": ref,
        "plots": [str(p) for p in paths],
    }
    if args.json:
        print_json(doc)
        return 0
    console = Console()
    t = RichTable(*(([label] if label else []) + columns), title=f"Pareto front: {len(front)} of {len(table.rows)} points")
    for row in doc["front"]:
        t.add_row(*[f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in row])
    console.print(t)
    console.print(f"hypervolume {doc['hypervolume']:.6g} (reference {', '.join(f'{v:.4g}' for v in ref)}; "
                  + ", ".join(f"{c} {s}imised" for c, s in zip(columns, senses)) + ")")
    if table.dropped:
        console.print(f"[yellow]{table.dropped} row(s) without numeric {columns} were left out[/]")
    for p in paths:
        console.print(f"wrote {p}")
    return 0
