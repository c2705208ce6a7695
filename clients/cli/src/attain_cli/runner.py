"""Runs one command's coroutine with a client, and turns every failure into a readable message.

Exit codes: 0 ok, 1 the server refused or failed, 2 bad input (flags, files, field violations),
3 the server could not be reached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
import typer

from attain_cli.config import ConfigError, Connection
from attain_cli.output import err_console
from attain_client import AttainClient, AttainError

T = TypeVar("T")


class InputError(Exception):
    """Bad input found by the CLI itself (a file, a flag): `where` is the field or file place."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


def fail(message: str, code: int) -> typer.Exit:
    err_console().print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def bad_input(where: str, reason: str) -> typer.Exit:
    """For a bad flag or argument found before any call: `raise bad_input("role", "...")`."""
    return fail(f"{where}: {reason}", 2)


def run(ctx: typer.Context, work: Callable[[AttainClient], Awaitable[T]]) -> T:
    """Opens a client for the resolved address and key, runs `work`, closes the client."""
    conn: Connection = ctx.obj

    async def main() -> T:
        async with AttainClient(conn.address, conn.require_key()) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except AttainError as error:
        raise _refused(error, conn) from None
    except (ConfigError, InputError) as error:
        raise fail(str(error), 2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _refused(error: AttainError, conn: Connection) -> typer.Exit:
    if error.code() == grpc.StatusCode.UNAVAILABLE:
        return fail(
            f"cannot reach the Attain server at {conn.address} ({error.message}); "
            "start it with scripts/run or pass --address",
            3,
        )
    console = err_console()
    console.print(
        f"[bold red]error:[/] {error.code().name}: {error.message}", markup=True, highlight=False
    )
    for violation in error.extra_violations:
        console.print(f"  {violation.field}: {violation.reason}", markup=False, highlight=False)
    return typer.Exit(2 if error.code() == grpc.StatusCode.INVALID_ARGUMENT else 1)
