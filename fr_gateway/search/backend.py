"""The one protocol every search index keeps, so the service cannot tell the embedded FAISS indexes from the
Milvus collection shared by replicas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from fr_gateway.search.faiss_index import Candidate


class SearchUnavailable(Exception):
    """The index did not answer (a shared backend that is down or unreachable): the face was not searched."""


class SearchIndex(Protocol):
    kind: str

    def add(self, niks: Sequence[str], templates: np.ndarray) -> None:
        """Insert or replace the NIKs' templates (L2-normalised, one row each)."""

    def remove(self, nik: str) -> bool:
        """Drop a NIK; False when it was not there (where the backend can tell)."""

    def search_many(self, templates: np.ndarray, top_k: int) -> list[list[Candidate]]:
        """The best `top_k` candidates of each template, best first, scored by cosine similarity; raises
        SearchUnavailable when the backend cannot be reached."""

    def __len__(self) -> int:
        """Templates held."""

    def describe(self) -> str:
        """Which index answers and how it searches, in words for the start-up log."""

    def close(self) -> None:
        """Let go of what the index holds outside this process (a connection)."""
