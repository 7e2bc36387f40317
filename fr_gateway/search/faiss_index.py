"""The embedded FAISS index: exact inner product over L2-normalised templates (cosine similarity), keyed by
NIK. A NIK is 16 digits, so it is its own int64 id and no id table is needed."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence

import faiss
import numpy as np

NIK_DIGITS = 16


@dataclasses.dataclass(frozen=True)
class Candidate:
    nik: str
    score: float


def _ids(niks: Sequence[str]) -> np.ndarray:
    return np.array([int(nik) for nik in niks], dtype=np.int64)


class FaissIndex:
    """Writes and searches are serialised by one lock: exact search is a few ms at gallery sizes one
    process serves, and FAISS does not allow a write during a search."""

    def __init__(self, dim: int, factory: str = "IDMap2,Flat", index: faiss.Index | None = None) -> None:
        self.dim = dim
        self._index = index if index is not None else faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        self._lock = threading.Lock()

    @property
    def faiss_index(self) -> faiss.Index:
        """The underlying FAISS index, for saving a snapshot (not for searching around the lock)."""
        return self._index

    def add(self, niks: Sequence[str], templates: np.ndarray) -> None:
        """Add NIKs that are not in the index yet (a rebuild); use upsert for ones that may be."""
        with self._lock:
            self._index.add_with_ids(np.ascontiguousarray(templates, dtype=np.float32), _ids(niks))

    def upsert(self, nik: str, template: np.ndarray) -> None:
        ids = _ids([nik])
        with self._lock:
            self._index.remove_ids(ids)
            self._index.add_with_ids(np.asarray(template, dtype=np.float32).reshape(1, self.dim), ids)

    def remove(self, nik: str) -> bool:
        with self._lock:
            return self._index.remove_ids(_ids([nik])) > 0

    def search(self, template: np.ndarray, top_k: int) -> list[Candidate]:
        query = np.asarray(template, dtype=np.float32).reshape(1, self.dim)
        with self._lock:
            scores, ids = self._index.search(query, top_k)
        return [Candidate(f"{i:0{NIK_DIGITS}d}", float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]

    def pairs_above(self, chunks: Iterable[tuple[list[str], np.ndarray]], threshold: float,
                    neighbours: int = 10) -> list[tuple[str, str, float]]:
        """Pairs of different NIKs among each query's nearest neighbours scoring at least `threshold`, each
        pair once, best first: the duplicate check of ID systems (one face under two NIKs)."""
        found: dict[tuple[str, str], float] = {}
        for niks, templates in chunks:
            with self._lock:
                scores, ids = self._index.search(np.ascontiguousarray(templates, dtype=np.float32), neighbours)
            for nik, row_scores, row_ids in zip(niks, scores, ids, strict=True):
                for score, other in zip(row_scores, row_ids, strict=True):
                    other_nik = f"{other:0{NIK_DIGITS}d}"
                    if other >= 0 and other_nik != nik and score >= threshold:
                        found[tuple(sorted((nik, other_nik)))] = float(score)
        return sorted(((a, b, s) for (a, b), s in found.items()), key=lambda pair: -pair[2])

    def __len__(self) -> int:
        return int(self._index.ntotal)
