"""The template store: one SQLite file per gallery, the source of truth from which the search index is rebuilt.
It keeps templates and attributes, never photos, and records the model every template came from."""

from __future__ import annotations

import datetime
import json
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np

STORE_FILE = "templates.sqlite3"
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS gallery_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (
    nik                  TEXT PRIMARY KEY,
    template             BLOB NOT NULL,
    model_sha256         TEXT NOT NULL,
    enrolled_at          TEXT NOT NULL,
    previous_enrolled_at TEXT,
    attributes           TEXT NOT NULL DEFAULT '{}'
);
"""


class GalleryModelMismatch(Exception):
    """The gallery was built with another recogniser: its templates cannot be compared with this model's."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


class TemplateStore:
    """Durable before acknowledged: WAL with synchronous=FULL, so a committed enrolment survives a crash."""

    def __init__(self, directory: str | Path, model_fingerprint: str, model_name: str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.model_fingerprint = model_fingerprint
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.directory / STORE_FILE, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._claim_model(model_fingerprint, model_name)

    def _claim_model(self, fingerprint: str, name: str) -> None:
        """A new gallery takes this model; an existing one must have been built with it."""
        with self._lock, self._db:
            meta = dict(self._db.execute("SELECT key, value FROM gallery_meta").fetchall())
            if not meta:
                self._db.executemany("INSERT INTO gallery_meta VALUES (?, ?)", [
                    ("schema_version", str(SCHEMA_VERSION)), ("model_sha256", fingerprint),
                    ("model_name", name), ("created_at", _now()),
                ])
                return
        if int(meta["schema_version"]) > SCHEMA_VERSION:
            raise RuntimeError(f"{self.directory}: schema version {meta['schema_version']} is newer than "
                               f"this gateway's {SCHEMA_VERSION}; upgrade fr-gateway")
        if meta["model_sha256"] != fingerprint:
            raise GalleryModelMismatch(
                f"gallery {self.directory} was built with model {meta['model_name']} (sha256 "
                f"{meta['model_sha256'][:16]}...) but the gateway loaded {name} (sha256 {fingerprint[:16]}...); "
                "templates of different models cannot be compared. Start with the gallery's model, or "
                "re-enrol the photos into a new gallery with this one."
            )

    def upsert(self, nik: str, template: np.ndarray, attributes: Mapping[str, str]) -> bool:
        """Store or replace a NIK's template; True when it replaced one (whose enrolment time is kept)."""
        blob = np.asarray(template, dtype=np.float32).tobytes()
        with self._lock, self._db:
            row = self._db.execute("SELECT enrolled_at FROM templates WHERE nik = ?", (nik,)).fetchone()
            self._db.execute(
                "INSERT OR REPLACE INTO templates VALUES (?, ?, ?, ?, ?, ?)",
                (nik, blob, self.model_fingerprint, _now(), row[0] if row else None, json.dumps(dict(attributes))),
            )
        return row is not None

    def delete(self, nik: str) -> bool:
        with self._lock, self._db:
            return self._db.execute("DELETE FROM templates WHERE nik = ?", (nik,)).rowcount > 0

    def get(self, nik: str) -> np.ndarray | None:
        with self._lock:
            row = self._db.execute("SELECT template FROM templates WHERE nik = ?", (nik,)).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=np.float32)

    def all_templates(self) -> tuple[list[str], np.ndarray]:
        """Every NIK and its template, for rebuilding the index."""
        with self._lock:
            rows = self._db.execute("SELECT nik, template FROM templates ORDER BY nik").fetchall()
        niks = [nik for nik, _ in rows]
        if not rows:
            return niks, np.empty((0, 0), dtype=np.float32)
        return niks, np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows])

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM templates").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
