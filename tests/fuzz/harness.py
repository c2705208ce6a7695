"""Sends fuzzed calls to a real server and judges each answer.

Hypothesis runs in a worker thread (its test function is synchronous) while the server and
the test's gRPC channel keep running on the test's event loop; each example is handed to the
loop and awaited with a timeout, so a server that hangs, or a handler that blocks the loop,
fails the example instead of the run. A failing example is remembered by its bytes: shrinking
replays it without asking the server again, and once the shrink budget is spent, new
candidates pass untried, so a run with findings still ends in bounded time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import traceback
from collections import Counter
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from attain.v1 import progress_pb2 as ppb
from attain_client import AttainError
from fuzz.messages import Hints, describe, messages
from fuzz.world import OtherBrand, World, differences, rows_of

# Per call: a unary call that takes longer is a hang. Watches are endless by design: they get
# a short deadline and at most WATCH_MESSAGES messages are read.
CALL_SECONDS = 10.0
WATCH_SECONDS = 0.3
WATCH_MESSAGES = 3
# Per example, around the call and the snapshots: the loop itself may be what hangs.
EXAMPLE_SECONDS = 30.0

WRITES = frozenset(
    {
        "UpdateBrand",
        "CreateApiKey",
        "RevokeApiKey",
        "CreateProgram",
        "UpdateProgram",
        "UpsertMember",
        "CreateTarget",
        "UpdateTarget",
        "ArchiveTarget",
        "SetTargetValues",
        "SetSftpSettings",
        "RecordTransaction",
        "RecordTransactions",
        "AdjustPoints",
        "LoadVouchers",
    }
)
# Statuses that are never an answer to a request, however bad.
NEVER = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


@dataclass(frozen=True)
class Call:
    """One fuzzed call: method, the role of the key it uses, and its request(s)."""

    method: MethodDescriptor
    role: str
    requests: tuple[Message, ...]

    def key(self) -> bytes:
        head = f"{self.method.name}/{self.role}/".encode()
        return head + b"|".join(r.SerializeToString() for r in self.requests)

    def __repr__(self) -> str:
        shown = " | ".join(describe(r) for r in self.requests)
        return f"{self.method.name} as {self.role}: {shown}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """What hypothesis prints for a failing example: the repr above."""
        printer.text(repr(self))


@dataclass
class Answer:
    code: grpc.StatusCode
    message: str = ""
    reason: str = ""
    violations: list[tuple[str, str]] = field(default_factory=list)
    responses: list[Message] = field(default_factory=list)
    raw_details: bytes = b""


# ---------------------------------------------------------------- findings


class Finding(AssertionError):
    """Something a fuzzed call showed that must never happen."""


class ServerError(Finding):
    """INTERNAL or UNKNOWN."""


class Hang(Finding):
    """No answer within the call's deadline (or the event loop stopped)."""


class CommittedBehindError(Finding):
    """A write answered with an error, yet the brand's rows changed."""


class UnclearError(Finding):
    """INVALID_ARGUMENT without a field (as a request path) and a reason, or a traceback."""


class Leak(Finding):
    """A response of brand A's call showed something only brand B has."""


class Miscount(Finding):
    """A stream's summary does not add up to the transactions sent."""


class _Enough(BaseException):
    """Ends a hypothesis run once the shrink budget is spent. A BaseException, so hypothesis
    does not take it for a failure of the example and lets it through."""


_SERVER_ERRORS: dict[str, type[ServerError]] = {}


def server_error(cause: str) -> type[ServerError]:
    """A ServerError subclass per server-side exception type, so that hypothesis reports (and
    shrinks) two different crashes of one method as two bugs."""
    name = "ServerError_" + "".join(c if c.isalnum() else "_" for c in cause)
    if name not in _SERVER_ERRORS:
        _SERVER_ERRORS[name] = type(name, (ServerError,), {})
    return _SERVER_ERRORS[name]


# ---------------------------------------------------------------- calling


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


async def invoke(channel: grpc.aio.Channel, call: Call, secret: str) -> Answer:
    """Makes the call over the real channel; never raises for a status."""
    method = call.method
    req_cls = message_factory.GetMessageClass(method.input_type)
    resp_cls = message_factory.GetMessageClass(method.output_type)
    kwargs: dict[str, Any] = {
        "request_serializer": req_cls.SerializeToString,
        "response_deserializer": resp_cls.FromString,
    }
    metadata = (("authorization", f"Bearer {secret}"),)
    responses: list[Message] = []
    try:
        if method.client_streaming:
            stream_call = channel.stream_unary(_path(method), **kwargs)
            responses.append(
                await stream_call(iter(call.requests), metadata=metadata, timeout=CALL_SECONDS)
            )
        elif method.server_streaming:
            watch: Any = channel.unary_stream(_path(method), **kwargs)(
                call.requests[0], metadata=metadata, timeout=WATCH_SECONDS
            )
            async for item in watch:
                responses.append(item)
                if len(responses) >= WATCH_MESSAGES:
                    watch.cancel()
                    break
        else:
            unary = channel.unary_unary(_path(method), **kwargs)
            responses.append(await unary(call.requests[0], metadata=metadata, timeout=CALL_SECONDS))
    except grpc.aio.AioRpcError as error:
        decoded = AttainError(error)
        details = b"".join(v for k, v in error.trailing_metadata() or () if isinstance(v, bytes))
        return Answer(
            error.code(),
            error.details() or "",
            decoded.reason,
            [(v.field, v.reason) for v in decoded.violations],
            responses,
            details,
        )
    return Answer(grpc.StatusCode.OK, responses=responses)


# ---------------------------------------------------------------- judging


def judge_status(call: Call, answer: Answer, kind: str = "", cause: str = "") -> Finding | None:
    """The status alone: never INTERNAL/UNKNOWN, never a hang, always a clear reason.
    `kind` and `cause` are what the server logged for the call, if it logged an exception."""
    code = answer.code
    if code in NEVER:
        return server_error(kind or code.name)(f"{code.name}: {answer.message!r}; {cause}")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED and not call.method.server_streaming:
        return Hang(f"no answer within {CALL_SECONDS} s")
    if code is grpc.StatusCode.UNAVAILABLE:
        return Hang(f"the server stopped answering: {answer.message!r}")
    if "Traceback" in answer.message:
        return UnclearError(f"a traceback reached the client: {answer.message[:500]!r}")
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return _unclear_violations(call, answer)
    return None


def _unclear_violations(call: Call, answer: Answer) -> Finding | None:
    fields = {f.name for f in call.method.input_type.fields}
    if not answer.violations:
        return UnclearError(f"INVALID_ARGUMENT names no field: {answer.message!r}")
    for path, reason in answer.violations:
        head = path.split(".")[0].split("[")[0]
        if not reason or head not in fields:
            return UnclearError(
                f"violation {path!r}: {reason!r} is not a path of the request "
                f"({sorted(fields)}) with a reason"
            )
    return None


def judge_summary(call: Call, answer: Answer) -> Finding | None:
    """RecordTransactions: every transaction sent is accepted, duplicate or refused, once."""
    if call.method.name != "RecordTransactions" or answer.code is not grpc.StatusCode.OK:
        return None
    summary = answer.responses[0]
    assert isinstance(summary, ppb.RecordTransactionsResponse)
    sent = sum(
        len(r.transactions) for r in call.requests if isinstance(r, ppb.RecordTransactionsRequest)
    )
    counted = summary.accepted + summary.duplicate + summary.refused
    indexes = [r.index for r in summary.refusals]
    if counted != sent or len(indexes) != summary.refused or len(set(indexes)) != len(indexes):
        return Miscount(f"sent {sent}, summary {describe(summary)}")
    fields = {f.name for f in ppb.Transaction.DESCRIPTOR.fields}
    for refusal in summary.refusals:
        head = refusal.field.split(".")[0].split("[")[0]
        if refusal.field and head not in fields:
            return UnclearError(f"refusal field {refusal.field!r} is not a transaction path")
    return None


def judge_leaks(call: Call, answer: Answer, other: OtherBrand) -> Finding | None:
    """Nothing of B in A's answer, unless A's own request named it."""
    sent = b"".join(r.SerializeToString() for r in call.requests)
    shown = b"".join(r.SerializeToString() for r in answer.responses)
    shown += answer.message.encode() + answer.raw_details
    for marker in other.markers:
        raw = marker.encode()
        if raw in shown and raw not in sent:
            return Leak(f"brand B's {marker!r} in the answer")
    return None


# ---------------------------------------------------------------- the runner


@dataclass
class Fuzzer:
    """Runs hypothesis examples of one method against brand A, from a worker thread."""

    loop: asyncio.AbstractEventLoop
    world: World
    other: OtherBrand
    logs: list[MutableMapping[str, Any]]
    shrink_seconds: float
    failed: dict[bytes, Finding] = field(default_factory=dict)
    first_failure: float | None = None
    # Status names seen, to tell how deep the examples got (printed with the test's output).
    codes: Counter[str] = field(default_factory=Counter)

    def run(self, examples: Callable[[], None]) -> None:
        """Runs a hypothesis test whose body calls `check` (in the worker thread); when the
        shrink budget ends it early, raises the shortest failing call of each kind found."""
        try:
            examples()
        except _Enough:
            shortest: dict[type[Finding], tuple[int, Finding]] = {}
            for key, finding in self.failed.items():
                kind = type(finding)
                if kind not in shortest or len(key) < shortest[kind][0]:
                    shortest[kind] = (len(key), finding)
            findings = [finding for _, finding in shortest.values()]
            if len(findings) == 1:
                raise findings[0] from None
            raise ExceptionGroup("findings (shrinking stopped at its budget)", findings) from None

    def check(self, call: Call) -> None:
        """The body of the hypothesis test (runs in the worker thread)."""
        key = call.key()
        if key in self.failed:
            raise self.failed[key]
        if self.first_failure and time.monotonic() - self.first_failure > self.shrink_seconds:
            raise _Enough
        future = asyncio.run_coroutine_threadsafe(self.examine(call), self.loop)
        try:
            finding = future.result(timeout=EXAMPLE_SECONDS)
        except concurrent.futures.TimeoutError:
            future.cancel()
            finding = Hang(f"the example took over {EXAMPLE_SECONDS} s (event loop blocked?)")
        if finding is not None:
            finding.add_note(f"request: {call!r}")
            self.failed[key] = finding
            self.first_failure = self.first_failure or time.monotonic()
            raise finding

    async def examine(self, call: Call) -> Finding | None:
        db = self.world.api.app.db
        brand = self.world.brand.code
        write = call.method.name in WRITES
        before = await rows_of(db, brand) if write else None
        mark = len(self.logs)
        answer = await invoke(self.world.api.channel, call, self.world.credential(call.role))
        self.codes[answer.code.name] += 1
        finding = (
            judge_status(call, answer, *_server_cause(self.logs[mark:]))
            or judge_summary(call, answer)
            or judge_leaks(call, answer, self.other)
        )
        if finding is not None:
            return finding
        # A stream of several messages may keep the batches before a bad one; one message
        # is one unit.
        if before is not None and answer.code is not grpc.StatusCode.OK and len(call.requests) == 1:
            changed = differences(before, await rows_of(db, brand))
            if changed:
                return CommittedBehindError(
                    f"{answer.code.name} ({answer.message[:200]!r}) but rows changed: "
                    + "; ".join(changed[:6])
                )
        return None


def _server_cause(entries: Sequence[MutableMapping[str, Any]]) -> tuple[str, str]:
    """The exception the server logged for the call ("unhandled error"): its kind (type and
    the innermost frame of the server's own code) and a description with its message."""
    for entry in entries:
        exc = entry.get("exc_info")
        if not isinstance(exc, BaseException):
            continue
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if "attain_server" in f.filename or "attain_worker" in f.filename
        ]
        where = ""
        if frames:
            where = f"{frames[-1].filename.rsplit('/src/', 1)[-1]}:{frames[-1].lineno}"
        kind = f"{type(exc).__name__} {where}"
        return kind, f"server raised {type(exc).__name__}: {str(exc)[:300]} at {where}"
    return "", ""


def calls(method: MethodDescriptor, hints: Hints, roles: Sequence[str]) -> st.SearchStrategy[Call]:
    """Calls of `method`: a role it allows, and one request (1-3 for a client stream)."""
    one = messages(method.input_type, hints)

    @st.composite
    def build(draw: st.DrawFn) -> Call:  # a composite, so hypothesis prints Call's repr
        role = draw(st.sampled_from(list(roles)))
        count = draw(st.integers(1, 3)) if method.client_streaming else 1
        return Call(method, role, tuple(draw(one) for _ in range(count)))

    return build()
