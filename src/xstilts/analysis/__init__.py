"""Statistics, figures and the report for an X-STILTs results table.

Entry point: :func:`xstilts.analysis.report.write_report`. Every function reads
the tidy table described in :mod:`xstilts.analysis.schema`.
"""
from xstilts.analysis.report import analyze, write_report
from xstilts.analysis.schema import RESULT_COLUMNS, validate_results

__all__ = ["RESULT_COLUMNS", "analyze", "validate_results", "write_report"]
