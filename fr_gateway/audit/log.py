"""The audit log writer: appends encrypted, chained records from one background thread with group commit,
signs checkpoints, rotates segments by size, and after a crash continues in a new segment that records
where the previous one was torn."""

from __future__ import annotations

import contextlib
import datetime
import enum
import fcntl
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from pathlib import Path
from typing import Any

from fr_gateway.audit import chain, witness
from fr_gateway.audit.keys import WriterKeys
from fr_gateway.metrics import AUDIT_CHECKPOINT, WITNESS_FAILURES

log = logging.getLogger(__name__)


class Fsync(enum.Enum):
    """ALWAYS: a call returns once its record is on disk (one fsync shared by every record written together);
    INTERVAL: records reach disk with each checkpoint; NEVER: when the OS decides."""

    ALWAYS = "always"
    INTERVAL = "interval"
    NEVER = "never"


class AuditUnavailable(Exception):
    """The log cannot take records (closed, or its disk failed): the gateway refuses calls it cannot audit."""


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime.datetime:
    """An ISO (RFC 3339) date or date-time; without a zone it is UTC, as every record's time is. ValueError when
    it is neither."""
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class _Tail:
    """Where the chain stands at the end of the existing segments: the last line and seq to continue from, the
    last checkpoint's number and the log's id. Records after the last checkpoint that fail their HMAC were not
    written by this gateway: they are refused, and the chain goes on from the line before them."""

    def __init__(self, folder: Path, mac_key: bytes) -> None:
        self.segment, self.prev, self.seq, self.checkpoint = 0, chain.GENESIS, 0, 0
        self.torn: dict[str, Any] | None = None
        self.refused: dict[str, Any] | None = None
        found = chain.segments(folder)
        self.log_id = _first_line_hash(found[0][1]) if found and found[0][0] == 1 else None
        seq_found = checkpoint_found = False
        for number, path in reversed(found):
            data = path.read_bytes()
            complete = data[:data.rfind(b"\n") + 1]
            lines = complete.splitlines()
            while lines and not self._parses(lines[-1]):  # a half-written last line: a crash mid-append
                lines.pop()
            if self.segment == 0:
                self.segment = number
                kept = sum(len(line) + 1 for line in lines)
                if kept < len(data):
                    self.torn = {"segment": number, "line": len(lines) + 1, "bytes": len(data) - kept}
            entries = [json.loads(line) for line in lines]
            if lines and self.prev == chain.GENESIS:  # the newest lines written: the next segment chains to them
                kept = self._authenticated(number, entries, mac_key)
                lines, entries = lines[:kept], entries[:kept]
                self.prev = chain.line_hash(lines[-1])
            if not seq_found and (seq := self._last(entries, "record", "seq")):
                self.seq, seq_found = seq, True
            if not checkpoint_found and (checkpoint := self._last(entries, "checkpoint", "number")):
                self.checkpoint, checkpoint_found = checkpoint, True
            if seq_found and checkpoint_found:
                return
            # a segment that never got past its header: its predecessors hold the last seq and checkpoint

    def _authenticated(self, number: int, entries: list[dict], mac_key: bytes) -> int:
        """How many of the segment's entries to keep: up to the first record after the last checkpoint whose
        HMAC fails (segments written before records carried one are taken as they are)."""
        if not entries[0].get("macs"):
            return len(entries)
        signed = max(i for i, entry in enumerate(entries) if entry.get("type") in ("header", "checkpoint"))
        for index in range(signed + 1, len(entries)):
            if not chain.mac_valid(entries[index], mac_key):
                self.refused = {"segment": number, "line": index + 1, "lines": len(entries) - index}
                return index
        return len(entries)

    @staticmethod
    def _parses(line: bytes) -> bool:
        try:
            return isinstance(json.loads(line), dict)
        except ValueError:
            return False

    @staticmethod
    def _last(entries: list[dict], kind: str, field: str) -> int:
        for entry in reversed(entries):
            if entry.get("type") == kind and isinstance(entry.get(field), int):
                return int(entry[field])
        return 0


def _first_line_hash(path: Path) -> str | None:
    with path.open("rb") as handle:
        line = handle.readline()
    return chain.line_hash(line[:-1]) if line.endswith(b"\n") else None


class Durable(Future):
    """Records the writer takes together and makes durable with one write: done once they are on disk, failed
    with AuditUnavailable when they could not be written. Its callbacks run on the writer's thread."""

    def finish(self, failure: BaseException | None = None) -> None:
        with contextlib.suppress(InvalidStateError):  # finished already
            if failure is None:
                self.set_result(None)
            else:
                self.set_exception(AuditUnavailable(f"audit record not written: {failure}"))

    def wait(self) -> None:
        """Return once the records are on disk; AuditUnavailable if they could not be written."""
        self.result()


def _already_durable() -> Durable:
    durable = Durable()
    durable.finish()
    return durable


# what append_later gives when nobody waits for the disk (Fsync.BATCH and NEVER)
ALREADY = _already_durable()


class AuditLog:
    """Thread-safe `append(event)`; one writer thread does the encryption, hashing, writing and signing."""

    def __init__(self, folder: str | Path, keys: WriterKeys, fsync: Fsync = Fsync.ALWAYS,
                 segment_bytes: int = 64 * 2**20, checkpoint_seconds: float = 1.0, queue_limit: int = 10_000,
                 witness_file: Path | None = None) -> None:
        """`witness_file`: where every checkpoint is also appended, outside the log's folder (witness.py)."""
        self.folder = Path(folder)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = (self.folder / ".writer.lock").open("w")
        try:  # one writer per log: two would fork the chain
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock.close()
            raise AuditUnavailable(f"audit log {self.folder} is being written by another process") from exc
        self._keys = keys
        self._mac_key = keys.mac_key
        self._witness_file = witness_file
        self._fsync = fsync
        self._segment_bytes = segment_bytes
        self._checkpoint_seconds = checkpoint_seconds
        self._queue_limit = queue_limit
        self._pending: deque[dict] = deque()
        self._state = threading.Lock()
        self._work = threading.Condition(self._state)  # the writer waits here for records
        self._room = threading.Condition(self._state)  # callers wait here while the queue is full
        self._group = Durable()  # the records queued since the writer last took them, made durable together
        self._failure: BaseException | None = None
        self._closing = False
        tail = _Tail(self.folder, self._mac_key)
        if tail.torn:
            log.warning("audit segment %s was torn at line %d (%d bytes, a crash mid-append): continuing the "
                        "chain in a new segment", tail.torn["segment"], tail.torn["line"], tail.torn["bytes"])
        if tail.refused:
            log.error("audit segment %s holds %d lines from line %d on that this gateway did not write (their HMAC "
                      "fails): refusing to sign them; the chain goes on from the line before them, and the new "
                      "segment's signed header names them for the auditor", tail.refused["segment"],
                      tail.refused["lines"], tail.refused["line"])
        self.seq, self._prev, self.log_id = tail.seq, tail.prev, tail.log_id
        self._checkpointed_seq = tail.seq
        self._checkpoint_number = tail.checkpoint
        self._last_checkpoint = time.monotonic()
        self._open_segment(tail.segment + 1, recovered=tail.torn, refused=tail.refused)
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    # ---- called by request threads ----

    def append(self, event: dict) -> None:
        """Queue one event; under Fsync.ALWAYS return only once it is durable. Raises AuditUnavailable when the
        log cannot take it, so the caller can refuse the call rather than act unaudited."""
        self.append_later(event).wait()

    def append_later(self, event: dict) -> Durable:
        """Queue one event and return at once: under Fsync.ALWAYS the caller waits on what this returns before
        it acts on the record (answers the call), under the other policies that returns at once. Raises
        AuditUnavailable when the log cannot take it. A waiter waits with the records of its own write only:
        the writer's other news wakes nobody."""
        with self._state:
            while len(self._pending) >= self._queue_limit and not self._unavailable():
                self._room.wait()
            if self._unavailable():
                raise AuditUnavailable(f"audit log {self.folder} is not writable: {self._failure or 'closed'}")
            self._pending.append(event)
            durable = self._group
            self._work.notify()
        return durable if self._fsync is Fsync.ALWAYS else ALREADY

    def _unavailable(self) -> bool:
        return self._closing or self._failure is not None

    def close(self) -> None:
        """Write what is queued, sign a final checkpoint and stop; idempotent."""
        with self._state:
            if self._closing:
                return
            self._closing = True
            self._work.notify()
            self._room.notify_all()
        self._thread.join()
        self._lock.close()  # releases the writer lock

    # ---- the writer thread ----

    def _run(self) -> None:
        taken: Durable | None = None
        try:
            while True:
                with self._state:
                    if not self._pending and not self._closing:
                        self._work.wait(timeout=self._checkpoint_seconds)
                    batch = list(self._pending)
                    self._pending.clear()
                    taken, self._group = self._group, Durable()
                    self._room.notify_all()
                    closing = self._closing and not batch
                if batch:
                    self._write(batch)
                taken.finish()
                if closing or time.monotonic() - self._last_checkpoint >= self._checkpoint_seconds:
                    self._checkpoint()
                if closing:
                    self._handle.close()
                    return
        except BaseException as exc:  # a disk failure: every waiting and later call learns of it
            log.exception("audit log writer failed")
            with self._state:
                self._failure = exc
                self._room.notify_all()
                for group in (taken, self._group):
                    if group is not None:
                        group.finish(exc)

    def _emit(self, entry: dict) -> None:
        line = chain.encode(entry)
        self._handle.write(line + b"\n")
        self._prev = chain.line_hash(line)
        self._line += 1

    def _open_segment(self, number: int, recovered: dict | None, refused: dict | None = None) -> None:
        self._segment, self._line = number, 0
        self._data_key = secrets.token_bytes(32)
        path = self.folder / chain.segment_name(number)
        self._handle = path.open("xb", buffering=1 << 20)
        header = {"type": "header", "segment": number, "prev": self._prev, "created": utc_now(),
                  "signer": self._keys.signer_id, "reader": self._keys.reader_id, "next_seq": self.seq + 1,
                  "recovered": recovered, "refused": refused, "macs": True,
                  **chain.wrap_data_key(self._data_key, self._keys.reader, self._keys.reader_id, number)}
        self._emit(chain.signed(header, self._keys.signing))
        if self.log_id is None:  # a new log: its id is the hash of its first line
            self.log_id = self._prev
        self._handle.flush()
        os.fsync(self._handle.fileno())
        _fsync_folder(self.folder)

    def _write(self, events: list[dict]) -> None:
        for event in events:
            if self._handle.tell() >= self._segment_bytes:
                self._rotate()
            self.seq += 1
            self._emit(chain.seal_record(event, self._data_key, self.seq, self._prev, self._keys.reader_id,
                                         self._mac_key))
        self._handle.flush()
        if self._fsync is Fsync.ALWAYS:
            os.fsync(self._handle.fileno())

    def _rotate(self) -> None:
        """Close the full segment with a checkpoint and continue the chain in the next one."""
        self._checkpoint()
        self._handle.close()
        self._open_segment(self._segment + 1, recovered=None)

    def _checkpoint(self) -> None:
        """Sign the chain so far, make it durable, then publish it in HEAD (never ahead of the log)."""
        self._last_checkpoint = time.monotonic()
        if self.seq == self._checkpointed_seq:
            return
        self._checkpoint_number += 1
        entry = chain.signed({"type": "checkpoint", "number": self._checkpoint_number, "seq": self.seq,
                              "prev": self._prev, "time": utc_now(), "signer": self._keys.signer_id,
                              "log": self.log_id, "segment": self._segment, "line": self._line + 1},
                             self._keys.signing)
        self._emit(entry)
        self._handle.flush()
        if self._fsync is not Fsync.NEVER:
            os.fsync(self._handle.fileno())
        self._checkpointed_seq = self.seq
        head = {"segment": self._segment, "line": self._line, "checkpoint": entry}
        temporary = self.folder / (chain.HEAD + ".tmp")
        temporary.write_bytes(chain.encode(head))
        if self._fsync is not Fsync.NEVER:
            with temporary.open("rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, self.folder / chain.HEAD)
        AUDIT_CHECKPOINT.set(self._checkpoint_number)
        if self._witness_file is not None:
            self._witness(entry)

    def _witness(self, checkpoint: dict) -> None:
        """A witness that cannot be written does not stop decisions; it is logged and counted."""
        try:
            witness.append(self._witness_file, checkpoint, self._fsync is not Fsync.NEVER)
        except OSError as exc:
            WITNESS_FAILURES.inc()
            log.error("audit witness %s not written (checkpoint %d): %s", self._witness_file,
                      checkpoint["number"], exc)
