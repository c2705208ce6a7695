"""Output: Rich tables for people, `--json` for scripts, errors as field and reason."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from attain_client import json_default, plain


def console() -> Console:
    """A console for this invocation (made per call so tests' environment and capture apply)."""
    return Console(highlight=False, soft_wrap=True, file=sys.stdout)


def err_console() -> Console:
    return Console(highlight=False, soft_wrap=True, file=sys.stderr)


def to_data(value: Any) -> Any:
    if isinstance(value, Message):
        return plain(value)
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {k: to_data(v) for k, v in value.items()}
    return value


def emit_json(value: Any, indent: int | None = 2) -> None:
    """Prints messages or plain data as JSON: exact decimals as strings, times in ISO 8601.
    `indent=None` prints it on one line."""
    sys.stdout.write(json.dumps(to_data(value), default=json_default, indent=indent) + "\n")


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(out)


def show(value: Any, as_json: bool, columns: Sequence[str], title: str = "") -> None:
    """One message or a list of them: JSON, or a table of the given top-level fields."""
    if as_json:
        emit_json(value)
        return
    items = value if isinstance(value, list) else [value]
    data = [to_data(item) for item in items]
    table(title, columns, [[_cell(row.get(c)) for c in columns] for row in data])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, default=json_default)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
