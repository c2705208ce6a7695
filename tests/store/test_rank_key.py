"""A progress row's rank key: attainment x 10^6 rounded down exactly, and always storable."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import select

from attain_server.application.ingest import OutcomeStatus, Recorder
from attain_server.application.targets import create_target
from attain_server.domain.kpis import Line
from attain_server.domain.progress import RANK_MAX, ProgressState
from attain_server.domain.transactions import Transaction, TransactionType
from attain_server.store.engine import Database
from attain_server.store.tables import ProgressRow
from support import amount_target, brand_with_members

NOW = datetime(2026, 11, 20, tzinfo=UTC)

# Attainments as they are made: up to 40 significant digits, from tiny to astronomical.
ATTAINMENTS = st.builds(
    lambda digits, exponent: Decimal(f"{digits}E{exponent}"),
    st.integers(0, 10**40 - 1),
    st.integers(-45, 30),
)


def _state(attainment: Decimal) -> ProgressState:
    return ProgressState(("T", "2026-11", "M"), "", {}, {}, 1, False, attainment=attainment)


@given(ATTAINMENTS)
def test_the_rank_key_is_the_exact_floor_capped_at_bigint(attainment: Decimal) -> None:
    exact = math.floor(Fraction(attainment) * 10**6)
    assert _state(attainment).rank_key == min(exact, RANK_MAX)


def test_a_run_of_nines_is_not_rounded_up() -> None:
    # 40 significant digits: the default context (28) would round it to 13000000.
    nines = Decimal("12." + "9" * 38)
    assert _state(nines).rank_key == 12_999_999


async def test_an_astronomical_attainment_is_recorded_and_ranks_first(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    brand = f"R{uuid.uuid4().hex[:16]}"
    await brand_with_members(db, brand, ["HUGE", "SMALL"], NOW)
    tiny = amount_target("TINY", date(2026, 11, 1), Decimal("0.0000000001"))
    await create_target(db=db, brand=brand, definition=tiny, now=NOW)
    recorder = Recorder(db, lambda: NOW)

    def sale(txn_id: str, member: str, amount: str) -> Transaction:
        line = Line("A", "x", Decimal(1), Decimal(amount))
        return Transaction(txn_id, member, NOW, "S", TransactionType.SALE, (line,))

    outcomes = await recorder.record(
        brand, [sale("T1", "HUGE", "1000000000000"), sale("T2", "SMALL", "0.01")]
    )
    assert [o.status for o in outcomes] == [OutcomeStatus.ACCEPTED] * 2
    async with db.read() as s:
        rows = {
            r.member_id: r
            for r in (await s.exec(select(ProgressRow).where(ProgressRow.brand_code == brand)))
        }
    # 10^12 / 10^-10 = 10^22, as a percent 10^24: kept exactly, ranked at the cap.
    assert rows["HUGE"].attainment == Decimal("1E24")
    assert rows["HUGE"].rank_key == RANK_MAX
    # 0.01 / 10^-10 = 10^8, as a percent 10^10: 10^16 as a rank key, under the cap.
    assert rows["SMALL"].rank_key == 10**16
    await db.dispose()
