"""The real command: `attain-server serve`, an operator-made brand, buf curl and no client code."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attain.v1 import progress_pb2 as ppb
from attain.v1 import progress_pb2_grpc, targets_pb2_grpc
from attain.v1 import targets_pb2 as tpb
from support import BIN, auth, monthly_target, start_server

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / "tools" / "node_modules" / ".bin" / "buf"


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    address: str
    key: str
    log: Path  # the server's JSON log


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env = {**os.environ, "ATTAIN_LOG_FORMAT": "json"}
    create = subprocess.run(
        [
            BIN / "attain-server",
            "brands",
            "create",
            "ACME",
            "--timezone",
            "Asia/Jakarta",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    key = create.stdout.strip()
    assert key.startswith("atn_") and key not in create.stderr
    log = tmp_path / "serve.log"
    proc, address = start_server(log, "--data-dir", str(tmp_path), env=env)
    try:
        yield Served(proc, address, key, log)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def buf_curl(
    address: str, path: str, body: dict[str, object] | None = None, key: str | None = None
) -> dict[str, object]:
    args = [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge"]
    if key:
        args += ["-H", f"authorization: Bearer {key}"]
    if body is not None:
        args += ["-d", json.dumps(body)]
    out = subprocess.run(
        [*args, f"http://{address}/{path}"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


@pytest.mark.skipif(
    not BUF.exists() and os.environ.get("CI") != "true",
    reason="buf is not installed (scripts/test installs it with npm)",
)
def test_buf_curl_lists_services_checks_health_and_round_trips_a_target(served: Served) -> None:
    address, key = served.address, served.key
    listing = subprocess.run(
        [
            str(BUF),
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--list-services",
            f"http://{address}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert {
        "attain.v1.TargetService",
        "attain.v1.ProgressService",
        "attain.v1.RewardService",
        "grpc.health.v1.Health",
    } <= set(listing)
    assert buf_curl(address, "grpc.health.v1.Health/Check", {}) == {"status": "SERVING"}
    target = {
        "code": "NOV-SALES",
        "criteria": [{"kpi": "KPI_TRANSACTION_AMOUNT", "targetValue": {"value": "10000.00"}}],
        "period": {"kind": "PERIOD_KIND_MONTHLY", "startDate": "2026-11-01"},
        "rules": [{"fixed": {"incentive": {"points": "1000"}}}],
    }
    created = buf_curl(address, "attain.v1.TargetService/CreateTarget", {"target": target}, key)
    got = buf_curl(address, "attain.v1.TargetService/GetTarget", {"code": "NOV-SALES"}, key)
    assert got == created
    assert got["target"]["criteria"][0]["targetValue"] == {"value": "10000.00"}  # type: ignore[index]


def test_sigterm_stops_gracefully(served: Served) -> None:
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0
    logged = served.log.read_text().splitlines()
    events = [json.loads(line)["event"] for line in logged if line.startswith("{")]
    # The embedded worker stops first, then the server, which lets calls finish.
    assert events[-3:] == ["stopping", "worker stopped", "stopped"]


def _brand_key(data_dir: Path, env: dict[str, str]) -> str:
    """Creates brand ACME with the operator command; returns its first admin key."""
    command = ["brands", "create", "ACME", "--timezone", "UTC", "--data-dir", str(data_dir)]
    create = subprocess.run(
        [BIN / "attain-server", *command],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    return create.stdout.strip()


async def test_sigterm_drains_then_ends_streams_and_exits_long_before_the_grace(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "ATTAIN_DRAIN_SECONDS": "2", "ATTAIN_SHUTDOWN_GRACE_SECONDS": "60"}
    md = auth(await asyncio.to_thread(_brand_key, tmp_path, env))
    proc, address = await asyncio.to_thread(
        start_server, tmp_path / "serve.log", "--data-dir", str(tmp_path), env=env
    )
    channel = grpc.aio.insecure_channel(address)
    try:
        targets = targets_pb2_grpc.TargetServiceStub(channel)
        health: Any = health_pb2_grpc.HealthStub(channel)  # typeshed types the sync stub only
        first_day = datetime.now(UTC).date().replace(day=1).isoformat()
        await targets.CreateTarget(
            tpb.CreateTargetRequest(target=monthly_target(start=first_day)), metadata=md
        )
        await targets.UpsertMember(
            tpb.UpsertMemberRequest(member=tpb.Member(external_id="M-001")), metadata=md
        )
        stream: Any = progress_pb2_grpc.ProgressServiceStub(channel).WatchProgress(
            ppb.WatchProgressRequest(member_id="M-001"), metadata=md
        )
        await asyncio.wait_for(stream.read(), 10)

        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        while True:  # the health check turns first ...
            checked = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
            if checked.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            assert time.monotonic() - sent < 1, "health did not turn NOT_SERVING at once"
            await asyncio.sleep(0.02)
        # ... while calls are still served during the drain window,
        brand = await targets.GetBrand(tpb.GetBrandRequest(), metadata=md, timeout=2)
        assert brand.brand.code == "ACME"
        assert time.monotonic() - sent < 2
        # then the open stream is told to reconnect, promptly after the window,
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(stream.read(), 10)
        ended_after = time.monotonic() - sent
        assert ended.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "reconnect" in (ended.value.details() or "")
        assert 1.8 < ended_after < 5
        # and the process is gone long before its 60 s of grace.
        assert await asyncio.to_thread(proc.wait, 20) == 0
        assert time.monotonic() - sent < 10
    finally:
        await channel.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
