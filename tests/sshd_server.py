"""A real OpenSSH server on a free loopback port, with throwaway host and user keys (fixture)."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from attain.v1 import targets_pb2 as tpb
from attain_server.application.sftp_credentials import NewCredential
from attain_server.application.sftp_hosts import HostPolicy
from attain_server.application.sftp_settings import SftpSettings, get_settings, set_settings
from attain_server.store.engine import Database
from support import SEALER

SSHD = Path("/usr/sbin/sshd")
REQUIRED = os.environ.get("ATTAIN_REQUIRE_SSHD") == "1"


@dataclass(frozen=True)
class Sshd:
    host: str
    port: int
    username: str
    host_key: str  # the server's public key line: what a brand pins
    user_key: Path  # the private key the worker logs in with
    root: Path  # a folder the tests upload into
    folder: Path  # where throwaway keys and the config live

    def other_host_key(self) -> str:
        """A valid key that is not this server's (for the "changed key" test)."""
        path = self.folder / f"other_{time.monotonic_ns()}"
        keygen(path)
        return path.with_suffix(".pub").read_text().strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path) -> None:
    """A throwaway ed25519 key pair at `path` and `path`.pub."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if not SSHD.exists():
        if REQUIRED:
            pytest.fail("the OpenSSH server is required (scripts/ensure-sshd installs it)")
        pytest.skip("SFTP tests skipped: /usr/sbin/sshd is not installed (scripts/ensure-sshd)")
    folder = tmp_path_factory.mktemp("sshd")
    keygen(folder / "host_key")
    keygen(folder / "user_key")
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    root = folder / "sftp"
    root.mkdir()
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {folder / 'host_key'}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                "Subsystem sftp internal-sftp",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
    with (folder / "sshd.log").open("w") as log:
        proc = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=log
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"sshd did not start: {(folder / 'sshd.log').read_text()}"
                    ) from None
                time.sleep(0.05)
        host_key = " ".join((folder / "host_key.pub").read_text().split()[:2])
        yield Sshd(
            "127.0.0.1", port, getpass.getuser(), host_key, folder / "user_key", root, folder
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---------------------------------------------------------------- helpers for SFTP tests

HEADER = (
    "transaction_id,member_id,occurred_at,store_id,sku,category,quantity,amount,type,"
    "original_transaction_id\n"
)


def folders(sshd: Sshd) -> Path:
    base = sshd.root / uuid.uuid4().hex[:8]
    for sub in ("targets", "transactions", "processed", "failed"):
        (base / sub).mkdir(parents=True)
    return base


def settings(sshd: Sshd, base: Path, **overrides: object) -> SftpSettings:
    """Settings for the fixture's server and the folders under ``base``, no credential."""
    values: dict[str, object] = {
        "host": sshd.host,
        "port": sshd.port,
        "username": sshd.username,
        "host_key": sshd.host_key,
        "targets_folder": str(base / "targets"),
        "transactions_folder": str(base / "transactions"),
        "processed_folder": str(base / "processed"),
        "failed_folder": str(base / "failed"),
    }
    values.update(overrides)
    return SftpSettings(**values)  # type: ignore[arg-type]


def user_key(sshd: Sshd) -> NewCredential:
    """The private key sshd accepts, as a brand admin gives it (the text of the file)."""
    return NewCredential(private_key=sshd.user_key.read_text())


async def stored(
    db: Database, brand: str, cfg: SftpSettings, credential: NewCredential | None
) -> SftpSettings:
    """``cfg`` stored for ``brand`` the way SetSftpSettings stores it (the credential sealed
    with the test servers' key), read back as the worker reads it."""
    await set_settings(
        db=db,
        brand=brand,
        settings=cfg,
        credential=credential,
        sealer=SEALER,
        hosts=HostPolicy(),
        now=datetime.now(UTC),
    )
    return await get_settings(db=db, brand=brand)


async def brand_settings(
    db: Database, brand: str, sshd: Sshd, base: Path, **overrides: object
) -> SftpSettings:
    """The fixture's settings with its user key, stored for ``brand`` as the API stores them."""
    return await stored(db, brand, settings(sshd, base, **overrides), user_key(sshd))


def settings_message(sshd: Sshd, base: Path, **changes: Any) -> tpb.SftpSettings:
    """The fixture's settings as a SetSftpSettings message; ``changes`` set its fields."""
    msg = tpb.SftpSettings(
        enabled=True,
        host=sshd.host,
        port=sshd.port,
        username=sshd.username,
        host_key=sshd.host_key,
        transactions_folder=str(base / "transactions"),
        processed_folder=str(base / "processed"),
        failed_folder=str(base / "failed"),
        poll_interval_seconds=60,
    )
    for name, value in changes.items():
        if isinstance(value, tpb.SftpCredential):
            msg.credential.CopyFrom(value)
        else:
            setattr(msg, name, value)
    return msg
