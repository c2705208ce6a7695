"""Graceful shutdown: in-flight calls finish, new ones are refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from attain.v1 import targets_pb2 as tpb
from attain.v1 import targets_pb2_grpc
from attain_server.application.brands import create_brand
from conftest import FakeClock, start_api
from support import auth


async def test_stop_lets_in_flight_calls_finish_and_refuses_new_ones(tmp_path: Path) -> None:
    running, channel = await start_api(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", FakeClock())
    app = running.app
    _, _, secret = await create_brand(db=app.db, code="ACME", time_zone="UTC", now=app.now())
    stub = targets_pb2_grpc.TargetServiceStub(channel)
    lock = app.db._write_lock
    assert lock is not None
    await lock.acquire()  # hold writes so the next call is provably in flight
    in_flight = asyncio.ensure_future(
        stub.UpsertMember(
            tpb.UpsertMemberRequest(member=tpb.Member(external_id="M-1")), metadata=auth(secret)
        )
    )
    await asyncio.sleep(0.3)
    assert not in_flight.done()
    stopping = asyncio.ensure_future(running.stop(grace=10, drain=0))
    await asyncio.sleep(0.3)
    late = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        refused = await targets_pb2_grpc.TargetServiceStub(late).GetBrand(
            tpb.GetBrandRequest(), metadata=auth(secret), timeout=2
        )
        raise AssertionError(f"a call after stop succeeded: {refused!r}")
    except grpc.aio.AioRpcError as error:
        assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        await late.close()
    lock.release()
    response = await in_flight
    assert response.created and response.member.external_id == "M-1"
    await stopping
    await channel.close()
