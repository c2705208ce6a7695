"""`attain`: the admin's command line. It speaks gRPC through attain_client; the operator
commands (serve, worker, migrate, brands create, demo) work on the database directly and
import the server only when they run, so `attain --help` loads no server code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from attain_cli import config
from attain_cli.commands import (
    awards,
    brands,
    demo,
    imports,
    keys,
    members,
    points,
    programs,
    progress,
    rules,
    sftp,
    targets,
    transactions,
    values,
    vouchers,
)
from attain_cli.output import console
from attain_cli.runner import fail
from attain_service import main as server_main

app = typer.Typer(
    help=(
        "Attain admin CLI. The server address and key come from --address/--key, "
        "ATTAIN_ADDRESS/ATTAIN_KEY, or the config file (`attain config set`)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def connect(
    ctx: typer.Context,
    address: Annotated[
        str | None,
        typer.Option(help=f"server host:port [ATTAIN_ADDRESS; {config.DEFAULT_ADDRESS}]"),
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="API key [ATTAIN_KEY]", show_default=False)
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="config file [ATTAIN_CONFIG; ~/.config/attain/config.toml]"),
    ] = None,
) -> None:
    try:
        ctx.obj = config.resolve(address, key, config_file)
    except config.ConfigError as error:
        raise fail(str(error), 2) from None


config_app = typer.Typer(help="The CLI's own settings file.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("set")
def config_set(
    ctx: typer.Context,
    address: Annotated[str, typer.Option(help="server host:port to remember")] = "",
    key: Annotated[str, typer.Option(help="API key to remember (the file is made 0600)")] = "",
    key_file: Annotated[str, typer.Option(help="a file holding the key, instead of the key")] = "",
) -> None:
    """Remember the address and key (or key file) in the config file."""
    conn: config.Connection = ctx.obj
    config.write(conn.config_path, {"address": address, "key": key, "key_file": key_file})
    console().print(f"Saved to {conn.config_path}.")


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Show the address and where the key comes from (never the key)."""
    conn: config.Connection = ctx.obj
    console().print(f"address: {conn.address}")
    console().print(f"key: {'set' if conn.key else 'not set'}")
    console().print(f"config file: {conn.config_path}")


app.add_typer(keys.app, name="keys")
# Each module adds its own groups or commands.
for module in (
    brands,
    programs,
    members,
    targets,
    values,
    rules,
    vouchers,
    sftp,
    imports,
    transactions,
    progress,
    awards,
    points,
    demo,
):
    module.register(app)

# Operator commands, the same as `attain-server ...`: they need the database, not a key.
app.command("serve", help="Run the gRPC server and, unless --no-worker, the worker.")(
    server_main.serve_command
)
app.command("worker", help="Run only the worker (cycle clock and SFTP polls).")(
    server_main.worker_command
)
app.command("migrate", help="Apply database migrations and exit.")(server_main.migrate_command)
