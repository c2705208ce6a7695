"""`attain vouchers`: voucher pools the brand loads codes into (rules give codes from them).

`vouchers load POOL FILE` takes a text file with one code per line, or a CSV whose header has a
`code` column. Codes already in the pool are skipped, so loading a file twice is harmless.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Annotated

import typer

from attain.v1 import rewards_pb2 as rpb
from attain_cli.files import CsvFile, RowError, text_lines
from attain_cli.options import JsonOpt
from attain_cli.output import console, emit_json, show
from attain_cli.runner import InputError, run
from attain_client import AttainClient, pages

app = typer.Typer(help="Voucher pools: load codes, list pools.", no_args_is_help=True)

BATCH = 10_000  # codes per LoadVouchers call (the most the server takes)


@app.command("load")
def load(
    ctx: typer.Context,
    pool: Annotated[str, typer.Argument(help="pool name, e.g. NOV-10-OFF")],
    file: Annotated[Path, typer.Argument(help="one code per line, or a CSV with a code column")],
    as_json: JsonOpt = False,
) -> None:
    """Add voucher codes to a pool (the pool is made on first load)."""

    async def work(client: AttainClient) -> dict[str, int]:
        total = {"loaded": 0, "duplicates": 0, "available": 0, "fulfilled": 0}
        batch: list[str] = []

        async def send() -> None:
            done = await client.rewards.LoadVouchers(
                rpb.LoadVouchersRequest(pool=pool, codes=batch)
            )
            total["loaded"] += done.loaded
            total["duplicates"] += done.duplicates
            total["fulfilled"] += done.fulfilled
            total["available"] = done.available
            batch.clear()

        for code in _codes(file):
            batch.append(code)
            if len(batch) >= BATCH:
                await send()
        if batch:
            await send()
        elif not total["loaded"] and not total["duplicates"]:
            raise InputError(str(file), "has no voucher codes")
        return total

    total = run(ctx, work)
    if as_json:
        emit_json({"pool": pool, **total})
        return
    console().print(
        f"Pool {pool}: {total['loaded']} codes loaded, {total['duplicates']} already there, "
        f"{total['available']} available; {total['fulfilled']} waiting awards fulfilled.",
        markup=False,
    )


def _codes(file: Path) -> Iterator[str]:
    """The codes of a file, streamed: a CSV when its first line is a header with a `code`
    column (in any case), else one code per line."""
    lines = text_lines(file)
    first = next(lines, None)
    if first is None:
        return
    header = [h.strip() for h in next(csv.reader([first[1]]), [])]
    column = next((h for h in header if h.lower() == "code"), None)
    if column is not None:
        lines.close()
        others = [h for h in header if h != column]
        with CsvFile(file, required=[column], optional=others) as rows:
            for row in rows:
                try:
                    code = row.get(column)
                except RowError as error:
                    raise InputError(f"{file}, line {row.line}", error.reason) from None
                if code:
                    yield code
        return
    for _, text in chain([first], lines):
        if code := text.strip():
            yield code


@app.command("pools")
def list_pools(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the brand's voucher pools with their codes left."""

    async def work(client: AttainClient) -> list[rpb.VoucherPool]:
        request = rpb.ListVoucherPoolsRequest(page_size=500)
        return [p async for p in pages(client.rewards.ListVoucherPools, request, "pools")]

    show(run(ctx, work), as_json, ["pool", "total", "available"], "Voucher pools")


def register(root: typer.Typer) -> None:
    """Adds this module's commands to the `attain` app."""
    root.add_typer(app, name="vouchers")
