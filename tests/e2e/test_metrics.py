"""The Prometheus endpoint of a real `attain-server serve`, when the operator asks for one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request
from pathlib import Path

from support import start_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_are_served_where_the_operator_says(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "ATTAIN_METRICS_LISTEN": f"127.0.0.1:{port}"}
    log = tmp_path / "serve.log"
    proc, _address = start_server(log, "--no-worker", "--data-dir", str(tmp_path), env=env)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        assert "# TYPE attain_cycle_holds_total counter" in text
        assert "# TYPE attain_cycle_releases_total counter" in text
        logged = [json.loads(line) for line in log.read_text().splitlines() if line[:1] == "{"]
        assert {"event": "metrics listening", "address": f"127.0.0.1:{port}"}.items() <= next(
            e for e in logged if e["event"] == "metrics listening"
        ).items()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
