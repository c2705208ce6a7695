"""`attain demo` against a real server process: a brand, members, targets and sales, and bars
in all three colours, in a few seconds."""

from __future__ import annotations

import re
import time

from conftest import CliServer
from support import as_json, attain_cli, ok

RED, ORANGE, GREEN = "\x1b[31m", "\x1b[38;5;208m", "\x1b[32m"


def test_demo_loads_a_brand_and_shows_every_colour(cli_server: CliServer) -> None:
    started = time.monotonic()
    result = attain_cli(
        cli_server.address,
        None,
        *("demo", "--data-dir", str(cli_server.data_dir)),
        env={
            "FORCE_COLOR": "1",
            "TERM": "xterm-256color",
            "COLORTERM": None,
            "NO_COLOR": None,
            "ATTAIN_DATABASE_URL": None,
        },
    )
    elapsed = time.monotonic() - started
    ok(result)
    assert elapsed < 20, f"the demo took {elapsed:.1f}s"
    out = result.stdout
    for code in (RED, ORANGE, GREEN):
        assert f"{code}█" in out, (code, out)
    # A table pads a right-aligned cell inside its style, hence the optional spaces.
    assert re.search(rf"{re.escape(GREEN)} *104\.00%", out)  # M-001: 15,600.00 of GOLD 15,000.00
    assert re.search(rf"{re.escape(ORANGE)} *96\.50%", out)  # M-002: 9,650.00 of 10,000.00
    assert re.search(rf"{re.escape(RED)} *72\.50%", out)  # M-003: 7,250.00 of 10,000.00
    for target in ("MONTH-SALES", "Q-OIL", "WEEK-VISITS"):
        assert target in out

    key = next(line for line in out.splitlines() if line.startswith("atn_"))
    assert f"export ATTAIN_KEY={key}" in out
    assert "attain config set --key" in out

    # The key works: the brand is there with its members' progress.
    card = as_json(attain_cli(cli_server.address, key, "progress", "M-002", "--json"))
    rows = {r["target_code"]: r for r in card}
    assert rows["MONTH-SALES"]["colour"] == "COLOUR_ORANGE"
    assert rows["WEEK-VISITS"]["colour"] == "COLOUR_GREEN"
    assert rows["Q-OIL"]["colour"] == "COLOUR_RED"
    assert rows["Q-OIL"]["achieved_value"] == "240"

    # Run again: the code is taken, so the next demo brand is DEMO2 (or later).
    second = attain_cli(
        cli_server.address,
        None,
        *("demo", "--data-dir", str(cli_server.data_dir)),
        env={"ATTAIN_DATABASE_URL": None},
    )
    ok(second)
    assert re.search(r"Loaded demo brand DEMO\d+ ", second.stdout), second.stdout


def test_demo_without_a_server_says_how_to_start_one(cli_server: CliServer) -> None:
    result = attain_cli("127.0.0.1:1", None, *("demo", "--data-dir", str(cli_server.data_dir)))
    assert result.exit_code == 3
    assert "cannot reach the Attain server at 127.0.0.1:1" in result.stderr
    assert "scripts/run" in result.stderr
    assert "Traceback" not in result.output
