"""SQLModel tables. Every primary key starts with the brand: no row exists outside a tenant."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, text
from sqlmodel import Field, SQLModel

from .types import ExactDecimal, UtcDateTime


def _utc(**kwargs: Any) -> Any:
    return Field(sa_type=UtcDateTime, **kwargs)


class BrandRow(SQLModel, table=True):
    __tablename__ = "brand"

    code: str = Field(primary_key=True, max_length=64)
    display_name: str = Field(default="", max_length=1000)
    time_zone: str = Field(max_length=64)
    create_time: datetime = _utc()


class ApiKeyRow(SQLModel, table=True):
    __tablename__ = "api_key"
    __table_args__ = (Index("ix_api_key_secret_hash", "secret_hash", unique=True),)

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    key_id: str = Field(primary_key=True, max_length=32)
    # SHA-256 of the whole bearer secret: keys are 256-bit random, so a fast hash is enough.
    secret_hash: str = Field(max_length=64)
    role: str = Field(max_length=16)
    member_id: str = Field(default="", max_length=128)
    label: str = Field(default="", max_length=1000)
    create_time: datetime = _utc()
    revoke_time: datetime | None = _utc(default=None, nullable=True)


class ProgramRow(SQLModel, table=True):
    __tablename__ = "program"
    __table_args__ = (
        # At most one default program per brand, enforced by the database.
        Index(
            "ux_program_default",
            "brand_code",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    code: str = Field(primary_key=True, max_length=64)
    display_name: str = Field(default="", max_length=1000)
    is_default: bool = False
    create_time: datetime = _utc()


class MemberRow(SQLModel, table=True):
    __tablename__ = "member"
    __table_args__ = (Index("ix_member_level", "brand_code", "level"),)

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    external_id: str = Field(primary_key=True, max_length=128)
    display_name: str = Field(default="", max_length=1000)
    level: str = Field(default="", max_length=128)
    groups: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    create_time: datetime = _utc()
    update_time: datetime = _utc()


class TargetRow(SQLModel, table=True):
    __tablename__ = "target"

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    code: str = Field(primary_key=True, max_length=64)
    state: str = Field(default="ACTIVE", max_length=16)
    # The whole definition (criteria, period, audience, rules) as one versioned document:
    # it is read and replaced as a unit, and decimals stay strings inside it.
    definition: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    version: int = 1
    create_time: datetime = _utc()
    update_time: datetime = _utc()


class TargetValueRow(SQLModel, table=True):
    __tablename__ = "target_value"

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    target_code: str = Field(primary_key=True, max_length=64)
    cycle: str = Field(primary_key=True, max_length=32)
    member_id: str = Field(primary_key=True, max_length=128)
    criterion_id: str = Field(primary_key=True, max_length=64)
    value: Decimal = Field(sa_type=ExactDecimal)
    update_time: datetime = _utc()


class TransactionRow(SQLModel, table=True):
    """Every accepted transaction, once: the (brand, id) key is the idempotency key."""

    __tablename__ = "txn"
    __table_args__ = (Index("ix_txn_member", "brand_code", "member_id", "occurred_time"),)

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    id: str = Field(primary_key=True, max_length=128)
    member_id: str = Field(max_length=128)
    type: str = Field(max_length=8)
    occurred_time: datetime = _utc()
    store_id: str = Field(default="", max_length=128)
    original_id: str = Field(default="", max_length=128)
    # [[sku, category, quantity, amount], ...] with decimals as strings: exact on both databases.
    lines: list[list[str]] = Field(sa_column=Column(JSON, nullable=False))
    # Sales only: the lines net of every return so far (what the KPIs count).
    net_lines: list[list[str]] | None = Field(default=None, sa_column=Column(JSON))
    # Sales only: the [target, cycle] pairs the sale counts in, so returns undo exactly that.
    counted_in: list[list[str]] | None = Field(default=None, sa_column=Column(JSON))
    fingerprint: str = Field(max_length=64)
    record_time: datetime = _utc()


class ProgressRow(SQLModel, table=True):
    """One member's standing on one target in one cycle."""

    __tablename__ = "progress"
    __table_args__ = (
        Index("ix_progress_member", "brand_code", "member_id"),
        Index("ix_progress_rank", "brand_code", "target_code", "cycle", "rank_key", "member_id"),
    )

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    target_code: str = Field(primary_key=True, max_length=64)
    cycle: str = Field(primary_key=True, max_length=32)
    member_id: str = Field(primary_key=True, max_length=128)
    # Level and target values in force when the row opened (SPEC section 5).
    level: str = Field(default="", max_length=128)
    target_values: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    # Per criterion: the running tally (kpis.Tally.to_json()).
    tallies: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    attainment: Decimal = Field(sa_type=ExactDecimal)
    # attainment * 10^6, rounded down: an integer the leaderboard can sort by on SQLite too.
    rank_key: int = Field(sa_type=BigInteger)
    complete: bool = False
    version: int = 1
    open_time: datetime = _utc()
    update_time: datetime = _utc()
