"""The product's nouns (SPEC section 1) as immutable values: brands, programs, members, targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum


class Role(StrEnum):
    BRAND_ADMIN = "BRAND_ADMIN"
    INGEST = "INGEST"
    MEMBER = "MEMBER"


class Kpi(StrEnum):
    TRANSACTION_AMOUNT = "TRANSACTION_AMOUNT"
    SKU_AMOUNT = "SKU_AMOUNT"
    SKU_QUANTITY = "SKU_QUANTITY"
    TRANSACTION_COUNT = "TRANSACTION_COUNT"
    VISIT_COUNT = "VISIT_COUNT"
    DISTINCT_CATEGORIES = "DISTINCT_CATEGORIES"


SKU_KPIS = frozenset({Kpi.SKU_AMOUNT, Kpi.SKU_QUANTITY})
COUNT_KPIS = frozenset({Kpi.TRANSACTION_COUNT, Kpi.VISIT_COUNT, Kpi.DISTINCT_CATEGORIES})


class PeriodKind(StrEnum):
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    YEARLY = "YEARLY"
    CUSTOM = "CUSTOM"
    EVERY_N_DAYS = "EVERY_N_DAYS"


class AudienceKind(StrEnum):
    ALL_MEMBERS = "ALL_MEMBERS"
    GROUPS = "GROUPS"
    MEMBERS = "MEMBERS"


class ReversalPolicy(StrEnum):
    KEEP = "KEEP"
    REVERSE_AT_CLOSE = "REVERSE_AT_CLOSE"


class Rounding(StrEnum):
    DOWN = "DOWN"
    HALF_UP = "HALF_UP"
    UP = "UP"


class IncentiveKind(StrEnum):
    POINTS = "POINTS"
    VOUCHER = "VOUCHER"
    BADGE = "BADGE"


class TargetState(StrEnum):
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"


@dataclass(frozen=True, slots=True)
class Brand:
    code: str
    display_name: str
    time_zone: str
    create_time: datetime


@dataclass(frozen=True, slots=True)
class Program:
    code: str
    display_name: str
    is_default: bool
    create_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Member:
    external_id: str
    display_name: str = ""
    level: str = ""
    groups: tuple[str, ...] = ()
    create_time: datetime | None = None
    update_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Incentive:
    kind: IncentiveKind
    points: int = 0
    voucher_pool: str = ""
    badge: str = ""


@dataclass(frozen=True, slots=True)
class CriterionFilter:
    skus: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    stores: tuple[str, ...] = ()
    min_transaction_amount: Decimal | None = None
    min_transaction_quantity: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Criterion:
    id: str
    kpi: Kpi
    target_value: Decimal
    filter: CriterionFilter = field(default_factory=CriterionFilter)
    level_target_values: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Period:
    kind: PeriodKind
    start_date: date
    end_date: date | None = None
    every_n_days: int = 0


@dataclass(frozen=True, slots=True)
class Audience:
    kind: AudienceKind = AudienceKind.ALL_MEMBERS
    groups: tuple[str, ...] = ()
    member_ids: tuple[str, ...] = ()
    # The lists as sets, made once: every sale asks each target whether its member is in,
    # and a list of thousands of members read from the front each time costs that brand's
    # every transaction.
    _group_set: frozenset[str] = field(init=False, repr=False, compare=False)
    _member_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_group_set", frozenset(self.groups))
        object.__setattr__(self, "_member_set", frozenset(self.member_ids))

    def includes(self, member: Member) -> bool:
        if self.kind is AudienceKind.ALL_MEMBERS:
            return True
        if self.kind is AudienceKind.GROUPS:
            return not self._group_set.isdisjoint(member.groups)
        return member.external_id in self._member_set


@dataclass(frozen=True, slots=True)
class FixedSpec:
    """FIXED: ``incentive`` once attainment reaches ``threshold_percent``."""

    incentive: Incentive
    threshold_percent: Decimal = Decimal(100)


@dataclass(frozen=True, slots=True)
class PercentageSpec:
    """PERCENTAGE: ``percent``% of the achievement value, at cycle close."""

    percent: Decimal


@dataclass(frozen=True, slots=True)
class PerXSpec:
    """PER_X: ``points`` for every ``every`` of achievement value, at cycle close."""

    every: Decimal
    points: int


@dataclass(frozen=True, slots=True)
class Milestone:
    attainment_percent: Decimal
    incentive: Incentive


@dataclass(frozen=True, slots=True)
class MilestonesSpec:
    milestones: tuple[Milestone, ...]


RuleSpec = FixedSpec | PercentageSpec | PerXSpec | MilestonesSpec


@dataclass(frozen=True, slots=True)
class RewardRule:
    id: str
    spec: RuleSpec
    program: str = ""  # empty: the brand's default program
    min_attainment_percent: Decimal = Decimal(0)
    cap_points: int | None = None
    levels: tuple[str, ...] = ()
    reversal_policy: ReversalPolicy = ReversalPolicy.KEEP
    rounding: Rounding = Rounding.DOWN

    @property
    def kind(self) -> str:
        return {
            FixedSpec: "FIXED",
            PercentageSpec: "PERCENTAGE",
            PerXSpec: "PER_X",
            MilestonesSpec: "MILESTONES",
        }[type(self.spec)]

    def applies_to_level(self, level: str) -> bool:
        return not self.levels or level in self.levels


@dataclass(frozen=True, slots=True)
class TargetDefinition:
    """Everything a brand admin configures on a target (what UpdateTarget may replace)."""

    code: str
    criteria: tuple[Criterion, ...]
    period: Period
    display_name: str = ""
    description: str = ""
    offset_days: int = 0
    audience: Audience = field(default_factory=Audience)
    rules: tuple[RewardRule, ...] = ()

    @property
    def primary(self) -> Criterion:
        return self.criteria[0]


@dataclass(frozen=True, slots=True)
class Target:
    definition: TargetDefinition
    state: TargetState
    create_time: datetime
    update_time: datetime
    version: int

    @property
    def code(self) -> str:
        return self.definition.code

    @property
    def etag(self) -> str:
        return f"v{self.version}"


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    role: Role
    member_id: str
    label: str
    create_time: datetime
    revoke_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class CycleHold:
    """A cycle the clock could not open or close. It is tried again once
    ``next_attempt_time`` has come or the target changed (a new version), and released
    (forgotten) once that works. An empty ``cycle`` holds the whole target: its definition
    cannot be used."""

    target_code: str
    cycle: str
    reason: str  # safe to show the brand: no traceback, no secret
    target_version: int
    attempts: int
    first_failure_time: datetime
    last_failure_time: datetime
    next_attempt_time: datetime

    def due(self, now: datetime, target_version: int) -> bool:
        """Whether the clock should try the held work again."""
        return target_version != self.target_version or now >= self.next_attempt_time


@dataclass(frozen=True, slots=True)
class TargetValue:
    """A per-member target value for one cycle (the most specific value, SPEC section 5)."""

    member_id: str
    target_code: str
    cycle: str
    criterion_id: str
    value: Decimal
