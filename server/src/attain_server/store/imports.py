"""The file-import repository: imports, their checkpoints and refused rows, SFTP settings rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import insert, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from . import pages
from .tables import FileImportRow, ImportErrorRow, SftpSettingsRow


@dataclass(frozen=True, slots=True)
class FileImport:
    """One file import as recorded: what was read, how it ended, where its report went."""

    brand_code: str
    id: str
    kind: str
    file_name: str
    content_sha256: str
    state: str
    committed_line: int
    rows_read: int
    rows_accepted: int
    rows_duplicate: int
    rows_refused: int
    error_report: str
    failure_reason: str
    start_time: datetime
    finish_time: datetime | None
    duration_ms: int


class ImportErrorRecord(NamedTuple):
    """A refused row of a file: where, the value as shown, and why."""

    line: int
    column: str
    value: str
    reason: str


class ImportCounts(NamedTuple):
    """Rows a batch adds to an import's counters."""

    read: int
    accepted: int
    duplicate: int
    refused: int


_IMPORT_FIELDS = tuple(f.name for f in fields(FileImport))


def _file_import(row: FileImportRow) -> FileImport:
    return FileImport(**{name: getattr(row, name) for name in _IMPORT_FIELDS})


async def find_file_import(
    s: AsyncSession, *, brand: str, file_name: str, sha256: str
) -> FileImport | None:
    """The import of this exact file (name and content hash), if there is one."""
    row = await _find_row(s, brand, file_name, sha256)
    return _file_import(row) if row is not None else None


async def _find_row(
    s: AsyncSession, brand: str, file_name: str, sha256: str
) -> FileImportRow | None:
    result = await s.execute(
        select(FileImportRow).where(
            FileImportRow.brand_code == brand,
            FileImportRow.file_name == file_name,
            FileImportRow.content_sha256 == sha256,
        )
    )
    return result.scalars().first()


async def add_file_import(
    s: AsyncSession,
    *,
    brand: str,
    import_id: str,
    kind: str,
    file_name: str,
    sha256: str,
    state: str,
    now: datetime,
) -> FileImport:
    """A new import record starting now; the (name, hash) key refuses a second one."""
    row = FileImportRow(
        brand_code=brand,
        id=import_id,
        kind=kind,
        file_name=file_name,
        content_sha256=sha256,
        state=state,
        start_time=now,
    )
    s.add(row)
    await s.flush()
    return _file_import(row)


async def record_unreadable_import(
    s: AsyncSession,
    *,
    brand: str,
    new_id: str,
    kind: str,
    file_name: str,
    reason: str,
    now: datetime,
) -> FileImport:
    """The FAILED record of a file without a content hash (the empty hash stands for it):
    updated when the same name was unreadable before, else added with `new_id`."""
    row = await _find_row(s, brand, file_name, "")
    if row is None:
        row = FileImportRow(
            brand_code=brand,
            id=new_id,
            kind=kind,
            file_name=file_name,
            content_sha256="",
            state="FAILED",
            start_time=now,
        )
    row.start_time = row.finish_time = now
    row.failure_reason = reason
    s.add(row)
    await s.flush()
    return _file_import(row)


async def add_import_errors(
    s: AsyncSession, *, brand: str, import_id: str, errors: Sequence[ImportErrorRecord]
) -> None:
    """Stores refused rows; (line, column) is their key, so each must be unique."""
    if not errors:
        return
    await s.execute(
        insert(ImportErrorRow.__table__),  # type: ignore[attr-defined]
        [
            {
                "brand_code": brand,
                "import_id": import_id,
                "line": e.line,
                "column": e.column,
                "value": e.value,
                "reason": e.reason,
            }
            for e in errors
        ],
    )


async def advance_import_checkpoint(
    s: AsyncSession, *, brand: str, import_id: str, line: int, added: ImportCounts
) -> None:
    """Moves the checkpoint to `line` and adds the batch's counts, in the batch's transaction."""
    table = FileImportRow.__table__  # type: ignore[attr-defined]
    await s.execute(
        update(table)
        .where(table.c.brand_code == brand, table.c.id == import_id)
        .values(
            committed_line=line,
            rows_read=table.c.rows_read + added.read,
            rows_accepted=table.c.rows_accepted + added.accepted,
            rows_duplicate=table.c.rows_duplicate + added.duplicate,
            rows_refused=table.c.rows_refused + added.refused,
        )
    )


async def finish_file_import(
    s: AsyncSession,
    *,
    brand: str,
    import_id: str,
    state: str,
    reason: str,
    report: str,
    now: datetime,
    run_ms: int,
) -> FileImport:
    """Records how the import ended; `run_ms` adds this run's time to its duration."""
    row = await s.get_one(FileImportRow, (brand, import_id), populate_existing=True)
    row.state = state
    row.failure_reason = reason
    row.error_report = report
    row.finish_time = now
    row.duration_ms = row.duration_ms + run_ms
    s.add(row)
    await s.flush()
    return _file_import(row)


async def load_import_errors(
    s: AsyncSession, *, brand: str, import_id: str
) -> list[ImportErrorRecord]:
    """The import's refused rows by line, then column."""
    result = await s.execute(
        select(
            ImportErrorRow.line, ImportErrorRow.column, ImportErrorRow.value, ImportErrorRow.reason
        )
        .where(ImportErrorRow.brand_code == brand, ImportErrorRow.import_id == import_id)
        .order_by(col(ImportErrorRow.line), col(ImportErrorRow.column))
    )
    return [ImportErrorRecord(*r) for r in result.all()]


async def page_file_imports(
    s: AsyncSession, *, brand: str, size: int, after: tuple[datetime, str] | None
) -> tuple[list[FileImport], tuple[datetime, str] | None]:
    """One page of the brand's imports, newest first, and the key to resume after."""
    rows, resume = await pages.by_time_then_id(
        s,
        select(FileImportRow).where(FileImportRow.brand_code == brand),
        size=size,
        after=after,
        time_column=col(FileImportRow.start_time),
        id_column=col(FileImportRow.id),
        newest_first=True,
    )
    return [_file_import(r) for r in rows], resume


# ---------------------------------------------------------------- SFTP settings rows


@dataclass(frozen=True, slots=True)
class SftpSettingsRecord:
    """A brand's SFTP settings as stored, the credential still sealed."""

    brand_code: str
    enabled: bool
    host: str
    port: int
    username: str
    host_key: str
    targets_folder: str
    transactions_folder: str
    processed_folder: str
    failed_folder: str
    poll_interval_seconds: int
    credential_kind: str
    credential_fingerprint: str
    credential_sealed: bytes | None


_SETTINGS_FIELDS = tuple(f.name for f in fields(SftpSettingsRecord))


def _settings_record(row: SftpSettingsRow) -> SftpSettingsRecord:
    return SftpSettingsRecord(**{name: getattr(row, name) for name in _SETTINGS_FIELDS})


async def load_sftp_settings(s: AsyncSession, *, brand: str) -> SftpSettingsRecord | None:
    row = await s.get(SftpSettingsRow, brand)
    return _settings_record(row) if row is not None else None


async def load_enabled_sftp_settings(s: AsyncSession) -> list[SftpSettingsRecord]:
    """Every brand's settings that are enabled."""
    result = await s.execute(select(SftpSettingsRow).where(col(SftpSettingsRow.enabled)))
    return [_settings_record(r) for r in result.scalars().all()]


async def save_sftp_settings(s: AsyncSession, *, record: SftpSettingsRecord, now: datetime) -> None:
    """Replaces the brand's settings row (or adds it)."""
    row = await s.get(SftpSettingsRow, record.brand_code) or SftpSettingsRow(
        brand_code=record.brand_code,
        host="",
        username="",
        host_key="",
        processed_folder="",
        failed_folder="",
        update_time=now,
    )
    for name in _SETTINGS_FIELDS:
        setattr(row, name, getattr(record, name))
    row.update_time = now
    s.add(row)
