"""The real command: `attain-server serve`, an operator-made brand, buf curl and no client code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import BIN, start_server

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
