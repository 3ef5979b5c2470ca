"""Self-contained HTML reports of runs (search, compress, train, profile); imports nothing above `nascomp.core`."""

from nascomp.report.api import KINDS, ReportResult, render_report, write_report

__all__ = ["render_report", "write_report", "ReportResult", "KINDS"]
