"""Health reports SERVING once migrated; reflection lists the three attain.v1 services."""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from conftest import Api


async def test_health_is_serving_for_the_server_and_each_service(api: Api) -> None:
    stub: Any = health_pb2_grpc.HealthStub(api.channel)  # typeshed types the sync stub only
    for service in (
        "",
        "attain.v1.TargetService",
        "attain.v1.ProgressService",
        "attain.v1.RewardService",
    ):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_reflection_lists_services_without_a_key(api: Api) -> None:
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(api.channel)  # type: ignore[arg-type]
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names: set[str] = set()
    async for response in call:
        names |= {s.name for s in response.list_services_response.service}
        break
    assert {
        "attain.v1.TargetService",
        "attain.v1.ProgressService",
        "attain.v1.RewardService",
    } <= names
