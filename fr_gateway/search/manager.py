"""The gallery's search index through its life, in one place: which backend the settings name, opening it
(the Milvus collection, or the FAISS snapshot when it reflects the store's version, else a rebuild from the
store), saving it beside the store and closing it. The service sees only the SearchIndex protocol; a new
backend touches this package alone."""

from __future__ import annotations

import logging

import numpy as np

from fr_gateway.config import Settings
from fr_gateway.gallery.store import TemplateStore
from fr_gateway.search.base import SearchIndex
from fr_gateway.search.faiss_index import INDEX_CLASSES, IndexSpec
from fr_gateway.search.milvus_index import MilvusIndex, MilvusSpec
from fr_gateway.search.snapshot import load_snapshot, save_snapshot

log = logging.getLogger(__name__)

def index_spec(settings: Settings) -> IndexSpec:
    """The embedded FAISS index the settings ask for."""
    return IndexSpec(kind=settings.index_kind, nlist=settings.ivf_lists, nprobe=settings.ivf_nprobe,
                     rerank=settings.rerank, ef_search=settings.hnsw_ef_search)


def milvus_spec(settings: Settings) -> MilvusSpec | None:
    """The Milvus collection the settings name, or None for the in-process FAISS index (the settings were
    checked when read)."""
    if settings.search_backend == "faiss":
        return None
    return MilvusSpec(settings.milvus_uri, settings.milvus_collection, settings.milvus_index_type,
                      settings.milvus_token, settings.milvus_metric)


class GalleryIndex:
    """Owns the index of one store. `index` is None until `load()` has finished: a half-built index never
    answers."""

    def __init__(self, store: TemplateStore, spec: IndexSpec, milvus: MilvusSpec | None) -> None:
        self._store = store
        self._spec = spec
        self._milvus = milvus
        self.index: SearchIndex | None = None

    @classmethod
    def for_settings(cls, settings: Settings, store: TemplateStore) -> GalleryIndex:
        return cls(store, index_spec(settings), milvus_spec(settings))

    @property
    def shared(self) -> bool:
        """The index lives outside this process (Milvus) and keeps itself; `gallery sync` repairs it."""
        return self._milvus is not None

    def _snapshot_header(self, kind: str) -> dict:
        store = self._store
        return {"store_version": store.version, "count": len(store), "dim": store.dim,
                "model_sha256": store.model_fingerprint, "kind": kind}

    def load(self) -> SearchIndex:
        """The shared Milvus collection when configured; else the saved FAISS index when it reflects the store's
        current version, or a rebuild from the store (minutes for millions of templates)."""
        store, size = self._store, len(self._store)
        if self._milvus is not None:
            index = MilvusIndex.connect(self._milvus, store.dim, store.model_fingerprint)
            if (held := len(index)) != size:
                log.warning("Milvus collection %s holds %d templates, the store %d: run `fr-gateway gallery sync`",
                            self._milvus.collection, held, size)
            self.index = index
            return index
        kind = self._spec.resolve(size)
        options = {"spec": self._spec, "size": size, "exact": store.get_many}
        saved = load_snapshot(store.directory, self._snapshot_header(kind), store.keys)
        if saved is not None:
            self.index = INDEX_CLASSES[kind].from_bytes(store.dim, saved, **options)
            return self.index
        log.info("building a %s index of %d templates", kind, size)
        index = INDEX_CLASSES[kind](store.dim, **options)
        if not index.trained:
            index.train(self._training_sample(self._spec.training_size(size, kind)))
        for niks, templates in store.iter_templates():
            index.add(niks, templates)
        if damaged := len(store.damaged):
            log.error("%d damaged templates were left out of the index (Verify answers TEMPLATE_DAMAGED for their "
                      "NIKs); re-enrol them from their photos", damaged)
        self.index = index  # ready only once whole
        self.save()
        return index

    def _training_sample(self, wanted: int) -> np.ndarray:
        chunks, have = [], 0
        for _, templates in self._store.iter_templates():
            chunks.append(templates)
            have += len(templates)
            if have >= wanted:
                break
        return np.concatenate(chunks)[:wanted]

    def save(self) -> None:
        """Snapshot a FAISS index beside the store, tagged with the store version it reflects (the caller holds
        the gallery's write lock); a Milvus collection keeps itself."""
        if self.index is None or self.shared:
            return
        save_snapshot(self.index.to_bytes(), self._store.directory, self._snapshot_header(self.index.kind),
                      self._store.keys)

    def close(self) -> None:
        """Save for a fast next start and let go of the backend."""
        if self.index is None:
            return
        self.save()
        self.index.close()
        self.index = None
