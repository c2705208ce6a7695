"""`attain-server`: the operator's command line (serve, worker, migrate, brands create).

This module imports only typer: each command imports the server when it runs, so `attain`
can offer the same commands without loading the server to print its help.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from attain_server.config import Settings

cli = typer.Typer(
    help="Attain server: run it, migrate it, and create brands (operator).",
    no_args_is_help=True,
    add_completion=False,
)
brands_cli = typer.Typer(help="Operator commands for brands.", no_args_is_help=True)
cli.add_typer(brands_cli, name="brands")

ListenOpt = Annotated[str | None, typer.Option(help="host:port to listen on [ATTAIN_LISTEN]")]
DataOpt = Annotated[
    Path | None, typer.Option(help="folder of the SQLite database [ATTAIN_DATA_DIR]")
]
DbOpt = Annotated[str | None, typer.Option(help="database URL [ATTAIN_DATABASE_URL]")]


def _settings(listen: str | None, data_dir: Path | None, database_url: str | None) -> Settings:
    from attain_server.config import Settings

    overrides: dict[str, Any] = {
        k: v
        for k, v in {"listen": listen, "data_dir": data_dir, "database_url": database_url}.items()
        if v is not None
    }
    return Settings(**overrides)


WorkerOpt = Annotated[
    bool | None,
    typer.Option("--worker/--no-worker", help="run the worker in this process [ATTAIN_WORKER]"),
]


@cli.command("serve")
def serve_command(
    listen: ListenOpt = None,
    data_dir: DataOpt = None,
    database_url: DbOpt = None,
    worker: WorkerOpt = None,
) -> None:
    """Run the gRPC server (and, unless --no-worker, the worker: cycle clock and SFTP polls)."""
    from attain_service.process import serve

    settings = _settings(listen, data_dir, database_url)
    if worker is not None:
        settings.worker = worker
    typer.echo(
        f"Attain listening on {settings.listen} "
        f"(database: {_safe_url(settings.resolved_database_url())}).",
        err=True,
    )
    typer.echo(
        "Create a brand and its first admin key with:\n"
        "  .venv/bin/attain-server brands create ACME --timezone Asia/Jakarta",
        err=True,
    )
    with _settings_errors():
        asyncio.run(serve(settings))


@contextmanager
def _settings_errors() -> Iterator[None]:
    """A setting the operator must fix ends the command with its message, not a traceback."""
    from attain_server.config import SettingsError

    try:
        yield
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@cli.command("worker")
def worker_command(data_dir: DataOpt = None, database_url: DbOpt = None) -> None:
    """Run only the worker (for deployments that scale it apart from the server)."""
    from attain_service.process import run_worker

    settings = _settings(None, data_dir, database_url)
    with _settings_errors():
        asyncio.run(run_worker(settings))


@cli.command("migrate")
def migrate_command(data_dir: DataOpt = None, database_url: DbOpt = None) -> None:
    """Apply database migrations and exit."""
    from attain_server.app import App

    settings = _settings(None, data_dir, database_url)

    async def run() -> None:
        app = App.create(settings)
        await app.db.migrate()
        await app.db.dispose()

    with _settings_errors():
        asyncio.run(run())
    typer.echo("database is up to date")


@brands_cli.command("create")
def create_brand_command(
    code: Annotated[str, typer.Argument(help="brand code, e.g. ACME")],
    timezone: Annotated[str, typer.Option("--timezone", help="IANA zone, e.g. Asia/Jakarta")],
    name: Annotated[str, typer.Option(help="display name")] = "",
    program: Annotated[str, typer.Option(help="code of the default points program")] = "POINTS",
    data_dir: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Create a brand, its default program and its first admin key (printed once)."""
    from attain_server.app import App
    from attain_server.application import brands
    from attain_server.domain.errors import AttainError, InvalidArgument

    settings = _settings(None, data_dir, database_url)

    async def run() -> tuple[str, str]:
        app = App.create(settings)
        try:
            await app.db.migrate()
            brand, _key, secret = await brands.create_brand(
                db=app.db,
                code=code,
                time_zone=timezone,
                display_name=name,
                program_code=program,
                now=datetime.now(UTC),
            )
            return brand.code, secret
        finally:
            await app.db.dispose()

    try:
        with _settings_errors():
            brand_code, secret = asyncio.run(run())
    except InvalidArgument as exc:
        for v in exc.violations:
            typer.echo(f"error: {v.field}: {v.reason}", err=True)
        raise typer.Exit(2) from None
    except AttainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Created brand {brand_code} with default program {program}.", err=True)
    typer.echo("Its first admin key follows. It is shown once and stored only hashed:", err=True)
    typer.echo(secret)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
