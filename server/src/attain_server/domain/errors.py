"""Typed errors of the domain and application layers; api/errors.py maps them to gRPC statuses.

Hierarchy::

    AttainError
    ├── InvalidArgument      bad input; carries FieldViolations (field path + reason)
    ├── NotFound             a named resource does not exist (in the caller's brand)
    ├── AlreadyExists        a create whose key is taken, or an idempotency key reused
    │                        with other content
    ├── FailedPrecondition   the system is not in a state that allows the call
    ├── Aborted              a concurrent change won (e.g. a stale etag)
    └── PermissionDenied     the caller's role may not do this
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: its path in the request (``target.criteria[0].kpi``) and why."""

    field: str
    reason: str


class AttainError(Exception):
    """Base of every error a caller may see. ``reason`` is an UPPER_SNAKE code."""

    reason: str = "ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidArgument(AttainError):
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation], message: str | None = None) -> None:
        if not violations:
            raise ValueError("InvalidArgument needs at least one violation")
        self.violations = list(violations)
        text = message or "; ".join(f"{v.field}: {v.reason}" for v in violations)
        super().__init__(text)

    @classmethod
    def one(cls, field: str, reason: str) -> InvalidArgument:
        return cls([FieldViolation(field, reason)])


class NotFound(AttainError):
    reason = "NOT_FOUND"

    def __init__(self, resource: str, key: str) -> None:
        self.resource = resource
        self.key = key
        super().__init__(f"{resource} {key!r} not found")


class AlreadyExists(AttainError):
    reason = "ALREADY_EXISTS"


class FailedPrecondition(AttainError):
    reason = "FAILED_PRECONDITION"


class Aborted(AttainError):
    reason = "ABORTED"


class PermissionDenied(AttainError):
    reason = "PERMISSION_DENIED"


class Violations:
    """Collects field violations so one response names every bad field, not just the first."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, reason: str) -> None:
        self.items.append(FieldViolation(field, reason))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)
