"""Live streams cannot exhaust the server: caps per key and brand, and slow readers are let go."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from attain.v1 import progress_pb2 as ppb
from attain.v1 import progress_pb2_grpc, rewards_pb2_grpc
from attain.v1 import rewards_pb2 as rpb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from conftest import Api, Brand, FakeClock
from support import NOV_15, D, auth, fails, monthly_target, record, sale, setup


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
