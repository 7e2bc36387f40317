"""The embedded FAISS index: exact inner product over L2-normalised templates (cosine similarity), keyed by
NIK. A NIK is 16 digits, so it is its own int64 id and no id table is needed."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

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

    def __init__(self, dim: int, factory: str = "IDMap2,Flat") -> None:
        self.dim = dim
        self._index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        self._lock = threading.Lock()

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

    def __len__(self) -> int:
        return int(self._index.ntotal)
