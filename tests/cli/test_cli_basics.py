"""The `attain` CLI against a real server process: connection settings, keys, errors."""

from __future__ import annotations

import stat
from pathlib import Path

from conftest import CliServer
from support import as_json, attain_cli, ok


def test_keys_create_list_revoke_and_json(cli_server: CliServer) -> None:
    admin = cli_server.new_brand()
    created = attain_cli(cli_server.address, admin, "keys", "create", "ingest", "--label", "pos")
    ok(created)
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("atn_")

    listed = attain_cli(cli_server.address, admin, "keys", "list", "--json")
    keys = as_json(listed)
    ingest = [k for k in keys if k["role"] == "ROLE_INGEST"]
    assert [k["label"] for k in ingest] == ["pos"]
    assert secret not in listed.stdout

    table = attain_cli(cli_server.address, admin, "keys", "list")
    assert "ROLE_INGEST" in table.stdout and "pos" in table.stdout

    revoked = attain_cli(cli_server.address, admin, "keys", "revoke", ingest[0]["key_id"])
    ok(revoked)
    refused = attain_cli(cli_server.address, secret, "keys", "list")
    assert refused.exit_code == 1
    assert "UNAUTHENTICATED" in refused.stderr
    assert "Traceback" not in refused.output


def test_bad_input_and_unreachable_server_are_readable(cli_server: CliServer) -> None:
    admin = cli_server.new_brand()
    bad = attain_cli(cli_server.address, admin, "keys", "create", "root")
    assert bad.exit_code == 2
    assert "role: must be one of admin, ingest, member, not 'root'" in bad.stderr

    # A member key needs its member: the server's field violation is printed as is.
    member = attain_cli(cli_server.address, admin, "keys", "create", "member")
    assert member.exit_code == 2
    assert "INVALID_ARGUMENT" in member.stderr and "member_id" in member.stderr

    nowhere = attain_cli("127.0.0.1:1", admin, "keys", "list")
    assert nowhere.exit_code == 3
    assert "cannot reach the Attain server at 127.0.0.1:1" in nowhere.stderr

    missing = attain_cli(cli_server.address, None, "keys", "list")
    assert missing.exit_code == 2
    assert "no API key" in missing.stderr


def test_config_file_holds_address_and_key_privately(cli_server: CliServer, tmp_path: Path) -> None:
    admin = cli_server.new_brand()
    path = tmp_path / "attain.toml"
    saved = attain_cli(
        "unused:1",
        None,
        "config",
        "set",
        "--address",
        cli_server.address,
        "--key",
        admin,
        config=str(path),
    )
    ok(saved)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    from typer.testing import CliRunner

    from attain_cli.main import app

    result = CliRunner().invoke(
        app, ["--config", str(path), "keys", "list", "--json"], env={"ATTAIN_KEY": None}
    )
    assert as_json(result)[0]["role"] == "ROLE_BRAND_ADMIN"

    shown = CliRunner().invoke(app, ["--config", str(path), "config", "show"])
    assert "key: set" in shown.stdout and admin not in shown.stdout

    path.write_text("adress = 'typo'\n")
    typo = CliRunner().invoke(app, ["--config", str(path), "keys", "list"])
    assert typo.exit_code == 2 and "unknown settings adress" in typo.stderr
