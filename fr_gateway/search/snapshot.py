"""The index on disk: a sealed FAISS snapshot beside the store, tagged with the store version it reflects, so a
start loads it only when it is current and rebuilds from the store otherwise. Written atomically."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag

from fr_gateway.security.keys import KeyRing, KeyRingError, exposed, private_file

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "index.faiss.sealed"
FORMAT = 2  # 2: pqfs saves one shard per core (a format-1 snapshot is rebuilt)


def _context(header: bytes) -> bytes:
    return b"fr-gateway index snapshot|" + header


def save_snapshot(payload: bytes, directory: Path, header: dict, keys: KeyRing) -> Path:
    """Seal and write the serialised index with its header (store version, model, index kind); crash-safe by
    writing a temporary file and renaming it."""
    header_bytes = json.dumps({"format": FORMAT, **header}, sort_keys=True).encode()
    kid, sealed = keys.seal(payload, _context(header_bytes))
    path = directory / SNAPSHOT_FILE
    temporary = path.with_suffix(".tmp")
    with os.fdopen(private_file(temporary), "wb") as handle:
        handle.write(header_bytes + b"\n" + kid.encode() + b"\n")
        handle.write(sealed)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
    return path


def load_snapshot(directory: Path, expected: dict, keys: KeyRing) -> bytes | None:
    """The saved index's bytes when its header matches `expected` exactly; None (and why, in the log) otherwise."""
    path = directory / SNAPSHOT_FILE
    if not path.exists():
        return None
    if why := exposed(path, "index snapshot"):
        log.warning("%s; not loading it: rebuilding from the store, and saving it again readable by its owner only",
                    why)
        return None
    with path.open("rb") as handle:
        header_bytes = handle.readline().rstrip(b"\n")
        key_line = handle.readline().rstrip(b"\n")
        sealed = handle.read()
    try:
        header, kid = json.loads(header_bytes), key_line.decode("ascii")
    except ValueError:  # bytes altered in the header or the key line (UnicodeDecodeError is a ValueError)
        log.warning("index snapshot %s is damaged; rebuilding from the store", path)
        return None
    wanted = {"format": FORMAT, **expected}
    if header != wanted:
        stale = {k: (header.get(k), v) for k, v in wanted.items() if header.get(k) != v}
        log.info("index snapshot %s is not current %s; rebuilding from the store", path, stale)
        return None
    try:
        return keys.open(kid, sealed, _context(header_bytes))
    except (KeyRingError, InvalidTag) as exc:  # a missing key, or a tampered or truncated file
        log.warning("index snapshot %s does not open (%s); rebuilding from the store", path, type(exc).__name__)
        return None
