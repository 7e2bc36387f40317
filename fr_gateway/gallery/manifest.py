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


class ManifestError(ValueError):
    """A file that cannot be read as a manifest at all: missing, empty, or without the nik and photo columns."""


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    """One record; `problem` says why it cannot be enrolled as written (it is then rejected on its own)."""

    line: int
    nik: str
    photo: Path
    attributes: dict[str, str]
    problem: str = ""


def _row(line: int, record: object, base: Path) -> ManifestRow:
    if not isinstance(record, dict):
        return ManifestRow(line, "", base, {}, f"line {line}: not a JSON object")
    missing = [key for key in REQUIRED if not str(record.get(key) or "").strip()]
    attributes = dict(record.pop("attributes", None) or {})
    attributes.update({k: v for k, v in record.items()
                       if k not in REQUIRED and not str(k).startswith(REJECT_PREFIX) and v not in (None, "")})
    return ManifestRow(line, str(record.get("nik") or "").strip(), base / str(record.get("photo") or "").strip(),
                       {str(k): str(v) for k, v in attributes.items()},
                       f"line {line}: no {' and no '.join(missing)}" if missing else "")


def _is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in (".jsonl", ".ndjson")


def read_manifest(path: str | Path) -> Iterator[ManifestRow]:
    """Rows in file order, a malformed one with its problem set. A file that is no manifest raises
    ManifestError here, before any row is read, so nothing is sent or enrolled from it."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        first = next((text for text in handle if text.strip()), None)
    if first is None:
        raise ManifestError(f"manifest {path} is empty")
    if _is_jsonl(path):
        try:
            json.loads(first)
        except ValueError as exc:
            raise ManifestError(f"manifest {path}: not JSON Lines ({exc}); one object a line, "
                                '{"nik": ..., "photo": ..., "attributes": {...}}') from None
        return _jsonl_rows(path)
    header = [column.strip() for column in next(csv.reader([first]))]
    if missing := [column for column in REQUIRED if column not in header]:
        raise ManifestError(f"manifest {path}: the first line must be a header naming the columns "
                            f"{' and '.join(REQUIRED)} (no {', '.join(missing)} in {header}); any other column is "
                            "kept as an attribute")
    return _csv_rows(path)


def _jsonl_rows(path: Path) -> Iterator[ManifestRow]:
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except ValueError as exc:
                yield ManifestRow(line, "", path.parent, {}, f"line {line}: not JSON ({exc})")
                continue
            yield _row(line, record, path.parent)


def _csv_rows(path: Path) -> Iterator[ManifestRow]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        reader.fieldnames = [column.strip() for column in reader.fieldnames or ()]
        for record in reader:
            yield _row(reader.line_num, dict(record), path.parent)


def count_rows(path: str | Path) -> int:
    """Data rows, for a progress bar's total: non-empty lines, less the CSV header."""
    path = Path(path)
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines if _is_jsonl(path) else max(0, lines - 1)
