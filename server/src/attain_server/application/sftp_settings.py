"""A brand's SFTP settings, its sealed credential and its file-import history.

The credential (a password, or a private key) is written by the brand admin, checked and
sealed (sftp_credentials.py); it is never returned. Only its kind and the fingerprint of a
key's public half are shown.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from dataclasses import dataclass, replace
from datetime import datetime

import asyncssh

from attain_server.domain.errors import FailedPrecondition, NotFound, Violations
from attain_server.domain.validation import check_label, text_error
from attain_server.store import imports as store
from attain_server.store.engine import Database
from attain_server.store.imports import FileImport, SftpSettingsRecord

from .paging import Page, time_then_id_after, time_then_id_token
from .sealing import Sealer
from .sftp_credentials import NewCredential, StoredCredential, read_credential, seal_credential
from .sftp_hosts import HostPolicy, host_allowed

MIN_POLL_SECONDS = 10
# The columns' sizes (store/tables.py): longer values are refused, not cut.
MAX_HOST = 253  # a DNS name's limit, inside the column's 255
MAX_FOLDER = 1024
MAX_HOST_KEY = 8192
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)
FOLDERS = ("processed_folder", "failed_folder", "targets_folder", "transactions_folder")


@dataclass(frozen=True, slots=True)
class SftpSettings:
    host: str
    port: int
    username: str
    host_key: str
    processed_folder: str
    failed_folder: str
    targets_folder: str = ""
    transactions_folder: str = ""
    poll_interval_seconds: int = 60
    enabled: bool = True
    credential: StoredCredential | None = None


def _host_error(host: str) -> str | None:
    if not host:
        return "is required"
    error = text_error(host, MAX_HOST)
    if error is None and not _HOST_NAME.match(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return "must be a host name such as sftp.example.com or an IP address"
    return error


def check_settings(v: Violations, cfg: SftpSettings) -> None:
    """What is wrong with ``cfg``, each field named within the settings ("host")."""
    if error := _host_error(cfg.host):
        v.add("host", error)
    if not 1 <= cfg.port <= 65535:
        v.add("port", "must be between 1 and 65535")
    check_label(v, "username", cfg.username, required=True)
    if error := text_error(cfg.host_key, MAX_HOST_KEY):
        v.add("host_key", error)
    else:
        try:
            asyncssh.import_public_key(cfg.host_key)
        except (asyncssh.KeyImportError, ValueError):
            v.add(
                "host_key",
                "must be the server's public host key, e.g. 'ssh-ed25519 AAAA...'",
            )
    for name in FOLDERS:
        value: str = getattr(cfg, name)
        optional = name in ("targets_folder", "transactions_folder")
        if not value and optional:
            continue
        error = text_error(value, MAX_FOLDER)
        if not value.startswith("/"):
            error = "must be an absolute remote path"
        if error:
            v.add(name, error)
    if not cfg.targets_folder and not cfg.transactions_folder:
        v.add(
            "transactions_folder",
            "name the folder of transaction files, of target files, or both",
        )
    if cfg.poll_interval_seconds < MIN_POLL_SECONDS:
        v.add("poll_interval_seconds", f"must be at least {MIN_POLL_SECONDS}")


_PLAIN_FIELDS = tuple(n for n in SftpSettings.__dataclass_fields__ if n != "credential")


def _settings(row: SftpSettingsRecord) -> SftpSettings:
    credential = None
    if row.credential_sealed is not None:
        credential = StoredCredential(
            row.credential_kind, row.credential_fingerprint, row.credential_sealed
        )
    return SftpSettings(**{n: getattr(row, n) for n in _PLAIN_FIELDS}, credential=credential)


def _record(brand: str, cfg: SftpSettings, credential: StoredCredential) -> SftpSettingsRecord:
    return SftpSettingsRecord(
        brand_code=brand,
        **{n: getattr(cfg, n) for n in _PLAIN_FIELDS},
        credential_kind=credential.kind,
        credential_fingerprint=credential.fingerprint,
        credential_sealed=credential.sealed,
    )


# What a stored secret is bound to: it goes only to the server it was given for. Without this,
# whoever holds an admin key could point the settings at a server of their own, pin its key,
# and have the worker log in there with the brand's password.
_DESTINATION = ("host", "port", "username", "host_key")


def _destination(cfg: SftpSettings) -> tuple[object, ...]:
    return tuple(getattr(cfg, name) for name in _DESTINATION)


async def _kept_credential(
    v: Violations, db: Database, brand: str, settings: SftpSettings
) -> StoredCredential | None:
    """The stored credential, when a set brings none: refused unless one is stored for the
    same server (host, port, username and host key)."""
    async with db.read() as s:
        row = await store.load_sftp_settings(s, brand=brand)
    stored = _settings(row) if row is not None else None
    if stored is None or stored.credential is None:
        v.add("credential", "is required: set password or private_key")
        return None
    if _destination(stored) != _destination(settings):
        v.add(
            "credential",
            "is required again when host, port, username or host_key change: the stored "
            "secret is only sent to the server it was given for",
        )
        return None
    return stored.credential


async def set_settings(
    *,
    db: Database,
    brand: str,
    settings: SftpSettings,
    credential: NewCredential | None,
    sealer: Sealer | None,
    hosts: HostPolicy,
    now: datetime,
) -> SftpSettings:
    """Replaces the brand's settings; without a new credential the stored one is kept."""
    v = Violations()
    check_settings(v, settings)
    # Off the event loop: checking a large key takes a while.
    fresh = (
        await asyncio.to_thread(read_credential, v, credential) if credential is not None else None
    )
    kept = await _kept_credential(v, db, brand, settings) if credential is None else None
    host_ok = not any(x.field == "host" for x in v.items)
    if host_ok and not await host_allowed(hosts, settings.host, settings.port):
        v.add("host", "is not among the hosts the operator allows")
    v.raise_if_any()
    if fresh is not None:
        kept = seal_credential(sealer, brand, *fresh)
    if kept is None:  # unreachable: a credential is new or kept, else violations were raised
        raise FailedPrecondition("no credential to store")
    saved = replace(settings, credential=kept)
    async with db.write() as s:
        await store.save_sftp_settings(s, record=_record(brand, saved, kept), now=now)
    return saved


async def get_settings(*, db: Database, brand: str) -> SftpSettings:
    async with db.read() as s:
        row = await store.load_sftp_settings(s, brand=brand)
    if row is None:
        raise NotFound("sftp settings", brand)
    return _settings(row)


async def all_settings(*, db: Database) -> dict[str, SftpSettings]:
    """Every brand's enabled settings (the worker schedules one poll each)."""
    async with db.read() as s:
        rows = await store.load_enabled_sftp_settings(s)
    return {r.brand_code: _settings(r) for r in rows}


async def list_imports(*, db: Database, brand: str, page: Page) -> tuple[list[FileImport], str]:
    """The brand's file imports, newest first, a page at a time."""
    async with db.read() as s:
        items, resume = await store.page_file_imports(
            s, brand=brand, size=page.size, after=time_then_id_after(page)
        )
    return items, time_then_id_token(page, resume)
