"""Pulls with the brand's sealed credential against the real sshd: a key (encrypted at the
source), a password, a ciphertext copied between brands, the operator's allow-list at
connect time, and logs that never hold a secret (both databases)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh
import pytest
from sqlmodel import select
from structlog.testing import capture_logs

from attain.v1 import targets_pb2 as tpb
from attain_server.application.sftp_hosts import HostPolicy
from attain_server.store.tables import SftpSettingsRow
from attain_worker.scheduler import Worker
from conftest import Api, Brand, FakeClock
from sshd_server import HEADER, Sshd, folders, settings_message
from support import NOV_15, monthly_target, progress, setup

ROW = "{id},M-001,2026-11-10T10:00:00+07:00,S1,SKU-1,food,1,{amount},SALE,\n"
PASSPHRASE = "correct horse battery staple"


def drop(base: Path, name: str, *rows: str) -> None:
    (base / "transactions" / name).write_text(HEADER + "".join(rows))
    (base / "transactions" / f"{name}.done").write_text("")


async def put(api: Api, brand: Brand, msg: tpb.SftpSettings) -> None:
    await api.targets.SetSftpSettings(
        tpb.SetSftpSettingsRequest(settings=msg), metadata=brand.admin
    )


def encrypted_user_key(sshd: Sshd) -> str:
    """The key sshd accepts, as an admin's passphrase-protected OpenSSH key file holds it."""
    key = asyncssh.read_private_key(sshd.user_key)
    return key.export_private_key("openssh", passphrase=PASSPHRASE).decode()


def assert_no_secret(logs: Iterable[object], *secrets: str) -> None:
    text = repr(list(logs))
    for secret in ("PRIVATE KEY", *secrets):
        assert secret not in text, secret


def key_body(pem: str) -> list[str]:
    """Pieces of a key file's base64 body, any of which in a log would be a leak."""
    return [line for line in pem.splitlines()[1:-1] if len(line) > 20]


async def imported(api: Api, brand: Brand) -> list[tpb.FileImport]:
    response = await api.targets.ListImports(tpb.ListImportsRequest(), metadata=brand.admin)
    return list(response.imports)


async def test_a_pull_logs_in_with_the_stored_encrypted_key_and_logs_no_secret(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001")
    base = folders(sshd)
    pem = encrypted_user_key(sshd)
    credential = tpb.SftpCredential(private_key=pem, passphrase=PASSPHRASE)
    with capture_logs() as logs:
        await put(api, brand, settings_message(sshd, base, credential=credential))
        drop(base, "day1.csv", ROW.format(id="T1", amount=4000))
        [done] = await Worker(api.app, settle_seconds=0.05).run_pull(brand.code)
    assert done.rows_accepted == 1  # type: ignore[attr-defined]
    assert (await progress(api, brand)).achieved_value.value == "4000"
    assert any(e["event"] == "file imported" for e in logs)
    assert_no_secret(logs, PASSPHRASE, *key_body(pem))


class _PasswordServer(asyncssh.SSHServer):
    """Accepts one user and password, and remembers every password it was offered."""

    def __init__(self, offered: list[str], username: str, password: str) -> None:
        self.offered, self.username, self.password = offered, username, password

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        self.offered.append(password)
        return username == self.username and password == self.password


@asynccontextmanager
async def password_sftp(
    root: Path, username: str, password: str
) -> AsyncIterator[tuple[int, str, list[str]]]:
    """An SFTP server (asyncssh's, confined to ``root``) that takes a password: the fixture's
    OpenSSH checks passwords only against the system's users (PAM or /etc/shadow), which
    a test must not change. Yields its port, its host key and the passwords offered."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    offered: list[str] = []
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        server_factory=lambda: _PasswordServer(offered, username, password),
        sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root).encode()),
        allow_scp=False,
    )
    try:
        port = server.sockets[0].getsockname()[1]
        yield port, host_key.export_public_key().decode().strip(), offered
    finally:
        server.close()
        await server.wait_closed()


async def test_a_pull_logs_in_with_a_stored_password_sent_as_it_is(
    api: Api, brand: Brand, clock: FakeClock, tmp_path: Path
) -> None:
    """Even a password shaped like the old references is only a password: the server is
    offered exactly that text, never the server variable it names."""
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001")
    for sub in ("transactions", "processed", "failed"):
        (tmp_path / sub).mkdir()
    password = "env:ATTAIN_DATABASE_URL"
    async with password_sftp(tmp_path, "acme", password) as (port, host_key, offered):
        msg = tpb.SftpSettings(
            enabled=True,
            host="127.0.0.1",
            port=port,
            username="acme",
            host_key=host_key,
            transactions_folder="/transactions",
            processed_folder="/processed",
            failed_folder="/failed",
            credential=tpb.SftpCredential(password=password),
        )
        with capture_logs() as logs:
            await put(api, brand, msg)
            drop(tmp_path, "day1.csv", ROW.format(id="T1", amount=250))
            [done] = await Worker(api.app, settle_seconds=0.05).run_pull(brand.code)
    assert offered == [password]
    assert done.rows_accepted == 1  # type: ignore[attr-defined]
    assert (tmp_path / "processed" / "day1.csv").exists()
    assert_no_secret(logs, password)


async def _copy_credential(api: Api, source: str, target: str, kind: str | None = None) -> None:
    """What someone with write access to the database could do: move a sealed credential
    into another brand's row (or relabel its kind)."""
    async with api.app.db.write() as s:
        rows = {
            r.brand_code: r
            for r in (
                await s.exec(
                    select(SftpSettingsRow).where(
                        SftpSettingsRow.brand_code.in_([source, target])  # type: ignore[attr-defined]
                    )
                )
            ).all()
        }
        rows[target].credential_sealed = rows[source].credential_sealed
        rows[target].credential_kind = kind or rows[source].credential_kind
        rows[target].credential_fingerprint = rows[source].credential_fingerprint
        s.add(rows[target])


async def test_a_ciphertext_copied_to_another_brand_does_not_open(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd
) -> None:
    clock.set(NOV_15)
    other = await api.new_brand()
    for b in (brand, other):
        await setup(api, b, monthly_target(), "M-001")
    mine, theirs = folders(sshd), folders(sshd)
    pem = sshd.user_key.read_text()
    await put(
        api, brand, settings_message(sshd, mine, credential=tpb.SftpCredential(private_key=pem))
    )
    await put(
        api, other, settings_message(sshd, theirs, credential=tpb.SftpCredential(password="guess"))
    )
    await _copy_credential(api, brand.code, other.code)
    drop(theirs, "day1.csv", ROW.format(id="T1", amount=4000))
    worker = Worker(api.app, settle_seconds=0.05)
    with capture_logs() as logs:
        assert await worker.run_pull(other.code) == []
    [failed] = [e for e in logs if e["event"] == "sftp poll failed"]
    assert (failed["brand"], failed["reason"]) == (other.code, "CREDENTIAL_INVALID")
    assert await imported(api, other) == []
    assert sorted(p.name for p in (theirs / "transactions").iterdir()) == [
        "day1.csv",
        "day1.csv.done",
    ]
    assert_no_secret(logs, *key_body(pem))
    # Within the brand, the seal also binds the kind: a key relabelled a password fails too.
    await _copy_credential(api, brand.code, brand.code, kind="PASSWORD")
    drop(mine, "day1.csv", ROW.format(id="T1", amount=4000))
    with capture_logs() as logs:
        assert await worker.run_pull(brand.code) == []
    assert [e["reason"] for e in logs if e["event"] == "sftp poll failed"] == ["CREDENTIAL_INVALID"]
    assert await imported(api, brand) == []


async def test_without_the_operators_key_the_worker_skips_the_brand_and_says_why(
    api: Api, brand: Brand, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = folders(sshd)
    pem = sshd.user_key.read_text()
    await put(
        api, brand, settings_message(sshd, base, credential=tpb.SftpCredential(private_key=pem))
    )
    drop(base, "day1.csv", ROW.format(id="T1", amount=1))
    monkeypatch.setattr(api.app, "sealer", None)
    with capture_logs() as logs:
        assert await Worker(api.app, settle_seconds=0.05).run_pull(brand.code) == []
    [failed] = [e for e in logs if e["event"] == "sftp poll failed"]
    assert failed["reason"] == "SECRETS_KEY_MISSING"
    assert "ATTAIN_SECRETS_KEY" in failed["error"]
    assert (base / "transactions" / "day1.csv").exists()


class CountingProxy:
    """A TCP relay in front of sshd that counts the connections it accepts: proof of
    whether the worker connected at all."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> CountingProxy:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_a_host_the_operator_no_longer_allows_is_not_connected_to(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001")
    base = folders(sshd)
    pem = sshd.user_key.read_text()
    worker = Worker(api.app, settle_seconds=0.05)
    monkeypatch.setattr(api.app, "sftp_hosts", HostPolicy.parse("10.20.0.0/16, 127.0.0.1/32"))
    async with CountingProxy(sshd.port) as proxy:
        credential = tpb.SftpCredential(private_key=pem)
        await put(api, brand, settings_message(sshd, base, port=proxy.port, credential=credential))
        drop(base, "day1.csv", ROW.format(id="T1", amount=100))
        [first] = await worker.run_pull(brand.code)
        assert first.rows_accepted == 1  # type: ignore[attr-defined]
        assert proxy.accepted == 1
        # The operator narrows the list; the brand's stored settings stay as they were.
        monkeypatch.setattr(api.app, "sftp_hosts", HostPolicy.parse("10.20.0.0/16,*.example"))
        drop(base, "day2.csv", ROW.format(id="T2", amount=200))
        with capture_logs() as logs:
            assert await worker.run_pull(brand.code) == []
        assert proxy.accepted == 1  # no connection was made
    [refused] = [e for e in logs if e["event"] == "sftp poll failed"]
    assert refused["reason"] == "HOST_NOT_ALLOWED"
    assert "127.0.0.1" in refused["error"]
    assert (await progress(api, brand)).achieved_value.value == "100"
    assert (base / "transactions" / "day2.csv").exists()
