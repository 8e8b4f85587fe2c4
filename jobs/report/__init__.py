"""The run report: figures streamed from an output's files, written as self-contained HTML and as JSON."""

from lakelabel.jobs.report.build import ReportError, ReportFiles, build_report, report_figures

__all__ = ["ReportError", "ReportFiles", "build_report", "report_figures"]
