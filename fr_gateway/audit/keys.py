"""The audit log's two key pairs, split so an auditor can read but not forge and the gateway can write but
not read back: the gateway holds the Ed25519 signing key and the auditor's X25519 public key; the auditor
holds the X25519 reading keys and the signing public keys."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fr_gateway.config import WITNESS_FILE, WITNESS_POINTER
from fr_gateway.security.keys import exposed

SIGNING_KEY = "signing.key"
READER_PUBLIC = "reader.pub"
RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class AuditKeyError(Exception):
    """An audit key is missing, exposed or of the wrong kind; the message says which and what to do."""


def signer_id(public: Ed25519PublicKey) -> str:
    return "s-" + hashlib.sha256(public.public_bytes(*RAW)).hexdigest()[:16]


def reader_id(public: X25519PublicKey) -> str:
    return "r-" + hashlib.sha256(public.public_bytes(*RAW)).hexdigest()[:16]


def _write(path: Path, data: bytes, private: bool) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _private_pem(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _public_pem(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read_private(path: Path):
    if not path.is_file():
        raise AuditKeyError(f"audit key {path} does not exist: run `fr-gateway audit keys init`")
    if why := exposed(path, "audit key"):
        raise AuditKeyError(why)
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _read_public(path: Path):
    if not path.is_file():
        raise AuditKeyError(f"audit key {path} does not exist: run `fr-gateway audit keys init`")
    return serialization.load_pem_public_key(path.read_bytes())


@dataclasses.dataclass(frozen=True)
class WriterKeys:
    """What the gateway holds: it signs the log and encrypts for the auditor, and can do nothing else."""

    signing: Ed25519PrivateKey
    reader: X25519PublicKey

    @classmethod
    def load(cls, folder: str | Path) -> WriterKeys:
        folder = Path(folder)
        signing, reader = _read_private(folder / SIGNING_KEY), _read_public(folder / READER_PUBLIC)
        if not isinstance(signing, Ed25519PrivateKey) or not isinstance(reader, X25519PublicKey):
            raise AuditKeyError(f"{folder}: {SIGNING_KEY} must be Ed25519 and {READER_PUBLIC} X25519")
        return cls(signing, reader)

    @property
    def signer_id(self) -> str:
        return signer_id(self.signing.public_key())

    @property
    def mac_key(self) -> bytes:
        """The key of every record's HMAC, derived from the signing key: only the gateway holds it."""
        raw = self.signing.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption())
        return HKDF(hashes.SHA256(), 32, salt=None, info=b"fr-gateway audit record mac").derive(raw)

    @property
    def reader_id(self) -> str:
        return reader_id(self.reader)


@dataclasses.dataclass(frozen=True)
class AuditorKeys:
    """What an auditor holds: every reading key (old ones too, after rotation) and every signer it trusts."""

    readers: dict[str, X25519PrivateKey]
    signers: dict[str, Ed25519PublicKey]

    @classmethod
    def load(cls, folder: str | Path, need_readers: bool = True) -> AuditorKeys:
        """reader-*.key and signing-*.pub from the auditor's folder; `verify` needs only the public keys."""
        folder = Path(folder)
        if not folder.is_dir():
            raise AuditKeyError(f"auditor key folder {folder} does not exist")
        readers = {}
        if need_readers:
            for path in sorted(folder.glob("reader-*.key")):
                key = _read_private(path)
                if not isinstance(key, X25519PrivateKey):
                    raise AuditKeyError(f"{path} is not an X25519 reading key")
                readers[reader_id(key.public_key())] = key
        signers = {}
        for path in sorted(folder.glob("signing-*.pub")):
            key = _read_public(path)
            if not isinstance(key, Ed25519PublicKey):
                raise AuditKeyError(f"{path} is not an Ed25519 public key")
            signers[signer_id(key)] = key
        if not signers:
            raise AuditKeyError(f"{folder} holds no signing-*.pub: the auditor cannot check signatures")
        return cls(readers, signers)


def issue(gateway_folder: str | Path, auditor_folder: str | Path, signer: bool = True,
          reader: bool = True) -> list[str]:
    """New key pairs: private halves where they belong, public halves to the other side. Used by `init`
    (both) and by rotation (either); the auditor keeps old keys, the gateway only the current ones."""
    gateway_folder, auditor_folder = Path(gateway_folder), Path(auditor_folder)
    made = []
    if signer:
        key = Ed25519PrivateKey.generate()
        kid = signer_id(key.public_key())
        _write(auditor_folder / f"signing-{kid}.pub", _public_pem(key.public_key()), private=False)
        _write(gateway_folder / SIGNING_KEY, _private_pem(key), private=True)
        # the gateway keeps its witness beside the auditor's keys unless told otherwise (audit_witness)
        _write(gateway_folder / WITNESS_POINTER, str((auditor_folder / WITNESS_FILE).resolve()).encode(),
               private=False)
        made.append(kid)
    if reader:
        key = X25519PrivateKey.generate()
        kid = reader_id(key.public_key())
        _write(auditor_folder / f"reader-{kid}.key", _private_pem(key), private=True)
        _write(gateway_folder / READER_PUBLIC, _public_pem(key.public_key()), private=False)
        made.append(kid)
    return made
