"""`nascomp report RUN_DIR [--out FILE] [--open] [--json]`: one self-contained HTML page of a run.

RUN_DIR is a directory written by `nascomp search`, `train` or `compress` (any method, `auto` included), or the
JSON file of `nascomp profile ... --out FILE.json`. The page (RUN_DIR/report.html, or FILE.html beside the JSON)
needs no network: charts are inline SVG, tables sort when a header is clicked. Files an older run lacks are
listed on the page as not available.
"""

from __future__ import annotations

import argparse

from nascomp.cli.common import print_json

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="a self-contained HTML report of a run directory or profile JSON", description=__doc__)
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (search, train, compress) or profile JSON file")
    p.add_argument("--out", help="HTML file to write (default: RUN_DIR/report.html; FILE.html beside a profile JSON)")
    p.add_argument("--open", action="store_true", help="open the page in the default web browser")
    p.add_argument("--json", action="store_true", help="print the result (path, kind, sections, warnings, missing files) as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nascomp.report import render_report

    result = render_report(args.run_dir, out=args.out)
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"{result.kind} report: {len(result.warnings)} warning(s), {len(result.missing)} file(s) not available -> {result.path}")
    if args.open:
        import webbrowser

        webbrowser.open(result.path.resolve().as_uri())
    return 0
