"""The watchlist store: one SQLite file beside the gallery's, sealed with the gallery's key ring (so one key
rotation re-seals both). It holds the
lists, their entries (label and case reference sealed, one template per photo), the alerts they raised (the
face crop sealed, until its retention ends) and the webhook outbox, so that an alert and its deliveries are
committed in one transaction: an alert acknowledged to the outbox survives a crash."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag

from fr_gateway.gallery.store import create_tables, private_database, write_transaction
from fr_gateway.security.keys import KeyRing, KeyRingError

log = logging.getLogger(__name__)

STORE_FILE = "watchlists.sqlite3"
TABLES = """
CREATE TABLE IF NOT EXISTS watchlists (
    name              TEXT PRIMARY KEY,
    reason            TEXT NOT NULL,
    owner             TEXT NOT NULL,
    created_at        REAL NOT NULL,
    created_by        TEXT NOT NULL,
    expires_at        REAL,
    threshold         REAL NOT NULL,
    threshold_origin  TEXT NOT NULL,
    false_match_rate  REAL,
    priority          INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    entry_id    TEXT PRIMARY KEY,
    watchlist   TEXT NOT NULL REFERENCES watchlists(name),
    sealed      BLOB NOT NULL,
    key_id      TEXT NOT NULL,
    expires_at  REAL,
    created_at  REAL NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entry_templates (
    entry_id      TEXT NOT NULL REFERENCES entries(entry_id) ON DELETE CASCADE,
    number        INTEGER NOT NULL,
    sealed        BLOB NOT NULL,
    key_id        TEXT NOT NULL,
    model_sha256  TEXT NOT NULL,
    PRIMARY KEY (entry_id, number)
);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id        TEXT PRIMARY KEY,
    time            REAL NOT NULL,
    watchlist       TEXT NOT NULL,
    entry_id        TEXT NOT NULL,
    camera_id       TEXT NOT NULL,
    track_id        TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    score           REAL NOT NULL,
    threshold       REAL NOT NULL,
    evidence        BLOB,
    key_id          TEXT NOT NULL,
    evidence_until  REAL NOT NULL,
    adjudication    TEXT,
    adjudicated_by  TEXT,
    adjudicated_at  REAL
);
CREATE TABLE IF NOT EXISTS outbox (
    delivery      INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id      TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    body          BLOB NOT NULL,
    key_id        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    due           REAL NOT NULL,
    delivered_at  REAL,
    last_error    TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (due) WHERE delivered_at IS NULL;
"""


class WatchlistError(Exception):
    """A watchlist change refused, with the reason and the gRPC status name the caller is told."""

    status = "INVALID_ARGUMENT"

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status or type(self).status


class UnknownWatchlist(WatchlistError):
    status = "NOT_FOUND"


class WatchlistExists(WatchlistError):
    status = "ALREADY_EXISTS"


@dataclasses.dataclass(frozen=True)
class Watchlist:
    name: str
    reason: str
    owner: str
    created_at: float
    created_by: str
    expires_at: float | None
    threshold: float
    threshold_origin: str
    false_match_rate: float | None
    priority: int


@dataclasses.dataclass(frozen=True)
class Entry:
    """One person on a list, with the templates of the photos that enrolled."""

    entry_id: str
    watchlist: str
    label: str
    case_reference: str
    expires_at: float | None
    templates: np.ndarray


@dataclasses.dataclass(frozen=True)
class AlertRecord:
    alert_id: str
    time: float
    watchlist: str
    entry_id: str
    camera_id: str
    track_id: str
    request_id: str
    score: float
    threshold: float
    evidence: bytes | None
    adjudication: str | None


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One alert owed to one webhook endpoint."""

    delivery: int
    alert_id: str
    endpoint: str
    body: bytes
    attempts: int


@dataclasses.dataclass(frozen=True)
class ListCounts:
    alerts: int = 0
    confirmed: int = 0
    dismissed: int = 0


def template_context(entry_id: str, number: int, model: str) -> str:
    """What an entry's template is sealed bound to (SEALED below says the same in SQL)."""
    return f"{entry_id}/{number}/{model}"


def delivery_context(alert_id: str, endpoint: str) -> str:
    """What a webhook body is sealed bound to (SEALED below says the same in SQL)."""
    return f"{alert_id}>{endpoint}"


def new_entry_id() -> str:
    """'W' and 15 hexadecimal digits: not a NIK, so an entry is never taken for a KTP-el record."""
    return "W" + secrets.token_hex(8)[:15].upper()


def new_alert_id() -> str:
    return "A" + secrets.token_hex(8).upper()


class WatchlistStore:
    """Durable before acknowledged (WAL, synchronous=FULL), as the gallery's store; one connection behind a
    lock, since a change is a handful of rows."""

    def __init__(self, directory: str | Path, keys: KeyRing, model_fingerprint: str, dim: int = 512) -> None:
        self.keys = keys
        self.model_fingerprint = model_fingerprint
        self.dim = dim
        self._lock = threading.Lock()
        self._db = private_database(Path(directory) / STORE_FILE)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._transaction() as db:
            create_tables(db, TABLES)

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._db)

    def _seal(self, plaintext: bytes, context: str) -> tuple[str, bytes]:
        return self.keys.seal(plaintext, context.encode())

    def _open(self, kid: str, sealed: bytes, context: str) -> bytes:
        return self.keys.open(kid, sealed, context.encode())

    # lists
    def create(self, watchlist: Watchlist) -> None:
        with self._lock, self._transaction() as db:
            if db.execute("SELECT 1 FROM watchlists WHERE name = ?", (watchlist.name,)).fetchone():
                raise WatchlistExists(f"watchlist {watchlist.name!r} exists already")
            db.execute("INSERT INTO watchlists VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       dataclasses.astuple(watchlist))

    def watchlists(self) -> list[Watchlist]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM watchlists ORDER BY name").fetchall()
        return [Watchlist(*row) for row in rows]

    def watchlist(self, name: str) -> Watchlist:
        with self._lock:
            row = self._db.execute("SELECT * FROM watchlists WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownWatchlist(f"no watchlist {name!r}")
        return Watchlist(*row)

    # entries
    def add_entry(self, entry: Entry, created_by: str) -> None:
        self.watchlist(entry.watchlist)
        person = json.dumps({"label": entry.label, "case_reference": entry.case_reference}).encode()
        kid, sealed = self._seal(person, entry.entry_id)
        with self._lock, self._transaction() as db:
            db.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (entry.entry_id, entry.watchlist, sealed, kid, entry.expires_at, time.time(), created_by))
            for number, template in enumerate(entry.templates):
                kid, sealed = self._seal(np.asarray(template, np.float32).tobytes(),
                                         template_context(entry.entry_id, number, self.model_fingerprint))
                db.execute("INSERT INTO entry_templates VALUES (?, ?, ?, ?, ?)",
                           (entry.entry_id, number, sealed, kid, self.model_fingerprint))

    def remove_entry(self, watchlist: str, entry_id: str) -> bool:
        with self._lock, self._transaction() as db:
            return db.execute("DELETE FROM entries WHERE watchlist = ? AND entry_id = ?",
                              (watchlist, entry_id)).rowcount > 0

    def entries(self) -> Iterator[Entry]:
        """Every entry with its templates of this model; a row that does not open is left out, logged."""
        with self._lock:
            people = self._db.execute("SELECT entry_id, watchlist, sealed, key_id, expires_at FROM entries").fetchall()
            templates: dict[str, list[tuple[int, bytes, str]]] = {}
            for entry_id, number, sealed, kid in self._db.execute(
                    "SELECT entry_id, number, sealed, key_id FROM entry_templates WHERE model_sha256 = ?",
                    (self.model_fingerprint,)):
                templates.setdefault(entry_id, []).append((number, sealed, kid))
        for entry_id, watchlist, sealed, kid, expires_at in people:
            try:
                person = json.loads(self._open(kid, sealed, entry_id))
                opened = [np.frombuffer(self._open(k, s, template_context(entry_id, n, self.model_fingerprint)),
                                        np.float32) for n, s, k in templates.get(entry_id, [])]
            except (InvalidTag, KeyRingError) as exc:
                log.error("watchlist entry %s does not open (%s); it is left out of searches", entry_id,
                          exc or "it does not authenticate")
                continue
            if opened:
                yield Entry(entry_id, watchlist, person["label"], person["case_reference"], expires_at,
                            np.stack(opened))

    # alerts
    def add_alert(self, alert: AlertRecord, evidence_until: float, deliveries: Sequence[tuple[str, bytes]]) -> None:
        """The alert, its sealed evidence and its webhook deliveries, in one transaction."""
        kid, evidence = self._seal(alert.evidence, alert.alert_id) if alert.evidence else (self.keys.active, None)
        with self._lock, self._transaction() as db:
            db.execute("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
                       (alert.alert_id, alert.time, alert.watchlist, alert.entry_id, alert.camera_id,
                        alert.track_id, alert.request_id, alert.score, alert.threshold, evidence, kid,
                        evidence_until))
            for endpoint, body in deliveries:
                body_kid, sealed = self._seal(body, delivery_context(alert.alert_id, endpoint))
                db.execute("INSERT INTO outbox (alert_id, endpoint, body, key_id, due) VALUES (?, ?, ?, ?, ?)",
                           (alert.alert_id, endpoint, sealed, body_kid, alert.time))

    def alert(self, alert_id: str) -> AlertRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT alert_id, time, watchlist, entry_id, camera_id, track_id, request_id, score, threshold, "
                "evidence, key_id, adjudication FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
        if row is None:
            return None
        *fields, evidence, kid, adjudication = row
        opened = self._open(kid, evidence, alert_id) if evidence is not None else None
        return AlertRecord(*fields, opened, adjudication)

    def adjudicate(self, alert_id: str, adjudication: str, who: str) -> bool:
        """Record the decision unless the alert has one already; False when it had."""
        with self._lock, self._transaction() as db:
            return db.execute("UPDATE alerts SET adjudication = ?, adjudicated_by = ?, adjudicated_at = ? "
                              "WHERE alert_id = ? AND adjudication IS NULL",
                              (adjudication, who, time.time(), alert_id)).rowcount > 0

    def counts(self) -> dict[str, ListCounts]:
        with self._lock:
            rows = self._db.execute(
                "SELECT watchlist, COUNT(*), SUM(adjudication = 'CONFIRMED'), SUM(adjudication = 'DISMISSED') "
                "FROM alerts GROUP BY watchlist").fetchall()
        return {name: ListCounts(total, confirmed or 0, dismissed or 0) for name, total, confirmed, dismissed in rows}

    def alert_days(self, since: float, until: float) -> list[tuple[str, int, int, int, int]]:
        """(watchlist, day's start, alerts, confirmed, dismissed) for each list and UTC day with alerts."""
        with self._lock:
            return self._db.execute(
                "SELECT watchlist, CAST(time / 86400 AS INTEGER) * 86400 AS day, COUNT(*), "
                "SUM(adjudication = 'CONFIRMED'), SUM(adjudication = 'DISMISSED') FROM alerts "
                "WHERE time >= ? AND time < ? GROUP BY watchlist, day ORDER BY day, watchlist",
                (since, until)).fetchall()

    def erase_old_evidence(self, now: float) -> int:
        """Erase every alert crop whose retention has ended; the alert itself (who, where, score) stays."""
        with self._lock, self._transaction() as db:
            return db.execute("UPDATE alerts SET evidence = NULL WHERE evidence IS NOT NULL AND evidence_until <= ?",
                              (now,)).rowcount

    # webhook outbox
    def due(self, now: float, limit: int = 32) -> list[Delivery]:
        with self._lock:
            rows = self._db.execute(
                "SELECT delivery, alert_id, endpoint, body, key_id, attempts FROM outbox "
                "WHERE delivered_at IS NULL AND due <= ? ORDER BY due LIMIT ?", (now, limit)).fetchall()
        return [Delivery(delivery, alert_id, endpoint, self._open(kid, body, delivery_context(alert_id, endpoint)),
                         attempts)
                for delivery, alert_id, endpoint, body, kid, attempts in rows]

    def delivered(self, delivery: int, now: float) -> None:
        """A delivered body is erased: the receiver has it now."""
        with self._lock, self._transaction() as db:
            db.execute("UPDATE outbox SET delivered_at = ?, body = x'', last_error = NULL WHERE delivery = ?",
                       (now, delivery))

    def retry_later(self, delivery: int, due: float, error: str) -> None:
        with self._lock, self._transaction() as db:
            db.execute("UPDATE outbox SET attempts = attempts + 1, due = ?, last_error = ? WHERE delivery = ?",
                       (due, error[:500], delivery))

    def retry_now(self, now: float) -> None:
        """Every undelivered alert due now: after a restart nothing waits out a backoff from before it."""
        with self._lock, self._transaction() as db:
            db.execute("UPDATE outbox SET due = ? WHERE delivered_at IS NULL", (now,))

    def pending(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0]

    # every sealed column, with the id its record is bound to (as template_context and delivery_context make it)
    SEALED = (("entries", "sealed", "key_id", "entry_id", "entry_id"),
              ("entry_templates", "sealed", "key_id", "entry_id || '/' || number || '/' || model_sha256",
               "rowid"),
              ("alerts", "evidence", "key_id", "alert_id", "alert_id"),
              ("outbox", "body", "key_id", "alert_id || '>' || endpoint", "delivery"))

    def reseal(self) -> int:
        """Re-encrypt every record not sealed with the active key (after a rotation), in one transaction (the
        store holds thousands of rows, not millions); returns how many."""
        done = 0
        with self._lock, self._transaction() as db:
            for table, column, kid_column, context, row_id in self.SEALED:
                rows = db.execute(f"SELECT {row_id}, {column}, {kid_column}, {context} FROM {table} "
                                  f"WHERE {kid_column} != ? AND length({column}) > 0", (self.keys.active,)).fetchall()
                for identifier, sealed, kid, bound_to in rows:
                    new_kid, new_sealed = self._seal(self._open(kid, sealed, bound_to), bound_to)
                    db.execute(f"UPDATE {table} SET {column} = ?, {kid_column} = ? WHERE {row_id} = ?",
                               (new_sealed, new_kid, identifier))
                done += len(rows)
        return done

    def key_ids_in_use(self) -> set[str]:
        with self._lock:
            return {kid for table, column, kid_column, _, _ in self.SEALED for (kid,) in self._db.execute(
                f"SELECT DISTINCT {kid_column} FROM {table} WHERE length({column}) > 0")}

    def close(self) -> None:
        with self._lock:
            self._db.close()
