"""Unit tests for attain_server.domain.periods: cycles, boundaries, names, states."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attain_server.domain.model import Period, PeriodKind
from attain_server.domain.periods import (
    MAX_KEPT_WINDOWS,
    Calendar,
    CycleNameError,
    CycleState,
    CycleWindow,
    local_midnight,
)

TICK = timedelta(microseconds=1)
SECOND = timedelta(seconds=1)


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local(
    zone_name: str, y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0, fold: int = 0
) -> datetime:
    """An aware instant given as a local wall time in ``zone_name``."""
    return datetime(y, m, d, hh, mm, ss, tzinfo=zone(zone_name), fold=fold)


def wall(instant: datetime) -> tuple[date, time]:
    """The local calendar day and clock time an aware datetime shows."""
    return instant.date(), instant.time()


def make(
    kind: PeriodKind,
    start: date,
    end: date | None = None,
    *,
    n: int = 0,
    zone_name: str = "UTC",
    offset: int = 0,
) -> Calendar:
    return Calendar(Period(kind, start, end, n), zone(zone_name), offset)


def names(windows: list[CycleWindow]) -> list[str]:
    return [w.name for w in windows]


def chain(cal: Calendar) -> list[CycleWindow]:
    return list(cal.iter_from(cal.first()))


def hours(window: CycleWindow) -> float:
    return (window.end_time - window.start_time).total_seconds() / 3600


# -- every kind: names, dates, clipping, navigation ----------------------------------------


def test_monthly_names_and_clipping_at_start() -> None:
    cal = make(PeriodKind.MONTHLY, date(2026, 11, 15), zone_name="Asia/Jakarta")
    first = cal.first()
    assert first.name == "2026-11"
    assert (first.start_date, first.end_date) == (date(2026, 11, 15), date(2026, 11, 30))
    assert first.length_days == 16
    assert first.start_time == datetime(2026, 11, 14, 17, tzinfo=UTC)  # Jakarta is +07:00
    assert first.end_time == datetime(2026, 11, 30, 17, tzinfo=UTC)
    assert first.start_time.tzinfo is UTC
    second = cal.following(first)
    assert second is not None
    assert second.name == "2026-12"
    assert (second.start_date, second.end_date) == (date(2026, 12, 1), date(2026, 12, 31))
    assert names(list(itertools.islice(cal.iter_from(first), 4))) == [
        "2026-11",
        "2026-12",
        "2027-01",
        "2027-02",
    ]
    assert cal.preceding(first) is None
    assert cal.preceding(second) == first
    assert cal.last() is None


def test_monthly_clipped_at_end_and_finite() -> None:
    cal = make(PeriodKind.MONTHLY, date(2026, 1, 1), date(2026, 3, 10))
    windows = chain(cal)
    assert names(windows) == ["2026-01", "2026-02", "2026-03"]
    assert windows[-1].end_date == date(2026, 3, 10)
    assert windows[-1].end_time == datetime(2026, 3, 11, tzinfo=UTC)
    assert cal.following(windows[-1]) is None
    assert cal.last() == windows[-1]
    assert list(cal.iter_from(windows[1])) == windows[1:]


def test_quarterly() -> None:
    cal = make(PeriodKind.QUARTERLY, date(2026, 11, 15), date(2027, 5, 5))
    windows = chain(cal)
    assert names(windows) == ["2026-Q4", "2027-Q1", "2027-Q2"]
    assert [(w.start_date, w.end_date) for w in windows] == [
        (date(2026, 11, 15), date(2026, 12, 31)),
        (date(2027, 1, 1), date(2027, 3, 31)),
        (date(2027, 4, 1), date(2027, 5, 5)),
    ]
    assert cal.preceding(windows[1]) == windows[0]
    assert cal.following(windows[2]) is None


def test_yearly() -> None:
    cal = make(PeriodKind.YEARLY, date(2026, 3, 1), date(2028, 6, 30))
    windows = chain(cal)
    assert names(windows) == ["2026", "2027", "2028"]
    assert windows[0].start_date == date(2026, 3, 1)
    assert windows[1].length_days == 365
    assert windows[2].end_date == date(2028, 6, 30)


def test_custom_single_window() -> None:
    cal = make(PeriodKind.CUSTOM, date(2021, 7, 1), date(2021, 7, 31), zone_name="Asia/Jakarta")
    only = cal.first()
    assert only.name == "2021-07-01"
    assert (only.start_date, only.end_date, only.length_days) == (
        date(2021, 7, 1),
        date(2021, 7, 31),
        31,
    )
    assert chain(cal) == [only]
    assert cal.following(only) is None
    assert cal.preceding(only) is None
    assert cal.last() == only
    assert cal.cycle_named("2021-07-01") == only


def test_every_n_days() -> None:
    cal = make(PeriodKind.EVERY_N_DAYS, date(2026, 11, 1), date(2027, 5, 15), n=90)
    windows = chain(cal)
    assert names(windows) == ["2026-11-01", "2027-01-30", "2027-04-30"]
    assert [(w.start_date, w.end_date) for w in windows] == [
        (date(2026, 11, 1), date(2027, 1, 29)),
        (date(2027, 1, 30), date(2027, 4, 29)),
        (date(2027, 4, 30), date(2027, 5, 15)),  # clipped at end_date
    ]
    assert windows[0].length_days == 90
    assert cal.cycle_named("2027-01-30") == windows[1]
    assert cal.preceding(windows[1]) == windows[0]


def test_single_day_life() -> None:
    for kind in PeriodKind:
        n = 7 if kind is PeriodKind.EVERY_N_DAYS else 0
        cal = make(kind, date(2026, 5, 5), date(2026, 5, 5), n=n)
        assert [(w.start_date, w.end_date) for w in chain(cal)] == [
            (date(2026, 5, 5), date(2026, 5, 5))
        ]


@pytest.mark.parametrize(
    ("period", "offset", "message"),
    [
        (Period(PeriodKind.CUSTOM, date(2021, 7, 1)), 0, "CUSTOM period needs an end_date"),
        (Period(PeriodKind.EVERY_N_DAYS, date(2021, 7, 1)), 0, "every_n_days >= 1"),
        (Period(PeriodKind.MONTHLY, date(2021, 7, 1), date(2021, 6, 30)), 0, "before start_date"),
        (Period(PeriodKind.MONTHLY, date(2021, 7, 1)), -1, "offset_days"),
        (Period(PeriodKind.MONTHLY, date(1, 1, 1)), 0, "supported calendar"),
    ],
)
def test_invalid_periods(period: Period, offset: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Calendar(period, zone("UTC"), offset)


# -- boundaries: 23:59:59 and 00:00:00 local on a cycle edge -------------------------------

EDGE_ZONES = ["Asia/Jakarta", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"]

# kind, start, end, n, last day of one cycle, name before the edge, name after (None: outside)
EDGES = [
    (PeriodKind.MONTHLY, date(2026, 1, 1), None, 0, date(2026, 11, 30), "2026-11", "2026-12"),
    (PeriodKind.QUARTERLY, date(2026, 1, 1), None, 0, date(2026, 12, 31), "2026-Q4", "2027-Q1"),
    (PeriodKind.YEARLY, date(2026, 1, 1), None, 0, date(2026, 12, 31), "2026", "2027"),
    (
        PeriodKind.EVERY_N_DAYS,
        date(2026, 11, 1),
        None,
        7,
        date(2026, 11, 7),
        "2026-11-01",
        "2026-11-08",
    ),
    (
        PeriodKind.CUSTOM,
        date(2021, 7, 1),
        date(2021, 7, 31),
        0,
        date(2021, 7, 31),
        "2021-07-01",
        None,
    ),
    (
        PeriodKind.CUSTOM,
        date(2021, 7, 1),
        date(2021, 7, 31),
        0,
        date(2021, 6, 30),
        None,
        "2021-07-01",
    ),
]


@pytest.mark.parametrize("zone_name", EDGE_ZONES)
@pytest.mark.parametrize(("kind", "start", "end", "n", "last_day", "before", "after"), EDGES)
def test_sale_at_cycle_edge(
    zone_name: str,
    kind: PeriodKind,
    start: date,
    end: date | None,
    n: int,
    last_day: date,
    before: str | None,
    after: str | None,
) -> None:
    cal = make(kind, start, end, n=n, zone_name=zone_name)
    next_day = last_day + timedelta(days=1)
    late = local(zone_name, last_day.year, last_day.month, last_day.day, 23, 59, 59)
    midnight = local(zone_name, next_day.year, next_day.month, next_day.day)
    for instant, expected in ((late, before), (midnight, after)):
        window = cal.cycle_at(instant)
        assert (window.name if window else None) == expected
        assert cal.cycle_at(instant.astimezone(UTC)) == window  # the zone of the input is moot
    # The edge is exact to the microsecond.
    edge = midnight.astimezone(UTC)
    assert getattr(cal.cycle_at(edge - TICK), "name", None) == before
    assert getattr(cal.cycle_at(edge), "name", None) == after


def test_before_start_and_after_end_are_outside() -> None:
    cal = make(PeriodKind.MONTHLY, date(2026, 11, 15), date(2026, 12, 20), zone_name="Asia/Jakarta")
    assert cal.cycle_at(local("Asia/Jakarta", 2026, 11, 14, 23, 59, 59)) is None
    assert getattr(cal.cycle_at(local("Asia/Jakarta", 2026, 11, 15)), "name", None) == "2026-11"
    assert getattr(cal.cycle_at(local("Asia/Jakarta", 2026, 12, 20, 23, 59, 59)), "name", None) == (
        "2026-12"
    )
    assert cal.cycle_at(local("Asia/Jakarta", 2026, 12, 21)) is None


# -- DST -------------------------------------------------------------------------------------


def test_berlin_dst_days() -> None:
    daily = make(PeriodKind.EVERY_N_DAYS, date(2026, 1, 1), n=1, zone_name="Europe/Berlin")
    spring = daily.cycle_named("2026-03-29")  # last Sunday of March: 02:00 -> 03:00
    autumn = daily.cycle_named("2026-10-25")  # last Sunday of October: 03:00 -> 02:00
    assert hours(spring) == 23
    assert hours(autumn) == 25
    assert spring.start_time == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert spring.end_time == datetime(2026, 3, 29, 22, tzinfo=UTC)
    # Both 02:30s of the autumn day are in it.
    for fold in (0, 1):
        instant = local("Europe/Berlin", 2026, 10, 25, 2, 30, fold=fold)
        assert daily.cycle_at(instant) == autumn

    monthly = make(PeriodKind.MONTHLY, date(2026, 1, 1), zone_name="Europe/Berlin")
    march = monthly.cycle_named("2026-03")
    assert march.start_time == datetime(2026, 2, 28, 23, tzinfo=UTC)  # CET
    assert march.end_time == datetime(2026, 3, 31, 22, tzinfo=UTC)  # CEST
    assert monthly.cycle_at(local("Europe/Berlin", 2026, 3, 31, 23, 59, 59)) == march
    april = monthly.cycle_at(local("Europe/Berlin", 2026, 4, 1))
    assert april is not None and april.name == "2026-04"
    october = monthly.cycle_named("2026-10")
    assert october.start_time == datetime(2026, 9, 30, 22, tzinfo=UTC)
    assert october.end_time == datetime(2026, 10, 31, 23, tzinfo=UTC)
    assert monthly.following(march) == april


def test_new_york_dst_days() -> None:
    daily = make(PeriodKind.EVERY_N_DAYS, date(2026, 1, 1), n=1, zone_name="America/New_York")
    assert hours(daily.cycle_named("2026-03-08")) == 23
    assert hours(daily.cycle_named("2026-11-01")) == 25
    monthly = make(PeriodKind.MONTHLY, date(2026, 1, 1), zone_name="America/New_York")
    november = monthly.cycle_named("2026-11")
    assert november.start_time == datetime(2026, 11, 1, 4, tzinfo=UTC)  # 00:00 EDT
    assert november.end_time == datetime(2026, 12, 1, 5, tzinfo=UTC)  # 00:00 EST
    for fold in (0, 1):  # 01:30 happens twice on 1 November; both in November
        assert monthly.cycle_at(local("America/New_York", 2026, 11, 1, 1, 30, fold=fold)) == (
            november
        )
    october = monthly.cycle_at(local("America/New_York", 2026, 10, 31, 23, 59, 59))
    assert october is not None and october.name == "2026-10"
    assert october.end_time == november.start_time


def test_santiago_gap_at_midnight() -> None:
    santiago = zone("America/Santiago")
    # Precondition, checked rather than assumed: on 2026-09-06 the clock goes from
    # 23:59:59 (-04) on the 5th straight to 01:00 (-03) on the 6th; 00:xx does not exist.
    before_gap = datetime(2026, 9, 6, 3, 59, 59, tzinfo=UTC).astimezone(santiago)
    after_gap = datetime(2026, 9, 6, 4, tzinfo=UTC).astimezone(santiago)
    assert wall(before_gap) == (date(2026, 9, 5), time(23, 59, 59))
    assert wall(after_gap) == (date(2026, 9, 6), time(1, 0))
    phantom = datetime(2026, 9, 6, 0, 30, tzinfo=santiago)
    assert wall(phantom.astimezone(UTC).astimezone(santiago)) != (date(2026, 9, 6), time(0, 30))

    first_instant = local_midnight(date(2026, 9, 6), santiago)
    assert first_instant == datetime(2026, 9, 6, 4, tzinfo=UTC)
    # fold=1 would say 03:00Z, which is still the 5th in Santiago: not the start of the 6th.
    wrong = datetime(2026, 9, 6, tzinfo=santiago, fold=1).astimezone(UTC)
    assert wrong.astimezone(santiago).date() == date(2026, 9, 5)

    daily = make(PeriodKind.EVERY_N_DAYS, date(2026, 9, 1), n=1, zone_name="America/Santiago")
    sixth = daily.cycle_named("2026-09-06")
    assert sixth.start_time == first_instant
    assert hours(sixth) == 23
    assert daily.cycle_at(local("America/Santiago", 2026, 9, 5, 23, 59, 59)) == (
        daily.cycle_named("2026-09-05")
    )
    assert daily.cycle_at(first_instant) == sixth
    assert daily.cycle_at(first_instant - TICK) == daily.cycle_named("2026-09-05")

    weekly = make(PeriodKind.EVERY_N_DAYS, date(2026, 8, 30), n=7, zone_name="America/Santiago")
    week = weekly.cycle_named("2026-09-06")
    assert week.start_time == first_instant
    assert weekly.cycle_at(first_instant - TICK) == weekly.cycle_named("2026-08-30")

    # A target whose life starts on the gap day starts at the gap.
    custom = make(
        PeriodKind.CUSTOM, date(2026, 9, 6), date(2026, 9, 30), zone_name="America/Santiago"
    )
    assert custom.first().start_time == first_instant
    assert custom.cycle_at(first_instant - SECOND) is None


def test_havana_midnight_twice_and_beirut_gap() -> None:
    havana = zone("America/Havana")
    # 2026-11-01: at 01:00 CDT the clock goes back to 00:00 CST; midnight happens twice.
    first_midnight = datetime(2026, 11, 1, tzinfo=havana, fold=0).astimezone(UTC)
    second_midnight = datetime(2026, 11, 1, tzinfo=havana, fold=1).astimezone(UTC)
    assert second_midnight - first_midnight == timedelta(hours=1)
    assert local_midnight(date(2026, 11, 1), havana) == first_midnight
    daily = make(PeriodKind.EVERY_N_DAYS, date(2026, 10, 1), n=1, zone_name="America/Havana")
    first = daily.cycle_named("2026-11-01")
    assert hours(first) == 25
    assert daily.cycle_at(local("America/Havana", 2026, 11, 1, 0, 30, fold=1)) == first
    # 2026-03-08: 00:00 -> 01:00.
    assert local_midnight(date(2026, 3, 8), havana).astimezone(havana).time() == time(1, 0)

    beirut = zone("Asia/Beirut")
    start = local_midnight(date(2024, 3, 31), beirut)
    assert start == datetime(2024, 3, 30, 22, tzinfo=UTC)
    assert wall(start.astimezone(beirut)) == (date(2024, 3, 31), time(1, 0))
    assert (start - TICK).astimezone(beirut).date() == date(2024, 3, 30)


def test_gap_spanning_midnight_and_skipped_day() -> None:
    # Toronto 1919-03-30: 23:30 EST jumped to 00:30 EDT, so the 31st began at 00:30.
    toronto = zone("America/Toronto")
    first = local_midnight(date(1919, 3, 31), toronto)
    assert wall(first.astimezone(toronto)) == (date(1919, 3, 31), time(0, 30))
    assert (first - TICK).astimezone(toronto).date() == date(1919, 3, 30)

    # Kiritimati skipped 1994-12-31 entirely: its daily cycle is empty, never holds an instant.
    daily = make(PeriodKind.EVERY_N_DAYS, date(1994, 12, 29), n=1, zone_name="Pacific/Kiritimati")
    skipped = daily.cycle_named("1994-12-31")
    assert skipped.start_time == skipped.end_time
    new_year = daily.cycle_at(skipped.start_time)
    assert new_year is not None and new_year.name == "1995-01-01"
    before = daily.cycle_at(skipped.start_time - TICK)
    assert before is not None and before.name == "1994-12-30"
    assert daily.following(before) == skipped


def test_fall_back_across_midnight_goes_by_instant() -> None:
    # Moncton 2006-10-29: at 00:01 ADT the clock went back to 23:01 AST on the 28th. The 29th
    # starts at its first instant (00:00 ADT); the repeated 23:01..23:59 of the 28th that follow
    # belong to the 29th's cycle, so cycles stay contiguous instants.
    moncton = zone("America/Moncton")
    daily = make(PeriodKind.EVERY_N_DAYS, date(2006, 10, 1), n=1, zone_name="America/Moncton")
    day29 = daily.cycle_named("2006-10-29")
    assert day29.start_time == datetime(2006, 10, 29, 3, tzinfo=UTC)
    repeated = local("America/Moncton", 2006, 10, 28, 23, 30, fold=1)
    assert repeated.astimezone(UTC) > day29.start_time
    assert daily.cycle_at(repeated) == day29
    assert day29.days_left(repeated, moncton) == 1
    first_pass = local("America/Moncton", 2006, 10, 28, 23, 30, fold=0)
    assert daily.cycle_at(first_pass) == daily.cycle_named("2006-10-28")


# -- 29 February -----------------------------------------------------------------------------


def test_leap_day_2028() -> None:
    z = "Europe/Berlin"
    leap_late = local(z, 2028, 2, 29, 23, 59, 59)
    march_first = local(z, 2028, 3, 1)

    monthly = make(PeriodKind.MONTHLY, date(2028, 1, 1), zone_name=z)
    february = monthly.cycle_named("2028-02")
    assert (february.end_date, february.length_days) == (date(2028, 2, 29), 29)
    assert monthly.cycle_at(leap_late) == february
    assert getattr(monthly.cycle_at(march_first), "name", None) == "2028-03"

    quarterly = make(PeriodKind.QUARTERLY, date(2028, 1, 1), zone_name=z)
    q1 = quarterly.cycle_named("2028-Q1")
    assert q1.length_days == 91
    assert quarterly.cycle_at(leap_late) == q1 == quarterly.cycle_at(march_first)

    yearly = make(PeriodKind.YEARLY, date(2028, 1, 1), zone_name=z)
    assert yearly.cycle_named("2028").length_days == 366
    assert yearly.cycle_at(leap_late) == yearly.cycle_named("2028")

    tens = make(PeriodKind.EVERY_N_DAYS, date(2028, 2, 20), n=10, zone_name=z)
    assert tens.first().end_date == date(2028, 2, 29)
    assert tens.cycle_at(leap_late) == tens.first()
    assert getattr(tens.cycle_at(march_first), "name", None) == "2028-03-01"

    weekly = make(PeriodKind.EVERY_N_DAYS, date(2028, 2, 25), n=7, zone_name=z)
    straddling = weekly.first()
    assert (straddling.start_date, straddling.end_date) == (date(2028, 2, 25), date(2028, 3, 2))
    assert weekly.cycle_at(local(z, 2028, 2, 29, 12)) == straddling
    assert weekly.cycle_at(march_first) == straddling

    custom = make(PeriodKind.CUSTOM, date(2028, 2, 1), date(2028, 2, 29), zone_name=z)
    assert custom.first().end_time == march_first.astimezone(UTC)
    assert custom.cycle_at(leap_late) == custom.first()
    assert custom.cycle_at(march_first) is None

    monthly_from_leap_day = make(PeriodKind.MONTHLY, date(2028, 2, 29), zone_name=z)
    assert monthly_from_leap_day.first().length_days == 1


# -- SPEC example 6 and states ---------------------------------------------------------------


def test_spec_example_6_quarterly_jakarta_offset_3() -> None:
    z = "Asia/Jakarta"
    cal = make(PeriodKind.QUARTERLY, date(2026, 1, 1), zone_name=z, offset=3)
    q4 = cal.cycle_at(local(z, 2026, 12, 30, 15, 0))
    assert q4 is not None and q4.name == "2026-Q4"
    assert q4.end_time == datetime(2026, 12, 31, 17, tzinfo=UTC)
    assert q4.grace_end_time == datetime(2027, 1, 3, 17, tzinfo=UTC)
    assert q4.state_at(local(z, 2026, 12, 30, 15, 0)) is CycleState.OPEN
    assert q4.state_at(local(z, 2027, 1, 2, 10, 0)) is CycleState.GRACE
    assert q4.state_at(local(z, 2027, 1, 3, 23, 59, 59)) is CycleState.GRACE
    assert q4.state_at(local(z, 2027, 1, 4)) is CycleState.CLOSED
    # Meanwhile Q1 is open from 1 January.
    q1 = cal.following(q4)
    assert q1 is not None and q1.state_at(local(z, 2027, 1, 2, 10, 0)) is CycleState.OPEN


def test_state_transitions_and_days_left() -> None:
    z = "Asia/Jakarta"
    jakarta = zone(z)
    cal = make(PeriodKind.MONTHLY, date(2026, 1, 1), zone_name=z, offset=2)
    nov = cal.cycle_named("2026-11")
    cases = [
        (local(z, 2026, 10, 31, 23, 59, 59), CycleState.SCHEDULED, 30),
        (local(z, 2026, 11, 1), CycleState.OPEN, 30),
        (local(z, 2026, 11, 1, 23, 59, 59), CycleState.OPEN, 30),
        (local(z, 2026, 11, 2), CycleState.OPEN, 29),
        (local(z, 2026, 11, 30), CycleState.OPEN, 1),
        (local(z, 2026, 11, 30, 23, 59, 59), CycleState.OPEN, 1),
        (local(z, 2026, 12, 1), CycleState.GRACE, 0),
        (local(z, 2026, 12, 2, 23, 59, 59), CycleState.GRACE, 0),
        (local(z, 2026, 12, 3), CycleState.CLOSED, 0),
    ]
    for now, state, left in cases:
        assert nov.state_at(now) is state, now
        assert nov.days_left(now, jakarta) == left, now
        assert nov.contains(now) is (state is CycleState.OPEN)
    assert nov.state_at(nov.grace_end_time - TICK) is CycleState.GRACE

    no_grace = make(PeriodKind.MONTHLY, date(2026, 1, 1), zone_name=z).cycle_named("2026-11")
    assert no_grace.grace_end_time == no_grace.end_time
    assert no_grace.state_at(no_grace.end_time - TICK) is CycleState.OPEN
    assert no_grace.state_at(no_grace.end_time) is CycleState.CLOSED
    # CLOSING and HELD are what the clock has (not) done about a cycle, never a time.
    assert [s.value for s in CycleState] == [
        "SCHEDULED",
        "OPEN",
        "GRACE",
        "CLOSED",
        "CLOSING",
        "HELD",
    ]


def test_days_left_on_short_dst_day_counts_local_days() -> None:
    berlin = zone("Europe/Berlin")
    cal = make(PeriodKind.MONTHLY, date(2026, 1, 1), zone_name="Europe/Berlin")
    march = cal.cycle_named("2026-03")
    assert march.days_left(local("Europe/Berlin", 2026, 3, 29, 23, 30), berlin) == 3
    assert march.days_left(local("Europe/Berlin", 2026, 3, 31, 0, 0), berlin) == 1


def test_naive_instants_are_refused() -> None:
    cal = make(PeriodKind.MONTHLY, date(2026, 1, 1))
    window = cal.first()
    naive = datetime(2026, 1, 5, 12)  # noqa: DTZ001 - the point of the test
    calls: list[Callable[[], object]] = [
        lambda: cal.cycle_at(naive),
        lambda: cal.current_or_next(naive),
        lambda: cal.latest_started(naive),
        lambda: cal.recent(naive, 5),
        lambda: window.state_at(naive),
        lambda: window.contains(naive),
        lambda: window.days_left(naive, zone("UTC")),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="timezone-aware"):
            call()


# -- cycle_named -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "n", "bad", "message"),
    [
        (PeriodKind.MONTHLY, 0, "2026-13", "'2026-13' is not a month name like 2026-11"),
        (PeriodKind.MONTHLY, 0, "2026-00", "not a month name"),
        (PeriodKind.MONTHLY, 0, "26-11", "'26-11' is not a month name like 2026-11"),
        (PeriodKind.MONTHLY, 0, "2026-1", "not a month name"),
        (PeriodKind.MONTHLY, 0, "2026-11 ", "not a month name"),
        (PeriodKind.MONTHLY, 0, "2026-Q4", "not a month name"),
        (PeriodKind.MONTHLY, 0, "２０２６-11", "not a month name"),
        (PeriodKind.MONTHLY, 0, "", "not a month name"),
        (PeriodKind.QUARTERLY, 0, "2026-Q5", "'2026-Q5' is not a quarter name like 2026-Q4"),
        (PeriodKind.QUARTERLY, 0, "2026-Q0", "not a quarter name"),
        (PeriodKind.QUARTERLY, 0, "2026-q4", "not a quarter name"),
        (PeriodKind.QUARTERLY, 0, "2026-11", "not a quarter name"),
        (PeriodKind.YEARLY, 0, "26", "'26' is not a year name like 2026"),
        (PeriodKind.YEARLY, 0, "2026-01", "not a year name"),
        (PeriodKind.EVERY_N_DAYS, 7, "2026-11-02", "not the first day of a cycle"),
        (PeriodKind.EVERY_N_DAYS, 7, "2026-02-30", "not a date name like 2026-11-01"),
        (PeriodKind.EVERY_N_DAYS, 7, "20261101", "not a date name"),
        (PeriodKind.EVERY_N_DAYS, 7, "2026-W44-1", "not a date name"),
        (PeriodKind.EVERY_N_DAYS, 7, "2026-11", "not a date name"),
    ],
)
def test_cycle_named_malformed(kind: PeriodKind, n: int, bad: str, message: str) -> None:
    cal = make(kind, date(2026, 1, 1), n=n)
    with pytest.raises(CycleNameError, match=re.escape(message)):
        cal.cycle_named(bad)


@pytest.mark.parametrize(
    ("kind", "n", "name", "message"),
    [
        (
            PeriodKind.MONTHLY,
            0,
            "2025-10",
            "cycle 2025-10 is before the target starts (2026-01-01)",
        ),
        (PeriodKind.MONTHLY, 0, "2027-01", "cycle 2027-01 is after the target ends (2026-12-31)"),
        (PeriodKind.QUARTERLY, 0, "2025-Q4", "before the target starts"),
        (PeriodKind.QUARTERLY, 0, "2027-Q1", "after the target ends"),
        (PeriodKind.YEARLY, 0, "2025", "before the target starts"),
        (PeriodKind.YEARLY, 0, "0000", "before the target starts"),
        (PeriodKind.YEARLY, 0, "2027", "after the target ends"),
        (PeriodKind.EVERY_N_DAYS, 10, "2025-12-22", "before the target starts"),
        (PeriodKind.EVERY_N_DAYS, 10, "2027-01-07", "after the target ends"),
        (PeriodKind.CUSTOM, 0, "2025-12-31", "before the target starts"),
        (PeriodKind.CUSTOM, 0, "2026-01-02", "its one window is 2026-01-01"),
        (PeriodKind.CUSTOM, 0, "2027-01-01", "after the target ends"),
    ],
)
def test_cycle_named_outside_life(kind: PeriodKind, n: int, name: str, message: str) -> None:
    cal = make(kind, date(2026, 1, 1), date(2026, 12, 31), n=n)
    with pytest.raises(CycleNameError, match=re.escape(message)):
        cal.cycle_named(name)


def test_cycle_named_clipped_and_open_ended() -> None:
    cal = make(PeriodKind.MONTHLY, date(2026, 11, 15), date(2027, 2, 10))
    assert cal.cycle_named("2026-11").start_date == date(2026, 11, 15)
    assert cal.cycle_named("2027-02").end_date == date(2027, 2, 10)
    open_ended = make(PeriodKind.MONTHLY, date(2026, 11, 15))
    assert open_ended.cycle_named("2126-11").name == "2126-11"
    with pytest.raises(CycleNameError, match="beyond the supported calendar"):
        open_ended.cycle_named("9999-05")
    assert issubclass(CycleNameError, ValueError)


# -- current_or_next, latest_started, recent -------------------------------------------------


def test_current_latest_and_recent_bounded() -> None:
    cal = make(PeriodKind.MONTHLY, date(2026, 1, 1), date(2026, 6, 30))
    before = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
    during = datetime(2026, 3, 15, tzinfo=UTC)
    after = datetime(2026, 7, 1, tzinfo=UTC)

    assert cal.current_or_next(before) == cal.first()
    assert cal.latest_started(before) is None
    assert names(cal.recent(before, 10)) == ["2026-01"]

    assert getattr(cal.current_or_next(during), "name", None) == "2026-03"
    assert getattr(cal.latest_started(during), "name", None) == "2026-03"
    assert names(cal.recent(during, 2)) == ["2026-03", "2026-02"]
    assert names(cal.recent(during, 10, offset=1)) == ["2026-02", "2026-01"]
    assert cal.recent(during, 10, offset=5) == []
    assert cal.recent(during, 0) == []

    assert cal.current_or_next(after) is None
    assert getattr(cal.latest_started(after), "name", None) == "2026-06"
    assert names(cal.recent(after, 3)) == ["2026-06", "2026-05", "2026-04"]
    assert names(cal.recent(after, 3, offset=4)) == ["2026-02", "2026-01"]

    with pytest.raises(ValueError):
        cal.recent(during, -1)
    with pytest.raises(ValueError):
        cal.recent(during, 1, offset=-1)


def test_current_or_next_between_custom_window_and_open_ended() -> None:
    custom = make(PeriodKind.CUSTOM, date(2021, 7, 1), date(2021, 7, 31))
    assert custom.current_or_next(datetime(2021, 6, 1, tzinfo=UTC)) == custom.first()
    assert custom.current_or_next(datetime(2021, 8, 1, tzinfo=UTC)) is None
    assert custom.latest_started(datetime(2021, 8, 1, tzinfo=UTC)) == custom.first()

    open_ended = make(PeriodKind.EVERY_N_DAYS, date(2026, 1, 1), n=30)
    far = datetime(2300, 1, 1, tzinfo=UTC)
    current = open_ended.current_or_next(far)
    assert current is not None and current.contains(far)
    assert names(open_ended.recent(far, 2)) == [
        current.name,
        getattr(open_ended.preceding(current), "name", None),
    ]


def test_lookups_do_not_walk_from_the_anchor() -> None:
    # Anchored near the start of the supported calendar with one-day windows: iterating from
    # the anchor would take millions of steps; these must be arithmetic.
    cal = make(PeriodKind.EVERY_N_DAYS, date(2, 1, 1), n=1, zone_name="Asia/Kolkata")
    instant = datetime(9000, 6, 1, 12, tzinfo=UTC)
    window = cal.cycle_at(instant)
    assert window is not None and window.name == "9000-06-01"
    assert cal.cycle_named("9000-06-01") == window
    assert len(cal.recent(instant, 3, offset=1_000_000)) == 3
    assert cal.cycle_named("0002-01-01") == cal.first()


# -- properties -------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "Asia/Jakarta",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Santiago",
    "Europe/Berlin",
    "America/New_York",
    "Pacific/Kiritimati",
    "America/St_Johns",
    "America/Havana",
    "Asia/Beirut",
    "Europe/London",
]

NAME_FORMATS = {
    PeriodKind.MONTHLY: r"[0-9]{4}-(0[1-9]|1[0-2])",
    PeriodKind.QUARTERLY: r"[0-9]{4}-Q[1-4]",
    PeriodKind.YEARLY: r"[0-9]{4}",
    PeriodKind.CUSTOM: r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
    PeriodKind.EVERY_N_DAYS: r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
}


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    kind = draw(st.sampled_from(list(PeriodKind)))
    start = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31)))
    length = draw(st.none() | st.integers(min_value=0, max_value=3000))
    if kind is PeriodKind.CUSTOM and length is None:
        length = draw(st.integers(min_value=0, max_value=400))
    end = None if length is None else start + timedelta(days=length)
    n = draw(st.integers(min_value=1, max_value=400)) if kind is PeriodKind.EVERY_N_DAYS else 0
    offset = draw(st.integers(min_value=0, max_value=10))
    return Calendar(Period(kind, start, end, n), ZoneInfo(draw(st.sampled_from(ZONES))), offset)


# Seconds from the first cycle's start: a little before it to ~20 years after.
instant_offsets = st.integers(min_value=-40 * 86400, max_value=20 * 366 * 86400)


def assert_starts_at_local_midnight(window: CycleWindow, zone_: ZoneInfo) -> None:
    wall = window.start_time.astimezone(zone_)
    just_before = (window.start_time - TICK).astimezone(zone_)
    assert wall.date() == window.start_date
    assert just_before.date() == window.start_date - timedelta(days=1)
    if wall.time() != time(0):
        # Only where local midnight does not exist: the offset changes right here.
        assert just_before.utcoffset() != wall.utcoffset()


@settings(max_examples=250, deadline=None)
@given(cal=calendars(), seconds=instant_offsets)
def test_cycle_at_contains_and_names_round_trip(cal: Calendar, seconds: int) -> None:
    instant = cal.first().start_time + timedelta(seconds=seconds)
    window = cal.cycle_at(instant)
    last = cal.last()
    if window is None:
        assert instant < cal.first().start_time or (last is not None and instant >= last.end_time)
        return
    assert window.contains(instant)
    assert window.state_at(instant) is CycleState.OPEN
    assert window.start_date <= instant.astimezone(cal.zone).date() <= window.end_date
    assert cal.cycle_named(window.name) == window
    assert re.fullmatch(NAME_FORMATS[cal.period.kind], window.name)
    assert cal.period.start_date <= window.start_date <= window.end_date
    assert cal.period.end_date is None or window.end_date <= cal.period.end_date
    assert cal.current_or_next(instant) == window
    assert cal.latest_started(instant) == window
    assert cal.recent(instant, 1) == [window]
    assert 1 <= window.days_left(instant, cal.zone) <= window.length_days
    # The zone of the argument does not matter, only the instant.
    assert cal.cycle_at(instant.astimezone(ZoneInfo("Pacific/Chatham"))) == window


@settings(max_examples=200, deadline=None)
@given(cal=calendars(), seconds=instant_offsets)
def test_windows_are_contiguous_local_midnight_and_reversible(cal: Calendar, seconds: int) -> None:
    instant = cal.first().start_time + timedelta(seconds=seconds)
    window = cal.cycle_at(instant) or cal.first()
    for _ in range(4):
        assert window.start_time < window.end_time <= window.grace_end_time
        assert (window.grace_end_time == window.end_time) is (cal.offset_days == 0)
        assert_starts_at_local_midnight(window, cal.zone)
        assert cal.cycle_at(window.start_time) == window
        assert cal.cycle_at(window.end_time - TICK) == window
        previous = cal.preceding(window)
        if previous is None:
            assert window == cal.first()
        else:
            assert cal.following(previous) == window
        following = cal.following(window)
        if following is None:
            assert cal.last() == window
            assert cal.cycle_at(window.end_time) is None
            break
        assert following.start_time == window.end_time
        assert following.start_date == window.end_date + timedelta(days=1)
        assert cal.preceding(following) == window
        assert cal.cycle_at(window.end_time) == following
        window = following


@settings(max_examples=60, deadline=None)
@given(cal=calendars())
def test_iter_from_matches_following_chain(cal: Calendar) -> None:
    if cal.period.end_date is None:
        produced = list(itertools.islice(cal.iter_from(cal.first()), 5))
    else:
        produced = list(itertools.islice(cal.iter_from(cal.first()), 200))
    walked = [cal.first()]
    while len(walked) < len(produced):
        nxt = cal.following(walked[-1])
        assert nxt is not None
        walked.append(nxt)
    assert produced == walked
    if cal.period.end_date is not None and len(produced) < 200:
        assert cal.following(produced[-1]) is None
        assert produced[-1].end_date == cal.period.end_date


def test_kept_windows_answer_as_freshly_made_ones_past_the_keeping_limit() -> None:
    # A Calendar keeps the windows it makes (up to MAX_KEPT_WINDOWS, then starts afresh):
    # asking for more cycles than that, twice over and in both directions, gives the same
    # windows as a Calendar that has made none.
    zone = ZoneInfo("America/Sao_Paulo")
    period = Period(PeriodKind.MONTHLY, date(2010, 1, 1))
    kept = Calendar(period, zone, 3)
    names = [f"{2010 + i // 12}-{i % 12 + 1:02d}" for i in range(3 * MAX_KEPT_WINDOWS)]
    for name in names + names[::-1]:
        assert kept.cycle_named(name) == Calendar(period, zone, 3).cycle_named(name)
    for name in names:
        window = kept.cycle_named(name)
        assert kept.cycle_at(window.start_time) == window
        assert kept.cycle_at(window.end_time - timedelta(microseconds=1)) == window
