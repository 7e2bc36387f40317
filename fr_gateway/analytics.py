"""Counts for Command Center analytics: faces, people passing and decisions per camera and hour, and audit records
per operation and day. Counts only: no NIK, no face, no track id is stored. Faces are counted in memory as they
are decided and added to `analytics.sqlite3` beside the gallery every few seconds, so the request path pays one
dictionary update; a read adds what is pending first, so it is exact. A gateway killed with -9 loses at most the
last FLUSH_S seconds of counts (the audit log keeps every decision itself)."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import threading
import time
from pathlib import Path

from fr_gateway.gallery.store import create_tables, private_database, write_transaction

STORE_FILE = "analytics.sqlite3"
FLUSH_S = 5.0
HOUR_S, DAY_S = 3600, 86400
TRACKS_REMEMBERED = 100_000  # a track seen again after this many newer ones counts as a second person
# Face decisions as counted per hour, in the order of CameraHour's fields
DECISION_COLUMNS = {"MATCH": "matched", "NO_MATCH": "not_matched", "NO_FACE": "no_face", "REJECTED": "rejected",
                    "INVALID": "invalid", "OVERLOADED": "overloaded"}
COUNT_COLUMNS = ("faces", "tracks", *DECISION_COLUMNS.values())
TABLES = f"""
CREATE TABLE IF NOT EXISTS camera_hours (
    camera_id  TEXT NOT NULL,
    hour       INTEGER NOT NULL,
    {", ".join(f"{column} INTEGER NOT NULL DEFAULT 0" for column in COUNT_COLUMNS)},
    PRIMARY KEY (camera_id, hour)
);
CREATE TABLE IF NOT EXISTS camera_hour_reasons (
    camera_id  TEXT NOT NULL,
    hour       INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    faces      INTEGER NOT NULL,
    PRIMARY KEY (camera_id, hour, reason)
);
CREATE TABLE IF NOT EXISTS audit_days (
    day        INTEGER NOT NULL,
    operation  TEXT NOT NULL,
    decision   TEXT NOT NULL,
    records    INTEGER NOT NULL,
    PRIMARY KEY (day, operation, decision)
);
"""


@dataclasses.dataclass(frozen=True)
class CameraHour:
    camera_id: str
    hour: int  # Unix time of the hour's start
    counts: dict[str, int]  # by COUNT_COLUMNS
    reasons: dict[str, int]


@dataclasses.dataclass(frozen=True)
class AuditDay:
    day: int  # Unix time of the day's start (UTC)
    operation: str
    decision: str
    records: int


class Aggregates:
    def __init__(self, directory: str | Path) -> None:
        self._db = private_database(Path(directory) / STORE_FILE)
        with write_transaction(self._db) as db:
            create_tables(db, TABLES)
        self._lock = threading.Lock()  # the pending counts
        self._db_lock = threading.Lock()  # the file: writing what was pending, and reading
        self._hours: collections.Counter[tuple[str, int, str]] = collections.Counter()
        self._reasons: collections.Counter[tuple[str, int, str]] = collections.Counter()
        self._audit: collections.Counter[tuple[int, str, str]] = collections.Counter()
        self._tracks: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self._stopping = threading.Event()
        self._flusher = threading.Thread(target=self._flush_every, name="analytics", daemon=True)
        self._flusher.start()

    def face(self, camera_id: str, track_id: str, decision: str, reason: str, now: float | None = None) -> None:
        """Count one decided face; a track counts as one person passing, in the hour of its first face."""
        hour = int((time.time() if now is None else now) // HOUR_S * HOUR_S)
        with self._lock:
            self._hours[(camera_id, hour, "faces")] += 1
            self._hours[(camera_id, hour, DECISION_COLUMNS[decision])] += 1
            if reason:
                self._reasons[(camera_id, hour, reason)] += 1
            if not track_id or self._first_face_of(camera_id, track_id):
                self._hours[(camera_id, hour, "tracks")] += 1

    def _first_face_of(self, camera_id: str, track_id: str) -> bool:
        key = (camera_id, track_id)
        if key in self._tracks:
            self._tracks.move_to_end(key)
            return False
        self._tracks[key] = None
        if len(self._tracks) > TRACKS_REMEMBERED:
            self._tracks.popitem(last=False)
        return True

    def record(self, operation: str, decision: str, now: float | None = None) -> None:
        """Count one audit record."""
        day = int((time.time() if now is None else now) // DAY_S * DAY_S)
        with self._lock:
            self._audit[(day, operation, decision)] += 1

    def flush(self) -> None:
        with self._db_lock:
            self._write_pending()

    def _write_pending(self) -> None:
        """Take what is pending (briefly holding the counting lock, which faces wait on) and add it to the file;
        the caller holds the file's lock, so a read after it sees every count."""
        with self._lock:
            hours, self._hours = self._hours, collections.Counter()
            reasons, self._reasons = self._reasons, collections.Counter()
            audit, self._audit = self._audit, collections.Counter()
        if not (hours or reasons or audit):
            return
        with write_transaction(self._db) as db:
            for (camera_id, hour, column), count in hours.items():
                db.execute(f"INSERT INTO camera_hours (camera_id, hour, {column}) VALUES (?, ?, ?) ON CONFLICT "
                           f"DO UPDATE SET {column} = {column} + excluded.{column}", (camera_id, hour, count))
            db.executemany("INSERT INTO camera_hour_reasons VALUES (?, ?, ?, ?) ON CONFLICT "
                           "DO UPDATE SET faces = faces + excluded.faces",
                           [(*key, count) for key, count in reasons.items()])
            db.executemany("INSERT INTO audit_days VALUES (?, ?, ?, ?) ON CONFLICT "
                           "DO UPDATE SET records = records + excluded.records",
                           [(*key, count) for key, count in audit.items()])

    def _flush_every(self) -> None:
        while not self._stopping.wait(FLUSH_S):
            self.flush()

    def camera_hours(self, since: float, until: float) -> list[CameraHour]:
        period = (since // HOUR_S * HOUR_S, until)
        with self._db_lock:
            self._write_pending()
            rows = self._db.execute(f"SELECT camera_id, hour, {', '.join(COUNT_COLUMNS)} FROM camera_hours "
                                    "WHERE hour >= ? AND hour < ? ORDER BY hour, camera_id", period).fetchall()
            reasons: dict[tuple[str, int], dict[str, int]] = collections.defaultdict(dict)
            for camera_id, hour, reason, faces in self._db.execute(
                    "SELECT camera_id, hour, reason, faces FROM camera_hour_reasons WHERE hour >= ? AND hour < ?",
                    period):
                reasons[(camera_id, hour)][reason] = faces
        return [CameraHour(camera_id, hour, dict(zip(COUNT_COLUMNS, counts, strict=True)),
                           reasons.get((camera_id, hour), {})) for camera_id, hour, *counts in rows]

    def audit_days(self, since: float, until: float) -> list[AuditDay]:
        with self._db_lock:
            self._write_pending()
            rows = self._db.execute("SELECT day, operation, decision, records FROM audit_days WHERE day >= ? AND "
                                    "day < ? ORDER BY day, operation, decision",
                                    (since // DAY_S * DAY_S, until)).fetchall()
        return [AuditDay(*row) for row in rows]

    def close(self) -> None:
        self._stopping.set()
        self._flusher.join()
        self.flush()
        self._db.close()


def day_text(day: float) -> str:
    return datetime.datetime.fromtimestamp(day, datetime.UTC).strftime("%Y-%m-%d")
