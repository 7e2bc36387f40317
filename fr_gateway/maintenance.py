"""Maintenance while no gateway serves the gallery: changing a gallery or its watchlists in this process,
finding one face enrolled under two NIKs, and bringing a shared index (Milvus) back in step with the store, the
gallery's record."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from fr_gateway.audit.log import AuditUnavailable
from fr_gateway.audit.trail import AuditTrail, open_trail
from fr_gateway.changes import GalleryWrites
from fr_gateway.config import Settings, key_file_for
from fr_gateway.faces.engine import load_engine, load_pack, resolve_thresholds
from fr_gateway.gallery.store import TemplateStore
from fr_gateway.search.faiss_index import FlatIndex
from fr_gateway.search.manager import milvus_spec
from fr_gateway.search.milvus_index import Drift, MilvusIndex, MilvusSpec
from fr_gateway.service import GatewayService
from fr_gateway.watchlists.store import STORE_FILE as WATCHLIST_STORE
from fr_gateway.watchlists.store import WatchlistStore


def open_store(settings: Settings) -> TemplateStore:
    """The settings' existing store with its key ring, refusing another model's."""
    pack = load_pack(settings)
    return TemplateStore.open(settings.gallery, key_file_for(settings), pack.fingerprint, pack.name, create=False)


@contextlib.contextmanager
def _offline_trail(settings: Settings, model: str, version: Callable[[], int], through: str) -> Iterator[AuditTrail]:
    """The gallery's audit trail for a change made in this process; refused, with where to make the change
    instead (`through`), while a gateway serves the gallery and so holds the log."""
    try:
        trail = open_trail(settings, model, version, create_keys=True)
    except AuditUnavailable as exc:
        raise AuditUnavailable(f"{exc}: a gateway serves this gallery; make the change through it {through}") \
            from None
    try:
        yield trail
    finally:
        trail.close()


@contextlib.contextmanager
def offline_gallery(settings: Settings) -> Iterator[GalleryWrites]:
    """The gallery's write path in this process, its index loaded and its changes audited, while no gateway
    serves it (a serving gateway holds the audit log: the change is made through it instead)."""
    pack = load_pack(settings)
    with contextlib.ExitStack() as stack:
        gallery = GalleryWrites.open(settings, pack.fingerprint, pack.name, create=False)
        stack.callback(gallery.close)
        if (Path(settings.gallery) / WATCHLIST_STORE).exists():  # sealed with the same keys: rotated with them
            watchlists = WatchlistStore(settings.gallery, gallery.store.keys, pack.fingerprint, gallery.store.dim)
            stack.callback(watchlists.close)
            gallery.seal_beside(watchlists)
        trail = stack.enter_context(_offline_trail(settings, pack.fingerprint, lambda: gallery.store.version,
                                                   "with --target HOST:PORT (and an admin certificate)"))
        gallery.audit_to(trail)
        gallery.load_index()
        yield gallery


@contextlib.contextmanager
def offline_service(settings: Settings) -> Iterator[GatewayService]:
    """The gateway's operations in this process (models loaded, gallery and watchlists open, every change
    audited), while no gateway serves the gallery: a bulk enrolment, a watchlist change."""
    with contextlib.ExitStack() as stack:
        service = GatewayService.open(settings, load_engine(settings), serving=False)
        stack.callback(service.close)
        trail = stack.enter_context(_offline_trail(settings, service.engine.pack.fingerprint,
                                                   lambda: service.gallery_version, "over gRPC"))
        service.audit_to(trail)
        yield service


def duplicate_pairs(settings: Settings, threshold: float | None = None) -> tuple[list[tuple[str, str, float]], float]:
    """Pairs of different NIKs whose templates score at or above `threshold` (default: the identify threshold),
    by exact search, and the threshold used."""
    if threshold is None:
        threshold = resolve_thresholds(settings, load_pack(settings)).identify.value
    store = open_store(settings)
    try:
        index = FlatIndex(store.dim)
        for niks, templates in store.iter_templates():
            index.add(niks, templates)
        return index.pairs_above(store.iter_templates(), threshold), threshold
    finally:
        store.close()


def sync_shared_index(settings: Settings, repair: bool) -> tuple[MilvusSpec, Drift, int]:
    """Compare the Milvus collection with the store and, with `repair`, make it match: the collection, what
    differed, and how many templates the store holds."""
    spec = milvus_spec(settings)
    if spec is None:
        raise ValueError("gallery sync keeps a Milvus collection in step with the store: set search_backend = "
                         "milvus and milvus_uri")
    with contextlib.ExitStack() as stack:
        store = open_store(settings)
        stack.callback(store.close)
        index = MilvusIndex.connect(spec, store.dim, store.model_fingerprint)
        stack.callback(index.close)
        return spec, index.sync(store.enrolled_at(), store.get_many, repair=repair), len(store)
