"""Unit tests of api/errors.py: a status fits in the metadata a client accepts, whatever the
error holds."""

from __future__ import annotations

import pytest
from google.rpc import error_details_pb2, status_pb2

from attain_server.api.errors import fields_under, named_under, status_for
from attain_server.domain.errors import AttainError, FieldViolation, InvalidArgument, NotFound

# What grpc clients accept in a response's metadata by default.
METADATA_LIMIT = 8192


def _trailer_size(error: AttainError) -> tuple[int, status_pb2.Status]:
    status = status_for(error)
    trailers = dict(status.trailing_metadata)
    details = trailers["grpc-status-details-bin"]
    assert isinstance(details, bytes)
    # grpc-message goes percent-encoded (three bytes a byte at worst), details in base64.
    size = 3 * len(status.details.encode()) + (len(details) * 4 + 2) // 3
    return size, status_pb2.Status.FromString(details)


@pytest.mark.parametrize(
    "error",
    [
        InvalidArgument([FieldViolation("f" * 100_000, "r\u00e9" * 100_000)]),
        InvalidArgument(
            [FieldViolation(f"values[{i}].member_id", "é" * 300) for i in range(20_000)]
        ),
        NotFound("member", "m" * 1_000_000),
        AttainError("ü" * 1_000_000),
    ],
    ids=["one-huge", "many", "not-found", "plain"],
)
def test_a_status_stays_within_the_metadata_limit(error: AttainError) -> None:
    size, status = _trailer_size(error)
    assert size < METADATA_LIMIT - 1024  # room for the other headers
    assert status.message


def test_violations_left_out_are_counted() -> None:
    error = InvalidArgument([FieldViolation(f"codes[{i}]", "is required") for i in range(5000)])
    _, status = _trailer_size(error)
    bad = error_details_pb2.BadRequest()
    assert status.details[1].Unpack(bad)
    shown = list(bad.field_violations)
    assert shown[0].field == "codes[0]" and shown[1].field == "codes[1]"
    assert all(v.field.startswith("codes[") for v in shown)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.metadata["violations_not_shown"] == str(5000 - len(shown))
    assert error.message.endswith("; and 4990 more")
    # A small error goes out as it is.
    small = InvalidArgument([FieldViolation("member.level", "must be at most 128 characters")])
    _, status = _trailer_size(small)
    assert status.details[1].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("member.level", "must be at most 128 characters")
    ]
    assert status.message == "member.level: must be at most 128 characters"


def test_fields_under_names_violations_in_the_request_and_keeps_the_rest() -> None:
    # The domain names a field within its object; the servicer adds the request's path once.
    with pytest.raises(InvalidArgument) as caught, fields_under("member"):
        raise InvalidArgument([FieldViolation("groups[1]", "is listed twice")])
    assert [(v.field, v.reason) for v in caught.value.violations] == [
        ("member.groups[1]", "is listed twice")
    ]
    assert caught.value.message == "member.groups[1]: is listed twice"
    own = InvalidArgument.one("host", "is not allowed")
    own.reason = "HOST_NOT_ALLOWED"
    own_message = InvalidArgument([FieldViolation("host", "x")], "a message of its own")
    assert named_under("settings", own).reason == "HOST_NOT_ALLOWED"
    assert named_under("settings", own_message).message == "a message of its own"
    with pytest.raises(NotFound), fields_under("member"):
        raise NotFound("member", "m1")
