"""The targets a batch counts in: parsed once per stored version, with their calendars."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

import structlog

from attain_server.domain.model import RewardRule, TargetDefinition, TargetState
from attain_server.domain.periods import Calendar
from attain_server.domain.rewards import pays_from
from attain_server.domain.validation import UnusableTarget, target_calendar
from attain_server.store.targets import load_target_definitions, load_target_versions
from attain_server.store.units import Conn

log = structlog.get_logger("attain.ingest")


@dataclass(frozen=True, slots=True)
class ActiveTarget:
    definition: TargetDefinition
    state: TargetState
    calendar: Calendar
    # The rules that pay the moment a threshold is crossed, each with the lowest attainment
    # percent at which it pays anything (`pays_from`).
    gates: tuple[tuple[RewardRule, Decimal], ...] = ()

    @property
    def immediate(self) -> bool:
        """Has rules that pay the moment a threshold is crossed."""
        return bool(self.gates)

    @property
    def code(self) -> str:
        return self.definition.code


def _gates(definition: TargetDefinition) -> tuple[tuple[RewardRule, Decimal], ...]:
    """The rules that pay on the spot, with `pays_from` (None for the rest)."""
    found = ((rule, pays_from(rule)) for rule in definition.rules)
    return tuple((rule, percent) for rule, percent in found if percent is not None)


class TargetCatalog:
    """Parsed target definitions by (brand, code, version): parsing happens once per version.

    A target whose cycles or awards cannot be computed (`target_calendar`: a definition
    stored before today's checks) is left out, so it counts nothing, and every other target
    of the brand counts as usual; it is logged once per version."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[int, ActiveTarget | None]] = {}

    async def load(self, s: Conn, brand: str, zone: ZoneInfo) -> dict[str, ActiveTarget]:
        """The brand's usable targets (any state) by code, as stored now."""
        versions = await load_target_versions(s, brand)
        stale = [
            v.code for v in versions if self._cache.get((brand, v.code), (None,))[0] != v.version
        ]
        for stored in await load_target_definitions(s, brand, stale):
            target = self._active(brand, stored.code, stored.definition, stored.state, zone)
            self._cache[(brand, stored.code)] = (stored.version, target)
        out: dict[str, ActiveTarget] = {}
        for v in versions:
            cached = self._cache[(brand, v.code)][1]
            if cached is None:
                continue
            if cached.state is not v.state:  # archiving bumps the version; be safe anyway
                cached = dataclasses.replace(cached, state=v.state)
            out[v.code] = cached
        return out

    @staticmethod
    def _active(
        brand: str, code: str, definition: TargetDefinition, state: TargetState, zone: ZoneInfo
    ) -> ActiveTarget | None:
        try:
            calendar = target_calendar(definition, zone)
        except UnusableTarget as exc:
            log.warning("target left out of ingest", brand=brand, target=code, reason=exc.message)
            return None
        return ActiveTarget(definition, state, calendar, _gates(definition))
