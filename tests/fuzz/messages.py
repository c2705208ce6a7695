"""Hypothesis strategies that build any protobuf message from its descriptor, and a readable repr.

Every field kind gets hostile values (odd Unicode, huge and empty strings, integer extremes,
unknown enum numbers, extreme Timestamps, decimal strings that are not decimals) mixed with
plausible ones (the brand's own member ids, target codes, cycles...), so that a call gets past
"not found" and reaches deep code. How much is hostile is drawn once per example: PLAUSIBLE
sets every field from the hints, MOSTLY turns one field in eight hostile, WILD draws every
field from everything. Hypothesis shrinks towards PLAUSIBLE, unset fields and short lists.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, OneofDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT32_MAX, UINT64_MAX = 2**32 - 1, 2**64 - 1
# The instants a Python datetime can hold, in seconds from the epoch (years 1 and 9999).
MIN_DATETIME_SECONDS, MAX_DATETIME_SECONDS = -62_135_596_800, 253_402_300_799

INT32_EDGES = [0, 1, -1, INT32_MAX, INT32_MIN, 255, 366, 367, 1000, 1001, 3660, 3661, 10_001]
INT64_EDGES = [0, 1, -1, INT64_MAX, INT64_MIN, INT64_MAX - 1, 2**31, 2**53 + 1, 10**18]
SECONDS_EDGES = [
    0,
    -1,
    MIN_DATETIME_SECONDS - 1,
    MIN_DATETIME_SECONDS,
    MAX_DATETIME_SECONDS,
    MAX_DATETIME_SECONDS + 1,
    INT64_MIN,
    INT64_MAX,
    -(10**12),
    10**12,
]
NANOS_EDGES = [0, 999_999_999, 1_000_000_000, -1, INT32_MAX, INT32_MIN]

# Strings that have broken parsers, databases, logs and terminals before.
ODD_STRINGS = [
    "",
    " ",
    "\x00",
    "M-001\x00",
    "\x00\x01\x02\x7f",
    "\t\r\n",
    "\x1b[31mred\x1b[0m",
    "\u202eevil\u202c",  # right-to-left override
    "\u200b",  # zero-width space
    "M\u200d-001",  # zero-width joiner inside a plausible id
    "\ufeffM-001",  # a byte order mark in front
    "\u2028\u2029",  # line and paragraph separators
    "e\u0301",  # a combining accent
    "\ufb01",  # a ligature that NFKC splits
    "İı",  # case mapping that changes length
    "ß",
    "\U0001f600",
    "\U0010ffff",
    "\uffff",
    "\ufffd",
    "%s%n%x",
    "{0}{}",
    "'; DROP TABLE member; --",
    '" OR 1=1 --',
    "../../../../etc/passwd",
    "/dev/zero",
    "${jndi:ldap://x}",
    "\\",
    "*",
    "%",
    "_",
    "NaN",
    "null",
    "[]",
    '{"a": 1}',
]
# Decimal texts that are valid, odd, huge, exponent-bearing or in other scripts.
VALID_DECIMALS = ["0", "1", "10", "100", "0.01", "12.5", "99.99", "100.00", "1000", "10000.00"]
ODD_DECIMALS = [
    "",
    " ",
    "-1",
    "-0",
    "+1",
    "-0.00",
    "00001",
    ".5",
    "5.",
    "1.2.3",
    "--1",
    " 1",
    "1 ",
    "1\x00",
    "1_000",
    "1,000.00",
    "0x10",
    "1e3",
    "1E+3",
    "1e-3",
    "1E+999999999",
    "-1e-999999999",
    "1e9223372036854775807",
    "NaN",
    "-NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "١٢٣",  # Arabic-Indic digits
    "１２３",  # full-width digits
    "𝟗𝟗",  # mathematical bold digits
    "²",
    "9" * 28,
    "9" * 29,
    "-" + "9" * 28,
    "9" * 18 + "." + "9" * 10,
    "0." + "0" * 9 + "1",
    "0." + "0" * 10 + "1",
    "9" * 40,
    "1" + "0" * 400,
    "0." + "0" * 400 + "1",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
]
LONG_LENGTHS = [65, 129, 1001, 4097, 70_000]
# A list this long is past every list limit the API should have.
LARGE_LIST = 10_001
# ... unless its elements are big: a list of messages stays under gRPC's 4 MB message limit.
MAX_LIST_BYTES = 3_000_000


class Mode(enum.Enum):
    PLAUSIBLE = "plausible"
    MOSTLY = "mostly"
    WILD = "wild"


@dataclass(frozen=True)
class Hints:
    """Plausible values by field: "Message.field" first, then "field" (the bare name).

    `strings` and `ints` give element values (also for repeated fields); `sizes` gives the
    plausible length of a repeated field; `now_seconds` centres plausible Timestamps.
    `seeds` are valid messages by full type name: half the messages of such a type start
    from one, with some fields redrawn, so that a call passes validation often enough to
    reach the code behind it.
    """

    strings: Mapping[str, st.SearchStrategy[str]] = field(default_factory=dict)
    ints: Mapping[str, st.SearchStrategy[int]] = field(default_factory=dict)
    sizes: Mapping[str, st.SearchStrategy[int]] = field(default_factory=dict)
    now_seconds: int = 1_795_000_000
    seeds: Mapping[str, Sequence[Message]] = field(default_factory=dict)

    def lookup(self, table: Mapping[str, Any], fd: FieldDescriptor) -> Any:
        owner = fd.containing_type.name if fd.containing_type is not None else ""
        return table.get(f"{owner}.{fd.name}", table.get(fd.name))


def long_strings() -> st.SearchStrategy[str]:
    return st.builds(
        lambda n, c: c * n, st.sampled_from(LONG_LENGTHS), st.sampled_from(["x", "é", "\U0001f600"])
    )


# The odd strings most likely to break something, drawn more often than the rest: NUL
# (PostgreSQL refuses it in text), emptiness, a bidi override, and one over any text limit.
NUL_STRINGS = ["\x00", "M-001\x00"]
WORST_STRINGS = ["", "\u202eevil\u202c", "x" * 70_000]


def hostile_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NUL_STRINGS),
        st.sampled_from(WORST_STRINGS),
        st.sampled_from(ODD_STRINGS),
        st.text(max_size=24),  # any Unicode but surrogates (not encodable in a proto string)
        long_strings(),
    )


def decimal_text(mode: Mode) -> st.SearchStrategy[str]:
    valid = st.one_of(
        st.sampled_from(VALID_DECIMALS),
        st.decimals(min_value=0, max_value=10**6, places=2).map(str),
    )
    if mode is Mode.PLAUSIBLE:
        return valid
    return st.one_of(
        valid,
        st.sampled_from(ODD_DECIMALS),
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.text(alphabet="0123456789.-+eE", max_size=40),
    )


@dataclass
class _Drawer:
    """Draws one message tree for one example, in one mode."""

    draw: Callable[[st.SearchStrategy[Any]], Any]
    mode: Mode
    hints: Hints

    def hostile_now(self) -> bool:
        if self.mode is Mode.PLAUSIBLE:
            return False
        if self.mode is Mode.WILD:
            return bool(self.draw(st.booleans()))
        return bool(self.draw(st.integers(0, 7)) == 7)  # shrinks towards plausible

    def message(self, descriptor: Descriptor, depth: int = 0) -> Message:
        msg = message_factory.GetMessageClass(descriptor)()
        special = _SPECIAL.get(descriptor.full_name)
        if special is not None:
            special(self, msg)
            return msg
        seeds = self.hints.seeds.get(descriptor.full_name)
        if seeds and self.draw(st.booleans()):
            return self._mutated(self.draw(st.sampled_from(seeds)), descriptor, depth)
        # By name: upb hands out a new descriptor object on every access.
        chosen = {o.name: self._oneof_choice(o) for o in descriptor.oneofs if not _synthetic(o)}
        for fd in descriptor.fields:
            oneof = fd.containing_oneof
            if oneof is not None and not _synthetic(oneof):
                if chosen[oneof.name] != fd.name:
                    continue
            elif not self._present(fd):
                continue
            self._fill(msg, fd, depth)
        return msg

    def _mutated(self, seed: Message, descriptor: Descriptor, depth: int) -> Message:
        """A copy of `seed` with some fields redrawn (none in PLAUSIBLE mode)."""
        msg = type(seed)()
        msg.CopyFrom(seed)
        for fd in descriptor.fields:
            if self.hostile_now():
                msg.ClearField(fd.name)
                self._fill(msg, fd, depth)
        return msg

    def _oneof_choice(self, oneof: OneofDescriptor) -> str:
        """The name of the one field to set, or "" for none."""
        options = [f.name for f in oneof.fields]
        if self.mode is not Mode.PLAUSIBLE:
            options.append("")
        return str(self.draw(st.sampled_from(options)))

    def _present(self, fd: FieldDescriptor) -> bool:
        if self.mode is Mode.WILD:
            return bool(self.draw(st.booleans()))
        if self.mode is Mode.MOSTLY:
            return bool(self.draw(st.integers(0, 7)) != 7)
        return True

    def _fill(self, msg: Message, fd: FieldDescriptor, depth: int) -> None:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            self._fill_map(msg, fd, depth)
        elif fd.is_repeated:
            items = self._repeated(fd, depth)
            target = getattr(msg, fd.name)
            if fd.message_type is not None:
                for item in items:
                    target.add().CopyFrom(item)
            else:
                target.extend(items)
        elif fd.message_type is not None:
            getattr(msg, fd.name).CopyFrom(self.message(fd.message_type, depth + 1))
        else:
            setattr(msg, fd.name, self.scalar(fd))

    def _repeated(self, fd: FieldDescriptor, depth: int) -> list[Any]:
        size = self._size(fd)
        if size == LARGE_LIST:
            if fd.message_type is not None:  # copies of one element: hypothesis draws stay small
                one = self.message(fd.message_type, depth + 1)
                # Past every per-message list limit, but not past what gRPC takes in one
                # message (beyond that it only tests the client's serializer).
                return [one] * min(size, MAX_LIST_BYTES // max(1, one.ByteSize()))
            return [f"X{i}" for i in range(size)] if _is_string(fd) else [1] * size
        if fd.message_type is not None:
            return [self.message(fd.message_type, depth + 1) for _ in range(size)]
        return [self.scalar(fd) for _ in range(size)]

    def _size(self, fd: FieldDescriptor) -> int:
        plausible = self.hints.lookup(self.hints.sizes, fd)
        if plausible is None:
            plausible = st.integers(1, 3)
        if self.mode is Mode.PLAUSIBLE or not self.hostile_now():
            return int(self.draw(plausible))
        return int(self.draw(st.sampled_from([0, 1, 2, 3, 4, 5, 0, 1, LARGE_LIST])))

    def _fill_map(self, msg: Message, fd: FieldDescriptor, depth: int) -> None:
        entry = fd.message_type
        assert entry is not None
        key_fd, value_fd = entry.fields_by_name["key"], entry.fields_by_name["value"]
        target = getattr(msg, fd.name)
        for _ in range(self.draw(st.integers(0, 3))):
            key = self.scalar(key_fd, hint_from=fd)
            if value_fd.message_type is not None:
                target[key].CopyFrom(self.message(value_fd.message_type, depth + 1))
            else:
                target[key] = self.scalar(value_fd)

    def scalar(self, fd: FieldDescriptor, hint_from: FieldDescriptor | None = None) -> Any:
        named = hint_from or fd
        hostile = self.hostile_now()
        if fd.type == FieldDescriptor.TYPE_STRING:
            hint = self.hints.lookup(self.hints.strings, named)
            plausible = hint if hint is not None else _word()
            return self.draw(hostile_text() if hostile else plausible)
        if fd.type == FieldDescriptor.TYPE_BOOL:
            return self.draw(st.booleans())
        if fd.type == FieldDescriptor.TYPE_ENUM:
            assert fd.enum_type is not None
            known = [v.number for v in fd.enum_type.values]
            if hostile:
                return self.draw(st.one_of(st.sampled_from(known), _ints(32, signed=True)))
            return self.draw(st.sampled_from([n for n in known if n] or known))
        if fd.type == FieldDescriptor.TYPE_BYTES:
            return self.draw(st.binary(max_size=64))
        if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return self.draw(st.floats(width=32 if fd.type == FieldDescriptor.TYPE_FLOAT else 64))
        bits, signed = _INT_KINDS[fd.type]
        if hostile:
            return self.draw(_ints(bits, signed))
        hint = self.hints.lookup(self.hints.ints, named)
        return self.draw(hint if hint is not None else st.integers(0, 10))


def _synthetic(oneof: OneofDescriptor) -> bool:
    """A proto3 `optional` field's oneof, which only carries presence."""
    return len(oneof.fields) == 1 and oneof.name == f"_{oneof.fields[0].name}"


def _is_string(fd: FieldDescriptor) -> bool:
    return bool(fd.type == FieldDescriptor.TYPE_STRING)


def _word() -> st.SearchStrategy[str]:
    return st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=10)


_INT_KINDS: dict[int, tuple[int, bool]] = {
    FieldDescriptor.TYPE_INT32: (32, True),
    FieldDescriptor.TYPE_SINT32: (32, True),
    FieldDescriptor.TYPE_SFIXED32: (32, True),
    FieldDescriptor.TYPE_UINT32: (32, False),
    FieldDescriptor.TYPE_FIXED32: (32, False),
    FieldDescriptor.TYPE_INT64: (64, True),
    FieldDescriptor.TYPE_SINT64: (64, True),
    FieldDescriptor.TYPE_SFIXED64: (64, True),
    FieldDescriptor.TYPE_UINT64: (64, False),
    FieldDescriptor.TYPE_FIXED64: (64, False),
}


def _ints(bits: int, signed: bool) -> st.SearchStrategy[int]:
    if bits == 32:
        lo, hi, edges = (INT32_MIN, INT32_MAX, INT32_EDGES) if signed else (0, UINT32_MAX, [])
    else:
        lo, hi, edges = (INT64_MIN, INT64_MAX, INT64_EDGES) if signed else (0, UINT64_MAX, [])
    edges = [e for e in edges if lo <= e <= hi] + [lo, hi]
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


# ---------------------------------------------------------------- well-known messages


def _timestamp(d: _Drawer, msg: Any) -> None:
    if d.hostile_now():
        msg.seconds = d.draw(st.one_of(st.sampled_from(SECONDS_EDGES), _ints(64, signed=True)))
        msg.nanos = d.draw(st.one_of(st.sampled_from(NANOS_EDGES), _ints(32, signed=True)))
        return
    day = 86_400
    msg.seconds = d.hints.now_seconds + d.draw(st.integers(-45 * day, 10 * day))
    msg.nanos = d.draw(st.sampled_from([0, 500_000_000, 999_999_999]))


def _decimal(d: _Drawer, msg: Any) -> None:
    msg.value = d.draw(decimal_text(Mode.WILD if d.hostile_now() else Mode.PLAUSIBLE))


def _field_mask(d: _Drawer, msg: Any) -> None:
    paths = d.hints.strings.get("FieldMask.paths", _word())
    for _ in range(d.draw(st.integers(0 if d.mode is Mode.WILD else 1, 3))):
        msg.paths.append(d.draw(hostile_text() if d.hostile_now() else paths))


_SPECIAL: dict[str, Callable[[_Drawer, Any], None]] = {
    "google.protobuf.Timestamp": _timestamp,
    "attain.v1.Decimal": _decimal,
    "google.protobuf.FieldMask": _field_mask,
}


def messages(descriptor: Descriptor, hints: Hints) -> st.SearchStrategy[Message]:
    """Messages of `descriptor`'s type, each drawn in a mode of its own."""

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        mode = draw(st.sampled_from(list(Mode)))
        return _Drawer(draw, mode, hints).message(descriptor)

    return build()


# ---------------------------------------------------------------- readable output


def describe(msg: Message, limit: int = 60) -> str:
    """A message as Python that rebuilds it: ``Transaction(id='T\\x00', lines=[...])``, with
    long strings and lists abbreviated (``'x' * 70000``)."""
    parts = []
    for fd, value in msg.ListFields():
        parts.append(f"{fd.name}={_value(fd, value, limit)}")
    return f"{msg.DESCRIPTOR.name}({', '.join(parts)})"


def _value(fd: FieldDescriptor, value: Any, limit: int) -> str:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        value_fd = fd.message_type.fields_by_name["value"]
        items = [f"{_text(k, limit)}: {_one(value_fd, v, limit)}" for k, v in value.items()]
        return "{" + ", ".join(items) + "}"
    if fd.is_repeated:
        return _sequence([_one(fd, v, limit) for v in value[:4]], len(value))
    return _one(fd, value, limit)


def _one(fd: FieldDescriptor, value: Any, limit: int) -> str:
    if isinstance(value, Message):
        return describe(value, limit)
    if fd.type == FieldDescriptor.TYPE_ENUM and fd.enum_type is not None:
        known = fd.enum_type.values_by_number.get(value)
        return known.name if known is not None else str(value)
    if isinstance(value, str):
        return _text(value, limit)
    return repr(value)


def _sequence(shown: Sequence[str], total: int) -> str:
    more = f", ... ({total} items)" if total > len(shown) else ""
    return "[" + ", ".join(shown) + more + "]"


def _text(value: Any, limit: int) -> str:
    if not isinstance(value, str) or len(value) <= limit:
        return repr(value)
    if len(set(value)) == 1:
        return f"{value[0]!r} * {len(value)}"
    return f"{value[:limit]!r} + ... ({len(value)} characters)"
