"""The one gate every Attain call passes: authenticate, authorise, log, and map errors.

A server interceptor wraps each attain.v1 handler so that, before the handler runs, the
bearer key is resolved to a Principal and the method's allowed roles are checked; a wrong
or missing key never reaches a handler. Afterwards one log line records brand, method,
status and duration, and typed domain errors become rich gRPC statuses. Health and
reflection stay open.

A server stream also takes a slot of its key and brand (open_streams.LiveStreams) for as
long as it lives, and the gate writes what its handler yields: a message the client does not
read in time ends the stream with UNAVAILABLE, so a stalled reader holds nothing for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import grpc
import structlog

from attain_server.application.auth import KeyResolver, Principal
from attain_server.application.open_streams import LiveStreams, OpenStream, StreamRefused
from attain_server.domain.errors import AttainError, FieldViolation, InvalidArgument
from attain_server.domain.model import Role

from .errors import plain_status, status_for

log = structlog.get_logger("attain.rpc")

CURRENT_PRINCIPAL: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")

ADMIN = frozenset({Role.BRAND_ADMIN})
ANY = frozenset(Role)
ADMIN_OR_MEMBER = frozenset({Role.BRAND_ADMIN, Role.MEMBER})
ADMIN_OR_INGEST = frozenset({Role.BRAND_ADMIN, Role.INGEST})

# Who may call what. A method missing here is refused (fail closed); a test checks that
# every method of the three services is listed.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "/attain.v1.TargetService/GetBrand": ANY,
    "/attain.v1.TargetService/UpdateBrand": ADMIN,
    "/attain.v1.TargetService/CreateApiKey": ADMIN,
    "/attain.v1.TargetService/ListApiKeys": ADMIN,
    "/attain.v1.TargetService/RevokeApiKey": ADMIN,
    "/attain.v1.TargetService/CreateProgram": ADMIN,
    "/attain.v1.TargetService/GetProgram": ADMIN,
    "/attain.v1.TargetService/ListPrograms": ADMIN,
    "/attain.v1.TargetService/UpdateProgram": ADMIN,
    "/attain.v1.TargetService/UpsertMember": ADMIN,
    "/attain.v1.TargetService/GetMember": ADMIN_OR_MEMBER,
    "/attain.v1.TargetService/ListMembers": ADMIN,
    "/attain.v1.TargetService/CreateTarget": ADMIN,
    "/attain.v1.TargetService/GetTarget": ADMIN_OR_MEMBER,
    "/attain.v1.TargetService/ListTargets": ADMIN_OR_MEMBER,
    "/attain.v1.TargetService/UpdateTarget": ADMIN,
    "/attain.v1.TargetService/ArchiveTarget": ADMIN,
    "/attain.v1.TargetService/SetTargetValues": ADMIN,
    "/attain.v1.TargetService/ListTargetValues": ADMIN,
    "/attain.v1.TargetService/ListCycles": ADMIN_OR_MEMBER,
    "/attain.v1.TargetService/SetSftpSettings": ADMIN,
    "/attain.v1.TargetService/GetSftpSettings": ADMIN,
    "/attain.v1.TargetService/ListImports": ADMIN,
    "/attain.v1.ProgressService/RecordTransaction": ADMIN_OR_INGEST,
    "/attain.v1.ProgressService/RecordTransactions": ADMIN_OR_INGEST,
    "/attain.v1.ProgressService/GetProgress": ADMIN_OR_MEMBER,
    "/attain.v1.ProgressService/ListMemberProgress": ADMIN_OR_MEMBER,
    "/attain.v1.ProgressService/ListProgress": ADMIN,
    "/attain.v1.ProgressService/WatchProgress": ADMIN_OR_MEMBER,
    "/attain.v1.RewardService/ListAwards": ADMIN_OR_MEMBER,
    "/attain.v1.RewardService/GetBalance": ADMIN_OR_MEMBER,
    "/attain.v1.RewardService/ListLedgerEntries": ADMIN_OR_MEMBER,
    "/attain.v1.RewardService/AdjustPoints": ADMIN,
    "/attain.v1.RewardService/WatchAwards": ADMIN_OR_MEMBER,
    "/attain.v1.RewardService/LoadVouchers": ADMIN,
    "/attain.v1.RewardService/ListVoucherPools": ADMIN,
    "/attain.v1.RewardService/ListBadges": ADMIN_OR_MEMBER,
}

OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def principal() -> Principal:
    """The caller of the current call (set by the gate before the handler runs)."""
    return CURRENT_PRINCIPAL.get()


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, reason: str) -> None:
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason


def _bearer(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _Refused(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "the authorization metadata must be 'Bearer <key>'",
                    "MALFORMED_CREDENTIALS",
                )
            return token.strip()
    raise _Refused(
        grpc.StatusCode.UNAUTHENTICATED,
        "missing 'authorization: Bearer <key>' metadata",
        "MISSING_CREDENTIALS",
    )


def _request_id(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == "x-request-id":
            text = value.decode() if isinstance(value, bytes) else value
            return text[:64]
    return secrets.token_hex(8)


Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]

NOT_READ = (
    "the stream was closed because the client did not read its messages for {seconds:g} s; "
    "reconnect and keep reading (WatchAwards resumes from the last cursor you received)"
)
SHUTTING_DOWN = (
    "the server is shutting down: reconnect, and another server will serve you (WatchAwards "
    "resumes from the last cursor you received)"
)


class Gate(grpc.aio.ServerInterceptor):
    def __init__(self, resolver: KeyResolver, streams: LiveStreams) -> None:
        self._resolver = resolver
        self._streams = streams

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        metadata = handler_call_details.invocation_metadata
        decode = _decoding(handler.request_deserializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, metadata),
                request_deserializer=decode,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method, metadata, stream_in=True),
                request_deserializer=decode,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, method, metadata),
                request_deserializer=decode,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(handler.stream_stream, method, metadata, stream_in=True),
            request_deserializer=decode,
            response_serializer=handler.response_serializer,
        )

    async def _admit(self, method: str, metadata: Any) -> Principal:
        """Resolves the key and checks the role; raises _Refused before any handler work."""
        secret = _bearer(metadata)
        who = await self._resolver.resolve(secret)
        if who is None:
            raise _Refused(
                grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked key", "INVALID_CREDENTIALS"
            )
        structlog.contextvars.bind_contextvars(brand=who.brand, role=who.role.value)
        allowed = PERMISSIONS.get(method, frozenset())
        if who.role not in allowed:
            raise _Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                f"a {who.role.value} key may not call {method.rsplit('/', 1)[-1]}",
                "ROLE_NOT_ALLOWED",
            )
        return who

    def _begin(self, method: str, metadata: Any) -> float:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            method=method.rsplit("/", 1)[-1], request_id=_request_id(metadata)
        )
        return time.perf_counter()

    async def _fail(self, context: grpc.aio.ServicerContext[Any, Any], exc: BaseException) -> str:
        """Turns an exception into the call's status; returns the status name for the log."""
        if isinstance(exc, _Refused):
            await context.abort_with_status(plain_status(exc.code, exc.message, exc.reason))
        if isinstance(exc, AttainError):
            status = status_for(exc)
            await context.abort_with_status(status)
        log.error("unhandled error", exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
        return "INTERNAL"  # pragma: no cover - abort raises

    @staticmethod
    def _status_name(exc: BaseException) -> str:
        if isinstance(exc, _Refused):
            return exc.code.name
        if isinstance(exc, AttainError):
            return status_for(exc).code.name
        if isinstance(exc, asyncio.CancelledError):
            return "CANCELLED"
        return "INTERNAL"

    def _unary(self, inner: Any, method: str, metadata: Any, *, stream_in: bool = False) -> Any:
        async def behaviour(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            start = self._begin(method, metadata)
            status = "OK"
            try:
                CURRENT_PRINCIPAL.set(await self._admit(method, metadata))
                return await inner(_decoded(request, stream_in), context)
            except (_Refused, AttainError, Exception, asyncio.CancelledError) as exc:
                if _is_abort(exc):
                    status = _code_of(context)
                    raise
                status = self._status_name(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                await self._fail(context, exc)
                raise  # pragma: no cover - _fail always raises
            finally:
                _log_call(status, start)

        return behaviour

    def _streaming(self, inner: Any, method: str, metadata: Any, *, stream_in: bool = False) -> Any:
        # A coroutine, not a generator: it writes each message itself, so that it can give
        # up on a client that does not read.
        async def behaviour(request: Any, context: Ctx) -> None:
            start = self._begin(method, metadata)
            status = "OK"
            try:
                who = await self._admit(method, metadata)
                CURRENT_PRINCIPAL.set(who)
                stream = self._open(who)
                try:
                    items = inner(_decoded(request, stream_in), context)
                    status = await self._relay(items, context, stream)
                finally:
                    self._streams.close(stream)
            except (_Refused, AttainError, Exception, asyncio.CancelledError) as exc:
                if _is_abort(exc):
                    status = _code_of(context)
                    raise
                status = self._status_name(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                # Not abort(): it waits until the status is sent, which on a stream comes
                # after messages the client may never read.
                _end(context, self._status_of(exc))
            finally:
                _log_call(status, start)

        return behaviour

    def _open(self, who: Principal) -> OpenStream:
        try:
            return self._streams.open(who.brand, who.key_id)
        except StreamRefused as exc:
            code = grpc.StatusCode.RESOURCE_EXHAUSTED
            if exc.shutting_down:
                code = grpc.StatusCode.UNAVAILABLE
            raise _Refused(code, exc.message, exc.reason) from None

    async def _relay(
        self, items: AsyncGenerator[Any, None], context: Ctx, stream: OpenStream
    ) -> str:
        """Writes what the handler yields, each message within the write timeout; returns the
        status for the log. The handler's generator is closed whichever way this ends, so
        its subscription goes with it."""
        timeout = self._streams.write_timeout
        try:
            async with contextlib.aclosing(items):
                async for item in items:
                    try:
                        async with asyncio.timeout(timeout):
                            await context.write(item)
                    except TimeoutError:
                        message = NOT_READ.format(seconds=timeout)
                        return _end(context, _unavailable(message, "STREAM_NOT_READ"))
        except asyncio.CancelledError:
            if not stream.ended_by_server:
                raise  # the client went away
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return _end(context, _unavailable(SHUTTING_DOWN, "SERVER_SHUTTING_DOWN"))
        return "OK"

    @staticmethod
    def _status_of(exc: BaseException) -> grpc.Status:
        if isinstance(exc, _Refused):
            return plain_status(exc.code, exc.message, exc.reason)
        if isinstance(exc, AttainError):
            return status_for(exc)
        log.error("unhandled error", exc_info=exc)
        return plain_status(
            grpc.StatusCode.INTERNAL, "internal error; see the server log", "INTERNAL"
        )


def _unavailable(message: str, reason: str) -> grpc.Status:
    return plain_status(grpc.StatusCode.UNAVAILABLE, message, reason)


def _end(context: Ctx, status: grpc.Status) -> str:
    """Gives a stream its final status without waiting for it to be sent; returns its name."""
    context.set_trailing_metadata(status.trailing_metadata)
    context.set_code(status.code)
    context.set_details(status.details)
    return str(status.code.name)


class _Undecodable:
    """What the gate's deserializer gives for bytes that are no valid request message
    (corrupt wire format, a string field that is not UTF-8): grpc.aio would answer an
    exception raised there with UNKNOWN and the exception's class, before the gate could
    check the key. The handler's wrapper refuses it once the caller is admitted."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def error(self, index: int | None = None) -> InvalidArgument:
        what = "the request" if index is None else f"message {index} of the request stream"
        reason = f"is not a valid {self.type_name} message"
        return InvalidArgument([FieldViolation("request", reason)], f"{what} {reason}")


def _decoding(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer`` giving an _Undecodable instead of raising."""
    if deserializer is None:
        return None
    message_type = getattr(deserializer, "__self__", None)  # XRequest.FromString's class
    type_name = getattr(getattr(message_type, "DESCRIPTOR", None), "full_name", "request")

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # DecodeError, whatever its wording: the bytes are the caller's
            return _Undecodable(type_name)

    return decode


def _decoded(request: Any, stream_in: bool) -> Any:
    """The request for the handler: refused if undecodable; a request stream is checked
    message by message as the handler reads it."""
    if stream_in:
        return _decoded_stream(request)
    if isinstance(request, _Undecodable):
        raise request.error()
    return request


async def _decoded_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    index = 0
    async for item in requests:
        if isinstance(item, _Undecodable):
            raise item.error(index)
        yield item
        index += 1


def _is_abort(exc: BaseException) -> bool:
    # grpc.aio raises AbortError from context.abort*(); it is already a finished status.
    return type(exc).__name__ == "AbortError"


def _code_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else str(code or "UNKNOWN")


def _log_call(status: str, start: float) -> None:
    duration_ms = round((time.perf_counter() - start) * 1000, 3)
    if status in ("OK", "CANCELLED"):
        log.info("rpc", status=status, duration_ms=duration_ms)
    else:
        log.warning("rpc", status=status, duration_ms=duration_ms)
