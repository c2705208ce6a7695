"""The operator's secrets key as the real commands use it, and a real pull by the real worker
process whose logs (and database file) never hold the credential."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncssh
import grpc
import pytest

from attain.v1 import targets_pb2 as tpb
from attain.v1 import targets_pb2_grpc
from attain_server.app import App
from attain_server.application.sealing import EMBEDDED_KEY_FILE, Sealer, new_key
from attain_server.config import Settings, SettingsError
from sshd_server import HEADER, Sshd, folders, settings_message
from support import BIN, auth, start_server

PASSPHRASE = "a passphrase nobody may log"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTAIN_")}
    return {**env, "ATTAIN_LOG_FORMAT": "json", **extra}


async def sealer_of(settings: Settings) -> Sealer | None:
    app = App.create(settings)
    await app.db.dispose()
    return app.sealer


async def test_the_embedded_default_makes_its_key_once_and_other_databases_need_one(
    tmp_path: Path,
) -> None:
    first = await sealer_of(Settings(data_dir=tmp_path))
    key_file = tmp_path / EMBEDDED_KEY_FILE
    assert first is not None
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    sealed = first.seal(b"x", brand="B", purpose="p")
    again = await sealer_of(Settings(data_dir=tmp_path))
    assert again is not None and again.open(sealed, brand="B", purpose="p") == b"x"
    # A database URL (PostgreSQL, or SQLite named by URL) gets no generated key.
    pg = "postgresql+asyncpg://nobody@127.0.0.1/none"
    other = tmp_path / "other"
    for url in (pg, f"sqlite+aiosqlite:///{tmp_path}/x.db"):
        assert await sealer_of(Settings(data_dir=other, database_url=url)) is None
    assert not other.exists()
    from_file = await sealer_of(Settings(database_url=pg, secrets_key_file=key_file))
    assert from_file is not None and from_file.open(sealed, brand="B", purpose="p") == b"x"
    with pytest.raises(SettingsError, match="not both"):
        App.create(Settings(database_url=pg, secrets_key=new_key(), secrets_key_file=key_file))


def test_a_bad_key_stops_the_server_with_a_message_that_does_not_show_it(tmp_path: Path) -> None:
    bad = "c2hvcnQta2V5"  # base64, but 9 bytes
    for var, value in (
        ("ATTAIN_SECRETS_KEY", bad),
        ("ATTAIN_SFTP_ALLOWED_HOSTS", "10.0.0.0/33"),
    ):
        run = subprocess.run(
            [
                BIN / "attain-server",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            env=clean_env(**{var: value}),
            timeout=60,
        )
        assert run.returncode == 2, run.stderr
        assert f"error: {var}" in run.stderr and "Traceback" not in run.stderr
        assert bad not in run.stderr


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _set_settings(address: str, key: str, sshd: Sshd, base: Path, pem: str) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = targets_pb2_grpc.TargetServiceStub(channel)
        stub.UpsertMember(
            tpb.UpsertMemberRequest(member=tpb.Member(external_id="M-001")), metadata=auth(key)
        )
        settings = settings_message(
            sshd,
            base,
            poll_interval_seconds=10,
            credential=tpb.SftpCredential(private_key=pem, passphrase=PASSPHRASE),
        )
        shown = stub.SetSftpSettings(
            tpb.SetSftpSettingsRequest(settings=settings), metadata=auth(key)
        ).settings
    assert shown.credential_info.kind == tpb.SFTP_CREDENTIAL_KIND_PRIVATE_KEY


def test_a_real_pull_by_the_worker_process_logs_no_secret(tmp_path: Path, sshd: Sshd) -> None:
    data = tmp_path / "data"
    env = clean_env(ATTAIN_LOG_LEVEL="DEBUG", ATTAIN_WORKER_SETTLE_SECONDS="0.05")
    created = subprocess.run(
        [BIN / "attain-server", "brands", "create", "ACME", "--timezone=UTC", f"--data-dir={data}"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    key = created.stdout.strip()
    pem = asyncssh.read_private_key(sshd.user_key).export_private_key(
        "openssh", passphrase=PASSPHRASE
    )
    base = folders(sshd)
    server_log = tmp_path / "serve.log"
    server, address = start_server(server_log, "--no-worker", "--data-dir", str(data), env=env)
    try:
        _set_settings(address, key, sshd, base, pem.decode())
    finally:
        _stop(server)
    now = datetime.now(UTC).isoformat()
    (base / "transactions" / "day1.csv").write_text(
        HEADER + f"T1,M-001,{now},S1,SKU-1,food,1,10,SALE,\n"
    )
    (base / "transactions" / "day1.csv.done").write_text("")
    worker_log = tmp_path / "worker.log"
    with worker_log.open("wb") as log:
        worker = subprocess.Popen(
            [BIN / "attain-server", "worker", "--data-dir", str(data)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        while not (base / "processed" / "day1.csv").exists():
            assert worker.poll() is None, worker_log.read_text()
            assert time.monotonic() < deadline, worker_log.read_text()
            time.sleep(0.1)
    finally:
        _stop(worker)
    logged = worker_log.read_text()
    assert '"file imported"' in logged and '"accepted": 1' in logged
    stored = b"".join(p.read_bytes() for p in data.iterdir() if p.name.startswith("attain.db"))
    body = [line for line in pem.decode().splitlines()[1:-1] if len(line) > 20]
    for secret in (PASSPHRASE, "PRIVATE KEY", *body):
        assert secret not in logged and secret not in server_log.read_text(), secret
        assert secret.encode() not in stored, secret
    assert stat.S_IMODE((data / EMBEDDED_KEY_FILE).stat().st_mode) == 0o600
