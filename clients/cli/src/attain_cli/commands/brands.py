"""`attain brands`: the brand itself. `create` is the operator's (it works on the database,
like `attain-server brands create`); `show` and `update` speak gRPC with the brand's key."""

from __future__ import annotations

from typing import Annotated

import typer
from google.protobuf.field_mask_pb2 import FieldMask

from attain.v1 import targets_pb2 as tpb
from attain_cli.options import JsonOpt
from attain_cli.output import console, emit_json, show
from attain_cli.runner import bad_input, run
from attain_client import AttainClient
from attain_service import main as server_main

app = typer.Typer(
    help="The brand: create (operator, on the database), show, update.", no_args_is_help=True
)

app.command(
    "create", help="Create a brand, its default program and its first admin key (operator)."
)(server_main.create_brand_command)

COLUMNS = ["code", "display_name", "time_zone", "create_time"]


@app.command("show")
def show_brand(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the brand of the key in use."""

    async def work(client: AttainClient) -> tpb.Brand:
        return (await client.targets.GetBrand(tpb.GetBrandRequest())).brand

    show(run(ctx, work), as_json, COLUMNS, "Brand")


@app.command("update")
def update_brand(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="new display name")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change the brand's display name (its code and time zone stay)."""
    if name is None:
        raise bad_input("name", "give --name (the display name is what can change)")

    async def work(client: AttainClient) -> tpb.Brand:
        request = tpb.UpdateBrandRequest(
            brand=tpb.Brand(display_name=name), update_mask=FieldMask(paths=["display_name"])
        )
        return (await client.targets.UpdateBrand(request)).brand

    brand = run(ctx, work)
    if as_json:
        emit_json(brand)
        return
    console().print(f"Brand {brand.code} is now named {brand.display_name!r}.")


def register(root: typer.Typer) -> None:
    """Adds this module's commands to the `attain` app."""
    root.add_typer(app, name="brands")
