"""Entry points: build_server() for tests and embedding, serve() and the `attain-server` command."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import grpc
import structlog
import typer
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from attain.v1 import (
    progress_pb2,
    progress_pb2_grpc,
    rewards_pb2,
    rewards_pb2_grpc,
    targets_pb2,
    targets_pb2_grpc,
)
from attain_server import logging as attain_logging
from attain_server.api.gate import Gate
from attain_server.api.progress import ProgressServicer
from attain_server.api.rewards import RewardServicer
from attain_server.api.targets import TargetServicer
from attain_server.app import App
from attain_server.application import brands
from attain_server.config import Settings, SettingsError
from attain_server.domain.errors import AttainError, InvalidArgument
from attain_server.metrics import serve_metrics

if TYPE_CHECKING:
    from attain_worker.scheduler import Worker

log = structlog.get_logger("attain.server")

SERVICE_NAMES = (
    targets_pb2.DESCRIPTOR.services_by_name["TargetService"].full_name,
    progress_pb2.DESCRIPTOR.services_by_name["ProgressService"].full_name,
    rewards_pb2.DESCRIPTOR.services_by_name["RewardService"].full_name,
)

# Large enough for a RecordTransactions batch of 1,000 transactions with many lines.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024


class Running:
    """A started server with what it needs to stop gracefully."""

    def __init__(
        self, app: App, server: grpc.aio.Server, port: int, health: health.aio.HealthServicer
    ) -> None:
        self.app, self.server, self.port, self.health = app, server, port, health

    async def stop(self, grace: float | None = None, drain: float | None = None) -> None:
        """drain(), then finish(): NOT_SERVING while still serving for ``drain`` seconds, then
        live streams end, in-flight calls get ``grace`` seconds, and the DB is closed."""
        await self.drain(drain)
        await self.finish(grace)

    async def drain(self, seconds: float | None = None) -> None:
        """Says NOT_SERVING at once, then keeps serving for ``seconds`` (default: the
        settings' drain_seconds): a balancer that sees the health check fail moves traffic
        away before any call is refused."""
        await self.health.enter_graceful_shutdown()
        await asyncio.sleep(self.app.settings.drain_seconds if seconds is None else seconds)

    async def finish(self, grace: float | None = None) -> None:
        """Ends open live streams with UNAVAILABLE (their clients reconnect elsewhere), refuses
        new calls, lets in-flight ones finish for ``grace`` seconds, closes the DB."""
        await self.health.enter_graceful_shutdown()  # at once, if drain() was skipped
        ended = self.app.streams.end_all()
        if ended:
            log.info("live streams ended", streams=ended)
        await self.server.stop(self.app.settings.shutdown_grace_seconds if grace is None else grace)
        await self.app.close()


async def build_server(app: App) -> Running:
    """Migrates the database, then starts the gRPC server on settings.listen (port 0: any)."""
    await app.start()
    server = grpc.aio.server(
        interceptors=[Gate(app.keys, app.streams)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    targets_pb2_grpc.add_TargetServiceServicer_to_server(TargetServicer(app), server)
    progress_pb2_grpc.add_ProgressServiceServicer_to_server(ProgressServicer(app), server)
    rewards_pb2_grpc.add_RewardServiceServicer_to_server(RewardServicer(app), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(app.settings.listen)
    if port == 0:
        raise RuntimeError(f"could not listen on {app.settings.listen}")
    await server.start()
    # SERVING only now: the schema is migrated and the port is bound.
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return Running(app, server, port, health_servicer)


def _stop_on_signals() -> asyncio.Event:
    """An event SIGTERM and SIGINT set: the process then stops gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _start_worker(app: App) -> Worker:
    from attain_worker.scheduler import Worker

    worker = Worker(
        app,
        clock_seconds=app.settings.worker_clock_seconds,
        settle_seconds=app.settings.worker_settle_seconds,
    )
    await worker.start()
    return worker


# Collect the youngest generation once this many more container objects are alive than at the
# last collection (CPython's default is 700). See decision 0011.
YOUNG_THRESHOLD = 50_000


def settle_collector() -> None:
    """Once start-up is done: what it made (modules, tables, compiled protos) lives as long
    as the process, so it is moved out of the collector's view, and the young generation is
    collected only when that many objects outlive their batch (decision 0011)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


async def serve(settings: Settings) -> None:
    attain_logging.configure(fmt=settings.log_format, level=settings.log_level)
    app = App.create(settings)
    # Handlers first: a SIGTERM right after "listening" must stop us gracefully too.
    stop = _stop_on_signals()
    running = await build_server(app)
    worker = await _start_worker(app) if settings.worker else None
    _start_metrics(settings)
    settle_collector()
    host = settings.listen.rsplit(":", 1)[0]
    log.info(
        "listening",
        address=f"{host}:{running.port}",
        database=app.db.url.render_as_string(hide_password=True),
    )
    await stop.wait()
    log.info(
        "stopping",
        drain_seconds=settings.drain_seconds,
        grace_seconds=settings.shutdown_grace_seconds,
    )
    # The worker stops while the server drains: neither waits for the other.
    draining = asyncio.ensure_future(running.drain())
    try:
        if worker is not None:
            await worker.stop()
    finally:  # whatever the worker did, the server still drains, ends its streams and stops
        await draining
        await running.finish()
    log.info("stopped")


# ---------------------------------------------------------------- command line

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
    try:
        yield
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@cli.command("worker")
def worker_command(data_dir: DataOpt = None, database_url: DbOpt = None) -> None:
    """Run only the worker (for deployments that scale it apart from the server)."""
    settings = _settings(None, data_dir, database_url)
    with _settings_errors():
        asyncio.run(run_worker(settings))


async def run_worker(settings: Settings) -> None:
    attain_logging.configure(fmt=settings.log_format, level=settings.log_level)
    stop = _stop_on_signals()
    app = App.create(settings)
    await app.start()
    worker = await _start_worker(app)
    _start_metrics(settings)
    settle_collector()
    await stop.wait()
    await worker.stop()
    await app.close()


def _start_metrics(settings: Settings) -> None:
    if settings.metrics_listen:
        port = serve_metrics(settings.metrics_listen)
        host = settings.metrics_listen.rpartition(":")[0] or "127.0.0.1"
        log.info("metrics listening", address=f"{host}:{port}")


@cli.command("migrate")
def migrate_command(data_dir: DataOpt = None, database_url: DbOpt = None) -> None:
    """Apply database migrations and exit."""
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
