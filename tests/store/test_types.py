"""Column types keep decimals exact and instants aware, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite
from sqlmodel import select

from attain_server.store.engine import Database
from attain_server.store.tables import BrandRow, TargetValueRow
from attain_server.store.types import UtcDateTime, sqlite_text

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
    code = f"T{id(db)}"
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
