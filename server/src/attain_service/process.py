"""The long-running processes: serve() (server, and the worker unless disabled) and run_worker()."""

from __future__ import annotations

import asyncio
import gc
import signal
from typing import TYPE_CHECKING

import structlog

from attain_server import logging as attain_logging
from attain_server.app import App
from attain_server.config import Settings
from attain_server.metrics import serve_metrics
from attain_service.server import build_server

if TYPE_CHECKING:
    from attain_worker.scheduler import Worker

log = structlog.get_logger("attain.server")

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


def _stop_on_signals() -> asyncio.Event:
    """An event SIGTERM and SIGINT set: the process then stops gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _start_worker(app: App) -> Worker:
    # Imported here: a server run with --no-worker never loads the worker (SFTP, scheduler).
    from attain_worker.scheduler import Worker

    worker = Worker(
        app,
        clock_seconds=app.settings.worker_clock_seconds,
        settle_seconds=app.settings.worker_settle_seconds,
    )
    await worker.start()
    return worker


def _start_metrics(settings: Settings) -> None:
    if settings.metrics_listen:
        port = serve_metrics(settings.metrics_listen)
        host = settings.metrics_listen.rpartition(":")[0] or "127.0.0.1"
        log.info("metrics listening", address=f"{host}:{port}")


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
