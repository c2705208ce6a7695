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

# How much of a caller's value a message quotes: enough to recognise it, never a whole
# megabyte sent back in a status (the metadata limit) or written to a log.
QUOTE_LIMIT = 64
# An InvalidArgument's message lists this many violations; its details list every one.
MESSAGE_VIOLATIONS = 10


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` of a string cut to ``limit`` characters with an ellipsis: how every
    message quotes what a caller sent (``'abc'``, ``'aaaa…'`` for a long one); repr also
    shows control characters as escapes instead of passing them on."""
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


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
        if message is None:
            shown = self.violations[:MESSAGE_VIOLATIONS]
            message = "; ".join(f"{v.field}: {v.reason}" for v in shown)
            if len(self.violations) > len(shown):
                message += f"; and {len(self.violations) - len(shown)} more"
        super().__init__(message)

    @classmethod
    def one(cls, field: str, reason: str) -> InvalidArgument:
        return cls([FieldViolation(field, reason)])


class NotFound(AttainError):
    reason = "NOT_FOUND"

    def __init__(self, resource: str, key: str) -> None:
        self.resource = resource
        self.key = key
        super().__init__(f"{resource} {quoted(key)} not found")


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
