"""Domain errors to gRPC statuses (AIP-193): canonical code, BadRequest violations, ErrorInfo."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from attain_server.domain.errors import (
    Aborted,
    AlreadyExists,
    AttainError,
    FailedPrecondition,
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


def status_for(error: AttainError) -> grpc.Status:
    code = code_pb2.UNKNOWN
    for cls, candidate in _CODES:
        if isinstance(error, cls):
            code = candidate
            break
    details = [_pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN))]
    if isinstance(error, InvalidArgument):
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.reason
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    status = status_pb2.Status(code=code, message=error.message, details=details)
    return rpc_status.to_status(status)


def plain_status(code: grpc.StatusCode, message: str, reason: str) -> grpc.Status:
    status = status_pb2.Status(
        code=code.value[0],
        message=message,
        details=[_pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))],
    )
    return rpc_status.to_status(status)
