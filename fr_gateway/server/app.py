"""Assemble and run the gateway: models, gallery, micro-batching stages, audit log, the guard, the two services,
health and reflection, on a mutual-TLS port (or a plaintext one when asked)."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import signal
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIServer

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from fr_gateway.analytics import Aggregates
from fr_gateway.audit.keys import AuditKeyError
from fr_gateway.audit.trail import open_trail
from fr_gateway.config import Settings
from fr_gateway.contract import (
    command_center_pb2,
    command_center_pb2_grpc,
    gallery_pb2,
    gallery_pb2_grpc,
    recognition_pb2,
    recognition_pb2_grpc,
    watchlists_pb2,
    watchlists_pb2_grpc,
)
from fr_gateway.faces.engine import FaceEngine, load_engine
from fr_gateway.metrics import RUNTIME
from fr_gateway.security.certs import TlsFiles
from fr_gateway.server.decisions import Cameras, Hub
from fr_gateway.server.guard import Guard
from fr_gateway.server.handshakes import HandshakeTap
from fr_gateway.server.servicers import (
    CommandCenterServicer,
    GalleryServicer,
    RecognitionServicer,
    WatchlistsServicer,
)
from fr_gateway.server.threads import ElasticThreadPool
from fr_gateway.service import GatewayService
from fr_gateway.transport import CannotListen, server_credentials

log = logging.getLogger(__name__)
Value = TypeVar("Value")

SERVICE_NAMES = (
    recognition_pb2.DESCRIPTOR.services_by_name["Recognition"].full_name,
    gallery_pb2.DESCRIPTOR.services_by_name["Gallery"].full_name,
    watchlists_pb2.DESCRIPTOR.services_by_name["Watchlists"].full_name,
    command_center_pb2.DESCRIPTOR.services_by_name["CommandCenter"].full_name,
)


class Gateway:
    """A started gateway: `port` is the bound port (useful with port 0), `stop()` drains and closes.
    With `tls` the port speaks mutual TLS only; without it, plaintext (for --insecure).

    gRPC is served by grpc.aio on an event loop of its own thread: the calls that see faces (Identify,
    IdentifyStream) and the watches are coroutines there, so no thread is held for a stream or a face in flight
    and one thread reads and answers every camera (a thread per stream made every message a thread switch). The
    other calls are plain functions on the server's thread pool."""

    def __init__(self, settings: Settings, engine: FaceEngine | None = None, tls: TlsFiles | None = None) -> None:
        self.settings = settings
        self.engine = engine or load_engine(settings)
        self.service = GatewayService.open(settings, self.engine, load_index=False)  # loaded in start()
        try:
            self.trail = open_trail(settings, self.engine.pack.fingerprint, lambda: self.service.gallery_version,
                                    create_keys=tls is None)
        except (AuditKeyError, OSError, ValueError):
            self.service.close()
            raise
        self.service.audit_to(self.trail)
        self.aggregates = Aggregates(settings.gallery)
        self.trail.tally_to(self.aggregates.record)
        guard = Guard(self.trail, secure=tls is not None, rate=settings.rate_limit, burst=settings.rate_burst,
                      streams_per_client=settings.streams_per_client, ready=lambda: self.service.ready)
        self.decisions: Hub[recognition_pb2.DecisionEvent] = Hub()
        self.alerts: Hub[watchlists_pb2.Alert] = Hub()
        cameras = Cameras()
        limits = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),  # a second gateway on a port already served fails instead of sharing it
        ]
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="grpc-loop", daemon=True)
        self._loop_thread.start()
        self._server = self._on_loop(self._create_server(limits, guard))
        try:
            if tls is None:
                self.port = self._server.add_insecure_port(settings.listen)
            else:
                self.port = self._server.add_secure_port(settings.listen, server_credentials(tls))
        except RuntimeError:
            self._stop_loop()
            self.aggregates.close()
            self.trail.close()
            self.service.close()
            raise CannotListen("gRPC", settings.listen, "--listen", "listen") from None
        recognition = RecognitionServicer(self.service, self.trail, self.decisions, self.alerts, cameras,
                                          self.aggregates, settings.stream_window)
        recognition_pb2_grpc.add_RecognitionServicer_to_server(recognition, self._server)
        command_center_pb2_grpc.add_CommandCenterServicer_to_server(
            CommandCenterServicer(self.service, self.trail, cameras, self.aggregates), self._server)
        gallery_pb2_grpc.add_GalleryServicer_to_server(GalleryServicer(self.service), self._server)
        watchlists_pb2_grpc.add_WatchlistsServicer_to_server(WatchlistsServicer(self.service), self._server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME),
                                            self._server)
        self._metrics: WSGIServer | None = None
        self._listening = False
        self.metrics_port = 0

    def _on_loop(self, work: Coroutine[Any, Any, Value]) -> Value:
        """Run a coroutine on the server's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    async def _create_server(self, options: list[tuple[str, int]], guard: Guard) -> grpc.aio.Server:
        """Created on the loop that serves it."""
        return grpc.aio.server(
            migration_thread_pool=ElasticThreadPool(self.settings.workers, "rpc"), options=options,
            maximum_concurrent_rpcs=self.settings.workers, interceptors=[guard])

    async def _health_is(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, status)

    def _stop_loop(self) -> None:
        self._on_loop(self._loop.shutdown_asyncgens())
        self._on_loop(self._loop.shutdown_default_executor())  # the threads that audited refusals
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join()
        self._loop.close()

    def start(self) -> Gateway:
        """Listen at once, NOT_SERVING while the gallery's index loads (minutes for millions), then SERVING."""
        self.listen()
        self.service.load_index()
        self._on_loop(self._health_is(health_pb2.HealthCheckResponse.SERVING))
        host = self.settings.listen.rsplit(":", 1)[0]
        log.info("fr-gateway serving %d templates from %s on %s:%d (model %s; search: %s; audit %s)",
                 self.service.gallery_size, self.settings.gallery, host, self.port, self.engine.pack.name,
                 self.service.search_backend, self.trail.log.folder if self.trail.log else "OFF")
        log.info("Identify threshold %s", self.service.thresholds.identify.text())
        log.info("Verify threshold %s", self.service.thresholds.verify.text())
        return self

    def listen(self) -> None:
        """Start answering: health says NOT_SERVING, and other calls UNAVAILABLE, until start() has loaded."""
        if self._listening:
            return
        self._listening = True
        if self.settings.metrics_listen:  # before gRPC starts: a taken metrics port stops a gateway that serves none
            host, _, port = self.settings.metrics_listen.rpartition(":")
            try:
                self._metrics, _ = start_http_server(int(port), host)
            except (OSError, ValueError) as exc:
                raise CannotListen("Prometheus metrics", self.settings.metrics_listen, "--metrics-listen",
                                   "metrics_listen", getattr(exc, "strerror", None) or str(exc)) from None
            self.metrics_port = self._metrics.server_port
            log.info("Prometheus metrics on http://%s:%d/metrics", host, self.metrics_port)
        self._on_loop(self._health_is(health_pb2.HealthCheckResponse.NOT_SERVING))
        self._on_loop(self._server.start())
        thresholds = self.service.thresholds
        RUNTIME.info({"recognizer": self.engine.pack.name, "model_sha256": self.engine.pack.fingerprint,
                      "providers": ",".join(self.engine.providers),
                      "recognizer_runs": str(self.service.recogniser_layout),
                      **{f"{name}_threshold": f"{threshold.value:.4f} ({threshold.origin})" for name, threshold in
                         (("identify", thresholds.identify), ("verify", thresholds.verify))}})

    def stop(self, grace: float = 5.0) -> None:
        """Refuse new calls, let running ones finish, then close the embedder, the store and the audit log."""
        self._on_loop(self._health.enter_graceful_shutdown())
        self._on_loop(self._server.stop(grace))
        self._stop_loop()
        self.service.close()
        self.trail.close()
        self.aggregates.close()
        if self._metrics:
            self._metrics.shutdown()
            self._metrics.server_close()


def serve(settings: Settings, insecure: bool, port_file: Path | None = None) -> None:
    """Run until SIGINT or SIGTERM; write the bound port to port_file once serving (for scripts and tests)."""
    if insecure:
        log.warning("PLAINTEXT gRPC (--insecure): no TLS, no client certificates, no roles; traffic and faces "
                    "cross the network unencrypted; use this only on loopback or in a demo")
        tls = None
    else:
        tls = TlsFiles.load(settings.tls_cert, settings.tls_key, settings.tls_ca)
    gateway = Gateway(settings, tls=tls)
    tap = HandshakeTap(gateway.trail).start() if tls and gateway.trail.log else None
    try:
        gateway.start()
        if port_file:
            port_file.write_text(f"{gateway.port}\n")
        stopping = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.set())
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1` writes every thread's stack to the log
        while not stopping.wait(0.5):  # a timed wait: handlers run in this thread even when another got the signal
            pass
        log.info("stopping")
    finally:
        gateway.stop()
        if tap:  # stderr given back, so an error that stopped the start-up reaches the operator
            tap.stop()
