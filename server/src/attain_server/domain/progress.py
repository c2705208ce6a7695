"""A member's progress on one target's cycle: its tallies, values in force and standing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from . import attainment as att
from .decimals import EXACT
from .kpis import Tally
from .model import TargetDefinition

ProgressKey = tuple[str, str, str]  # (target_code, cycle, member_id)
RANK_SCALE = Decimal(10) ** 6
# rank_key is a BIGINT: attainments from about 9.2 trillion percent up rank together there
# (their stored attainment stays exact). Beyond it, the row could not be written at all.
RANK_MAX = 2**63 - 1


@dataclass(slots=True)
class ProgressState:
    key: ProgressKey
    level: str
    target_values: dict[str, Decimal]
    tallies: dict[str, Tally]
    version: int
    is_new: bool
    dirty: bool = False
    attainment: Decimal = Decimal(0)
    complete: bool = False
    # The last standing and the definition it was computed for; `changed()` drops it.
    _standing: tuple[TargetDefinition, att.Standing] | None = None

    def changed(self) -> None:
        """The tallies changed: the row must be written and its standing computed anew."""
        self.dirty = True
        self._standing = None

    def evaluate(self, target: TargetDefinition) -> att.Standing:
        cached = self._standing
        if cached is not None and cached[0] is target:
            return cached[1]
        standing = att.standing(
            [
                (c.id, c.kpi, self.target_values[c.id], self.tallies[c.id].value(c.kpi))
                for c in target.criteria
            ]
        )
        self._standing = (target, standing)
        return standing

    def settle(self, target: TargetDefinition) -> None:
        """Sets what the row stores of its standing (attainment and completeness), from the
        standing already computed for `target` or else from the tallies alone."""
        cached = self._standing
        if cached is not None and cached[0] is target:
            self.attainment = cached[1].attainment_percent
            self.complete = cached[1].complete
            return
        self.attainment, self.complete = att.summary(
            [(self.target_values[c.id], self.tallies[c.id].value(c.kpi)) for c in target.criteria]
        )

    def restate(self, target: TargetDefinition) -> att.Standing:
        standing = self.evaluate(target)
        self.attainment = standing.attainment_percent
        self.complete = standing.complete
        return standing

    @property
    def rank_key(self) -> int:
        """attainment * 10^6 rounded down, exactly, capped at RANK_MAX."""
        # Without rounding: an attainment has 40 significant digits, more than the default
        # context's 28.
        scaled = EXACT.scaleb(self.attainment, 6)
        return min(int(scaled.to_integral_value(rounding=ROUND_FLOOR)), RANK_MAX)


def resolve_target_values(
    target: TargetDefinition, level: str, member_values: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """Most specific first (SPEC section 5): member + cycle, then level, then default."""
    values = {}
    for c in target.criteria:
        value = member_values.get(c.id)
        if value is None:
            value = c.level_target_values.get(level, c.target_value)
        values[c.id] = value
    return values


def new_state(
    target: TargetDefinition,
    key: ProgressKey,
    level: str,
    values: Mapping[str, Decimal],
) -> ProgressState:
    """A progress row as it opens: zero tallies, the values in force for the member's level
    and the member's own values for the cycle (SPEC section 5). The store stamps its open
    time when the row is inserted."""
    return ProgressState(
        key=key,
        level=level,
        target_values=resolve_target_values(target, level, values),
        tallies={c.id: Tally() for c in target.criteria},
        version=0,
        is_new=True,
    )


def stored_state(
    target: TargetDefinition,
    *,
    key: ProgressKey,
    level: str,
    target_values: dict[str, Decimal],
    tallies: dict[str, Tally],
    version: int,
    attainment: Decimal,
    complete: bool,
) -> ProgressState:
    """A row read back as it was stored, for the target as it is defined now."""
    state = ProgressState(
        key=key,
        level=level,
        target_values=target_values,
        tallies=tallies,
        version=version,
        is_new=False,
    )
    # A criterion added to the target after the row opened starts from zero.
    for c in target.criteria:
        state.tallies.setdefault(c.id, Tally())
        state.target_values.setdefault(c.id, c.target_value)
    state.attainment = attainment
    state.complete = complete
    return state


def tallies_to_json(tallies: Mapping[str, Tally]) -> dict[str, object]:
    """The tallies as the progress row stores them, by criterion id."""
    return {k: t.to_json() for k, t in tallies.items()}


def tallies_from_json(data: Mapping[str, Mapping[str, object]]) -> dict[str, Tally]:
    """Reads what `tallies_to_json` wrote; raises ValueError on anything else."""
    return {k: Tally.from_json(v) for k, v in data.items()}
