"""What every search backend shares: the value it answers with, the error it raises and the protocol it keeps,
so the service cannot tell the embedded FAISS indexes from the Milvus collection shared by replicas, and a
backend never imports another."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np


@dataclasses.dataclass(frozen=True)
class Candidate:
    nik: str
    score: float


class SearchUnavailable(Exception):
    """The index did not answer (a shared backend that is down or unreachable): the face was not searched, or
    the change was not made in the index."""


class SearchIndex(Protocol):
    kind: str

    def add(self, niks: Sequence[str], templates: np.ndarray) -> None:
        """Insert or replace the NIKs' templates (L2-normalised, one row each); raises SearchUnavailable when
        the backend cannot be reached."""

    def remove(self, nik: str) -> bool:
        """Drop a NIK; False when it was not there (where the backend can tell); raises SearchUnavailable when
        the backend cannot be reached."""

    def search_many(self, templates: np.ndarray, top_k: int) -> list[list[Candidate]]:
        """The best `top_k` candidates of each template, best first, scored by cosine similarity; raises
        SearchUnavailable when the backend cannot be reached."""

    def __len__(self) -> int:
        """Templates held."""

    def describe(self) -> str:
        """Which index answers and how it searches, in words for the start-up log."""

    def close(self) -> None:
        """Let go of what the index holds outside this process (a connection)."""
