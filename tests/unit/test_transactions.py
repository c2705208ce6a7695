"""The shape check of a transaction: what it refuses and the reasons it gives."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attain_server.domain.decimals import DecimalFormatError
from attain_server.domain.errors import Violations
from attain_server.domain.kpis import Line
from attain_server.domain.transactions import (
    MAX_LINES,
    MAX_YEAR,
    MIN_YEAR,
    NegativeAmount,
    Transaction,
    TransactionType,
    check_transaction,
    parse_amount,
)
from attain_server.domain.validation import label_error

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)

good = st.sampled_from(["A", "SKU-1", "x" * 128, "é"])
bad = st.one_of(
    st.sampled_from(["", " A", "A ", "A\x01B", "x" * 129, "\t", "A\x7fB", "A\x85B", "\x9f"]),
    st.text(alphabet="ab \x00\x1f\x7f\x80\x9f-", max_size=6),
)
# Instants on either side of the supported years and of the future tolerance.
times = st.sampled_from(
    [
        NOW + timedelta(minutes=5),
        NOW + timedelta(minutes=6),
        datetime(1900, 1, 1, tzinfo=UTC),
        datetime(1900, 1, 1, tzinfo=UTC) - timedelta(microseconds=1),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(3000, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, tzinfo=UTC),
    ]
)
amounts = st.sampled_from([Decimal(5), Decimal("0.01"), Decimal(0), Decimal("0.00")])


@st.composite
def transactions(draw: st.DrawFn) -> Transaction:
    """A well-formed sale or return, then none, one or a few of its fields made doubtful."""
    kind = draw(st.sampled_from(TransactionType))
    body = tuple(
        Line(draw(good), draw(st.one_of(good, st.just(""))), Decimal(1), Decimal(2))
        for _ in range(draw(st.integers(1, 3)))
    )
    t = Transaction(
        id=draw(good),
        member_id=draw(good),
        occurred_at=NOW - timedelta(days=1),
        store_id=draw(st.one_of(good, st.just(""))),
        type=kind,
        lines=body,
        original_id="T-0" if kind is TransactionType.RETURN else "",
    )
    for change in draw(st.lists(st.integers(0, 9), max_size=3)):
        if change == 0:
            t = replace(t, id=draw(bad))
        elif change == 1:
            t = replace(t, member_id=draw(bad))
        elif change == 2:
            t = replace(t, store_id=draw(bad))
        elif change == 3:
            t = replace(t, occurred_at=draw(times))
        elif change == 4:
            t = replace(t, lines=draw(st.sampled_from([(), t.lines[:1] * (MAX_LINES + 1)])))
        elif change == 5:
            t = replace(t, original_id=draw(st.one_of(st.sampled_from(["", t.id, "T-0"]), bad)))
        elif change == 6:
            t = replace(t, type=draw(st.sampled_from(TransactionType)))
        else:
            i = draw(st.integers(0, len(t.lines) - 1)) if t.lines else 0
            if t.lines:
                line = t.lines[i]
                line = (
                    replace(line, sku=draw(bad))
                    if change == 7
                    else replace(line, category=draw(bad))
                    if change == 8
                    else replace(line, quantity=draw(amounts), amount=draw(amounts))
                )
                t = replace(t, lines=(*t.lines[:i], line, *t.lines[i + 1 :]))
    return t


@settings(max_examples=1500, deadline=None)
@given(transactions())
def test_each_value_is_refused_exactly_when_its_rule_says_so(t: Transaction) -> None:
    # The check tests each value quickly and asks for the reason only when that test fails:
    # both must agree with the rule, for good and bad values alike.
    found = _violations(t)
    labels = {
        "id": (t.id, True),
        "member_id": (t.member_id, True),
        "store_id": (t.store_id, False),
    }
    if t.type is TransactionType.RETURN and t.original_id and t.original_id != t.id:
        labels["original_transaction_id"] = (t.original_id, True)
    sale = t.type is TransactionType.SALE
    for i, line in enumerate(t.lines if len(t.lines) <= MAX_LINES else ()):
        labels[f"lines[{i}].sku"] = (line.sku, True)
        labels[f"lines[{i}].category"] = (line.category, False)
        bad = line.quantity <= 0 if sale else line.quantity == line.amount == 0
        field = f"lines[{i}].quantity" if sale else f"lines[{i}]"
        assert (field in found) is bad, field
    for field, (value, required) in labels.items():
        expected = label_error(value) if value else ("is required" if required else None)
        assert found.get(field) == expected, field


def _violations(t: Transaction, now: datetime = NOW) -> dict[str, str]:
    v = Violations()
    check_transaction(v, t, now)
    return {item.field: item.reason for item in v.items}


def _sale(**changes: object) -> Transaction:
    t = Transaction(
        "T-1", "M-1", NOW, "S-1", TransactionType.SALE, (Line("A", "c", Decimal(1), Decimal(2)),)
    )
    return replace(t, **changes)  # type: ignore[arg-type]


def test_control_characters_are_refused_in_every_string() -> None:
    for bad_char in ("\x00", "\x1b", "\x7f", "\x80", "\x9f"):
        value = f"A{bad_char}B"
        reason = label_error(value)
        assert reason is not None and f"U+{ord(bad_char):04X}" in reason
        assert _violations(_sale(id=value)) == {"id": reason}
        assert _violations(_sale(store_id=value)) == {"store_id": reason}
        line = Line(value, value, Decimal(1), Decimal(2))
        assert _violations(_sale(lines=(line,))) == {
            "lines[0].sku": reason,
            "lines[0].category": reason,
        }
        back = replace(_sale(id="R-1", original_id=value), type=TransactionType.RETURN)
        assert _violations(back) == {"original_transaction_id": reason}


def test_occurred_time_must_be_in_the_supported_years() -> None:
    assert (MIN_YEAR, MAX_YEAR) == (1900, 2999)
    years = "must be in the years 1900 to 2999"
    for when in (datetime(1, 1, 1, tzinfo=UTC), datetime(1899, 12, 31, 23, 59, tzinfo=UTC)):
        assert _violations(_sale(occurred_at=when)) == {"occurred_time": years}
    # Year 3000 is refused for its year even when the clock is there too.
    late = datetime(3000, 1, 1, tzinfo=UTC)
    assert _violations(_sale(occurred_at=late), now=late) == {"occurred_time": years}
    assert _violations(_sale(occurred_at=datetime(1900, 1, 1, tzinfo=UTC))) == {}


def test_too_many_lines_is_one_violation() -> None:
    bad_line = Line("", "", Decimal(0), Decimal(0))
    t = _sale(lines=(bad_line,) * (MAX_LINES * 5))
    assert _violations(t) == {"lines": "at most 1000 lines per transaction"}


def test_an_amount_reads_with_the_decimal_grammar_and_is_not_negative() -> None:
    assert parse_amount("1234.50") == Decimal("1234.50")
    assert parse_amount("+0") == 0
    assert parse_amount("-0") == 0
    with pytest.raises(NegativeAmount, match=r"^must not be negative$"):
        parse_amount("-0.01")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "is required"),
        ("1e3", "'1e3' is not a decimal number like 1234.50"),
        ("1,000", "'1,000' is not a decimal number like 1234.50"),
        ("0.12345678901", "has more than 10 decimal places"),
    ],
)
def test_a_malformed_amount_says_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(DecimalFormatError) as caught:
        parse_amount(text)
    assert not isinstance(caught.value, NegativeAmount)
    assert str(caught.value) == reason
