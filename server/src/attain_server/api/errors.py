"""Domain errors to gRPC statuses (AIP-193): canonical code, BadRequest violations, ErrorInfo."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from attain_server.domain.errors import (
    Aborted,
    AlreadyExists,
    AttainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)

ERROR_DOMAIN = "attain.v1"

_CODES: list[tuple[type[AttainError], int]] = [
    (InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (NotFound, code_pb2.NOT_FOUND),
    (AlreadyExists, code_pb2.ALREADY_EXISTS),
    (FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (Aborted, code_pb2.ABORTED),
    (PermissionDenied, code_pb2.PERMISSION_DENIED),
]


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


# A status travels in trailing metadata: the message as grpc-message (percent-encoded, up to
# three bytes a byte) and again inside grpc-status-details-bin (base64). Clients refuse
# metadata past 8 KiB ("metadata size exceeds ..."), which would turn a clear
# INVALID_ARGUMENT into RESOURCE_EXHAUSTED; these caps keep the whole status within it
# whatever a caller sent. The domain already quotes input cut short; this is the backstop.
MAX_MESSAGE_BYTES = 512
MAX_DETAILS_BYTES = 3000
MAX_VIOLATION_CHARS = 200
_MORE = "…"


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8 (on a character boundary)."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - len(_MORE.encode())].decode(errors="ignore") + _MORE


def _bad_request(error: InvalidArgument, room: int) -> tuple[error_details_pb2.BadRequest, int]:
    """The violations that fit in ``room`` bytes, first first (the ones a caller fixes
    first), and how many were left out."""
    bad = error_details_pb2.BadRequest()
    room -= 64  # for the ErrorInfo entry that counts the ones left out
    for kept, v in enumerate(error.violations):
        item = error_details_pb2.BadRequest.FieldViolation(
            field=_cut(v.field, MAX_VIOLATION_CHARS),
            description=_cut(v.reason, MAX_VIOLATION_CHARS),
        )
        room -= item.ByteSize() + 4  # the tag and length around it
        if room < 0:
            return bad, len(error.violations) - kept
        bad.field_violations.append(item)
    return bad, 0


def status_for(error: AttainError) -> grpc.Status:
    code = code_pb2.UNKNOWN
    for cls, candidate in _CODES:
        if isinstance(error, cls):
            code = candidate
            break
    message = _cut(error.message, MAX_MESSAGE_BYTES)
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN)
    status = status_pb2.Status(code=code, message=message, details=[_pack(info)])
    if isinstance(error, InvalidArgument):
        bad, left = _bad_request(error, MAX_DETAILS_BYTES - status.ByteSize())
        if left:
            # Every violation shown names a field; how many more there were is said apart.
            info.metadata["violations_not_shown"] = str(left)
            status.details[0].CopyFrom(_pack(info))
        status.details.append(_pack(bad))
    return rpc_status.to_status(status)


def plain_status(code: grpc.StatusCode, message: str, reason: str) -> grpc.Status:
    status = status_pb2.Status(
        code=code.value[0],
        message=_cut(message, MAX_MESSAGE_BYTES),
        details=[_pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))],
    )
    return rpc_status.to_status(status)


def named_under(prefix: str, error: AttainError) -> AttainError:
    """``error`` with each field violation named under ``prefix``, the request's path of the
    object the domain named it within ("member" + "groups[0]"); other errors as they are."""
    if not isinstance(error, InvalidArgument):
        return error
    named = [FieldViolation(f"{prefix}.{v.field}", v.reason) for v in error.violations]
    # The message lists the fields by name: it is said again under the new names, unless the
    # error was raised with a message of its own.
    own = error.message != InvalidArgument(error.violations).message
    mapped = InvalidArgument(named, error.message if own else None)
    mapped.reason = error.reason
    return mapped


@contextmanager
def fields_under(prefix: str) -> Iterator[None]:
    """Names the field violations raised within the block under ``prefix`` (`named_under`):
    the one place a servicer maps an object's field names to its request's."""
    try:
        yield
    except InvalidArgument as exc:
        raise named_under(prefix, exc) from exc
