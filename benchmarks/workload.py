"""What the gateway benchmarks share: the people of the sample faces (data/faces, or FRG_TEST_DATA), their crops as a
camera sends them, and a private CA for benchmarking over mutual TLS, as in production."""

from __future__ import annotations

import os
from pathlib import Path

from fr_gateway.evaluation.dataset import sample_faces
from fr_gateway.faces.detector import align
from fr_gateway.faces.engine import FaceEngine
from fr_gateway.faces.images import decode_image, encode_jpeg
from fr_gateway.security.certs import Authority, Principal, TlsFiles

DATA = sample_faces()


def people(limit: int = 43) -> list[list[Path]]:
    """Each person's photos, in a stable order; the first is the enrolment photo."""
    return [sorted(folder.iterdir()) for set_name in ("celebrities", "orl", "fr-examples")
            for folder in sorted((DATA / set_name).iterdir()) if folder.is_dir()][:limit]


def aligned_crops(engine: FaceEngine, photos: list[Path]) -> list[bytes]:
    """112x112 aligned crops of the dominant face of each photo, as `fr-gateway camera` sends them (JPEG)."""
    crops = []
    for path in photos:
        image = decode_image(path.read_bytes(), 1 << 30, 1 << 30)
        faces = engine.detector.detect(image)
        if faces:
            crops.append(encode_jpeg(align(image, faces[0])))
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


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far, its ended threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
