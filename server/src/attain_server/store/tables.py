"""SQLModel tables. Every primary key starts with the brand: no row exists outside a tenant."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Index, text
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
