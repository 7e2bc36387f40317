"""Check an audit log with the signers' public keys only: the chain of line hashes, the sequence numbers,
every header and checkpoint signature, and HEAD; name the file and line of every break. Beside the witnesses
(witness.py), also whether the log was rolled back to an older checkpoint."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fr_gateway.audit import chain


@dataclasses.dataclass(frozen=True)
class Finding:
    place: str
    message: str

    def __str__(self) -> str:
        return f"{self.place}: {self.message}"


@dataclasses.dataclass
class Report:
    """`problems` mean tampering or damage; `notes` are expected events such as a crash the log recovered from."""

    folder: str
    problems: list[Finding] = dataclasses.field(default_factory=list)
    notes: list[Finding] = dataclasses.field(default_factory=list)
    segments: int = 0
    records: int = 0
    checkpoints: int = 0
    last_seq: int = 0
    signed_through: int = 0  # the last record covered by a valid checkpoint
    damaged: set[str] = dataclasses.field(default_factory=set)  # places named by problems
    trusted_signatures: int = 0  # signatures by a key the auditor holds, valid or not
    foreign_signers: set[str] = dataclasses.field(default_factory=set)
    log_id: str | None = None  # the hash of the log's first line
    last_checkpoint: dict | None = None  # the newest validly signed checkpoint
    rolled_back: list[Finding] = dataclasses.field(default_factory=list)
    witnesses: list[str] = dataclasses.field(default_factory=list)  # what the log was compared with

    @property
    def intact(self) -> bool:
        return not self.problems and not self.rolled_back

    @property
    def wrong_keys(self) -> bool:
        """Not one entry is signed by a key the auditor holds: the keys of another gateway's log, most likely
        (or a log re-signed whole, which these keys cannot tell apart): nothing was verified."""
        return not self.trusted_signatures and bool(self.foreign_signers)

    def problem(self, place: str, message: str) -> None:
        self.problems.append(Finding(place, message))
        self.damaged.add(place)

    def summary(self) -> dict:
        return {"folder": self.folder, "intact": self.intact, "segments": self.segments, "records": self.records,
                "checkpoints": self.checkpoints, "last_seq": self.last_seq, "signed_through": self.signed_through,
                "problems": [str(f) for f in self.problems], "notes": [str(f) for f in self.notes],
                "rolled_back": [str(f) for f in self.rolled_back], "witnesses": self.witnesses}

    def compare(self, witnessed: dict[str, dict], source: str) -> None:
        """Against a witness's newest checkpoint of this log: a log that ends before it was rolled back, and one
        whose checkpoint of the same number differs was rewritten."""
        seen = witnessed.get(self.log_id or "")
        if seen is None:
            self.witnesses.append(f"{source}: no checkpoint of this log")
            return
        self.witnesses.append(f"{source}: checkpoint {seen.get('number')} (records 1-{seen.get('seq')})")
        ours = self.last_checkpoint or {}
        if (ours.get("number", 0), ours.get("seq", 0)) < (seen.get("number", 0), seen.get("seq", 0)):
            self.rolled_back.append(Finding(source, (
                f"holds checkpoint {seen.get('number')} of {seen.get('time')}, covering records 1-{seen.get('seq')} "
                f"(in {chain.segment_name(seen.get('segment', 0))} line {seen.get('line')}), but the log's newest "
                f"checkpoint is {ours.get('number', 0)}, covering records 1-{ours.get('seq', 0)}: records "
                f"{ours.get('seq', 0) + 1}-{seen.get('seq')} and everything after them are missing")))
        elif ours.get("number") == seen.get("number") and chain.encode(ours) != chain.encode(seen):
            self.rolled_back.append(Finding(source, f"checkpoint {seen.get('number')} differs from the log's: the "
                                                    "log was rewritten after it was witnessed"))

    def text(self) -> str:
        if self.wrong_keys:
            return (f"NOT VERIFIED: none of the log's signatures in {self.folder} is by a key in the auditor's "
                    f"folder (the log is signed by {', '.join(sorted(self.foreign_signers))}): these are another "
                    "gateway's keys, or the whole log was signed again by someone else; check with the right keys")
        verdict = ("ROLLED BACK" if self.rolled_back else "INTACT" if self.intact else
                   f"DAMAGED ({len(self.problems)} problems)")
        lines = [f"{verdict}: {self.records} records in {self.segments} segments, {self.checkpoints} signed "
                 f"checkpoints; records 1-{self.signed_through} are covered by a signature"]
        lines += [f"  ROLLED BACK {f}" for f in self.rolled_back]
        lines += [f"  PROBLEM {f}" for f in self.problems] + [f"  note {f}" for f in self.notes]
        lines += [f"  checked against the {w}" for w in self.witnesses] or [
            "  no witness checked: a log rolled back to an older checkpoint, HEAD included, cannot be told from "
            "an intact one (give --witness, or keep the gateway's witness file beside the auditor's keys)"]
        return "\n".join(lines)


# Called for each record line: (segment header or None when unreadable, place, record entry).
RecordVisitor = Callable[[dict | None, str, dict], None]


class _Walk:
    def __init__(self, folder: Path, signers: dict[str, Ed25519PublicKey], visit: RecordVisitor | None) -> None:
        self.report = Report(str(folder))
        self.signers = signers
        self.visit = visit
        self.prev: str | None = chain.GENESIS
        self.last_seq: int | None = 0
        self.torn: tuple[int, int] | None = None  # (segment, line) of an incomplete last line
        self.checkpoint_lines: dict[tuple[int, int], bytes] = {}
        self.states: list[tuple[str | None, int | None]] = []  # (line hash, last seq) after each line of a segment
        self.previous_states: list[tuple[str | None, int | None]] = []

    def signature_ok(self, entry: dict, place: str) -> bool:
        key = self.signers.get(entry.get("signer", ""))
        if key is None:
            self.report.foreign_signers.add(str(entry.get("signer")))
            self.report.problem(place, f"signed by {entry.get('signer')!r}, which is not a trusted signer: "
                                       "not written by this gateway")
            return False
        self.report.trusted_signatures += 1
        if not chain.signature_valid(entry, key):
            self.report.problem(place, "signature does not verify: the entry was altered")
            return False
        return True

    def sequence_ok(self, seq: int, place: str) -> bool:
        if self.last_seq is None or seq == self.last_seq + 1:
            return True
        if seq > self.last_seq + 1:
            missing = f"{self.last_seq + 1}" if seq == self.last_seq + 2 else f"{self.last_seq + 1}-{seq - 1}"
            self.report.problem(place, f"record {seq} follows record {self.last_seq}: record(s) {missing} "
                                       "were deleted")
        else:
            self.report.problem(place, f"record {seq} follows record {self.last_seq}: records were reordered "
                                       "or duplicated")
        return False

    def segment(self, number: int, path: Path, previous: int | None) -> None:
        report = self.report
        report.segments += 1
        if previous is None and number != 1:
            report.problem(path.name, f"the log starts at segment {number}: earlier segments were removed")
            self.prev = self.last_seq = None
        elif previous is not None and number != previous + 1:
            report.problem(path.name, f"segments {previous + 1}-{number - 1} are missing")
        data = path.read_bytes()
        lines = data.split(b"\n")
        trailing = lines.pop()
        header: dict | None = None
        self.previous_states, self.states = self.states, []
        for number_in_file, raw in enumerate(lines, start=1):
            place = f"{path.name} line {number_in_file}"
            try:
                entry = json.loads(raw)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
            except ValueError:
                report.problem(place, "not a well-formed entry: its bytes were altered")
                self.prev = chain.line_hash(raw)
                continue
            kind = entry.get("type")
            if number_in_file == 1:
                header = self.header(entry, number, place)
            elif kind == "record":
                self.record(entry, place, number_in_file)
                if self.visit:
                    self.visit(header, place, entry)
            elif kind == "checkpoint":
                self.checkpoint(entry, place, raw, (number, number_in_file))
            else:
                report.problem(place, f"unknown entry type {kind!r}")
            self.prev = chain.line_hash(raw)
            self.states.append((self.prev, self.last_seq))
            if (number, number_in_file) == (1, 1):
                report.log_id = self.prev
        if trailing:
            self.torn = (number, len(lines) + 1)
            report.damaged.add(f"{path.name} line {len(lines) + 1}")

    def refused(self, refused: dict, number: int) -> None:
        """Lines the gateway found after its last checkpoint at a restart and could not authenticate: it went on
        from the line before them, and so does the walk."""
        first, count = refused.get("line"), refused.get("lines")
        if refused.get("segment") != number - 1 or not isinstance(first, int) or not isinstance(count, int) or \
                not 2 <= first <= len(self.previous_states) + 1:
            return
        name = chain.segment_name(number - 1)
        self.prev, self.last_seq = self.previous_states[first - 2]
        self.report.last_seq = self.last_seq or 0
        self.report.problem(f"{name} line {first}", f"{count} lines from here on were not written by the gateway "
                            f"(their HMAC failed when it restarted): a forgery; it refused to sign them and went on "
                            f"in segment {number}")
        self.report.damaged.update(f"{name} line {line}" for line in range(first, first + count))

    def chain_ok(self, entry: dict, place: str) -> bool:
        return self.prev is None or entry.get("prev") == self.prev

    def header(self, entry: dict, number: int, place: str) -> dict | None:
        if entry.get("type") != "header" or entry.get("segment") != number:
            self.report.problem(place, f"the first line is not the header of segment {number}")
            return None
        valid = self.signature_ok(entry, place)
        if valid and entry.get("refused"):
            self.refused(entry["refused"], number)
        if not self.chain_ok(entry, place):
            self.report.problem(place, "this segment does not continue the chain of the one before it: the file "
                                       "was replaced, or a segment was removed or reordered")
        recovered = entry.get("recovered")
        if self.torn:
            segment, line = self.torn
            name = chain.segment_name(segment)
            if recovered and (recovered.get("segment"), recovered.get("line")) == self.torn:
                self.report.notes.append(Finding(f"{name} line {line}", "incomplete line from a crash mid-append; "
                                                 f"the gateway resumed the chain in segment {number}"))
            else:
                self.report.problem(f"{name} line {line}", "incomplete line: the segment was cut short")
            self.torn = None
        return entry if valid else None

    def record(self, entry: dict, place: str, line_number: int) -> None:
        self.report.records += 1
        seq = entry.get("seq")
        if not isinstance(seq, int):
            self.report.problem(place, "record without a sequence number")
            return
        in_order = self.sequence_ok(seq, place)
        if in_order and not self.chain_ok(entry, place):
            self.report.problem(self.altered_place(place, line_number), "this line was altered: the next line "
                                "recorded a different hash for it")
        self.last_seq = seq
        self.report.last_seq = max(self.report.last_seq, seq)

    @staticmethod
    def altered_place(place: str, line_number: int) -> str:
        return place.rsplit(" line ", 1)[0] + f" line {line_number - 1}"

    def checkpoint(self, entry: dict, place: str, raw: bytes, where: tuple[int, int]) -> None:
        self.report.checkpoints += 1
        self.checkpoint_lines[where] = raw
        valid = self.signature_ok(entry, place)
        if not self.chain_ok(entry, place):
            self.report.problem(self.altered_place(place, where[1]), "this line was altered: the checkpoint "
                                "after it signed a different hash")
            valid = False
        if entry.get("seq") != self.last_seq and self.last_seq is not None:
            self.report.problem(place, f"checkpoint for record {entry.get('seq')} follows record {self.last_seq}")
            valid = False
        previous = (self.report.last_checkpoint or {}).get("number")
        if isinstance(entry.get("number"), int) and isinstance(previous, int) and entry["number"] != previous + 1:
            self.report.problem(place, f"checkpoint {entry['number']} follows checkpoint {previous}")
        if valid and isinstance(entry.get("seq"), int):
            self.report.signed_through = entry["seq"]
            self.report.last_checkpoint = entry

    def head(self, folder: Path) -> None:
        path = folder / chain.HEAD
        if not path.exists():
            if self.report.checkpoints:
                self.report.problem(chain.HEAD, "missing: a log cut short at a line boundary cannot be detected")
            return
        try:
            head = json.loads(path.read_bytes())
            where, checkpoint = (head["segment"], head["line"]), head["checkpoint"]
        except (ValueError, KeyError, TypeError):
            self.report.problem(chain.HEAD, "not a well-formed HEAD file")
            return
        if not self.signature_ok(checkpoint, chain.HEAD):
            return
        in_log = self.checkpoint_lines.get(tuple(where))
        if in_log is None:
            self.report.problem(chain.HEAD, f"the signed head covers records up to {checkpoint.get('seq')}, but "
                                f"{chain.segment_name(where[0])} has no checkpoint at line {where[1]}: the log was "
                                f"truncated after record {self.report.last_seq}")
        elif in_log != chain.encode(checkpoint):
            self.report.problem(chain.HEAD, f"does not match the checkpoint at {chain.segment_name(where[0])} line "
                                f"{where[1]}")


def verify(folder: str | Path, signers: dict[str, Ed25519PublicKey], visit: RecordVisitor | None = None,
           witnesses: Sequence[tuple[str, dict[str, dict]]] = ()) -> Report:
    """Walk every segment in order; `visit` sees each record (the export decrypts there) as it is checked.
    `witnesses`: (where, newest checkpoint per log) to compare the log's end with."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"audit log folder {folder} does not exist (--dir, or the audit_dir setting)")
    walk = _Walk(folder, signers, visit)
    found = chain.segments(folder)
    if not found and not (folder / chain.HEAD).exists():
        raise FileNotFoundError(f"{folder} holds no audit log: no segments and no {chain.HEAD} (--dir, or the "
                                "audit_dir setting)")
    if not found:
        walk.report.problem(str(folder), f"{chain.HEAD} is here but no audit segments: they were removed")
        return walk.report
    previous = None
    for number, path in found:
        walk.segment(number, path, previous)
        previous = number
    if walk.torn:
        segment, line = walk.torn
        walk.report.problem(f"{chain.segment_name(segment)} line {line}", "incomplete last line: the log was "
                            "truncated, or the gateway crashed mid-append and has not restarted since")
    walk.head(folder)
    for source, witnessed in witnesses:
        walk.report.compare(witnessed, source)
    return walk.report
