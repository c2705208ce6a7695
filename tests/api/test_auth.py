"""Authentication, roles and tenancy (SPEC section 9) for every method of every service."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
import structlog
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.field_mask_pb2 import FieldMask

from attain.v1 import progress_pb2, rewards_pb2, targets_pb2
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from attain_server.api.gate import PERMISSIONS
from attain_server.domain.model import Role
from conftest import Api, Brand
from support import D, auth, fails, monthly_target

SERVICES = [
    targets_pb2.DESCRIPTOR.services_by_name["TargetService"],
    progress_pb2.DESCRIPTOR.services_by_name["ProgressService"],
    rewards_pb2.DESCRIPTOR.services_by_name["RewardService"],
]
METHODS: list[MethodDescriptor] = [m for s in SERVICES for m in s.methods]


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


async def call(api: Api, method: MethodDescriptor, metadata: Any, request: Any = None) -> Any:
    """Calls any method generically with an (empty by default) request."""
    req_cls = message_factory.GetMessageClass(method.input_type)
    resp_cls = message_factory.GetMessageClass(method.output_type)
    request = request if request is not None else req_cls()
    kwargs: dict[str, Any] = {
        "request_serializer": req_cls.SerializeToString,
        "response_deserializer": resp_cls.FromString,
    }
    if method.client_streaming:
        return await api.channel.stream_unary(path(method), **kwargs)(
            iter([request]), metadata=metadata, timeout=10
        )
    if method.server_streaming:
        stream: Any = api.channel.unary_stream(path(method), **kwargs)(
            request, metadata=metadata, timeout=10
        )
        async for item in stream:
            stream.cancel()
            return item
        return None
    return await api.channel.unary_unary(path(method), **kwargs)(
        request, metadata=metadata, timeout=10
    )


def test_every_method_has_a_permission_rule() -> None:
    assert set(PERMISSIONS) == {path(m) for m in METHODS}


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
async def test_missing_or_wrong_key_is_refused_before_any_work(
    api: Api, method: MethodDescriptor
) -> None:
    missing = await fails(call(api, method, metadata=()))
    assert missing.code is grpc.StatusCode.UNAUTHENTICATED
    assert missing.reason == "MISSING_CREDENTIALS"
    wrong = await fails(call(api, method, metadata=auth("atn_0000_not-a-real-key")))
    assert wrong.code is grpc.StatusCode.UNAUTHENTICATED
    assert wrong.reason == "INVALID_CREDENTIALS"
    malformed = await fails(call(api, method, metadata=(("authorization", "Basic abc"),)))
    assert malformed.code is grpc.StatusCode.UNAUTHENTICATED


@pytest.fixture
async def keys(api: Api, brand: Brand) -> dict[Role, str]:
    await api.targets.UpsertMember(
        tpb.UpsertMemberRequest(member=tpb.Member(external_id="M-001")), metadata=brand.admin
    )
    ingest = await api.targets.CreateApiKey(
        tpb.CreateApiKeyRequest(role=typ.ROLE_INGEST), metadata=brand.admin
    )
    member = await api.targets.CreateApiKey(
        tpb.CreateApiKeyRequest(role=typ.ROLE_MEMBER, member_id="M-001"), metadata=brand.admin
    )
    return {
        Role.BRAND_ADMIN: brand.admin_key,
        Role.INGEST: ingest.secret,
        Role.MEMBER: member.secret,
    }


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
async def test_roles_outside_the_table_are_denied(
    api: Api, keys: dict[Role, str], method: MethodDescriptor
) -> None:
    allowed = PERMISSIONS[path(method)]
    for role, secret in keys.items():
        if role in allowed:
            continue
        denied = await fails(call(api, method, metadata=auth(secret)))
        assert denied.code is grpc.StatusCode.PERMISSION_DENIED, (role, denied)
        assert denied.reason == "ROLE_NOT_ALLOWED"


async def test_allowed_roles_get_past_the_gate(api: Api, keys: dict[Role, str]) -> None:
    get_brand = targets_pb2.DESCRIPTOR.services_by_name["TargetService"].methods_by_name["GetBrand"]
    for secret in keys.values():
        response = await call(api, get_brand, metadata=auth(secret))
        assert response.brand.time_zone == "Asia/Jakarta"


async def test_member_key_reads_only_its_own_member(
    api: Api, brand: Brand, keys: dict[Role, str]
) -> None:
    await api.targets.UpsertMember(
        tpb.UpsertMemberRequest(member=tpb.Member(external_id="M-002")), metadata=brand.admin
    )
    member = auth(keys[Role.MEMBER])
    own = await api.targets.GetMember(tpb.GetMemberRequest(external_id="M-001"), metadata=member)
    assert own.member.external_id == "M-001"
    other = await fails(
        api.targets.GetMember(tpb.GetMemberRequest(external_id="M-002"), metadata=member)
    )
    assert other.code is grpc.StatusCode.PERMISSION_DENIED and other.reason == "OTHER_MEMBER"


async def test_no_brand_sees_or_changes_another_brands_rows(api: Api) -> None:
    """Brand B's admin names brand A's resources in every TargetService method."""
    a, b = await api.new_brand(), await api.new_brand()
    await api.targets.UpsertMember(
        tpb.UpsertMemberRequest(member=tpb.Member(external_id="A-M1", level="GOLD")),
        metadata=a.admin,
    )
    await api.targets.CreateProgram(
        tpb.CreateProgramRequest(program=tpb.Program(code="A-PROG")), metadata=a.admin
    )
    a_target = (
        await api.targets.CreateTarget(
            tpb.CreateTargetRequest(target=monthly_target("A-TGT")), metadata=a.admin
        )
    ).target
    a_key = (
        await api.targets.CreateApiKey(
            tpb.CreateApiKeyRequest(role=typ.ROLE_INGEST), metadata=a.admin
        )
    ).api_key
    await api.targets.SetTargetValues(
        tpb.SetTargetValuesRequest(
            values=[
                tpb.TargetValue(
                    member_id="A-M1", target_code="A-TGT", cycle="2026-11", value=D("5")
                )
            ]
        ),
        metadata=a.admin,
    )
    t = api.targets
    as_b = b.admin
    not_found = grpc.StatusCode.NOT_FOUND
    # Reads by key: NOT_FOUND, exactly as for a code that exists nowhere.
    for coro in (
        t.GetTarget(tpb.GetTargetRequest(code="A-TGT"), metadata=as_b),
        t.GetMember(tpb.GetMemberRequest(external_id="A-M1"), metadata=as_b),
        t.GetProgram(tpb.GetProgramRequest(code="A-PROG"), metadata=as_b),
        t.RevokeApiKey(tpb.RevokeApiKeyRequest(key_id=a_key.key_id), metadata=as_b),
        t.ArchiveTarget(tpb.ArchiveTargetRequest(code="A-TGT"), metadata=as_b),
        t.UpdateTarget(
            tpb.UpdateTargetRequest(
                target=tpb.Target(code="A-TGT", display_name="pwned"),
                update_mask=FieldMask(paths=["display_name"]),
            ),
            metadata=as_b,
        ),
        t.UpdateProgram(
            tpb.UpdateProgramRequest(
                program=tpb.Program(code="A-PROG", display_name="pwned"),
                update_mask=FieldMask(paths=["display_name"]),
            ),
            metadata=as_b,
        ),
        t.ListTargetValues(tpb.ListTargetValuesRequest(target_code="A-TGT"), metadata=as_b),
    ):
        assert (await fails(coro)).code is not_found
    # Writes naming A's rows are refused as unknown in B.
    bad = await fails(
        t.SetTargetValues(
            tpb.SetTargetValuesRequest(
                values=[
                    tpb.TargetValue(
                        member_id="A-M1", target_code="A-TGT", cycle="2026-11", value=D("1")
                    )
                ]
            ),
            metadata=as_b,
        )
    )
    # Brand A's target and member are both unknown to brand B, and both are named.
    assert bad.violations == {
        "values[0].target_code": "unknown target 'A-TGT'",
        "values[0].member_id": "unknown member 'A-M1'",
    }
    member_key = await fails(
        t.CreateApiKey(
            tpb.CreateApiKeyRequest(role=typ.ROLE_MEMBER, member_id="A-M1"), metadata=as_b
        )
    )
    assert member_key.violations == {"member_id": "unknown member 'A-M1'"}
    # Lists show only B's own rows.
    assert [
        x.code for x in (await t.ListTargets(tpb.ListTargetsRequest(), metadata=as_b)).targets
    ] == []
    assert [
        x.external_id
        for x in (await t.ListMembers(tpb.ListMembersRequest(), metadata=as_b)).members
    ] == []
    assert [
        x.code for x in (await t.ListPrograms(tpb.ListProgramsRequest(), metadata=as_b)).programs
    ] == ["POINTS"]
    b_keys = (await t.ListApiKeys(tpb.ListApiKeysRequest(), metadata=as_b)).api_keys
    assert a_key.key_id not in {k.key_id for k in b_keys}
    assert (await t.GetBrand(tpb.GetBrandRequest(), metadata=as_b)).brand.code == b.code
    # B creating the same codes makes B's own rows, leaving A's untouched.
    await t.UpsertMember(
        tpb.UpsertMemberRequest(member=tpb.Member(external_id="A-M1", level="X")), metadata=as_b
    )
    await t.CreateTarget(
        tpb.CreateTargetRequest(target=monthly_target("A-TGT", "1")), metadata=as_b
    )
    still = await t.GetTarget(tpb.GetTargetRequest(code="A-TGT"), metadata=a.admin)
    assert still.target == a_target
    a_member = await t.GetMember(tpb.GetMemberRequest(external_id="A-M1"), metadata=a.admin)
    assert a_member.member.level == "GOLD"
    a_values = await t.ListTargetValues(
        tpb.ListTargetValuesRequest(target_code="A-TGT"), metadata=a.admin
    )
    assert [v.value.value for v in a_values.values] == ["5"]
    # A's key still works: B's revoke attempt touched nothing.
    a_keys = (await t.ListApiKeys(tpb.ListApiKeysRequest(), metadata=a.admin)).api_keys
    assert not next(k for k in a_keys if k.key_id == a_key.key_id).HasField("revoke_time")


async def test_no_secret_reaches_the_log(api: Api, brand: Brand) -> None:
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        created = await api.targets.CreateApiKey(
            tpb.CreateApiKeyRequest(role=typ.ROLE_INGEST), metadata=brand.admin
        )
        await api.targets.GetBrand(tpb.GetBrandRequest(), metadata=auth(created.secret))
        await fails(api.targets.GetBrand(tpb.GetBrandRequest(), metadata=auth("atn_x_wrong")))
    assert len(logs) >= 3
    text = repr(logs)
    for secret in (brand.admin_key, created.secret, "atn_x_wrong"):
        assert secret not in text
    assert {e.get("method") for e in logs} >= {"CreateApiKey", "GetBrand"}
    assert all("duration_ms" in e and "status" in e for e in logs if e["event"] == "rpc")
