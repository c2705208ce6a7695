"""Reward rules on standings: SPEC examples 1-5, caps, rounding, levels, minimum attainment."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attain_server.domain.attainment import Standing, standing
from attain_server.domain.model import (
    FixedSpec,
    Incentive,
    IncentiveKind,
    Kpi,
    Milestone,
    MilestonesSpec,
    PercentageSpec,
    PerXSpec,
    RewardRule,
    Rounding,
)
from attain_server.domain.rewards import (
    capped,
    close_due,
    could_pay,
    immediate_due,
    pays_from,
    per_x_points,
    percentage_points,
)


def points(n: int) -> Incentive:
    return Incentive(IncentiveKind.POINTS, points=n)


def one(achieved: str, target: str, kpi: Kpi = Kpi.TRANSACTION_AMOUNT) -> Standing:
    return standing([("c1", kpi, Decimal(target), Decimal(achieved))])


FIXED_1000 = RewardRule("r1", FixedSpec(points(1000)))
MILESTONES = RewardRule(
    "m",
    MilestonesSpec(
        (
            Milestone(Decimal(50), points(50)),
            Milestone(Decimal(75), points(100)),
            Milestone(Decimal(100), points(300)),
        )
    ),
)


def test_example_1_fixed_at_100_percent() -> None:
    assert immediate_due(FIXED_1000, one("9500", "10000"), "") == []
    due = immediate_due(FIXED_1000, one("10200", "10000"), "")
    assert [(d.rule_id, d.milestone, d.incentive.points) for d in due] == [
        ("r1", Decimal(100), 1000)
    ]


def test_example_2_percentage_at_close() -> None:
    rule = RewardRule("p", PercentageSpec(Decimal(20)))
    due = close_due(rule, one("2500", "2000", Kpi.SKU_AMOUNT), "")
    assert due is not None and due.incentive.points == 500 and due.milestone is None


def test_example_3_per_x() -> None:
    standing_37 = one("37", "100", Kpi.SKU_QUANTITY)
    five_per_ten = RewardRule("x", PerXSpec(Decimal(10), 5))
    one_per_ten = RewardRule("y", PerXSpec(Decimal(10), 1))
    assert close_due(five_per_ten, standing_37, "").incentive.points == 15  # type: ignore[union-attr]
    assert close_due(one_per_ten, standing_37, "").incentive.points == 3  # type: ignore[union-attr]


def test_example_4_one_sale_crosses_two_milestones() -> None:
    before = {(d.milestone) for d in immediate_due(MILESTONES, one("400", "1000"), "")}
    after = immediate_due(MILESTONES, one("800", "1000"), "")
    new = [(d.milestone, d.incentive.points) for d in after if d.milestone not in before]
    assert new == [(Decimal(50), 50), (Decimal(75), 100)]


def test_example_5_level_based_rules() -> None:
    gold = RewardRule("gold", FixedSpec(points(2000)), levels=("GOLD",))
    silver = RewardRule("silver", FixedSpec(points(800)), levels=("SILVER",))
    done_gold = one("20000", "20000")
    assert [d.incentive.points for d in immediate_due(gold, done_gold, "GOLD")] == [2000]
    assert immediate_due(silver, done_gold, "GOLD") == []
    assert [d.incentive.points for d in immediate_due(silver, one("10000", "10000"), "SILVER")] == [
        800
    ]


def test_minimum_attainment_gates_close_rules() -> None:
    rule = RewardRule("p", PercentageSpec(Decimal(10)), min_attainment_percent=Decimal(80))
    assert close_due(rule, one("799.99", "1000"), "") is None
    assert close_due(rule, one("800", "1000"), "").incentive.points == 80  # type: ignore[union-attr]


def test_multi_criteria_thresholds_need_every_criterion() -> None:
    both = standing(
        [
            ("count", Kpi.TRANSACTION_COUNT, Decimal(10), Decimal(10)),
            ("amount", Kpi.TRANSACTION_AMOUNT, Decimal(1000), Decimal(999)),
        ]
    )
    assert immediate_due(FIXED_1000, both, "") == []


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [(Rounding.DOWN, 2), (Rounding.HALF_UP, 3), (Rounding.UP, 3)],
)
def test_rounding_modes(rounding: Rounding, expected: int) -> None:
    assert percentage_points(Decimal("25"), Decimal("10"), rounding) == expected  # 2.5 points


def test_caps_limit_points_per_member_and_cycle() -> None:
    rule = RewardRule("p", PercentageSpec(Decimal(50)), cap_points=300)
    assert close_due(rule, one("1000", "100"), "").incentive.points == 300  # type: ignore[union-attr]
    capped_rule = RewardRule("m", MILESTONES.spec, cap_points=120)
    dues = immediate_due(capped_rule, one("1000", "1000"), "")
    given_so_far = 0
    out = []
    for due in dues:
        left = capped(capped_rule, due, given_so_far)
        if left is not None:
            out.append(left.incentive.points)
            given_so_far += left.incentive.points
    assert out == [50, 70]


@given(
    value=st.integers(min_value=0, max_value=10**9).map(lambda c: Decimal(c).scaleb(-2)),
    every=st.integers(min_value=1, max_value=10**5).map(lambda c: Decimal(c).scaleb(-1)),
    y=st.integers(min_value=1, max_value=1000),
)
def test_per_x_down_never_pays_for_an_unfinished_x(value: Decimal, every: Decimal, y: int) -> None:
    paid = per_x_points(value, every, y, Rounding.DOWN)
    assert paid % y == 0
    count = paid // y
    assert count * every <= value < (count + 1) * every


_PERCENTS = st.decimals(min_value=0, max_value=300, places=2)
_AMOUNTS = st.decimals(min_value=0, max_value=10**6, places=3)
_TARGETS = st.decimals(min_value=Decimal("0.001"), max_value=10**6, places=3)


@st.composite
def _immediate_rules(draw: st.DrawFn) -> RewardRule:
    if draw(st.booleans()):
        spec: FixedSpec | MilestonesSpec = FixedSpec(points(10), draw(_PERCENTS))
    else:
        percents = sorted(draw(st.sets(_PERCENTS, min_size=1, max_size=4)))
        spec = MilestonesSpec(tuple(Milestone(p, points(1)) for p in percents))
    return RewardRule(
        "r",
        spec,
        min_attainment_percent=draw(_PERCENTS),
        levels=tuple(draw(st.sets(st.sampled_from(["GOLD", "SILVER"]), max_size=2))),
    )


@given(
    rule=_immediate_rules(),
    level=st.sampled_from(["", "GOLD", "SILVER"]),
    pairs=st.lists(st.tuples(_AMOUNTS, _TARGETS), min_size=1, max_size=3),
)
def test_could_pay_says_exactly_whether_immediate_due_gives_anything(
    rule: RewardRule, level: str, pairs: list[tuple[Decimal, Decimal]]
) -> None:
    # Ingest skips building a standing when could_pay says no: it must never say no where
    # immediate_due would give something, nor yes where it gives nothing.
    percent = pays_from(rule)
    assert percent is not None
    full = standing([(f"c{i}", Kpi.TRANSACTION_AMOUNT, t, a) for i, (a, t) in enumerate(pairs)])
    assert could_pay(rule, percent, level, pairs) == bool(immediate_due(rule, full, level))


def test_pays_from_is_the_higher_of_the_lowest_threshold_and_the_minimum() -> None:
    assert pays_from(FIXED_1000) == Decimal(100)
    assert pays_from(MILESTONES) == Decimal(50)
    gated = RewardRule("g", MILESTONES.spec, min_attainment_percent=Decimal(60))
    assert pays_from(gated) == Decimal(60)
    assert pays_from(RewardRule("p", PercentageSpec(Decimal(10)))) is None
    assert pays_from(RewardRule("e", MilestonesSpec(()))) is None
