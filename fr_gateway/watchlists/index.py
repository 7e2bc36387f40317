"""Exact search of every watchlist template, in memory: lists hold thousands to hundreds of thousands of
templates, where one matrix product over a micro-batch of faces costs well under a millisecond a face at 10k
(benchmarks/alerts.md), and no approximate index can lose a wanted person."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np

from fr_gateway.watchlists.store import Entry, Watchlist

MAX_HITS = 5  # per face: enough for an operator to compare, and a bound on what one face can raise


@dataclasses.dataclass(frozen=True)
class Hit:
    """A face at or above a list's threshold against one entry (its closest template)."""

    watchlist: str
    entry_id: str
    label: str
    case_reference: str
    score: float
    threshold: float
    priority: int
    alert_id: str = ""  # and when it was raised: set once the hit has raised its alert
    raised_at: float = 0.0


@dataclasses.dataclass(frozen=True)
class _Rows:
    """One immutable generation of the index: searches read it without a lock while a change builds the next.
    Each entry's templates are consecutive rows, from starts[i]."""

    templates: np.ndarray  # rows x dim, float32
    entries: tuple[Entry, ...]
    starts: np.ndarray  # entry -> its first row
    thresholds: np.ndarray  # entry -> its list's threshold
    expires: np.ndarray  # entry -> when it stops matching (its own expiry or its list's; inf for never)
    lists: dict[str, Watchlist]

    @classmethod
    def of(cls, entries: tuple[Entry, ...], lists: dict[str, Watchlist], dim: int) -> _Rows:
        entries = tuple(entry for entry in entries if entry.watchlist in lists)
        templates = (np.concatenate([entry.templates for entry in entries]) if entries
                     else np.zeros((0, dim), np.float32))
        starts = np.cumsum([0] + [len(entry.templates) for entry in entries[:-1]]).astype(np.int64)
        thresholds = np.array([lists[entry.watchlist].threshold for entry in entries], np.float32)
        expires = np.array([min(_expiry(entry), _expiry(lists[entry.watchlist])) for entry in entries], np.float64)
        return cls(np.ascontiguousarray(templates, np.float32), entries, starts, thresholds, expires, lists)


class WatchlistIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._rows = _Rows.of((), {}, dim)
        self._lock = threading.Lock()  # writers only

    def load(self, lists: list[Watchlist], entries: list[Entry]) -> None:
        with self._lock:
            self._rows = _Rows.of(tuple(entries), {item.name: item for item in lists}, self.dim)

    def set_list(self, watchlist: Watchlist) -> None:
        with self._lock:
            rows = self._rows
            self._rows = _Rows.of(rows.entries, {**rows.lists, watchlist.name: watchlist}, self.dim)

    def add(self, entry: Entry) -> None:
        with self._lock:
            rows = self._rows
            self._rows = _Rows.of((*rows.entries, entry), rows.lists, self.dim)

    def remove(self, entry_id: str) -> None:
        with self._lock:
            rows = self._rows
            self._rows = _Rows.of(tuple(e for e in rows.entries if e.entry_id != entry_id), rows.lists, self.dim)

    def size(self, watchlist: str, now: float | None = None) -> tuple[int, int]:
        """Entries and templates of the list that match at `now`."""
        now = time.time() if now is None else now
        rows = self._rows
        live = [entry for entry, expires in zip(rows.entries, rows.expires, strict=True)
                if entry.watchlist == watchlist and expires > now]
        return len(live), sum(len(entry.templates) for entry in live)

    def search(self, queries: np.ndarray, now: float | None = None) -> list[list[Hit]]:
        """Per query, the entries at or above their list's threshold, best first, at most MAX_HITS; an entry or
        list past its expiry does not match."""
        rows = self._rows
        if not len(rows.templates):
            return [[] for _ in range(len(queries))]
        now = time.time() if now is None else now
        scores = np.asarray(queries, np.float32) @ rows.templates.T  # queries x rows
        best = np.maximum.reduceat(scores, rows.starts, axis=1)  # queries x entries: each entry's closest template
        matched = (best >= rows.thresholds) & (rows.expires > now)
        found = []
        for query_best, query_matched in zip(best, matched, strict=True):
            numbers = np.flatnonzero(query_matched)
            numbers = numbers[np.argsort(-query_best[numbers], kind="stable")][:MAX_HITS]
            found.append([_hit(rows.entries[number], rows.lists, float(query_best[number])) for number in numbers])
        return found


def _expiry(item: Entry | Watchlist) -> float:
    return np.inf if item.expires_at is None else item.expires_at


def _hit(entry: Entry, lists: dict[str, Watchlist], score: float) -> Hit:
    watchlist = lists[entry.watchlist]
    return Hit(entry.watchlist, entry.entry_id, entry.label, entry.case_reference, score, watchlist.threshold,
               watchlist.priority)
