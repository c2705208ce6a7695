"""Reading the admin's files: YAML/JSON documents into messages with exact decimals, and CSV
files streamed row by row with line numbers, for any command that takes a file.

Problems are raised as `InputError(where, reason)`: `where` names the file and the place (a
line and column, or a field path such as `criteria[0].kpi`), so `runner.run` prints them as
readable errors with exit code 2.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import yaml
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from attain_cli.runner import InputError

M = TypeVar("M", bound=Message)

# An exact decimal as the API takes it: optional sign, digits, optional fraction; no exponent.
DECIMAL_RE = re.compile(r"^[+-]?\d+(\.\d+)?$")


class NumberText(str):
    """The exact text of a number literal as written in the file (never a float)."""

    __slots__ = ()


# ---------------------------------------------------------------- documents


class _ExactLoader(yaml.SafeLoader):
    """SafeLoader that keeps number literals and dates as their text (so 10000.10 stays exact
    and a code such as 010 stays 010) and refuses duplicate keys (the last would silently win)."""


def _number_text(loader: yaml.SafeLoader, node: yaml.Node) -> NumberText:
    return NumberText(loader.construct_scalar(node))  # type: ignore[arg-type]


def _raw_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.Node, deep: bool = False) -> Any:
    assert isinstance(node, yaml.MappingNode)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _number_text)
_ExactLoader.add_constructor("tag:yaml.org,2002:int", _number_text)
_ExactLoader.add_constructor("tag:yaml.org,2002:timestamp", _raw_text)
_ExactLoader.add_constructor("tag:yaml.org,2002:map", _unique_mapping)


def load_document(path: Path) -> Any:
    """A YAML (.yaml/.yml) or JSON (.json) file as plain data; number literals come back as
    `NumberText`, their exact text, so 10000.10 stays exactly that."""
    text = read_text(path)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            data = yaml.load(text, Loader=_ExactLoader)  # a SafeLoader subclass: safe
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
            reason = " ".join(p for p in (exc.context, exc.problem) if p) or "not valid YAML"
            raise InputError(where, f"not valid YAML: {reason}") from None
        except yaml.YAMLError as exc:
            raise InputError(str(path), f"not valid YAML: {exc}") from None
    elif suffix == ".json":
        try:
            data = json.loads(
                text, parse_float=NumberText, parse_int=NumberText, object_pairs_hook=_json_object
            )
        except json.JSONDecodeError as exc:
            where = f"{path}, line {exc.lineno}, column {exc.colno}"
            raise InputError(where, f"not valid JSON: {exc.msg}") from None
        except _DuplicateKey as exc:
            raise InputError(str(path), f"not valid JSON: duplicate key {exc.key!r}") from None
    else:
        raise InputError(str(path), "must end in .yaml, .yml or .json")
    if data is None:
        raise InputError(str(path), "is empty")
    return data


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise unreadable(path, exc) from None


def unreadable(path: Path, error: OSError) -> InputError:
    """A file that cannot be opened or read, as bad input: "no such file", or the system's
    reason ("Permission denied")."""
    if isinstance(error, FileNotFoundError):
        return InputError(str(path), "no such file")
    return InputError(str(path), error.strerror or str(error))


def load_message(path: Path, message: M) -> M:
    """Fills `message` from a YAML/JSON file (see `fill`) and returns it."""
    fill(message, load_document(path), str(path))
    return message


def fill(message: Message, data: Any, source: str, path: str = "") -> None:
    """Fills `message` from plain data written with the proto field names (snake_case or
    lowerCamelCase). attain.v1.Decimal fields take a string or a number, kept exact; enums take
    the full name (KPI_SKU_AMOUNT) or the short one (SKU_AMOUNT, sku_amount). Every problem
    names the field path: `source: criteria[0].kpi: reason`."""
    descriptor = message.DESCRIPTOR
    if not isinstance(data, dict):
        raise _bad(
            source, path, f"expected a mapping of {descriptor.name} fields, got {_kind(data)}"
        )
    fields = _fields(descriptor)
    oneofs: dict[str, str] = {}
    for key, value in data.items():
        here = f"{path}.{key}" if path else str(key)
        field = fields.get(str(key))
        if field is None:
            known = ", ".join(f.name for f in descriptor.fields)
            raise _bad(source, here, f"unknown field; {descriptor.name} has {known}")
        group = field.containing_oneof
        if group is not None and value is not None:
            if group.name in oneofs:
                raise _bad(
                    source,
                    path or descriptor.name,
                    f"{oneofs[group.name]} and {field.name} are both set; give one {group.name}",
                )
            oneofs[group.name] = field.name
        if value is None:
            continue  # `key:` with nothing after it in YAML: leave the field unset
        _fill_field(message, field, value, source, here)


def _fields(descriptor: Any) -> dict[str, FieldDescriptor]:  # upb or pure-Python Descriptor
    out: dict[str, FieldDescriptor] = {}
    for field in descriptor.fields:
        out[field.name] = field
        out[field.json_name] = field
    return out


def _fill_field(
    message: Message, field: FieldDescriptor, value: Any, source: str, path: str
) -> None:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        if not isinstance(value, dict):
            raise _bad(source, path, f"expected a mapping, got {_kind(value)}")
        key_field = field.message_type.fields_by_name["key"]
        value_field = field.message_type.fields_by_name["value"]
        target = getattr(message, field.name)
        for k, v in value.items():
            item_path = f"{path}.{k}"
            key = _scalar(key_field, k, source, item_path)
            if value_field.message_type is not None:
                _fill_value(target[key], value_field, v, source, item_path)
            else:
                target[key] = _scalar(value_field, v, source, item_path)
        return
    if field.is_repeated:
        if not isinstance(value, list):
            raise _bad(source, path, f"expected a list, got {_kind(value)}")
        target = getattr(message, field.name)
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            if field.message_type is not None:
                _fill_value(target.add(), field, item, source, item_path)
            else:
                target.append(_scalar(field, item, source, item_path))
        return
    if field.message_type is not None:
        _fill_value(getattr(message, field.name), field, value, source, path)
        return
    setattr(message, field.name, _scalar(field, value, source, path))


def _fill_value(
    target: Message, field: FieldDescriptor, value: Any, source: str, path: str
) -> None:
    """Fills one message-typed value (a field, a list item or a map value)."""
    full_name = target.DESCRIPTOR.full_name
    if full_name == "attain.v1.Decimal" and not isinstance(value, dict):
        target.value = decimal_text(value, source, path)  # type: ignore[attr-defined]
    elif full_name == "attain.v1.Decimal":
        fill(
            target, {k: _as_decimal_value(v, source, path) for k, v in value.items()}, source, path
        )
    elif full_name == "google.protobuf.Timestamp":
        assert isinstance(target, Timestamp)
        try:
            target.FromJsonString(str(value).replace("+00:00", "Z"))
        except ValueError:
            raise _bad(source, path, "expected a time like 2026-11-01T00:00:00Z") from None
    else:
        fill(target, value, source, path)


def _as_decimal_value(value: Any, source: str, path: str) -> Any:
    return decimal_text(value, source, path) if not isinstance(value, dict) else value


def decimal_text(value: Any, source: str, path: str) -> str:
    """The exact text of a decimal written as a string or a number (never through a float)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(
            source, path, f'expected a decimal number such as "10000.00", got {_kind(value)}'
        )
    text = str(value).strip()
    if not DECIMAL_RE.match(text):
        raise _bad(
            source,
            path,
            f"{text!r} is not a decimal number such as 10000.00 (no exponent, no separators)",
        )
    return text.removeprefix("+")


def _scalar(field: FieldDescriptor, value: Any, source: str, path: str) -> Any:
    kind = field.type
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return enum_number(field.enum_type, value, source, path)
    if kind == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            raise _bad(source, path, f"expected true or false, got {_kind(value)}")
        return value
    if kind == FieldDescriptor.TYPE_STRING:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _bad(source, path, f"expected text, got {_kind(value)} (quote it)")
        return str(value)
    if kind in _INTEGERS:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise _bad(source, path, f"expected a whole number, got {_kind(value)}")
        try:
            number = int(value)
        except ValueError:
            raise _bad(source, path, f"expected a whole number, got {value!r}") from None
        low, high = _INTEGERS[kind]
        if not low <= number <= high:
            raise _bad(source, path, f"{number} is out of range")
        return number
    raise _bad(source, path, "this field cannot be given in a file")


_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_INTEGERS: dict[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def enum_prefix(enum: EnumDescriptor) -> str:
    """ "KPI_" for Kpi: every enum's zero value is <PREFIX>UNSPECIFIED."""
    return enum.values_by_number[0].name.removesuffix("UNSPECIFIED")


def enum_number(enum: EnumDescriptor, value: Any, source: str, path: str) -> int:
    """An enum value from its full name or its short name, in any case ("sku_amount")."""
    if isinstance(value, int | NumberText) and not isinstance(value, bool):
        number = enum.values_by_number.get(int(value)) if str(value).isdigit() else None
        if number is not None and number.number != 0:
            return int(number.number)
    elif isinstance(value, str):
        name = value.strip().upper().replace("-", "_").replace(" ", "_")
        prefix = enum_prefix(enum)
        for candidate in (name, prefix + name):
            found = enum.values_by_name.get(candidate)
            if found is not None and found.number != 0:
                return int(found.number)
    choices = ", ".join(v.name.removeprefix(enum_prefix(enum)) for v in enum.values if v.number)
    raise _bad(source, path, f"{value!r} is not a {enum.name}; use one of {choices}")


def short_enum(enum: EnumDescriptor, number: int) -> str:
    """The short name of an enum value: TRANSACTION_AMOUNT for KPI_TRANSACTION_AMOUNT."""
    found = enum.values_by_number.get(number)
    return found.name.removeprefix(enum_prefix(enum)) if found is not None else str(number)


def _bad(source: str, path: str, reason: str) -> InputError:
    return InputError(f"{source}: {path}" if path else source, reason)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, NumberText | int):
        return f"the number {value}"
    return repr(value)


# ---------------------------------------------------------------- CSV


class RowError(Exception):
    """A bad row of a CSV file: the column (header name, or "" for the whole row) and why."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}" if column else reason)
        self.column, self.reason = column, reason


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One data row: `line` is the file line it starts on (the header is line 1)."""

    line: int
    values: dict[str, str]
    problem: RowError | None = None

    def get(self, column: str) -> str:
        """The stripped cell, or "" when the column is absent or empty."""
        if self.problem is not None:
            raise self.problem
        return (self.values.get(column) or "").strip()

    def require(self, column: str) -> str:
        value = self.get(column)
        if not value:
            raise RowError(column, "is empty")
        return value

    def decimal(self, column: str) -> str:
        """A required exact decimal cell, as its text."""
        value = self.require(column)
        if not DECIMAL_RE.match(value):
            raise RowError(column, f"{value!r} is not a decimal number such as 12000.50")
        return value.removeprefix("+")


def describe(row_line: int, error: RowError) -> str:
    """`line 7, column level: reason` (or `line 7: reason` for a whole-row problem)."""
    where = f"line {row_line}, column {error.column}" if error.column else f"line {row_line}"
    return f"{where}: {error.reason}"


class CsvFile:
    """A CSV file with a header row (UTF-8, optional BOM), read one row at a time so a file of
    any size never sits in memory. `bytes_read` and `size` drive a progress bar.

        with CsvFile(path, required=["member_id"], optional=["level"]) as rows:
            for row in rows: ...
    """

    def __init__(
        self, path: Path, *, required: Sequence[str], optional: Sequence[str] = ()
    ) -> None:
        self.path = path
        self.required = list(required)
        self.optional = list(optional)
        self.bytes_read = 0
        self.size = 0
        self.header: list[str] = []
        self._raw: BinaryIO | None = None
        self._lines_read = 0
        self._bad_lines: set[int] = set()

    def __enter__(self) -> CsvFile:
        try:
            self._raw = self.path.open("rb")
            self.size = self.path.stat().st_size
        except OSError as exc:
            raise unreadable(self.path, exc) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._raw is not None:
            self._raw.close()

    def __iter__(self) -> Iterator[CsvRow]:
        assert self._raw is not None, "use CsvFile in a with block"
        lines = self._lines(self._raw)
        reader = csv.reader(lines)
        where = f"{self.path}, line 1"
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(str(self.path), "is empty; expected a header row") from None
        except csv.Error as exc:
            raise InputError(where, str(exc)) from None
        if self._bad_lines:
            raise InputError(where, "not UTF-8 text")
        self.header = [h.strip() for h in header]
        expected = ",".join([*self.required, *(f"[{c}]" for c in self.optional)])
        missing = [c for c in self.required if c not in self.header]
        if missing:
            raise InputError(
                where, f"missing column {', '.join(missing)}; the header is {expected}"
            )
        unknown = [c for c in self.header if c not in self.required and c not in self.optional]
        if unknown:
            raise InputError(
                where, f"unknown column {', '.join(unknown)}; the header is {expected}"
            )
        if len(set(self.header)) != len(self.header):
            raise InputError(where, "a column appears twice in the header")
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield CsvRow(start, {}, RowError("", str(exc)))
                continue
            if not cells or all(not c.strip() for c in cells):
                continue  # blank lines are not rows
            problem = None
            if self._bad_lines:
                if any(n in self._bad_lines for n in range(start, reader.line_num + 1)):
                    problem = RowError("", "not UTF-8 text")
                self._bad_lines = {n for n in self._bad_lines if n > reader.line_num}
            if problem is None and len(cells) != len(self.header):
                problem = RowError(
                    "", f"has {len(cells)} fields; the header has {len(self.header)}"
                )
            yield CsvRow(start, dict(zip(self.header, cells, strict=False)), problem)

    def _lines(self, raw: BinaryIO) -> Iterator[str]:
        for chunk in raw:
            self.bytes_read += len(chunk)
            self._lines_read += 1
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError:
                # Reported on the row that holds this line; the rows after it are still read.
                self._bad_lines.add(self._lines_read)
                text = chunk.decode("utf-8", errors="replace")
            yield text.removeprefix("\ufeff") if self._lines_read == 1 else text


def text_lines(path: Path) -> Generator[tuple[int, str]]:
    """(line number, text without its line break) for every line of a UTF-8 file, streamed."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise unreadable(path, exc) from None
    with raw:
        for number, chunk in enumerate(raw, start=1):
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{path}, line {number}", "not UTF-8 text") from None
            text = text.rstrip("\r\n")
            yield number, text.removeprefix("\ufeff") if number == 1 else text
