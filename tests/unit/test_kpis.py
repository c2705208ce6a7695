"""Unit tests of domain/kpis.py: filters, netting of returns, and the incremental tally."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attain_server.domain.kpis import (
    _TOTAL_RE,
    EMPTY,
    Contribution,
    Line,
    ReturnError,
    Sale,
    Tally,
    _plain_total,
    contribution,
    net_lines,
)
from attain_server.domain.model import COUNT_KPIS, Criterion, CriterionFilter, Kpi

JAKARTA = ZoneInfo("Asia/Jakarta")
NOON = datetime(2026, 11, 3, 12, 0, tzinfo=JAKARTA)


D = Decimal


def line(sku: str, category: str, quantity: str, amount: str) -> Line:
    return Line(sku=sku, category=category, quantity=D(quantity), amount=D(amount))


def sale(
    sale_id: str,
    *lines: Line,
    store: str = "S1",
    at: datetime = NOON,
) -> Sale:
    return Sale(id=sale_id, occurred_at=at, store_id=store, lines=tuple(lines))


def criterion(kpi: Kpi, **filters: object) -> Criterion:
    return Criterion(
        id="c1",
        kpi=kpi,
        target_value=D("100"),
        filter=CriterionFilter(**filters),  # type: ignore[arg-type]
    )


def contribute(kpi: Kpi, subject: Sale, **filters: object) -> Contribution:
    return contribution(criterion(kpi, **filters), subject, JAKARTA)


def returned(subject: Sale, *lines: Line) -> Sale:
    return replace(subject, lines=net_lines(subject.lines, tuple(lines)))


# A basket: two fuel lines of one SKU, one oil line, one snack line.
BASKET = sale(
    "T1",
    line("FUEL-95", "fuel", "6", "60.00"),
    line("OIL-1", "lubricant", "1", "25.50"),
    line("FUEL-95", "fuel", "5", "50.00"),
    line("CHIPS", "snack", "2", "4.50"),
)


# --- sum KPIs ----------------------------------------------------------------------------------


class TestTransactionAmount:
    def test_no_filter_sums_every_line(self) -> None:
        assert contribute(Kpi.TRANSACTION_AMOUNT, BASKET) == Contribution(D("140.00"), frozenset())

    def test_sku_filter(self) -> None:
        got = contribute(Kpi.TRANSACTION_AMOUNT, BASKET, skus=("FUEL-95", "CHIPS"))
        assert got.value == D("114.50")

    def test_category_filter(self) -> None:
        got = contribute(Kpi.TRANSACTION_AMOUNT, BASKET, categories=("lubricant",))
        assert got.value == D("25.50")

    def test_sku_and_category_filters_both_apply(self) -> None:
        got = contribute(Kpi.TRANSACTION_AMOUNT, BASKET, skus=("FUEL-95",), categories=("snack",))
        assert got is EMPTY

    def test_store_filter(self) -> None:
        assert contribute(Kpi.TRANSACTION_AMOUNT, BASKET, stores=("S1", "S2")).value == D("140")
        assert contribute(Kpi.TRANSACTION_AMOUNT, BASKET, stores=("S2",)) is EMPTY

    def test_unknown_sku_in_filter_matches_nothing(self) -> None:
        assert contribute(Kpi.TRANSACTION_AMOUNT, BASKET, skus=("NOPE",)) is EMPTY

    def test_keys_are_empty_for_sum_kpis(self) -> None:
        assert contribute(Kpi.TRANSACTION_AMOUNT, BASKET).keys == frozenset()


class TestSkuKpis:
    def test_sku_amount(self) -> None:
        got = contribute(Kpi.SKU_AMOUNT, BASKET, skus=("FUEL-95",))
        assert got == Contribution(D("110.00"), frozenset())

    def test_sku_quantity(self) -> None:
        got = contribute(Kpi.SKU_QUANTITY, BASKET, skus=("FUEL-95",))
        assert got == Contribution(D("11"), frozenset())

    def test_several_skus(self) -> None:
        assert contribute(Kpi.SKU_QUANTITY, BASKET, skus=("FUEL-95", "OIL-1")).value == D("12")
        assert contribute(Kpi.SKU_AMOUNT, BASKET, skus=("OIL-1", "CHIPS")).value == D("30.00")

    def test_with_category_and_store_filters(self) -> None:
        both = {"skus": ("FUEL-95", "OIL-1"), "categories": ("lubricant",)}
        assert contribute(Kpi.SKU_AMOUNT, BASKET, **both).value == D("25.50")
        assert contribute(Kpi.SKU_QUANTITY, BASKET, skus=("FUEL-95",), stores=("S1",)).value == 11
        assert contribute(Kpi.SKU_QUANTITY, BASKET, skus=("FUEL-95",), stores=("S9",)) is EMPTY

    def test_sku_not_in_sale(self) -> None:
        assert contribute(Kpi.SKU_AMOUNT, BASKET, skus=("SKU-123",)) is EMPTY

    def test_empty_sku_set_counts_nothing(self) -> None:
        # Validation forbids it; if it slipped through, nothing is "in an empty SKU set".
        assert contribute(Kpi.SKU_AMOUNT, BASKET) is EMPTY
        assert contribute(Kpi.SKU_QUANTITY, BASKET) is EMPTY

    def test_fractional_quantities_stay_exact(self) -> None:
        litres = sale("T", line("FUEL", "fuel", "0.1", "1.01"), line("FUEL", "fuel", "0.2", "2.02"))
        got = contribute(Kpi.SKU_QUANTITY, litres, skus=("FUEL",))
        assert got.value == D("0.3")
        assert str(got.value) == "0.3"


# --- minimum per transaction -------------------------------------------------------------------


class TestMinimums:
    @pytest.mark.parametrize(
        ("amount", "counts"), [("9.99", False), ("10.00", True), ("10", True), ("10.01", True)]
    )
    def test_minimum_purchase_value_of_10(self, amount: str, counts: bool) -> None:
        # "minimum purchase value of $10"
        purchase = sale("T", line("A", "x", "1", amount))
        for kpi in (Kpi.TRANSACTION_AMOUNT, Kpi.TRANSACTION_COUNT, Kpi.VISIT_COUNT):
            got = contribute(kpi, purchase, min_transaction_amount=D("10"))
            assert (got is not EMPTY) is counts, kpi

    @pytest.mark.parametrize(
        ("litres", "counts"), [("9.999", False), ("10", True), ("10.000", True), ("12.5", True)]
    )
    def test_minimum_10_litres_per_transaction(self, litres: str, counts: bool) -> None:
        # "minimum 10 litres per transaction"
        fill = sale("T", line("FUEL", "fuel", litres, "150.00"))
        got = contribute(Kpi.SKU_QUANTITY, fill, skus=("FUEL",), min_transaction_quantity=D("10"))
        assert got.value == (D(litres) if counts else 0)
        assert contribute(Kpi.TRANSACTION_COUNT, fill, min_transaction_quantity=D("10")) == (
            Contribution(D(0), frozenset({"T"})) if counts else EMPTY
        )

    def test_minimum_quantity_sums_the_lines_of_one_transaction(self) -> None:
        fill = sale("T", line("FUEL", "fuel", "6", "60"), line("FUEL", "fuel", "4", "40"))
        got = contribute(Kpi.SKU_QUANTITY, fill, skus=("FUEL",), min_transaction_quantity=D("10"))
        assert got.value == D("10")

    def test_minimum_is_on_the_qualifying_amount_only(self) -> None:
        # 114.50 of the basket is fuel or snack, but only 25.50 is lubricant.
        lubricant = {"categories": ("lubricant",)}
        got = contribute(
            Kpi.TRANSACTION_AMOUNT, BASKET, min_transaction_amount=D("30"), **lubricant
        )
        assert got is EMPTY
        got = contribute(
            Kpi.TRANSACTION_AMOUNT, BASKET, min_transaction_amount=D("25.5"), **lubricant
        )
        assert got.value == D("25.50")

    def test_both_minimums_must_hold(self) -> None:
        fill = sale("T", line("FUEL", "fuel", "12", "9.00"))
        minimums = {"min_transaction_amount": D("10"), "min_transaction_quantity": D("10")}
        assert contribute(Kpi.TRANSACTION_AMOUNT, fill, **minimums) is EMPTY
        bigger = sale("T", line("FUEL", "fuel", "12", "10.00"))
        assert contribute(Kpi.TRANSACTION_AMOUNT, bigger, **minimums).value == D("10.00")

    def test_partial_return_below_the_minimum_removes_the_sale_from_the_count(self) -> None:
        crit = criterion(Kpi.TRANSACTION_COUNT, min_transaction_amount=D("10"))
        original = sale("T", line("A", "x", "2", "12.00"))
        tally = Tally()
        before = contribution(crit, original, JAKARTA)
        tally.apply(EMPTY, before)
        assert tally.value(Kpi.TRANSACTION_COUNT) == 1
        after_return = returned(original, line("A", "x", "1", "6.00"))
        after = contribution(crit, after_return, JAKARTA)
        assert after is EMPTY
        tally.apply(before, after)
        assert tally.value(Kpi.TRANSACTION_COUNT) == 0
        assert tally.key_counts == {}


# --- count KPIs --------------------------------------------------------------------------------


class TestTransactionCount:
    def test_a_sale_counts_once_by_its_id(self) -> None:
        assert contribute(Kpi.TRANSACTION_COUNT, BASKET) == Contribution(D(0), frozenset({"T1"}))

    def test_filters(self) -> None:
        assert contribute(Kpi.TRANSACTION_COUNT, BASKET, skus=("OIL-1",)).keys == {"T1"}
        assert contribute(Kpi.TRANSACTION_COUNT, BASKET, skus=("NOPE",)) is EMPTY
        assert contribute(Kpi.TRANSACTION_COUNT, BASKET, categories=("snack",)).keys == {"T1"}
        assert contribute(Kpi.TRANSACTION_COUNT, BASKET, categories=("tyres",)) is EMPTY
        assert contribute(Kpi.TRANSACTION_COUNT, BASKET, stores=("S1",)).keys == {"T1"}
        assert contribute(Kpi.TRANSACTION_COUNT, BASKET, stores=("S2",)) is EMPTY

    def test_a_free_sale_does_not_count(self) -> None:
        free = sale("T", line("A", "x", "1", "0"))
        assert contribute(Kpi.TRANSACTION_COUNT, free) is EMPTY

    def test_a_fully_returned_sale_no_longer_counts(self) -> None:
        crit = criterion(Kpi.TRANSACTION_COUNT)
        tally = Tally()
        before = contribution(crit, BASKET, JAKARTA)
        tally.apply(EMPTY, before)
        emptied = returned(BASKET, *BASKET.lines)
        assert all(ln.quantity == 0 and ln.amount == 0 for ln in emptied.lines)
        after = contribution(crit, emptied, JAKARTA)
        assert after is EMPTY
        tally.apply(before, after)
        assert tally.value(Kpi.TRANSACTION_COUNT) == 0

    def test_a_fully_returned_sale_contributes_nothing_to_any_kpi(self) -> None:
        emptied = returned(BASKET, *BASKET.lines)
        zero = {"min_transaction_amount": D(0), "min_transaction_quantity": D(0)}
        for kpi in Kpi:
            assert contribute(kpi, emptied, skus=("FUEL-95",), **zero) is EMPTY, kpi

    def test_a_partial_return_keeps_the_count(self) -> None:
        partly = returned(BASKET, line("CHIPS", "snack", "2", "4.50"))
        assert contribute(Kpi.TRANSACTION_COUNT, partly).keys == {"T1"}
        # ...but not under a filter whose only line went back.
        assert contribute(Kpi.TRANSACTION_COUNT, partly, categories=("snack",)) is EMPTY


class TestVisitCount:
    def test_key_is_store_and_local_date(self) -> None:
        assert contribute(Kpi.VISIT_COUNT, BASKET).keys == {"S1|2026-11-03"}

    def test_local_date_in_the_brand_zone(self) -> None:
        # 18:30 UTC on the 2nd is 01:30 on the 3rd in Jakarta (UTC+7).
        late = sale("T", line("A", "x", "1", "1"), at=datetime(2026, 11, 2, 18, 30, tzinfo=UTC))
        assert contribute(Kpi.VISIT_COUNT, late).keys == {"S1|2026-11-03"}
        offset = timezone(timedelta(hours=-5))
        evening = sale(
            "T", line("A", "x", "1", "1"), at=datetime(2026, 11, 2, 11, 0, tzinfo=offset)
        )
        assert contribute(Kpi.VISIT_COUNT, evening).keys == {"S1|2026-11-02"}

    def test_two_sales_same_store_same_day_are_one_visit(self) -> None:
        crit = criterion(Kpi.VISIT_COUNT)
        tally = Tally()
        morning = sale("T1", line("A", "x", "1", "5"), at=NOON.replace(hour=8))
        evening = sale("T2", line("B", "y", "1", "7"), at=NOON.replace(hour=20))
        other_store = sale("T3", line("B", "y", "1", "7"), store="S2")
        next_day = sale("T4", line("B", "y", "1", "7"), at=NOON + timedelta(days=1))
        for each in (morning, evening, other_store, next_day):
            tally.apply(EMPTY, contribution(crit, each, JAKARTA))
        assert tally.value(Kpi.VISIT_COUNT) == 3
        assert tally.key_counts == {"S1|2026-11-03": 2, "S2|2026-11-03": 1, "S1|2026-11-04": 1}

    def test_filters(self) -> None:
        assert contribute(Kpi.VISIT_COUNT, BASKET, skus=("CHIPS",)).keys == {"S1|2026-11-03"}
        assert contribute(Kpi.VISIT_COUNT, BASKET, skus=("NOPE",)) is EMPTY
        assert contribute(Kpi.VISIT_COUNT, BASKET, categories=("fuel",)).keys == {"S1|2026-11-03"}
        assert contribute(Kpi.VISIT_COUNT, BASKET, categories=("tyres",)) is EMPTY
        assert contribute(Kpi.VISIT_COUNT, BASKET, stores=("S1",)).keys == {"S1|2026-11-03"}
        assert contribute(Kpi.VISIT_COUNT, BASKET, stores=("S2",)) is EMPTY

    def test_returned_purchase_drops_its_visit_unless_another_purchase_remains(self) -> None:
        crit = criterion(Kpi.VISIT_COUNT)
        tally = Tally()
        alone = sale("T1", line("A", "x", "1", "5"), store="S1")
        first = sale("T2", line("A", "x", "1", "5"), store="S2", at=NOON.replace(hour=9))
        second = sale("T3", line("B", "y", "1", "8"), store="S2", at=NOON.replace(hour=17))
        for each in (alone, first, second):
            tally.apply(EMPTY, contribution(crit, each, JAKARTA))
        assert tally.value(Kpi.VISIT_COUNT) == 2
        for original in (alone, first):
            after = contribution(crit, returned(original, *original.lines), JAKARTA)
            tally.apply(contribution(crit, original, JAKARTA), after)
        # S1's only purchase went back; S2 still has T3 that day.
        assert tally.value(Kpi.VISIT_COUNT) == 1
        assert tally.key_counts == {"S2|2026-11-03": 1}


class TestDistinctCategories:
    def test_categories_of_lines(self) -> None:
        got = contribute(Kpi.DISTINCT_CATEGORIES, BASKET)
        assert got == Contribution(D(0), frozenset({"fuel", "lubricant", "snack"}))

    def test_filters(self) -> None:
        assert contribute(Kpi.DISTINCT_CATEGORIES, BASKET, skus=("OIL-1", "CHIPS")).keys == {
            "lubricant",
            "snack",
        }
        both = contribute(Kpi.DISTINCT_CATEGORIES, BASKET, categories=("fuel", "tyres"))
        assert both.keys == {"fuel"}
        assert contribute(Kpi.DISTINCT_CATEGORIES, BASKET, stores=("S1",)).keys == {
            "fuel",
            "lubricant",
            "snack",
        }
        assert contribute(Kpi.DISTINCT_CATEGORIES, BASKET, stores=("S2",)) is EMPTY

    def test_a_category_needs_a_quantity(self) -> None:
        # A line reduced to an amount with no quantity (a price refund) adds no category.
        refunded = returned(BASKET, line("CHIPS", "snack", "2", "0"))
        assert contribute(Kpi.DISTINCT_CATEGORIES, refunded).keys == {"fuel", "lubricant"}

    def test_category_dropped_when_its_only_line_was_returned(self) -> None:
        crit = criterion(Kpi.DISTINCT_CATEGORIES)
        tally = Tally()
        other = sale("T9", line("FUEL-95", "fuel", "1", "10"))
        tally.apply(EMPTY, contribution(crit, other, JAKARTA))
        before = contribution(crit, BASKET, JAKARTA)
        tally.apply(EMPTY, before)
        assert tally.value(Kpi.DISTINCT_CATEGORIES) == 3
        no_oil = returned(BASKET, line("OIL-1", "ignored", "1", "25.50"))
        after = contribution(crit, no_oil, JAKARTA)
        tally.apply(before, after)
        assert tally.value(Kpi.DISTINCT_CATEGORIES) == 2
        assert tally.key_counts == {"fuel": 2, "snack": 1}
        # Returning all of T1's fuel leaves fuel counted by T9.
        later = contribution(crit, returned(no_oil, line("FUEL-95", "fuel", "11", "110")), JAKARTA)
        tally.apply(after, later)
        assert tally.key_counts == {"fuel": 1, "snack": 1}

    def test_minimum_applies(self) -> None:
        got = contribute(Kpi.DISTINCT_CATEGORIES, BASKET, min_transaction_amount=D("140.01"))
        assert got is EMPTY


# --- net_lines ---------------------------------------------------------------------------------


class TestNetLines:
    def test_partial_return_takes_from_the_first_line_of_the_sku_first(self) -> None:
        net = net_lines(BASKET.lines, (line("FUEL-95", "whatever", "7", "65.00"),))
        assert net == (
            line("FUEL-95", "fuel", "0", "0.00"),
            line("OIL-1", "lubricant", "1", "25.50"),
            line("FUEL-95", "fuel", "4", "45.00"),
            line("CHIPS", "snack", "2", "4.50"),
        )

    def test_quantity_and_amount_are_taken_independently(self) -> None:
        net = net_lines(BASKET.lines, (line("FUEL-95", "fuel", "1", "61.00"),))
        assert [(ln.quantity, ln.amount) for ln in net if ln.sku == "FUEL-95"] == [
            (D("5"), D("0")),
            (D("5"), D("49.00")),
        ]

    def test_full_return_keeps_lines_at_zero(self) -> None:
        net = net_lines(BASKET.lines, BASKET.lines)
        assert [ln.sku for ln in net] == [ln.sku for ln in BASKET.lines]
        assert all(ln.quantity == 0 and ln.amount == 0 for ln in net)

    def test_successive_returns_net_down(self) -> None:
        once = net_lines(BASKET.lines, (line("CHIPS", "snack", "1", "2.25"),))
        twice = net_lines(once, (line("CHIPS", "snack", "1", "2.25"),))
        assert twice[3] == line("CHIPS", "snack", "0", "0.00")
        assert twice[:3] == BASKET.lines[:3]

    def test_return_without_lines_changes_nothing(self) -> None:
        assert net_lines(BASKET.lines, ()) == BASKET.lines

    def test_unknown_sku(self) -> None:
        with pytest.raises(ReturnError) as caught:
            net_lines(BASKET.lines, (line("CHIPS", "snack", "1", "1"), line("GUM", "x", "1", "1")))
        assert caught.value.field == "lines[1].sku"
        assert str(caught.value) == "SKU 'GUM' is not in the original transaction"
        assert caught.value.reason == str(caught.value)
        assert isinstance(caught.value, ValueError)

    def test_more_quantity_than_sold(self) -> None:
        with pytest.raises(ReturnError) as caught:
            net_lines(BASKET.lines, (line("OIL-1", "lubricant", "2", "25.50"),))
        assert caught.value.field == "lines[0].quantity"
        assert str(caught.value) == (
            "cannot return more than was sold: quantity 2 of SKU 'OIL-1' returned"
            " but only 1 is left"
        )

    def test_more_amount_than_sold(self) -> None:
        with pytest.raises(ReturnError) as caught:
            net_lines(BASKET.lines, (line("OIL-1", "lubricant", "1", "25.51"),))
        assert caught.value.field == "lines[0].amount"
        assert "cannot return more than was sold" in str(caught.value)
        assert "25.51" in str(caught.value) and "25.50" in str(caught.value)

    def test_a_sku_over_several_lines_is_limited_by_its_total(self) -> None:
        assert net_lines(BASKET.lines, (line("FUEL-95", "fuel", "11", "110.00"),))
        with pytest.raises(ReturnError) as caught:
            net_lines(BASKET.lines, (line("FUEL-95", "fuel", "11.5", "1"),))
        assert caught.value.field == "lines[0].quantity"

    def test_two_lines_of_one_return_together_exceed(self) -> None:
        twice = (line("CHIPS", "snack", "2", "4.50"), line("CHIPS", "snack", "1", "0"))
        with pytest.raises(ReturnError) as caught:
            net_lines(BASKET.lines, twice)
        assert caught.value.field == "lines[1].quantity"

    def test_two_returns_together_exceed(self) -> None:
        first = net_lines(BASKET.lines, (line("FUEL-95", "fuel", "8", "80"),))
        with pytest.raises(ReturnError) as caught:
            net_lines(first, (line("CHIPS", "snack", "1", "1"), line("FUEL-95", "fuel", "4", "30")))
        assert caught.value.field == "lines[1].quantity"
        assert "only 3 is left" in str(caught.value)
        with pytest.raises(ReturnError) as caught:
            net_lines(first, (line("FUEL-95", "fuel", "3", "30.01"),))
        assert caught.value.field == "lines[0].amount"
        assert "only 30.00 is left" in str(caught.value)


class TestValues:
    def test_lines_refuse_floats_ints_and_negatives(self) -> None:
        with pytest.raises(TypeError):
            Line("A", "x", 1.5, D("1"))  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            Line("A", "x", D("1"), 2)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=">= 0"):
            Line("A", "x", D("-1"), D("1"))
        with pytest.raises(ValueError, match="finite"):
            Line("A", "x", D("1"), D("NaN"))

    def test_sales_refuse_naive_times(self) -> None:
        with pytest.raises(ValueError, match="aware"):
            Sale("T", datetime(2026, 11, 3, 12, 0), "S1", ())  # noqa: DTZ001

    def test_values_are_frozen(self) -> None:
        with pytest.raises(AttributeError):
            BASKET.id = "other"  # type: ignore[misc]


# --- Tally -------------------------------------------------------------------------------------


class TestTally:
    def test_sum_kpi(self) -> None:
        tally = Tally()
        first = Contribution(D("4000.00"), frozenset())
        second = Contribution(D("5500.00"), frozenset())
        tally.apply(EMPTY, first)
        tally.apply(EMPTY, second)
        assert tally.value(Kpi.TRANSACTION_AMOUNT) == D("9500.00")
        tally.apply(second, Contribution(D("5000.00"), frozenset()))
        assert tally.value(Kpi.SKU_AMOUNT) == D("9000.00")

    def test_same_contribution_twice_changes_nothing(self) -> None:
        tally = Tally()
        seen = Contribution(D("5"), frozenset({"a", "b"}))
        tally.apply(EMPTY, seen)
        snapshot = tally.to_json()
        tally.apply(seen, seen)
        assert tally.to_json() == snapshot

    def test_refuses_to_go_below_zero_and_changes_nothing(self) -> None:
        tally = Tally()
        tally.apply(EMPTY, Contribution(D("1"), frozenset({"a"})))
        with pytest.raises(ValueError, match="key 'b'"):
            tally.apply(Contribution(D("1"), frozenset({"a", "b"})), EMPTY)
        with pytest.raises(ValueError, match="total"):
            tally.apply(Contribution(D("2"), frozenset()), EMPTY)
        assert tally.total == D("1")
        assert tally.key_counts == {"a": 1}

    def test_count_value_is_the_number_of_keys(self) -> None:
        tally = Tally(key_counts={"a": 3, "b": 1})
        for kpi in COUNT_KPIS:
            got = tally.value(kpi)
            assert got == 2 and type(got) is Decimal

    def test_json_round_trip(self) -> None:
        tally = Tally(total=D("10200.50"), key_counts={"S2|2026-11-03": 2, "S1|2026-11-01": 1})
        data = tally.to_json()
        assert data == {
            "total": "10200.50",
            "key_counts": {"S1|2026-11-01": 1, "S2|2026-11-03": 2},
        }
        back = Tally.from_json(json.loads(json.dumps(data)))
        assert back == tally
        assert str(back.total) == "10200.50"
        assert Tally.from_json(Tally().to_json()) == Tally()

    def test_json_round_trip_without_exponent(self) -> None:
        tally = Tally(total=D("1E+3"))
        assert tally.to_json()["total"] == "1000"
        assert Tally.from_json(tally.to_json()).total == 1000

    @pytest.mark.parametrize(
        "data",
        [
            {"total": 1.5, "key_counts": {}},
            {"total": "1e3", "key_counts": {}},
            {"total": "NaN", "key_counts": {}},
            {"total": "1", "key_counts": []},
            {"total": "1", "key_counts": {"a": 0}},
            {"total": "1", "key_counts": {"a": True}},
            {"total": "1", "key_counts": {"a": "1"}},
        ],
    )
    def test_from_json_refuses_garbage(self, data: dict[str, object]) -> None:
        with pytest.raises(ValueError):
            Tally.from_json(data)

    @given(
        st.one_of(
            st.text(alphabet="0123456789.-+e \n٣", max_size=12),
            st.from_regex(r"\A-?[0-9]{1,6}(\.[0-9]{1,4})?\Z"),
        )
    )
    def test_the_quick_total_check_accepts_only_what_the_rule_accepts(self, text: str) -> None:
        quick = _plain_total(text)
        assert quick == bool(text.isascii() and _TOTAL_RE.match(text) and "\n" not in text)
        data = {"total": text, "key_counts": {}}
        try:
            read: object = Tally.from_json(data)
        except ValueError:
            read = ValueError
        assert quick <= (read is not ValueError)
        if quick:
            assert read == Tally(total=Decimal(text))


# --- property: incremental == from scratch -----------------------------------------------------

SKUS = ("A", "B", "C")
CATEGORIES = ("x", "y", "z")
STORES = ("S1", "S2")
ZONES = (UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-5)))


def decimals(max_units: int = 3000) -> st.SearchStrategy[Decimal]:
    """0 to max_units hundredths-or-coarser: 0-2 decimals, built from integers (never floats)."""
    return st.builds(
        lambda units, places: Decimal(units).scaleb(-places),
        st.integers(0, max_units),
        st.integers(0, 2),
    )


lines_strategy = st.builds(
    Line,
    sku=st.sampled_from(SKUS),
    category=st.sampled_from(CATEGORIES),
    quantity=decimals(),
    amount=decimals(),
)


@st.composite
def filters(draw: st.DrawFn) -> CriterionFilter:
    def subset(items: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(draw(st.lists(st.sampled_from(items), unique=True, max_size=len(items))))

    return CriterionFilter(
        skus=subset(SKUS),
        categories=subset(CATEGORIES),
        stores=subset(STORES),
        min_transaction_amount=draw(st.none() | decimals(2000)),
        min_transaction_quantity=draw(st.none() | decimals(2000)),
    )


@st.composite
def sales(draw: st.DrawFn, sale_id: str) -> Sale:
    # Times near local midnight in Jakarta, in several offsets, so the local day matters.
    minutes = draw(st.integers(-3 * 24 * 60, 3 * 24 * 60))
    at = datetime(2026, 11, 10, 17, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return Sale(
        id=sale_id,
        occurred_at=at.astimezone(draw(st.sampled_from(ZONES))),
        store_id=draw(st.sampled_from(STORES)),
        lines=tuple(draw(st.lists(lines_strategy, min_size=1, max_size=4))),
    )


def hundredths(value: Decimal) -> int:
    return int(value.scaleb(2))


@st.composite
def valid_returns(draw: st.DrawFn, current: tuple[Line, ...]) -> tuple[Line, ...]:
    """Return lines within what is left per SKU, sometimes split over two lines of one SKU."""
    left_quantity: dict[str, int] = {}
    left_amount: dict[str, int] = {}
    for ln in current:
        left_quantity[ln.sku] = left_quantity.get(ln.sku, 0) + hundredths(ln.quantity)
        left_amount[ln.sku] = left_amount.get(ln.sku, 0) + hundredths(ln.amount)
    chosen = draw(st.lists(st.sampled_from(sorted(left_quantity)), max_size=4))
    out = []
    for sku in chosen:
        everything = draw(st.booleans())
        quantity = left_quantity[sku] if everything else draw(st.integers(0, left_quantity[sku]))
        amount = left_amount[sku] if everything else draw(st.integers(0, left_amount[sku]))
        left_quantity[sku] -= quantity
        left_amount[sku] -= amount
        category = draw(st.sampled_from(CATEGORIES))  # ignored by net_lines
        out.append(Line(sku, category, Decimal(quantity).scaleb(-2), Decimal(amount).scaleb(-2)))
    return tuple(out)


def criteria_for(rules: CriterionFilter) -> list[Criterion]:
    out = []
    for kpi in Kpi:
        # Validation requires a SKU set for the SKU KPIs.
        kpi_rules = (
            rules
            if kpi not in {Kpi.SKU_AMOUNT, Kpi.SKU_QUANTITY} or rules.skus
            else replace(rules, skus=("A",))
        )
        out.append(Criterion(id=kpi.value, kpi=kpi, target_value=D("100"), filter=kpi_rules))
    return out


def assert_all_decimal(c: Contribution) -> None:
    assert type(c.value) is Decimal
    assert all(type(key) is str for key in c.keys)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=filters(), data=st.data())
def test_incremental_tally_equals_recomputing_from_scratch(
    rules: CriterionFilter, data: st.DataObject
) -> None:
    criteria = criteria_for(rules)
    tallies = {crit.id: Tally() for crit in criteria}
    net: dict[str, Sale] = {}

    def apply(before_sale: Sale | None, after_sale: Sale) -> None:
        for crit in criteria:
            before = EMPTY if before_sale is None else contribution(crit, before_sale, JAKARTA)
            after = contribution(crit, after_sale, JAKARTA)
            assert_all_decimal(before)
            assert_all_decimal(after)
            tallies[crit.id].apply(before, after)

    steps = data.draw(st.lists(st.sampled_from(["sale", "return", "again", "bad"]), max_size=14))
    for step in steps:
        if step == "sale" or not net:
            new = data.draw(sales(f"T{len(net) + 1}"))
            net[new.id] = new
            apply(None, new)
            continue
        sale_id = data.draw(st.sampled_from(sorted(net)))
        current = net[sale_id]
        if step == "again":
            # A duplicate delivery of the same sale: before == after, nothing may change.
            snapshot = {key: tally.to_json() for key, tally in tallies.items()}
            apply(current, current)
            assert {key: tally.to_json() for key, tally in tallies.items()} == snapshot
        elif step == "return":
            back = data.draw(valid_returns(current.lines))
            updated = replace(current, lines=net_lines(current.lines, back))
            for ln in updated.lines:
                assert type(ln.quantity) is Decimal and type(ln.amount) is Decimal
                assert ln.quantity >= 0 and ln.amount >= 0
            apply(current, updated)
            net[sale_id] = updated
        else:
            # One hundredth more than is left of a SKU: refused, whichever measure is taken.
            victim = data.draw(st.sampled_from(current.lines))
            left_q = sum((ln.quantity for ln in current.lines if ln.sku == victim.sku), D(0))
            too_much = Line(victim.sku, victim.category, left_q + D("0.01"), D(0))
            with pytest.raises(ReturnError, match="cannot return more than was sold"):
                net_lines(current.lines, (too_much,))

    for crit in criteria:
        scratch_total = D(0)
        scratch_keys: set[str] = set()
        rebuilt = Tally()
        for each in net.values():
            got = contribution(crit, each, JAKARTA)
            scratch_total += got.value
            scratch_keys |= got.keys
            rebuilt.apply(EMPTY, got)
        incremental = tallies[crit.id]
        value = incremental.value(crit.kpi)
        assert type(value) is Decimal
        assert type(incremental.total) is Decimal
        expected = D(len(scratch_keys)) if crit.kpi in COUNT_KPIS else scratch_total
        assert value == expected, crit.kpi
        assert incremental.total == rebuilt.total
        assert incremental.key_counts == rebuilt.key_counts
        assert Tally.from_json(json.loads(json.dumps(incremental.to_json()))) == incremental
