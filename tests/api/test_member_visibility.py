"""A member key sees only the targets whose audience includes its member (SPEC section 9):
any other answers exactly as a target that does not exist."""

from __future__ import annotations

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from attain.v1 import progress_pb2 as ppb
from attain.v1 import targets_pb2 as tpb
from attain.v1 import types_pb2 as typ
from conftest import Api, Brand, FakeClock
from support import NOV_15, Failure, auth, fails, monthly_target


async def _member_key(
    api: Api, brand: Brand, member: str, *groups: str
) -> tuple[tuple[str, str], ...]:
    await api.targets.UpsertMember(
        tpb.UpsertMemberRequest(member=tpb.Member(external_id=member, groups=list(groups))),
        metadata=brand.admin,
    )
    created = await api.targets.CreateApiKey(
        tpb.CreateApiKeyRequest(role=typ.ROLE_MEMBER, member_id=member), metadata=brand.admin
    )
    return auth(created.secret)


async def _hidden_reads(
    api: Api, key: tuple[tuple[str, str], ...], member: str, code: str
) -> list[Failure]:
    """What a member key gets from GetTarget, ListCycles and GetProgress for ``code``."""
    return [
        await fails(api.targets.GetTarget(tpb.GetTargetRequest(code=code), metadata=key)),
        await fails(api.targets.ListCycles(tpb.ListCyclesRequest(target_code=code), metadata=key)),
        await fails(
            api.progress.GetProgress(
                ppb.GetProgressRequest(member_id=member, target_code=code), metadata=key
            )
        ),
    ]


async def test_a_member_key_sees_only_targets_of_its_audience(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    clock.set(NOV_15)
    m1 = await _member_key(api, brand, "M-001", "north")
    await _member_key(api, brand, "M-002", "south")
    audiences = {
        "ALL": tpb.Audience(),
        "NORTH": tpb.Audience(kind=tpb.AUDIENCE_KIND_GROUPS, groups=["north"]),
        "SOUTH": tpb.Audience(kind=tpb.AUDIENCE_KIND_GROUPS, groups=["south"]),
        "ONLY-M1": tpb.Audience(kind=tpb.AUDIENCE_KIND_MEMBERS, member_ids=["M-001"]),
        "ONLY-M2": tpb.Audience(kind=tpb.AUDIENCE_KIND_MEMBERS, member_ids=["M-002"]),
    }
    for code, audience in audiences.items():
        await api.targets.CreateTarget(
            tpb.CreateTargetRequest(target=monthly_target(code, audience=audience)),
            metadata=brand.admin,
        )
    # One target per page: the member's pages skip what it may not see and still end.
    codes: list[str] = []
    token = ""
    while True:
        page = await api.targets.ListTargets(
            tpb.ListTargetsRequest(page_size=1, page_token=token), metadata=m1
        )
        codes += [t.code for t in page.targets]
        token = page.next_page_token
        if not token:
            break
    assert codes == ["ALL", "NORTH", "ONLY-M1"]
    admin_codes = await api.targets.ListTargets(tpb.ListTargetsRequest(), metadata=brand.admin)
    assert len(admin_codes.targets) == 5
    for code in ("ALL", "NORTH", "ONLY-M1"):
        assert (await api.targets.GetTarget(tpb.GetTargetRequest(code=code), metadata=m1)).target
        progress = await api.progress.GetProgress(
            ppb.GetProgressRequest(member_id="M-001", target_code=code), metadata=m1
        )
        assert progress.progress.target_code == code
    # Hidden targets answer exactly as a code that names no target at all.
    missing = await _hidden_reads(api, m1, "M-001", "NO-SUCH")
    for code in ("SOUTH", "ONLY-M2"):
        hidden = await _hidden_reads(api, m1, "M-001", code)
        for got, expected in zip(hidden, missing, strict=True):
            assert got.code is grpc.StatusCode.NOT_FOUND, got
            assert (got.reason, got.message.replace(code, "NO-SUCH")) == (
                expected.reason,
                expected.message,
            )


async def test_a_member_sees_a_target_once_the_audience_takes_it_in(
    api: Api, brand: Brand, clock: FakeClock
) -> None:
    """The audience is read as it is now, not as a replica cached it."""
    clock.set(NOV_15)
    m1 = await _member_key(api, brand, "M-001")
    target = monthly_target(
        "LATER", audience=tpb.Audience(kind=tpb.AUDIENCE_KIND_MEMBERS, member_ids=["M-002"])
    )
    await api.targets.CreateTarget(tpb.CreateTargetRequest(target=target), metadata=brand.admin)
    request = ppb.GetProgressRequest(member_id="M-001", target_code="LATER")
    # The admin's read caches the definition on the server.
    await api.progress.GetProgress(request, metadata=brand.admin)
    assert (await fails(api.progress.GetProgress(request, metadata=m1))).code is (
        grpc.StatusCode.NOT_FOUND
    )
    target.audience.member_ids.append("M-001")
    await api.targets.UpdateTarget(
        tpb.UpdateTargetRequest(target=target, update_mask=FieldMask(paths=["audience"])),
        metadata=brand.admin,
    )
    seen = await api.progress.GetProgress(request, metadata=m1)
    assert seen.progress.target_code == "LATER"
    # And out again: the member's own read cached the definition that let it in.
    del target.audience.member_ids[:]
    target.audience.member_ids.append("M-002")
    await api.targets.UpdateTarget(
        tpb.UpdateTargetRequest(target=target, update_mask=FieldMask(paths=["audience"])),
        metadata=brand.admin,
    )
    assert (await fails(api.progress.GetProgress(request, metadata=m1))).code is (
        grpc.StatusCode.NOT_FOUND
    )
