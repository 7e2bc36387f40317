"""Witnesses of the audit log: copies of its signed checkpoints kept where the gateway's host cannot rewrite
them later, as Certificate Transparency's witnesses keep signed tree heads. A log rolled back to an older
checkpoint (its HEAD rewritten to match) still verifies on its own; beside a witness holding a newer checkpoint
of the same log it does not.

Two kinds: the gateway appends every checkpoint to a witness file outside the log's folder (another mount, the
auditors' share), and each `audit verify` remembers the newest checkpoint it has seen of each log in the
auditor's own folder. Both are JSON lines or objects of signed checkpoint entries, keyed by the log's id (the
hash of its first line)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fr_gateway.audit import chain
from fr_gateway.config import WITNESS_FILE

log = logging.getLogger(__name__)

SEEN_FILE = "seen-checkpoints.json"  # the auditor's own record, in the auditor's key folder


def append(path: Path, checkpoint: dict, durable: bool) -> None:
    """Add one checkpoint to the witness file (append-only, readable by its owner only)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, chain.encode(checkpoint) + b"\n")
        if durable:
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _newer(entry: dict, than: dict | None) -> bool:
    return than is None or (entry.get("number", 0), entry.get("seq", 0)) > (than.get("number", 0), than.get("seq", 0))


def newest(entries: list[dict], signers: dict[str, Ed25519PublicKey]) -> dict[str, dict]:
    """The newest validly signed checkpoint of each log among `entries`; forged or foreign ones are ignored."""
    found: dict[str, dict] = {}
    for entry in entries:
        key = signers.get(entry.get("signer", ""))
        if (entry.get("type") == "checkpoint" and isinstance(entry.get("log"), str) and key is not None
                and chain.signature_valid(entry, key) and _newer(entry, found.get(entry["log"]))):
            found[entry["log"]] = entry
    return found


def read_file(path: Path, signers: dict[str, Ed25519PublicKey]) -> dict[str, dict]:
    """The witness file's newest checkpoint per log (a line that does not parse is skipped)."""
    entries = []
    for line in path.read_bytes().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return newest([entry for entry in entries if isinstance(entry, dict)], signers)


def read_seen(path: Path, signers: dict[str, Ed25519PublicKey]) -> dict[str, dict]:
    return newest(list(json.loads(path.read_text()).values()), signers) if path.exists() else {}


def remember(path: Path, checkpoint: dict, signers: dict[str, Ed25519PublicKey]) -> None:
    """Keep `checkpoint` as the newest seen of its log, unless a newer one is already remembered."""
    seen = read_seen(path, signers)
    if _newer(checkpoint, seen.get(checkpoint["log"])):
        seen[checkpoint["log"]] = checkpoint
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(seen, indent=1, sort_keys=True))
        os.replace(temporary, path)


def sources(auditor_folder: Path, witness_file: Path | None,
            signers: dict[str, Ed25519PublicKey]) -> list[tuple[str, dict[str, dict]]]:
    """What an auditor compares a log with: the witness file (given, or the one beside the auditor's keys,
    where the gateway keeps it by default) and the auditor's own record of the checkpoints seen before."""
    if witness_file is not None and not witness_file.is_file():
        raise FileNotFoundError(f"witness file {witness_file} does not exist (--witness)")
    found = []
    path = witness_file or auditor_folder / WITNESS_FILE
    if path.is_file():
        found.append((f"witness file {path}", read_file(path, signers)))
    seen = auditor_folder / SEEN_FILE
    if seen.is_file():
        found.append((f"checkpoints seen by earlier verifications ({seen})", read_seen(seen, signers)))
    return found


def record_seen(auditor_folder: Path, checkpoint: dict | None, intact: bool,
                signers: dict[str, Ed25519PublicKey]) -> None:
    """After a verification that found the log intact, remember its newest checkpoint: a later roll-back
    below it is found even without the witness file."""
    if intact and checkpoint and isinstance(checkpoint.get("log"), str):
        remember(auditor_folder / SEEN_FILE, checkpoint, signers)
