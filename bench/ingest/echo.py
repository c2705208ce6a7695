"""A bare grpc.aio echo server: bytes in, bytes out, no protobuf parsing on the server.

Run as a subprocess (`python -m bench.ingest.echo`): it listens on a free loopback port and
writes one JSON line ``{"event": "listening", "port": N}`` to stderr, like attain-server.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc

SERVICE = "bench.Echo"
UNARY = f"/{SERVICE}/Unary"
STREAM = f"/{SERVICE}/Stream"
# The same limit as attain-server, so both accept the same message sizes.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024


async def _unary(request: bytes, _context: Any) -> bytes:
    return request


async def _stream(requests: AsyncIterator[bytes], _context: Any) -> bytes:
    """Reads every message and answers with how many messages and bytes it saw."""
    messages = size = 0
    async for message in requests:
        messages += 1
        size += len(message)
    return json.dumps({"messages": messages, "bytes": size}).encode()


async def serve(listen: str) -> None:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Unary": grpc.unary_unary_rpc_method_handler(_unary),
                    "Stream": grpc.stream_unary_rpc_method_handler(_stream),
                },
            ),
        )
    )
    port = server.add_insecure_port(listen)
    await server.start()
    print(json.dumps({"event": "listening", "port": port}), file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    listen = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:0"
    asyncio.run(serve(listen))


if __name__ == "__main__":
    main()
