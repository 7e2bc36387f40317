"""What the gateway benchmarks share: the people of ../shared/data/faces, their crops as a camera sends them,
and a private CA for benchmarking over mutual TLS, as in production."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2

from fr_gateway.faces.detector import align
from fr_gateway.faces.engine import FaceEngine
from fr_gateway.faces.images import decode_image
from fr_gateway.security.certs import Authority, Principal, TlsFiles

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


def people(limit: int = 43) -> list[list[Path]]:
    """Each person's photos, in a stable order; the first is the enrolment photo."""
    return [sorted(folder.iterdir()) for set_name in ("celebrities", "orl", "fr-examples")
            for folder in sorted((DATA / set_name).iterdir()) if folder.is_dir()][:limit]


def aligned_crops(engine: FaceEngine, photos: list[Path]) -> list[bytes]:
    """112x112 aligned crops (PNG) of the dominant face of each photo, as the camera client makes them."""
    crops = []
    for path in photos:
        image = decode_image(path.read_bytes(), 1 << 30, 1 << 30)
        faces = engine.detector.detect(image)
        if faces:
            crops.append(cv2.imencode(".png", align(image, faces[0]))[1].tobytes())
    return crops


def make_certs(folder: Path, *principals: Principal) -> tuple[TlsFiles, dict[Principal, TlsFiles]]:
    """A CA, the server's files and each principal's client files."""
    authority = Authority.create()
    authority.save(folder)
    authority.issue_server(folder, ["127.0.0.1"])
    for principal in principals:
        authority.issue_client(folder, principal)
    server = TlsFiles.load(folder / "server.pem", folder / "server.key", folder / "ca.pem")
    return server, {principal: TlsFiles.for_client(folder, principal) for principal in principals}


@contextlib.contextmanager
def gateway_process(folder: Path, certs: Path, gallery: Path, **settings: object) -> Iterator[subprocess.Popen]:
    """`fr-gateway serve` in its own process, as it runs in production (its own interpreter and GIL), over
    mutual TLS on an ephemeral port of 127.0.0.1; settings go in as FRG_* variables. Yields the process, with
    `target` (HOST:PORT) set on it once it serves."""
    port_file = folder / "gateway.port"
    port_file.unlink(missing_ok=True)
    env = {**os.environ, "FRG_METRICS_LISTEN": "127.0.0.1:0",
           **{f"FRG_{name.upper()}": str(value) for name, value in settings.items()}}
    server = subprocess.Popen([sys.executable, "-m", "fr_gateway.cli", "serve", "--listen", "127.0.0.1:0",
                               "--port-file", str(port_file), "--certs", str(certs), "--gallery", str(gallery)],
                              env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not (port_file.exists() and port_file.read_text().strip()):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.2)
        server.target = f"127.0.0.1:{port_file.read_text().strip()}"
        yield server
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0
