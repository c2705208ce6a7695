"""Live streams cannot exhaust the server: caps per key and brand, slow readers are let go,
and an idle stream reads nothing until a change or the clock says its view changed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from attain.v1 import progress_pb2 as ppb
from attain.v1 import progress_pb2_grpc, rewards_pb2_grpc
from attain.v1 import rewards_pb2 as rpb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_worker import clock as cycle_clock
from conftest import Api, Brand, FakeClock
from support import JAKARTA, NOV_15, D, auth, fails, monthly_target, record, sale, setup


def watch(api: Api, key: tuple[tuple[str, str], ...], member: str = "M-001") -> Any:
    return api.progress.WatchProgress(ppb.WatchProgressRequest(member_id=member), metadata=key)


async def until(check: Callable[[], bool], seconds: float = 5.0) -> float:
    """Waits until `check()` holds; returns how long that took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"not within {seconds} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def admin_key(api: Api, brand: Brand) -> tuple[tuple[str, str], ...]:
    created = await api.targets.CreateApiKey(
        tpb.CreateApiKeyRequest(role=typ.ROLE_BRAND_ADMIN, label="second"), metadata=brand.admin
    )
    return auth(created.secret)


async def test_streams_are_capped_per_key_and_per_brand(
    api: Api, brand: Brand, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.set(NOV_15)
    monkeypatch.setattr(api.app.streams, "per_key", 2)
    monkeypatch.setattr(api.app.streams, "per_brand", 3)
    await setup(api, brand, monthly_target())
    other = await api.new_brand()
    await setup(api, other, monthly_target())
    second = await admin_key(api, brand)
    gone = grpc.aio.insecure_channel(api.address)
    open_calls: list[Any] = []
    try:
        a1 = watch(api, brand.admin)
        # This one's client vanishes later: its channel closes under it.
        a2 = progress_pb2_grpc.ProgressServiceStub(gone).WatchProgress(
            ppb.WatchProgressRequest(member_id="M-001"), metadata=brand.admin
        )
        b1 = watch(api, second)
        open_calls += [a1, a2, b1]
        for call in (a1, a2, b1):
            await asyncio.wait_for(call.read(), 10)

        over_key = await fails(watch(api, brand.admin).read())
        assert over_key.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert over_key.reason == "TOO_MANY_STREAMS"
        assert "API key already has 2 live streams" in over_key.message
        assert "close a stream" in over_key.message
        over_brand = await fails(watch(api, second).read())
        assert over_brand.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"brand {brand.code} already has 3 live streams" in over_brand.message

        # Another brand is not held back by this one's streams.
        o1, o2 = watch(api, other.admin), watch(api, other.admin)
        open_calls += [o1, o2]
        for call in (o1, o2):
            assert (await asyncio.wait_for(call.read(), 10)).progress.member_id == "M-001"

        # Cancelling a stream frees its slot ...
        a1.cancel()
        await until(lambda: api.app.streams.count == 4)
        a3 = watch(api, brand.admin)
        open_calls.append(a3)
        assert (await asyncio.wait_for(a3.read(), 10)).progress.member_id == "M-001"
        # ... and so does a client that goes away without a word.
        await gone.close()
        await until(lambda: api.app.streams.count == 4)
        b2 = watch(api, second)
        open_calls.append(b2)
        assert (await asyncio.wait_for(b2.read(), 10)).progress.member_id == "M-001"
    finally:
        for call in open_calls:
            call.cancel()
        await gone.close()
    await until(lambda: api.app.streams.count == 0 and api.app.hub.subscriber_count == 0)


@asynccontextmanager
async def slow_reader(api: Api) -> AsyncIterator[rewards_pb2_grpc.RewardServiceAsyncStub]:
    """A channel whose receive window is about a kilobyte: what the client does not read
    soon stops the server's writes (gRPC's flow control), as a stalled app would."""
    channel = grpc.aio.insecure_channel(
        api.address,
        options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)],
    )
    try:
        yield rewards_pb2_grpc.RewardServiceStub(channel)
    finally:
        await channel.close()


async def test_a_stream_whose_client_does_not_read_is_ended_and_releases_everything(
    api: Api, brand: Brand, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.set(NOV_15)
    monkeypatch.setattr(api.app.streams, "write_timeout", 0.5)
    milestones = [
        tpb.Milestone(attainment_percent=D(str(pct)), incentive=typ.Incentive(points=1))
        for pct in range(1, 41)
    ]
    target = monthly_target(
        value="100", rules=[tpb.RewardRule(milestones=tpb.MilestonesRule(milestones=milestones))]
    )
    await setup(api, brand, target)
    await record(api, brand, sale("ALL", "100"))  # 40 awards: far more than a kilobyte
    hub = api.app.award_hub
    before = hub.subscriber_count
    async with slow_reader(api) as rewards:
        stream: Any = rewards.WatchAwards(rpb.WatchAwardsRequest(), metadata=brand.admin)
        await until(lambda: api.app.streams.count == 1)
        tasks = api.app.streams.tasks()
        assert hub.subscriber_count == before + 1
        took = await until(lambda: api.app.streams.count == 0, seconds=10)
        # Its slot and subscription are freed while the client still reads nothing.
        assert hub.subscriber_count == before
        assert took >= 0.3  # it was given its time to read
        # What was written before still arrives, then the status that says to reconnect.
        received = 0
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            while True:
                response = await asyncio.wait_for(stream.read(), 10)
                assert response is not grpc.aio.EOF, "the stream ended without a status"
                received += 1
        # gRPC's own task for the call ends once its status is out: nothing is left behind.
        await until(lambda: all(task.done() for task in tasks))
    assert 0 < received < 40
    assert ended.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "did not read" in (ended.value.details() or "")
    assert "reconnect" in (ended.value.details() or "")


class UnitCounter:
    """Counts the units of work (reads and writes) the server's database opens."""

    def __init__(self, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = 0
        db = api.app.db
        for name in ("read", "reader", "unit", "write"):
            monkeypatch.setattr(db, name, self._counting(getattr(db, name)))

    def _counting(self, open_unit: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.opened += 1
            return open_unit(*args, **kwargs)

        return counted


async def test_an_idle_watch_reads_nothing_and_still_sees_a_sale_at_once(
    api: Api, brand: Brand, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.set(NOV_15)  # noon: the view changes by time alone only at midnight
    await setup(api, brand, monthly_target())
    stream = watch(api, brand.admin)
    first = await asyncio.wait_for(stream.read(), 10)
    assert first.progress.achieved_value.value == "0"
    counter = UnitCounter(api, monkeypatch)
    await asyncio.sleep(6)  # longer than any poll the stream might make
    assert counter.opened == 0
    started = time.monotonic()
    await record(api, brand, sale("IDLE-1", "250"))
    second = await asyncio.wait_for(stream.read(), 10)
    assert second.progress.achieved_value.value == "250"
    assert time.monotonic() - started < 2
    stream.cancel()


async def test_a_watch_sends_the_new_days_left_at_local_midnight_unasked(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(datetime(2026, 11, 15, 23, 59, 59, 500_000, tzinfo=JAKARTA))
    await setup(api, brand, monthly_target())
    stream = watch(api, brand.admin)
    first = await asyncio.wait_for(stream.read(), 10)
    assert first.progress.days_left == 16  # 15 to 30 November
    clock.set(datetime(2026, 11, 16, 0, 0, 0, 200_000, tzinfo=JAKARTA))
    started = time.monotonic()
    second = await asyncio.wait_for(stream.read(), 10)
    assert second.progress.days_left == 15
    assert time.monotonic() - started < 2.5  # no signal: the clock alone woke it
    stream.cancel()


async def test_a_watch_sees_a_changed_target_at_once(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(value="10000.00"))
    stream = watch(api, brand.admin)
    first = await asyncio.wait_for(stream.read(), 10)
    assert first.progress.target_value.value == "10000.00"
    started = time.monotonic()
    await api.targets.UpdateTarget(
        tpb.UpdateTargetRequest(
            target=tpb.Target(
                code="NOV-SALES",
                criteria=[tpb.Criterion(kpi=typ.KPI_TRANSACTION_AMOUNT, target_value=D("500"))],
            ),
            update_mask=FieldMask(paths=["criteria"]),
        ),
        metadata=brand.admin,
    )
    second = await asyncio.wait_for(stream.read(), 10)
    assert second.progress.target_value.value == "500"
    assert time.monotonic() - started < 2.5
    stream.cancel()


async def test_close_time_awards_reach_an_open_award_stream_at_once(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    percentage = tpb.RewardRule(percentage=tpb.PercentageRule(percent=D("10")))
    await setup(api, brand, monthly_target(start="2026-11-01", rules=[percentage]))
    await record(api, brand, sale("CLOSE-1", "5000"))
    stream: Any = api.rewards.WatchAwards(rpb.WatchAwardsRequest(), metadata=brand.admin)
    await until(lambda: api.app.award_hub.watched(brand.code))
    december = datetime(2026, 12, 1, 0, 0, tzinfo=JAKARTA)
    clock.set(december)
    started = time.monotonic()
    moved = await cycle_clock.tick_brand(api.app, brand.code, JAKARTA, december)
    assert ("NOV-SALES", "2026-11", "CLOSED") in [(t.target, t.cycle, t.state) for t in moved]
    given = await asyncio.wait_for(stream.read(), 10)
    assert (given.award.member_id, given.award.points) == ("M-001", 500)
    assert time.monotonic() - started < 2.5
    stream.cancel()


async def test_a_cycle_that_opens_joins_an_open_progress_stream(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(datetime(2026, 11, 30, 23, 0, tzinfo=JAKARTA))
    await setup(api, brand, monthly_target(start="2026-12-01"))
    stream = watch(api, brand.admin)  # the target has not started: an empty card
    await until(lambda: api.app.hub.watched(brand.code))
    december = datetime(2026, 12, 1, 0, 0, tzinfo=JAKARTA)
    clock.set(december)
    started = time.monotonic()
    await cycle_clock.tick_brand(api.app, brand.code, JAKARTA, december)
    opened = await asyncio.wait_for(stream.read(), 10)
    assert (opened.progress.cycle, opened.progress.achieved_value.value) == ("2026-12", "0")
    assert time.monotonic() - started < 2.5
    stream.cancel()


async def test_a_lost_listen_connection_comes_back_and_wakes_every_stream(
    api: Api, brand: Brand
) -> None:
    if api.app.db.dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    url = api.app.db.url
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    signal = api.app.hub.subscribe(brand.code, "M-LISTEN")
    try:
        listening = await conn.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        assert len(listening) == 1
        await conn.execute("SELECT pg_terminate_backend($1)", listening[0]["pid"])
        # Back again, every stream re-reads once for what it may have missed ...
        await asyncio.wait_for(signal.wait(), 15)
        signal.clear()
        # ... and another replica's notifications reach the hub once more.
        payload = json.dumps({"b": brand.code, "m": ["M-LISTEN"]})
        await conn.execute("SELECT pg_notify('attain_progress', $1)", payload)
        await asyncio.wait_for(signal.wait(), 5)
    finally:
        api.app.hub.unsubscribe(brand.code, "M-LISTEN", signal)
        await conn.close()
