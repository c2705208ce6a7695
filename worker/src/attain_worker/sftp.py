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
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import Any

import asyncssh
import structlog

from attain_server.app import App
from attain_server.application.imports import (
    FileImport,
    ImportJob,
    ImportProblem,
    begin_import,
    database_lost,
    finish_import,
    import_problems,
    record_unreadable_file,
)
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

from . import imports, records
from .rows import shown

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


def _raw(path: str) -> bytes:
    """A path as the SFTP server spells it. Names are listed as bytes and decoded with
    surrogateescape, so a name that is not UTF-8 is still a file to import and move rather
    than an error that stops every poll of the brand."""
    return path.encode("utf-8", "surrogateescape")


async def stream(sftp: asyncssh.SFTPClient, path: str) -> AsyncGenerator[bytes, None]:
    async with sftp.open(_raw(path), "rb") as f:
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
    for entry in await sftp.readdir(_raw(folder)):
        filename = entry.filename
        name = (
            filename.decode("utf-8", "surrogateescape") if isinstance(filename, bytes) else filename
        )
        if name in (".", ".."):
            continue
        attrs = entry.attrs
        if attrs.type == asyncssh.FILEXFER_TYPE_SYMLINK:
            try:
                attrs = await sftp.stat(_raw(f"{folder}/{name}"))
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
    if await sftp.exists(_raw(target)):
        target = f"{folder}/{tag}-{name}"
    await sftp.rename(_raw(src), _raw(target))
    return target


async def _put_text(sftp: asyncssh.SFTPClient, path: str, text: str) -> None:
    async with sftp.open(_raw(path), "w") as f:
        await f.write(text)


def _lost(exc: BaseException) -> bool:
    """A lost connection, to the SFTP server or the database: nothing is wrong with the file.
    The poll stops there, and an import it leaves RUNNING resumes from its checkpoint at the
    next poll, as after a crash."""
    if isinstance(
        exc,
        asyncssh.DisconnectError
        | asyncssh.SFTPConnectionLost
        | asyncssh.SFTPNoConnection
        | ConnectionError,
    ):
        return True
    return database_lost(exc)


async def pull(app: App, brand: str, cfg: SftpSettings, *, settle: float = 2.0) -> list[FileImport]:
    """One poll of one brand: every complete file of both kinds, imported and moved. A file
    that cannot be imported fails alone (FAILED, reported, in the failed folder) and the poll
    goes on with the next."""
    done = []
    async with connect(app, brand, cfg) as sftp:
        for kind, folder in (
            ("TARGET_VALUES", cfg.targets_folder),
            ("TRANSACTIONS", cfg.transactions_folder),
        ):
            if not folder:
                continue
            for name in await settled(sftp, folder, settle):
                row = await _import_one(app, sftp, brand, cfg, kind, f"{folder}/{name}", name)
                if row is not None:
                    done.append(row)
    return done


async def _import_one(
    app: App,
    sftp: asyncssh.SFTPClient,
    brand: str,
    cfg: SftpSettings,
    kind: str,
    path: str,
    name: str,
) -> FileImport | None:
    """Imports one file, records how it went, writes its report and moves it."""
    started = time.monotonic()
    # The name as records, logs and ListImports show it: bytes that are not UTF-8 and
    # control characters written out (the file itself keeps its name).
    label = shown(name, 900)
    bound = log.bind(brand=brand, file=label)
    try:
        sha = await sha256_of(sftp, path)
    except asyncssh.SFTPNoSuchFile:
        bound.info("file gone before it was read")
        return None
    except asyncssh.SFTPError as exc:
        if _lost(exc):
            raise
        row = await _unreadable(app, sftp, brand, cfg, kind, name, exc, bound)
        bound, finished = bound.bind(import_id=row.id), False
    else:
        job, finished = await begin_import(
            db=app.db, brand=brand, kind=kind, file_name=label, sha256=sha, now=app.now()
        )
        bound = bound.bind(import_id=job.id)
        if not finished:
            await _import_file(app, sftp, cfg, job, kind, path, name, bound)
        row = job.record
    # Recorded first, moved after: a crash in between only leaves a finished file to move.
    destination = cfg.failed_folder if row.state == "FAILED" else cfg.processed_folder
    try:
        await _move(sftp, path, destination, name, row.id)
        if await sftp.exists(_raw(f"{path}.done")):
            await sftp.remove(_raw(f"{path}.done"))
    except asyncssh.SFTPError as exc:
        if _lost(exc):
            raise
        bound.warning("file not moved: the next poll tries again", error=exc.reason)
    bound.info(
        "file imported",
        state=row.state,
        rows_read=row.rows_read,
        accepted=row.rows_accepted,
        duplicate=row.rows_duplicate,
        refused=row.rows_refused,
        already_done=finished,
        seconds=round(time.monotonic() - started, 3),
    )
    return row


async def _import_file(
    app: App,
    sftp: asyncssh.SFTPClient,
    cfg: SftpSettings,
    job: ImportJob,
    kind: str,
    path: str,
    name: str,
    bound: Any,
) -> None:
    """Reads the file from the job's checkpoint, writes its report and finishes the job."""
    state, reason = await _run(app, sftp, job, kind, path, bound)
    errors = await import_problems(db=app.db, job=job)
    report = ""
    if errors or state == "FAILED":
        report = await _report(
            sftp, cfg, job.id, name, errors, reason, failed=state == "FAILED", bound=bound
        )
    await finish_import(
        db=app.db, job=job, now=app.now(), state=state, reason=shown(reason, 1000), report=report
    )


async def _unreadable(
    app: App,
    sftp: asyncssh.SFTPClient,
    brand: str,
    cfg: SftpSettings,
    kind: str,
    name: str,
    exc: asyncssh.SFTPError,
    bound: Any,
) -> FileImport:
    """Records a file that cannot be read at all as FAILED, with its report."""
    reason = f"the file cannot be read: {exc.reason}"
    row = await record_unreadable_file(
        db=app.db,
        brand=brand,
        kind=kind,
        file_name=shown(name, 900),
        reason=shown(reason, 1000),
        now=app.now(),
    )
    report = await _report(sftp, cfg, row.id, name, [], reason, failed=True, bound=bound)
    return await finish_import(
        db=app.db,
        job=ImportJob(brand, row),
        now=app.now(),
        state="FAILED",
        reason=shown(reason, 1000),
        report=report,
    )


async def _run(
    app: App, sftp: asyncssh.SFTPClient, job: ImportJob, kind: str, path: str, bound: Any
) -> tuple[str, str]:
    """Imports the file from its checkpoint: ("DONE", "") or ("FAILED", a reason the brand
    may read). Whatever goes wrong with this one file fails it alone; the details of an
    unexpected error go to the log, not to the brand."""
    try:
        async with aclosing(stream(sftp, path)) as chunks:
            if kind == "TRANSACTIONS":
                await imports.import_transactions(app, job, chunks)
            else:
                await imports.import_targets(app, job, chunks, now=app.now())
    except imports.FileRejected as exc:
        return "FAILED", str(exc)
    except Exception as exc:
        if _lost(exc):
            raise
        if isinstance(exc, asyncssh.SFTPError):
            return "FAILED", f"the file could not be read to its end: {exc.reason}"
        bound.exception("file import failed on an unexpected error")
        return "FAILED", (
            f"the import stopped on an unexpected error (the server log has the details under "
            f"import {job.id}); the rows committed before it stay recorded"
        )
    return "DONE", ""


async def _report(
    sftp: asyncssh.SFTPClient,
    cfg: SftpSettings,
    tag: str,
    name: str,
    errors: Sequence[ImportProblem],
    failure: str,
    *,
    failed: bool,
    bound: Any,
) -> str:
    """Writes the error report next to where the file goes; its path, or "" when it could
    not be written (the records keep the errors either way)."""
    folder = cfg.failed_folder if failed else cfg.processed_folder
    try:
        await sftp.makedirs(folder, exist_ok=True)
        path = f"{folder}/{name}.errors.csv"
        if await sftp.exists(_raw(path)):  # another file's report of that name: keep both
            path = f"{folder}/{tag}-{name}.errors.csv"
        await _put_text(sftp, path, records.report_csv(errors, failure))
    except asyncssh.SFTPError as exc:
        if _lost(exc):
            raise
        bound.warning("error report not written", error=exc.reason)
        return ""
    return path
