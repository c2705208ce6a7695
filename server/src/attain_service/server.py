"""The gRPC server: build_server() wires the servicers, health and reflection onto an App."""

from __future__ import annotations

import asyncio

import grpc
import structlog
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
from attain_server.api.gate import Gate
from attain_server.api.progress import ProgressServicer
from attain_server.api.rewards import RewardServicer
from attain_server.api.targets import TargetServicer
from attain_server.app import App

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
