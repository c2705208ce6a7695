"""Cycle arithmetic (SPEC section 4): a target's period cut into windows at local midnights."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from attain_server.domain.errors import quoted
from attain_server.domain.model import Period, PeriodKind

# The days Attain accepts from its callers: a target's period (and, elsewhere, a transaction's
# instant) must fall within them. Far inside the calendar below, so every cycle of an accepted
# period, its grace included, is plain arithmetic on representable datetimes.
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2999, 12, 31)

# The calendar we model. Every boundary in it, searched 26 hours either side in any real zone
# (offsets stay within about ±16 h, LMT included), is a representable datetime.
FIRST_SUPPORTED_DAY = date(2, 1, 1)
LAST_SUPPORTED_DAY = date(9998, 12, 31)
# Grace may run past the last supported day, but not to the very end of datetime's range.
_LAST_GRACE_DAY = date(9999, 12, 30)
# Windows a Calendar keeps once made (by index); more than this starts the keeping afresh.
MAX_KEPT_WINDOWS = 64

_TICK = timedelta(microseconds=1)
_SEARCH_SPAN = timedelta(hours=26)

# ASCII digits only: ``\d`` would also accept e.g. Arabic-Indic digits.
_MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{2})")
_QUARTER_RE = re.compile(r"([0-9]{4})-Q([0-9])")
_YEAR_RE = re.compile(r"([0-9]{4})")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class CycleState(StrEnum):
    SCHEDULED = "SCHEDULED"
    OPEN = "OPEN"
    GRACE = "GRACE"
    CLOSED = "CLOSED"
    # The two below are not times: `state_at` never gives them. They say, of a cycle whose
    # time is over, that its close has not happened yet (the clock has not come round), or
    # that the clock could not close it and holds it until the cause is fixed.
    CLOSING = "CLOSING"
    HELD = "HELD"


class CycleNameError(ValueError):
    """A cycle name that is malformed for the period kind or names no cycle of the target."""


def _require_aware(value: datetime, what: str = "instant") -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")


def _local_day(instant: datetime, zone: ZoneInfo) -> date:
    return instant.astimezone(zone).date()


@lru_cache(maxsize=8192)
def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant (aware, UTC) of local calendar day ``day`` in ``zone``."""
    # fold=0 resolves a wall time inside a gap with the offset from before the gap, so when
    # the gap starts exactly at 00:00 (Santiago, Havana, Beirut) this is the transition itself,
    # and when 00:00 happens twice it is the earlier one.
    candidate = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    if _local_day(candidate, zone) == day and _local_day(candidate - _TICK, zone) < day:
        return candidate
    # A gap that spans midnight without starting at it, or a day skipped entirely (Kiritimati
    # 1994-12-31): find the first instant whose local date is ``day`` or later.
    return _first_instant_by_search(day, zone)


def _first_instant_by_search(day: date, zone: ZoneInfo) -> datetime:
    origin = datetime.combine(day, time(0), tzinfo=UTC) - _SEARCH_SPAN  # local date < day
    low, high = 0, int((2 * _SEARCH_SPAN).total_seconds())  # origin + high: local date >= day
    # Transitions and offsets are whole seconds, so a search over seconds is exact.
    while high - low > 1:
        middle = (low + high) // 2
        if _local_day(origin + timedelta(seconds=middle), zone) >= day:
            high = middle
        else:
            low = middle
    return origin + timedelta(seconds=high)


@dataclass(frozen=True, slots=True)
class CycleWindow:
    """One cycle: local days ``start_date..end_date`` and the UTC instants that bound them."""

    name: str
    start_date: date  # first local day, inclusive
    end_date: date  # last local day, inclusive
    start_time: datetime  # aware, UTC
    end_time: datetime  # aware, UTC; the cycle covers [start_time, end_time)
    grace_end_time: datetime  # aware, UTC; == end_time when offset_days is 0

    def state_at(self, now: datetime) -> CycleState:
        _require_aware(now, "now")
        if now < self.start_time:
            return CycleState.SCHEDULED
        if now < self.end_time:
            return CycleState.OPEN
        if now < self.grace_end_time:
            return CycleState.GRACE
        return CycleState.CLOSED

    def contains(self, instant: datetime) -> bool:
        _require_aware(instant)
        return self.start_time <= instant < self.end_time

    def days_left(self, now: datetime, zone: ZoneInfo) -> int:
        """Whole local days left counting today: last day -> 1, before start -> all, after -> 0."""
        _require_aware(now, "now")
        if now < self.start_time:
            return self.length_days
        if now >= self.end_time:
            return 0
        # Clamped because a fall-back across midnight can give an instant inside the window
        # the wall date of the day before it.
        today = min(max(_local_day(now, zone), self.start_date), self.end_date)
        return (self.end_date - today).days + 1

    @property
    def length_days(self) -> int:
        return (self.end_date - self.start_date).days + 1


class Calendar:
    """The cycles of one target in one zone."""

    __slots__ = (
        "_end_time",
        "_first",
        "_first_index",
        "_last_day",
        "_last_hit",
        "_last_index",
        "_offset_days",
        "_period",
        "_windows",
        "_zone",
    )

    def __init__(self, period: Period, zone: ZoneInfo, offset_days: int) -> None:
        if offset_days < 0:
            raise ValueError(f"offset_days must be 0 or more, got {offset_days}")
        if not FIRST_SUPPORTED_DAY <= period.start_date <= LAST_SUPPORTED_DAY:
            raise ValueError(
                f"start_date {period.start_date.isoformat()} is outside the supported calendar "
                f"({FIRST_SUPPORTED_DAY.isoformat()}..{LAST_SUPPORTED_DAY.isoformat()})"
            )
        if period.end_date is not None and period.end_date < period.start_date:
            raise ValueError(
                f"end_date {period.end_date.isoformat()} is before start_date "
                f"{period.start_date.isoformat()}"
            )
        if period.kind is PeriodKind.CUSTOM and period.end_date is None:
            raise ValueError("a CUSTOM period needs an end_date")
        if period.kind is PeriodKind.EVERY_N_DAYS and period.every_n_days < 1:
            raise ValueError(
                f"an EVERY_N_DAYS period needs every_n_days >= 1, got {period.every_n_days}"
            )
        self._period = period
        self._zone = zone
        self._offset_days = offset_days
        self._windows: dict[int, CycleWindow] = {}
        # An open-ended target runs to the end of the supported calendar: thousands of years of
        # cycles, which is "forever" for any caller, while every boundary stays representable.
        end = period.end_date if period.end_date is not None else LAST_SUPPORTED_DAY
        self._last_day = min(end, LAST_SUPPORTED_DAY)
        self._first_index = self._index_of(period.start_date)
        self._last_index = self._index_of(self._last_day)
        self._first = self._window(self._first_index)
        self._end_time = local_midnight(self._last_day + timedelta(days=1), zone)
        # Transactions come in runs of the same cycle: the last answer usually answers again.
        self._last_hit: CycleWindow | None = None

    @property
    def period(self) -> Period:
        return self._period

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    @property
    def offset_days(self) -> int:
        return self._offset_days

    # -- index arithmetic ------------------------------------------------------------------
    # Each cycle has an integer index computed from any of its days without iterating, so
    # lookups are O(1) however long ago the target started.

    def _index_of(self, day: date) -> int:
        kind = self._period.kind
        if kind is PeriodKind.MONTHLY:
            return day.year * 12 + day.month - 1
        if kind is PeriodKind.QUARTERLY:
            return day.year * 4 + (day.month - 1) // 3
        if kind is PeriodKind.YEARLY:
            return day.year
        if kind is PeriodKind.EVERY_N_DAYS:
            return (day.toordinal() - self._period.start_date.toordinal()) // (
                self._period.every_n_days
            )
        return 0  # CUSTOM: its single window

    def _natural_bounds(self, index: int) -> tuple[int, int]:
        """First and last day (as ordinals) of cycle ``index`` before clipping to the life."""
        kind = self._period.kind
        if kind is PeriodKind.MONTHLY:
            year, month0 = divmod(index, 12)
            last = calendar.monthrange(year, month0 + 1)[1]
            return date(year, month0 + 1, 1).toordinal(), date(year, month0 + 1, last).toordinal()
        if kind is PeriodKind.QUARTERLY:
            year, quarter0 = divmod(index, 4)
            last_month = quarter0 * 3 + 3
            last = calendar.monthrange(year, last_month)[1]
            first_day = date(year, last_month - 2, 1)
            return first_day.toordinal(), date(year, last_month, last).toordinal()
        if kind is PeriodKind.YEARLY:
            return date(index, 1, 1).toordinal(), date(index, 12, 31).toordinal()
        if kind is PeriodKind.EVERY_N_DAYS:
            n = self._period.every_n_days
            first_ordinal = self._period.start_date.toordinal() + index * n
            return first_ordinal, first_ordinal + n - 1
        return self._period.start_date.toordinal(), self._last_day.toordinal()

    def _name_of(self, index: int, natural_first: date) -> str:
        kind = self._period.kind
        if kind is PeriodKind.MONTHLY:
            year, month0 = divmod(index, 12)
            return f"{year:04d}-{month0 + 1:02d}"
        if kind is PeriodKind.QUARTERLY:
            year, quarter0 = divmod(index, 4)
            return f"{year:04d}-Q{quarter0 + 1}"
        if kind is PeriodKind.YEARLY:
            return f"{index:04d}"
        return natural_first.isoformat()

    def _window(self, index: int) -> CycleWindow:
        """Cycle ``index``, clipped to the life; the caller keeps ``index`` within it.
        Windows are kept once made: every reply and every return names its cycle, and three
        local midnights in the zone are most of the work."""
        window = self._windows.get(index)
        if window is None:
            if len(self._windows) >= MAX_KEPT_WINDOWS:
                self._windows.clear()
            window = self._windows[index] = self._make_window(index)
        return window

    def _make_window(self, index: int) -> CycleWindow:
        natural_first, natural_last = self._natural_bounds(index)
        first = max(natural_first, self._period.start_date.toordinal())
        last = min(natural_last, self._last_day.toordinal())
        # Ordinals, not dates, so a huge offset_days clamps instead of overflowing.
        grace_day = min(last + 1 + self._offset_days, _LAST_GRACE_DAY.toordinal())
        start_date, end_date = date.fromordinal(first), date.fromordinal(last)
        end_time = local_midnight(date.fromordinal(last + 1), self._zone)
        grace_end_time = (
            end_time
            if self._offset_days == 0
            else local_midnight(date.fromordinal(grace_day), self._zone)
        )
        return CycleWindow(
            name=self._name_of(index, date.fromordinal(natural_first)),
            start_date=start_date,
            end_date=end_date,
            start_time=local_midnight(start_date, self._zone),
            end_time=end_time,
            grace_end_time=grace_end_time,
        )

    def _index_of_window(self, window: CycleWindow) -> int:
        return self._index_of(window.start_date)

    # -- public API ------------------------------------------------------------------------

    def first(self) -> CycleWindow:
        return self._first

    def last(self) -> CycleWindow | None:
        """The final cycle, or None for an open-ended target."""
        if self._period.end_date is None:
            return None
        return self._window(self._last_index)

    def cycle_at(self, instant: datetime) -> CycleWindow | None:
        """The cycle containing ``instant``; None when it is outside the target's life."""
        _require_aware(instant)
        hit = self._last_hit
        if hit is not None and hit.start_time <= instant < hit.end_time:
            return hit
        if instant < self._first.start_time or instant >= self._end_time:
            return None
        day = _local_day(instant, self._zone)
        index = min(max(self._index_of(day), self._first_index), self._last_index)
        window = self._window(index)
        # The instant, not its wall date, decides: a fall-back across midnight repeats wall
        # times of the previous day after the boundary. Both loops stay inside the life,
        # which was checked above, and move at most a step or two.
        while instant >= window.end_time:
            index += 1
            window = self._window(index)
        while instant < window.start_time:
            index -= 1
            window = self._window(index)
        self._last_hit = window
        return window

    def cycle_named(self, name: str) -> CycleWindow:
        """The cycle called ``name``; CycleNameError with a readable reason otherwise."""
        index = self._parse_name(name)
        if index < self._first_index:
            raise CycleNameError(
                f"cycle {name} is before the target starts ({self._period.start_date.isoformat()})"
            )
        if index > self._last_index:
            if self._period.end_date is None or self._period.end_date > LAST_SUPPORTED_DAY:
                raise CycleNameError(
                    f"cycle {name} is beyond the supported calendar "
                    f"(ends {LAST_SUPPORTED_DAY.isoformat()})"
                )
            raise CycleNameError(
                f"cycle {name} is after the target ends ({self._period.end_date.isoformat()})"
            )
        return self._window(index)

    def _parse_name(self, name: str) -> int:
        kind = self._period.kind
        if kind is PeriodKind.MONTHLY:
            match = _MONTH_RE.fullmatch(name)
            if match is None or not 1 <= int(match.group(2)) <= 12:
                raise CycleNameError(f"{quoted(name)} is not a month name like 2026-11")
            return int(match.group(1)) * 12 + int(match.group(2)) - 1
        if kind is PeriodKind.QUARTERLY:
            match = _QUARTER_RE.fullmatch(name)
            if match is None or not 1 <= int(match.group(2)) <= 4:
                raise CycleNameError(f"{quoted(name)} is not a quarter name like 2026-Q4")
            return int(match.group(1)) * 4 + int(match.group(2)) - 1
        if kind is PeriodKind.YEARLY:
            if _YEAR_RE.fullmatch(name) is None:
                raise CycleNameError(f"{quoted(name)} is not a year name like 2026")
            return int(name)
        # CUSTOM and EVERY_N_DAYS: named by the window's first day.
        day = _parse_iso_day(name)
        start = self._period.start_date
        if day < start:
            raise CycleNameError(f"cycle {name} is before the target starts ({start.isoformat()})")
        if day > self._last_day:
            return self._last_index + 1  # reported as after the end by the caller
        if kind is PeriodKind.CUSTOM:
            if day != start:
                raise CycleNameError(
                    f"cycle {name} is not a cycle of this target: its one window is "
                    f"{start.isoformat()}"
                )
            return 0
        n = self._period.every_n_days
        if (day - start).days % n != 0:
            raise CycleNameError(
                f"cycle {name} is not the first day of a cycle: cycles of {n} days start on "
                f"{start.isoformat()} and every {n} days after"
            )
        return self._index_of(day)

    def following(self, window: CycleWindow) -> CycleWindow | None:
        """The next cycle; None after the last."""
        index = self._index_of_window(window) + 1
        return self._window(index) if index <= self._last_index else None

    def preceding(self, window: CycleWindow) -> CycleWindow | None:
        """The previous cycle; None before the first."""
        index = self._index_of_window(window) - 1
        return self._window(index) if index >= self._first_index else None

    def iter_from(self, window: CycleWindow) -> Iterator[CycleWindow]:
        """``window`` and every later cycle (finite when end_date is set)."""
        for index in range(
            max(self._index_of_window(window), self._first_index), self._last_index + 1
        ):
            yield self._window(index)

    def current_or_next(self, now: datetime) -> CycleWindow | None:
        """The cycle containing ``now``; else the next to start; None once the life is over."""
        _require_aware(now, "now")
        if now < self._first.start_time:
            return self._first
        if now >= self._end_time:
            return None
        return self.cycle_at(now)

    def latest_started(self, now: datetime) -> CycleWindow | None:
        """The most recent cycle whose start_time <= ``now``; None before the first starts."""
        _require_aware(now, "now")
        if now < self._first.start_time:
            return None
        if now >= self._end_time:
            return self._window(self._last_index)
        return self.cycle_at(now)

    def recent(self, now: datetime, limit: int, offset: int = 0) -> list[CycleWindow]:
        """Newest first from current_or_next(now) (or the last cycle), skipping ``offset``."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be 0 or more, got {limit} and {offset}")
        newest = self.current_or_next(now) or self._window(self._last_index)
        top = self._index_of_window(newest) - offset
        bottom = max(self._first_index, top - limit + 1)
        return [self._window(index) for index in range(top, bottom - 1, -1)]


def _parse_iso_day(name: str) -> date:
    # fromisoformat alone would also take "20261101" and week dates like "2026-W44-1".
    if _DATE_RE.fullmatch(name) is not None:
        try:
            return date.fromisoformat(name)
        except ValueError:
            pass
    raise CycleNameError(f"{quoted(name)} is not a date name like 2026-11-01")
