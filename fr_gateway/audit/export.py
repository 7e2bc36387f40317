"""The auditors' export: verify the log, decrypt the records with the auditor's reading keys, select them by
time, camera, NIK or operation, and write JSON Lines or CSV with each record's integrity beside it."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from cryptography.exceptions import InvalidTag

from fr_gateway.audit import chain
from fr_gateway.audit.keys import AuditorKeys
from fr_gateway.audit.log import parse_time
from fr_gateway.audit.trail import DECISIONS, OPERATIONS
from fr_gateway.audit.verify import Report, verify

CSV_COLUMNS = ("seq", "integrity", "log_intact", "time", "operation", "decision", "status", "reason", "caller",
               "role", "on_behalf_of", "camera_id", "nik", "candidates", "alerts", "threshold", "latency_ms", "model",
               "gallery_version", "request_id", "peer", "detail")


@dataclasses.dataclass(frozen=True)
class Selection:
    start: datetime.datetime | None = None
    end: datetime.datetime | None = None
    camera: str | None = None
    nik: str | None = None
    operation: str | None = None
    decision: str | None = None

    def __post_init__(self) -> None:
        """A selection that can match nothing is a mistake to report, not an empty export."""
        if self.start and self.end and self.start >= self.end:
            raise ValueError(f"the range from {self.start:%Y-%m-%d %H:%M:%S} to {self.end:%Y-%m-%d %H:%M:%S} UTC is "
                             "empty: --from must come before --to")
        if self.operation and self.operation.lower() not in {name.lower() for name in OPERATIONS}:
            raise ValueError(f"--operation {self.operation!r}: records name one of {', '.join(OPERATIONS)}")
        if self.decision and self.decision.upper() not in DECISIONS:
            raise ValueError(f"--decision {self.decision!r}: records hold one of {', '.join(DECISIONS)}")

    def wants(self, event: dict) -> bool:
        moment = parse_time(event["time"])
        niks = {event.get("nik")} | {c["nik"] for c in event.get("candidates", [])}
        return ((self.start is None or moment >= self.start) and (self.end is None or moment < self.end)
                and (self.camera is None or event.get("camera_id") == self.camera)
                and (self.nik is None or self.nik in niks)
                and (self.operation is None or event.get("operation", "").lower() == self.operation.lower())
                and (self.decision is None or event.get("decision") == self.decision.upper()))


@dataclasses.dataclass
class Exported:
    report: Report
    written: int = 0
    unreadable: Counter[str] = dataclasses.field(default_factory=Counter)  # why -> records

    def summary(self) -> dict:
        return {**self.report.summary(), "exported": self.written, "unreadable": dict(self.unreadable)}


class _Reader:
    """Opens records with the auditor's keys, one data key per segment."""

    def __init__(self, keys: AuditorKeys) -> None:
        self._keys = keys
        self.unreadable: Counter[str] = Counter()
        self.altered: list[str] = []  # places of records whose ciphertext fails authentication
        self._data_keys: dict[int, bytes | str] = {}  # segment -> key, or why it cannot be had

    def _data_key(self, header: dict | None) -> bytes | str:
        if header is None:
            return "its segment header is damaged"
        segment = header["segment"]
        if segment not in self._data_keys:
            reader = self._keys.readers.get(header.get("reader", ""))
            if reader is None:
                self._data_keys[segment] = f"encrypted for reading key {header.get('reader')}, which was not given"
            else:
                try:
                    self._data_keys[segment] = chain.unwrap_data_key(header, reader)
                except (InvalidTag, ValueError, KeyError):
                    self._data_keys[segment] = "its segment key does not open with the given reading key"
        return self._data_keys[segment]

    def open(self, header: dict | None, place: str, entry: dict) -> dict | None:
        key = self._data_key(header)
        if isinstance(key, bytes):
            try:
                return chain.open_record(entry, key)
            except (InvalidTag, ValueError, KeyError):
                why = "fails authentication: altered"
                self.altered.append(place)
        else:
            why = key
        self.unreadable[why] += 1
        return None


def _integrity(report: Report, place: str, seq: int) -> str:
    if place in report.damaged:
        return "damaged"
    return "signed" if seq <= report.signed_through else "unsigned"


def _csv_row(event: dict) -> dict:
    row = {name: event.get(name, "") for name in CSV_COLUMNS}
    row["candidates"] = ";".join(f"{c['nik']}:{c['score']:.4f}" for c in event.get("candidates", []))
    row["alerts"] = ";".join(f"{a['alert_id']}:{a['watchlist']}/{a['entry_id']}:{a['score']:.4f}"
                             for a in event.get("alerts", []))
    return row


def export(folder: str | Path, keys: AuditorKeys, out: TextIO, output_format: str = "jsonl",
           selection: Selection = Selection(), witnesses: Sequence[tuple[str, dict[str, dict]]] = ()) -> Exported:
    """Write the selected records to `out`; JSON Lines opens with the verification result, CSV carries it in
    the integrity and log_intact columns of every row."""
    selected: list[tuple[str, dict]] = []
    reader = _Reader(keys)

    def visit(header: dict | None, place: str, entry: dict) -> None:
        event = reader.open(header, place, entry)
        if event is not None and selection.wants(event):
            selected.append((place, {"seq": entry["seq"], **event}))

    report = verify(folder, keys.signers, visit, witnesses)
    for place in reader.altered:
        report.problem(place, "the record fails authentication: its ciphertext was altered")
    exported = Exported(report, unreadable=reader.unreadable)
    rows = [{**event, "integrity": _integrity(report, place, event["seq"]), "log_intact": report.intact}
            for place, event in selected]
    exported.written = len(rows)
    if output_format == "jsonl":
        out.write(json.dumps({"verification": exported.summary()}) + "\n")
        for row in rows:
            out.write(json.dumps(row) + "\n")
    elif output_format == "csv":
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(_csv_row(row) for row in rows)
    else:
        raise ValueError(f"unknown export format {output_format!r}: jsonl or csv")
    return exported
