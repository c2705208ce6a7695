"""`attain keys`: the brand's API keys (brand admin)."""

from __future__ import annotations

from typing import Annotated

import typer

from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_cli.options import JsonOpt
from attain_cli.output import console, emit_json, show
from attain_cli.runner import bad_input, run
from attain_client import AttainClient, pages

app = typer.Typer(help="API keys of the brand: create, list, revoke.", no_args_is_help=True)

ROLES = {"admin": typ.ROLE_BRAND_ADMIN, "ingest": typ.ROLE_INGEST, "member": typ.ROLE_MEMBER}


@app.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="admin, ingest or member")],
    member: Annotated[str, typer.Option(help="the member a member key is bound to")] = "",
    label: Annotated[str, typer.Option(help="free text to tell keys apart")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create a key. Its secret is printed once and stored only hashed."""
    if role not in ROLES:
        raise bad_input("role", f"must be one of {', '.join(ROLES)}, not {role!r}")

    async def work(client: AttainClient) -> tpb.CreateApiKeyResponse:
        return await client.targets.CreateApiKey(
            tpb.CreateApiKeyRequest(role=ROLES[role], member_id=member, label=label)
        )

    created = run(ctx, work)
    if as_json:
        emit_json(created)
        return
    console().print(f"Created key {created.api_key.key_id} ({role}). Its secret, shown once:")
    typer.echo(created.secret)


@app.command("list")
def list_keys(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the brand's keys (never their secrets)."""

    async def work(client: AttainClient) -> list[tpb.ApiKey]:
        return [
            k async for k in pages(client.targets.ListApiKeys, tpb.ListApiKeysRequest(), "api_keys")
        ]

    keys = run(ctx, work)
    show(
        keys,
        as_json,
        ["key_id", "role", "member_id", "label", "create_time", "revoke_time"],
        "API keys",
    )


@app.command("revoke")
def revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="the key's id")]) -> None:
    """Revoke a key: it is refused from then on."""

    async def work(client: AttainClient) -> None:
        await client.targets.RevokeApiKey(tpb.RevokeApiKeyRequest(key_id=key_id))

    run(ctx, work)
    console().print(f"Revoked {key_id}.")
