"""`attain progress`, `leaderboard`, `watch`, `transactions`, `awards`, `balance` and `points`
against a real server process.

The server runs on the real clock, so sales are dated now and counted in the current monthly
cycle of a target that started on the first of this month.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_client import AttainClient
from conftest import CliServer
from support import JAKARTA, D, as_json, attain_cli, monthly_target, ok

RED, GREEN = "\x1b[31m", "\x1b[32m"
ORANGE_256, ORANGE_16 = "\x1b[38;5;208m", "\x1b[33m"
COLOUR_ENV: dict[str, str | None] = {
    "FORCE_COLOR": "1",
    "TERM": "xterm-256color",
    "COLORTERM": None,
    "NO_COLOR": None,
}
PLAIN_ENV: dict[str, str | None] = {"FORCE_COLOR": None, "NO_COLOR": None, "TTY_COMPATIBLE": None}


def this_month() -> str:
    return datetime.now(JAKARTA).date().replace(day=1).isoformat()


def brand_with(
    cli_server: CliServer,
    members: tuple[str, ...] = ("M-001",),
    target: tpb.Target | None = None,
    sales: tuple[tuple[str, str, str], ...] = (),
) -> str:
    """A new brand with one monthly target (SALES, 10,000.00, FIXED 1,000 points at 100%),
    members, and sales (id, member, amount) dated now; returns its admin key."""
    key = cli_server.new_brand()
    target = target or monthly_target(
        "SALES", period=tpb.Period(kind=typ.PERIOD_KIND_MONTHLY, start_date=this_month())
    )

    async def setup() -> None:
        async with AttainClient(cli_server.address, key) as attain:
            await attain.targets.CreateTarget(tpb.CreateTargetRequest(target=target))
            for member in members:
                await attain.targets.UpsertMember(
                    tpb.UpsertMemberRequest(member=tpb.Member(external_id=member))
                )
            for txn_id, member, amount in sales:
                await attain.record_sale(txn_id, member=member, sku="SKU-1", amount=amount)

    asyncio.run(setup())
    return key


# ---------------------------------------------------------------- colours


def test_progress_colours_follow_the_server_at_each_threshold(cli_server: CliServer) -> None:
    sales = (
        ("T-1", "M-1", "8999.00"),
        ("T-2", "M-2", "9000.00"),
        ("T-3", "M-3", "9999.00"),
        ("T-4", "M-4", "10000.00"),
    )
    key = brand_with(cli_server, ("M-1", "M-2", "M-3", "M-4"), sales=sales)
    expected = {
        "M-1": ("89.99", RED),
        "M-2": ("90.00", ORANGE_256),
        "M-3": ("99.99", ORANGE_256),
        "M-4": ("100.00", GREEN),
    }
    for member, (shown, code) in expected.items():
        coloured = attain_cli(cli_server.address, key, "progress", member, env=COLOUR_ENV)
        ok(coloured)
        # The percent is printed in the colour, and so is the bar's filled part.
        assert f"{code}{shown}%\x1b[0m" in coloured.stdout, repr(coloured.stdout)
        assert f"{code}█" in coloured.stdout
        others = {RED, ORANGE_256, GREEN} - {code}
        assert not any(f"{other}{shown}%" in coloured.stdout for other in others)

        plain = attain_cli(cli_server.address, key, "progress", member, env=PLAIN_ENV)
        ok(plain)
        assert "\x1b" not in plain.stdout
        assert f"{shown}%" in plain.stdout
        assert "SALES" in plain.stdout

    # A 16-colour terminal has no orange: it gets yellow, never a red look-alike.
    sixteen = attain_cli(
        cli_server.address, key, "progress", "M-2", env={**COLOUR_ENV, "TERM": "xterm"}
    )
    assert f"{ORANGE_16}90.00%\x1b[0m" in sixteen.stdout, repr(sixteen.stdout)

    # The card's figures: achieved / target, remaining, days left, pace, next milestone.
    card = attain_cli(cli_server.address, key, "progress", "M-3", env=PLAIN_ENV)
    assert "9,999.00 / 10,000.00" in card.stdout
    assert "remaining 1.00" in card.stdout
    assert "days left" in card.stdout and "per day needed" in card.stdout
    assert "next milestone 100%" in card.stdout
    done = attain_cli(cli_server.address, key, "progress", "M-4", env=PLAIN_ENV)
    assert "target reached" in done.stdout and "awards 1,000 points" in done.stdout

    rows = as_json(attain_cli(cli_server.address, key, "progress", "M-1", "--json"))
    assert [(r["target_code"], r["attainment_display"], r["colour"]) for r in rows] == [
        ("SALES", "89.99", "COLOUR_RED")
    ]
    assert rows[0]["achieved_value"] == "8999.00"
    assert rows[0]["remaining_value"] == "1001.00"

    one = as_json(
        attain_cli(cli_server.address, key, "progress", "M-2", "--target", "SALES", "--json")
    )
    assert one[0]["colour"] == "COLOUR_ORANGE"
    missing = attain_cli(cli_server.address, key, "progress", "M-2", "--target", "NOPE")
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.stderr
    assert "Traceback" not in missing.output


def test_leaderboard_ranks_by_attainment_with_json(cli_server: CliServer) -> None:
    sales = (
        ("T-1", "M-1", "8999.00"),
        ("T-2", "M-2", "10000.00"),
        ("T-3", "M-3", "9500.00"),
        ("T-4", "M-4", "9500.00"),
    )
    key = brand_with(cli_server, ("M-1", "M-2", "M-3", "M-4"), sales=sales)
    entries = as_json(attain_cli(cli_server.address, key, "leaderboard", "SALES", "--json"))
    assert [(e["rank"], e["progress"]["member_id"]) for e in entries] == [
        (1, "M-2"),
        (2, "M-3"),
        (2, "M-4"),  # equal attainment shares a rank
        (4, "M-1"),
    ]
    assert [e["progress"]["attainment_display"] for e in entries] == [
        "100.00",
        "95.00",
        "95.00",
        "89.99",
    ]

    top = as_json(
        attain_cli(cli_server.address, key, "leaderboard", "SALES", "--limit", "2", "--json")
    )
    assert [e["progress"]["member_id"] for e in top] == ["M-2", "M-3"]

    table = attain_cli(cli_server.address, key, "leaderboard", "SALES", env=PLAIN_ENV)
    ok(table)
    lines = [ln for ln in table.stdout.splitlines() if "%" in ln and "M-" in ln]
    assert [ln.split()[1] for ln in lines] == ["M-2", "M-3", "M-4", "M-1"]
    assert "89.99%" in lines[-1] and "8,999.00 / 10,000.00" in lines[-1]


# ---------------------------------------------------------------- transactions


def test_record_a_sale_json_duplicate_return_and_bad_flags(cli_server: CliServer) -> None:
    key = brand_with(cli_server)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    args = ("transactions", "record", "--id", "T-1", "--member", "M-001", "--sku", "SKU-1")
    recorded = as_json(
        attain_cli(cli_server.address, key, *args, "--amount", "4000.00", "--at", at, "--json")
    )
    assert recorded["outcome"] == "RECORD_OUTCOME_ACCEPTED"
    [progress] = recorded["progress"]
    assert progress["achieved_value"] == "4000.00"  # exact decimals as strings
    assert progress["attainment_display"] == "40.00"
    assert progress["colour"] == "COLOUR_RED"

    again = attain_cli(cli_server.address, key, *args, "--amount", "4000.00", "--at", at)
    ok(again)
    assert "T-1: DUPLICATE" in again.stdout

    conflict = attain_cli(cli_server.address, key, *args, "--amount", "4000.01", "--at", at)
    assert conflict.exit_code == 1
    assert "ALREADY_EXISTS" in conflict.stderr and "Traceback" not in conflict.output

    second = attain_cli(
        cli_server.address,
        key,
        *("transactions", "record", "--id", "T-2", "--member", "M-001", "--sku", "SKU-1"),
        *("--amount", "6000.00", "--store", "S1", "--category", "food"),
        env=PLAIN_ENV,
    )
    ok(second)
    assert "T-2: ACCEPTED" in second.stdout
    assert "100.00%" in second.stdout and "10,000.00 / 10,000.00" in second.stdout
    assert "1,000 points for SALES" in second.stdout  # the FIXED award it gave

    refund = attain_cli(
        cli_server.address,
        key,
        *("transactions", "record", "--id", "R-1", "--member", "M-001", "--sku", "SKU-1"),
        *("--amount", "1000.00", "--return-of", "T-2", "--json"),
    )
    assert as_json(refund)["progress"][0]["achieved_value"] == "9000.00"

    bad = attain_cli(cli_server.address, key, *args, "--amount", "12,5")
    assert bad.exit_code == 2
    assert "--amount: not a decimal number: '12,5'" in bad.stderr
    assert "Traceback" not in bad.output
    bad_time = attain_cli(cli_server.address, key, *args, "--amount", "1", "--at", "yesterday")
    assert (
        bad_time.exit_code == 2 and "--at: 'yesterday' is not an ISO 8601 time" in bad_time.stderr
    )
    unknown = attain_cli(
        cli_server.address,
        key,
        *("transactions", "record", "--id", "T-9", "--member", "NOBODY", "--sku", "SKU-1"),
        *("--amount", "5.00"),
    )
    assert unknown.exit_code == 2  # INVALID_ARGUMENT: the field and the reason
    assert "transaction.member_id: unknown member 'NOBODY'" in unknown.stderr


def test_import_a_csv_keeps_good_rows_and_names_bad_lines(
    cli_server: CliServer, tmp_path: Path
) -> None:
    key = brand_with(cli_server, ("M-001", "M-002"))
    now = datetime.now(JAKARTA) - timedelta(minutes=1)
    local = now.replace(tzinfo=None).isoformat(timespec="seconds")  # no offset: the brand's zone
    aware = now.isoformat(timespec="seconds")
    header = (
        "transaction_id,member_id,occurred_at,store_id,sku,category,quantity,amount,type,"
        "original_transaction_id"
    )
    rows = [
        header,
        f"C-1,M-001,{local},S1,SKU-1,food,1,1000.00,SALE,",  # line 2
        f"C-1,M-001,{local},S1,SKU-2,food,2,500.50,SALE,",  # line 3: same transaction
        f"C-2,NOBODY,{aware},S1,SKU-1,food,1,100.00,SALE,",  # line 4: unknown member
        f"C-3,M-002,{aware},S2,SKU-1,food,1,2500.00,SALE,",  # line 5
        f"C-4,M-002,{aware},S2,SKU-1,food,1,12;5,SALE,",  # line 6: not a decimal
        f"C-5,M-002,{aware},S2,SKU-1,food,1,-3,SALE,",  # line 7: negative (the server says)
        f"C-6,M-002,{aware},S2,SKU-1,food,1,2500.00,SALE,",  # line 8
    ]
    path = tmp_path / "sales.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")

    result = attain_cli(cli_server.address, key, "transactions", "import", str(path))
    assert result.exit_code == 2, result.output
    assert "sales.csv: 7 rows; 3 accepted, 0 duplicate, 3 refused." in result.stdout
    assert "line 4: C-2: member_id: unknown member 'NOBODY' (UNKNOWN_MEMBER)" in result.stdout
    assert "line 6: C-4: amount: not a decimal number: '12;5'" in result.stdout
    assert "line 7: C-5: amount: must not be negative" in result.stdout
    assert "Traceback" not in result.output

    async def achieved() -> list[str]:
        async with AttainClient(cli_server.address, key) as attain:
            return [
                (await attain.get_progress(m, "SALES")).achieved_value.value
                for m in ("M-001", "M-002")
            ]

    assert asyncio.run(achieved()) == ["1500.50", "5000.00"]

    again = attain_cli(cli_server.address, key, "transactions", "import", str(path), "--json")
    assert again.exit_code == 2
    summary = json.loads(again.stdout)
    assert (summary["accepted"], summary["duplicate"], summary["refused"]) == (0, 3, 3)
    assert [(r["line"], r["transaction_id"], r["column"]) for r in summary["refusals"]] == [
        (4, "C-2", "member_id"),
        (6, "C-4", "amount"),
        (7, "C-5", "amount"),
    ]

    clean = tmp_path / "clean.csv"
    clean.write_text(f"{header}\nC-7,M-001,{aware},S1,SKU-1,,1,1.00,SALE,\n", encoding="utf-8")
    imported = ok(attain_cli(cli_server.address, key, "transactions", "import", str(clean)))
    assert "1 accepted" in imported.stdout

    wrong = tmp_path / "wrong.csv"
    wrong.write_text("member_id,amount\nM-001,5\n", encoding="utf-8")
    refused = attain_cli(cli_server.address, key, "transactions", "import", str(wrong))
    assert refused.exit_code == 2
    assert "wrong.csv: the header must be transaction_id,member_id" in refused.stderr


# ---------------------------------------------------------------- watch


def test_watch_prints_each_update_in_a_subprocess(cli_server: CliServer) -> None:
    key = brand_with(cli_server, sales=(("T-1", "M-001", "4000.00"),))
    attain = Path(sys.executable).parent / "attain"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTAIN_")}
    env.update(COLUMNS="160", NO_COLOR="1")
    proc = subprocess.Popen(
        [
            str(attain),
            *("--address", cli_server.address, "--key", key, "--config", "/nonexistent"),
            *("watch", "M-001", "--target", "SALES", "--updates", "2"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "SALES" in first and "40.00%" in first, first

        async def sale() -> None:
            async with AttainClient(cli_server.address, key) as client:
                await client.record_sale("T-2", member="M-001", sku="SKU-1", amount="5500.00")

        asyncio.run(sale())
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    second = out.strip().splitlines()
    assert len(second) == 1, out
    assert "95.00%" in second[0] and "9,500.00 / 10,000.00" in second[0]
    assert "remaining 500.00" in second[0]


# ---------------------------------------------------------------- rewards


def rewarded_brand(cli_server: CliServer) -> str:
    """M-001 reached 100% of SALES: 1,000 points (FIXED) and the Star badge (milestone)."""
    target = monthly_target(
        "SALES",
        period=tpb.Period(kind=typ.PERIOD_KIND_MONTHLY, start_date=this_month()),
        rules=[
            tpb.RewardRule(fixed=tpb.FixedRule(incentive=typ.Incentive(points=1000))),
            tpb.RewardRule(
                milestones=tpb.MilestonesRule(
                    milestones=[
                        tpb.Milestone(
                            attainment_percent=D("100"), incentive=typ.Incentive(badge="Star")
                        )
                    ]
                )
            ),
        ],
    )
    return brand_with(
        cli_server,
        ("M-001", "M-002"),
        target=target,
        sales=(("T-1", "M-001", "10000.00"), ("T-2", "M-002", "500.00")),
    )


def test_awards_list_watch_and_badges(cli_server: CliServer) -> None:
    key = rewarded_brand(cli_server)
    awards = as_json(attain_cli(cli_server.address, key, "awards", "list", "--json"))
    assert sorted(
        (a["member_id"], a["kind"], a.get("points") or 0, a.get("badge") or "") for a in awards
    ) == [
        ("M-001", "AWARD_KIND_BADGE", 0, "Star"),
        ("M-001", "AWARD_KIND_POINTS", 1000, ""),
    ]
    points = next(a for a in awards if a["kind"] == "AWARD_KIND_POINTS")
    assert points["milestone_percent"] == "100"  # exact decimal, as a string
    assert points["state"] == "AWARD_STATE_GRANTED" and points["target_code"] == "SALES"

    only_points = as_json(
        attain_cli(cli_server.address, key, "awards", "list", "--kind", "points", "--json")
    )
    assert [a["kind"] for a in only_points] == ["AWARD_KIND_POINTS"]
    nobody = attain_cli(cli_server.address, key, "awards", "list", "--member", "M-002", "--json")
    assert as_json(nobody) == []
    bad_kind = attain_cli(cli_server.address, key, "awards", "list", "--kind", "cash")
    assert bad_kind.exit_code == 2
    assert "--kind: must be one of points, voucher, badge, not 'cash'" in bad_kind.stderr

    table = attain_cli(cli_server.address, key, "awards", "list", env=PLAIN_ENV)
    assert "1,000 points" in table.stdout and "badge Star" in table.stdout

    # The stream from the start, one award a line with its cursor; resuming after the
    # first cursor gives the second award only.
    watched = ok(attain_cli(cli_server.address, key, "awards", "watch", "--count", "2", "--json"))
    streamed = [json.loads(line) for line in watched.stdout.splitlines()]
    assert sorted(a["id"] for a in streamed) == sorted(a["id"] for a in awards)
    resumed = attain_cli(
        cli_server.address,
        key,
        *("awards", "watch", "--count", "1", "--cursor", streamed[0]["cursor"]),
    )
    ok(resumed)
    assert f"cursor {streamed[1]['cursor']}" in resumed.stdout
    assert "M-001:" in resumed.stdout and "for SALES" in resumed.stdout

    badges = as_json(attain_cli(cli_server.address, key, "awards", "badges", "M-001", "--json"))
    assert [(b["badge"], b["target_code"]) for b in badges] == [("Star", "SALES")]


def test_balance_adjust_idempotent_and_ledger(cli_server: CliServer) -> None:
    key = rewarded_brand(cli_server)
    balance = as_json(attain_cli(cli_server.address, key, "balance", "M-001", "--json"))
    assert balance["balances"] == [{"program": "POINTS", "points": 1000}]

    adjust = ("points", "adjust", "M-001", "-50", "--reason", "wrong SKU", "--request-id", "r-1")
    entry = as_json(attain_cli(cli_server.address, key, *adjust, "--json"))
    assert entry["balance"] == 950 and entry["entry"]["points"] == -50
    again = attain_cli(cli_server.address, key, *adjust, env=PLAIN_ENV)
    ok(again)
    assert f"entry {entry['entry']['id']}" in again.stdout  # the first entry, not a second one
    assert "Balance: 950." in again.stdout

    shown = attain_cli(cli_server.address, key, "balance", "M-001", env=PLAIN_ENV)
    assert "POINTS" in shown.stdout and "950" in shown.stdout

    entries = as_json(attain_cli(cli_server.address, key, "points", "ledger", "M-001", "--json"))
    assert [(e["points"], e["kind"]) for e in entries] == [
        (-50, "LEDGER_ENTRY_KIND_ADJUSTMENT"),
        (1000, "LEDGER_ENTRY_KIND_AWARD"),
    ]
    assert entries[0]["reason"] == "wrong SKU"

    bad = attain_cli(cli_server.address, key, "points", "adjust", "M-001", "1.5", "--reason", "x")
    assert bad.exit_code == 2 and "POINTS: must be a whole number" in bad.stderr
    zero = attain_cli(cli_server.address, key, "points", "adjust", "M-001", "0", "--reason", "x")
    assert zero.exit_code == 2 and "INVALID_ARGUMENT" in zero.stderr and "points" in zero.stderr
    assert "Traceback" not in zero.output
