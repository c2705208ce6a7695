"""Reading progress (SPEC section 8): one member's card, one target's leaderboard, one row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import structlog

from attain_server.domain import attainment as att
from attain_server.domain.awards import Award
from attain_server.domain.errors import InvalidArgument, NotFound
from attain_server.domain.model import Member, TargetDefinition
from attain_server.domain.periods import Calendar, CycleNameError, CycleState, CycleWindow
from attain_server.domain.progress import ProgressState, new_state
from attain_server.domain.rewards import reached, rule_thresholds
from attain_server.domain.validation import UnusableTarget, target_calendar
from attain_server.store import progress as progress_store
from attain_server.store.awards import load_member_awards
from attain_server.store.brands import brand_zone
from attain_server.store.engine import Database
from attain_server.store.members import load_members_by_id
from attain_server.store.progress import state_from_row
from attain_server.store.targets import (
    list_active_target_versions,
    load_member_target_values,
    load_target_definition,
    load_target_version,
)
from attain_server.store.units import Conn, database_of

from .audiences import require_seen, sees
from .paging import Page, next_token

log = structlog.get_logger("attain.progress")


@dataclass(frozen=True, slots=True)
class MilestoneView:
    rule_id: str
    attainment_percent: Decimal
    reached: bool


@dataclass(frozen=True, slots=True)
class ProgressView:
    member_id: str
    target_code: str
    window: CycleWindow
    state: CycleState
    level: str
    standing: att.Standing
    colour: att.Colour
    milestones: tuple[MilestoneView, ...]
    days_left: int
    daily_pace: Decimal
    update_time: datetime | None
    version: int
    awards: tuple[Award, ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.target_code, self.window.name, self.member_id)

    @property
    def next_milestone(self) -> MilestoneView | None:
        pending = [m for m in self.milestones if not m.reached]
        return min(pending, key=lambda m: m.attainment_percent) if pending else None


def view_of(
    state: ProgressState,
    target: TargetDefinition,
    window: CycleWindow,
    zone: ZoneInfo,
    now: datetime,
    update_time: datetime | None,
    awards: Sequence[Award] = (),
) -> ProgressView:
    standing = state.evaluate(target)
    milestones: list[MilestoneView] = []
    for rule in target.rules:
        if not rule.applies_to_level(state.level):
            continue
        for pct in rule_thresholds(rule):
            milestones.append(MilestoneView(rule.id, pct, reached(standing, pct)))
    days_left = window.days_left(now, zone)
    primary = standing.primary
    return ProgressView(
        member_id=state.key[2],
        target_code=state.key[0],
        window=window,
        state=window.state_at(now),
        level=state.level,
        standing=standing,
        # The colour of the criterion that holds the member back (the standing's, exactly).
        colour=standing.colour,
        milestones=tuple(milestones),
        days_left=days_left,
        daily_pace=att.daily_pace(primary.remaining, days_left),
        update_time=update_time,
        version=state.version,
        awards=_earned_order(awards, target),
    )


def _earned_order(awards: Sequence[Award], target: TargetDefinition) -> tuple[Award, ...]:
    """Awards as they were earned: by time, and those of one instant (one sale crossing
    several milestones) by the rule's place in the target, then by milestone."""
    if not awards:
        return ()
    rule_index = {rule.id: i for i, rule in enumerate(target.rules)}
    return tuple(
        sorted(
            awards,
            key=lambda a: (
                a.create_time,
                rule_index.get(a.rule_id, len(rule_index)),
                Decimal(a.milestone) if a.milestone else Decimal(0),
                a.id,
            ),
        )
    )


# Parsed target definitions and their calendars by (database, brand, code): (version,
# definition, calendar). Every change of a definition bumps its version, so a read checks
# the version (one small column) and parses the document only when it changed.
_DEFINITIONS: dict[tuple[object, str, str], tuple[int, TargetDefinition, Calendar]] = {}


async def load_definition(
    s: Conn, brand: str, code: str, zone: ZoneInfo, version: int | None = None
) -> tuple[TargetDefinition, Calendar]:
    """The target's parsed definition and its calendar; `version`, when the caller read it
    already, saves the query that finds it."""
    if version is None:
        version = await load_target_version(s, brand=brand, code=code)
        if version is None:
            raise NotFound("target", code)
    key = (database_of(s), brand, code)
    cached = _DEFINITIONS.get(key)
    if cached is not None and cached[0] == version:
        return cached[1], cached[2]
    found = await load_target_definition(s, brand=brand, code=code)
    if found is None:
        raise NotFound("target", code)
    calendar = target_calendar(found.definition, zone)  # UnusableTarget: the caller says so
    _DEFINITIONS[key] = (found.version, found.definition, calendar)
    return found.definition, calendar


async def _zone(s: Conn, brand: str) -> ZoneInfo:
    zone = await brand_zone(s, brand)
    if zone is None:
        raise NotFound("brand", brand)
    return zone


async def zone_of(*, db: Database, brand: str) -> ZoneInfo:
    """The brand's time zone (read once per process)."""
    async with db.reader() as s:
        return await _zone(s, brand)


async def _member(s: Conn, brand: str, member_id: str) -> Member:
    found = (await load_members_by_id(s, brand, [member_id])).get(member_id)
    if found is None:
        raise NotFound("member", member_id)
    return found


async def _progress_state(
    s: Conn,
    brand: str,
    target: TargetDefinition,
    cycle: str,
    member_id: str,
    now: datetime,
    member: Member | None = None,
) -> tuple[ProgressState, datetime | None]:
    """The stored row, or the row as it would open now (zero, with the values in force)."""
    row = await progress_store.progress_view_row(
        s, brand=brand, target_code=target.code, cycle=cycle, member_id=member_id
    )
    if row is not None:
        return state_from_row(row, target), row.update_time
    return await _opening_state(s, brand, target, cycle, member_id, member), None


async def _opening_state(
    s: Conn,
    brand: str,
    target: TargetDefinition,
    cycle: str,
    member_id: str,
    member: Member | None = None,
) -> ProgressState:
    """A row that has not opened, as it would open now: zero, with the member's level and
    the values in force."""
    if member is None:  # only a row that does not exist yet needs the member (and its level)
        member = await _member(s, brand, member_id)
    key = (target.code, cycle, member.external_id)
    values = await load_member_target_values(s, brand, [key])
    return new_state(target, key, member.level, values.get(key, {}))


def _window_for(calendar: Calendar, cycle: str, now: datetime) -> CycleWindow:
    """The named cycle, or the current one when no name is given."""
    if cycle:
        try:
            return calendar.cycle_named(cycle)
        except CycleNameError as exc:
            raise InvalidArgument.one("cycle", str(exc)) from exc
    found = _current_window(calendar, now)
    if found is None:
        raise InvalidArgument.one("cycle", "the target has not started yet: name a cycle")
    return found


def _current_window(calendar: Calendar, now: datetime) -> CycleWindow | None:
    """The cycle a card shows: the one running now, else the latest that started."""
    return calendar.cycle_at(now) or calendar.latest_started(now)


async def get_progress(
    *,
    db: Database,
    brand: str,
    member_id: str,
    target_code: str,
    cycle: str,
    now: datetime,
    member_key: bool = False,
) -> ProgressView:
    """One progress row; for a member key (``member_key``), only of a target whose audience
    includes the member: any other answers as a target that does not exist."""
    viewer = member_id if member_key else ""
    async with db.reader() as s:
        zone = await _zone(s, brand)
        known = _DEFINITIONS.get((database_of(s), brand, target_code))
        version = None
        # A cached definition that hides the target may be stale: the read below decides.
        if known is not None and await sees(s, brand, known[1], viewer):
            # The usual case, in one statement: the definition is cached, and the row and
            # its awards are read together with the version that says whether it still is.
            cached_version, target, calendar = known
            window = _window_for(calendar, cycle, now)
            stored = await progress_store.progress_view_with_awards(
                s, brand=brand, target_code=target_code, cycle=window.name, member_id=member_id
            )
            if stored is None:
                raise NotFound("target", target_code)
            if stored.target_version == cached_version:
                if stored.row is None:  # not opened yet: no awards either, as they need it
                    state = await _opening_state(s, brand, target, window.name, member_id)
                    return view_of(state, target, window, zone, now, None)
                state = state_from_row(stored.row, target)
                return view_of(
                    state, target, window, zone, now, stored.row.update_time, stored.awards
                )
            version = stored.target_version  # the definition changed since it was cached
        target, calendar = await load_definition(s, brand, target_code, zone, version)
        await require_seen(s, brand, target, viewer)
        window = _window_for(calendar, cycle, now)
        state, updated = await _progress_state(s, brand, target, window.name, member_id, now)
        given = await _awards(s, brand, target, window.name, member_id) if target.rules else []
    return view_of(state, target, window, zone, now, updated, given)


async def list_member_progress(
    *, db: Database, brand: str, member_id: str, now: datetime, page: Page, target_code: str = ""
) -> tuple[list[ProgressView], str]:
    """The member's card: every active target of their audience, in its current cycle."""
    async with db.read() as s:
        zone = await _zone(s, brand)
        member = await _member(s, brand, member_id)
        after = page.key(str)[0] if page.after else ""
        rows = await list_active_target_versions(s, brand=brand, code=target_code, after=after)
        views: list[ProgressView] = []
        for code, version in rows:
            # Parsed once per version, not on every card (the document is read on a miss).
            try:
                target, calendar = await load_definition(s, brand, code, zone, version)
            except UnusableTarget as exc:
                # One odd target leaves the rest of the card; GetProgress on it says why, and
                # the clock logs it as held (a warning here would come with every card read).
                log.debug("target skipped on a card", brand=brand, target=code, reason=exc.message)
                continue
            if not target.audience.includes(member):
                continue
            window = _current_window(calendar, now)
            if window is None:
                continue
            state, updated = await _progress_state(
                s, brand, target, window.name, member_id, now, member
            )
            given = await _awards(s, brand, target, window.name, member_id)
            views.append(view_of(state, target, window, zone, now, updated, given))
            if len(views) > page.size:
                break
    items = views[: page.size]
    return items, next_token(page, views, [items[-1].target_code] if items else [])


@dataclass(frozen=True, slots=True)
class Ranked:
    rank: int
    view: ProgressView


async def list_progress(
    *, db: Database, brand: str, target_code: str, cycle: str, now: datetime, page: Page
) -> tuple[list[Ranked], str, int]:
    """A target's cycle ranked by attainment, highest first; equal attainment shares a rank."""
    async with db.read() as s:
        zone = await _zone(s, brand)
        target, calendar = await load_definition(s, brand, target_code, zone)
        window = _window_for(calendar, cycle, now)
        after = page.key(int, str) if page.after else None
        found = await progress_store.list_ranked_progress(
            s,
            brand=brand,
            target_code=target_code,
            cycle=window.name,
            after=after,
            limit=page.size + 1,
        )
    rows = found.rows
    ranked: list[Ranked] = []
    if rows:
        # Position of the first row in the whole ranking: the rows above it, plus those of
        # its own tie group that an earlier page already showed.
        first_key = rows[0].rank_key
        rank, previous_key = found.above + 1, first_key
        position = found.above + found.tied_before + 1
        for row in rows[: page.size]:
            if row.rank_key != previous_key:
                rank, previous_key = position, row.rank_key
            view = view_of(state_from_row(row, target), target, window, zone, now, row.update_time)
            ranked.append(Ranked(rank, view))
            position += 1
    items = rows[: page.size]
    token = next_token(page, rows, [items[-1].rank_key, items[-1].member_id] if items else [])
    return ranked, token, found.total


async def _awards(
    s: Conn, brand: str, target: TargetDefinition, cycle: str, member_id: str
) -> list[Award]:
    return await load_member_awards(
        s, brand=brand, target_code=target.code, cycle=cycle, member_id=member_id
    )
