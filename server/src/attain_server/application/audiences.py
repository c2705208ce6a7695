"""What a member key sees of its brand's targets: those whose audience includes its member.

A target that leaves the member out answers exactly as one that does not exist (AIP-193:
permission before existence), so a member cannot learn what other members are offered.
"""

from __future__ import annotations

from collections.abc import Callable

from attain_server.domain.errors import NotFound
from attain_server.domain.model import AudienceKind, TargetDefinition
from attain_server.store.members import load_members_by_id
from attain_server.store.units import Conn


async def audience_test(s: Conn, brand: str, member_id: str) -> Callable[[TargetDefinition], bool]:
    """Whether a target is seen by ``member_id``; every target when it is "" (not a member
    key). The member is read once, for a whole list of targets."""
    if not member_id:
        return lambda target: True
    member = (await load_members_by_id(s, brand, [member_id])).get(member_id)
    if member is None:  # a key that outlived its member sees nothing
        return lambda target: False
    return lambda target: target.audience.includes(member)


async def sees(s: Conn, brand: str, target: TargetDefinition, member_id: str) -> bool:
    """Whether ``member_id`` ("" for keys that are not member keys: yes) sees ``target``."""
    if not member_id or target.audience.kind is AudienceKind.ALL_MEMBERS:
        return True
    return (await audience_test(s, brand, member_id))(target)


async def require_seen(s: Conn, brand: str, target: TargetDefinition, member_id: str) -> None:
    """NotFound, as for a target that does not exist, unless ``member_id`` sees ``target``."""
    if not await sees(s, brand, target, member_id):
        raise NotFound("target", target.code)
