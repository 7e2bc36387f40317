"""Data keys for encryption at rest: AES-256-GCM keys with ids, so stored records name the key that sealed
them and keys can rotate. Kept in a key file readable by its owner only, or given in the environment."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

KEY_ENV = "FRG_TEMPLATE_KEY"
NONCE_BYTES = 12


class KeyRingError(Exception):
    """A key is missing, malformed or too exposed; the message says which and what to do."""


def exposed(path: Path, what: str) -> str | None:
    """Why `path` is unsafe to use when others on the host can read or write it (the words for a refusal), or
    None when only its owner can."""
    mode = stat.S_IMODE(path.stat().st_mode)
    return f"{what} {path} is readable by others (mode {mode:o}); run: chmod 600 {path}" if mode & 0o077 else None


def private_file(path: Path) -> int:
    """A new file only its owner can read and write (the descriptor, for writing)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


def key_id(key: bytes) -> str:
    """A stable id derived from the key itself, so the same key has the same id wherever it is loaded."""
    return "k-" + hashlib.sha256(b"fr-gateway key id" + key).hexdigest()[:16]


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise KeyRingError(f"{where}: not base64") from exc
    if len(key) != 32:
        raise KeyRingError(f"{where}: an AES-256 key is 32 bytes, got {len(key)}")
    return key


class KeyRing:
    """All keys that may have sealed a record, and the active one that seals new records."""

    def __init__(self, keys: dict[str, bytes], active: str, path: Path | None = None) -> None:
        if active not in keys:
            raise KeyRingError(f"active key {active} is not in the key ring")
        self._keys = keys
        self._ciphers: dict[str, AESGCM] = {}
        self.active = active
        self.path = path

    @classmethod
    def load(cls, path: str | Path, environ: dict[str, str] | None = None, create: bool = True) -> KeyRing:
        """FRG_TEMPLATE_KEY (base64) wins; else the key file, created with a new key when missing."""
        environ = os.environ if environ is None else environ
        if environ.get(KEY_ENV):
            key = _decode(environ[KEY_ENV], KEY_ENV)
            return cls({key_id(key): key}, key_id(key))
        path = Path(path)
        if not path.exists():
            if not create:
                raise KeyRingError(f"key file {path} does not exist")
            ring = cls.generate(path)
            log.warning("created a new data key in %s: back it up; without it the gallery cannot be read", path)
            return ring
        if why := exposed(path, "key file"):
            raise KeyRingError(why)
        try:
            content = json.loads(path.read_text())
            keys = {kid: _decode(text, f"{path} key {kid}") for kid, text in content["keys"].items()}
            active = content["active"]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyRingError(f"key file {path} is malformed: {exc}") from exc
        for kid, key in keys.items():
            if key_id(key) != kid:
                raise KeyRingError(f"key file {path}: key {kid} does not match its id")
        return cls(keys, active, path)

    @classmethod
    def generate(cls, path: Path) -> KeyRing:
        key = secrets.token_bytes(32)
        ring = cls({key_id(key): key}, key_id(key), path)
        ring.save()
        return ring

    def _file(self) -> Path:
        if self.path is None:
            raise KeyRingError(f"keys from {KEY_ENV} live in the environment; rotate them with a key file")
        return self.path

    def save(self) -> None:
        """Write atomically with mode 0600 (in a 0700 folder when this creates it)."""
        path = self._file()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        content = {"active": self.active,
                   "keys": {kid: base64.b64encode(key).decode() for kid, key in self._keys.items()}}
        temporary = path.with_suffix(".tmp")
        with os.fdopen(private_file(temporary), "w") as handle:
            json.dump(content, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def add_active(self) -> str:
        """Add a new key and make it the active one; older keys stay, to read what they sealed. Only a ring kept
        in a file rotates: a key made here and kept nowhere would lose what it sealed."""
        self._file()
        key = secrets.token_bytes(32)
        self._keys[key_id(key)] = key
        self.active = key_id(key)
        return self.active

    def retire(self, kid: str) -> None:
        if kid == self.active:
            raise KeyRingError("the active key cannot be retired")
        self._keys.pop(kid, None)
        self._ciphers.pop(kid, None)

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    def seal(self, plaintext: bytes, context: bytes) -> tuple[str, bytes]:
        """Encrypt with the active key; `context` is authenticated, so a record moved elsewhere fails to open."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return self.active, nonce + self._cipher(self.active).encrypt(nonce, plaintext, context)

    def open(self, kid: str, sealed: bytes, context: bytes) -> bytes:
        return self._cipher(kid).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)

    def _cipher(self, kid: str) -> AESGCM:
        """Each key's cipher is set up once: a search opens a hundred records."""
        cipher = self._ciphers.get(kid)
        if cipher is None:
            key = self._keys.get(kid)
            if key is None:
                raise KeyRingError(f"record sealed with key {kid}, which is not in the key ring")
            cipher = self._ciphers[kid] = AESGCM(key)
        return cipher
