"""TargetService: thin handlers that translate protobuf to use cases and back."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from attain.v1 import targets_pb2 as pb
from attain.v1 import targets_pb2_grpc
from attain_server.app import App
from attain_server.application import brands, cycles, members, sftp_settings, target_values, targets
from attain_server.application.auth import Principal
from attain_server.application.paging import read_page
from attain_server.domain.errors import InvalidArgument
from attain_server.domain.model import Program, Role, TargetValue
from attain_server.domain.validation import (
    MAX_CYCLE,
    MAX_KEY_ID,
    MAX_TARGET_VALUES_PER_CALL,
    require_code,
    require_label,
    too_many,
)

from . import mapping as m
from . import sftp_mapping as sm
from . import target_mapping as tm
from .errors import fields_under
from .gate import principal

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def _member_of(who: Principal) -> str:
    """The member a key is limited to ("" for admin keys, which see every target)."""
    return who.member_id if who.role is Role.MEMBER else ""


def _mask_paths(mask_paths: list[str], allowed: tuple[str, ...]) -> list[str]:
    if not mask_paths:
        raise InvalidArgument.one("update_mask", "name at least one field to update, or '*'")
    if "*" in mask_paths:
        return list(allowed)
    bad = [path for path in mask_paths if path not in allowed]
    if bad:
        raise InvalidArgument.one(
            "update_mask", f"cannot update {', '.join(bad)} (updatable: {', '.join(allowed)})"
        )
    return list(dict.fromkeys(mask_paths))


class TargetServicer(targets_pb2_grpc.TargetServiceServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    # ------------------------------------------------------------ brand

    async def GetBrand(self, request: pb.GetBrandRequest, context: Ctx) -> pb.GetBrandResponse:
        brand = await brands.get_brand(db=self.app.db, brand=principal().brand)
        return pb.GetBrandResponse(brand=m.brand_to_proto(brand))

    async def UpdateBrand(
        self, request: pb.UpdateBrandRequest, context: Ctx
    ) -> pb.UpdateBrandResponse:
        _mask_paths(list(request.update_mask.paths), ("display_name",))
        with fields_under("brand"):
            brand = await brands.update_brand(
                db=self.app.db, brand=principal().brand, display_name=request.brand.display_name
            )
        return pb.UpdateBrandResponse(brand=m.brand_to_proto(brand))

    # ------------------------------------------------------------ keys

    async def CreateApiKey(
        self, request: pb.CreateApiKeyRequest, context: Ctx
    ) -> pb.CreateApiKeyResponse:
        p = m.Parser()
        role = m.ROLE_FROM_PROTO.get(request.role) if request.role else None
        if request.role and role is None:
            p.add("role", f"unknown role {request.role}")
        p.raise_if_any()
        key, secret = await brands.create_api_key(
            db=self.app.db,
            brand=principal().brand,
            role=role,
            member_id=request.member_id,
            label=request.label,
            now=self.app.now(),
        )
        return pb.CreateApiKeyResponse(api_key=m.key_to_proto(key), secret=secret)

    async def ListApiKeys(
        self, request: pb.ListApiKeysRequest, context: Ctx
    ) -> pb.ListApiKeysResponse:
        page = read_page(request.page_size, request.page_token)
        keys, token = await brands.list_api_keys(db=self.app.db, brand=principal().brand, page=page)
        return pb.ListApiKeysResponse(
            api_keys=[m.key_to_proto(k) for k in keys], next_page_token=token
        )

    async def RevokeApiKey(
        self, request: pb.RevokeApiKeyRequest, context: Ctx
    ) -> pb.RevokeApiKeyResponse:
        require_label("key_id", request.key_id, limit=MAX_KEY_ID)
        key = await brands.revoke_api_key(
            db=self.app.db, brand=principal().brand, key_id=request.key_id, now=self.app.now()
        )
        self.app.keys.forget(key.key_id)
        return pb.RevokeApiKeyResponse(api_key=m.key_to_proto(key))

    # ------------------------------------------------------------ programs

    async def CreateProgram(
        self, request: pb.CreateProgramRequest, context: Ctx
    ) -> pb.CreateProgramResponse:
        prog = request.program
        with fields_under("program"):
            created = await brands.create_program(
                db=self.app.db,
                brand=principal().brand,
                program=Program(prog.code, prog.display_name, prog.is_default),
                now=self.app.now(),
            )
        return pb.CreateProgramResponse(program=m.program_to_proto(created))

    async def GetProgram(
        self, request: pb.GetProgramRequest, context: Ctx
    ) -> pb.GetProgramResponse:
        require_code("code", request.code)
        prog = await brands.get_program(db=self.app.db, brand=principal().brand, code=request.code)
        return pb.GetProgramResponse(program=m.program_to_proto(prog))

    async def ListPrograms(
        self, request: pb.ListProgramsRequest, context: Ctx
    ) -> pb.ListProgramsResponse:
        page = read_page(request.page_size, request.page_token)
        items, token = await brands.list_programs(
            db=self.app.db, brand=principal().brand, page=page
        )
        return pb.ListProgramsResponse(
            programs=[m.program_to_proto(x) for x in items], next_page_token=token
        )

    async def UpdateProgram(
        self, request: pb.UpdateProgramRequest, context: Ctx
    ) -> pb.UpdateProgramResponse:
        require_code("program.code", request.program.code)
        paths = _mask_paths(list(request.update_mask.paths), ("display_name", "is_default"))
        with fields_under("program"):
            prog = await brands.update_program(
                db=self.app.db,
                brand=principal().brand,
                code=request.program.code,
                display_name=request.program.display_name if "display_name" in paths else None,
                make_default=request.program.is_default if "is_default" in paths else None,
            )
        return pb.UpdateProgramResponse(program=m.program_to_proto(prog))

    # ------------------------------------------------------------ members

    async def UpsertMember(
        self, request: pb.UpsertMemberRequest, context: Ctx
    ) -> pb.UpsertMemberResponse:
        with fields_under("member"):
            member, created = await members.upsert_member(
                db=self.app.db,
                brand=principal().brand,
                member=m.member_from_proto(request.member),
                now=self.app.now(),
            )
        # A level or group decides which targets and values a member's card shows.
        await self.app.members_changed(principal().brand, [member.external_id])
        return pb.UpsertMemberResponse(member=m.member_to_proto(member), created=created)

    async def GetMember(self, request: pb.GetMemberRequest, context: Ctx) -> pb.GetMemberResponse:
        require_label("external_id", request.external_id)
        who = principal()
        who.require_member_access(request.external_id)
        member = await members.get_member(
            db=self.app.db, brand=who.brand, external_id=request.external_id
        )
        return pb.GetMemberResponse(member=m.member_to_proto(member))

    async def ListMembers(
        self, request: pb.ListMembersRequest, context: Ctx
    ) -> pb.ListMembersResponse:
        require_label("level", request.level, required=False)
        require_label("group", request.group, required=False)
        page = read_page(
            request.page_size, request.page_token, level=request.level, group=request.group
        )
        items, token = await members.list_members(
            db=self.app.db,
            brand=principal().brand,
            page=page,
            level=request.level,
            group=request.group,
        )
        return pb.ListMembersResponse(
            members=[m.member_to_proto(x) for x in items], next_page_token=token
        )

    # ------------------------------------------------------------ targets

    async def CreateTarget(
        self, request: pb.CreateTargetRequest, context: Ctx
    ) -> pb.CreateTargetResponse:
        with fields_under("target"):
            p = m.Parser()
            definition = tm.target_definition(p, request.target)
            p.raise_if_any()
            target = await targets.create_target(
                db=self.app.db, brand=principal().brand, definition=definition, now=self.app.now()
            )
        await self.app.brand_changed(principal().brand)  # live cards gain the target
        return pb.CreateTargetResponse(target=tm.target_to_proto(target))

    async def GetTarget(self, request: pb.GetTargetRequest, context: Ctx) -> pb.GetTargetResponse:
        require_code("code", request.code)
        who = principal()
        target = await targets.get_target(
            db=self.app.db, brand=who.brand, code=request.code, member_id=_member_of(who)
        )
        return pb.GetTargetResponse(target=tm.target_to_proto(target))

    async def ListTargets(
        self, request: pb.ListTargetsRequest, context: Ctx
    ) -> pb.ListTargetsResponse:
        page = read_page(request.page_size, request.page_token, archived=request.show_archived)
        who = principal()
        items, token = await targets.list_targets(
            db=self.app.db,
            brand=who.brand,
            page=page,
            show_archived=request.show_archived,
            member_id=_member_of(who),
        )
        return pb.ListTargetsResponse(
            targets=[tm.target_to_proto(t) for t in items], next_page_token=token
        )

    async def UpdateTarget(
        self, request: pb.UpdateTargetRequest, context: Ctx
    ) -> pb.UpdateTargetResponse:
        require_code("target.code", request.target.code)
        paths = _mask_paths(list(request.update_mask.paths), tm.TARGET_FIELDS)
        with fields_under("target"):
            p = m.Parser()
            changes = tm.target_fields(p, request.target, paths)
            p.raise_if_any()
            target = await targets.update_target(
                db=self.app.db,
                brand=principal().brand,
                code=request.target.code,
                changes=changes,
                etag=request.target.etag,
                now=self.app.now(),
            )
        await self.app.brand_changed(principal().brand)
        return pb.UpdateTargetResponse(target=tm.target_to_proto(target))

    async def ArchiveTarget(
        self, request: pb.ArchiveTargetRequest, context: Ctx
    ) -> pb.ArchiveTargetResponse:
        require_code("code", request.code)
        target = await targets.archive_target(
            db=self.app.db, brand=principal().brand, code=request.code, now=self.app.now()
        )
        await self.app.brand_changed(principal().brand)
        return pb.ArchiveTargetResponse(target=tm.target_to_proto(target))

    # ------------------------------------------------------------ target values and cycles

    async def SetTargetValues(
        self, request: pb.SetTargetValuesRequest, context: Ctx
    ) -> pb.SetTargetValuesResponse:
        p = m.Parser()
        values: list[TargetValue] = []
        # Counted before any is read: a call past the limit is one violation, not one per value.
        limit = MAX_TARGET_VALUES_PER_CALL
        if not too_many(p.violations, "values", request.values, limit, "values"):
            values = [
                tm.target_value_from_proto(p, tv, f"values[{i}]")
                for i, tv in enumerate(request.values)
            ]
        p.raise_if_any()
        written, unchanged = await target_values.set_target_values(
            db=self.app.db,
            brand=principal().brand,
            values=values,
            now=self.app.now(),
        )
        await self.app.members_changed(principal().brand, {v.member_id for v in values})
        return pb.SetTargetValuesResponse(written=written, unchanged=unchanged)

    async def ListTargetValues(
        self, request: pb.ListTargetValuesRequest, context: Ctx
    ) -> pb.ListTargetValuesResponse:
        require_code("target_code", request.target_code)
        require_label("cycle", request.cycle, required=False, limit=MAX_CYCLE)
        page = read_page(
            request.page_size, request.page_token, target=request.target_code, cycle=request.cycle
        )
        items, token = await target_values.list_target_values(
            db=self.app.db,
            brand=principal().brand,
            target_code=request.target_code,
            cycle=request.cycle,
            page=page,
        )
        return pb.ListTargetValuesResponse(
            values=[tm.target_value_to_proto(v) for v in items], next_page_token=token
        )

    async def ListCycles(
        self, request: pb.ListCyclesRequest, context: Ctx
    ) -> pb.ListCyclesResponse:
        require_code("target_code", request.target_code)
        page = read_page(request.page_size, request.page_token, target=request.target_code)
        now = self.app.now()
        who = principal()
        views, token = await cycles.list_cycles(
            db=self.app.db,
            brand=who.brand,
            target_code=request.target_code,
            page=page,
            now=now,
            member_id=_member_of(who),
        )
        return pb.ListCyclesResponse(
            cycles=[m.cycle_to_proto(request.target_code, v) for v in views],
            next_page_token=token,
        )

    # ------------------------------------------------------------ SFTP and imports

    async def SetSftpSettings(
        self, request: pb.SetSftpSettingsRequest, context: Ctx
    ) -> pb.SetSftpSettingsResponse:
        settings, credential = sm.sftp_from_proto(request.settings)
        with fields_under("settings"):
            saved = await sftp_settings.set_settings(
                db=self.app.db,
                brand=principal().brand,
                settings=settings,
                credential=credential,
                sealer=self.app.sealer,
                hosts=self.app.sftp_hosts,
                now=self.app.now(),
            )
        return pb.SetSftpSettingsResponse(settings=sm.sftp_to_proto(saved))

    async def GetSftpSettings(
        self, request: pb.GetSftpSettingsRequest, context: Ctx
    ) -> pb.GetSftpSettingsResponse:
        saved = await sftp_settings.get_settings(db=self.app.db, brand=principal().brand)
        return pb.GetSftpSettingsResponse(settings=sm.sftp_to_proto(saved))

    async def ListImports(
        self, request: pb.ListImportsRequest, context: Ctx
    ) -> pb.ListImportsResponse:
        page = read_page(request.page_size, request.page_token)
        rows, token = await sftp_settings.list_imports(
            db=self.app.db, brand=principal().brand, page=page
        )
        return pb.ListImportsResponse(
            imports=[sm.import_to_proto(r) for r in rows], next_page_token=token
        )
