"""`render_report`: one self-contained HTML page per run directory (search, compress, train) or profile JSON."""

from __future__ import annotations

import datetime
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from nascomp.core.errors import NascompError
from nascomp.core.validate import output_file
from nascomp.core.version import __version__
from nascomp.report import compress, profile, search, train
from nascomp.report.files import RunFiles, core_io
from nascomp.report.html import Section, notes, page
from nascomp.report.sections import Content

__all__ = ["ReportResult", "render_report", "write_report", "KINDS"]

KINDS = ("search", "compress", "train", "profile")
_SEARCH_FILES = ("best_arch.json", "candidates.csv", "search/result.json", "evolution/history.json")


@dataclass(frozen=True)
class ReportResult:
    """Where the page went, what kind of run it shows, and what it warns about or could not show."""

    path: Path
    kind: str
    title: str
    sections: tuple[str, ...]  # section titles, in page order
    warnings: tuple[str, ...]
    missing: tuple[str, ...]  # "FILE: what it would have shown", for files the run does not have

    def to_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


def _content(source: Path) -> tuple[str, Content, list[str], Path]:
    """(kind, page content, missing files, default output path) of a run directory or a profile JSON."""
    if source.is_file():
        doc = core_io().read_json(source)
        if not profile.is_profile(doc):
            raise NascompError(
                f"{source}: not a profile report (no 'measurements' and 'protocol'); pass a run directory, or the JSON "
                "written by `nascomp profile ... --out FILE.json`"
            )
        return "profile", profile.build(doc, str(source)), [], source.with_suffix(".html")
    if not source.is_dir():
        raise NascompError(f"{source}: no such run directory or profile JSON")
    files = RunFiles(source)
    if any(files.exists(f) for f in _SEARCH_FILES):
        return "search", search.build(files), files.missing, source / "report.html"
    metrics = core_io().read_json(source / "metrics.json") if files.exists("metrics.json") else None
    if compress.is_compress_run(files, metrics):
        return "compress", compress.build(files, metrics), files.missing, source / "report.html"
    if train.is_train_run(metrics):
        return "train", train.build(files, metrics), files.missing, source / "report.html"
    raise NascompError(
        f"{source}: not a nascomp run directory (no best_arch.json, metrics.json or table.json); pass a directory written "
        "by `nascomp search`, `train` or `compress`, or a profile JSON"
    )


def render_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> ReportResult:
    """Write one self-contained HTML report of a run: no network, every chart inline SVG, sortable tables.

    Args:
        run_dir: a run directory of ``nascomp search``, ``compress`` (one method or ``--method auto``) or ``train``;
            or the JSON file of ``nascomp profile ... --out FILE.json``. The kind is told by the files it holds;
            files an older nascomp did not write are listed on the page as not available.
        out: the HTML file to write (default: ``RUN_DIR/report.html``; for a profile JSON, ``FILE.html`` beside it).

    Returns:
        `ReportResult` with the page's path, the kind of run, the section titles, the warnings shown on the page
        and the files that were not there.
    """
    source = Path(run_dir)
    out = output_file(out)
    kind, content, missing, default = _content(source)
    sections = list(content.sections)
    warnings = Section("warnings", "Warnings", notes(content.warnings) if content.warnings else notes(["none"], "info"))
    sections.insert(1, warnings)  # right under the result: what the numbers do not cover
    if missing:
        sections.append(Section("missing", "Not available", notes(missing, "missing")))
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    path = out or default
    core_io().atomic_write_text(
        path, page(content.title, content.subtitle, sections, f"nascomp {__version__} report · {kind} · written {stamp}")
    )
    return ReportResult(path, kind, content.title, tuple(s.title for s in sections), tuple(content.warnings), tuple(missing))


def write_report(run_dir: str | os.PathLike) -> Path | None:
    """`render_report` at the end of a run (search, compress, profile): the run's results are already on disk and the page
    is only a view of them, so a failure here is a warning naming the command that retries it, never a failed run."""
    try:
        return render_report(run_dir).path
    except Exception as e:  # noqa: BLE001 - any failure: the run must still return its results
        from rich.markup import escape

        from nascomp.core.progress import console

        why = escape(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no message'}")
        console.print(
            f"[yellow]warning:[/] no report.html ({why}); retry with `nascomp report {escape(str(run_dir))}`",
            soft_wrap=True,
            highlight=False,
        )
        return None
