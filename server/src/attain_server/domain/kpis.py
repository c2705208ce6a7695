"""What one sale, net of its returns, contributes to one criterion (SPEC sections 2 and 3)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Protocol
from zoneinfo import ZoneInfo

from attain_server.domain.decimals import EXACT, ZERO, format_decimal
from attain_server.domain.errors import quoted
from attain_server.domain.model import COUNT_KPIS, SKU_KPIS, Criterion, Kpi

# What Tally.to_json writes: plain notation, no exponent, no sign other than a minus.
_TOTAL_RE = re.compile(r"^-?\d+(\.\d+)?$")


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a sale (or of a return): quantity and amount are exact and never negative."""

    sku: str
    category: str
    quantity: Decimal
    amount: Decimal

    def __post_init__(self) -> None:
        # A float (or int) here would mean an inexact number slipped past parsing.
        for name in ("quantity", "amount"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                raise TypeError(f"{name} must be a Decimal, not {type(value).__name__}")
            if not value.is_finite() or value < 0:
                raise ValueError(f"{name} must be a finite decimal >= 0, got {value}")


@dataclass(frozen=True, slots=True)
class Sale:
    """A SALE transaction with its net lines (original lines minus everything returned so far)."""

    id: str
    occurred_at: datetime
    store_id: str
    lines: tuple[Line, ...]

    def __post_init__(self) -> None:
        # A naive time would be read in the machine's zone and could land on the wrong day.
        if self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
            raise ValueError("occurred_at must be an aware datetime (with an offset)")


class ReturnError(ValueError):
    """A return that cannot apply to its original; ``field`` names the offending return line."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def net_lines(original: tuple[Line, ...], returned: tuple[Line, ...]) -> tuple[Line, ...]:
    """The original's current net lines minus one return's lines; positions are kept."""
    quantities = [line.quantity for line in original]
    amounts = [line.amount for line in original]
    positions: dict[str, list[int]] = {}
    for index, line in enumerate(original):
        positions.setdefault(line.sku, []).append(index)
    with localcontext(EXACT):
        for index, line in enumerate(returned):
            where = positions.get(line.sku)
            if where is None:
                raise ReturnError(
                    f"lines[{index}].sku",
                    f"SKU {quoted(line.sku)} is not in the original transaction",
                )
            _take(quantities, where, line.quantity, f"lines[{index}].quantity", line.sku)
            _take(amounts, where, line.amount, f"lines[{index}].amount", line.sku)
    return tuple(
        Line(sku=line.sku, category=line.category, quantity=quantity, amount=amount)
        for line, quantity, amount in zip(original, quantities, amounts, strict=True)
    )


def _take(values: list[Decimal], where: list[int], wanted: Decimal, field: str, sku: str) -> None:
    """Takes ``wanted`` from ``values`` at ``where``, first line first (caller holds EXACT)."""
    left = sum((values[i] for i in where), ZERO)
    if wanted > left:
        what = field.rsplit(".", 1)[1]
        raise ReturnError(
            field,
            f"cannot return more than was sold: {what} {format_decimal(wanted)} of SKU "
            f"{quoted(sku)} returned but only {format_decimal(left)} is left",
        )
    for i in where:
        if wanted == 0:
            break
        taken = min(values[i], wanted)
        values[i] -= taken
        wanted -= taken


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one sale adds to a criterion: ``value`` for sum KPIs, ``keys`` for count KPIs."""

    value: Decimal
    keys: frozenset[str]


EMPTY = Contribution(value=ZERO, keys=frozenset())


class SaleLike(Protocol):
    """What a contribution reads of a sale: a `Sale`, or a new sale's own `Transaction`
    (whose lines are its net lines until something is returned)."""

    @property
    def id(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def store_id(self) -> str: ...
    @property
    def lines(self) -> tuple[Line, ...]: ...


def contribution(criterion: Criterion, sale: SaleLike, zone: ZoneInfo) -> Contribution:
    """The sale's contribution to ``criterion``; EMPTY when the sale does not qualify. Its
    instant must be aware (a `Sale` checks; the batch has placed it in a cycle)."""
    rules = criterion.filter
    kpi = criterion.kpi
    if kpi in SKU_KPIS and not rules.skus:
        # "whose SKU is in the criterion's SKU set": nothing is in an empty set.
        return EMPTY
    if rules.stores and sale.store_id not in rules.stores:
        return EMPTY
    lines = [
        line
        for line in sale.lines
        if (not rules.skus or line.sku in rules.skus)
        and (not rules.categories or line.category in rules.categories)
        and (line.quantity > 0 or line.amount > 0)
    ]
    if not lines:
        return EMPTY
    # The context's own methods: no thread-local context swap per sale.
    add = EXACT.add
    amount = quantity = ZERO
    for line in lines:
        amount = add(amount, line.amount)
        quantity = add(quantity, line.quantity)
    if rules.min_transaction_amount is not None and amount < rules.min_transaction_amount:
        return EMPTY
    if rules.min_transaction_quantity is not None and quantity < rules.min_transaction_quantity:
        return EMPTY
    if kpi in (Kpi.TRANSACTION_AMOUNT, Kpi.SKU_AMOUNT):
        return Contribution(value=amount, keys=frozenset())
    if kpi == Kpi.SKU_QUANTITY:
        return Contribution(value=quantity, keys=frozenset())
    if kpi == Kpi.TRANSACTION_COUNT:
        return _keys((sale.id,) if amount > 0 else ())
    if kpi == Kpi.VISIT_COUNT:
        day = sale.occurred_at.astimezone(zone).date()
        return _keys((f"{sale.store_id}|{day.isoformat()}",) if amount > 0 else ())
    if kpi == Kpi.DISTINCT_CATEGORIES:
        return _keys(line.category for line in lines if line.quantity > 0)
    raise ValueError(f"unknown KPI {kpi!r}")  # pragma: no cover - Kpi is closed


def _keys(keys: Iterable[str]) -> Contribution:
    found = frozenset(keys)
    return Contribution(value=ZERO, keys=found) if found else EMPTY


def _plain_total(text: str) -> bool:
    """Whether `text` matches _TOTAL_RE, without the regex: -?digits(.digits)?, ASCII."""
    integer, point, fraction = text.removeprefix("-").partition(".")
    return text.isascii() and integer.isdigit() and (fraction.isdigit() if point else not fraction)


@dataclass(slots=True)
class Tally:
    """The running progress of one criterion: a total (sum KPIs) or key counts (count KPIs)."""

    total: Decimal = ZERO
    # How many sales currently make each key count; a key leaves when its last sale stops.
    key_counts: dict[str, int] = field(default_factory=dict)

    def apply(self, before: Contribution, after: Contribution) -> None:
        """Replaces one sale's ``before`` contribution by its ``after``; all or nothing."""
        total = EXACT.add(self.total, EXACT.subtract(after.value, before.value))
        if total < 0:
            raise ValueError(
                f"total would become {format_decimal(total)}: "
                "the 'before' contribution was never applied"
            )
        gone = before.keys - after.keys
        for key in sorted(gone):
            if self.key_counts.get(key, 0) < 1:
                raise ValueError(
                    f"count of key {key!r} would go below 0: "
                    "the 'before' contribution was never applied"
                )
        # Checked first, changed after: a refused apply leaves the tally untouched.
        self.total = total
        for key in gone:
            remaining = self.key_counts[key] - 1
            if remaining:
                self.key_counts[key] = remaining
            else:
                del self.key_counts[key]
        for key in after.keys - before.keys:
            self.key_counts[key] = self.key_counts.get(key, 0) + 1

    def add(self, contribution: Contribution) -> None:
        """A new sale's contribution: `apply(EMPTY, contribution)` without its checks, which
        cannot fail when nothing is taken away."""
        if contribution is EMPTY:
            return
        self.total = EXACT.add(self.total, contribution.value)
        counts = self.key_counts
        for key in contribution.keys:
            counts[key] = counts.get(key, 0) + 1

    def value(self, kpi: Kpi) -> Decimal:
        """The criterion's achieved value."""
        if kpi in COUNT_KPIS:
            return Decimal(len(self.key_counts))
        return self.total

    def to_json(self) -> dict[str, object]:
        """JSON-safe form: the total as a decimal string, key counts sorted by key."""
        return {
            "total": format_decimal(self.total),
            "key_counts": {key: self.key_counts[key] for key in sorted(self.key_counts)},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Tally:
        """Reads what ``to_json`` wrote; raises ValueError on anything else."""
        raw_total = data.get("total", "0")
        raw_counts = data.get("key_counts", {})
        if raw_counts == {} and type(raw_total) is str and _plain_total(raw_total):
            return cls(total=Decimal(raw_total), key_counts={})  # a sum KPI's usual tally
        if not isinstance(raw_total, str) or not _TOTAL_RE.match(raw_total):
            raise ValueError(f"total must be a decimal string like '1234.50', got {raw_total!r}")
        if not isinstance(raw_counts, Mapping):
            raise ValueError("key_counts must be an object of key -> count")
        counts: dict[str, int] = {}
        for key, count in raw_counts.items():
            # bool is an int subclass; True is not a count.
            if not isinstance(key, str) or type(count) is not int or count < 1:
                raise ValueError(f"key_counts[{key!r}] must be a whole number >= 1")
            counts[key] = count
        return cls(total=Decimal(raw_total), key_counts=counts)
