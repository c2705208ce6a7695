"""The admin command groups of `attain` against a real server process: brands, programs,
members (with the CSV import), targets from files, target values, rules, vouchers, SFTP
settings and imports; `--json` is parsed back, and bad files give readable errors."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncssh

from conftest import CliServer
from support import as_json, attain_cli, ok

NOV_SALES_YAML = """\
code: NOV-SALES
display_name: November sales
criteria:
  - kpi: transaction_amount          # a short enum name, in any case
    target_value: 10000.10           # a number literal: must stay exactly 10000.10
    level_target_values: {GOLD: 20000.00, SILVER: "15000.5"}
period: {kind: MONTHLY, start_date: 2026-01-01}
offset_days: 3
rules:
  - fixed: {threshold_percent: 100, incentive: {points: 1000}}
  - id: pct
    levels: [GOLD]
    capPoints: 5000                  # lowerCamelCase is accepted too
    percentage: {percent: 20}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_brands_show_and_update(cli_server: CliServer) -> None:
    admin = cli_server.new_brand()
    brand = as_json(attain_cli(cli_server.address, admin, "brands", "show", "--json"))
    assert brand["time_zone"] == "Asia/Jakarta" and brand["code"].startswith("B")

    ok(attain_cli(cli_server.address, admin, "brands", "update", "--name", "Acme Corp"))
    again = as_json(attain_cli(cli_server.address, admin, "brands", "show", "--json"))
    assert again["display_name"] == "Acme Corp" and again["code"] == brand["code"]
    table = ok(attain_cli(cli_server.address, admin, "brands", "show"))
    assert "Acme Corp" in table.stdout

    nothing = attain_cli(cli_server.address, admin, "brands", "update")
    assert nothing.exit_code == 2 and "name: give --name" in nothing.stderr


def test_brands_create_is_the_operator_command_on_the_database(
    cli_server: CliServer,
) -> None:
    created = attain_cli(
        cli_server.address,
        None,
        "brands",
        "create",
        "CLIBRAND",
        "--timezone",
        "Europe/Paris",
        "--data-dir",
        str(cli_server.data_dir),
    )
    ok(created)
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("atn_")
    brand = as_json(attain_cli(cli_server.address, secret, "brands", "show", "--json"))
    assert (brand["code"], brand["time_zone"]) == ("CLIBRAND", "Europe/Paris")

    bad_zone = attain_cli(
        cli_server.address,
        None,
        "brands",
        "create",
        "OTHER",
        "--timezone",
        "Mars/Olympus",
        "--data-dir",
        str(cli_server.data_dir),
    )
    assert bad_zone.exit_code == 2 and "time_zone" in bad_zone.stderr
    assert "Traceback" not in bad_zone.output


def test_programs_create_list_show_update(cli_server: CliServer) -> None:
    admin = cli_server.new_brand()
    ok(attain_cli(cli_server.address, admin, "programs", "create", "STARS", "--name", "Stars"))
    listed = as_json(attain_cli(cli_server.address, admin, "programs", "list", "--json"))
    # plain() writes scalars with their defaults: a program that is not the default says so.
    assert {p["code"]: p["is_default"] for p in listed} == {
        "POINTS": True,
        "STARS": False,
    }

    ok(attain_cli(cli_server.address, admin, "programs", "update", "STARS", "--default"))
    stars = as_json(attain_cli(cli_server.address, admin, "programs", "show", "STARS", "--json"))
    assert stars == {**stars, "code": "STARS", "display_name": "Stars", "is_default": True}
    points = as_json(attain_cli(cli_server.address, admin, "programs", "show", "POINTS", "--json"))
    assert points["is_default"] is False

    renamed = as_json(
        attain_cli(
            cli_server.address, admin, "programs", "update", "POINTS", "--name", "Pts", "--json"
        )
    )
    assert renamed["display_name"] == "Pts"
    table = ok(attain_cli(cli_server.address, admin, "programs", "list"))
    assert "STARS" in table.stdout and "Pts" in table.stdout

    dup = attain_cli(cli_server.address, admin, "programs", "create", "STARS")
    assert dup.exit_code == 1 and "ALREADY_EXISTS" in dup.stderr
    bad = attain_cli(cli_server.address, admin, "programs", "create", "has space")
    assert bad.exit_code == 2 and "program.code" in bad.stderr


def test_members_upsert_show_list(cli_server: CliServer) -> None:
    admin = cli_server.new_brand()
    made = as_json(
        attain_cli(
            cli_server.address,
            admin,
            "members",
            "upsert",
            "M-001",
            "--name",
            "Toko Makmur",
            "--level",
            "GOLD",
            "--group",
            "distributor",
            "--group",
            "north",
            "--json",
        )
    )
    assert made["created"] is True and made["member"]["groups"] == ["distributor", "north"]
    again = ok(
        attain_cli(cli_server.address, admin, "members", "upsert", "M-001", "--level", "SILVER")
    )
    assert "Updated member M-001" in again.stdout
    ok(attain_cli(cli_server.address, admin, "members", "upsert", "M-002", "--level", "GOLD"))

    shown = as_json(attain_cli(cli_server.address, admin, "members", "show", "M-001", "--json"))
    assert (shown["level"], shown["groups"]) == ("SILVER", [])  # an upsert replaces
    gold = as_json(
        attain_cli(cli_server.address, admin, "members", "list", "--level", "GOLD", "--json")
    )
    assert [m["external_id"] for m in gold] == ["M-002"]
    table = ok(attain_cli(cli_server.address, admin, "members", "list"))
    assert "M-001" in table.stdout and "M-002" in table.stdout

    missing = attain_cli(cli_server.address, admin, "members", "show", "M-404")
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.stderr


def test_members_import_reports_bad_rows_and_keeps_the_good_ones(
    cli_server: CliServer, tmp_path: Path
) -> None:
    admin = cli_server.new_brand()
    rows = [
        f"M-{i:03d},Shop {i},{'GOLD' if i % 2 else 'SILVER'},north;distributor"
        for i in range(1, 41)
    ]
    rows.insert(5, ",No id,GOLD,")  # line 7: no external id
    rows.insert(20, "M-900,Twice,GOLD,a;a")  # line 22: refused by the server
    rows.insert(30, "M-901,too,many,fields,here")  # line 32: wrong shape
    path = write(
        tmp_path,
        "members.csv",
        "\ufeffexternal_id,display_name,level,groups\n" + "\n".join(rows) + "\n",
    )

    result = attain_cli(cli_server.address, admin, "members", "import", str(path))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"{path}: line 7, column external_id: is empty" in result.stderr
    assert f"{path}: line 22, column groups: 'a' is listed twice" in result.stderr
    assert f"{path}: line 32: has 5 fields; the header has 4" in result.stderr
    assert "Imported 40 members (40 new, 0 updated); 3 rows failed." in result.stdout

    members = as_json(attain_cli(cli_server.address, admin, "members", "list", "--json"))
    assert len(members) == 40
    by_id = {m["external_id"]: m for m in members}
    assert by_id["M-007"]["level"] == "GOLD" and by_id["M-007"]["groups"] == [
        "north",
        "distributor",
    ]
    assert "M-900" not in by_id

    # Again, as JSON: every row is an update now, and the errors come back with their lines.
    summary = json.loads(
        attain_cli(cli_server.address, admin, "members", "import", str(path), "--json").stdout
    )
    assert (summary["created"], summary["updated"], summary["failed"]) == (0, 40, 3)
    assert [e["line"] for e in summary["errors"]] == [7, 22, 32]

    # A refusal that is not about a row (here a wrong key) stops the import: exit 1, no rows.
    stranger = attain_cli(cli_server.address, "atn_wrong", "members", "import", str(path))
    assert stranger.exit_code == 1 and "UNAUTHENTICATED" in stranger.stderr
    assert "Traceback" not in stranger.output

    header = write(tmp_path, "bad.csv", "id,level\nM-1,GOLD\n")
    bad = attain_cli(cli_server.address, admin, "members", "import", str(header))
    assert bad.exit_code == 2
    assert f"{header}, line 1: missing column external_id" in bad.stderr


def test_targets_create_from_yaml_show_list_archive(cli_server: CliServer, tmp_path: Path) -> None:
    admin = cli_server.new_brand()
    path = write(tmp_path, "nov.yaml", NOV_SALES_YAML)
    created = ok(attain_cli(cli_server.address, admin, "targets", "create", str(path)))
    assert "Created target NOV-SALES" in created.stdout

    target = as_json(
        attain_cli(cli_server.address, admin, "targets", "show", "NOV-SALES", "--json")
    )
    criterion = target["criteria"][0]
    assert criterion["kpi"] == "KPI_TRANSACTION_AMOUNT"
    assert criterion["target_value"] == "10000.10"  # exact, never through a float
    assert criterion["level_target_values"] == {"GOLD": "20000.00", "SILVER": "15000.5"}
    assert target["period"] == {
        "kind": "PERIOD_KIND_MONTHLY",
        "start_date": "2026-01-01",
        "end_date": "",
        "every_n_days": 0,
    }
    assert target["offset_days"] == 3
    assert [r["id"] for r in target["rules"]] == ["r1", "pct"]
    assert target["rules"][1]["cap_points"] == 5000 and target["rules"][1]["levels"] == ["GOLD"]

    shown = ok(attain_cli(cli_server.address, admin, "targets", "show", "NOV-SALES"))
    assert "TRANSACTION_AMOUNT 10000.10 (GOLD 20000.00, SILVER 15000.5)" in shown.stdout
    assert "MONTHLY from 2026-01-01, offset 3 days" in shown.stdout
    assert "r1: FIXED 1000 points at 100%" in shown.stdout
    assert "pct: PERCENTAGE 20% of the achievement value" in shown.stdout

    # The JSON a target is shown as can be fed back as a new target's file.
    exported = dict(target, code="DEC-SALES")
    json_path = write(tmp_path, "dec.json", json.dumps(exported))
    ok(attain_cli(cli_server.address, admin, "targets", "create", str(json_path)))

    listed = as_json(attain_cli(cli_server.address, admin, "targets", "list", "--json"))
    assert sorted(t["code"] for t in listed) == ["DEC-SALES", "NOV-SALES"]
    ok(attain_cli(cli_server.address, admin, "targets", "archive", "DEC-SALES"))
    active = as_json(attain_cli(cli_server.address, admin, "targets", "list", "--json"))
    assert [t["code"] for t in active] == ["NOV-SALES"]
    everything = as_json(
        attain_cli(cli_server.address, admin, "targets", "list", "--archived", "--json")
    )
    assert {t["code"]: t["state"] for t in everything} == {
        "DEC-SALES": "TARGET_STATE_ARCHIVED",
        "NOV-SALES": "TARGET_STATE_ACTIVE",
    }
    table = ok(attain_cli(cli_server.address, admin, "targets", "list", "--archived"))
    assert "ARCHIVED" in table.stdout and "TRANSACTION_AMOUNT 10000.10" in table.stdout


def test_bad_target_files_give_readable_errors(cli_server: CliServer, tmp_path: Path) -> None:
    admin = cli_server.new_brand()

    def create(name: str, text: str) -> Any:
        result = attain_cli(
            cli_server.address, admin, "targets", "create", str(write(tmp_path, name, text))
        )
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        return result.stderr

    syntax = create("syntax.yaml", "code: X\ncriteria:\n  - kpi: [unclosed\n")
    assert f"{tmp_path / 'syntax.yaml'}, line 4, column 1: not valid YAML" in syntax

    unknown = create("unknown.yaml", NOV_SALES_YAML.replace("offset_days", "offset_dayz"))
    assert f"{tmp_path / 'unknown.yaml'}: offset_dayz: unknown field" in unknown

    enum = create("enum.yaml", NOV_SALES_YAML.replace("transaction_amount", "TRANSACTION_AMT"))
    assert "criteria[0].kpi: 'TRANSACTION_AMT' is not a Kpi; use one of TRANSACTION_AMOUNT" in enum

    wrong_type = create("type.json", json.dumps({"code": "X", "offset_days": "soon"}))
    assert "type.json: offset_days: expected a whole number, got 'soon'" in wrong_type

    exponent = create("exp.yaml", NOV_SALES_YAML.replace("10000.10", "1e4"))
    assert "criteria[0].target_value: '1e4' is not a decimal number" in exponent

    json_syntax = create("broken.json", '{"code": "X",\n "criteria": [}')
    assert "broken.json, line 2, column 15: not valid JSON" in json_syntax

    two_kinds = create(
        "two.yaml",
        "code: X\nrules:\n  - fixed: {incentive: {points: 1}}\n    percentage: {percent: 5}\n",
    )
    assert "rules[0]: fixed and percentage are both set" in two_kinds

    duplicate = create("dup.yaml", "code: X\ncode: Y\n")
    assert "duplicate key 'code'" in duplicate

    suffix = create("target.txt", "code: X\n")
    assert "target.txt: must end in .yaml, .yml or .json" in suffix

    missing = attain_cli(
        cli_server.address, admin, "targets", "create", str(tmp_path / "nope.yaml")
    )
    assert missing.exit_code == 2 and "nope.yaml: no such file" in missing.stderr

    # A well-formed file the server refuses: its field violations, each on a line.
    refused = create("refused.yaml", NOV_SALES_YAML.replace("offset_days: 3", "offset_days: 400"))
    assert "target.offset_days: must be between 0 and 366" in refused

    listed = as_json(attain_cli(cli_server.address, admin, "targets", "list", "--json"))
    assert listed == []


def _create_nov_sales(cli_server: CliServer, admin: str, tmp_path: Path) -> None:
    target = write(tmp_path, "t.yaml", NOV_SALES_YAML)
    ok(attain_cli(cli_server.address, admin, "targets", "create", str(target)))


def test_rules_list_add_remove(cli_server: CliServer, tmp_path: Path) -> None:
    admin = cli_server.new_brand()
    _create_nov_sales(cli_server, admin, tmp_path)

    rule = write(
        tmp_path,
        "milestones.yaml",
        "milestones:\n  milestones:\n"
        "    - {attainment_percent: 50, incentive: {points: 50}}\n"
        "    - {attainment_percent: 75.5, incentive: {voucher_pool: NOV-10-OFF}}\n"
        "reversal_policy: reverse_at_close\n",
    )
    added = ok(attain_cli(cli_server.address, admin, "rules", "add", "NOV-SALES", str(rule)))
    assert "Added rule r2 to NOV-SALES (etag v2)" in added.stdout

    rules = as_json(attain_cli(cli_server.address, admin, "rules", "list", "NOV-SALES", "--json"))
    assert [r["id"] for r in rules] == ["r1", "pct", "r2"]
    steps = rules[2]["milestones"]["milestones"]
    assert [s["attainment_percent"] for s in steps] == ["50", "75.5"]
    assert steps[1]["incentive"] == {"voucher_pool": "NOV-10-OFF"}
    assert rules[2]["reversal_policy"] == "REVERSAL_POLICY_REVERSE_AT_CLOSE"

    ok(attain_cli(cli_server.address, admin, "rules", "remove", "NOV-SALES", "r1"))
    # r1 is free again, but a new rule without an id must not take an id of a kept rule.
    per_x = write(
        tmp_path, "perx.json", '{"per_x": {"every": 10.50, "points": 5}, "rounding": "HALF_UP"}'
    )
    ok(attain_cli(cli_server.address, admin, "rules", "add", "NOV-SALES", str(per_x)))
    table = ok(attain_cli(cli_server.address, admin, "rules", "list", "NOV-SALES"))
    assert "PER_X 5 points per 10.50" in table.stdout and "HALF_UP" in table.stdout
    rules = as_json(attain_cli(cli_server.address, admin, "rules", "list", "NOV-SALES", "--json"))
    assert [r["id"] for r in rules] == ["pct", "r2", "r1"]

    gone = attain_cli(cli_server.address, admin, "rules", "remove", "NOV-SALES", "r9")
    assert (
        gone.exit_code == 1
        and "NOV-SALES has no rule 'r9'; its rules are pct, r2, r1" in gone.stderr
    )
    bad_rule = write(tmp_path, "bad.yaml", "fixed: {incentive: {points: lots}}\n")
    bad = attain_cli(cli_server.address, admin, "rules", "add", "NOV-SALES", str(bad_rule))
    assert bad.exit_code == 2 and "fixed.incentive.points: expected a whole number" in bad.stderr


def test_target_values_set_import_list(cli_server: CliServer, tmp_path: Path) -> None:
    admin = cli_server.new_brand()
    _create_nov_sales(cli_server, admin, tmp_path)
    for member in ("M-001", "M-002", "M-003"):
        ok(attain_cli(cli_server.address, admin, "members", "upsert", member))

    ok(
        attain_cli(
            cli_server.address, admin, "values", "set", "NOV-SALES",
            "--member", "M-003", "--cycle", "2026-12", "--value", "7000.25",
        )
    )  # fmt: skip
    path = write(
        tmp_path,
        "values.csv",
        "member_id,target_code,cycle,target_value\n"
        "M-001,NOV-SALES,2026-11,12000\nM-002,NOV-SALES,2026-11,8000.50\n",
    )
    imported = as_json(
        attain_cli(cli_server.address, admin, "values", "import", str(path), "--json")
    )
    assert imported == {"written": 2, "unchanged": 0}
    values = as_json(attain_cli(cli_server.address, admin, "values", "list", "NOV-SALES", "--json"))
    assert [(v["member_id"], v["cycle"], v["value"]) for v in values] == [
        ("M-001", "2026-11", "12000"),
        ("M-002", "2026-11", "8000.50"),
        ("M-003", "2026-12", "7000.25"),
    ]
    november = as_json(
        attain_cli(
            cli_server.address, admin, "values", "list", "NOV-SALES", "--cycle", "2026-11", "--json"
        )
    )
    assert len(november) == 2

    # Level and default values live on the target's criterion.
    ok(
        attain_cli(
            cli_server.address,
            admin,
            "values",
            "set",
            "NOV-SALES",
            "--level",
            "BRONZE",
            "--value",
            "5000",
        )
    )
    ok(attain_cli(cli_server.address, admin, "values", "set", "NOV-SALES", "--value", "11000.00"))
    target = as_json(
        attain_cli(cli_server.address, admin, "targets", "show", "NOV-SALES", "--json")
    )
    assert target["criteria"][0]["target_value"] == "11000.00"
    assert target["criteria"][0]["level_target_values"]["BRONZE"] == "5000"

    # All or nothing: one bad row (found here) or one refused row (found by the server).
    local = write(
        tmp_path,
        "local.csv",
        "member_id,cycle,target_value\nM-001,2026-11,13000\nM-002,2026-11,12k\n",
    )
    bad = attain_cli(
        cli_server.address, admin, "values", "import", str(local), "--target", "NOV-SALES"
    )
    assert bad.exit_code == 2
    assert f"{local}: line 3, column target_value: '12k' is not a decimal number" in bad.stderr
    remote = write(
        tmp_path,
        "remote.csv",
        "member_id,cycle,target_value\nM-001,2026-11,13000\nM-404,2026-11,1\n",
    )
    refused = attain_cli(
        cli_server.address, admin, "values", "import", str(remote), "--target", "NOV-SALES"
    )
    assert refused.exit_code == 2 and f"{remote}: line 3, column member_id:" in refused.stderr
    assert "Nothing was stored" in refused.stderr
    after = as_json(
        attain_cli(
            cli_server.address, admin, "values", "list", "NOV-SALES", "--cycle", "2026-11", "--json"
        )
    )
    assert after[0]["value"] == "12000"

    # Without --cycle, a member's value is for the cycle open now (the brand is in Jakarta).
    this_month = datetime.now(ZoneInfo("Asia/Jakarta")).strftime("%Y-%m")
    current = ok(
        attain_cli(
            cli_server.address, admin, "values", "set", "NOV-SALES", "--member", "M-001",
            "--value", "99.90",
        )
    )  # fmt: skip
    assert f"NOV-SALES {this_month}: M-001 set to 99.90." in current.stdout

    flag = attain_cli(cli_server.address, admin, "values", "set", "NOV-SALES", "--value", "1.2.3")
    assert flag.exit_code == 2 and "value: '1.2.3' is not a decimal number" in flag.stderr


def test_vouchers_load_and_pools(cli_server: CliServer, tmp_path: Path) -> None:
    admin = cli_server.new_brand()
    plain = write(tmp_path, "codes.txt", "AAA-1\nAAA-2\n\nAAA-3\n")
    loaded = as_json(
        attain_cli(
            cli_server.address, admin, "vouchers", "load", "NOV-10-OFF", str(plain), "--json"
        )
    )
    assert (loaded["loaded"], loaded["duplicates"], loaded["available"]) == (3, 0, 3)

    table = write(tmp_path, "codes.csv", 'batch,Code\n7,AAA-3\n7,"AAA-4"\n')
    again = ok(attain_cli(cli_server.address, admin, "vouchers", "load", "NOV-10-OFF", str(table)))
    assert "1 codes loaded, 1 already there, 4 available" in again.stdout

    ok(attain_cli(cli_server.address, admin, "vouchers", "load", "GOLD-GIFT", str(plain)))
    pools = as_json(attain_cli(cli_server.address, admin, "vouchers", "pools", "--json"))
    assert {p["pool"]: (p["total"], p["available"]) for p in pools} == {
        "NOV-10-OFF": (4, 4),
        "GOLD-GIFT": (3, 3),
    }
    empty = attain_cli(
        cli_server.address, admin, "vouchers", "load", "X", str(write(tmp_path, "e.txt", "\n"))
    )
    assert empty.exit_code == 2 and "has no voucher codes" in empty.stderr


HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def test_sftp_set_show_and_imports(cli_server: CliServer, tmp_path: Path) -> None:
    admin = cli_server.new_brand()
    none = ok(attain_cli(cli_server.address, admin, "sftp", "show"))
    assert "No SFTP settings yet" in none.stdout

    known_hosts = write(tmp_path, "known_hosts", f"# pinned\nsftp.acme.example {HOST_KEY}\n")
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp_path / "acme_sftp"
    key_file.write_bytes(key.export_private_key("openssh", passphrase="s3same"))
    args = [
        "sftp", "set", "--host", "sftp.acme.example", "--port", "2222", "--user", "attain",
        "--host-key-file", str(known_hosts),
        "--transactions-folder", "/in/transactions", "--targets-folder", "/in/targets",
        "--processed", "/done", "--failed", "/failed", "--interval", "30",
    ]  # fmt: skip
    keyless = attain_cli(cli_server.address, admin, *args)
    assert keyless.exit_code == 2
    assert "settings.credential: is required" in keyless.stderr
    with_key = [*args, "--private-key-file", str(key_file), "--passphrase-stdin"]
    wrong = attain_cli(cli_server.address, admin, *with_key, stdin="guess\n")
    assert wrong.exit_code == 2 and "does not decrypt the private key" in wrong.stderr
    saved = ok(attain_cli(cli_server.address, admin, *with_key, stdin="s3same\n"))
    assert "s3same" not in saved.output and "PRIVATE KEY" not in saved.output
    settings = as_json(attain_cli(cli_server.address, admin, "sftp", "show", "--json"))
    assert settings == {
        "enabled": True,
        "host": "sftp.acme.example",
        "port": 2222,
        "username": "attain",
        "host_key": HOST_KEY,
        "targets_folder": "/in/targets",
        "transactions_folder": "/in/transactions",
        "processed_folder": "/done",
        "failed_folder": "/failed",
        "poll_interval_seconds": 30,
        "credential_info": {
            "kind": "SFTP_CREDENTIAL_KIND_PRIVATE_KEY",
            "public_key_fingerprint": key.get_fingerprint(),
        },
    }
    table = ok(attain_cli(cli_server.address, admin, "sftp", "show"))
    assert "attain@sftp.acme.example:2222" in table.stdout
    assert f"private key {key.get_fingerprint()}" in table.stdout

    # A password from standard input replaces the key; a set without one keeps it.
    ok(attain_cli(cli_server.address, admin, *args, "--password-stdin", stdin="hunter2\n"))
    ok(attain_cli(cli_server.address, admin, *args[:-2], "--interval", "45"))
    shown = as_json(attain_cli(cli_server.address, admin, "sftp", "show", "--json"))
    assert shown["credential_info"] == {
        "kind": "SFTP_CREDENTIAL_KIND_PASSWORD",
        "public_key_fingerprint": "",
    }
    assert shown["poll_interval_seconds"] == 45 and "hunter2" not in json.dumps(shown)

    public = write(tmp_path, "acme_sftp.pub", key.export_public_key().decode())
    refused = attain_cli(cli_server.address, admin, *args, "--private-key-file", str(public))
    assert refused.exit_code == 2 and "holds no private key" in refused.stderr
    both = attain_cli(
        cli_server.address, admin, *args, "--private-key-file", str(key_file), "--password-stdin"
    )
    assert both.exit_code == 2 and "not both" in both.stderr
    secret = attain_cli(
        cli_server.address, admin, "sftp", "set", "--host", "h", "--user", "u",
        "--host-key", "nope", "--processed", "/p", "--failed", "/f",
        "--transactions-folder", "/t", "--password-stdin", stdin="a\tb\n",
    )  # fmt: skip
    assert secret.exit_code == 2
    assert "settings.credential.password: must not contain control characters" in secret.stderr
    assert "settings.host_key" in secret.stderr and "a\tb" not in secret.stderr
    assert (
        "--credential-ref"
        not in ok(attain_cli(cli_server.address, admin, "sftp", "set", "--help")).stdout
    )

    assert as_json(attain_cli(cli_server.address, admin, "imports", "list", "--json")) == []
    listed = ok(attain_cli(cli_server.address, admin, "imports", "list", "--state", "failed"))
    assert "File imports" in listed.stdout
    bad_state = attain_cli(cli_server.address, admin, "imports", "list", "--state", "stuck")
    assert bad_state.exit_code == 2 and "use one of RUNNING, DONE, FAILED" in bad_state.stderr


def test_the_target_file_in_the_docs_is_accepted(cli_server: CliServer, tmp_path: Path) -> None:
    docs = (Path(__file__).parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    example = re.findall(r"```yaml\n(.*?)```", docs, flags=re.DOTALL)[0]
    admin = cli_server.new_brand()
    ok(
        attain_cli(
            cli_server.address, admin, "targets", "create", str(write(tmp_path, "d.yaml", example))
        )
    )
    target = as_json(
        attain_cli(cli_server.address, admin, "targets", "show", "NOV-SALES", "--json")
    )
    assert [r["id"] for r in target["rules"]] == ["r1", "gold-pct", "r3"]
    assert target["audience"] == {
        "kind": "AUDIENCE_KIND_GROUPS",
        "groups": ["distributor"],
        "member_ids": [],
    }
    assert target["criteria"][0]["filter"]["min_transaction_amount"] == "10"
