"""The gate every call passes before a servicer sees it: who is calling (client certificate over TLS 1.3), may
that role call this method (deny by default), is the caller within its rate and stream limits, is the
deadline still open. Every refusal is audited; the admitted caller is handed on in `current_caller()`."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import NoReturn

import grpc
from cryptography import x509
from google.protobuf.message import DecodeError
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from fr_gateway.audit.log import AuditUnavailable
from fr_gateway.audit.trail import AuditTrail, Caller, Operation
from fr_gateway.contract import command_center_pb2, gallery_pb2, recognition_pb2, watchlists_pb2
from fr_gateway.metrics import OPEN_STREAMS
from fr_gateway.security.certs import CertificateError, principal_of

RECOGNITION = recognition_pb2.DESCRIPTOR.services_by_name["Recognition"].full_name
GALLERY = gallery_pb2.DESCRIPTOR.services_by_name["Gallery"].full_name
WATCHLISTS = watchlists_pb2.DESCRIPTOR.services_by_name["Watchlists"].full_name
COMMAND_CENTER = command_center_pb2.DESCRIPTOR.services_by_name["CommandCenter"].full_name


def _methods(service: str, *names: str) -> frozenset[str]:
    return frozenset(f"/{service}/{name}" for name in names)


IDENTIFY = _methods(RECOGNITION, "Identify", "IdentifyStream")
VERIFY = _methods(RECOGNITION, "Verify")
WATCH = _methods(RECOGNITION, "WatchDecisions")
INFO = _methods(RECOGNITION, "GetInfo")
ENROL = _methods(GALLERY, "Enroll", "EnrollStream", "Remove")
KEYS = _methods(GALLERY, "RotateKeys")
ALERTS = _methods(RECOGNITION, "WatchAlerts")
LIST_WATCHLISTS = _methods(WATCHLISTS, "ListWatchlists")
CHANGE_WATCHLISTS = _methods(WATCHLISTS, "CreateWatchlist", "AddEntry", "RemoveEntry") | LIST_WATCHLISTS
ADJUDICATE = _methods(WATCHLISTS, "Adjudicate")
CONSOLE = _methods(COMMAND_CENTER, "ListCameras", "GetAnalytics", "RecordView")
HEALTH = _methods(health.SERVICE_NAME, "Check", "Watch")
REFLECTION = _methods(reflection.SERVICE_NAME, "ServerReflectionInfo")
# What each role may call on the serving port; anything else is PERMISSION_DENIED. Auditors read the log
# with the CLI and call nothing here.
ROLE_METHODS: dict[str, frozenset[str]] = {
    "camera": IDENTIFY | INFO | HEALTH,
    "verifier": VERIFY | INFO | HEALTH,
    "integrator": ENROL | CHANGE_WATCHLISTS | INFO | HEALTH | REFLECTION,
    "monitor": WATCH | ALERTS | INFO | HEALTH,
    # a Command Center operator or console: watches cameras, decisions and alerts, adjudicates alerts, reads the
    # analytics' counts and records who looked at what
    "operator": WATCH | ALERTS | ADJUDICATE | LIST_WATCHLISTS | CONSOLE | INFO | HEALTH,
    "auditor": frozenset(),
    "admin": IDENTIFY | VERIFY | ENROL | KEYS | WATCH | ALERTS | CHANGE_WATCHLISTS | ADJUDICATE | CONSOLE | INFO
    | HEALTH | REFLECTION,
}
TLS_VERSION = "TLSv1.3"
# gRPC's public constructors of a method handler, by the attribute that holds its behaviour
HANDLER_FACTORIES = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}
STREAM_PATIENCE_S = 5.0  # how long one message of a client stream waits for its rate-limit token

Context = grpc.ServicerContext | grpc.aio.ServicerContext
_current_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller")


def current_caller() -> Caller:
    """The caller the guard admitted for the call this thread is serving."""
    return _current_caller.get()


def operation_of(method: str) -> Operation:
    """The audit's name for a served method ("/frgateway.v1.Recognition/Identify" is Identify)."""
    return Operation(method.rsplit("/", 1)[-1])


class TokenBuckets:
    """Per-client token buckets (rate per second, burst); a handful of lines, so no library for it."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate, self._burst = rate, burst
        self._state: dict[str, tuple[float, float]] = {}  # client -> (tokens, last refill)
        self._lock = threading.Lock()

    def _take_or_wait(self, client: str) -> float:
        """0 when `client` took a token, else the seconds until one refills."""
        if self._rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._state.get(client, (float(self._burst), now))
            tokens = min(float(self._burst), tokens + (now - last) * self._rate)
            allowed = tokens >= 1.0
            self._state[client] = (tokens - 1.0 if allowed else tokens, now)
        return 0.0 if allowed else (1.0 - tokens) / self._rate

    def take(self, client: str, patience: float = 0.0) -> bool:
        """A token for `client`, waiting up to `patience` seconds for one to refill."""
        give_up = time.monotonic() + patience
        while (wait := self._take_or_wait(client)) > 0:
            if time.monotonic() + wait > give_up:
                return False
            time.sleep(wait)
        return True

    async def take_async(self, client: str, patience: float) -> bool:
        """take(), for a coroutine: the event loop serves other calls while this one waits for its token."""
        give_up = time.monotonic() + patience
        while (wait := self._take_or_wait(client)) > 0:
            if time.monotonic() + wait > give_up:
                return False
            await asyncio.sleep(wait)
        return True


class StreamCounter:
    """Open streams per client, capped."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def enter(self, client: str) -> bool:
        with self._lock:
            if self._cap > 0 and self._open.get(client, 0) >= self._cap:
                return False
            self._open[client] = self._open.get(client, 0) + 1
            OPEN_STREAMS.inc()
            return True

    def leave(self, client: str) -> None:
        with self._lock:
            self._open[client] -= 1
            OPEN_STREAMS.dec()


@functools.lru_cache(maxsize=4096)
def _principal(pem: bytes):
    return principal_of(x509.load_pem_x509_certificate(pem))


class Refused(Exception):
    """A call the guard turns away: the status the caller gets, and who is refused (with the camera id the call
    named, when it names one) for the audit record. A servicer raises it too; the guard audits and answers it."""

    def __init__(self, code: grpc.StatusCode, detail: str, caller: Caller, camera_id: str = "") -> None:
        super().__init__(detail)
        self.code, self.detail, self.caller, self.camera_id = code, detail, caller, camera_id


class Guard(grpc.aio.ServerInterceptor):
    """Wraps every method: the handler gets an admitted caller and a parsed message, and whatever Refused it
    raises is audited and answered with its status. Coroutine handlers run on the server's event loop; plain
    functions on its thread pool (and may not stream responses: those are coroutines here)."""

    def __init__(self, trail: AuditTrail, secure: bool, rate: float, burst: int, streams_per_client: int,
                 ready: Callable[[], bool]) -> None:
        self._trail = trail
        self._ready = ready
        self._secure = secure
        self._buckets = TokenBuckets(rate, burst)
        self._streams = StreamCounter(streams_per_client)

    # ---- who, and may they ----

    def _caller(self, context: Context) -> Caller:
        peer = context.peer()
        if not self._secure:
            return Caller("insecure/" + peer.rsplit(":", 1)[0], "insecure", peer)
        unknown = Caller("unknown", "", peer)
        auth = context.auth_context()
        version = b"".join(auth.get("ssl_tls_version", [])).decode() or "none"
        if version != TLS_VERSION:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, f"{TLS_VERSION} is required; this connection uses "
                                                           f"{version}", unknown)
        certificates = auth.get("x509_pem_cert")
        if not certificates:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required", unknown)
        try:
            principal = _principal(certificates[0])
        except (CertificateError, ValueError) as exc:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, f"client certificate not usable: {exc}", unknown) from exc
        return Caller(str(principal), principal.role, peer)

    def _admit(self, context: Context, method: str) -> Caller:
        """The admitted caller; Refused otherwise."""
        caller = self._caller(context)
        if self._secure and method not in ROLE_METHODS.get(caller.role, frozenset()):
            raise Refused(grpc.StatusCode.PERMISSION_DENIED,
                          f"role {caller.role!r} may not call {operation_of(method)}", caller)
        if not self._ready() and method not in HEALTH:
            raise Refused(grpc.StatusCode.UNAVAILABLE, "the gateway is still loading its gallery; retry shortly",
                          caller)
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise Refused(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the call started", caller)
        if not self._buckets.take(caller.identity):
            raise self._over_rate(caller)
        return caller

    def _refusal_status(self, refused: Refused, method: str, started: float) -> tuple[grpc.StatusCode, str]:
        """Audit the refusal; the status to answer it with (UNAVAILABLE when it could not be audited)."""
        try:
            self._trail.refusal(refused.caller, operation_of(method), refused.code.name, refused.detail,
                                camera_id=refused.camera_id, started=started)
        except AuditUnavailable as exc:
            return grpc.StatusCode.UNAVAILABLE, str(exc)
        return refused.code, refused.detail

    def _refuse(self, context: grpc.ServicerContext, refused: Refused, method: str, started: float) -> NoReturn:
        context.abort(*self._refusal_status(refused, method, started))
        raise AssertionError("abort returned")  # gRPC's abort raises

    async def _refuse_async(self, context: grpc.aio.ServicerContext, refused: Refused, method: str,
                            started: float) -> NoReturn:
        """The audit's write waits on the thread pool, not on the event loop every stream shares."""
        status = await asyncio.get_running_loop().run_in_executor(
            None, self._refusal_status, refused, method, started)
        await context.abort(*status)
        raise AssertionError("abort returned")

    def _decoded(self, decode: Callable | None, raw: bytes, caller: Caller, method: str):
        """Parse the message here rather than in gRPC, so bytes that are not one answer INVALID_ARGUMENT
        (gRPC itself would say INTERNAL) and the attempt is audited."""
        if decode is None:
            return raw
        try:
            return decode(raw)
        except (DecodeError, ValueError, TypeError) as exc:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                          f"not a valid {operation_of(method)} request message: {exc}", caller) from None

    def _over_rate(self, caller: Caller) -> Refused:
        return Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, f"rate limit for {caller.identity} exceeded", caller)

    def _metered(self, decode: Callable | None, requests: Iterator, caller: Caller, method: str) -> Iterator:
        """Each message of a client stream costs a token too: a stream cannot dodge the rate limit. A stream
        that outruns it is slowed to the rate (gRPC's flow control holds the sender back), and refused only when
        no token comes for STREAM_PATIENCE_S: a bulk enrolment runs at the rate instead of failing."""
        for raw in requests:
            if not self._buckets.take(caller.identity, STREAM_PATIENCE_S):
                raise self._over_rate(caller)
            yield self._decoded(decode, raw, caller, method)

    async def _metered_async(self, decode: Callable | None, requests: AsyncIterator, caller: Caller,
                             method: str) -> AsyncIterator:
        """_metered, for a coroutine."""
        async for raw in requests:
            if not await self._buckets.take_async(caller.identity, STREAM_PATIENCE_S):
                raise self._over_rate(caller)
            yield self._decoded(decode, raw, caller, method)

    # ---- wiring into gRPC ----

    async def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        for kind, make_handler in HANDLER_FACTORIES.items():
            behaviour = getattr(handler, kind)
            if behaviour is None:
                continue
            if inspect.isasyncgenfunction(behaviour):
                wrap = self._stream
            elif inspect.iscoroutinefunction(behaviour):
                wrap = self._coroutine
            elif handler.response_streaming:
                raise TypeError(f"{method}: a response stream is served by a coroutine here, not a thread")
            else:
                wrap = self._function
            wrapped = wrap(behaviour, method, handler.request_streaming,
                           handler.request_streaming or handler.response_streaming, handler.request_deserializer)
            # the message is parsed in the wrapper (see _decoded), so the new handler has no deserializer
            return make_handler(wrapped, request_deserializer=None, response_serializer=handler.response_serializer)
        return handler

    def _enter(self, request, context: Context, method: str, request_streaming: bool, streaming: bool,
               decode: Callable | None) -> tuple[Caller, object]:
        """What every call does first: admit the caller, parse its message, and take a stream slot when it is a
        stream (its wrapper meters a stream of messages). Refused otherwise."""
        caller = self._admit(context, method)
        if not request_streaming:
            request = self._decoded(decode, request, caller, method)
        if streaming and not self._streams.enter(caller.identity):
            raise Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{caller.identity} has too many open streams", caller)
        return caller, request

    def _function(self, behaviour: Callable, method: str, request_streaming: bool, streaming: bool,
                  decode: Callable | None) -> Callable:
        """A plain function's call, on the server's thread pool."""
        def run(request, context: grpc.ServicerContext):
            started = time.perf_counter()
            try:
                caller, request = self._enter(request, context, method, request_streaming, streaming, decode)
            except Refused as refused:
                self._refuse(context, refused, method, started)
            if request_streaming:
                request = self._metered(decode, request, caller, method)
            token = _current_caller.set(caller)
            try:
                return behaviour(request, context)
            except Refused as refused:
                self._refuse(context, refused, method, started)
            finally:
                _current_caller.reset(token)  # this pool thread serves other calls next
                if streaming:
                    self._streams.leave(caller.identity)
        return run

    async def _admitted(self, request, context: grpc.aio.ServicerContext, method: str, request_streaming: bool,
                        streaming: bool, decode: Callable | None, started: float) -> tuple[Caller, object]:
        try:
            caller, request = self._enter(request, context, method, request_streaming, streaming, decode)
        except Refused as refused:
            await self._refuse_async(context, refused, method, started)
        if request_streaming:
            request = self._metered_async(decode, request, caller, method)
        _current_caller.set(caller)  # each call runs in a task of its own, with a context of its own
        return caller, request

    def _coroutine(self, behaviour: Callable, method: str, request_streaming: bool, streaming: bool,
                   decode: Callable | None) -> Callable:
        """A coroutine's call, on the event loop."""
        async def run(request, context: grpc.aio.ServicerContext):
            started = time.perf_counter()
            caller, request = await self._admitted(request, context, method, request_streaming, streaming, decode,
                                                   started)
            try:
                return await behaviour(request, context)
            except Refused as refused:
                await self._refuse_async(context, refused, method, started)
            finally:
                if streaming:
                    self._streams.leave(caller.identity)
        return run

    def _stream(self, behaviour: Callable, method: str, request_streaming: bool, streaming: bool,
                decode: Callable | None) -> Callable:
        """An async generator's call (a response stream), on the event loop."""
        async def run(request, context: grpc.aio.ServicerContext):
            started = time.perf_counter()
            caller, request = await self._admitted(request, context, method, request_streaming, streaming, decode,
                                                   started)
            try:
                async for response in behaviour(request, context):
                    yield response
            except Refused as refused:
                await self._refuse_async(context, refused, method, started)
            finally:
                self._streams.leave(caller.identity)
        return run
