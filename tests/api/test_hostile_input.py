"""Hostile input through the real server, on both databases: every bad value is refused
with INVALID_ARGUMENT naming its field, short, and never INTERNAL, UNKNOWN or a class name."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from attain.v1 import progress_pb2 as ppb
from attain.v1 import rewards_pb2 as rpb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from conftest import Api, Brand
from support import D, Failure, fails, monthly_target, sale

# DEL, a C1 control (NEXT LINE), a bidi override, a zero-width space.
INVISIBLE = ["\x7f", "\x85", "\u202e", "\u200b"]


def refused(failure: Failure, *fields: str) -> None:
    """The call failed as bad input naming every one of ``fields``, in a short message."""
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT, failure
    assert set(fields) <= set(failure.violations), failure
    assert len(failure.message) < 600, len(failure.message)


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
async def test_identifiers_refuse_controls_and_invisible_characters(
    api: Api, brand: Brand, char: str
) -> None:
    bad = f"M{char}1"
    member = tpb.Member(external_id=bad, level=bad, groups=["north", bad])
    refused(
        await fails(
            api.targets.UpsertMember(tpb.UpsertMemberRequest(member=member), metadata=brand.admin)
        ),
        "member.external_id",
        "member.level",
        "member.groups[1]",
    )
    target = monthly_target(
        "INVISIBLE",
        audience=tpb.Audience(kind=tpb.AUDIENCE_KIND_GROUPS, groups=[bad]),
        rules=[
            tpb.RewardRule(
                levels=[bad], fixed=tpb.FixedRule(incentive=typ.Incentive(badge=f"Star{char}"))
            )
        ],
    )
    target.criteria[0].filter.skus.append(bad)
    failure = await fails(
        api.targets.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=brand.admin)
    )
    refused(
        failure,
        "target.criteria[0].filter.skus[0]",
        "target.audience.groups[0]",
        "target.rules[0].levels[0]",
        "target.rules[0].fixed.incentive.badge",
    )
    assert f"U+{ord(char):04X}" in failure.violations["target.audience.groups[0]"]
    vouchers = rpb.LoadVouchersRequest(pool="POOL", codes=["GOOD-1", f"CODE{char}"])
    refused(await fails(api.rewards.LoadVouchers(vouchers, metadata=brand.admin)), "codes[1]")
    nothing = await api.targets.ListMembers(tpb.ListMembersRequest(), metadata=brand.admin)
    assert list(nothing.members) == []  # refused writes stored nothing


async def test_a_code_with_a_trailing_newline_is_refused(api: Api, brand: Brand) -> None:
    program = tpb.Program(code="EXTRA\n")
    refused(
        await fails(
            api.targets.CreateProgram(
                tpb.CreateProgramRequest(program=program), metadata=brand.admin
            )
        ),
        "program.code",
    )


async def test_nul_in_free_text_is_refused_and_nothing_stored(api: Api, brand: Brand) -> None:
    member = tpb.Member(external_id="M-001", display_name="Toko\x00Maju")
    refused(
        await fails(
            api.targets.UpsertMember(tpb.UpsertMemberRequest(member=member), metadata=brand.admin)
        ),
        "member.display_name",
    )
    # Tabs and newlines are text; the member is stored with them.
    member.display_name = "Toko\tMaju\nJakarta"
    await api.targets.UpsertMember(tpb.UpsertMemberRequest(member=member), metadata=brand.admin)
    adjust = rpb.AdjustPointsRequest(
        request_id="ADJ-1", member_id="M-001", points=5, reason="goodwill\x00"
    )
    refused(await fails(api.rewards.AdjustPoints(adjust, metadata=brand.admin)), "reason")
    listed = await api.rewards.ListLedgerEntries(
        rpb.ListLedgerEntriesRequest(member_id="M-001"), metadata=brand.admin
    )
    assert list(listed.entries) == []
    refused(
        await fails(
            api.targets.UpdateBrand(
                tpb.UpdateBrandRequest(
                    brand=tpb.Brand(display_name="\x00"),
                    update_mask=FieldMask(paths=["display_name"]),
                ),
                metadata=brand.admin,
            )
        ),
        "brand.display_name",
    )


async def test_nul_in_a_lookup_is_refused_before_the_database(api: Api, brand: Brand) -> None:
    """PostgreSQL refuses a NUL in a parameter: such a name must never reach it."""
    t, r = api.targets, api.rewards
    admin = brand.admin
    calls: list[tuple[Any, str]] = [
        (t.GetTarget(tpb.GetTargetRequest(code="A\x00"), metadata=admin), "code"),
        (t.GetMember(tpb.GetMemberRequest(external_id="M\x00"), metadata=admin), "external_id"),
        (t.ListMembers(tpb.ListMembersRequest(group="g\x00"), metadata=admin), "group"),
        (t.RevokeApiKey(tpb.RevokeApiKeyRequest(key_id="k\x00"), metadata=admin), "key_id"),
        (r.GetBalance(rpb.GetBalanceRequest(member_id="M\x00"), metadata=admin), "member_id"),
        (r.ListAwards(rpb.ListAwardsRequest(cycle="2026-11\x00"), metadata=admin), "cycle"),
    ]
    for call, field in calls:
        refused(await fails(call), field)
    watch: Any = api.progress.WatchProgress(
        ppb.WatchProgressRequest(member_id="M-001", target_code="T\x00"), metadata=admin
    )
    refused(await fails(watch.read()), "target_code")


async def test_decimals_take_ascii_digits_only(api: Api, brand: Brand) -> None:
    target = monthly_target("ARABIC", value="١٢")
    refused(
        await fails(
            api.targets.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=brand.admin)
        ),
        "target.criteria[0].target_value.value",
    )


def _criteria(n: int) -> list[tpb.Criterion]:
    return [
        tpb.Criterion(id=f"c{i}", kpi=typ.KPI_TRANSACTION_AMOUNT, target_value=D("10"))
        for i in range(n)
    ]


def _fixed_rules(n: int) -> list[tpb.RewardRule]:
    return [
        tpb.RewardRule(id=f"r{i}", fixed=tpb.FixedRule(incentive=typ.Incentive(points=1)))
        for i in range(n)
    ]


def _milestones(n: int) -> list[tpb.RewardRule]:
    steps = [
        tpb.Milestone(attainment_percent=D(str(i + 1)), incentive=typ.Incentive(points=1))
        for i in range(n)
    ]
    return [tpb.RewardRule(milestones=tpb.MilestonesRule(milestones=steps))]


def _too_big(what: str) -> tuple[tpb.Target, str]:
    target = monthly_target("HUGE")
    if what == "criteria":
        del target.criteria[:]
        target.criteria.extend(_criteria(21))
        return target, "target.criteria"
    if what == "rules":
        del target.rules[:]
        target.rules.extend(_fixed_rules(51))
        return target, "target.rules"
    if what == "milestones":
        del target.rules[:]
        target.rules.extend(_milestones(101))
        return target, "target.rules[0].milestones.milestones"
    if what == "skus":
        target.criteria[0].filter.skus.extend(f"SKU-{i}" for i in range(1001))
        return target, "target.criteria[0].filter.skus"
    if what == "levels":
        for i in range(101):
            target.criteria[0].level_target_values[f"L{i}"].value = "5"
        return target, "target.criteria[0].level_target_values"
    if what == "rule_levels":
        target.rules[0].levels.extend(f"L{i}" for i in range(101))
        return target, "target.rules[0].levels"
    assert what == "groups"
    target.audience.kind = tpb.AUDIENCE_KIND_GROUPS
    target.audience.groups.extend(f"g{i}" for i in range(101))
    return target, "target.audience.groups"


@pytest.mark.parametrize(
    "what", ["criteria", "rules", "milestones", "skus", "levels", "rule_levels", "groups"]
)
async def test_a_target_past_its_limits_is_refused_naming_the_field(
    api: Api, brand: Brand, what: str
) -> None:
    target, field = _too_big(what)
    failure = await fails(
        api.targets.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=brand.admin)
    )
    refused(failure, field)
    assert "at most" in failure.violations[field]
    # The same definition through UpdateTarget is refused the same way.
    await api.targets.CreateTarget(
        tpb.CreateTargetRequest(target=monthly_target("HUGE")), metadata=brand.admin
    )
    update = tpb.UpdateTargetRequest(target=target, update_mask=FieldMask(paths=["*"]))
    refused(await fails(api.targets.UpdateTarget(update, metadata=brand.admin)), field)


async def test_a_voucher_load_is_bounded_per_call(api: Api, brand: Brand) -> None:
    codes = [f"V-{i}" for i in range(10_001)]
    failure = await fails(
        api.rewards.LoadVouchers(
            rpb.LoadVouchersRequest(pool="POOL", codes=codes), metadata=brand.admin
        )
    )
    refused(failure, "codes")
    pools = await api.rewards.ListVoucherPools(rpb.ListVoucherPoolsRequest(), metadata=brand.admin)
    assert list(pools.pools) == []


async def test_a_megabyte_of_input_gets_a_short_invalid_argument(api: Api, brand: Brand) -> None:
    huge = "M" * 1_000_000
    for call, field in (
        (
            api.targets.GetMember(tpb.GetMemberRequest(external_id=huge), metadata=brand.admin),
            "external_id",
        ),
        (api.targets.GetTarget(tpb.GetTargetRequest(code=huge), metadata=brand.admin), "code"),
        (
            api.targets.CreateApiKey(
                tpb.CreateApiKeyRequest(role=typ.ROLE_MEMBER, member_id=huge),
                metadata=brand.admin,
            ),
            "member_id",
        ),
    ):
        refused(await fails(call), field)


# ---------------------------------------------------------------- undecodable requests

# An UpsertMemberRequest whose member.external_id holds the byte 0xFF (not UTF-8), and
# bytes that are no protobuf message at all.
BAD_UTF8 = b"\x0a\x03\x0a\x01\xff"
CORRUPT = b"\xff\xff\xff\xff"


@pytest.mark.parametrize("payload", [BAD_UTF8, CORRUPT], ids=["bad-utf8", "corrupt"])
async def test_undecodable_unary_request_is_invalid_argument(
    api: Api, brand: Brand, payload: bytes
) -> None:
    raw: Any = api.channel.unary_unary("/attain.v1.TargetService/UpsertMember")
    failure = await fails(raw(payload, metadata=brand.admin, timeout=10))
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT, failure
    assert "attain.v1.UpsertMemberRequest" in failure.message
    assert "class" not in failure.message and "DecodeError" not in failure.message
    # Without a key the gate answers first, as for any call.
    stranger = await fails(raw(payload, timeout=10))
    assert stranger.code is grpc.StatusCode.UNAUTHENTICATED


async def _messages(*payloads: bytes) -> AsyncIterator[bytes]:
    for payload in payloads:
        yield payload


async def test_undecodable_message_in_a_stream_is_invalid_argument(api: Api, brand: Brand) -> None:
    await api.targets.UpsertMember(
        tpb.UpsertMemberRequest(member=tpb.Member(external_id="M-001")), metadata=brand.admin
    )
    good = ppb.RecordTransactionsRequest(transactions=[sale("T1", "10")]).SerializeToString()
    raw: Any = api.channel.stream_unary("/attain.v1.ProgressService/RecordTransactions")
    for payloads, index in (((CORRUPT,), 0), ((good, BAD_UTF8), 1)):
        failure = await fails(raw(_messages(*payloads), metadata=brand.admin, timeout=10))
        assert failure.code is grpc.StatusCode.INVALID_ARGUMENT, failure
        assert f"message {index} of the request stream" in failure.message
        assert "attain.v1.RecordTransactionsRequest" in failure.message
        assert "class" not in failure.message


# ---------------------------------------------------------------- cursors and page tokens


@pytest.mark.parametrize("cursor", [" 5", "٣", "+5", "99999999999999999999", "5\n"])
async def test_award_stream_refuses_cursors_it_never_gave(
    api: Api, brand: Brand, cursor: str
) -> None:
    stream: Any = api.rewards.WatchAwards(
        rpb.WatchAwardsRequest(cursor=cursor), metadata=brand.admin, timeout=10
    )
    refused(await fails(stream.read()), "cursor")


def _token(after: list[Any], **filters: Any) -> str:
    """A token shaped like the server's, with its filters' fingerprint: what a forger makes."""
    fingerprint = hashlib.sha256(
        json.dumps(filters, sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    raw = json.dumps({"a": after, "f": fingerprint}).encode()
    return base64.urlsafe_b64encode(raw).decode()


async def test_forged_page_tokens_are_invalid_argument(api: Api, brand: Brand) -> None:
    await api.targets.CreateTarget(
        tpb.CreateTargetRequest(target=monthly_target("T1")), metadata=brand.admin
    )
    t, admin = api.targets, brand.admin
    calls: list[Any] = [
        t.ListTargets(
            tpb.ListTargetsRequest(page_token=_token([10**30], archived=False)), metadata=admin
        ),
        t.ListTargets(
            tpb.ListTargetsRequest(page_token=_token([1], archived=False)), metadata=admin
        ),
        t.ListCycles(
            tpb.ListCyclesRequest(target_code="T1", page_token=_token(["x"], target="T1")),
            metadata=admin,
        ),
        t.ListCycles(
            tpb.ListCyclesRequest(target_code="T1", page_token=_token([-3], target="T1")),
            metadata=admin,
        ),
        api.rewards.ListAwards(
            rpb.ListAwardsRequest(
                page_token=_token(["not a time", "x"], member="", target="", cycle="", kind="")
            ),
            metadata=admin,
        ),
        t.ListTargetValues(
            tpb.ListTargetValuesRequest(
                target_code="T1", page_token=_token(["2026-11"], target="T1", cycle="")
            ),
            metadata=admin,
        ),
        t.ListPrograms(tpb.ListProgramsRequest(page_token="A" * 100_000), metadata=admin),
        # Short enough to be read, nested past what json.loads recurses through.
        t.ListPrograms(
            tpb.ListProgramsRequest(page_token=base64.urlsafe_b64encode(b"[" * 1500).decode()),
            metadata=admin,
        ),
    ]
    for call in calls:
        refused(await fails(call), "page_token")
