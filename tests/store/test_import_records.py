"""The file-import repository on both databases: records, checkpoints, errors, settings."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from attain_server.store import imports
from attain_server.store.errors import Conflict
from attain_server.store.imports import ImportCounts, ImportErrorRecord, SftpSettingsRecord
from support import brand_with_members, migrated

NOW = datetime(2026, 11, 20, tzinfo=UTC)


async def test_an_import_record_advances_and_finishes(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = f"R{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, [], NOW)
        async with db.write() as s:
            added = await imports.add_file_import(
                s,
                brand=brand,
                import_id="I1",
                kind="TRANSACTIONS",
                file_name="a.csv",
                sha256="h",
                state="RUNNING",
                now=NOW,
            )
        assert (added.rows_read, added.committed_line, added.finish_time) == (0, 0, None)
        with pytest.raises(Conflict):  # (name, hash) is one import
            async with db.write() as s:
                await imports.add_file_import(
                    s,
                    brand=brand,
                    import_id="I2",
                    kind="TRANSACTIONS",
                    file_name="a.csv",
                    sha256="h",
                    state="RUNNING",
                    now=NOW,
                )
        async with db.write() as s:
            await imports.add_import_errors(
                s,
                brand=brand,
                import_id="I1",
                errors=[ImportErrorRecord(9, "b", "", "r2"), ImportErrorRecord(2, "z", "v", "r1")],
            )
            await imports.advance_import_checkpoint(
                s, brand=brand, import_id="I1", line=9, added=ImportCounts(4, 2, 1, 1)
            )
            await imports.advance_import_checkpoint(
                s, brand=brand, import_id="I1", line=12, added=ImportCounts(1, 1, 0, 0)
            )
        async with db.write() as s:
            done = await imports.finish_file_import(
                s,
                brand=brand,
                import_id="I1",
                state="DONE",
                reason="",
                report="r.csv",
                now=NOW,
                run_ms=5,
            )
        assert (done.committed_line, done.rows_read, done.rows_accepted) == (12, 5, 3)
        assert (done.rows_duplicate, done.rows_refused, done.duration_ms) == (1, 1, 5)
        async with db.read() as s:
            found = await imports.find_file_import(s, brand=brand, file_name="a.csv", sha256="h")
            errors = await imports.load_import_errors(s, brand=brand, import_id="I1")
        assert found == done
        assert [(e.line, e.column) for e in errors] == [(2, "z"), (9, "b")]


async def test_imports_page_newest_first(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = f"R{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, [], NOW)
        async with db.write() as s:
            for i in range(3):
                await imports.add_file_import(
                    s,
                    brand=brand,
                    import_id=f"I{i}",
                    kind="TARGET_VALUES",
                    file_name=f"{i}.csv",
                    sha256="h",
                    state="RUNNING",
                    now=NOW + timedelta(minutes=i),
                )
        async with db.read() as s:
            first, after = await imports.page_file_imports(s, brand=brand, size=2, after=None)
            rest, end = await imports.page_file_imports(s, brand=brand, size=2, after=after)
        assert [r.id for r in first] == ["I2", "I1"]
        assert ([r.id for r in rest], end) == (["I0"], None)


async def test_sftp_settings_are_saved_and_listed_when_enabled(database_url: str) -> None:
    async with migrated(database_url) as db:
        brand = f"R{uuid.uuid4().hex[:16]}"
        await brand_with_members(db, brand, [], NOW)
        record = SftpSettingsRecord(
            brand_code=brand,
            enabled=True,
            host="h",
            port=22,
            username="u",
            host_key="k",
            targets_folder="",
            transactions_folder="/t",
            processed_folder="/p",
            failed_folder="/f",
            poll_interval_seconds=60,
            credential_kind="PASSWORD",
            credential_fingerprint="",
            credential_sealed=b"sealed",
        )
        async with db.write() as s:
            assert await imports.load_sftp_settings(s, brand=brand) is None
            await imports.save_sftp_settings(s, record=record, now=NOW)
        async with db.read() as s:
            assert await imports.load_sftp_settings(s, brand=brand) == record
            assert record in await imports.load_enabled_sftp_settings(s)
        async with db.write() as s:
            await imports.save_sftp_settings(s, record=replace(record, enabled=False), now=NOW)
        async with db.read() as s:
            assert record.brand_code not in {
                r.brand_code for r in await imports.load_enabled_sftp_settings(s)
            }
