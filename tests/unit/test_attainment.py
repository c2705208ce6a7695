"""Unit tests of domain/attainment.py: exact percentages, colours, remaining, pace, standings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attain_server.domain.attainment import (
    Colour,
    CriterionStanding,
    Standing,
    attainment_percent,
    colour,
    daily_pace,
    display_percent,
    reaches,
    remaining,
    standing,
    summary,
)
from attain_server.domain.model import Kpi

D = Decimal


TARGET = D("10000.00")


class TestSpecExamples:
    def test_example_1_orange_at_95(self) -> None:
        achieved = D("4000.00") + D("5500.00")
        percent = attainment_percent(achieved, TARGET)
        assert percent == 95
        assert str(percent) == "95"
        assert display_percent(percent) == "95.00"
        assert colour(achieved, TARGET) is Colour.ORANGE
        assert remaining(achieved, TARGET) == 500
        assert not reaches(achieved, TARGET, D(100))

    def test_example_1_green_at_102(self) -> None:
        achieved = D("4000.00") + D("5500.00") + D("700.00")
        percent = attainment_percent(achieved, TARGET)
        assert str(percent) == "102"
        assert display_percent(percent) == "102.00"
        assert colour(achieved, TARGET) is Colour.GREEN
        assert remaining(achieved, TARGET) == 0
        assert reaches(achieved, TARGET, D(100))

    def test_example_1_new_cycle_starts_red_at_zero(self) -> None:
        assert attainment_percent(D(0), TARGET) == 0
        assert display_percent(attainment_percent(D(0), TARGET)) == "0.00"
        assert colour(D(0), TARGET) is Colour.RED
        assert remaining(D(0), TARGET) == TARGET

    def test_example_7_return_leaves_97(self) -> None:
        achieved = D("10200") - D("500")
        percent = attainment_percent(achieved, D("10000"))
        assert display_percent(percent) == "97.00"
        assert colour(achieved, D("10000")) is Colour.ORANGE
        assert remaining(achieved, D("10000")) == 300


class TestColour:
    @pytest.mark.parametrize(
        ("achieved", "expected", "shown"),
        [
            ("0", Colour.RED, "0.00"),
            ("8999", Colour.RED, "89.99"),
            ("8999.99", Colour.RED, "89.99"),
            ("9000", Colour.ORANGE, "90.00"),
            ("9999", Colour.ORANGE, "99.99"),
            ("9999.99", Colour.ORANGE, "99.99"),
            ("10000", Colour.GREEN, "100.00"),
            ("10000.01", Colour.GREEN, "100.00"),
            ("25000", Colour.GREEN, "250.00"),
        ],
    )
    def test_thresholds(self, achieved: str, expected: Colour, shown: str) -> None:
        assert colour(D(achieved), TARGET) is expected
        assert display_percent(attainment_percent(D(achieved), TARGET)) == shown

    def test_non_terminating_division(self) -> None:
        percent = attainment_percent(D(2), D(3))
        assert str(percent).startswith("66.666666666666")
        assert "E" not in str(percent)
        assert display_percent(percent) == "66.66"
        assert colour(D(2), D(3)) is Colour.RED
        one_third = attainment_percent(D(1), D(3))
        assert display_percent(one_third) == "33.33"

    def test_decided_exactly_not_from_a_rounded_percent(self) -> None:
        # 899999999999999999999999999999999999999999 / 10**42 is 89.99...% however many 9s:
        # a percentage rounded up would show 90; the exact comparison says RED.
        target = D(10) ** 42
        achieved = D("8" + "9" * 41)
        assert colour(achieved, target) is Colour.RED
        assert display_percent(attainment_percent(achieved, target)) == "89.99"
        # 3 of 3.3333...3 (30 threes) is just above 90%.
        assert colour(D(3), D("3." + "3" * 30)) is Colour.ORANGE

    def test_two_thirds_of_three_is_exactly_two(self) -> None:
        assert colour(D(2), D(2)) is Colour.GREEN
        assert attainment_percent(D(2), D(2)) == 100
        assert colour(D("1.8"), D(2)) is Colour.ORANGE
        assert colour(D("1.7999"), D(2)) is Colour.RED

    def test_percent_is_rounded_down_never_up(self) -> None:
        # 99.99...9% at 40 significant digits is cut, never shown as 100%.
        percent = attainment_percent(D("9" * 45), D("1" + "0" * 45))
        assert percent < 100
        assert display_percent(percent) == "99.99"


class TestReaches:
    def test_cross_multiplication(self) -> None:
        assert reaches(D(500), D(1000), D(50))
        assert not reaches(D("499.99"), D(1000), D(50))
        assert reaches(D(750), D(1000), D("75.0"))
        assert reaches(D(1), D(3), D("33.33"))
        assert not reaches(D(1), D(3), D("33.34"))

    def test_zero_percent_is_always_reached(self) -> None:
        assert reaches(D(0), D(1000), D(0))

    @pytest.mark.parametrize("target", ["0", "-1"])
    def test_target_must_be_positive(self, target: str) -> None:
        with pytest.raises(ValueError, match="> 0"):
            reaches(D(1), D(target), D(100))
        with pytest.raises(ValueError, match="> 0"):
            attainment_percent(D(1), D(target))
        with pytest.raises(ValueError, match="> 0"):
            colour(D(1), D(target))


class TestDisplayPercent:
    @pytest.mark.parametrize(
        ("percent", "shown"),
        [
            ("0", "0.00"),
            ("95", "95.00"),
            ("89.999", "89.99"),
            ("99.9999999", "99.99"),
            ("100", "100.00"),
            ("102", "102.00"),
            ("1E+3", "1000.00"),
            ("-0.001", "0.00"),
        ],
    )
    def test_two_decimals_rounded_down(self, percent: str, shown: str) -> None:
        assert display_percent(D(percent)) == shown


class TestRemaining:
    def test_remaining(self) -> None:
        assert remaining(D("9500.00"), TARGET) == D("500.00")
        assert str(remaining(D("9500.00"), TARGET)) == "500.00"
        assert remaining(TARGET, TARGET) == 0
        assert remaining(D("10200"), TARGET) == 0
        assert type(remaining(D("10200"), TARGET)) is Decimal


class TestDailyPace:
    @pytest.mark.parametrize(
        ("left", "days", "pace"),
        [
            ("500", 10, "50"),
            ("500.00", 10, "50.00"),
            ("500", 3, "166.67"),
            ("500.00", 3, "166.67"),
            ("1", 3, "0.34"),
            ("5", 2, "2.50"),
            ("0.001", 1, "0.001"),
            ("0.003", 3, "0.001"),
            ("0.004", 3, "0.01"),
            ("1E+3", 4, "250"),
            ("0", 5, "0"),
            ("0.00", 5, "0"),
            ("-3", 5, "0"),
            ("500", 0, "500"),
            ("500.50", -2, "500.50"),
        ],
    )
    def test_pace(self, left: str, days: int, pace: str) -> None:
        got = daily_pace(D(left), days)
        assert type(got) is Decimal
        assert str(got) == pace

    def test_not_finite(self) -> None:
        with pytest.raises(ValueError, match="finite"):
            daily_pace(D("Infinity"), 3)

    @settings(max_examples=200, deadline=None)
    @given(units=st.integers(1, 10**9), places=st.integers(0, 3), days=st.integers(1, 400))
    def test_pace_over_the_days_covers_what_is_left(
        self, units: int, places: int, days: int
    ) -> None:
        left = Decimal(units).scaleb(-places)
        pace = daily_pace(left, days)
        assert type(pace) is Decimal
        assert pace * days >= left
        # Rounded up by less than a cent (or exact at the input's scale).
        assert (pace - D("0.01")) * days < left


class TestStanding:
    def test_single_criterion(self) -> None:
        got = standing([("amount", Kpi.TRANSACTION_AMOUNT, TARGET, D("9500.00"))])
        assert got == Standing(
            criteria=(
                CriterionStanding(
                    criterion_id="amount",
                    kpi=Kpi.TRANSACTION_AMOUNT,
                    target_value=TARGET,
                    achieved=D("9500.00"),
                    attainment_percent=D(95),
                    remaining=D("500.00"),
                    reached=False,
                ),
            ),
            attainment_percent=D(95),
            colour=Colour.ORANGE,
            complete=False,
        )
        assert got.primary.achieved == D("9500.00")

    def test_ten_transactions_worth_1000(self) -> None:
        def stand(count: str, amount: str) -> Standing:
            return standing(
                [
                    ("count", Kpi.TRANSACTION_COUNT, D("10"), D(count)),
                    ("amount", Kpi.TRANSACTION_AMOUNT, D("1000"), D(amount)),
                ]
            )

        amount_short = stand("12", "950")
        assert not amount_short.complete
        assert amount_short.attainment_percent == 95
        assert amount_short.colour is Colour.ORANGE
        assert amount_short.primary.criterion_id == "count"
        assert amount_short.primary.achieved == 12
        assert [c.reached for c in amount_short.criteria] == [True, False]

        count_short = stand("8", "1500")
        assert not count_short.complete
        assert count_short.attainment_percent == 80
        assert count_short.colour is Colour.RED

        both = stand("10", "1000.00")
        assert both.complete
        assert both.attainment_percent == 100
        assert both.colour is Colour.GREEN
        assert [c.remaining for c in both.criteria] == [0, 0]

    def test_lowest_is_chosen_exactly(self) -> None:
        # 2/3 (66.666...%) vs 6666666666666666666666666666666666666666667 / 10**43
        # (66.66...67%): equal at 40 digits, but the first is lower.
        second = D("6666666666666666666666666666666666666666667")
        got = standing(
            [
                ("big", Kpi.SKU_AMOUNT, D(10) ** 43, second),
                ("third", Kpi.VISIT_COUNT, D(3), D(2)),
            ]
        )
        assert got.attainment_percent == attainment_percent(D(2), D(3))
        assert got.colour is Colour.RED
        # Ties keep the earlier criterion.
        tie = standing([("a", Kpi.VISIT_COUNT, D(4), D(2)), ("b", Kpi.VISIT_COUNT, D(2), D(1))])
        assert tie.attainment_percent == 50

    def test_colour_of_the_lowest_criterion(self) -> None:
        got = standing(
            [
                ("a", Kpi.TRANSACTION_AMOUNT, TARGET, D("20000")),
                ("b", Kpi.SKU_QUANTITY, D("100"), D("89.999")),
            ]
        )
        assert got.colour is Colour.RED
        assert display_percent(got.attainment_percent) == "89.99"

    def test_needs_a_criterion(self) -> None:
        with pytest.raises(ValueError):
            standing([])

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(st.integers(1, 10**6), st.integers(0, 2 * 10**6), st.integers(0, 2)),
            min_size=1,
            max_size=4,
        )
    )
    def test_standing_properties(self, raw: list[tuple[int, int, int]]) -> None:
        items = [
            (f"c{i}", Kpi.TRANSACTION_AMOUNT, D(t).scaleb(-p), D(a).scaleb(-p))
            for i, (t, a, p) in enumerate(raw)
        ]
        got = standing(items)
        assert got.attainment_percent == min(c.attainment_percent for c in got.criteria)
        assert got.complete == all(c.reached for c in got.criteria)
        assert got.complete == (got.colour is Colour.GREEN)
        for c in got.criteria:
            assert type(c.attainment_percent) is Decimal and type(c.remaining) is Decimal
            assert c.reached == (c.achieved >= c.target_value)
            assert colour(c.achieved, c.target_value) is (
                Colour.GREEN
                if c.achieved >= c.target_value
                else Colour.ORANGE
                if c.achieved * 10 >= c.target_value * 9
                else Colour.RED
            )


amounts = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False)
targets = st.decimals(
    min_value=D("0.01"), max_value=10**9, places=2, allow_nan=False, allow_infinity=False
)


@given(st.lists(st.tuples(targets, amounts), min_size=1, max_size=4))
def test_summary_is_what_a_standing_gives(items: list[tuple[Decimal, Decimal]]) -> None:
    # A progress row stores the summary; views show the standing: they must never disagree.
    full = standing([(f"c{i}", Kpi.TRANSACTION_AMOUNT, t, a) for i, (t, a) in enumerate(items)])
    assert summary(items) == (full.attainment_percent, full.complete)


def test_summary_takes_the_weakest_criterion_and_needs_every_one() -> None:
    assert summary([(D(100), D(150)), (D(10), D(9))]) == (D(90), False)
    assert summary([(D(100), D(100)), (D(10), D(12))]) == (D(100), True)
    with pytest.raises(ValueError, match="at least one"):
        summary([])
