"""Hostile files through a real OpenSSH server: a bad row is one refused row, a file that
cannot be read fails alone, and the next file of the same poll is imported."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from attain.v1 import targets_pb2 as tpb
from attain_worker import sftp
from conftest import Api, Brand, FakeClock
from sshd_server import HEADER, Sshd, brand_settings, folders
from support import NOV_15, monthly_target, progress, setup

TARGET_HEADER = b"member_id,target_code,cycle,target_value\n"
GOOD = "T{n},M-001,2026-11-10T10:00:00+07:00,S1,SKU-1,food,1,{amount},SALE,\n"
# Not a CSV file at all: a PNG signature and every byte value, line breaks among them.
GARBAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64


def _report(path: Path) -> list[tuple[str, str, str, str]]:
    """The error report's rows: (line, column, value, reason)."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["line", "column", "value", "reason"]
    return [(r[0], r[1], r[2], r[3]) for r in rows[1:]]


async def _listed(api: Api, brand: Brand) -> dict[str, tpb.FileImport]:
    shown = await api.targets.ListImports(tpb.ListImportsRequest(), metadata=brand.admin)
    return {i.file_name: i for i in shown.imports}


async def test_each_bad_transaction_row_is_one_refused_row_and_the_next_file_goes_on(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001")
    base = folders(sshd)
    when = "2026-11-10T10:00:00+07:00"
    (base / "transactions" / "a.csv").write_bytes(
        HEADER.encode()
        + GOOD.format(n=1, amount=100).encode()  # line 2
        + b"A-X,M-001,,S1,SKU,CAT,1,1.00,SALE,\n"  # 3: no time (was two errors in one place)
        + f"A-S,M-001,{when},S1\n".encode()  # 4: too few columns
        + f"A-N,M-001,{when},S1,SKU\x00,food,1,1,SALE,\n".encode()  # 5: a NUL byte
        + f"A-U,M-001,{when},S1,caf".encode()
        + b"\xe9,food,1,1,SALE,\n"  # 6: not UTF-8
        + f"A-L,M-001,{when},S1,SKU-1,{'x' * 10_000},1,1,SALE,\n".encode()  # 7: too long
        + f"A-E,M-001,{when},S1,SKU-1,food,1,1,SALE,,extra\n".encode()  # 8: too many columns
        + f"A-B,M-\x07,{when},S1,SKU-1,food,1,1,SALE,\n".encode()  # 9: a control character
        + f"A-H,M-001,{when},S1,SKU-1,{'y' * 300_000},1,1,SALE,\n".encode()  # 10: a huge line
        + GOOD.format(n=2, amount=200).encode()  # 11
    )
    (base / "transactions" / "b.csv").write_text(HEADER + GOOD.format(n=3, amount=50))
    for name in ("a.csv", "b.csv"):
        (base / "transactions" / f"{name}.done").write_text("")
    done = await sftp.pull(
        api.app, brand.code, await brand_settings(api.app.db, brand.code, sshd, base), settle=0.05
    )
    assert [(d.file_name, d.state) for d in done] == [("a.csv", "DONE"), ("b.csv", "DONE")]
    first = done[0]
    assert (first.rows_read, first.rows_accepted, first.rows_refused) == (10, 2, 8)
    assert (await progress(api, brand)).achieved_value.value == "350"
    report = _report(base / "processed" / "a.csv.errors.csv")
    assert [(line, column, reason) for line, column, _, reason in report] == [
        ("3", "occurred_at", "is required"),
        ("4", "sku", "is missing: the line has 4 of 10 columns"),
        ("5", "sku", "contains the control character U+0000 at character 4"),
        ("6", "sku", "is not UTF-8 text (byte 0xE9 at character 4)"),
        ("7", "category", "is 10,000 characters long: at most 128"),
        ("8", "original_transaction_id", "is followed by 1 more column: the header has 10"),
        ("9", "member_id", "contains the control character U+0007 at character 3"),
        ("10", "category", "the line is longer than 65,536 characters: it is not read past here"),
    ]
    values = {line: value for line, _, value, _ in report}
    assert (values["5"], values["6"], values["9"]) == ("SKU\\x00", "caf\\xe9", "M-\\x07")
    assert values["7"] == "x" * 200 + "... (10,000 characters)"
    assert values["10"].startswith("y" * 200 + "... (")
    listed = await _listed(api, brand)
    assert {name: (i.state, i.rows_accepted, i.rows_refused) for name, i in listed.items()} == {
        "a.csv": (tpb.IMPORT_STATE_DONE, 2, 8),
        "b.csv": (tpb.IMPORT_STATE_DONE, 1, 0),
    }
    assert listed["a.csv"].error_report.endswith("processed/a.csv.errors.csv")
    assert sorted(p.name for p in (base / "processed").iterdir()) == [
        "a.csv",
        "a.csv.errors.csv",
        "b.csv",
    ]


async def test_a_file_that_cannot_be_read_fails_alone_and_polls_go_on(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001")
    base = folders(sshd)
    cfg = await brand_settings(api.app.db, brand.code, sshd, base)
    incoming = base / "transactions"
    (incoming / "a-garbage.csv").write_bytes(GARBAGE)
    (incoming / "b-zeros.csv").write_bytes(b"\x00" * 200_000)  # no line break at all
    (incoming / "c-good.csv").write_text(HEADER + GOOD.format(n=1, amount=100))
    for name in ("a-garbage.csv", "b-zeros.csv", "c-good.csv"):
        (incoming / f"{name}.done").write_text("")
    done = await sftp.pull(api.app, brand.code, cfg, settle=0.05)
    assert [(d.file_name, d.state) for d in done] == [
        ("a-garbage.csv", "FAILED"),
        ("b-zeros.csv", "FAILED"),
        ("c-good.csv", "DONE"),
    ]
    reasons = [d.failure_reason for d in done[:2]]
    assert reasons == [
        "the file is not UTF-8 text: its first line has bytes that are not UTF-8",
        "the first line is longer than 65,536 characters: it is not the header",
    ]
    assert sorted(p.name for p in (base / "failed").iterdir()) == [
        "a-garbage.csv",
        "a-garbage.csv.errors.csv",
        "b-zeros.csv",
        "b-zeros.csv.errors.csv",
    ]
    assert _report(base / "failed" / "a-garbage.csv.errors.csv") == [("0", "", "", reasons[0])]
    assert (await progress(api, brand)).achieved_value.value == "100"
    # The brand's next poll imports the next file.
    (incoming / "d-later.csv").write_text(HEADER + GOOD.format(n=2, amount=20))
    (incoming / "d-later.csv.done").write_text("")
    [later] = await sftp.pull(api.app, brand.code, cfg, settle=0.05)
    assert (later.file_name, later.state, later.rows_accepted) == ("d-later.csv", "DONE", 1)
    listed = await _listed(api, brand)
    assert {name: (i.state, i.failure_reason) for name, i in listed.items()} == {
        "a-garbage.csv": (tpb.IMPORT_STATE_FAILED, reasons[0]),
        "b-zeros.csv": (tpb.IMPORT_STATE_FAILED, reasons[1]),
        "c-good.csv": (tpb.IMPORT_STATE_DONE, ""),
        "d-later.csv": (tpb.IMPORT_STATE_DONE, ""),
    }
    assert list(incoming.iterdir()) == []


async def test_a_read_error_fails_the_file_alone(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd
) -> None:
    """The server cannot read the file (reading /proc/self/mem at offset 0 is an I/O
    error for any process): FAILED with the server's reason, and the next file goes on."""
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001")
    base = folders(sshd)
    cfg = await brand_settings(api.app.db, brand.code, sshd, base)
    incoming = base / "transactions"
    os.symlink("/proc/self/mem", incoming / "a.csv")
    (incoming / "b.csv").write_text(HEADER + GOOD.format(n=1, amount=100))
    for name in ("a.csv", "b.csv"):
        (incoming / f"{name}.done").write_text("")
    done = await sftp.pull(api.app, brand.code, cfg, settle=0.05)
    assert [(d.file_name, d.state) for d in done] == [("a.csv", "FAILED"), ("b.csv", "DONE")]
    assert done[0].failure_reason.startswith("the file cannot be read: ")
    assert sorted(p.name for p in (base / "failed").iterdir()) == ["a.csv", "a.csv.errors.csv"]
    assert (await progress(api, brand)).achieved_value.value == "100"
    assert await sftp.pull(api.app, brand.code, cfg, settle=0.05) == []


async def test_each_bad_target_row_is_one_refused_row_and_the_next_file_goes_on(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001", "M-002")
    base = folders(sshd)
    (base / "targets" / "a.csv").write_bytes(
        TARGET_HEADER
        + b"M-001,NOV-SALES,2026-11,12000\n"  # line 2
        + b"M-002,NOV-SALES,,5\n"  # 3: no cycle
        + b"M-002,NOV-SALES\n"  # 4: too few columns
        + b"M-002,NOV-SALES\x00,2026-11,5\n"  # 5: a NUL byte
        + b"M-002,NOV-SALES,2026-11,5\xff\n"  # 6: not UTF-8
        + b"M-"
        + b"2" * 10_000
        + b",NOV-SALES,2026-11,5\n"  # 7: too long
        + b"M-002,NOV-SALES,2026-11,5,6\n"  # 8: too many columns
        + b"M-002,NOV-SALES,2026-11,\n"  # 9: no value
    )
    (base / "targets" / "b.csv").write_bytes(TARGET_HEADER + b"M-002,NOV-SALES,2026-11,7000\n")
    for name in ("a.csv", "b.csv"):
        (base / "targets" / f"{name}.done").write_text("")
    done = await sftp.pull(
        api.app, brand.code, await brand_settings(api.app.db, brand.code, sshd, base), settle=0.05
    )
    assert [(d.file_name, d.state) for d in done] == [("a.csv", "DONE"), ("b.csv", "DONE")]
    assert (done[0].rows_read, done[0].rows_accepted, done[0].rows_refused) == (8, 1, 7)
    assert (await progress(api, brand)).target_value.value == "12000"
    assert (await progress(api, brand, member="M-002")).target_value.value == "7000"
    report = _report(base / "processed" / "a.csv.errors.csv")
    assert [(line, column, reason) for line, column, _, reason in report] == [
        ("3", "cycle", "is required"),
        ("4", "cycle", "is missing: the line has 2 of 4 columns"),
        ("5", "target_code", "contains the control character U+0000 at character 10"),
        ("6", "target_value", "is not UTF-8 text (byte 0xFF at character 2)"),
        ("7", "member_id", "is 10,002 characters long: at most 128"),
        ("8", "target_value", "is followed by 1 more column: the header has 4"),
        ("9", "target_value", "is required"),
    ]
    listed = await _listed(api, brand)
    assert {name: (i.state, i.rows_accepted, i.rows_refused) for name, i in listed.items()} == {
        "a.csv": (tpb.IMPORT_STATE_DONE, 1, 7),
        "b.csv": (tpb.IMPORT_STATE_DONE, 1, 0),
    }


async def test_a_target_file_that_cannot_be_read_fails_alone(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd
) -> None:
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001")
    base = folders(sshd)
    incoming = base / "targets"
    (incoming / "a-garbage.csv").write_bytes(GARBAGE)
    (incoming / "b-zeros.csv").write_bytes(b"\x00" * 200_000)
    (incoming / "c-good.csv").write_bytes(TARGET_HEADER + b"M-001,NOV-SALES,2026-11,12000\n")
    for name in ("a-garbage.csv", "b-zeros.csv", "c-good.csv"):
        (incoming / f"{name}.done").write_text("")
    done = await sftp.pull(
        api.app, brand.code, await brand_settings(api.app.db, brand.code, sshd, base), settle=0.05
    )
    assert [(d.file_name, d.state, d.failure_reason) for d in done] == [
        (
            "a-garbage.csv",
            "FAILED",
            "the file is not UTF-8 text: its first line has bytes that are not UTF-8",
        ),
        (
            "b-zeros.csv",
            "FAILED",
            "the first line is longer than 65,536 characters: it is not the header",
        ),
        ("c-good.csv", "DONE", ""),
    ]
    assert sorted(p.name for p in (base / "failed").iterdir()) == [
        "a-garbage.csv",
        "a-garbage.csv.errors.csv",
        "b-zeros.csv",
        "b-zeros.csv.errors.csv",
    ]
    assert (await progress(api, brand)).target_value.value == "12000"
    listed = await _listed(api, brand)
    assert {name: i.state for name, i in listed.items()} == {
        "a-garbage.csv": tpb.IMPORT_STATE_FAILED,
        "b-zeros.csv": tpb.IMPORT_STATE_FAILED,
        "c-good.csv": tpb.IMPORT_STATE_DONE,
    }
    assert list(incoming.iterdir()) == []


async def test_a_file_name_that_is_not_utf8_stops_nothing(
    api: Api, brand: Brand, clock: FakeClock, sshd: Sshd
) -> None:
    """Listing such a name used to fail every poll of the brand; now it is imported, shown
    with the byte written out, and moved under its own name."""
    clock.set(NOV_15)
    await setup(api, brand, monthly_target(), "M-001")
    base = folders(sshd)
    incoming = base / "transactions"
    odd = "day\udce9.csv"  # the byte 0xE9 on disk (Linux file names are bytes)
    (incoming / odd).write_text(HEADER + GOOD.format(n=1, amount=100))
    (incoming / "ok.csv").write_text(HEADER + GOOD.format(n=2, amount=20))
    for name in (odd, "ok.csv"):
        (incoming / f"{name}.done").write_text("")
    done = await sftp.pull(
        api.app, brand.code, await brand_settings(api.app.db, brand.code, sshd, base), settle=0.05
    )
    assert [(d.file_name, d.state) for d in done] == [("day\\xe9.csv", "DONE"), ("ok.csv", "DONE")]
    assert (await progress(api, brand)).achieved_value.value == "120"
    assert sorted(p.name for p in (base / "processed").iterdir()) == [odd, "ok.csv"]
    assert set(await _listed(api, brand)) == {"day\\xe9.csv", "ok.csv"}
