"""The awards and ledger repositories (store/awards.py, store/ledger.py), on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from attain_server.domain.awards import Award, LedgerEntry
from attain_server.store import awards as repo
from attain_server.store import ledger
from attain_server.store.errors import Conflict
from attain_server.store.notify import AWARDS_CHANNEL, notify
from support import brand_with_members, migrated

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def _award(brand: str, n: int, member: str, **changes: object) -> Award:
    award = Award(
        brand_code=brand,
        id=f"{n:024x}",
        target_code="T",
        cycle="2026-11",
        member_id=member,
        rule_id="r1",
        milestone=str(n),
        kind="POINTS",
        state="GRANTED",
        points=n,
        program="P",
        voucher_pool="",
        voucher_code="",
        badge="",
        pending_reason="",
        create_time=NOW + timedelta(seconds=n),
        update_time=NOW + timedelta(seconds=n),
    )
    for name, value in changes.items():
        setattr(award, name, value)
    return award


def _entry(brand: str, n: int, points: int, request_id: str = "") -> LedgerEntry:
    return LedgerEntry(
        brand_code=brand,
        id=f"{n:024x}",
        member_id="M1",
        program="P",
        points=points,
        kind="ADJUSTMENT" if request_id else "AWARD",
        award_id="" if request_id else f"a{n}",
        request_id=request_id,
        reason="test",
        create_time=NOW + timedelta(seconds=n),
    )


async def test_awards_round_trip_by_members_range_and_row(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = f"A{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, ["M1", "M2", "M3"], NOW)
        given = [_award(brand, 1, "M1"), _award(brand, 2, "M2"), _award(brand, 3, "M3")]
        async with db.unit() as s:
            await repo.insert_awards(s, given)
            await repo.append_award_events(s, brand=brand, awards=given, now=NOW)
        async with db.unit() as s:
            await repo.mark_awards_reversed(s, brand=brand, awards=given[:1], now=NOW)
        async with db.reader() as s:
            some = await repo.load_awards_of_members(
                s, brand=brand, target_code="T", cycle="2026-11", members=["M1", "M3"]
            )
            ranged = await repo.load_awards_in_member_range(
                s, brand=brand, target_code="T", cycle="2026-11", first="M2", last="M3"
            )
            one = await repo.load_member_awards(
                s, brand=brand, target_code="T", cycle="2026-11", member_id="M1"
            )
        assert sorted(a.member_id for a in some) == ["M1", "M3"]
        assert sorted(a.member_id for a in ranged) == ["M2", "M3"]
        assert [a.state for a in one] == ["REVERSED"]
        assert one[0].create_time == given[0].create_time
        async with db.read() as s:
            events = await repo.load_award_events(s, brand=brand, after=0, member_id="", limit=10)
            mine = await repo.load_award_events(s, brand=brand, after=0, member_id="M2", limit=10)
            first = await repo.list_award_page(s, brand=brand, size=2, after=None)
            rest = await repo.list_award_page(s, brand=brand, size=2, after=first.resume)
        assert [seq for seq, _ in events] == [1, 2, 3]
        assert [(seq, a.id) for seq, a in mine] == [(2, given[1].id)]
        assert [a.id for a in first.awards + rest.awards] == [a.id for a in given]
        assert rest.resume is None


async def test_voucher_codes_are_counted_taken_and_assigned_once(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = f"V{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, ["M1"], NOW)
        async with db.write() as s:
            await repo.insert_voucher_codes(s, brand=brand, pool="gift", codes=["A", "B"], now=NOW)
            await repo.insert_voucher_codes(s, brand=brand, pool="gift", codes=["B", "C"], now=NOW)
            await repo.insert_voucher_codes(s, brand=brand, pool="other", codes=["Z"], now=NOW)
        waiting = _award(brand, 1, "M1", kind="VOUCHER", voucher_pool="gift", state="PENDING")
        async with db.write() as s:
            await repo.insert_awards(s, [waiting])
            pending = await repo.load_pending_voucher_awards(s, brand=brand, pool="gift", limit=5)
            codes = await repo.take_free_voucher_codes(s, brand=brand, pool="gift", count=1)
            assert [a.id for a in pending] == [waiting.id] and codes == ["A"]
            waiting.voucher_code, waiting.state = codes[0], "GRANTED"
            await repo.mark_vouchers_assigned(
                s, brand=brand, pool="gift", awards=[waiting], now=NOW
            )
            await repo.save_voucher_grants(s, brand=brand, awards=[waiting])
        async with db.read() as s:
            total = await repo.count_voucher_codes(s, brand=brand, pool="gift")
            free = await repo.count_voucher_codes(s, brand=brand, pool="gift", free_only=True)
            pools = await repo.list_voucher_pool_counts(s, brand=brand, after="", limit=5)
            later = await repo.list_voucher_pool_counts(s, brand=brand, after="gift", limit=5)
            left = await repo.load_pending_voucher_awards(s, brand=brand, pool="gift", limit=5)
        assert (total, free) == (3, 2)
        assert pools == [("gift", 3, 2), ("other", 1, 1)]
        assert later == [("other", 1, 1)]
        assert left == []


async def test_ledger_entries_balances_pages_and_request_ids(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = f"L{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, ["M1"], NOW)
        async with db.unit() as s:
            await ledger.insert_ledger_entries(s, [_entry(brand, 1, 10), _entry(brand, 2, 5)])
        async with db.write() as s:
            await ledger.add_ledger_entry(s, _entry(brand, 3, -3, request_id="req"))
        with pytest.raises(Conflict):
            async with db.write() as s:
                await ledger.add_ledger_entry(s, _entry(brand, 4, 7, request_id="req"))
        async with db.read() as s:
            found = await ledger.find_ledger_entry_by_request(s, brand=brand, request_id="req")
            missing = await ledger.find_ledger_entry_by_request(s, brand=brand, request_id="x")
            sums = await ledger.balances(s, brand, "M1")
            first = await ledger.list_ledger_page(
                s, brand=brand, member_id="M1", program="", size=2, after=None
            )
            rest = await ledger.list_ledger_page(
                s, brand=brand, member_id="M1", program="P", size=2, after=first.resume
            )
        assert found == _entry(brand, 3, -3, request_id="req")
        assert missing is None
        assert sums == {"P": 12}
        assert [e.points for e in first.entries + rest.entries] == [-3, 5, 10]  # newest first
        assert rest.resume is None


async def test_next_sequence_counts_up_per_brand_and_notify_is_quiet_on_sqlite(
    database_url: str,
) -> None:
    async with migrated(database_url) as db:
        brand = f"S{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, [], NOW)
        async with db.write() as s:
            assert await repo.next_sequence(s, brand=brand, name="n", count=3) == 1
            assert await repo.next_sequence(s, brand=brand, name="n", count=2) == 4
            # Queued for commit on PostgreSQL; nothing at all on SQLite.
            await notify(s, AWARDS_CHANNEL, brand, ["M1"])
