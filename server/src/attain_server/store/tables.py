"""SQLModel tables. Every primary key starts with the brand: no row exists outside a tenant."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, text
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

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    id: str = Field(primary_key=True, max_length=128)
    member_id: str = Field(max_length=128)
    type: str = Field(max_length=8)
    occurred_time: datetime = _utc()
    store_id: str = Field(default="", max_length=128)
    original_id: str = Field(default="", max_length=128)
    # [[sku, category, quantity, amount], ...] with decimals as strings: exact on both databases.
    lines: list[list[str]] = Field(sa_column=Column(JSON, nullable=False))
    # Sales only: the lines net of every return so far (what the KPIs count); null while
    # nothing has been returned, when they are the lines themselves.
    net_lines: list[list[str]] | None = Field(default=None, sa_column=Column(JSON))
    # Sales only: the [target, cycle] pairs the sale counts in, so returns undo exactly that.
    counted_in: list[list[str]] | None = Field(default=None, sa_column=Column(JSON))
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


class AwardRow(SQLModel, table=True):
    """One reward to one member, written once: the natural key is unique in the database."""

    __tablename__ = "award"
    __table_args__ = (
        Index(
            "ux_award_natural_key",
            "brand_code",
            "target_code",
            "cycle",
            "member_id",
            "rule_id",
            "milestone",
            unique=True,
        ),
        Index("ix_award_member", "brand_code", "member_id"),
    )

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    id: str = Field(primary_key=True, max_length=32)
    target_code: str = Field(max_length=64)
    cycle: str = Field(max_length=32)
    member_id: str = Field(max_length=128)
    rule_id: str = Field(max_length=64)
    # The threshold or milestone percent as text; "" for cycle-close rules.
    milestone: str = Field(default="", max_length=40)
    kind: str = Field(max_length=8)  # POINTS, VOUCHER, BADGE
    state: str = Field(max_length=10)  # GRANTED, PENDING, REVERSED
    points: int = Field(default=0, sa_type=BigInteger)
    program: str = Field(default="", max_length=64)
    voucher_pool: str = Field(default="", max_length=64)
    voucher_code: str = Field(default="", max_length=256)
    badge: str = Field(default="", max_length=128)
    pending_reason: str = Field(default="", max_length=1000)
    create_time: datetime = _utc()
    update_time: datetime = _utc()


class AwardEventRow(SQLModel, table=True):
    """The brand's award stream: every award as given or changed, in commit order.

    ``seq`` comes from the brand's counter row, taken with a row lock inside the writing
    transaction, so sequence order is commit order and a reader never skips a late commit.
    """

    __tablename__ = "award_event"

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    seq: int = Field(primary_key=True, sa_type=BigInteger)
    award_id: str = Field(max_length=32)
    member_id: str = Field(max_length=128)
    create_time: datetime = _utc()


class CounterRow(SQLModel, table=True):
    """Per-brand counters (the award stream's next sequence number)."""

    __tablename__ = "counter"

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    name: str = Field(primary_key=True, max_length=32)
    value: int = Field(default=0, sa_type=BigInteger)


class LedgerEntryRow(SQLModel, table=True):
    """Append-only points ledger: a balance is the sum of a member's entries per program."""

    __tablename__ = "ledger_entry"
    __table_args__ = (
        Index("ix_ledger_member", "brand_code", "member_id", "program"),
        # One AWARD and at most one REVERSAL entry per award.
        Index(
            "ux_ledger_award",
            "brand_code",
            "award_id",
            "kind",
            unique=True,
            sqlite_where=text("award_id <> ''"),
            postgresql_where=text("award_id <> ''"),
        ),
        # AdjustPoints is idempotent on its request id.
        Index(
            "ux_ledger_request",
            "brand_code",
            "request_id",
            unique=True,
            sqlite_where=text("request_id <> ''"),
            postgresql_where=text("request_id <> ''"),
        ),
    )

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    id: str = Field(primary_key=True, max_length=32)
    member_id: str = Field(max_length=128)
    program: str = Field(max_length=64)
    points: int = Field(sa_type=BigInteger)
    kind: str = Field(max_length=12)  # AWARD, REVERSAL, ADJUSTMENT
    award_id: str = Field(default="", max_length=32)
    request_id: str = Field(default="", max_length=128)
    reason: str = Field(default="", max_length=1000)
    create_time: datetime = _utc()


class VoucherRow(SQLModel, table=True):
    """A voucher code in a brand's pool; ``award_id`` is set once it is given."""

    __tablename__ = "voucher"
    __table_args__ = (
        Index("ix_voucher_free", "brand_code", "pool", "award_id"),
        # Never two codes for one award.
        Index(
            "ux_voucher_award",
            "brand_code",
            "award_id",
            unique=True,
            sqlite_where=text("award_id <> ''"),
            postgresql_where=text("award_id <> ''"),
        ),
    )

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    pool: str = Field(primary_key=True, max_length=64)
    code: str = Field(primary_key=True, max_length=256)
    award_id: str = Field(default="", max_length=32)
    load_time: datetime = _utc()
    assign_time: datetime | None = _utc(default=None, nullable=True)


class CycleCloseRow(SQLModel, table=True):
    """A closed cycle: written once by close_cycle, after its awards."""

    __tablename__ = "cycle_close"

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    target_code: str = Field(primary_key=True, max_length=64)
    cycle: str = Field(primary_key=True, max_length=32)
    close_time: datetime = _utc()
    awards: int = 0
    reversals: int = 0


class SftpSettingsRow(SQLModel, table=True):
    """Where the worker pulls a brand's files. The credential (password or private key) is
    stored only sealed with the operator's key and bound to the brand (application/sealing);
    its kind and the fingerprint of a key's public half are kept in clear for display."""

    __tablename__ = "sftp_settings"

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    enabled: bool = True
    host: str = Field(max_length=255)
    port: int = 22
    username: str = Field(max_length=128)
    credential_kind: str = Field(default="", max_length=16)  # PASSWORD, PRIVATE_KEY or ""
    credential_fingerprint: str = Field(default="", max_length=128)
    credential_sealed: bytes | None = Field(default=None, sa_type=LargeBinary, nullable=True)
    host_key: str = Field(max_length=8192)
    targets_folder: str = Field(default="", max_length=1024)
    transactions_folder: str = Field(default="", max_length=1024)
    processed_folder: str = Field(max_length=1024)
    failed_folder: str = Field(max_length=1024)
    poll_interval_seconds: int = 60
    update_time: datetime = _utc()


class FileImportRow(SQLModel, table=True):
    """One file import. (name, content hash) is unique: the same file is never imported twice.
    ``committed_line`` is the checkpoint, advanced in the same transaction as the rows."""

    __tablename__ = "file_import"
    __table_args__ = (
        Index("ux_file_import_content", "brand_code", "file_name", "content_sha256", unique=True),
        Index("ix_file_import_recent", "brand_code", "start_time"),
    )

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    id: str = Field(primary_key=True, max_length=32)
    kind: str = Field(max_length=16)  # TARGET_VALUES, TRANSACTIONS
    file_name: str = Field(max_length=1024)
    content_sha256: str = Field(max_length=64)
    state: str = Field(max_length=10)  # RUNNING, DONE, FAILED
    committed_line: int = 0
    rows_read: int = Field(default=0, sa_type=BigInteger)
    rows_accepted: int = Field(default=0, sa_type=BigInteger)
    rows_duplicate: int = Field(default=0, sa_type=BigInteger)
    rows_refused: int = Field(default=0, sa_type=BigInteger)
    error_report: str = Field(default="", max_length=1024)
    failure_reason: str = Field(default="", max_length=2000)
    start_time: datetime = _utc()
    finish_time: datetime | None = _utc(default=None, nullable=True)
    duration_ms: int = Field(default=0, sa_type=BigInteger)


class ImportErrorRow(SQLModel, table=True):
    """A refused row of a file, kept so the error report survives a restart."""

    __tablename__ = "import_error"

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    import_id: str = Field(primary_key=True, max_length=32)
    line: int = Field(primary_key=True)
    column: str = Field(primary_key=True, max_length=64)
    value: str = Field(default="", max_length=1024)
    reason: str = Field(max_length=2000)


class CycleEventRow(SQLModel, table=True):
    """A cycle transition done by the clock (OPEN, GRACE, CLOSED): written once each."""

    __tablename__ = "cycle_event"

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    target_code: str = Field(primary_key=True, max_length=64)
    cycle: str = Field(primary_key=True, max_length=32)
    state: str = Field(primary_key=True, max_length=10)
    time: datetime = _utc()


class CycleHoldRow(SQLModel, table=True):
    """A cycle the clock could not advance, kept while it fails and deleted once it works;
    ``cycle`` "" holds the whole target (its definition cannot be used)."""

    __tablename__ = "cycle_hold"

    brand_code: str = Field(primary_key=True, foreign_key="brand.code", max_length=64)
    target_code: str = Field(primary_key=True, max_length=64)
    cycle: str = Field(primary_key=True, max_length=32)
    reason: str = Field(max_length=1000)
    # The target's version when it last failed: a change of the target is worth a try at once.
    target_version: int = 0
    attempts: int = 1
    first_failure_time: datetime = _utc()
    last_failure_time: datetime = _utc()
    next_attempt_time: datetime = _utc()
