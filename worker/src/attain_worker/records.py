"""A file import's error report (SPEC section 6), and its refused rows as the records keep them."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from attain_server.application.imports import ImportProblem

from .rows import RowError, shown


def problem(error: RowError) -> ImportProblem:
    """A refused row as recorded: its value and reason as a report and the database may
    hold them (control characters and bytes that are not UTF-8 written out, bounded)."""
    return ImportProblem(error.line, error.column, shown(error.value), shown(error.reason, 1000))


def report_csv(errors: Sequence[ImportProblem], failure: str = "") -> str:
    """The error report: line, column, value, reason; a failure of the whole file is line 0."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["line", "column", "value", "reason"])
    for e in errors:
        writer.writerow([e.line, e.column, e.value, e.reason])
    if failure:
        writer.writerow([0, "", "", shown(failure, 1000)])
    return out.getvalue()
