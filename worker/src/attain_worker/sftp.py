"""Pulling a brand's files over SFTP (SPEC section 6): pinned host keys, sealed credentials,
hosts the operator allows.

The credential (private key or password) is the brand's own, opened from its sealed column
for one connection and never logged (application/sftp_settings.py). The host is resolved
once and every address checked against the operator's allow-list; the connection goes to a
checked address, never to a second lookup's answer. The server's host key must be exactly
the pinned one: an unknown or changed key fails the pull before anything is read or moved.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncssh
import structlog

from attain_server.app import App
from attain_server.application.sftp_credentials import (
    CredentialUnavailable,
    Login,
    open_credential,
)
from attain_server.application.sftp_hosts import (
    HostNotAllowed,
    HostUnresolvable,
    allowed_addresses,
)
from attain_server.application.sftp_settings import SftpSettings

from . import imports

log = structlog.get_logger("attain.sftp")

CHUNK = 256 * 1024
CONNECT_TIMEOUT = 20.0
SKIP_SUFFIXES = (".done", ".errors.csv", ".tmp", ".part")


class SftpFailure(Exception):
    """A pull that could not happen; ``reason`` is UPPER_SNAKE, the message is safe to log."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


async def _addresses(app: App, cfg: SftpSettings) -> list[str]:
    try:
        return await allowed_addresses(app.sftp_hosts, cfg.host, cfg.port)
    except HostNotAllowed as refused:
        raise SftpFailure("HOST_NOT_ALLOWED", f"{refused}: no connection made") from None
    except HostUnresolvable as failed:
        raise SftpFailure("CONNECT_FAILED", str(failed)) from None


async def _open(
    addresses: list[str], cfg: SftpSettings, login: Login
) -> asyncssh.SSHClientConnection:
    """A connection to the first of ``addresses`` that answers."""
    options: dict[str, Any] = {
        "username": cfg.username,
        # Only the pinned key is trusted: no known_hosts file, no CA, no trust on first use.
        "known_hosts": ([asyncssh.import_public_key(cfg.host_key)], [], []),
        "client_keys": [login.key] if login.key is not None else None,
        "password": login.password,
        "agent_path": None,
        "config": [],
        "connect_timeout": CONNECT_TIMEOUT,
    }
    unreachable: OSError | None = None
    for address in addresses:
        try:
            return await asyncssh.connect(address, cfg.port, **options)
        except OSError as exc:  # refused or unreachable: the next address may answer
            unreachable = exc
    raise unreachable or OSError(f"{cfg.host} has no address")


@asynccontextmanager
async def connect(app: App, brand: str, cfg: SftpSettings) -> AsyncIterator[asyncssh.SFTPClient]:
    try:
        login = open_credential(app.sealer, brand, cfg.credential)
    except CredentialUnavailable as unusable:
        raise SftpFailure(unusable.reason, unusable.message) from None
    addresses = await _addresses(app, cfg)
    try:
        async with await _open(addresses, cfg, login) as conn, conn.start_sftp_client() as sftp:
            yield sftp
    except asyncssh.HostKeyNotVerifiable:
        raise SftpFailure(
            "HOST_KEY_REJECTED",
            f"{cfg.host}:{cfg.port} did not present the pinned host key: refused",
        ) from None
    except asyncssh.PermissionDenied:
        raise SftpFailure(
            "AUTH_FAILED", f"{cfg.host}:{cfg.port} refused the credentials of {cfg.username}"
        ) from None
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise SftpFailure(
            "CONNECT_FAILED", f"cannot reach {cfg.host}:{cfg.port}: {type(exc).__name__}"
        ) from None


async def stream(sftp: asyncssh.SFTPClient, path: str) -> AsyncIterator[bytes]:
    async with sftp.open(path, "rb") as f:
        while True:
            chunk: Any = await f.read(CHUNK)  # bytes: the file is open in binary mode
            if not chunk:
                return
            yield chunk


async def sha256_of(sftp: asyncssh.SFTPClient, path: str) -> str:
    digest = hashlib.sha256()
    async for chunk in stream(sftp, path):
        digest.update(chunk)
    return digest.hexdigest()


async def _listing(sftp: asyncssh.SFTPClient, folder: str) -> dict[str, asyncssh.SFTPAttrs]:
    """The folder's entries with their attributes, in one listing rather than a stat per
    file. A symbolic link is followed (stat), as a path to a file would be."""
    out: dict[str, asyncssh.SFTPAttrs] = {}
    for entry in await sftp.readdir(folder):
        name = str(entry.filename)
        if name in (".", ".."):
            continue
        attrs = entry.attrs
        if attrs.type == asyncssh.FILEXFER_TYPE_SYMLINK:
            try:
                attrs = await sftp.stat(f"{folder}/{name}")
            except asyncssh.SFTPNoSuchFile:  # a dangling link
                continue
        out[name] = attrs
    return out


async def settled(sftp: asyncssh.SFTPClient, folder: str, wait: float) -> list[str]:
    """Files that are complete: a ``NAME.done`` marker, or size and mtime unchanged across
    two looks ``wait`` seconds apart (each look is one listing of the folder)."""
    listing = await _listing(sftp, folder)
    first: dict[str, tuple[int, int]] = {}
    ready: list[str] = []
    for name in sorted(listing):
        attrs = listing[name]
        if name.startswith(".") or name.endswith(SKIP_SUFFIXES):
            continue
        if attrs.type != asyncssh.FILEXFER_TYPE_REGULAR:
            continue
        if f"{name}.done" in listing:
            ready.append(name)
        else:
            first[name] = (attrs.size or 0, attrs.mtime or 0)
    if first:
        await asyncio.sleep(wait)
        again = await _listing(sftp, folder)
        for name, look in first.items():
            later = again.get(name)
            if later is None:
                continue
            if (later.size or 0, later.mtime or 0) == look and look[0] > 0:
                ready.append(name)
    return sorted(ready)


async def _move(sftp: asyncssh.SFTPClient, src: str, folder: str, name: str, tag: str) -> str:
    """Moves ``src`` into ``folder``; never overwrites (a clash gets the import id prefixed)."""
    await sftp.makedirs(folder, exist_ok=True)
    target = f"{folder}/{name}"
    if await sftp.exists(target):
        target = f"{folder}/{tag}-{name}"
    await sftp.rename(src, target)
    return target


async def _put_text(sftp: asyncssh.SFTPClient, path: str, text: str) -> None:
    async with sftp.open(path, "w") as f:
        await f.write(text)


async def pull(app: App, brand: str, cfg: SftpSettings, *, settle: float = 2.0) -> list[Any]:
    """One poll of one brand: every complete file of both kinds, imported and moved."""
    done = []
    async with connect(app, brand, cfg) as sftp:
        for kind, folder in (
            ("TARGET_VALUES", cfg.targets_folder),
            ("TRANSACTIONS", cfg.transactions_folder),
        ):
            if not folder:
                continue
            for name in await settled(sftp, folder, settle):
                done.append(await _import_one(app, sftp, brand, cfg, kind, folder, name))
    return done


async def _import_one(
    app: App,
    sftp: asyncssh.SFTPClient,
    brand: str,
    cfg: SftpSettings,
    kind: str,
    folder: str,
    name: str,
) -> Any:
    path = f"{folder}/{name}"
    started = time.monotonic()
    sha = await sha256_of(sftp, path)
    job, finished = await imports.begin(
        app.db, brand=brand, kind=kind, file_name=name, sha256=sha, now=app.now()
    )
    bound = log.bind(brand=brand, file=name, import_id=job.id)
    if not finished:
        try:
            if kind == "TRANSACTIONS":
                await imports.import_transactions(app.db, app.recorder, job, stream(sftp, path))
            else:
                await imports.import_targets(app.db, job, stream(sftp, path), now=app.now())
        except imports.FileRejected as exc:
            report = f"{cfg.failed_folder}/{name}.errors.csv"
            await sftp.makedirs(cfg.failed_folder, exist_ok=True)
            await _put_text(sftp, report, imports.report_csv([]) + f"0,,,{_csv(str(exc))}\n")
            job.row = await imports.finish(
                app.db, job, now=app.now(), state="FAILED", reason=str(exc), report=report
            )
        else:
            errors = await imports.error_rows(app.db, job)
            report = ""
            if errors:
                await sftp.makedirs(cfg.processed_folder, exist_ok=True)
                report = f"{cfg.processed_folder}/{name}.errors.csv"
                await _put_text(sftp, report, imports.report_csv(errors))
            job.row = await imports.finish(app.db, job, now=app.now(), report=report)
    # Recorded first, moved after: a crash in between only leaves a finished file to move.
    destination = cfg.failed_folder if job.row.state == "FAILED" else cfg.processed_folder
    await _move(sftp, path, destination, name, job.id)
    if await sftp.exists(f"{path}.done"):
        await sftp.remove(f"{path}.done")
    bound.info(
        "file imported",
        state=job.row.state,
        rows_read=job.row.rows_read,
        accepted=job.row.rows_accepted,
        duplicate=job.row.rows_duplicate,
        refused=job.row.rows_refused,
        already_done=finished,
        seconds=round(time.monotonic() - started, 3),
    )
    return job.row


def _csv(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'
