"""TargetService over a real channel to a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_worker import clock as cycle_clock
from conftest import Api, Brand, FakeClock
from support import D, auth, fails, monthly_target


async def test_get_and_update_brand(api: Api, brand: Brand) -> None:
    got = await api.targets.GetBrand(tpb.GetBrandRequest(), metadata=brand.admin)
    assert (got.brand.code, got.brand.time_zone) == (brand.code, "Asia/Jakarta")
    updated = await api.targets.UpdateBrand(
        tpb.UpdateBrandRequest(
            brand=tpb.Brand(display_name="Acme Corp"), update_mask=FieldMask(paths=["display_name"])
        ),
        metadata=brand.admin,
    )
    assert updated.brand.display_name == "Acme Corp"
    bad = await fails(
        api.targets.UpdateBrand(
            tpb.UpdateBrandRequest(update_mask=FieldMask(paths=["time_zone"])), metadata=brand.admin
        )
    )
    assert bad.code is grpc.StatusCode.INVALID_ARGUMENT and "update_mask" in bad.violations


async def test_api_keys_create_list_revoke(api: Api, brand: Brand) -> None:
    created = await api.targets.CreateApiKey(
        tpb.CreateApiKeyRequest(role=typ.ROLE_INGEST, label="pos"), metadata=brand.admin
    )
    assert created.secret.startswith("atn_") and created.api_key.role == typ.ROLE_INGEST
    listed = await api.targets.ListApiKeys(tpb.ListApiKeysRequest(), metadata=brand.admin)
    assert {k.key_id for k in listed.api_keys} >= {created.api_key.key_id}
    assert all("atn_" not in str(k) for k in listed.api_keys)  # secrets are never listed
    # The new key works for what its role allows ...
    await api.targets.GetBrand(tpb.GetBrandRequest(), metadata=auth(created.secret))
    revoked = await api.targets.RevokeApiKey(
        tpb.RevokeApiKeyRequest(key_id=created.api_key.key_id), metadata=brand.admin
    )
    assert revoked.api_key.HasField("revoke_time")
    # ... and is refused once revoked.
    refused = await fails(
        api.targets.GetBrand(tpb.GetBrandRequest(), metadata=auth(created.secret))
    )
    assert refused.code is grpc.StatusCode.UNAUTHENTICATED


async def test_api_key_validation(api: Api, brand: Brand) -> None:
    no_role = await fails(api.targets.CreateApiKey(tpb.CreateApiKeyRequest(), metadata=brand.admin))
    assert set(no_role.violations) == {"role"}
    no_member = await fails(
        api.targets.CreateApiKey(
            tpb.CreateApiKeyRequest(role=typ.ROLE_MEMBER), metadata=brand.admin
        )
    )
    assert no_member.violations == {"member_id": "is required for a ROLE_MEMBER key"}
    unknown = await fails(
        api.targets.CreateApiKey(
            tpb.CreateApiKeyRequest(role=typ.ROLE_MEMBER, member_id="nobody"), metadata=brand.admin
        )
    )
    assert unknown.violations == {"member_id": "unknown member 'nobody'"}
    missing = await fails(
        api.targets.RevokeApiKey(tpb.RevokeApiKeyRequest(key_id="nope"), metadata=brand.admin)
    )
    assert missing.code is grpc.StatusCode.NOT_FOUND


async def test_programs(api: Api, brand: Brand) -> None:
    listed = await api.targets.ListPrograms(tpb.ListProgramsRequest(), metadata=brand.admin)
    assert [(p.code, p.is_default) for p in listed.programs] == [("POINTS", True)]
    created = await api.targets.CreateProgram(
        tpb.CreateProgramRequest(program=tpb.Program(code="STARS", display_name="Stars")),
        metadata=brand.admin,
    )
    assert created.program.code == "STARS" and not created.program.is_default
    dup = await fails(
        api.targets.CreateProgram(
            tpb.CreateProgramRequest(program=tpb.Program(code="STARS")), metadata=brand.admin
        )
    )
    assert dup.code is grpc.StatusCode.ALREADY_EXISTS
    made_default = await api.targets.UpdateProgram(
        tpb.UpdateProgramRequest(
            program=tpb.Program(code="STARS", is_default=True),
            update_mask=FieldMask(paths=["is_default"]),
        ),
        metadata=brand.admin,
    )
    assert made_default.program.is_default
    listed = await api.targets.ListPrograms(tpb.ListProgramsRequest(), metadata=brand.admin)
    assert {p.code: p.is_default for p in listed.programs} == {"POINTS": False, "STARS": True}
    got = await api.targets.GetProgram(tpb.GetProgramRequest(code="POINTS"), metadata=brand.admin)
    assert got.program.display_name == "POINTS"
    unset = await fails(
        api.targets.UpdateProgram(
            tpb.UpdateProgramRequest(
                program=tpb.Program(code="STARS", is_default=False),
                update_mask=FieldMask(paths=["is_default"]),
            ),
            metadata=brand.admin,
        )
    )
    assert "program.is_default" in unset.violations
    bad = await fails(
        api.targets.CreateProgram(
            tpb.CreateProgramRequest(program=tpb.Program(code="has space")), metadata=brand.admin
        )
    )
    assert "program.code" in bad.violations


async def test_members_upsert_get_list_paginated(api: Api, brand: Brand) -> None:
    first = await api.targets.UpsertMember(
        tpb.UpsertMemberRequest(
            member=tpb.Member(external_id="M-001", level="GOLD", groups=["distributor", "north"])
        ),
        metadata=brand.admin,
    )
    assert first.created and first.member.level == "GOLD"
    again = await api.targets.UpsertMember(
        tpb.UpsertMemberRequest(member=tpb.Member(external_id="M-001", level="SILVER")),
        metadata=brand.admin,
    )
    assert not again.created and again.member.level == "SILVER" and list(again.member.groups) == []
    assert again.member.create_time == first.member.create_time
    for i in range(2, 8):
        await api.targets.UpsertMember(
            tpb.UpsertMemberRequest(
                member=tpb.Member(
                    external_id=f"M-{i:03}",
                    level="GOLD" if i % 2 else "SILVER",
                    groups=["north"] if i % 3 == 0 else [],
                )
            ),
            metadata=brand.admin,
        )
    got = await api.targets.GetMember(
        tpb.GetMemberRequest(external_id="M-003"), metadata=brand.admin
    )
    assert list(got.member.groups) == ["north"]
    seen: list[str] = []
    token = ""
    while True:
        page = await api.targets.ListMembers(
            tpb.ListMembersRequest(page_size=3, page_token=token), metadata=brand.admin
        )
        assert len(page.members) <= 3
        seen += [m.external_id for m in page.members]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"M-{i:03}" for i in range(1, 8)]
    gold = await api.targets.ListMembers(tpb.ListMembersRequest(level="GOLD"), metadata=brand.admin)
    assert [m.external_id for m in gold.members] == ["M-003", "M-005", "M-007"]
    north = await api.targets.ListMembers(
        tpb.ListMembersRequest(group="north", page_size=1), metadata=brand.admin
    )
    assert [m.external_id for m in north.members] == ["M-003"] and north.next_page_token
    north2 = await api.targets.ListMembers(
        tpb.ListMembersRequest(group="north", page_size=1, page_token=north.next_page_token),
        metadata=brand.admin,
    )
    assert [m.external_id for m in north2.members] == ["M-006"]
    wrong_token = await fails(
        api.targets.ListMembers(
            tpb.ListMembersRequest(level="GOLD", page_token=north.next_page_token),
            metadata=brand.admin,
        )
    )
    assert "page_token" in wrong_token.violations
    negative = await fails(
        api.targets.ListMembers(tpb.ListMembersRequest(page_size=-1), metadata=brand.admin)
    )
    assert negative.violations == {"page_size": "must not be negative"}
    missing = await fails(
        api.targets.GetMember(tpb.GetMemberRequest(external_id="M-999"), metadata=brand.admin)
    )
    assert missing.code is grpc.StatusCode.NOT_FOUND


async def test_member_validation(api: Api, brand: Brand) -> None:
    bad = await fails(
        api.targets.UpsertMember(
            tpb.UpsertMemberRequest(
                member=tpb.Member(external_id="", level=" GOLD", groups=["a", "a"])
            ),
            metadata=brand.admin,
        )
    )
    assert bad.violations == {
        "member.external_id": "is required",
        "member.level": "must not start or end with spaces",
        "member.groups[1]": "'a' is listed twice",
    }


async def test_concurrent_upserts_of_one_member_make_one_row(api: Api, brand: Brand) -> None:
    results = await asyncio.gather(
        *(
            api.targets.UpsertMember(
                tpb.UpsertMemberRequest(member=tpb.Member(external_id="RACE", level=f"L{i}")),
                metadata=brand.admin,
            )
            for i in range(8)
        )
    )
    assert sum(r.created for r in results) == 1
    listed = await api.targets.ListMembers(tpb.ListMembersRequest(), metadata=brand.admin)
    assert [m.external_id for m in listed.members] == ["RACE"]


async def test_target_create_get_list_update_archive(api: Api, brand: Brand) -> None:
    created = await api.targets.CreateTarget(
        tpb.CreateTargetRequest(target=monthly_target()), metadata=brand.admin
    )
    t = created.target
    assert t.code == "NOV-SALES" and t.state == tpb.TARGET_STATE_ACTIVE and t.etag == "v1"
    assert t.criteria[0].id == "c1" and t.criteria[0].target_value.value == "10000.00"
    assert t.rules[0].id == "r1" and t.rules[0].fixed.threshold_percent.value == "100"
    assert t.audience.kind == tpb.AUDIENCE_KIND_ALL_MEMBERS

    got = await api.targets.GetTarget(tpb.GetTargetRequest(code="NOV-SALES"), metadata=brand.admin)
    assert got.target == t

    dup = await fails(
        api.targets.CreateTarget(
            tpb.CreateTargetRequest(target=monthly_target()), metadata=brand.admin
        )
    )
    assert dup.code is grpc.StatusCode.ALREADY_EXISTS

    patch = tpb.Target(code="NOV-SALES", display_name="Renamed", offset_days=3, etag="v1")
    updated = await api.targets.UpdateTarget(
        tpb.UpdateTargetRequest(
            target=patch, update_mask=FieldMask(paths=["display_name", "offset_days"])
        ),
        metadata=brand.admin,
    )
    u = updated.target
    assert (u.display_name, u.offset_days, u.etag) == ("Renamed", 3, "v2")
    assert u.criteria == t.criteria  # fields outside the mask stay as they were

    stale = await fails(
        api.targets.UpdateTarget(
            tpb.UpdateTargetRequest(target=patch, update_mask=FieldMask(paths=["display_name"])),
            metadata=brand.admin,
        )
    )
    assert stale.code is grpc.StatusCode.ABORTED and stale.reason == "ETAG_MISMATCH"

    bad_mask = await fails(
        api.targets.UpdateTarget(
            tpb.UpdateTargetRequest(
                target=tpb.Target(code="NOV-SALES"), update_mask=FieldMask(paths=["code"])
            ),
            metadata=brand.admin,
        )
    )
    assert "update_mask" in bad_mask.violations

    invalid_update = await fails(
        api.targets.UpdateTarget(
            tpb.UpdateTargetRequest(
                target=tpb.Target(code="NOV-SALES", offset_days=-1),
                update_mask=FieldMask(paths=["offset_days"]),
            ),
            metadata=brand.admin,
        )
    )
    assert invalid_update.violations == {"target.offset_days": "must be between 0 and 366"}

    await api.targets.CreateTarget(
        tpb.CreateTargetRequest(target=monthly_target("A-FIRST")), metadata=brand.admin
    )
    archived = await api.targets.ArchiveTarget(
        tpb.ArchiveTargetRequest(code="A-FIRST"), metadata=brand.admin
    )
    assert archived.target.state == tpb.TARGET_STATE_ARCHIVED
    active = await api.targets.ListTargets(tpb.ListTargetsRequest(), metadata=brand.admin)
    assert [x.code for x in active.targets] == ["NOV-SALES"]
    everything = await api.targets.ListTargets(
        tpb.ListTargetsRequest(show_archived=True, page_size=1), metadata=brand.admin
    )
    assert [x.code for x in everything.targets] == ["A-FIRST"] and everything.next_page_token
    archived_update = await fails(
        api.targets.UpdateTarget(
            tpb.UpdateTargetRequest(
                target=tpb.Target(code="A-FIRST", display_name="x"),
                update_mask=FieldMask(paths=["display_name"]),
            ),
            metadata=brand.admin,
        )
    )
    assert archived_update.code is grpc.StatusCode.FAILED_PRECONDITION


async def test_every_rule_kind_and_period_round_trips(api: Api, brand: Brand) -> None:
    await api.targets.CreateProgram(
        tpb.CreateProgramRequest(program=tpb.Program(code="STARS")), metadata=brand.admin
    )
    target = tpb.Target(
        code="EVERYTHING",
        criteria=[
            tpb.Criterion(
                id="qty",
                kpi=typ.KPI_SKU_QUANTITY,
                target_value=D("100"),
                level_target_values={"GOLD": D("200"), "SILVER": D("150.5")},
                filter=tpb.CriterionFilter(
                    skus=["SKU-9"],
                    stores=["S1"],
                    categories=["oil"],
                    min_transaction_amount=D("10"),
                    min_transaction_quantity=D("10.5"),
                ),
            ),
            tpb.Criterion(kpi=typ.KPI_VISIT_COUNT, target_value=D("5")),
        ],
        period=tpb.Period(
            kind=typ.PERIOD_KIND_EVERY_N_DAYS,
            start_date="2026-01-05",
            end_date="2026-12-31",
            every_n_days=90,
        ),
        offset_days=7,
        audience=tpb.Audience(kind=tpb.AUDIENCE_KIND_GROUPS, groups=["distributor"]),
        rules=[
            tpb.RewardRule(
                id="pct",
                percentage=tpb.PercentageRule(percent=D("20")),
                program="STARS",
                levels=["GOLD"],
                cap_points=5000,
            ),
            tpb.RewardRule(
                per_x=tpb.PerXRule(every=D("10"), points=5),
                min_attainment_percent=D("0"),
                rounding=tpb.ROUNDING_HALF_UP,
            ),
            tpb.RewardRule(
                milestones=tpb.MilestonesRule(
                    milestones=[
                        tpb.Milestone(
                            attainment_percent=D("50"), incentive=typ.Incentive(points=50)
                        ),
                        tpb.Milestone(
                            attainment_percent=D("75"),
                            incentive=typ.Incentive(voucher_pool="NOV-10-OFF"),
                        ),
                        tpb.Milestone(
                            attainment_percent=D("100"), incentive=typ.Incentive(badge="Champion")
                        ),
                    ]
                ),
                reversal_policy=tpb.REVERSAL_POLICY_REVERSE_AT_CLOSE,
            ),
            tpb.RewardRule(
                fixed=tpb.FixedRule(threshold_percent=D("120"), incentive=typ.Incentive(points=10))
            ),
        ],
    )
    created = (
        await api.targets.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=brand.admin)
    ).target
    assert [c.id for c in created.criteria] == ["qty", "c2"]
    assert [r.id for r in created.rules] == ["pct", "r2", "r3", "r4"]
    assert created.criteria[0].level_target_values["SILVER"].value == "150.5"
    assert created.criteria[0].filter.min_transaction_quantity.value == "10.5"
    assert created.rules[0].cap_points == 5000 and not created.rules[1].HasField("cap_points")
    assert created.rules[1].rounding == tpb.ROUNDING_HALF_UP
    assert created.rules[2].milestones.milestones[1].incentive.voucher_pool == "NOV-10-OFF"
    assert created.period.every_n_days == 90 and created.period.end_date == "2026-12-31"
    got = await api.targets.GetTarget(tpb.GetTargetRequest(code="EVERYTHING"), metadata=brand.admin)
    assert got.target == created


async def test_target_validation_names_every_bad_field(api: Api, brand: Brand) -> None:
    target = tpb.Target(
        code="BAD TARGET",
        criteria=[
            tpb.Criterion(kpi=typ.KPI_SKU_AMOUNT, target_value=D("-5")),
            tpb.Criterion(target_value=D("1e3")),
            tpb.Criterion(id="c1", kpi=typ.KPI_TRANSACTION_COUNT),
        ],
        period=tpb.Period(kind=typ.PERIOD_KIND_CUSTOM, start_date="2026-02-30"),
        offset_days=400,
        audience=tpb.Audience(kind=tpb.AUDIENCE_KIND_GROUPS),
        rules=[
            tpb.RewardRule(percentage=tpb.PercentageRule(percent=D("0"))),
            tpb.RewardRule(
                milestones=tpb.MilestonesRule(
                    milestones=[
                        tpb.Milestone(
                            attainment_percent=D("75"), incentive=typ.Incentive(points=1)
                        ),
                        tpb.Milestone(
                            attainment_percent=D("50"), incentive=typ.Incentive(points=1)
                        ),
                        tpb.Milestone(attainment_percent=D("80")),
                    ]
                )
            ),
            tpb.RewardRule(program="NOPE", per_x=tpb.PerXRule(every=D("0"), points=0)),
            tpb.RewardRule(),
        ],
    )
    bad = await fails(
        api.targets.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=brand.admin)
    )
    assert bad.code is grpc.StatusCode.INVALID_ARGUMENT
    assert bad.reason == "INVALID_ARGUMENT"
    # Format errors come first (the request could not be read); then the rules of the product.
    assert bad.violations == {
        "target.criteria[1].kpi": "is required (one of TRANSACTION_AMOUNT, SKU_AMOUNT, "
        "SKU_QUANTITY, TRANSACTION_COUNT, VISIT_COUNT, DISTINCT_CATEGORIES)",
        "target.criteria[1].target_value.value": "'1e3' is not a decimal number like 1234.50",
        "target.criteria[2].target_value": "is required",
        "target.period.start_date": "'2026-02-30' is not a date like 2026-11-01",
        "target.rules[1].milestones.milestones[2].incentive": (
            "is required: set points, voucher_pool or badge"
        ),
        "target.rules[3]": "set one rule kind: fixed, percentage, per_x or milestones",
    }
    # With the format fixed, the semantic checks speak.
    target.criteria[1].target_value.value = "1000"
    target.criteria[1].kpi = typ.KPI_TRANSACTION_AMOUNT
    target.criteria[2].target_value.value = "10"
    target.period.start_date = "2026-02-01"
    target.rules[1].milestones.milestones[2].incentive.points = 5
    del target.rules[3]
    bad = await fails(
        api.targets.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=brand.admin)
    )
    assert bad.violations == {
        "target.code": "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter "
        "or digit",
        "target.criteria[0].target_value": "must be greater than 0",
        "target.criteria[0].filter.skus": "must name at least one SKU for SKU_AMOUNT",
        "target.criteria[2].id": "'c1' is used by another criterion",
        "target.period.end_date": "is required for a CUSTOM period",
        "target.offset_days": "must be between 0 and 366",
        "target.audience.groups": "name at least one group for a GROUPS audience",
        "target.rules[0].percentage.percent": "must be greater than 0 and at most 1,000,000",
        "target.rules[1].milestones.milestones[1].attainment_percent": (
            "milestones must increase: 50 follows 75"
        ),
        "target.rules[2].program": "unknown program 'NOPE'",
        "target.rules[2].per_x.every": ("must be greater than 0 and at most 1,000,000,000,000,000"),
        "target.rules[2].per_x.points": "must be a whole number from 1 to 1,000,000,000,000",
    }


async def test_target_values_set_and_list(api: Api, brand: Brand) -> None:
    await api.targets.CreateTarget(
        tpb.CreateTargetRequest(target=monthly_target()), metadata=brand.admin
    )
    for member in ("M-001", "M-002"):
        await api.targets.UpsertMember(
            tpb.UpsertMemberRequest(member=tpb.Member(external_id=member)), metadata=brand.admin
        )
    values = [
        tpb.TargetValue(
            member_id="M-001", target_code="NOV-SALES", cycle="2026-11", value=D("12000")
        ),
        tpb.TargetValue(
            member_id="M-002", target_code="NOV-SALES", cycle="2026-11", value=D("8000.50")
        ),
    ]
    first = await api.targets.SetTargetValues(
        tpb.SetTargetValuesRequest(values=values), metadata=brand.admin
    )
    assert (first.written, first.unchanged) == (2, 0)
    values[1].value.value = "9000"
    second = await api.targets.SetTargetValues(
        tpb.SetTargetValuesRequest(values=values), metadata=brand.admin
    )
    assert (second.written, second.unchanged) == (1, 1)
    listed = await api.targets.ListTargetValues(
        tpb.ListTargetValuesRequest(target_code="NOV-SALES", cycle="2026-11"), metadata=brand.admin
    )
    assert [(v.member_id, v.criterion_id, v.value.value) for v in listed.values] == [
        ("M-001", "c1", "12000"),
        ("M-002", "c1", "9000"),
    ]
    paged = await api.targets.ListTargetValues(
        tpb.ListTargetValuesRequest(target_code="NOV-SALES", page_size=1), metadata=brand.admin
    )
    rest = await api.targets.ListTargetValues(
        tpb.ListTargetValuesRequest(
            target_code="NOV-SALES", page_size=1, page_token=paged.next_page_token
        ),
        metadata=brand.admin,
    )
    assert [v.member_id for v in [*paged.values, *rest.values]] == ["M-001", "M-002"]


async def test_target_values_are_all_or_nothing(api: Api, brand: Brand) -> None:
    await api.targets.CreateTarget(
        tpb.CreateTargetRequest(target=monthly_target()), metadata=brand.admin
    )
    await api.targets.UpsertMember(
        tpb.UpsertMemberRequest(member=tpb.Member(external_id="M-001")), metadata=brand.admin
    )
    bad = await fails(
        api.targets.SetTargetValues(
            tpb.SetTargetValuesRequest(
                values=[
                    tpb.TargetValue(
                        member_id="M-001",
                        target_code="NOV-SALES",
                        cycle="2026-11",
                        value=D("12000"),
                    ),
                    tpb.TargetValue(
                        member_id="M-404", target_code="NOV-SALES", cycle="2026-11", value=D("-1")
                    ),
                    tpb.TargetValue(
                        member_id="M-001", target_code="NOPE", cycle="2026-11", value=D("1")
                    ),
                    tpb.TargetValue(
                        member_id="M-001",
                        target_code="NOV-SALES",
                        cycle="2026-11",
                        criterion_id="c9",
                        value=D("x"),
                    ),
                ]
            ),
            metadata=brand.admin,
        )
    )
    assert bad.violations == {"values[3].value.value": "'x' is not a decimal number like 1234.50"}
    bad = await fails(
        api.targets.SetTargetValues(
            tpb.SetTargetValuesRequest(
                values=[
                    tpb.TargetValue(
                        member_id="M-001",
                        target_code="NOV-SALES",
                        cycle="2026-11",
                        value=D("12000"),
                    ),
                    tpb.TargetValue(
                        member_id="M-404", target_code="NOV-SALES", cycle="2026-11", value=D("-1")
                    ),
                    tpb.TargetValue(
                        member_id="M-001", target_code="NOPE", cycle="2026-11", value=D("1")
                    ),
                    tpb.TargetValue(
                        member_id="M-001",
                        target_code="NOV-SALES",
                        cycle="2026-11",
                        criterion_id="c9",
                        value=D("3"),
                    ),
                ]
            ),
            metadata=brand.admin,
        )
    )
    assert bad.violations == {
        "values[1].member_id": "unknown member 'M-404'",
        "values[1].value": "must be greater than 0",
        "values[2].target_code": "unknown target 'NOPE'",
        "values[3].criterion_id": "target 'NOV-SALES' has no criterion 'c9'",
    }
    listed = await api.targets.ListTargetValues(
        tpb.ListTargetValuesRequest(target_code="NOV-SALES"), metadata=brand.admin
    )
    assert list(listed.values) == []  # the good first entry was not stored either


async def test_list_cycles_newest_first_with_states(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    """SPEC example 6's calendar: quarterly in Asia/Jakarta with 3 offset days."""
    jakarta = ZoneInfo("Asia/Jakarta")
    target = monthly_target(
        "Q-SALES",
        period=tpb.Period(kind=typ.PERIOD_KIND_QUARTERLY, start_date="2026-01-01"),
        offset_days=3,
    )
    await api.targets.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=brand.admin)

    async def cycles(**kwargs: Any) -> tpb.ListCyclesResponse:
        return await api.targets.ListCycles(
            tpb.ListCyclesRequest(target_code="Q-SALES", **kwargs), metadata=brand.admin
        )

    clock.set(datetime(2026, 11, 15, 12, tzinfo=jakarta))
    first = await cycles(page_size=2)
    # Q3's time is over, but no clock has closed it here: CLOSED is said of a close that happened.
    assert [(c.name, c.state) for c in first.cycles] == [
        ("2026-Q4", typ.CYCLE_STATE_OPEN),
        ("2026-Q3", typ.CYCLE_STATE_CLOSING),
    ]
    q4 = first.cycles[0]
    assert (q4.start_date, q4.end_date) == ("2026-10-01", "2026-12-31")
    assert q4.end_time.ToDatetime(tzinfo=UTC) == datetime(2027, 1, 1, tzinfo=jakarta)
    assert q4.grace_end_time.ToDatetime(tzinfo=UTC) == datetime(2027, 1, 4, tzinfo=jakarta)
    rest = await cycles(page_size=2, page_token=first.next_page_token)
    assert [c.name for c in rest.cycles] == ["2026-Q2", "2026-Q1"] and not rest.next_page_token

    clock.set(datetime(2027, 1, 2, 9, tzinfo=jakarta))  # the late sale of example 6 arrives
    now = await cycles(page_size=2)
    assert [(c.name, c.state) for c in now.cycles] == [
        ("2027-Q1", typ.CYCLE_STATE_OPEN),
        ("2026-Q4", typ.CYCLE_STATE_GRACE),
    ]
    grace_over = datetime(2027, 1, 4, 0, 0, tzinfo=jakarta)
    clock.set(grace_over)
    assert (await cycles(page_size=2)).cycles[1].state == typ.CYCLE_STATE_CLOSING
    await cycle_clock.tick_brand(api.app, brand.code, jakarta, grace_over)
    closed = (await cycles(page_size=2)).cycles[1]
    assert (closed.name, closed.state) == ("2026-Q4", typ.CYCLE_STATE_CLOSED)
    assert closed.close_time.ToDatetime(tzinfo=UTC) == grace_over

    missing = await fails(
        api.targets.ListCycles(tpb.ListCyclesRequest(target_code="NOPE"), metadata=brand.admin)
    )
    assert missing.code is grpc.StatusCode.NOT_FOUND


async def test_target_values_name_a_cycle_of_the_target(api: Api, brand: Brand) -> None:
    await api.targets.CreateTarget(
        tpb.CreateTargetRequest(target=monthly_target()), metadata=brand.admin
    )
    await api.targets.UpsertMember(
        tpb.UpsertMemberRequest(member=tpb.Member(external_id="M-001")), metadata=brand.admin
    )

    def value(cycle: str) -> tpb.TargetValue:
        return tpb.TargetValue(
            member_id="M-001", target_code="NOV-SALES", cycle=cycle, value=D("12000")
        )

    bad = await fails(
        api.targets.SetTargetValues(
            tpb.SetTargetValuesRequest(
                values=[value("2026-13"), value("2025-12"), value("2026-Q4")]
            ),
            metadata=brand.admin,
        )
    )
    assert bad.violations == {
        "values[0].cycle": "'2026-13' is not a month name like 2026-11",
        "values[1].cycle": "cycle 2025-12 is before the target starts (2026-01-01)",
        "values[2].cycle": "'2026-Q4' is not a month name like 2026-11",
    }


async def test_sftp_settings_are_validated_and_hold_no_secret(api: Api, brand: Brand) -> None:
    missing = await fails(
        api.targets.GetSftpSettings(tpb.GetSftpSettingsRequest(), metadata=brand.admin)
    )
    assert missing.code is grpc.StatusCode.NOT_FOUND
    bad = await fails(
        api.targets.SetSftpSettings(
            tpb.SetSftpSettingsRequest(
                settings=tpb.SftpSettings(
                    host="",
                    port=70000,
                    credential=tpb.SftpCredential(
                        private_key="-----BEGIN OPENSSH PRIVATE KEY-----"
                    ),
                    host_key="not a key",
                    processed_folder="done",
                    failed_folder="/failed",
                    poll_interval_seconds=1,
                )
            ),
            metadata=brand.admin,
        )
    )
    assert set(bad.violations) == {
        "settings.host",
        "settings.port",
        "settings.username",
        "settings.credential.private_key",
        "settings.host_key",
        "settings.processed_folder",
        "settings.transactions_folder",
        "settings.poll_interval_seconds",
    }
    assert "BEGIN" not in repr(bad)  # the refused secret is not echoed back
    good = tpb.SftpSettings(
        enabled=True,
        host="sftp.acme.example",
        port=2222,
        username="attain",
        host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        transactions_folder="/in/transactions",
        targets_folder="/in/targets",
        processed_folder="/done",
        failed_folder="/failed",
        poll_interval_seconds=30,
    )
    sent = tpb.SftpSettings()
    sent.CopyFrom(good)
    sent.credential.password = "correct horse battery staple"
    saved = await api.targets.SetSftpSettings(
        tpb.SetSftpSettingsRequest(settings=sent), metadata=brand.admin
    )
    shown = tpb.SftpSettings()
    shown.CopyFrom(good)
    shown.credential_info.kind = tpb.SFTP_CREDENTIAL_KIND_PASSWORD
    assert saved.settings == shown
    got = await api.targets.GetSftpSettings(tpb.GetSftpSettingsRequest(), metadata=brand.admin)
    assert got.settings == shown
    imports = await api.targets.ListImports(tpb.ListImportsRequest(), metadata=brand.admin)
    assert list(imports.imports) == []
