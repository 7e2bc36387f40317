"""The audit log's on-disk format, shared by the writer and the verifier.

A log is a folder of segments (segment-00000001.jsonl, ...) and a HEAD file. Every line of a segment is one
JSON entry that names the SHA-256 of the line before it (across segments too), so the lines form one chain:
  header      opens a segment: its number, the segment's data key wrapped for the auditor, signed
  record      one audited event, AES-256-GCM under the segment's data key, with its sequence number
  checkpoint  an Ed25519 signature over the chain so far (the hash of the line before it and the last seq), with
              its own number (one more than the previous checkpoint's), its segment and line, and the log's id
HEAD holds a copy of the latest checkpoint, so a log cut short at a line boundary is still detected. A witness
file outside the log (witness.py) receives every checkpoint too, so a log rolled back to an older checkpoint,
HEAD included, is found by comparing it with the newest checkpoint the witness holds.

Every record also carries an HMAC under a key derived from the gateway's signing key: the auditor, who can
decrypt (and so could re-encrypt) records, cannot make one the gateway accepts; after a restart the gateway
checks the records after the last checkpoint before it signs over them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS = "0" * 64
HEAD = "HEAD.json"
SEGMENT_PATTERN = re.compile(r"^segment-(\d{8})\.jsonl$")
NONCE = 12


def segment_name(number: int) -> str:
    return f"segment-{number:08d}.jsonl"


def segments(folder: Path) -> list[tuple[int, Path]]:
    """The folder's segments in order, as (number, path)."""
    found = [(int(m.group(1)), path) for path in folder.iterdir() if (m := SEGMENT_PATTERN.match(path.name))]
    return sorted(found)


def encode(entry: dict) -> bytes:
    """One canonical line (sorted keys, no spaces), so signatures and hashes do not depend on formatting."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def signed(entry: dict, key: Ed25519PrivateKey) -> dict:
    return {**entry, "sig": b64(key.sign(encode(entry)))}


def signature_valid(entry: dict, key: Ed25519PublicKey) -> bool:
    body = {k: v for k, v in entry.items() if k != "sig"}
    try:
        key.verify(unb64(entry["sig"]), encode(body))
    except (InvalidSignature, ValueError, KeyError, TypeError):  # a wrong or malformed signature: not valid
        return False
    return True


def _wrap_key(shared: bytes, segment: int, reader: str) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=f"fr-gateway audit segment {segment} {reader}".encode()) \
        .derive(shared)


def wrap_data_key(data_key: bytes, reader: X25519PublicKey, reader_id: str, segment: int) -> dict:
    """The segment's data key, encrypted to the auditor's X25519 key with a one-time ephemeral key."""
    ephemeral = X25519PrivateKey.generate()
    nonce = secrets.token_bytes(NONCE)
    wrapped = AESGCM(_wrap_key(ephemeral.exchange(reader), segment, reader_id)).encrypt(nonce, data_key, None)
    return {"eph": b64(ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)),
            "wrap": b64(nonce + wrapped)}


def unwrap_data_key(header: dict, reader: X25519PrivateKey) -> bytes:
    shared = reader.exchange(X25519PublicKey.from_public_bytes(unb64(header["eph"])))
    sealed = unb64(header["wrap"])
    return AESGCM(_wrap_key(shared, header["segment"], header["reader"])).decrypt(sealed[:NONCE], sealed[NONCE:],
                                                                                   None)


def record_aad(seq: int, prev: str, reader_id: str) -> bytes:
    """Bound into every record's ciphertext, so a record moved to another place in the log fails to open."""
    return f"{seq}|{prev}|{reader_id}".encode()


def seal_record(event: dict, data_key: bytes, seq: int, prev: str, reader_id: str, mac_key: bytes) -> dict:
    nonce = secrets.token_bytes(NONCE)
    sealed = AESGCM(data_key).encrypt(nonce, encode(event), record_aad(seq, prev, reader_id))
    entry = {"type": "record", "seq": seq, "prev": prev, "reader": reader_id, "ct": b64(nonce + sealed)}
    return {**entry, "mac": _mac(entry, mac_key)}


def _mac(entry: dict, mac_key: bytes) -> str:
    return hmac.new(mac_key, encode(entry), hashlib.sha256).hexdigest()


def mac_valid(entry: dict, mac_key: bytes) -> bool:
    """The record was written by the gateway that holds `mac_key` (the auditor cannot make one)."""
    body = {k: v for k, v in entry.items() if k != "mac"}
    return isinstance(entry.get("mac"), str) and hmac.compare_digest(entry["mac"], _mac(body, mac_key))


def open_record(entry: dict, data_key: bytes) -> dict:
    sealed = unb64(entry["ct"])
    plain = AESGCM(data_key).decrypt(sealed[:NONCE], sealed[NONCE:],
                                     record_aad(entry["seq"], entry["prev"], entry["reader"]))
    return json.loads(plain)
