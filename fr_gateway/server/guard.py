"""The gate every call passes before a servicer sees it: who is calling (client certificate over TLS 1.3), may
that role call this method (deny by default), is the caller within its rate and stream limits, is the
deadline still open. Every refusal is audited; the admitted caller is handed on in `current_caller()`."""

from __future__ import annotations

import contextvars
import functools
import threading
import time
from collections.abc import Callable, Iterator

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

    def take(self, client: str, patience: float = 0.0) -> bool:
        """A token for `client`, waiting up to `patience` seconds for one to refill."""
        if self._rate <= 0:
            return True
        give_up = time.monotonic() + patience
        while True:
            now = time.monotonic()
            with self._lock:
                tokens, last = self._state.get(client, (float(self._burst), now))
                tokens = min(float(self._burst), tokens + (now - last) * self._rate)
                allowed = tokens >= 1.0
                self._state[client] = (tokens - 1.0 if allowed else tokens, now)
            refilled = now + (1.0 - tokens) / self._rate
            if allowed or refilled > give_up:
                return allowed
            time.sleep(refilled - now)


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
    """A call the guard turns away, with the status the caller gets."""

    def __init__(self, code: grpc.StatusCode, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


class Guard(grpc.ServerInterceptor):
    def __init__(self, trail: AuditTrail, secure: bool, rate: float, burst: int, streams_per_client: int,
                 ready: Callable[[], bool]) -> None:
        self._trail = trail
        self._ready = ready
        self._secure = secure
        self._buckets = TokenBuckets(rate, burst)
        self._streams = StreamCounter(streams_per_client)

    # ---- who, and may they ----

    def _caller(self, context: grpc.ServicerContext) -> Caller:
        peer = context.peer()
        if not self._secure:
            return Caller("insecure/" + peer.rsplit(":", 1)[0], "insecure", peer)
        auth = context.auth_context()
        version = b"".join(auth.get("ssl_tls_version", [])).decode() or "none"
        if version != TLS_VERSION:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, f"{TLS_VERSION} is required; this connection uses "
                                                           f"{version}")
        certificates = auth.get("x509_pem_cert")
        if not certificates:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required")
        try:
            principal = _principal(certificates[0])
        except (CertificateError, ValueError) as exc:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, f"client certificate not usable: {exc}") from exc
        return Caller(str(principal), principal.role, peer)

    def _admit(self, context: grpc.ServicerContext, method: str, started: float) -> Caller:
        """The admitted caller, or an audited refusal that aborts the call."""
        caller = Caller("unknown", "", context.peer())
        try:
            caller = self._caller(context)
            if self._secure and method not in ROLE_METHODS.get(caller.role, frozenset()):
                raise Refused(grpc.StatusCode.PERMISSION_DENIED,
                              f"role {caller.role!r} may not call {operation_of(method)}")
            if not self._ready() and method not in HEALTH:
                raise Refused(grpc.StatusCode.UNAVAILABLE, "the gateway is still loading its gallery; retry shortly")
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                raise Refused(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the call started")
            if not self._buckets.take(caller.identity):
                raise Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, f"rate limit for {caller.identity} exceeded")
        except Refused as refused:
            self.refuse(context, caller, method, refused, started)
        return caller

    def refuse(self, context: grpc.ServicerContext, caller: Caller, method: str, refused: Refused,
               started: float | None = None, camera_id: str = "") -> None:
        """Audit the refusal, then abort the call with its status (this raises)."""
        try:
            self._trail.refusal(caller, operation_of(method), refused.code.name, refused.detail,
                                camera_id=camera_id, started=started)
        except AuditUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        context.abort(refused.code, refused.detail)

    def _decoded(self, decode: Callable | None, raw: bytes, caller: Caller, context: grpc.ServicerContext,
                 method: str):
        """Parse the message here rather than in gRPC, so bytes that are not one answer INVALID_ARGUMENT
        (gRPC itself would say INTERNAL) and the attempt is audited."""
        if decode is None:
            return raw
        try:
            return decode(raw)
        except (DecodeError, ValueError, TypeError) as exc:
            self.refuse(context, caller, method, Refused(
                grpc.StatusCode.INVALID_ARGUMENT, f"not a valid {operation_of(method)} request message: {exc}"))

    def _metered(self, decode: Callable | None, requests: Iterator, caller: Caller, context: grpc.ServicerContext,
                 method: str) -> Iterator:
        """Each message of a client stream costs a token too: a stream cannot dodge the rate limit. A stream
        that outruns it is slowed to the rate (gRPC's flow control holds the sender back), and refused only when
        no token comes for STREAM_PATIENCE_S: a bulk enrolment runs at the rate instead of failing."""
        for raw in requests:
            if not self._buckets.take(caller.identity, STREAM_PATIENCE_S):
                self.refuse(context, caller, method, Refused(
                    grpc.StatusCode.RESOURCE_EXHAUSTED, f"rate limit for {caller.identity} exceeded"))
            yield self._decoded(decode, raw, caller, context, method)

    # ---- wiring into gRPC ----

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        for kind, make_handler in HANDLER_FACTORIES.items():
            behaviour = getattr(handler, kind)
            if behaviour is not None:
                wrap = self._streaming if handler.response_streaming else self._unary
                wrapped = wrap(behaviour, method, handler.request_streaming, handler.request_deserializer)
                # the message is parsed in the wrapper (see _decoded), so the new handler has no deserializer
                return make_handler(wrapped, request_deserializer=None,
                                    response_serializer=handler.response_serializer)
        return handler

    def _enter_stream(self, context: grpc.ServicerContext, caller: Caller, method: str, started: float) -> None:
        if not self._streams.enter(caller.identity):
            self.refuse(context, caller, method, Refused(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"{caller.identity} has too many open streams"), started)

    def _enter(self, request, context: grpc.ServicerContext, method: str, request_streaming: bool,
               streaming: bool, decode: Callable | None) -> tuple[Caller, object]:
        """What every call does first: admit the caller, parse its message (or meter its stream of them), and
        take a stream slot when it is a stream."""
        started = time.perf_counter()
        caller = self._admit(context, method, started)
        if not request_streaming:
            request = self._decoded(decode, request, caller, context, method)
        if streaming:
            self._enter_stream(context, caller, method, started)
        if request_streaming:
            request = self._metered(decode, request, caller, context, method)
        return caller, request

    def _unary(self, behaviour: Callable, method: str, request_streaming: bool, decode: Callable | None) -> Callable:
        def run(request, context):
            caller, request = self._enter(request, context, method, request_streaming, request_streaming, decode)
            token = _current_caller.set(caller)
            try:
                return behaviour(request, context)
            finally:
                _current_caller.reset(token)
                if request_streaming:
                    self._streams.leave(caller.identity)
        return run

    def _streaming(self, behaviour: Callable, method: str, request_streaming: bool,
                   decode: Callable | None) -> Callable:
        def run(request, context):
            caller, request = self._enter(request, context, method, request_streaming, True, decode)
            token = _current_caller.set(caller)
            try:
                yield from behaviour(request, context)
            finally:
                _current_caller.reset(token)
                self._streams.leave(caller.identity)
        return run
