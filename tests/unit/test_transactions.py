"""The quick shape test of a transaction agrees with the full check that gives the reasons."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from attain_server.domain.errors import Violations
from attain_server.domain.kpis import Line
from attain_server.domain.transactions import (
    MAX_LINES,
    Transaction,
    TransactionType,
    check_transaction,
    well_formed,
)

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)

good = st.sampled_from(["A", "SKU-1", "x" * 128, "é"])
bad = st.one_of(
    st.sampled_from(["", " A", "A ", "A\x01B", "x" * 129, "\t"]),
    st.text(alphabet="ab \x00\x1f-", max_size=6),
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
            t = replace(t, occurred_at=NOW + draw(st.sampled_from([5, 6])) * timedelta(minutes=1))
        elif change == 4:
            t = replace(t, lines=draw(st.sampled_from([(), t.lines[:1] * (MAX_LINES + 1)])))
        elif change == 5:
            t = replace(t, original_id=draw(st.sampled_from(["", t.id, "T-0"])))
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
def test_well_formed_exactly_when_the_check_finds_nothing(t: Transaction) -> None:
    v = Violations()
    check_transaction(v, t, NOW, prefix="transaction.")
    assert well_formed(t, NOW) is (not v.items)
    # Asked again (the labels it accepted are now remembered), the same answer.
    assert well_formed(t, NOW) is (not v.items)
