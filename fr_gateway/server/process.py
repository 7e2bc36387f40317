"""`fr-gateway serve` in a process of its own on an ephemeral port of 127.0.0.1: how the evaluation harness,
the benchmarks and the tests reach a gateway exactly as cameras do (its own interpreter, real gRPC)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from fr_gateway.config import environment
from fr_gateway.transport import free_port

LOG_TAIL = 4000  # characters of the gateway's log quoted when it fails to start


@dataclasses.dataclass
class GatewayProcess:
    """A running gateway: its process, the HOST:PORT it serves on, the file its log goes to (a file, not a
    pipe, so a chatty gateway never blocks on a reader that is not reading) and its Prometheus port (0 when
    the caller's `metrics_listen` leaves it unknown)."""

    process: subprocess.Popen
    target: str
    log_file: Path
    metrics_port: int = 0

    @classmethod
    def start(cls, folder: Path, *serve_args: str, settings: Mapping[str, object] | None = None,
              timeout: float = 600) -> GatewayProcess:
        """Start `fr-gateway serve SERVE_ARGS` with `settings` as FRG_* variables (Prometheus on a free port of
        127.0.0.1 unless given) and wait until it serves, which includes loading the models and the gallery."""
        folder.mkdir(parents=True, exist_ok=True)
        port_file, log_file = folder / "gateway.port", folder / "gateway.log"
        port_file.unlink(missing_ok=True)
        settings = {"metrics_listen": f"127.0.0.1:{free_port()}", **(settings or {})}
        metrics_listen = str(settings["metrics_listen"])
        with log_file.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "fr_gateway.cli", "serve", "--listen", "127.0.0.1:0", "--port-file",
                 str(port_file), *serve_args], env={**os.environ, **environment(settings)}, stdout=log,
                stderr=subprocess.STDOUT)
        gateway = cls(process, "", log_file, int(metrics_listen.rsplit(":", 1)[1]) if metrics_listen else 0)
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                gateway.stop()
                raise RuntimeError(f"the gateway did not start; its log ends:\n{gateway.log[-LOG_TAIL:]}")
            time.sleep(0.1)
        gateway.target = f"127.0.0.1:{port_file.read_text().strip()}"
        return gateway

    @property
    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as an operator stops it; returns the exit status (0 for a clean stop)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:  # leave the stacks of a stuck gateway in its log, then kill it
                self.process.send_signal(signal.SIGUSR1)
                time.sleep(1)
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextlib.contextmanager
def gateway_process(folder: Path, *serve_args: str, **settings: object) -> Iterator[GatewayProcess]:
    """A gateway process for the length of a with-block."""
    gateway = GatewayProcess.start(folder, *serve_args, settings=settings)
    try:
        yield gateway
    finally:
        gateway.stop()
