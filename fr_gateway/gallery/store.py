"""The template store: one SQLite file per gallery, the source of truth from which the search index is rebuilt.
Templates and attributes are sealed with AES-256-GCM under a key id; no photo is kept, only its SHA-256."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag

from fr_gateway.security.keys import KeyRing, KeyRingError, exposed, private_file

log = logging.getLogger(__name__)

STORE_FILE = "templates.sqlite3"
SCHEMA_VERSION = 2
TABLES = """
CREATE TABLE IF NOT EXISTS gallery_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (
    nik                  TEXT PRIMARY KEY,
    sealed               BLOB NOT NULL,
    key_id               TEXT NOT NULL,
    model_sha256         TEXT NOT NULL,
    source_sha256        TEXT,
    enrolled_at          TEXT NOT NULL,
    previous_enrolled_at TEXT
);
"""


def create_tables(db: sqlite3.Connection, script: str = TABLES) -> None:
    """Each statement of `script` inside the caller's transaction (executescript would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def private_database(path: Path) -> sqlite3.Connection:
    """A SQLite database in WAL mode that only its owner can read: created so, in a folder only the owner can
    enter, when missing (SQLite gives its WAL and shared-memory files the same mode)."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(private_file(path))
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    return db


@contextlib.contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (schema changes included: SQLite's DDL is transactional); all or nothing."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class GalleryRefused(Exception):
    """The store, its key and what lies beside them do not belong together, or others can read them: serving
    would answer for a wrong or an empty gallery. The message says what was found and what to do."""


class TemplateDamaged(Exception):
    """A sealed row that no longer opens (altered on disk, or sealed with a key the ring lacks)."""

    def __init__(self, nik: str, why: str) -> None:
        super().__init__(f"the template of NIK {nik} is damaged ({why}): re-enrol it from its photo")
        self.nik = nik


class GalleryModelMismatch(Exception):
    """The gallery was built with another recogniser: its templates cannot be compared with this model's."""


# What a record's free attributes may hold: a few short fields (province, name, case reference), never a
# document; a larger one is refused at enrolment rather than sealed into every row and snapshot.
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_NAME = 64
MAX_ATTRIBUTE_VALUE = 1024


def attributes_problem(attributes: Mapping[str, str]) -> str | None:
    """Why `attributes` cannot be stored (too many, a name or a value too long), or None."""
    if len(attributes) > MAX_ATTRIBUTES:
        return f"{len(attributes)} attributes; at most {MAX_ATTRIBUTES}"
    for name, value in attributes.items():
        if not 0 < len(name) <= MAX_ATTRIBUTE_NAME:
            return f"attribute name {name[:MAX_ATTRIBUTE_NAME]!r}: 1 to {MAX_ATTRIBUTE_NAME} characters"
        if len(value) > MAX_ATTRIBUTE_VALUE:
            return f"attribute {name!r} has {len(value)} characters; at most {MAX_ATTRIBUTE_VALUE}"
    return None


@dataclasses.dataclass(frozen=True)
class Enrolment:
    """One template to store: the NIK, its L2-normalised template, attributes, and the photo's SHA-256."""

    nik: str
    template: np.ndarray
    attributes: Mapping[str, str]
    source_sha256: str | None = None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _migrate_1_to_2(db: sqlite3.Connection, keys: KeyRing) -> None:
    """v1 kept templates and attributes in plaintext columns: seal them, and add the photo hash column."""
    db.execute("ALTER TABLE templates RENAME TO templates_v1")
    create_tables(db)
    rows = db.execute("SELECT nik, template, model_sha256, enrolled_at, previous_enrolled_at, attributes "
                      "FROM templates_v1").fetchall()
    for nik, template, model, enrolled_at, previous, attributes in rows:
        kid, sealed = keys.seal(_payload(template, json.loads(attributes)), _context(nik, model))
        db.execute("INSERT INTO templates VALUES (?, ?, ?, ?, NULL, ?, ?)",
                   (nik, sealed, kid, model, enrolled_at, previous))
    db.execute("DROP TABLE templates_v1")


# MIGRATIONS[n] upgrades a store from schema n to n + 1, inside one transaction.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection, KeyRing], None]] = {1: _migrate_1_to_2}


def _context(nik: str, model_sha256: str) -> bytes:
    """Authenticated with every sealed record, so a record copied to another NIK or model does not open."""
    return f"fr-gateway template v2|{nik}|{model_sha256}".encode()


def _payload(template: bytes, attributes: Mapping[str, str]) -> bytes:
    return template + json.dumps(dict(attributes), separators=(",", ":")).encode()


def _refuse_orphans(directory: Path) -> None:
    """A folder that holds gallery files but no store lost its store: creating an empty one would serve nobody,
    and the next save would overwrite the saved index, maybe the last copy of the gallery."""
    found = sorted(path.name for path in directory.iterdir()) if directory.is_dir() else []
    if found:
        raise GalleryRefused(f"gallery {directory} holds {', '.join(found)} but no {STORE_FILE}: its template "
                             "store is missing. Restore it from its backup; refusing to start an empty gallery in "
                             "its place")


class TemplateStore:
    """Durable before acknowledged: WAL with synchronous=FULL, so a committed enrolment survives a crash.
    `version` grows with every change, so a saved index can tell whether it is current."""

    def __init__(self, directory: str | Path, model_fingerprint: str, model_name: str, keys: KeyRing,
                 dim: int = 512) -> None:
        self.directory = Path(directory)
        self.model_fingerprint = model_fingerprint
        self.dim = dim
        self.keys = keys
        self.damaged: set[str] = set()  # NIKs whose rows did not open: isolated, and answered as damaged
        self._lock = threading.Lock()
        path = self.directory / STORE_FILE
        if path.exists():
            if why := exposed(path, "template store"):
                raise GalleryRefused(why)
        else:
            _refuse_orphans(self.directory)
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(private_file(path))  # SQLite gives its WAL and shared-memory files the same mode
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # a sealed row is about 2.1 KB: 4 KiB pages hold one (half the disk wasted), 16 KiB pages hold seven.
        # Takes effect when a gallery is created, before WAL is switched on.
        self._db.execute("PRAGMA page_size=16384")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._transaction():  # its commit reads the version into memory
            self._open_schema(model_fingerprint, model_name)

    @classmethod
    def open(cls, directory: str | Path, key_file: Path, model_fingerprint: str, model_name: str,
             dim: int = 512, *, create: bool = True) -> TemplateStore:
        """The gallery's store with its key ring, checked to belong together: a key is created only with a new
        gallery, never over an existing one, and the ring must open the store's rows."""
        directory = Path(directory)
        exists = (directory / STORE_FILE).exists()
        if not exists and not create:
            raise FileNotFoundError(f"gallery {directory} does not exist (no {STORE_FILE} there)")
        if not exists:
            _refuse_orphans(directory)  # before a key is made for it
        try:
            keys = KeyRing.load(key_file, create=not exists)
        except KeyRingError as exc:
            raise GalleryRefused(f"gallery {directory}: {exc}. Its templates are sealed with that key: restore the "
                                 "key file from its backup (or give the key in FRG_TEMPLATE_KEY); a new key "
                                 "cannot open them") from exc
        store = cls(directory, model_fingerprint, model_name, keys, dim)
        try:
            store.check_keys()
        except GalleryRefused:
            store.close()
            raise
        return store

    def check_keys(self) -> None:
        """The ring holds the keys of the first and the newest rows: a wrong key file is refused at start-up,
        not found one query at a time. (A key's id is derived from the key, so a held id is the right key.)"""
        with self._lock:
            used = {row[0] for row in self._db.execute(
                "SELECT key_id FROM templates WHERE rowid IN ((SELECT MIN(rowid) FROM templates), "
                "(SELECT MAX(rowid) FROM templates))")}
        if missing := sorted(used - set(self.keys.ids)):
            raise GalleryRefused(f"gallery {self.directory}: its templates are sealed with {', '.join(missing)}, "
                                 f"which the key ring ({', '.join(self.keys.ids)}) does not hold: is it this "
                                 "gallery's key file?")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """A write transaction whose commit reads the store's version into memory."""
        with write_transaction(self._db):
            yield
        self._version = self._read_version()

    def _open_schema(self, fingerprint: str, name: str) -> None:
        """Create a new gallery for this model, or check and migrate an existing one."""
        create_tables(self._db)
        meta = dict(self._db.execute("SELECT key, value FROM gallery_meta").fetchall())
        if not meta:
            self._db.executemany("INSERT INTO gallery_meta VALUES (?, ?)", [
                ("schema_version", str(SCHEMA_VERSION)), ("model_sha256", fingerprint), ("model_name", name),
                ("created_at", _now()), ("store_version", "0"), ("dim", str(self.dim)),
            ])
            return
        if meta["model_sha256"] != fingerprint:
            raise GalleryModelMismatch(
                f"gallery {self.directory} was built with model {meta['model_name']} "
                f"(sha256 {meta['model_sha256'][:16]}...) but the gateway loaded {name} "
                f"(sha256 {fingerprint[:16]}...); templates of different models cannot be compared. Start with "
                "the gallery's model, or re-enrol the photos into a new gallery with this one."
            )
        version = int(meta["schema_version"])
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.directory}: schema version {version} is newer than this gateway's "
                               f"{SCHEMA_VERSION}; upgrade fr-gateway")
        for step in range(version, SCHEMA_VERSION):
            MIGRATIONS[step](self._db, self.keys)
        self._db.executemany("INSERT OR REPLACE INTO gallery_meta VALUES (?, ?)", [
            ("schema_version", str(SCHEMA_VERSION)), ("store_version", meta.get("store_version", "0")),
            ("dim", meta.get("dim", str(self.dim))),
        ])
        self.dim = int(meta.get("dim", self.dim))

    def _bump_version(self) -> None:
        self._db.execute("UPDATE gallery_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'store_version'")

    def _read_version(self) -> int:
        return int(self._db.execute("SELECT value FROM gallery_meta WHERE key = 'store_version'").fetchone()[0])

    @property
    def version(self) -> int:
        """Kept in memory (refreshed by every commit), because every audit record asks for it."""
        return self._version

    def upsert_many(self, enrolments: Iterable[Enrolment]) -> list[bool]:
        """Store or replace templates in one transaction; True for each that replaced one (whose enrolment
        time is kept as previous_enrolled_at)."""
        replaced = []
        with self._lock, self._transaction():
            for item in enrolments:
                row = self._db.execute("SELECT enrolled_at FROM templates WHERE nik = ?", (item.nik,)).fetchone()
                template = np.asarray(item.template, dtype=np.float32).tobytes()
                kid, sealed = self.keys.seal(_payload(template, item.attributes),
                                              _context(item.nik, self.model_fingerprint))
                self._db.execute("INSERT OR REPLACE INTO templates VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (item.nik, sealed, kid, self.model_fingerprint, item.source_sha256, _now(),
                                  row[0] if row else None))
                replaced.append(row is not None)
            self._bump_version()
        return replaced

    def upsert(self, nik: str, template: np.ndarray, attributes: Mapping[str, str],
               source_sha256: str | None = None) -> bool:
        return self.upsert_many([Enrolment(nik, template, attributes, source_sha256)])[0]

    def delete(self, nik: str) -> bool:
        with self._lock, self._transaction():
            removed = self._db.execute("DELETE FROM templates WHERE nik = ?", (nik,)).rowcount > 0
            if removed:
                self._bump_version()
        return removed

    def _open(self, nik: str, kid: str, sealed: bytes, model: str) -> bytes:
        try:
            return self.keys.open(kid, sealed, _context(nik, model))
        except (InvalidTag, KeyRingError) as exc:
            self.damaged.add(nik)
            raise TemplateDamaged(nik, str(exc) or "it does not authenticate") from exc

    def _template(self, nik: str, kid: str, sealed: bytes, model: str) -> np.ndarray:
        """The template alone: the hot path of re-ranking leaves the attributes unparsed."""
        return np.frombuffer(self._open(nik, kid, sealed, model)[:self.dim * 4], dtype=np.float32)

    def _sound(self, rows: Iterable[tuple[str, bytes, str, str]]) -> dict[str, np.ndarray]:
        """The templates of rows that open; a damaged one is isolated (logged once, left out) so one altered
        row never stops a search or a start."""
        sound = {}
        for nik, sealed, kid, model in rows:
            try:
                sound[nik] = self._template(nik, kid, sealed, model)
            except TemplateDamaged as exc:
                log.error("%s; it is left out of searches", exc)
        return sound

    def get(self, nik: str) -> np.ndarray | None:
        """The NIK's template, None when it is not enrolled; TemplateDamaged when its row does not open."""
        with self._lock:
            row = self._db.execute("SELECT sealed, key_id, model_sha256 FROM templates WHERE nik = ?",
                                   (nik,)).fetchone()
        return None if row is None else self._template(nik, row[1], row[0], row[2])

    def get_many(self, niks: Iterable[str]) -> dict[str, np.ndarray]:
        """Templates of the NIKs that exist and open, for exact re-ranking of a shortlist."""
        wanted = list(niks)
        marks = ",".join("?" * len(wanted))
        with self._lock:
            rows = self._db.execute(f"SELECT nik, sealed, key_id, model_sha256 FROM templates WHERE nik IN ({marks})",
                                    wanted).fetchall()
        return self._sound(rows)

    def attributes(self, nik: str) -> dict[str, str] | None:
        with self._lock:
            row = self._db.execute("SELECT sealed, key_id, model_sha256 FROM templates WHERE nik = ?",
                                   (nik,)).fetchone()
        if row is None:
            return None
        return json.loads(self._open(nik, row[1], row[0], row[2])[self.dim * 4:])

    def source_of(self, nik: str) -> str | None:
        """SHA-256 of the photo the NIK's template came from, for resuming an enrolment run."""
        with self._lock:
            row = self._db.execute("SELECT source_sha256 FROM templates WHERE nik = ?", (nik,)).fetchone()
        return row[0] if row else None

    def iter_templates(self, chunk: int = 65536) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every NIK and template that opens, in NIK order, a chunk at a time, for rebuilding the index at any
        size; damaged rows are isolated (`damaged`)."""
        after = ""
        while True:
            with self._lock:
                rows = self._db.execute("SELECT nik, sealed, key_id, model_sha256 FROM templates WHERE nik > ? "
                                        "ORDER BY nik LIMIT ?", (after, chunk)).fetchall()
            if not rows:
                return
            if sound := self._sound(rows):
                yield list(sound), np.stack(list(sound.values()))
            after = rows[-1][0]

    def enrolled_at(self) -> dict[str, int]:
        """Every NIK with its enrolment time (ms since the epoch), to check a shared search index against."""
        with self._lock:
            rows = self._db.execute("SELECT nik, enrolled_at FROM templates").fetchall()
        return {nik: int(datetime.datetime.fromisoformat(at).timestamp() * 1000) for nik, at in rows}

    def reseal(self, batch: int = 1000) -> int:
        """Re-encrypt every record not sealed with the active key (after a rotation); returns how many."""
        done = 0
        while True:
            with self._lock, self._transaction():
                rows = self._db.execute("SELECT nik, sealed, key_id, model_sha256 FROM templates WHERE key_id != ? "
                                        "LIMIT ?", (self.keys.active, batch)).fetchall()
                for nik, sealed, kid, model in rows:
                    context = _context(nik, model)
                    new_kid, new_sealed = self.keys.seal(self.keys.open(kid, sealed, context), context)
                    self._db.execute("UPDATE templates SET sealed = ?, key_id = ? WHERE nik = ?",
                                     (new_sealed, new_kid, nik))
            done += len(rows)
            if len(rows) < batch:
                return done

    def key_ids_in_use(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT DISTINCT key_id FROM templates")}

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM templates").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
