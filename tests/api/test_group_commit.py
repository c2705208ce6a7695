"""Group commit: concurrent RecordTransaction calls share units of work and count once each."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from typing import Any

import pytest

from conftest import Api, Brand, FakeClock
from support import NOV_15, monthly_target, progress, setup

# 32 callers, each waiting for its answer before its next call (like bench/ingest), in a
# process of their own as real clients are: in this process they would share the server's
# event loop and could not arrive while it writes.
CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import datetime
    from attain_client import AttainClient

    async def main(address, key, calls, when):
        async with AttainClient(address, key) as attain:
            async def caller(k):  # each caller waits for its answer before the next call
                for i in range(k, calls, 32):
                    await attain.record_sale(f"G{i}", member="M-001", sku="SKU-1",
                                             amount="1.25", occurred_at=when)
            await asyncio.gather(*(caller(k) for k in range(32)))

    address, key, calls, when = sys.argv[1:]
    asyncio.run(main(address, key, int(calls), datetime.fromisoformat(when)))
    """
)


WRITE_SECONDS = 0.002


async def test_concurrent_unary_calls_share_commits(
    api: Api, brand: Brand, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(value="1000000.00"), "M-001")
    recorder = api.app.recorder
    original = recorder.record
    batches: list[int] = []

    async def counting(brand_code: str, txns: Any, *args: Any, **kwargs: Any) -> Any:
        batches.append(len(txns))
        # A write that takes a moment, as on a busy server: without it a fast server can
        # answer each call before the client process sends the next, and then no two calls
        # are ever there to share a write (seen on this machine once the write got faster).
        await asyncio.sleep(WRITE_SECONDS)
        return await original(brand_code, txns, *args, **kwargs)

    monkeypatch.setattr(recorder, "record", counting)
    calls = 200
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, api.address, brand.admin_key, str(calls), NOV_15.isoformat()
    )
    assert await asyncio.wait_for(client.wait(), 60) == 0
    monkeypatch.undo()

    assert sum(batches) == calls
    assert (await progress(api, brand)).achieved_value.value == "250.00"
    # Calls that arrive while a unit of work is being prepared or written share the next one.
    assert max(batches) > 1, f"no two calls shared a unit of work: {batches}"
    assert len(batches) < calls
