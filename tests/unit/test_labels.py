"""Unit tests of the identifier and text rules of domain/validation.py, and of how messages
quote input (domain/errors.py)."""

from __future__ import annotations

import pytest

from attain_server.domain.errors import NotFound, Violations, quoted
from attain_server.domain.validation import check_code, check_label, check_text, label_ok

REFUSED_IN_LABELS = {
    "NUL": "\x00",
    "DEL": "\x7f",
    "NEXT LINE (C1)": "\x85",
    "RIGHT-TO-LEFT OVERRIDE": "\u202e",
    "ZERO WIDTH SPACE": "\u200b",
    "ZERO WIDTH JOINER": "\u200d",
    "BOM": "\ufeff",
    "LINE SEPARATOR": "\u2028",
    "PARAGRAPH SEPARATOR": "\u2029",
    "PRIVATE USE": "\ue000",
    "UNASSIGNED": "\u0378",
    "LONE SURROGATE": "\ud800",
}


@pytest.mark.parametrize("char", REFUSED_IN_LABELS.values(), ids=REFUSED_IN_LABELS.keys())
def test_labels_refuse_controls_format_and_unassigned_characters(char: str) -> None:
    value = f"M{char}1"
    v = Violations()
    check_label(v, "member.external_id", value)
    assert [x.field for x in v.items] == ["member.external_id"]
    assert f"U+{ord(char):04X}" in v.items[0].reason
    assert not label_ok(value)


def test_labels_are_bounded_to_their_column_and_take_any_script() -> None:
    v = Violations()
    check_label(v, "cycle", "2" * 33, limit=32)
    check_label(v, "member_id", "m" * 129)
    for fine in ("m" * 128, "M-001", "Toko Maju", "北区", "Café", "M\u00a0001"):
        check_label(v, "fine", fine)
        assert label_ok(fine)
    assert [(x.field, x.reason) for x in v.items] == [
        ("cycle", "must be at most 32 characters"),
        ("member_id", "must be at most 128 characters"),
    ]


def test_free_text_takes_tab_and_newlines_and_no_other_control() -> None:
    v = Violations()
    check_text(v, "ok", "line one\r\nline two\tand a tab, \u202e and \u200d too")
    assert not v
    for char in ("\x00", "\x1b", "\x7f", "\x9f", "\ud800"):
        check_text(v, "bad", f"a{char}b")
    assert [x.field for x in v.items] == ["bad"] * 5
    check_text(v, "long", "x" * 1001)
    assert v.items[-1].reason == "must be at most 1000 characters"


def test_a_code_is_the_whole_text() -> None:
    """`$` matches before a final newline: "P1" and a newline passed as a code."""
    v = Violations()
    check_code(v, "program.code", "P1\n")
    check_code(v, "program.code", "P1")
    assert [x.field for x in v.items] == ["program.code"]


def test_quoted_cuts_long_input_and_escapes_controls() -> None:
    assert quoted("abc") == "'abc'"
    long = quoted("x" * 1_000_000)
    assert long == repr("x" * 64 + "…") and len(long) < 70
    assert quoted("a\x00b") == "'a\\x00b'"
    assert len(NotFound("member", "m" * 1_000_000).message) < 100
