"""Servicers for capabilities not built yet: every method answers UNIMPLEMENTED through the gate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from attain.v1 import rewards_pb2_grpc
from attain_server.domain.errors import Unimplemented


def _unary(name: str, issue: str) -> Any:
    async def method(self: Any, request: Any, context: Any) -> Any:
        raise Unimplemented(f"{name} is not available yet ({issue})")

    return method


def _streaming(name: str, issue: str) -> Any:
    async def method(self: Any, request: Any, context: Any) -> AsyncIterator[Any]:
        raise Unimplemented(f"{name} is not available yet ({issue})")
        yield  # pragma: no cover - makes this an async generator

    return method


def _pending(base: type, streaming: set[str], issue: str) -> type:
    names = [n for n in vars(base) if not n.startswith("_")]
    body = {n: (_streaming(n, issue) if n in streaming else _unary(n, issue)) for n in names}
    return type(f"Pending{base.__name__}", (base,), body)


PendingRewardServicer = _pending(rewards_pb2_grpc.RewardServiceServicer, {"WatchAwards"}, "rewards")
