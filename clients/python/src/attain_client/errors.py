"""Errors of Attain calls: the gRPC status plus what the server said in its rich details."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request: its path (e.g. `transaction.lines[0].amount`) and why."""

    field: str
    reason: str


class AttainError(grpc.aio.AioRpcError):
    """A failed Attain call.

    It is still a `grpc.aio.AioRpcError` (`code()`, `details()`, metadata), and carries the
    server's `reason` (ErrorInfo, UPPER_SNAKE such as `CYCLE_CLOSED`) and `violations`
    (BadRequest field violations), so callers need not decode status details themselves.
    """

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        super().__init__(
            error.code(),
            error.initial_metadata(),
            error.trailing_metadata(),
            error.details(),
            error.debug_error_string(),
        )
        self.reason = ""
        self.domain = ""
        violations: list[FieldViolation] = []
        for key, value in error.trailing_metadata() or ():
            if key != "grpc-status-details-bin" or not isinstance(value, bytes):
                continue
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    self.reason, self.domain = info.reason, info.domain
                elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    violations.extend(
                        FieldViolation(v.field, v.description) for v in bad.field_violations
                    )
        self.violations: tuple[FieldViolation, ...] = tuple(violations)

    @property
    def status(self) -> grpc.StatusCode:
        return self.code()

    @property
    def message(self) -> str:
        return self.details() or ""

    @property
    def extra_violations(self) -> tuple[FieldViolation, ...]:
        """The violations the message does not already say: a single violation often is the
        message (`transaction.member_id: unknown member 'X'`), and is not worth repeating."""
        return tuple(v for v in self.violations if f"{v.field}: {v.reason}" != self.message)

    def __str__(self) -> str:
        lines = [f"{self.code().name}: {self.message}"]
        lines += [f"  {v.field}: {v.reason}" for v in self.extra_violations]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"AttainError({self.code().name}, {self.message!r}, reason={self.reason!r}, "
            f"violations={list(self.violations)!r})"
        )
