"""The brands a fuzz run works on: brand A with plausible content to aim at, brand B to leave
alone, the hints that mix A's real names into fuzzed requests, and snapshots of a brand."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf.message import Message
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import SQLModel

import attain_server.store.tables  # noqa: F401  (registers every table on SQLModel.metadata)
from attain.v1 import progress_pb2 as ppb
from attain.v1 import rewards_pb2 as rpb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_server.store.engine import Database
from conftest import Api, Brand
from fuzz.messages import Hints
from support import D, line, monthly_target, ts

JAKARTA = ZoneInfo("Asia/Jakarta")
# The server's clock during a fuzz run: mid-month, so the plausible times land in open cycles.
NOW = datetime(2026, 11, 15, 12, tzinfo=JAKARTA)
MEMBERS = ("M-001", "M-002", "M-003")
PROGRAMS = ("POINTS", "BONUS")
POOL = "NOV-10-OFF"
TARGET_FIELDS = ("display_name", "description", "criteria", "period", "offset_days")
# A well-formed ed25519 public key nobody holds the private half of.
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZ1enpmdXp6ZnV6emZ1enpmdXp6ZnV6emZ1enpmdXp6"
MASK_PATHS = [*TARGET_FIELDS, "audience", "rules", "*", "is_default", "code", "state", "etag"]


# ---------------------------------------------------------------- brand A


@dataclass
class World:
    """Brand A, its keys, and the names a fuzzed request may use."""

    api: Api
    brand: Brand
    ingest_key: str
    member_key: str  # bound to M-001
    spare_key_ids: list[str]
    targets: list[str]
    transactions: list[str]
    page_tokens: list[str]
    secrets: list[str] = field(default_factory=list)

    def credential(self, role: str) -> str:
        return {"admin": self.brand.admin_key, "ingest": self.ingest_key}.get(role, self.member_key)


async def build_world(api: Api, other: OtherBrand) -> World:
    """A fresh brand A: members, programs, three targets of different kinds, target values,
    vouchers, sales, a return, an adjustment, keys and real page tokens."""
    brand = await api.new_brand()
    a = brand.admin
    t = api.targets
    for member_id, level, groups in (
        ("M-001", "GOLD", ["north", "distributor"]),
        ("M-002", "SILVER", ["north"]),
        ("M-003", "", []),
    ):
        member = tpb.Member(external_id=member_id, level=level, groups=groups)
        await t.UpsertMember(tpb.UpsertMemberRequest(member=member), metadata=a)
    await t.CreateProgram(tpb.CreateProgramRequest(program=tpb.Program(code="BONUS")), metadata=a)
    for target in _targets():
        await t.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=a)
    value = tpb.TargetValue(member_id="M-001", target_code="NOV-SALES", cycle="2026-11")
    value.value.value = "12000"
    await t.SetTargetValues(tpb.SetTargetValuesRequest(values=[value]), metadata=a)
    await api.rewards.LoadVouchers(
        rpb.LoadVouchersRequest(pool=POOL, codes=[f"V{i}" for i in range(5)]), metadata=a
    )
    sales = [
        _sale("T-1", "M-001", ["4000"]),
        _sale("T-2", "M-001", ["5000", "500"]),
        _sale("T-3", "M-002", ["700"]),
    ]
    refund = _sale("R-1", "M-001", ["500"], ppb.TRANSACTION_TYPE_RETURN, original="T-1")
    for txn in (*sales, refund):
        await api.progress.RecordTransaction(
            ppb.RecordTransactionRequest(transaction=txn), metadata=a
        )
    await api.rewards.AdjustPoints(
        rpb.AdjustPointsRequest(request_id="adj-1", member_id="M-001", points=50, reason="x"),
        metadata=a,
    )
    ingest = await _key(api, brand, typ.ROLE_INGEST)
    member_key = await _key(api, brand, typ.ROLE_MEMBER, "M-001")
    spares = [await _key(api, brand, typ.ROLE_INGEST) for _ in range(2)]
    world = World(
        api=api,
        brand=brand,
        ingest_key=ingest.secret,
        member_key=member_key.secret,
        spare_key_ids=[s.api_key.key_id for s in spares],
        targets=["NOV-SALES", "Q-SKU", "WEEKLY"],
        transactions=["T-1", "T-2", "T-3", "R-1"],
        page_tokens=await _page_tokens(api, brand),
    )
    world.secrets = [brand.admin_key, ingest.secret, member_key.secret, *(s.secret for s in spares)]
    return world


def _targets() -> list[tpb.Target]:
    nov = monthly_target(offset_days=3)
    nov.criteria[0].level_target_values["GOLD"].value = "20000"
    nov.rules.add(
        milestones=tpb.MilestonesRule(
            milestones=[
                tpb.Milestone(attainment_percent=D("50"), incentive=typ.Incentive(points=50)),
                tpb.Milestone(attainment_percent=D("75"), incentive=typ.Incentive(badge="B75")),
                tpb.Milestone(
                    attainment_percent=D("90"), incentive=typ.Incentive(voucher_pool=POOL)
                ),
            ]
        )
    )
    quarterly = tpb.Target(
        code="Q-SKU",
        criteria=[
            tpb.Criterion(
                kpi=typ.KPI_SKU_QUANTITY,
                target_value=D("100"),
                filter=tpb.CriterionFilter(skus=["SKU-1"]),
            )
        ],
        period=tpb.Period(kind=typ.PERIOD_KIND_QUARTERLY, start_date="2026-01-01"),
        audience=tpb.Audience(kind=tpb.AUDIENCE_KIND_GROUPS, groups=["north"]),
        rules=[tpb.RewardRule(program="BONUS", percentage=tpb.PercentageRule(percent=D("20")))],
    )
    weekly = tpb.Target(
        code="WEEKLY",
        criteria=[tpb.Criterion(kpi=typ.KPI_TRANSACTION_COUNT, target_value=D("3"))],
        period=tpb.Period(
            kind=typ.PERIOD_KIND_EVERY_N_DAYS, start_date="2026-11-02", every_n_days=7
        ),
        audience=tpb.Audience(kind=tpb.AUDIENCE_KIND_MEMBERS, member_ids=["M-001", "M-002"]),
        rules=[tpb.RewardRule(cap_points=100, per_x=tpb.PerXRule(every=D("1"), points=5))],
    )
    return [nov, quarterly, weekly]


def _sale(
    txn_id: str,
    member: str,
    amounts: list[str],
    kind: int = ppb.TRANSACTION_TYPE_SALE,
    original: str = "",
) -> ppb.Transaction:
    return ppb.Transaction(
        id=txn_id,
        member_id=member,
        occurred_time=ts(NOW),
        store_id="S1",
        type=kind,  # type: ignore[arg-type]
        original_transaction_id=original,
        lines=[line(amount, qty="1") for amount in amounts],
    )


async def _key(api: Api, brand: Brand, role: int, member_id: str = "") -> tpb.CreateApiKeyResponse:
    request = tpb.CreateApiKeyRequest(role=role, member_id=member_id)  # type: ignore[arg-type]
    return await api.targets.CreateApiKey(request, metadata=brand.admin)


async def _page_tokens(api: Api, brand: Brand) -> list[str]:
    """Real next-page tokens of several lists (one row a page), each also with its resume key
    swapped for odd JSON: a token is opaque to clients, but a client can still forge one."""
    a = brand.admin
    responses: list[Any] = [
        await api.targets.ListMembers(tpb.ListMembersRequest(page_size=1), metadata=a),
        await api.targets.ListTargets(tpb.ListTargetsRequest(page_size=1), metadata=a),
        await api.targets.ListApiKeys(tpb.ListApiKeysRequest(page_size=1), metadata=a),
        await api.targets.ListCycles(
            tpb.ListCyclesRequest(target_code="NOV-SALES", page_size=1), metadata=a
        ),
        await api.rewards.ListAwards(rpb.ListAwardsRequest(page_size=1), metadata=a),
        await api.rewards.ListLedgerEntries(
            rpb.ListLedgerEntriesRequest(member_id="M-001", page_size=1), metadata=a
        ),
        await api.progress.ListProgress(
            ppb.ListProgressRequest(target_code="NOV-SALES", page_size=1), metadata=a
        ),
    ]
    real = [r.next_page_token for r in responses if r.next_page_token]
    forged = []
    for token in real[:3]:
        data = json.loads(base64.urlsafe_b64decode(token))
        for after in ([], [None], ["not a time", "x"], [1e308, -1], [[1]], [{"a": 1}], ["\x00"]):
            raw = json.dumps({"a": after, "f": data["f"]}).encode()
            forged.append(base64.urlsafe_b64encode(raw).decode())
    return real + forged


def hints(world: World, other: OtherBrand) -> Hints:
    """A's real names (and some of B's) for the fields that name things."""
    members = [*MEMBERS, other.only_member, "M-404"]
    targets = [*world.targets, other.only_target, "NOPE"]
    cycles = ["2026-11", "2026-10", "2026-12", "2026-Q4", "2026", "2026-11-09", "2026-11-16"]
    cycles += ["", "2026-13", "2026-Q5", "0001-01", "9999-12", "2026-W46"]
    txns = [*world.transactions, other.only_transaction, "T-NEW-1", "T-NEW-2"]
    words: dict[str, list[str]] = {
        "member_id": members,
        "external_id": members,
        "member_ids": members,
        "target_code": targets,
        "code": [*targets, *PROGRAMS, world.brand.code, other.brand.code],
        "Program.code": [*PROGRAMS, "EXTRA"],
        "program": [*PROGRAMS, "", "NOPE"],
        "cycle": cycles,
        "Transaction.id": txns,
        "original_transaction_id": ["", *txns],
        "Criterion.id": ["", "c1", "c2"],
        "RewardRule.id": ["", "r1", "r2"],
        "criterion_id": ["", "c1", "c2"],
        "request_id": ["adj-1", "adj-2", "adj-3"],
        "key_id": [*world.spare_key_ids, *other.key_ids, "nope"],
        "pool": [POOL, "EMPTY-POOL", "NEW-POOL"],
        "voucher_pool": [POOL, "EMPTY-POOL"],
        "codes": ["V1", "V9", "CODE-1", "CODE-2"],
        "page_token": ["", *world.page_tokens],
        "cursor": ["", "0", "1", "3", "-1", "99999999999999999999", "١", "abc"],
        "start_date": ["2026-11-01", "2026-01-01", "2026-11-02", "0001-01-01", "9999-12-31"],
        "end_date": ["", "2026-12-31", "2026-11-30", "0001-01-01", "9999-12-31", "2026-02-30"],
        "sku": ["SKU-1", "SKU-2"],
        "skus": ["SKU-1", "SKU-2"],
        "category": ["food", "drink"],
        "categories": ["food", "drink"],
        "store_id": ["S1", "S2"],
        "stores": ["S1", "S2"],
        "level": ["GOLD", "SILVER", ""],
        "levels": ["GOLD", "SILVER"],
        "group": ["north", "distributor"],
        "groups": ["north", "distributor"],
        "badge": ["B75", "GOLD-STAR"],
        "FieldMask.paths": MASK_PATHS,
        "time_zone": ["Asia/Jakarta", "UTC", "Mars/Phobos", "../../../etc/passwd"],
        "host": ["127.0.0.1", "localhost", "169.254.169.254", "::1", "sftp.example.invalid"],
        "credential_ref": ["env:HOME", "env:ATTAIN_DATABASE_URL", "file:/etc/shadow", ""],
        "host_key": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA", "ssh-rsa AAAA", ""],
        "username": ["attain", "root"],
        "targets_folder": ["/in/targets", "/", "/../..", "in"],
        "transactions_folder": ["/in/transactions", "/etc", "."],
        "processed_folder": ["/done", "/tmp"],
        "failed_folder": ["/failed", "/proc/self"],
        "etag": [""],
    }
    ints: dict[str, st.SearchStrategy[int]] = {
        "page_size": st.sampled_from([0, 1, 2, 1000]),
        "points": st.sampled_from([1, 5, 50, -50, 1000]),
        "cap_points": st.sampled_from([1, 100, 5000]),
        "offset_days": st.sampled_from([0, 0, 3, 366]),
        "every_n_days": st.sampled_from([0, 0, 7, 30]),
        "port": st.sampled_from([22, 2222]),
        "poll_interval_seconds": st.sampled_from([10, 60, 3600]),
    }
    sizes: dict[str, st.SearchStrategy[int]] = {
        "levels": st.integers(0, 2),
        "groups": st.integers(0, 2),
        "member_ids": st.integers(0, 2),
        "skus": st.integers(0, 2),
        "categories": st.integers(0, 1),
        "stores": st.integers(0, 1),
        "criteria": st.integers(1, 2),
        "rules": st.integers(0, 2),
    }
    return Hints(
        strings={name: st.sampled_from(values) for name, values in words.items()},
        ints=ints,
        sizes=sizes,
        now_seconds=int(NOW.timestamp()),
        seeds=seeds(),
    )


def seeds() -> dict[str, list[Message]]:
    """Valid messages to start from, by type: what a careful client would send."""
    fresh = _targets()[0]
    fresh.code = "NEW-SALES"
    value = tpb.TargetValue(member_id="M-002", target_code="NOV-SALES", cycle="2026-11")
    value.value.value = "15000"
    found: list[Message] = [
        *_targets(),
        fresh,
        _sale("T-NEW-1", "M-001", ["2500"]),
        _sale("T-NEW-2", "M-002", ["10", "20.50"]),
        _sale("T-1", "M-001", ["4000"]),  # a duplicate of brand A's first sale
        _sale("R-NEW-1", "M-001", ["500"], ppb.TRANSACTION_TYPE_RETURN, original="T-2"),
        tpb.Member(external_id="M-NEW", display_name="New", level="GOLD", groups=["north"]),
        value,
        tpb.Program(code="EXTRA", display_name="Extra points"),
        tpb.SftpSettings(
            enabled=True,
            host="127.0.0.1",
            port=2222,
            username="attain",
            credential=tpb.SftpCredential(password="fuzz-password"),
            host_key=HOST_KEY,
            targets_folder="/in/targets",
            transactions_folder="/in/transactions",
            processed_folder="/done",
            failed_folder="/failed",
            poll_interval_seconds=60,
        ),
        rpb.AdjustPointsRequest(request_id="adj-new", member_id="M-002", points=25, reason="r"),
        rpb.LoadVouchersRequest(pool=POOL, codes=["NEW-1", "NEW-2"]),
        tpb.CreateApiKeyRequest(role=typ.ROLE_MEMBER, member_id="M-002", label="fuzz"),
    ]
    out: dict[str, list[Message]] = {}
    for message in found:
        out.setdefault(message.DESCRIPTOR.full_name, []).append(message)
    return out


# ---------------------------------------------------------------- brand B


@dataclass
class OtherBrand:
    """Brand B: the same member and target codes as A, plus names of its own that nothing of
    A may ever show (its markers)."""

    brand: Brand
    only_member: str
    only_target: str
    only_transaction: str
    key_ids: list[str]

    @property
    def markers(self) -> list[str]:
        return [
            self.brand.code,
            self.brand.admin_key,
            self.only_member,
            self.only_target,
            self.only_transaction,
            *self.key_ids,
        ]


async def build_other(api: Api) -> OtherBrand:
    brand = await api.new_brand()
    tag = uuid.uuid4().hex[:6].upper()
    other = OtherBrand(brand, f"B-ONLY-M-{tag}", f"B-ONLY-T-{tag}", f"B-ONLY-TX-{tag}", [])
    a = brand.admin
    for member_id in ("M-001", other.only_member):
        await api.targets.UpsertMember(
            tpb.UpsertMemberRequest(member=tpb.Member(external_id=member_id, level="GOLD")),
            metadata=a,
        )
    for code in ("NOV-SALES", other.only_target):
        await api.targets.CreateTarget(
            tpb.CreateTargetRequest(target=monthly_target(code, value="1000")), metadata=a
        )
    for txn in (
        _sale("T-1", "M-001", ["400"]),
        _sale(other.only_transaction, other.only_member, ["1500"]),
    ):
        await api.progress.RecordTransaction(
            ppb.RecordTransactionRequest(transaction=txn), metadata=a
        )
    await api.rewards.AdjustPoints(
        rpb.AdjustPointsRequest(request_id="adj-1", member_id="M-001", points=7, reason="b"),
        metadata=a,
    )
    key = await _key(api, brand, typ.ROLE_INGEST)
    other.key_ids = [key.api_key.key_id]
    return other


async def api_view(api: Api, other: OtherBrand) -> list[Message]:
    """What B's admin reads through the API: members, targets, cycles, progress, awards,
    balances, ledgers, keys, programs and vouchers."""
    a = other.brand.admin
    t, p, r = api.targets, api.progress, api.rewards
    view: list[Message] = [
        await t.GetBrand(tpb.GetBrandRequest(), metadata=a),
        await t.ListMembers(tpb.ListMembersRequest(page_size=1000), metadata=a),
        await t.ListTargets(tpb.ListTargetsRequest(page_size=1000, show_archived=True), metadata=a),
        await t.ListPrograms(tpb.ListProgramsRequest(), metadata=a),
        await t.ListApiKeys(tpb.ListApiKeysRequest(page_size=1000), metadata=a),
        await r.ListAwards(rpb.ListAwardsRequest(page_size=1000), metadata=a),
        await r.ListVoucherPools(rpb.ListVoucherPoolsRequest(), metadata=a),
    ]
    for code in ("NOV-SALES", other.only_target):
        view.append(await t.ListCycles(tpb.ListCyclesRequest(target_code=code), metadata=a))
        view.append(await p.ListProgress(ppb.ListProgressRequest(target_code=code), metadata=a))
    for member_id in ("M-001", other.only_member):
        view.append(await r.GetBalance(rpb.GetBalanceRequest(member_id=member_id), metadata=a))
        view.append(
            await r.ListLedgerEntries(rpb.ListLedgerEntriesRequest(member_id=member_id), metadata=a)
        )
    return view


# ---------------------------------------------------------------- snapshots


async def rows_of(db: Database, brand: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table that belongs to `brand`, in a stable order: what a call that
    failed must not have changed."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with db.read() as s:
        for table in SQLModel.metadata.sorted_tables:
            column = table.c.get("brand_code")
            if column is None:
                column = table.c.code if table.name == "brand" else None
            if column is None:
                continue
            # Every column (sqlmodel's select of one table would give the first one alone).
            query = select(*table.columns).where(column == brand)
            rows = (await s.exec(query)).all()  # type: ignore[call-overload]
            out[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return out


def differences(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> list[str]:
    """Per table, the rows that appeared or vanished (a changed row is both), abbreviated."""
    found = []
    for table in sorted(set(before) | set(after)):
        old, new = set(map(repr, before.get(table, []))), set(map(repr, after.get(table, [])))
        for sign, rows in (("+", new - old), ("-", old - new)):
            for row in sorted(rows)[:3]:
                found.append(f"{table} {sign} {row[:300]}")
    return found
