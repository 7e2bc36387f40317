"""Audit refused TLS handshakes (no certificate, another CA, expired). gRPC checks client certificates inside
its C core and reports a failed handshake only as a log line on stderr, never to Python, so the serving
process routes its stderr through a pipe, passes every line on unchanged and audits the handshake lines.
No supported hook exists: gRPC Python has no callback for a failed handshake, and the C core's lines name no
peer address, so these records say "unknown" where the peer would be."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping

from fr_gateway.audit.log import AuditUnavailable
from fr_gateway.audit.trail import AuditTrail, Caller, Operation

# e.g. "... Handshake failed with error SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:
#       CERTIFICATE_VERIFY_FAILED: certificate has expired"
HANDSHAKE_FAILED = re.compile(rb"Handshake failed with error (?P<error>\S+): (?:error:[0-9a-f]+:[^:]*:[^:]*:)?"
                              rb"(?P<reason>.*)$")
log = logging.getLogger(__name__)

UNKNOWN_PEER = Caller("unknown", "", "tls handshake")
# gRPC writes handshake failures at INFO; these verbosities drop them before the tap can see them
QUIET_VERBOSITIES = frozenset({"WARNING", "ERROR", "NONE"})


def hidden_by_verbosity(environ: Mapping[str, str]) -> str | None:
    """The GRPC_VERBOSITY that keeps refused handshakes out of the audit log, if one is set."""
    verbosity = environ.get("GRPC_VERBOSITY", "").strip().upper()
    return verbosity if verbosity in QUIET_VERBOSITIES else None


class HandshakeTap:
    """Owns file descriptor 2 of the serving process while started."""

    def __init__(self, trail: AuditTrail) -> None:
        self._trail = trail
        self._saved: int | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> HandshakeTap:
        if verbosity := hidden_by_verbosity(os.environ):
            log.warning("GRPC_VERBOSITY=%s hides gRPC's handshake lines: refused TLS handshakes (no certificate, "
                        "another CA, expired) will not be audited; unset it or set INFO", verbosity)
        reader, writer = os.pipe()
        self._saved = os.dup(2)
        os.dup2(writer, 2)
        os.close(writer)
        self._thread = threading.Thread(target=self._pump, args=(reader, self._saved), name="handshake-tap",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Give stderr back; the pump ends when the pipe's last writer closes."""
        if self._saved is None:
            return
        os.dup2(self._saved, 2)
        self._thread.join(timeout=5)
        os.close(self._saved)
        self._saved = None

    def _pump(self, reader: int, stderr: int) -> None:
        with os.fdopen(reader, "rb", buffering=0) as pipe:
            for line in pipe:
                os.write(stderr, line)  # the operator sees exactly what they would have seen
                found = HANDSHAKE_FAILED.search(line.rstrip())
                if not found:
                    continue
                reason = found.group("reason").decode(errors="replace").strip()
                try:
                    self._trail.refusal(UNKNOWN_PEER, Operation.TLS_HANDSHAKE, "UNAUTHENTICATED", reason)
                except AuditUnavailable as exc:  # written past the pipe: logging would write into it
                    os.write(stderr, f"fr-gateway: handshake refusal not audited: {exc}\n".encode())
