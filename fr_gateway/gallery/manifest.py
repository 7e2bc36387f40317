"""Enrolment manifests: CSV with a header (`nik`, `photo`, any other column is an attribute) or JSON Lines
({"nik": ..., "photo": ..., "attributes": {...}} or flat extra keys). Photo paths are relative to the manifest."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

REQUIRED = ("nik", "photo")
# Columns a rejects file adds (reason, detail, line); ignored when the file is run again as a manifest.
REJECT_PREFIX = "reject_"


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    line: int
    nik: str
    photo: Path
    attributes: dict[str, str]


def _row(line: int, record: dict, base: Path) -> ManifestRow:
    missing = [key for key in REQUIRED if not str(record.get(key) or "").strip()]
    if missing:
        raise ValueError(f"line {line}: missing {', '.join(missing)}")
    attributes = dict(record.pop("attributes", None) or {})
    attributes.update({k: v for k, v in record.items()
                       if k not in REQUIRED and not str(k).startswith(REJECT_PREFIX) and v not in (None, "")})
    return ManifestRow(line, str(record["nik"]).strip(), base / str(record["photo"]).strip(),
                       {str(k): str(v) for k, v in attributes.items()})


def read_manifest(path: str | Path) -> Iterator[ManifestRow]:
    """Rows in file order; a malformed row raises ValueError naming its line."""
    path = Path(path)
    base = path.parent
    with path.open(newline="", encoding="utf-8") as handle:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            for line, text in enumerate(handle, start=1):
                if text.strip():
                    yield _row(line, json.loads(text), base)
            return
        for line, record in enumerate(csv.DictReader(handle), start=2):
            yield _row(line, dict(record), base)


def count_rows(path: str | Path) -> int:
    """Data rows, for a progress bar's total: non-empty lines, less the CSV header."""
    path = Path(path)
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines if path.suffix.lower() in (".jsonl", ".ndjson") else max(0, lines - 1)
