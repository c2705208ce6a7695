"""When a live stream wakes by itself: the next instant a sent view changes by time alone, and
waiting for that instant or a signal; brand-wide and forwarded hub signals."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from attain_server.application.live import Hub, next_change, wait_for_change
from attain_server.domain.model import Period, PeriodKind
from attain_server.domain.periods import Calendar, CycleWindow, local_midnight

JAKARTA = ZoneInfo("Asia/Jakarta")
TICK = timedelta(microseconds=1)


def november(zone: ZoneInfo = JAKARTA, grace: int = 2) -> CycleWindow:
    calendar = Calendar(Period(PeriodKind.MONTHLY, date(2026, 1, 1)), zone, grace)
    return calendar.cycle_named("2026-11")


def at(d: int, h: int = 0, m: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, d, h, m, tzinfo=JAKARTA)


def test_each_state_wakes_at_its_own_next_change() -> None:
    w = november()
    assert next_change(w, JAKARTA, at(20, month=10)) == w.start_time
    assert next_change(w, JAKARTA, at(15, 12)) == local_midnight(date(2026, 11, 16), JAKARTA)
    assert next_change(w, JAKARTA, at(30, 23, 59)) == w.end_time
    assert next_change(w, JAKARTA, at(1, 12, month=12)) == w.grace_end_time
    assert next_change(w, JAKARTA, w.grace_end_time) is None


def test_a_repeated_evening_after_a_fall_back_across_midnight_still_moves_forward() -> None:
    # Moncton 2006-10-29: at 00:01 ADT clocks went back to 23:01 AST of the 28th, so the
    # repeated 23:30 is already inside the 29th; its next change is the 30th's midnight.
    moncton = ZoneInfo("America/Moncton")
    w = Calendar(Period(PeriodKind.MONTHLY, date(2006, 1, 1)), moncton, 0).cycle_named("2006-10")
    repeated = datetime(2006, 10, 28, 23, 30, tzinfo=moncton, fold=1).astimezone(UTC)
    assert repeated > local_midnight(date(2006, 10, 29), moncton)
    assert next_change(w, moncton, repeated) == local_midnight(date(2006, 10, 30), moncton)


ZONES = ["Asia/Jakarta", "America/Santiago", "America/Moncton", "Australia/Lord_Howe", "UTC"]


@settings(max_examples=300, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    offset=st.integers(min_value=0, max_value=40 * 24 * 3600),
    grace=st.integers(min_value=0, max_value=3),
)
def test_nothing_a_view_shows_changes_before_the_wake_up(
    zone_name: str, offset: int, grace: int
) -> None:
    zone = ZoneInfo(zone_name)
    calendar = Calendar(Period(PeriodKind.MONTHLY, date(2006, 1, 1)), zone, grace)
    w = calendar.cycle_named("2006-10")  # with the Moncton and Santiago transitions
    now = w.start_time - timedelta(days=3) + timedelta(seconds=offset)
    wake = next_change(w, zone, now)
    shown = (w.state_at(now), w.days_left(now, zone))
    if wake is None:
        later = now + timedelta(days=400)
        assert (w.state_at(later), w.days_left(later, zone)) == shown
        return
    assert wake > now
    assert (w.state_at(wake - TICK), w.days_left(wake - TICK, zone)) == shown


async def test_waiting_ends_on_the_signal_or_when_the_clock_reaches_the_instant() -> None:
    signal = asyncio.Event()
    clock = [datetime(2026, 11, 15, tzinfo=UTC)]

    def now() -> datetime:
        return clock[0]

    # The signal ends a wait that has no instant to wake at.
    waiting = asyncio.ensure_future(wait_for_change(signal, None, now))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    signal.set()
    await asyncio.wait_for(waiting, 1)
    signal.clear()
    # A clock that stands still before the instant keeps it waiting; once moved, it returns.
    waiting = asyncio.ensure_future(wait_for_change(signal, clock[0] + timedelta(seconds=0.2), now))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    clock[0] += timedelta(seconds=1)
    started = time.monotonic()
    await asyncio.wait_for(waiting, 2)
    assert time.monotonic() - started < 0.5
    # An instant already passed returns at once.
    await asyncio.wait_for(wait_for_change(signal, clock[0] - timedelta(seconds=1), now), 0.1)


async def test_brand_wide_signals_wake_every_member_of_the_brand_only() -> None:
    hub = Hub()
    one, two, whole = hub.subscribe("B", "M1"), hub.subscribe("B", "M2"), hub.subscribe("B", "")
    elsewhere = hub.subscribe("C", "M1")
    hub.publish_brand("B")
    assert one.is_set() and two.is_set() and whole.is_set()
    assert not elsewhere.is_set()
    hub.publish_everywhere()
    assert elsewhere.is_set()


async def test_a_hub_passes_what_it_publishes_on_to_the_one_it_forwards_to() -> None:
    awards, progress = Hub(), Hub()
    awards.forward_to(progress)
    mine, other = progress.subscribe("B", "M1"), progress.subscribe("B", "M2")
    awards.publish("B", iter(["M1"]))  # an iterator: read once, passed on intact
    assert mine.is_set() and not other.is_set()
    awards.publish_brand("B")
    assert other.is_set()
