"""Self-contained HTML reports of runs (search, compress, train, profile); imports nothing above `nascomp.core`."""

from nascomp.report.api import KINDS, ReportResult, render_report

__all__ = ["render_report", "ReportResult", "KINDS"]
