"""A brand's SFTP settings and its file-import history, as the API shows them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import asyncssh
from sqlmodel import col, select

from attain_server.domain.errors import NotFound, Violations
from attain_server.domain.validation import check_label
from attain_server.store.engine import Database
from attain_server.store.tables import FileImportRow, SftpSettingsRow

from .paging import Page, by_time_then_id

CREDENTIAL_RE = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/\S+)$")
MIN_POLL_SECONDS = 10


@dataclass(frozen=True, slots=True)
class SftpSettings:
    host: str
    port: int
    username: str
    credential_ref: str
    host_key: str
    processed_folder: str
    failed_folder: str
    targets_folder: str = ""
    transactions_folder: str = ""
    poll_interval_seconds: int = 60
    enabled: bool = True


def check_settings(v: Violations, cfg: SftpSettings, prefix: str = "settings") -> None:
    check_label(v, f"{prefix}.host", cfg.host, required=True)
    if not 1 <= cfg.port <= 65535:
        v.add(f"{prefix}.port", "must be between 1 and 65535")
    check_label(v, f"{prefix}.username", cfg.username, required=True)
    if not CREDENTIAL_RE.match(cfg.credential_ref):
        v.add(
            f"{prefix}.credential_ref",
            "must be env:NAME or file:/path (where the worker reads the key or password; "
            "the secret itself is never sent or stored)",
        )
    try:
        asyncssh.import_public_key(cfg.host_key)
    except (asyncssh.KeyImportError, ValueError):
        v.add(
            f"{prefix}.host_key", "must be the server's public host key, e.g. 'ssh-ed25519 AAAA...'"
        )
    for name in ("processed_folder", "failed_folder"):
        if not getattr(cfg, name).startswith("/"):
            v.add(f"{prefix}.{name}", "must be an absolute remote path")
    for name in ("targets_folder", "transactions_folder"):
        value = getattr(cfg, name)
        if value and not value.startswith("/"):
            v.add(f"{prefix}.{name}", "must be an absolute remote path")
    if not cfg.targets_folder and not cfg.transactions_folder:
        v.add(
            f"{prefix}.transactions_folder",
            "name the folder of transaction files, of target files, or both",
        )
    if cfg.poll_interval_seconds < MIN_POLL_SECONDS:
        v.add(f"{prefix}.poll_interval_seconds", f"must be at least {MIN_POLL_SECONDS}")


def _settings(row: SftpSettingsRow) -> SftpSettings:
    return SftpSettings(**{name: getattr(row, name) for name in SftpSettings.__dataclass_fields__})


async def set_settings(
    *, db: Database, brand: str, settings: SftpSettings, now: datetime
) -> SftpSettings:
    v = Violations()
    check_settings(v, settings)
    v.raise_if_any()
    async with db.write() as s:
        row = await s.get(SftpSettingsRow, brand) or SftpSettingsRow(
            brand_code=brand,
            host="",
            username="",
            credential_ref="",
            host_key="",
            processed_folder="",
            failed_folder="",
            update_time=now,
        )
        for name in SftpSettings.__dataclass_fields__:
            setattr(row, name, getattr(settings, name))
        row.update_time = now
        s.add(row)
    return settings


async def get_settings(*, db: Database, brand: str) -> SftpSettings:
    async with db.read() as s:
        row = await s.get(SftpSettingsRow, brand)
    if row is None:
        raise NotFound("sftp settings", brand)
    return _settings(row)


async def all_settings(*, db: Database) -> dict[str, SftpSettings]:
    """Every brand's enabled settings (the worker schedules one poll each)."""
    async with db.read() as s:
        rows = (await s.exec(select(SftpSettingsRow).where(col(SftpSettingsRow.enabled)))).all()
    return {r.brand_code: _settings(r) for r in rows}


async def list_imports(*, db: Database, brand: str, page: Page) -> tuple[list[FileImportRow], str]:
    async with db.read() as s:
        q = select(FileImportRow).where(FileImportRow.brand_code == brand)
        return await by_time_then_id(
            s,
            q,
            page,
            col(FileImportRow.start_time),
            col(FileImportRow.id),
            newest_first=True,
        )
