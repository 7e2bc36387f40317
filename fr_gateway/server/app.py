"""Assemble and run the gateway: models, gallery, micro-batcher, audit log, the guard, the two services,
health and reflection, on a mutual-TLS port (or a plaintext one when asked)."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fr_gateway.audit.keys import AuditKeyError
from fr_gateway.audit.trail import open_trail
from fr_gateway.config import Settings
from fr_gateway.contract import gallery_pb2, gallery_pb2_grpc, recognition_pb2, recognition_pb2_grpc
from fr_gateway.faces.engine import FaceEngine, load_engine
from fr_gateway.security.certs import TlsFiles
from fr_gateway.server.guard import Guard
from fr_gateway.server.handshakes import HandshakeTap
from fr_gateway.server.servicers import GalleryServicer, RecognitionServicer
from fr_gateway.service import GatewayService
from fr_gateway.transport import server_credentials

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    recognition_pb2.DESCRIPTOR.services_by_name["Recognition"].full_name,
    gallery_pb2.DESCRIPTOR.services_by_name["Gallery"].full_name,
)


class Gateway:
    """A started gateway: `port` is the bound port (useful with port 0), `stop()` drains and closes.
    With `tls` the port speaks mutual TLS only; without it, plaintext (for --insecure)."""

    def __init__(self, settings: Settings, engine: FaceEngine | None = None, tls: TlsFiles | None = None) -> None:
        self.settings = settings
        self.engine = engine or load_engine(settings)
        self.service = GatewayService.open(settings, self.engine)
        try:
            self.trail = open_trail(settings, self.engine.pack.fingerprint, lambda: self.service.gallery_version,
                                    create_keys=tls is None)
        except (AuditKeyError, OSError, ValueError):
            self.service.close()
            raise
        guard = Guard(self.trail, secure=tls is not None, rate=settings.rate_limit, burst=settings.rate_burst,
                      streams_per_client=settings.streams_per_client)
        limits = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ]
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rpc"),
            options=limits, maximum_concurrent_rpcs=settings.workers, interceptors=[guard],
        )
        recognition_pb2_grpc.add_RecognitionServicer_to_server(RecognitionServicer(self.service, self.trail, guard),
                                                               self._server)
        gallery_pb2_grpc.add_GalleryServicer_to_server(GalleryServicer(self.service, self.trail), self._server)
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME),
                                            self._server)
        if tls is None:
            self.port = self._server.add_insecure_port(settings.listen)
        else:
            self.port = self._server.add_secure_port(settings.listen, server_credentials(tls))
        if self.port == 0:
            raise OSError(f"cannot listen on {settings.listen}")

    def start(self) -> Gateway:
        self._server.start()
        for name in ("", *SERVICE_NAMES):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        host = self.settings.listen.rsplit(":", 1)[0]
        log.info("fr-gateway serving %d templates from %s on %s:%d (model %s, thresholds identify %.2f "
                 "verify %.2f: %s; audit %s)", self.service.gallery_size, self.settings.gallery, host, self.port,
                 self.engine.pack.name, self.service.thresholds.identify, self.service.thresholds.verify,
                 self.service.thresholds.source, self.trail.log.folder if self.trail.log else "OFF")
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Refuse new calls, let running ones finish, then close the embedder, the store and the audit log."""
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        self.service.close()
        self.trail.close()


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
    gateway.start()
    if port_file:
        port_file.write_text(f"{gateway.port}\n")
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()
    log.info("stopping")
    gateway.stop()
    if tap:
        tap.stop()
