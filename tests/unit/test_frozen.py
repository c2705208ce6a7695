"""quick_init keeps a frozen dataclass's signature, defaults, checks and immutability."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from attain_server.application.ingest import Outcome, OutcomeStatus
from attain_server.domain.frozen import quick_init
from attain_server.domain.kpis import Line
from attain_server.domain.transactions import Transaction, TransactionType


def test_fields_defaults_and_keywords_are_as_declared() -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    line = Line("A", "x", Decimal(1), Decimal("2.50"))
    t = Transaction("T1", "M", now, "S", TransactionType.SALE, (line,))
    assert t.original_id == ""  # the default
    assert t == Transaction(
        id="T1",
        member_id="M",
        occurred_at=now,
        store_id="S",
        type=TransactionType.SALE,
        lines=(line,),
    )
    assert hash(t) == hash(dataclasses.replace(t))
    assert dataclasses.replace(t, store_id="S2").store_id == "S2"
    outcome = Outcome("T1", OutcomeStatus.DUPLICATE)
    assert (outcome.error, outcome.touched, outcome.awards) == (None, (), ())


def test_post_init_still_checks_and_instances_stay_frozen() -> None:
    with pytest.raises(TypeError, match="quantity must be a Decimal"):
        Line("A", "x", 1.5, Decimal(1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="amount must be a finite decimal"):
        Line("A", "x", Decimal(1), Decimal(-1))
    line = Line("A", "x", Decimal(1), Decimal(1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        line.sku = "B"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Line("A", "x", Decimal(1))  # type: ignore[call-arg]


def test_classes_it_does_not_cover_are_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(slots=True)
    class Mutable:
        a: int

    for cls in (NoSlots, Factory, Mutable):
        with pytest.raises(TypeError):
            quick_init(cls)


def test_outcome_fields_are_in_the_order_with_snapshots_passes_them() -> None:
    # Recorder._with_snapshots rebuilds an Outcome positionally: a new or moved field must
    # be added there too.
    assert [f.name for f in dataclasses.fields(Outcome)] == [
        "transaction_id",
        "status",
        "error",
        "touched",
        "closed",
        "awards",
        "snapshots",
    ]
