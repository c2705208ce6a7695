"""SFTP pulls against a real OpenSSH server: target and transaction files end to end."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_server.application.sftp_credentials import NewCredential
from attain_worker import sftp
from conftest import Api, Brand, FakeClock
from sshd_server import HEADER, Sshd, brand_settings, folders, keygen, settings, stored
from support import NOV_15, monthly_target, progress, setup

JAKARTA = ZoneInfo("Asia/Jakarta")


async def test_target_file_replaces_the_default_value(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd
) -> None:
    """SPEC example 8: M-001,NOV-SALES,2026-11,12000 replaces the default 10,000."""
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001", "M-002")
    base = folders(sshd)
    (base / "targets" / "nov.csv").write_text(
        "\ufeffmember_id,target_code,cycle,target_value\n"
        "M-001,NOV-SALES,2026-11,12000\n"
        "M-404,NOV-SALES,2026-11,5\n"
        "M-002,NOV-SALES,2026-13,5\n"
    )
    (base / "targets" / "nov.csv.done").write_text("")
    cfg = await brand_settings(api.app.db, brand.code, sshd, base)
    [done] = await sftp.pull(api.app, brand.code, cfg, settle=0.05)
    assert (done.state, done.rows_read, done.rows_accepted, done.rows_refused) == ("DONE", 3, 1, 2)
    assert (await progress(api, brand)).target_value.value == "12000"
    assert (await progress(api, brand, member="M-002")).target_value.value == "10000.00"
    assert sorted(p.name for p in (base / "processed").iterdir()) == [
        "nov.csv",
        "nov.csv.errors.csv",
    ]
    report = (base / "processed" / "nov.csv.errors.csv").read_text().splitlines()
    assert report == [
        "line,column,value,reason",
        "3,member_id,M-404,unknown member 'M-404'",
        "4,cycle,2026-13,'2026-13' is not a month name like 2026-11",
    ]
    assert list((base / "targets").iterdir()) == []  # the marker went with the file


async def test_transaction_file_keeps_good_rows_and_reports_bad_ones(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001")
    base = folders(sshd)
    (base / "transactions" / "day1.csv").write_text(
        HEADER
        + "T1,M-001,2026-11-10T10:00:00+07:00,S1,SKU-1,food,1,4000,SALE,\n"
        + "T2,M-001,2026-11-11 09:00:00,S1,SKU-1,food,2,5000.50,SALE,\n"  # local time
        + "T2,M-001,2026-11-11 09:00:00,S1,SKU-2,drink,1,499.50,SALE,\n"  # same transaction
        + "T3,M-001,2026-11-12T10:00:00+07:00,S1,SKU-1,food,1,1e3,SALE,\n"
        + "T4,GHOST,2026-11-12T10:00:00+07:00,S1,SKU-1,food,1,10,SALE,\n"
        + "R1,M-001,2026-11-13T10:00:00+07:00,S1,SKU-1,food,0,500,RETURN,T1\n"
        + "T5,M-001,not a time,S1,SKU-1,food,1,10,SALE,\n"
        + "T6,M-001,2026-11-12T10:00:00+07:00,S1,SKU-1,food,1,-5,SALE,\n"
    )
    (base / "transactions" / "day1.csv.done").write_text("")
    cfg = await brand_settings(api.app.db, brand.code, sshd, base)
    [done] = await sftp.pull(api.app, brand.code, cfg, settle=0.05)
    assert (done.rows_read, done.rows_accepted, done.rows_refused) == (8, 3, 4)
    p = await progress(api, brand)
    assert p.achieved_value.value == "9000.00"  # 4000 + 5500 - 500
    report = (base / "processed" / "day1.csv.errors.csv").read_text().splitlines()
    assert report == [
        "line,column,value,reason",
        "5,amount,1e3,'1e3' is not a decimal number like 1234.50",
        "6,member_id,GHOST,unknown member 'GHOST'",
        "8,occurred_at,not a time,is not an ISO 8601 time like 2026-11-20T10:00:00+07:00",
        "9,amount,-5,must not be negative",
    ]
    imports = await api.targets.ListImports(tpb.ListImportsRequest(), metadata=brand.admin)
    [shown] = imports.imports
    assert (shown.file_name, shown.state, shown.rows_accepted, shown.kind) == (
        "day1.csv",
        tpb.IMPORT_STATE_DONE,
        3,
        tpb.FILE_KIND_TRANSACTIONS,
    )
    assert shown.error_report.endswith("processed/day1.csv.errors.csv")


async def test_a_growing_file_waits_and_the_same_file_twice_is_imported_once(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001")
    base = folders(sshd)
    cfg = await brand_settings(api.app.db, brand.code, sshd, base)
    growing = base / "transactions" / "live.csv"
    growing.write_text(HEADER + "T1,M-001,2026-11-10T10:00:00+07:00,S1,SKU-1,food,1,100,SALE,\n")

    async def append_meanwhile() -> None:
        with growing.open("a") as f:
            f.write("T2,M-001,2026-11-10T11:00:00+07:00,S1,SKU-1,food,1,200,SALE,\n")

    pulling = asyncio.create_task(sftp.pull(api.app, brand.code, cfg, settle=0.5))
    await asyncio.sleep(0.2)
    await append_meanwhile()
    assert await pulling == []  # it changed between the two looks: not yet
    [first] = await sftp.pull(api.app, brand.code, cfg, settle=0.05)
    assert first.rows_accepted == 2
    # The same content uploaded again under the same name: recognised, moved, not counted.
    (base / "transactions" / "live.csv").write_text((base / "processed" / "live.csv").read_text())
    (base / "transactions" / "live.csv.done").write_text("")
    [again] = await sftp.pull(api.app, brand.code, cfg, settle=0.05)
    assert again.id == first.id and again.rows_accepted == 2
    assert (await progress(api, brand)).achieved_value.value == "300"
    assert sorted(p.name for p in (base / "processed").iterdir()) == [
        f"{first.id}-live.csv",
        "live.csv",
    ]


async def test_a_changed_host_key_or_a_wrong_user_key_touches_nothing(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd, tmp_path: Path
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001")
    base = folders(sshd)
    (base / "transactions" / "x.csv").write_text(HEADER)
    (base / "transactions" / "x.csv.done").write_text("")
    with pytest.raises(sftp.SftpFailure) as changed:
        await sftp.pull(
            api.app,
            brand.code,
            await brand_settings(
                api.app.db, brand.code, sshd, base, host_key=sshd.other_host_key()
            ),
        )
    assert changed.value.reason == "HOST_KEY_REJECTED"
    stranger = tmp_path / "stranger"
    await asyncio.to_thread(keygen, stranger)
    wrong = NewCredential(private_key=stranger.read_text())
    with pytest.raises(sftp.SftpFailure) as refused:
        await sftp.pull(
            api.app, brand.code, await stored(api.app.db, brand.code, settings(sshd, base), wrong)
        )
    assert refused.value.reason == "AUTH_FAILED"
    assert sorted(p.name for p in (base / "transactions").iterdir()) == ["x.csv", "x.csv.done"]
    for failure in (changed.value, refused.value):
        assert "PRIVATE KEY" not in failure.message


async def test_a_bad_header_fails_the_file(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001")
    base = folders(sshd)
    (base / "transactions" / "bad.csv").write_bytes(b"id,member\nT1,M-001\n")
    # Not UTF-8 from its first byte (a spreadsheet's "Unicode text"); a row that is not
    # UTF-8 further down only refuses that row (test_sftp_hostile_files).
    (base / "transactions" / "utf16.csv").write_bytes(
        (HEADER + "T1,M-001,2026-11-10T10:00:00+07:00,S1,café,food,1,1,SALE,\n").encode("utf-16")
    )
    for name in ("bad.csv", "utf16.csv"):
        (base / "transactions" / f"{name}.done").write_text("")
    cfg = await brand_settings(api.app.db, brand.code, sshd, base)
    done = await sftp.pull(api.app, brand.code, cfg, settle=0.05)
    assert sorted((d.file_name, d.state) for d in done) == [
        ("bad.csv", "FAILED"),
        ("utf16.csv", "FAILED"),
    ]
    assert "header must be transaction_id" in next(
        d.failure_reason for d in done if d.file_name == "bad.csv"
    )
    assert "not UTF-8" in next(d.failure_reason for d in done if d.file_name == "utf16.csv")
    assert sorted(p.name for p in (base / "failed").iterdir()) == [
        "bad.csv",
        "bad.csv.errors.csv",
        "utf16.csv",
        "utf16.csv.errors.csv",
    ]


async def test_late_rows_in_grace_count_and_after_grace_are_reported(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd
) -> None:
    """SPEC example 6 through a file: quarterly, Jakarta, 3 offset days."""
    target = monthly_target(
        "Q-SALES",
        period=tpb.Period(kind=typ.PERIOD_KIND_QUARTERLY, start_date="2026-01-01"),
        offset_days=3,
    )
    await setup(api, brand, target, "M-001")
    base = folders(sshd)
    cfg = await brand_settings(api.app.db, brand.code, sshd, base)
    row = "{id},M-001,2026-12-30T15:00:00+07:00,S1,SKU-1,food,1,{amount},SALE,\n"
    clock.set(datetime(2027, 1, 2, 9, tzinfo=JAKARTA))
    (base / "transactions" / "jan2.csv").write_text(HEADER + row.format(id="L1", amount=1500))
    (base / "transactions" / "jan2.csv.done").write_text("")
    [ok] = await sftp.pull(api.app, brand.code, cfg, settle=0.05)
    assert ok.rows_accepted == 1
    clock.set(datetime(2027, 1, 4, 0, 0, tzinfo=JAKARTA))
    (base / "transactions" / "jan4.csv").write_text(HEADER + row.format(id="L2", amount=100))
    (base / "transactions" / "jan4.csv.done").write_text("")
    [late] = await sftp.pull(api.app, brand.code, cfg, settle=0.05)
    assert (late.rows_accepted, late.rows_refused) == (0, 1)
    report = (base / "processed" / "jan4.csv.errors.csv").read_text().splitlines()
    assert report[1].startswith("2,occurred_at,2026-12-30T15:00:00+07:00,the cycle is closed")
    q4 = await progress(api, brand, target="Q-SALES", cycle="2026-Q4")
    assert Decimal(q4.achieved_value.value) == Decimal(1500)
