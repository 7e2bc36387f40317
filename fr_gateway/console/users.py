"""The console's local accounts: a name, a role and an Argon2id password hash, in a SQLite file only its owner can
read. The roles are the console's own: an operator watches and adjudicates, a supervisor also sees analytics."""

from __future__ import annotations

import dataclasses
import os
import re
import sqlite3
import threading
import time
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("operator", "supervisor")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 12
TABLE = """CREATE TABLE IF NOT EXISTS users (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    created_at  REAL NOT NULL
)"""


class UserError(ValueError):
    """A name, role or password the console will not take; the message says which rule it breaks."""


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def supervisor(self) -> bool:
        return self.role == "supervisor"


class UserStore:
    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute(TABLE)
        self._hasher = PasswordHasher()
        # checked against when the name is unknown, so a wrong name takes as long as a wrong password
        self._decoy = self._hasher.hash(os.urandom(16).hex())
        self._lock = threading.Lock()

    def add(self, name: str, role: str, password: str, replace: bool = False) -> User:
        if not NAME.fullmatch(name):
            raise UserError(f"{name!r}: a name is 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter "
                            "or digit")
        if role not in ROLES:
            raise UserError(f"role {role!r}: one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise UserError(f"a password has at least {MIN_PASSWORD} characters")
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        with self._lock:
            try:
                self._db.execute(f"{verb} INTO users VALUES (?, ?, ?, ?)",
                                 (name, role, self._hasher.hash(password), time.time()))
            except sqlite3.IntegrityError:
                raise UserError(f"{name} exists already: --replace sets a new role and password") from None
        return User(name, role)

    def remove(self, name: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount > 0

    def users(self) -> list[User]:
        with self._lock:
            return [User(*row) for row in self._db.execute("SELECT name, role FROM users ORDER BY name")]

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the password is theirs; None otherwise, in about the same time whether or not the name
        exists. A hash made with older parameters is remade."""
        with self._lock:
            row = self._db.execute("SELECT role, hash FROM users WHERE name = ?", (name,)).fetchone()
        try:
            self._hasher.verify(row[1] if row else self._decoy, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if self._hasher.check_needs_rehash(row[1]):
            with self._lock:
                self._db.execute("UPDATE users SET hash = ? WHERE name = ?", (self._hasher.hash(password), name))
        return User(name, row[0])

    def close(self) -> None:
        self._db.close()
