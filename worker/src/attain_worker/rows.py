"""Reading a brand's CSV files defensively: bounded lines, every field checked before use.

A file is bytes from another system. Each line is decoded on its own terms, so invalid UTF-8
spoils its row and not the file; no line is held beyond MAX_LINE characters however long it
runs; and every field is checked for invalid UTF-8, control characters and its length before
anything parses it. A bad row is then refused with one reason per column and never reaches
the database (where PostgreSQL would refuse a NUL byte for the whole batch). Only a file
whose first line is not the header (not UTF-8, binary, empty) is rejected whole.

Fields never contain line breaks in these files: one physical line is one row, which keeps
line numbers exact for the error report.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

# Characters kept of one line. A longer line is refused and the rest of it skipped as it
# streams past, so a file without line breaks costs no more memory than this. It is below
# csv's field size limit (131,072), which therefore never trips.
MAX_LINE = 64 * 1024
# Decoding turns each byte that is not UTF-8 into a lone surrogate U+DC80-U+DCFF
# (surrogateescape); valid UTF-8 never decodes to one. C0 and C1 controls and DEL are
# refused too: NUL cannot be stored in PostgreSQL text, and none belongs in an id or a number.
_INVALID = re.compile("[\udc80-\udcff]")
_SUSPECT = re.compile("[\x00-\x1f\x7f-\x9f\udc80-\udcff]")
# How much of a bad value the error report repeats.
SHOWN = 200


class FileRejected(Exception):
    """The whole file cannot be imported (bad header, not UTF-8): it goes to the failed folder."""


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    column: str
    value: str
    reason: str


# A line as read: (line number, text, cut). `cut` says the line ran past MAX_LINE and `text`
# holds only its first MAX_LINE characters.
ReadLine = tuple[int, str, bool]


class _Partial:
    """The line being read across chunks: its pieces, at most MAX_LINE + 1 characters of
    them (one more for a closing carriage return), and whether more arrived than that."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.held = 0
        self.over = False

    def add(self, text: str) -> None:
        room = MAX_LINE + 1 - self.held
        if len(text) > room:
            text, self.over = text[:room], True
        if text:
            self.pieces.append(text)
            self.held += len(text)

    def take(self, number: int) -> ReadLine:
        text = "".join(self.pieces)
        if not self.over:
            text = text.removesuffix("\r")
        line = (number, text[:MAX_LINE], self.over or len(text) > MAX_LINE)
        self.pieces, self.held, self.over = [], 0, False
        return line

    def blank(self) -> bool:
        return not self.over and not "".join(self.pieces).strip()


async def line_blocks(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[ReadLine]]:
    """The lines of a byte stream, a block per chunk (one suspension per chunk rather than
    per line): optional BOM, \\n or \\r\\n, bytes that are not UTF-8 kept as surrogates.
    A line spread over many chunks is joined once, so small chunks cost no more."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    partial = _Partial()
    number = 0
    first = True
    async for chunk in chunks:
        text = decoder.decode(chunk)
        if first and text:
            text = text.removeprefix("\ufeff")
            first = False
        *complete, rest = text.split("\n")
        if complete:
            partial.add(complete[0])
            number += 1
            block = [partial.take(number)]
            for raw in complete[1:]:
                number += 1
                if raw.endswith("\r"):
                    raw = raw[:-1]
                block.append((number, raw[:MAX_LINE], len(raw) > MAX_LINE))
            yield block
        partial.add(rest)
    partial.add(decoder.decode(b"", final=True))
    if not partial.blank():
        yield [partial.take(number + 1)]


async def lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, str]]:
    """(line number, text) from a byte stream, strictly: a line that is not UTF-8 or that is
    longer than MAX_LINE characters ends the file with FileRejected (the CLI's reader)."""
    async for block in line_blocks(chunks):
        for number, text, cut in block:
            if _INVALID.search(text):
                raise FileRejected(f"the file is not UTF-8 (line {number})")
            if cut:
                raise FileRejected(f"line {number} is longer than {MAX_LINE:,} characters")
            yield number, text


def split_fields(text: str) -> list[str]:
    """One line's fields. A line without quotes or carriage returns reads the same split at
    its commas, which is several times faster than the csv module for one line."""
    if '"' in text or "\r" in text:
        try:
            return next(csv.reader([text]), [])
        except csv.Error:
            # Only a bare carriage return trips the reader here; split plainly, and the
            # field check refuses the field that holds it as a control character.
            return text.split(",")
    return text.split(",")


def check_header(text: str, expected: Sequence[str], cut: bool = False) -> None:
    if _INVALID.search(text):
        raise FileRejected(
            "the file is not UTF-8 text: its first line has bytes that are not UTF-8"
        )
    if cut:
        raise FileRejected(
            f"the first line is longer than {MAX_LINE:,} characters: it is not the header"
        )
    found = [f.strip() for f in split_fields(text)]
    if found != list(expected):
        raise FileRejected(
            f"the header must be {','.join(expected)} "
            f"(found {shown(','.join(found), 100) or 'nothing'})"
        )


class Layout:
    """A file kind's columns, in header order, with the most characters each may hold."""

    def __init__(self, widths: Mapping[str, int]) -> None:
        self.columns = tuple(widths)
        self.widths = dict(widths)
        self.narrowest = min(widths.values())


def check_fields(
    number: int, text: str, cut: bool, layout: Layout
) -> tuple[list[str], dict[str, RowError]]:
    """The row's fields and what is wrong with them by column, at most one reason each.
    A cut line or a wrong number of fields is one reason for the whole row; otherwise each
    field is checked for bytes that are not UTF-8, control characters and its width."""
    values = split_fields(text)
    problems: dict[str, RowError] = {}
    columns = layout.columns
    width = len(columns)
    if cut:
        column = columns[min(max(len(values), 1), width) - 1]
        problems[column] = RowError(
            number,
            column,
            values[-1] if values else "",
            f"the line is longer than {MAX_LINE:,} characters: it is not read past here",
        )
    elif len(values) < width:
        column = columns[len(values)]
        problems[column] = RowError(
            number, column, "", f"is missing: the line has {len(values)} of {width} columns"
        )
    elif len(values) > width:
        column = columns[-1]
        extra = len(values) - width
        problems[column] = RowError(
            number,
            column,
            ",".join(values[width:]),
            f"is followed by {extra} more column{'s' if extra > 1 else ''}: the header has {width}",
        )
    elif _SUSPECT.search(text) or len(text) > layout.narrowest:
        for column, value in zip(columns, values, strict=True):
            reason = field_problem(value, layout.widths[column])
            if reason:
                problems[column] = RowError(number, column, value, reason)
    return values, problems


def field_problem(value: str, width: int) -> str:
    """Why a raw field cannot be used whatever its column means, or "" when it can."""
    bad = _SUSPECT.search(value)
    if bad is not None:
        code = ord(bad.group())
        at = bad.start() + 1
        if code >= 0xDC80:
            return f"is not UTF-8 text (byte 0x{code - 0xDC00:02X} at character {at})"
        return f"contains the control character U+{code:04X} at character {at}"
    if len(value) > width:
        return f"is {len(value):,} characters long: at most {width}"
    return ""


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00 if code >= 0xDC80 else code:02x}"


def shown(value: str, limit: int = SHOWN) -> str:
    """`value` as a report, a log or the database may hold it: bytes that are not UTF-8 and
    control characters written as \\xNN, at most `limit` characters and then its length."""
    text = _SUSPECT.sub(_escape, value)
    if len(text) > limit:
        return f"{text[:limit]}... ({len(value):,} characters)"
    return text
