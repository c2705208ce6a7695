"""Column types keep decimals exact and instants aware, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import JSON, null
from sqlalchemy.dialects import sqlite
from sqlmodel import select

from attain_server.store._runner.plans import bind_processor, result_processor
from attain_server.store.engine import Database
from attain_server.store.tables import BrandRow, TargetValueRow, TransactionRow
from attain_server.store.types import ExactDecimal, UtcDateTime, sqlite_text

AWKWARD = [
    Decimal("0.1"),
    Decimal("12345678901234567.8901234567"),
    Decimal("-0.0000000001"),
    Decimal("10000.00"),
    Decimal("3"),
]


async def test_decimals_and_instants_round_trip_exactly(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    jakarta = timezone(timedelta(hours=7))
    when = datetime(2026, 12, 30, 23, 59, 59, 999999, tzinfo=jakarta)
    code = f"T{uuid.uuid4().hex[:16]}"
    async with db.write() as s:
        s.add(BrandRow(code=code, time_zone="Asia/Jakarta", create_time=when))
        await s.flush()
        for i, value in enumerate(AWKWARD):
            s.add(
                TargetValueRow(
                    brand_code=code,
                    target_code="T",
                    cycle="2026-12",
                    member_id=f"M{i}",
                    criterion_id="c1",
                    value=value,
                    update_time=when,
                )
            )
    async with db.read() as s:
        brand = await s.get_one(BrandRow, code)
        rows = (
            await s.exec(
                select(TargetValueRow)
                .where(TargetValueRow.brand_code == code)
                .order_by(TargetValueRow.member_id)
            )
        ).all()
    assert brand.create_time == when and brand.create_time.tzinfo is not None
    assert brand.create_time.utcoffset() == timedelta(0)
    values = [r.value for r in rows]
    assert values == AWKWARD
    assert all(type(v) is Decimal for v in values)
    # Same digits, not just the same number: 10000.00 keeps its scale.
    assert [str(v) for v in values] == [str(v) for v in AWKWARD]
    await db.dispose()


async def test_naive_datetimes_and_floats_are_refused(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    with pytest.raises(Exception, match="naive datetime"):
        async with db.write() as s:
            s.add(BrandRow(code="NAIVE", time_zone="UTC", create_time=datetime(2026, 1, 1)))  # noqa: DTZ001
            await s.flush()
    now = datetime.now(UTC)
    with pytest.raises(Exception, match="takes Decimal, not float"):
        async with db.write() as s:
            s.add(BrandRow(code="FLOATY", time_zone="UTC", create_time=now))
            await s.flush()
            s.add(
                TargetValueRow(
                    brand_code="FLOATY",
                    target_code="T",
                    cycle="c",
                    member_id="m",
                    criterion_id="c1",
                    value=0.1,  # type: ignore[arg-type]
                    update_time=now,
                )
            )
            await s.flush()
    await db.dispose()


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=7)), timezone(-timedelta(hours=9, minutes=30))]
            + [ZoneInfo(z) for z in ("UTC", "Asia/Jakarta", "America/Santiago", "Europe/Berlin")]
        ),
    )
)
def test_sqlite_instants_are_the_text_sqlalchemy_writes_and_read_back_as_utc(
    when: datetime,
) -> None:
    dialect = sqlite.dialect()
    text = sqlite_text(when)
    assert text == when.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    assert UtcDateTime()._cached_bind_processor(dialect)(when) == text  # type: ignore[misc]
    back = UtcDateTime()._cached_result_processor(dialect, None)(text)  # type: ignore[misc]
    # (astimezone: a wall time in a gap or a fold never compares equal across zones)
    assert back == when.astimezone(UTC) and back.tzinfo is UTC


def test_naive_instants_are_refused_on_sqlite() -> None:
    with pytest.raises(ValueError, match="naive"):
        naive = datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
        UtcDateTime()._cached_bind_processor(sqlite.dialect())(naive)  # type: ignore[misc]


_DECIMALS = st.decimals(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [Decimal("1E+3"), Decimal("-0"), Decimal("0E-10"), Decimal("1.000"), Decimal("12E-9")]
)


@given(_DECIMALS)
def test_sqlite_decimals_are_the_text_the_generic_processor_writes(value: Decimal) -> None:
    dialect = sqlite.dialect()
    kept = ExactDecimal()
    text = kept._cached_bind_processor(dialect)(value)  # type: ignore[misc]
    assert text == kept.process_bind_param(value, dialect) == format(value, "f")
    back = kept._cached_result_processor(dialect, None)(text)  # type: ignore[misc]
    assert back == value and str(back) == str(kept.process_result_value(text, dialect))
    assert kept._cached_bind_processor(dialect)(None) is None  # type: ignore[misc]
    assert kept._cached_result_processor(dialect, None)(None) is None  # type: ignore[misc]


def test_sqlite_decimals_refuse_what_is_not_a_decimal() -> None:
    bind = ExactDecimal()._cached_bind_processor(sqlite.dialect())
    for wrong in (1.5, 2, "3"):
        with pytest.raises(TypeError, match="takes Decimal"):
            bind(wrong)  # type: ignore[misc, arg-type]


# (orjson, the serializer, takes 64-bit integers only, through either processor)
_JSON_LEAVES = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


# The dialect of an engine made as the server makes it (its JSON serializers are orjson's).
_SQLITE = Database("sqlite+aiosqlite:///:memory:").engine.dialect


@given(_JSON)
def test_bulk_json_processors_on_sqlite_are_sqlalchemys(value: object) -> None:
    dialect = _SQLITE
    json_type = TransactionRow.__table__.c.lines.type  # type: ignore[attr-defined]
    ours = bind_processor(json_type, dialect)
    theirs = json_type._cached_bind_processor(dialect)
    assert ours is not None and theirs is not None
    text = ours(value)
    assert text == theirs(value)
    read_ours = result_processor(json_type, dialect, None)
    read_theirs = json_type._cached_result_processor(dialect, None)
    assert read_ours is not None and read_theirs is not None
    assert read_ours(text) == read_theirs(text)


def test_bulk_json_processors_keep_sqlalchemys_markers_and_numbers() -> None:
    dialect = _SQLITE
    json_type = TransactionRow.__table__.c.lines.type  # type: ignore[attr-defined]
    bind = bind_processor(json_type, dialect)
    read = result_processor(json_type, dialect, None)
    assert bind is not None and read is not None
    assert bind(None) == "null"  # none_as_null is off: JSON null, as SQLAlchemy writes it
    assert bind(JSON.NULL) == "null"
    assert bind(null()) is None  # SQL NULL
    assert read(None) is None and read("null") is None
    # Not text (SQLite may keep a bare JSON number as one): SQLAlchemy's own processor
    # decides, and refuses it as it always has with this deserializer.
    theirs = json_type._cached_result_processor(dialect, None)
    for processor in (read, theirs):
        with pytest.raises(ValueError):
            processor(7)
