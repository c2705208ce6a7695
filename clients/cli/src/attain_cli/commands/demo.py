"""`attain demo`: a demo brand with members, three targets and today's sales, then their bars.

The brand and its first admin key are made the operator's way (on the server's database, like
`attain-server brands create`); everything else goes over gRPC to the running server, so the
demo shows the product as a client sees it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import grpc
import typer

from attain.v1 import progress_pb2 as ppb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_cli import bars
from attain_cli.config import Connection
from attain_cli.output import console
from attain_cli.runner import fail, run
from attain_client import AttainClient, decimal, line, sale

if TYPE_CHECKING:
    from attain_server.config import Settings

PRICE_PER_LITRE = Decimal("5.00")


@dataclass(frozen=True, slots=True)
class DemoMember:
    external_id: str
    name: str
    level: str
    group: str
    # Today's sales: their total, how many stores they went through (visits), litres of oil.
    total: Decimal
    stores: int
    litres: int


# Chosen so every colour shows: e.g. M-002 is orange on sales, green on visits, red on oil.
MEMBERS = (
    DemoMember("M-001", "Toko Sinar Jaya", "GOLD", "north", Decimal("15600.00"), 3, 310),
    DemoMember("M-002", "Warung Maju", "SILVER", "north", Decimal("9650.00"), 5, 240),
    DemoMember("M-003", "CV Sentosa", "SILVER", "south", Decimal("7250.00"), 4, 285),
    DemoMember("M-004", "Apotek Sehat", "SILVER", "south", Decimal("10000.00"), 2, 120),
    DemoMember("M-005", "Mitra Tani", "GOLD", "east", Decimal("12300.00"), 1, 165),
)


def targets(today: date) -> list[tpb.Target]:
    """Three targets of different KPIs, periods and reward rules, all running today."""
    quarter_start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    monday = today - timedelta(days=today.weekday())
    return [
        tpb.Target(
            code="MONTH-SALES",
            display_name="Monthly sales",
            description="10,000.00 of sales a month (GOLD: 15,000.00); 1,000 points at 100%",
            criteria=[
                tpb.Criterion(
                    kpi=typ.KPI_TRANSACTION_AMOUNT,
                    target_value=decimal("10000.00"),
                    level_target_values={"GOLD": decimal("15000.00")},
                )
            ],
            period=tpb.Period(
                kind=typ.PERIOD_KIND_MONTHLY, start_date=today.replace(day=1).isoformat()
            ),
            offset_days=3,
            rules=[tpb.RewardRule(fixed=tpb.FixedRule(incentive=typ.Incentive(points=1000)))],
        ),
        tpb.Target(
            code="Q-OIL",
            display_name="Quarterly oil litres",
            description="300 litres of OIL-1L a quarter; rewards at 50%, 75% and 100%",
            criteria=[
                tpb.Criterion(
                    kpi=typ.KPI_SKU_QUANTITY,
                    filter=tpb.CriterionFilter(skus=["OIL-1L"]),
                    target_value=decimal("300"),
                )
            ],
            period=tpb.Period(kind=typ.PERIOD_KIND_QUARTERLY, start_date=quarter_start.isoformat()),
            rules=[
                tpb.RewardRule(
                    milestones=tpb.MilestonesRule(
                        milestones=[
                            tpb.Milestone(
                                attainment_percent=decimal("50"),
                                incentive=typ.Incentive(points=100),
                            ),
                            tpb.Milestone(
                                attainment_percent=decimal("75"),
                                incentive=typ.Incentive(points=250),
                            ),
                            tpb.Milestone(
                                attainment_percent=decimal("100"),
                                incentive=typ.Incentive(badge="Oil champion"),
                            ),
                        ]
                    )
                )
            ],
        ),
        tpb.Target(
            code="WEEK-VISITS",
            display_name="Weekly store visits",
            description="5 store visits (distinct store and day) every 7 days from Monday",
            criteria=[tpb.Criterion(kpi=typ.KPI_VISIT_COUNT, target_value=decimal("5"))],
            period=tpb.Period(
                kind=typ.PERIOD_KIND_EVERY_N_DAYS, start_date=monday.isoformat(), every_n_days=7
            ),
            rules=[tpb.RewardRule(fixed=tpb.FixedRule(incentive=typ.Incentive(points=200)))],
        ),
    ]


def transactions(member: DemoMember, now: datetime) -> list[ppb.Transaction]:
    """The member's sales today: one per store, the total split evenly, the oil in the first."""
    share = (member.total / member.stores).quantize(Decimal("0.01"))
    out: list[ppb.Transaction] = []
    for i in range(member.stores):
        amount = share if i < member.stores - 1 else member.total - share * (member.stores - 1)
        if i == 0:
            oil = PRICE_PER_LITRE * member.litres
            lines = [
                line(oil, sku="OIL-1L", category="oil", quantity=member.litres),
                line(amount - oil, sku="RICE-5KG", category="food"),
            ]
        else:
            lines = [line(amount, sku="RICE-5KG", category="food")]
        out.append(
            sale(
                f"DEMO-{member.external_id}-{i + 1}",
                member=member.external_id,
                lines=lines,
                occurred_at=now,
                store=f"S-{i + 1:02d}",
            )
        )
    return out


# ---------------------------------------------------------------- the operator part
# These import the server when the command runs: the rest of the CLI never loads it.


def _settings(data_dir: Path | None, database_url: str | None) -> Settings:
    from attain_server.config import Settings

    overrides: dict[str, object] = {}
    if data_dir is not None:
        # An explicit folder means SQLite there, whatever ATTAIN_DATABASE_URL says.
        overrides["data_dir"] = data_dir
        overrides["database_url"] = ""
    if database_url is not None:
        overrides["database_url"] = database_url
    return Settings(**overrides)  # type: ignore[arg-type]


def _sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return (
        Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database else None
    )


async def create_brand(settings: Settings, base: str, time_zone: str) -> tuple[str, str]:
    """A new brand named `base`, or base2, base3... when taken; returns its code and admin key."""
    from attain_server.app import App
    from attain_server.application import brands
    from attain_server.domain.errors import AlreadyExists

    app = App.create(settings)
    try:
        await app.db.migrate()
        for n in range(1, 1000):
            code = base if n == 1 else f"{base}{n}"
            try:
                brand, _key, secret = await brands.create_brand(
                    db=app.db,
                    code=code,
                    time_zone=time_zone,
                    display_name="Attain demo",
                    now=datetime.now(UTC),
                )
            except AlreadyExists:
                continue
            return brand.code, secret
        raise AlreadyExists(f"brands {base} to {base}999 all exist")
    finally:
        await app.db.dispose()


async def reachable(address: str, seconds: float = 3.0) -> bool:
    channel = grpc.aio.insecure_channel(address)
    try:
        await asyncio.wait_for(channel.channel_ready(), seconds)
        return True
    except TimeoutError:
        return False
    finally:
        await channel.close()


# ---------------------------------------------------------------- the command


def demo(
    ctx: typer.Context,
    brand: Annotated[
        str, typer.Option(help="code of the demo brand (DEMO2, DEMO3... if taken)")
    ] = "DEMO",
    timezone: Annotated[
        str, typer.Option("--timezone", help="the brand's IANA zone")
    ] = "Asia/Jakarta",
    data_dir: Annotated[
        Path | None,
        typer.Option(help="the server's SQLite folder [ATTAIN_DATA_DIR; data, as scripts/run]"),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="the server's database URL instead [ATTAIN_DATABASE_URL]")
    ] = None,
) -> None:
    """Load a demo brand (members, three targets, today's sales) into the running server and
    show its progress bars. Start the server first: scripts/run."""
    from attain_server.domain.errors import AttainError as ServerError

    conn: Connection = ctx.obj
    if not asyncio.run(reachable(conn.address)):
        raise fail(
            f"cannot reach the Attain server at {conn.address}. Start it in another terminal "
            "with scripts/run (or pass --address), then run `attain demo` again",
            3,
        )
    settings = _settings(data_dir, database_url)
    url = settings.resolved_database_url()
    db_file = _sqlite_file(url)
    if db_file is not None and not db_file.exists():
        raise fail(
            f"no database at {db_file}: pass the --data-dir (or --database-url) "
            f"the server at {conn.address} uses",
            2,
        )
    try:
        code, secret = asyncio.run(create_brand(settings, brand, timezone))
    except ServerError as error:
        raise fail(f"cannot create the demo brand: {error}", 2) from None

    # From here on, a client of the running server with the new brand's key.
    ctx.obj = dataclasses.replace(conn, key=secret)

    async def work(client: AttainClient) -> list[ppb.Progress]:
        zone = ZoneInfo(timezone)
        now = datetime.now(UTC)
        today = now.astimezone(zone).date()
        for member in MEMBERS:
            await client.targets.UpsertMember(
                tpb.UpsertMemberRequest(
                    member=tpb.Member(
                        external_id=member.external_id,
                        display_name=member.name,
                        level=member.level,
                        groups=[member.group],
                    )
                )
            )
        for target in targets(today):
            await client.targets.CreateTarget(tpb.CreateTargetRequest(target=target))
        sales = [txn for member in MEMBERS for txn in transactions(member, now)]
        summary = await client.record_transactions(sales)
        for refusal in summary.refusals:  # only if the clock crossed a cycle end just now
            console().print(f"(sale {refusal.transaction_id} refused: {refusal.message})")
        rows: list[ppb.Progress] = []
        for member in MEMBERS:
            rows += await client.member_progress(member.external_id)
        return rows

    try:
        rows = run(ctx, work)
    except typer.Exit as exit_:
        if exit_.exit_code == 1:
            console().print(
                f"(Is the server at {conn.address} using the database at {db_file or url}? "
                "The demo brand was created there.)"
            )
        raise
    out = console()
    out.print(f"Loaded demo brand {code} ({timezone}): 5 members and today's sales on 3 targets.")
    for target_code, summary in TARGET_SUMMARIES:
        out.print(f"  {target_code:<12} {summary}")
    out.print("Members: " + ", ".join(f"{m.external_id} {m.name} ({m.level})" for m in MEMBERS))
    out.print()
    out.print(bars.progress_table(rows, out, title="Progress now"))
    out.print()
    out.print(f"The brand's admin key (shown once, stored only hashed):\n{secret}")
    attain = _program()
    out.print("Carry on with it:")
    out.print(f"  export ATTAIN_KEY={secret}")
    out.print(f"  {attain} progress M-002")
    out.print(f"  {attain} leaderboard MONTH-SALES")
    out.print(f"  {attain} watch M-003      # and in another terminal:")
    out.print(
        f"  {attain} transactions record --id T-1 --member M-003 --sku RICE-5KG --amount 2750.00"
    )
    out.print(f"or keep the key in the CLI's config file: {attain} config set --key {secret}")


TARGET_SUMMARIES = (
    ("MONTH-SALES", "sales amount a month: 10,000.00 (GOLD 15,000.00); 1,000 points at 100%"),
    (
        "Q-OIL",
        "litres of OIL-1L a quarter: 300; 100 and 250 points at 50% and 75%, a badge at 100%",
    ),
    ("WEEK-VISITS", "store visits (store and day) every 7 days: 5; 200 points at 100%"),
)


def _program() -> str:
    """How the user called the CLI (`.venv/bin/attain` from the README), to copy and paste."""
    invoked = Path(sys.argv[0]) if sys.argv else Path("attain")
    return str(invoked) if invoked.name == "attain" else "attain"


def register(app: typer.Typer) -> None:
    """Adds this module's commands to the `attain` app."""
    app.command("demo")(demo)
