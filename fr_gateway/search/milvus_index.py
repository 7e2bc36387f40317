"""The 1:N index on Milvus, for gateway replicas that share one gallery: the same calls as the FAISS indexes
(add, remove, search_many, len) through pymilvus `MilvusClient`, so the URI alone decides between milvus-lite
(a local server process) and a Milvus cluster. The template store stays the source of truth: `sync` finds and
repairs what the collection is missing, holds stale, or holds beyond the store.

Collection: NIK as primary key, the 512-d template, the model fingerprint, the enrolment time (ms), and the
NIK's province code (its first two digits), so a checkpoint can search its region first."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from fr_gateway.search.base import Candidate, SearchUnavailable

try:
    from pymilvus.exceptions import MilvusException
except ImportError:  # without the milvus extra, connect() says what to install and no index exists to fail
    class MilvusException(Exception):
        message = ""

log = logging.getLogger(__name__)
# pymilvus logs every failed call and retry with a traceback (twenty for one search during an outage); the index
# turns a failure into one SearchUnavailable, which the caller reports once
logging.getLogger("pymilvus").setLevel(logging.CRITICAL)

# Index types a Milvus cluster builds, with build and search parameters; milvus-lite accepts any name, even
# one it cannot build, so anything else is refused here.
INDEX_TYPES: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "FLAT": ({}, {}),
    "IVF_FLAT": ({"nlist": 1024}, {"nprobe": 64}),
    "IVF_SQ8": ({"nlist": 1024}, {"nprobe": 64}),
    "IVF_PQ": ({"nlist": 1024, "m": 64, "nbits": 8}, {"nprobe": 64}),
    "HNSW": ({"M": 32, "efConstruction": 200}, {"ef": 128}),
    "DISKANN": ({}, {"search_list": 128}),
    "AUTOINDEX": ({}, {}),
}
# templates are L2-normalised, so inner product and cosine rank alike; IP skips the norms
METRICS = ("IP", "COSINE")
NIK_LENGTH = 16
COUNT_TTL_S = 1.0  # responses report the gallery size; count the collection at most once a second
PAGE = 1000
MODEL_PROPERTY = "frgateway.model_fingerprint"  # the recogniser whose templates a collection holds
# what each index type kept of the identifications exact search makes (benchmarks/search.md, milvus-lite)
MEASURED = {"FLAT": "exact: keeps every identification",
            "HNSW": "kept 0.93 of the identifications exact search made at 100k (milvus-lite)"}


@dataclasses.dataclass(frozen=True)
class MilvusSpec:
    uri: str
    collection: str = "frgateway"
    index_type: str = "HNSW"
    token: str = ""
    metric: str = "IP"


@dataclasses.dataclass(frozen=True)
class Drift:
    """How the collection differs from the store: NIKs it lacks, NIKs whose template is older than the
    store's (a re-enrolment that did not reach it), and NIKs the store no longer has."""

    missing: int
    stale: int
    extra: int

    def __bool__(self) -> bool:
        return bool(self.missing or self.stale or self.extra)

    def text(self) -> str:
        return f"{self.missing} missing, {self.stale} stale, {self.extra} not in the store"


@contextlib.contextmanager
def _answered(uri: str, doing: str) -> Iterator[None]:
    """A Milvus failure as SearchUnavailable, in one line naming the server and what it was asked."""
    try:
        yield
    except MilvusException as exc:
        raise SearchUnavailable(f"Milvus at {uri} did not answer {doing}: {exc.message}") from exc


def _now_ms() -> int:
    return int(time.time() * 1000)


class MilvusIndex:
    kind = "milvus"

    def __init__(self, client, spec: MilvusSpec, dim: int, model_fingerprint: str) -> None:
        self._client = client
        self._spec = spec
        self.dim = dim
        self.model_fingerprint = model_fingerprint
        self._search_params = {"metric_type": spec.metric, "params": INDEX_TYPES[spec.index_type][1]}
        self._counted = 0
        self._count_again()
        self._count_lock = threading.Lock()

    @classmethod
    def connect(cls, spec: MilvusSpec, dim: int, model_fingerprint: str) -> MilvusIndex:
        """Open the collection, creating it with its index when missing; a collection made for another model
        is refused, as a gallery is."""
        try:
            from pymilvus import MilvusClient
        except ImportError as exc:
            raise ValueError("search_backend milvus needs the milvus extra: pip install 'fr-gateway[milvus]'") from exc
        if spec.index_type not in INDEX_TYPES:
            raise ValueError(f"milvus_index_type {spec.index_type!r}: choose one of {', '.join(INDEX_TYPES)}")
        if spec.metric not in METRICS:
            raise ValueError(f"milvus_metric {spec.metric!r}: choose one of {', '.join(METRICS)}")
        with _answered(spec.uri, f"opening collection {spec.collection!r}"):
            return cls._open(MilvusClient(uri=spec.uri, token=spec.token, timeout=30), spec, dim, model_fingerprint)

    @classmethod
    def _open(cls, client, spec: MilvusSpec, dim: int, model_fingerprint: str) -> MilvusIndex:
        from pymilvus import DataType, MilvusClient

        if client.has_collection(spec.collection):
            made_for = client.describe_collection(spec.collection).get("properties", {}).get(MODEL_PROPERTY)
            if made_for != model_fingerprint:
                client.close()
                raise ValueError(f"Milvus collection {spec.collection!r} at {spec.uri} holds the templates of "
                                 f"another model ({made_for}); give this model a collection of its own")
        else:
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("nik", DataType.VARCHAR, is_primary=True, max_length=NIK_LENGTH)
            schema.add_field("template", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("model_fingerprint", DataType.VARCHAR, max_length=64)
            schema.add_field("enrolled_at", DataType.INT64)
            schema.add_field("province", DataType.VARCHAR, max_length=2)
            index = client.prepare_index_params()
            index.add_index(field_name="template", index_type=spec.index_type, metric_type=spec.metric,
                            params=INDEX_TYPES[spec.index_type][0])
            client.create_collection(spec.collection, schema=schema, index_params=index,
                                     properties={MODEL_PROPERTY: model_fingerprint})
        client.load_collection(spec.collection)
        return cls(client, spec, dim, model_fingerprint)

    def add(self, niks: Sequence[str], templates: np.ndarray) -> None:
        """Insert or replace (upsert: a re-enrolled NIK keeps one row)."""
        now = _now_ms()
        with _answered(self._spec.uri, f"writing {len(niks)} templates"):
            self._client.upsert(self._spec.collection, [
                {"nik": nik, "template": template.tolist(), "model_fingerprint": self.model_fingerprint,
                 "enrolled_at": now, "province": nik[:2]}
                for nik, template in zip(niks, np.asarray(templates, dtype=np.float32), strict=True)])
        self._count_again()

    def remove(self, nik: str) -> bool:
        with _answered(self._spec.uri, "a deletion"):
            self._client.delete(self._spec.collection, ids=[nik])
        self._count_again()
        return True

    def search_many(self, templates: np.ndarray, top_k: int) -> list[list[Candidate]]:
        """Best first, for each template."""
        with _answered(self._spec.uri, "a search"):
            found = self._client.search(
                self._spec.collection, data=np.asarray(templates, dtype=np.float32).tolist(), limit=top_k,
                anns_field="template", output_fields=[], search_params=self._search_params)
        return [[Candidate(hit["nik"], float(hit["distance"])) for hit in hits] for hits in found]

    def _count_again(self) -> None:
        """The next len() counts the collection instead of answering from the last count."""
        self._counted_at = -math.inf

    def __len__(self) -> int:
        with self._count_lock:
            if time.monotonic() - self._counted_at > COUNT_TTL_S:
                try:
                    rows = self._client.query(self._spec.collection, filter="", output_fields=["count(*)"])
                    self._counted = int(rows[0]["count(*)"])
                except MilvusException as exc:  # the last count stands; searches say the index is unavailable
                    log.warning("Milvus at %s did not count the collection: %s", self._spec.uri, exc.message)
                self._counted_at = time.monotonic()
            return self._counted

    def enrolled_at(self) -> dict[str, int]:
        """Every NIK in the collection with the time (ms) its template was written."""
        iterator = self._client.query_iterator(self._spec.collection, batch_size=PAGE,
                                               output_fields=["nik", "enrolled_at"])
        found: dict[str, int] = {}
        try:
            while rows := iterator.next():
                found.update((row["nik"], int(row["enrolled_at"])) for row in rows)
        finally:
            iterator.close()
        return found

    def sync(self, store_enrolled_at: Mapping[str, int], templates_of: Callable[[Iterable[str]], dict],
             repair: bool = True) -> Drift:
        """Compare with the store (NIK -> enrolment time, ms) and, when asked, make the collection match it:
        write what is missing or stale from the store's templates, delete what the store does not hold."""
        with _answered(self._spec.uri, "listing its collection"):
            held = self.enrolled_at()
        if repair and held and not store_enrolled_at:
            raise ValueError(f"the store is empty and the collection holds {len(held)} templates: this is not the "
                             "store of record, and a sync from it would erase the gallery; run it where the "
                             "gallery is enrolled")
        missing = [nik for nik in store_enrolled_at if nik not in held]
        stale = [nik for nik, at in store_enrolled_at.items() if nik in held and held[nik] < at]
        extra = [nik for nik in held if nik not in store_enrolled_at]
        if repair:
            write = missing + stale
            for start in range(0, len(write), PAGE):
                templates = templates_of(write[start:start + PAGE])
                self.add(list(templates), np.stack(list(templates.values())))
            with _answered(self._spec.uri, "the repair"):
                for start in range(0, len(extra), PAGE):
                    self._client.delete(self._spec.collection, ids=extra[start:start + PAGE])
                self.flush()
        return Drift(len(missing), len(stale), len(extra))

    def flush(self) -> None:
        """Seal what was written into segments after a bulk load, so searches run on the index instead of
        scanning the unsealed rows."""
        self._client.flush(self._spec.collection)
        self._count_again()

    def describe(self) -> str:
        spec = self._spec
        measured = MEASURED.get(spec.index_type, "what it keeps was not measured here")
        return f"Milvus collection {spec.collection} at {spec.uri}, {spec.index_type} index; {measured}"

    def close(self) -> None:
        self._client.close()
