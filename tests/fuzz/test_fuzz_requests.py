"""Fuzzes every request of the three attain.v1 services against a real server (SQLite and
PostgreSQL), built from their protobuf descriptors.

Per method, on a fresh brand A with plausible content and with every role the method allows,
hypothesis sends requests and fails on: INTERNAL or UNKNOWN; a call that does not answer in
time; INVALID_ARGUMENT that does not name a request field and a reason; a write that answered
an error yet changed A's rows; a stream summary that does not add up; anything of brand B in
A's answers. Around each method's run, brand B (same member and target codes as A) must be
unchanged, row for row and as its admin reads it, and no key may appear in the server's log.

The run is reproducible (derandomized, no example database). ATTAIN_FUZZ_SECONDS sets the
budget per database (examples scale with it): a longer hunt is one variable away.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import grpc
import pytest
import structlog
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from attain.v1 import progress_pb2, rewards_pb2, targets_pb2
from attain.v1 import targets_pb2 as tpb
from attain_server.api.gate import PERMISSIONS
from attain_server.domain.model import Role
from conftest import Api, FakeClock
from fuzz.harness import EXAMPLE_SECONDS, WRITES, Call, Fuzzer, calls
from fuzz.world import (
    NOW,
    OtherBrand,
    World,
    api_view,
    build_other,
    build_world,
    differences,
    hints,
)
from fuzz.world import rows_of as brand_rows

SERVICES = [
    targets_pb2.DESCRIPTOR.services_by_name["TargetService"],
    progress_pb2.DESCRIPTOR.services_by_name["ProgressService"],
    rewards_pb2.DESCRIPTOR.services_by_name["RewardService"],
]
METHODS: list[MethodDescriptor] = [m for s in SERVICES for m in s.methods]

# Seconds of fuzzing per database, spread over the methods. The examples per method follow
# from it (a fixed count, so a run is reproducible); EXAMPLES_PER_SECOND is what one method
# manages on a busy 2-core machine, watches (which wait out their deadline) a tenth of it.
FUZZ_SECONDS = float(os.environ.get("ATTAIN_FUZZ_SECONDS", "40"))
EXAMPLES_PER_SECOND = 25.0
# After the first finding of a method, how long hypothesis may shrink it (and look for more).
SHRINK_SECONDS = float(os.environ.get("ATTAIN_FUZZ_SHRINK_SECONDS", "8"))

ROLE_NAMES = {Role.BRAND_ADMIN: "admin", Role.INGEST: "ingest", Role.MEMBER: "member"}


def examples_for(method: MethodDescriptor) -> int:
    share = FUZZ_SECONDS / len(METHODS) * EXAMPLES_PER_SECOND
    if method.server_streaming:
        share /= 10
    return max(5, round(share))


def roles_for(method: MethodDescriptor) -> list[str]:
    allowed = PERMISSIONS[f"/{method.containing_service.full_name}/{method.name}"]
    return [ROLE_NAMES[r] for r in (Role.BRAND_ADMIN, Role.INGEST, Role.MEMBER) if r in allowed]


def run_examples(fuzzer: Fuzzer, strategy: st.SearchStrategy[Call], examples: int) -> None:
    """Hypothesis proper (synchronous: runs in a worker thread, see fuzz.harness)."""

    @settings(
        max_examples=examples,
        deadline=timedelta(seconds=EXAMPLE_SECONDS + 10),
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=True,
    )
    @given(call=strategy)
    def fuzz(call: Call) -> None:
        fuzzer.check(call)

    fuzzer.run(fuzz)


@pytest.fixture(scope="module")
async def other(api: Api) -> OtherBrand:
    before = api.clock.fixed
    api.clock.set(NOW)  # B's sales count in the cycle the fuzz run sees as open
    try:
        return await build_other(api)
    finally:
        api.clock.fixed = before


@pytest.fixture(scope="module")
async def read_world(api: Api, other: OtherBrand) -> World:
    """Brand A for the methods that only read: one per database (a write gets its own)."""
    before = api.clock.fixed
    api.clock.set(NOW)
    try:
        return await build_world(api, other)
    finally:
        api.clock.fixed = before


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
async def test_fuzzed_requests_get_canonical_answers(
    api: Api,
    other: OtherBrand,
    read_world: World,
    clock: FakeClock,
    method: MethodDescriptor,
) -> None:
    clock.set(NOW)
    world = await build_world(api, other) if method.name in WRITES else read_world
    b_rows = await brand_rows(api.app.db, other.brand.code)
    b_view = await api_view(api, other)
    strategy = calls(method, hints(world, other), roles_for(method))
    found: Exception | None = None
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        fuzzer = Fuzzer(asyncio.get_running_loop(), world, other, logs, SHRINK_SECONDS)
        try:
            await asyncio.to_thread(run_examples, fuzzer, strategy, examples_for(method))
        except Exception as exc:  # reported below, after brand B is checked too
            found = exc
    problems = differences(b_rows, await brand_rows(api.app.db, other.brand.code))
    if await api_view(api, other) != b_view:
        problems.append("brand B's admin reads something else than before")
    logged = repr(logs)
    problems += [f"a key in the log: {s[:12]}..." for s in world.secrets if s in logged]
    try:
        await api.targets.GetBrand(tpb.GetBrandRequest(), metadata=world.brand.admin, timeout=10)
    except grpc.aio.AioRpcError as error:
        problems.append(f"the server no longer answers: {error.code().name}")
    print(f"{method.name}: {dict(fuzzer.codes)}")
    if problems:
        raise AssertionError(f"after fuzzing {method.name}: {problems}") from found
    if found is not None:
        raise found
    assert fuzzer.codes, "no example reached the server"
