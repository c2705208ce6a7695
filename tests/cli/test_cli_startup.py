"""The CLI starts without the server: client commands load the client, operator ones more."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
# What `attain --help` and every client command import first: the CLI, never the server.
NO_SERVER = (
    "import attain_cli.main, sys; "
    "assert 'sqlalchemy' not in sys.modules, 'the CLI imported SQLAlchemy'; "
    "loaded = sorted(m for m in sys.modules if m.startswith(('attain_server', 'attain_worker'))); "
    "assert not loaded, loaded"
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_importing_the_cli_loads_no_server_code() -> None:
    done = _run(sys.executable, "-c", NO_SERVER)
    assert done.returncode == 0, done.stderr


def test_help_lists_client_and_operator_commands() -> None:
    done = _run(str(VENV_BIN / "attain"), "--help")
    assert done.returncode == 0, done.stderr
    for command in ("keys", "transactions", "demo", "serve", "worker", "migrate"):
        assert command in done.stdout


def test_operator_commands_import_the_server_only_when_they_run() -> None:
    done = _run(sys.executable, "-c", NO_SERVER.replace("attain_cli.main", "attain_service.main"))
    assert done.returncode == 0, done.stderr
    help_ = _run(sys.executable, "-m", "attain_service.main", "brands", "create", "--help")
    assert help_.returncode == 0, help_.stderr
    assert "--timezone" in help_.stdout
