"""The embedded FAISS indexes over the store's templates (inner product of L2-normalised templates, i.e.
cosine similarity), keyed by NIK. A NIK is 16 digits, so it is its own int64 id.

- flat: exact search; the default up to EXACT_LIMIT identities.
- pqfs: 24-byte (16 from 4M) product-quantised codes of every identity, scanned whole with FAISS's 4-bit
  fast-scan kernels, the shortlist scored again with finer codes in memory and its best re-ranked exactly on the
  store's templates; the default beyond EXACT_LIMIT. No partition, so no person is lost to a list that was not
  searched (benchmarks/search.md: identification recall 1.000 at 100k and 1M on realistic templates, where
  ivfpq's 128 of 2,048 lists keep 0.86 at 1M).
- ivfpq: inverted lists of 64-byte product-quantised codes (4-bit fast scan), with the shortlist re-ranked
  exactly; it searches a share of the lists, and loses the people filed in the others.
- hnsw: a graph over 8-bit scalar-quantised vectors; fast approximate search for mid-size galleries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np

from fr_gateway.search.base import Candidate

NIK_DIGITS = 16
KINDS = ("flat", "pqfs", "ivfpq", "hnsw")
# Beyond, an exact scan costs more CPU a camera face than pqfs, which keeps every identification (realistic
# templates, 1,000 pairs planted; CPU ms a face one query at a time): 10k flat 2.0, pqfs 1.3, both kept 948 of
# 948; 30k 6.5 and 1.4, 948 of 948; 100k 20.9 and 1.7, 951 of 951. Through the gateway at 100k (4 cameras x 8
# in flight) the exact search held it to 0.51 of the recogniser's limit, pqfs to 0.84 (`realtime.py --quick`).
EXACT_LIMIT = 20_000
MAX_LISTS = 4096  # training more lists takes tens of minutes of k-means on a small machine
SMALL_BATCH = 8
QUERY_BLOCK = 64  # flat: queries a matrix product takes at once (scores of 64 x 1M float32: 256 MB)
HNSW_MIN = 1_000
SHORTLIST_MIN = 200  # pqfs: the scan's shortlist at the least (20 kept every identification at 100k)
SHORTLIST_AT_1M = 700  # pqfs: the shortlist at 1M identities, and for smaller galleries in proportion
# pqfs: the shards are scanned side by side from this many identities (at 1M two side by side took 1.8-2.0 ms
# against 1.1-1.4 for each alone; at 100k a lone query gained nothing)
SIDE_BY_SIDE_FROM = 500_000
SHORT_CODES_FROM = 4_000_000  # pqfs: 16-byte codes from this many identities, 24-byte ones below
PQFS_TRAINING = 65_536  # principal components and 16 centroids a sub-quantiser learn little from more
# Re-ranking needs exact templates by NIK; the store provides them.
ExactTemplates = Callable[[Sequence[str]], dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class IndexSpec:
    """Which index and its knobs; `kind = "auto"` is flat up to EXACT_LIMIT identities, pqfs beyond."""

    kind: str = "auto"
    nlist: int = 0  # ivfpq inverted lists; 0 = about 2 * sqrt(size), a power of two, at most MAX_LISTS
    pq_bytes: int = 64  # ivfpq code size per identity
    scan_bytes: int = 0  # pqfs code size per identity; 0 = by gallery size (scan_bytes_for)
    scan_shortlist: int = 0  # pqfs: the scan's best, scored again with finer codes; 0 = by size (shortlist_for)
    refine_bytes: int = 64  # pqfs: the finer codes' size per identity, in memory
    # pqfs: at least this many of those, and as many as the caller asks for, re-ranked exactly from the store.
    # Each is a random read of the store (about 0.4 ms from disk here when it is not in the page cache); the
    # finer codes put every identifiable mate at 1M within their best 2 (954 of 954)
    refined: int = 3
    nprobe: int = 0  # ivfpq lists searched per query; 0 = max(128, lists / 16)
    rerank: int = 100  # ivfpq: shortlist re-ranked exactly
    hnsw_m: int = 32  # hnsw graph degree
    ef_search: int = 128  # hnsw search breadth

    def resolve(self, size: int) -> str:
        if self.kind not in (*KINDS, "auto"):
            raise ValueError(f"index kind {self.kind!r}: choose one of auto, {', '.join(KINDS)}")
        kind = ("flat" if size <= EXACT_LIMIT else "pqfs") if self.kind == "auto" else self.kind
        # quantisers learn from the gallery: an IVF one needs a few dozen points per list
        if (kind in ("ivfpq", "pqfs") and size < self.training_size(size)) or (kind == "hnsw" and size < HNSW_MIN):
            return "flat"
        return kind

    def scan_bytes_for(self, size: int) -> int:
        """pqfs: 24-byte codes kept every identification at 1M, where 16 lost 3 of 954. At 10M the scan of every
        code is the cost: 16 bytes kept 950 of 954 (0.996) and every real pair in 12 ms a query (p99 18), 24 bytes
        953 in 15 ms (p99 23); measured at those two sizes only (benchmarks/search.md)."""
        return self.scan_bytes or (24 if size < SHORT_CODES_FROM else 16)

    def shortlist_for(self, size: int) -> int:
        """pqfs: how many of the scan's best are scored again with finer codes. 700 kept every identification
        at 1M (400 lost one); 16-byte codes at 10M kept 0.996 with 4,000 and 0.995 with 2,000. A smaller gallery
        holds fewer look-alikes above a mate, so below 1M the shortlist shrinks in proportion, to SHORTLIST_MIN at
        the least: at 100k 20 kept every identification (954 of 954, 57 of 57 real pairs), at 300k 210 did and 60
        lost one. At 100k, scoring a shortlist of 700 had been half the search's CPU."""
        proportional = min(SHORTLIST_AT_1M, max(SHORTLIST_MIN, size * SHORTLIST_AT_1M // 1_000_000))
        return self.scan_shortlist or max(proportional, size // 2500)

    def training_size(self, size: int, kind: str = "ivfpq") -> int:
        """Templates the quantisers of `kind` learn from: a few dozen per inverted list."""
        wanted = 64 * self.lists(size)
        return min(wanted, PQFS_TRAINING) if kind == "pqfs" else wanted

    def lists(self, size: int) -> int:
        return self.nlist or min(MAX_LISTS, max(64, 2 ** round(math.log2(2 * math.sqrt(max(size, 1))))))

    def probes(self, size: int) -> int:
        """Recall follows the share of lists searched (measured: benchmarks/search.md)."""
        return self.nprobe or max(128, self.lists(size) // 16)


@contextlib.contextmanager
def _threads(queries: int) -> Iterator[None]:
    """One OpenMP thread for a few queries: spreading one query over threads cost 2-3x more than it saved on
    the 2-core gateway (measured); batches use every core. Callers hold the index lock."""
    faiss.omp_set_num_threads(1 if queries < SMALL_BATCH else os.cpu_count() or 1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(os.cpu_count() or 1)


def _ids(niks: Sequence[str]) -> np.ndarray:
    return np.array([int(nik) for nik in niks], dtype=np.int64)


def _nik(identifier: int) -> str:
    return f"{identifier:0{NIK_DIGITS}d}"


def _matrix(templates: np.ndarray, dim: int) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(templates, dtype=np.float32).reshape(-1, dim))


class FaissIndex:
    """Common behaviour; writes and searches are serialised by one lock (FAISS forbids a write during a
    search). Subclasses choose the FAISS structure and how removal works."""

    kind = "flat"
    # what the kind kept of the identifications exact search makes, on galleries shaped like real buffalo_s
    # templates with real pairs planted (benchmarks/search.md)
    measured = "exact: keeps every identification"

    def __init__(self, dim: int, index: faiss.Index | None = None, **_: object) -> None:
        self.dim = dim
        self._index = index if index is not None else self._new_index()
        self._lock = threading.Lock()

    def _new_index(self) -> faiss.Index:
        return faiss.index_factory(self.dim, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT)

    def describe(self) -> str:
        """Which index answers, how it searches and what it was measured to keep, for the start-up log and
        `fr-gateway info`."""
        return f"FAISS {self.kind} index in process, {self.how()}; {self.measured}"

    def how(self) -> str:
        return "exact"

    @property
    def trained(self) -> bool:
        return bool(self._index.is_trained)

    def train(self, sample: np.ndarray) -> None:
        with self._lock:
            self._index.train(_matrix(sample, self.dim))

    def add(self, niks: Sequence[str], templates: np.ndarray) -> None:
        """Add NIKs that are not in the index (call remove first for ones that may be)."""
        with self._lock:
            self._index.add_with_ids(_matrix(templates, self.dim), _ids(niks))

    def remove(self, nik: str) -> bool:
        with self._lock:
            return self._index.remove_ids(_ids([nik])) > 0

    def _raw_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        with self._lock, _threads(len(queries)):
            return self._index.search(queries, k)

    def search_many(self, templates: np.ndarray, top_k: int) -> list[list[Candidate]]:
        scores, ids = self._raw_search(_matrix(templates, self.dim), top_k)
        return [[Candidate(_nik(i), float(s)) for s, i in zip(row_s, row_i, strict=True) if i >= 0]
                for row_s, row_i in zip(scores, ids, strict=True)]

    def search(self, template: np.ndarray, top_k: int) -> list[Candidate]:
        return self.search_many(template, top_k)[0]

    def pairs_above(self, chunks: Iterable[tuple[list[str], np.ndarray]], threshold: float,
                    neighbours: int = 10) -> list[tuple[str, str, float]]:
        """Pairs of different NIKs among each template's nearest neighbours scoring at least `threshold`,
        each pair once, best first: the duplicate check of ID systems (one face under two NIKs)."""
        found: dict[tuple[str, str], float] = {}
        for niks, templates in chunks:
            for nik, candidates in zip(niks, self.search_many(templates, neighbours), strict=True):
                for candidate in candidates:
                    if candidate.nik != nik and candidate.score >= threshold:
                        found[tuple(sorted((nik, candidate.nik)))] = candidate.score
        return sorted(((a, b, s) for (a, b), s in found.items()), key=lambda pair: -pair[2])

    def to_bytes(self) -> bytes:
        """The index and whatever else the kind needs, in one buffer for a sealed snapshot."""
        buffer = io.BytesIO()
        with self._lock:
            np.savez(buffer, index=faiss.serialize_index(self._index), **self._extra_arrays())
        return buffer.getvalue()

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def close(self) -> None:
        """Nothing outside the process: the snapshot is the caller's."""

    @classmethod
    def from_bytes(cls, dim: int, data: bytes, **options) -> FaissIndex:
        arrays = np.load(io.BytesIO(data))
        index = cls(dim, faiss.deserialize_index(arrays["index"]), **options)
        index._restore({name: arrays[name] for name in arrays.files if name != "index"})
        return index

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        pass

    def __len__(self) -> int:
        return int(self._index.ntotal)


class FlatIndex(FaissIndex):
    """Exact search: every template as float32."""

    kind = "flat"

    def _raw_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Queries as matrix products over FAISS's own storage, a block at a time: BLAS spreads them over every
        core, where FAISS scans one query on one core and took 6.3 ms a query in batches of 32 at 100k against
        numpy's 1.7 (benchmarks/search.md)."""
        if self._index.ntotal <= k:
            return super()._raw_search(queries, k)
        with self._lock:
            flat = faiss.downcast_index(self._index.index)
            stored = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * self.dim).reshape(flat.ntotal, self.dim)
            ids = faiss.rev_swig_ptr(self._index.id_map.data(), self._index.id_map.size())
            found = [self._best(stored, queries[start:start + QUERY_BLOCK], k)
                     for start in range(0, len(queries), QUERY_BLOCK)]
        scores = np.concatenate([block_scores for block_scores, _ in found])
        return scores, ids[np.concatenate([rows for _, rows in found])]

    @staticmethod
    def _best(stored: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = (stored @ queries.T).T  # a matrix-vector product for one query, as numpy's own brute force
        top = np.argpartition(scores, -k, axis=1)[:, -k:]
        picked = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-picked, axis=1, kind="stable")
        return np.take_along_axis(picked, order, axis=1), np.take_along_axis(top, order, axis=1)


class ReRankedIndex(FaissIndex):
    """Compressed codes find a shortlist; the store's exact templates rank it, so the scores a decision is made
    on are exact cosine similarities."""

    def __init__(self, dim: int, index: faiss.Index | None = None, *, spec: IndexSpec = IndexSpec(), size: int = 0,
                 exact: ExactTemplates) -> None:
        self._spec = spec
        self._size = size
        self._exact = exact
        super().__init__(dim, index)

    def _shortlists(self, queries: np.ndarray, top_k: int) -> np.ndarray:
        """Ids (-1 for none) of the candidates each query's exact re-rank reads from the store."""
        return self._raw_search(queries, max(top_k, self._spec.rerank))[1]

    def search_many(self, templates: np.ndarray, top_k: int) -> list[list[Candidate]]:
        queries = _matrix(templates, self.dim)
        shortlists = [[_nik(i) for i in row if i >= 0] for row in self._shortlists(queries, top_k)]
        exact = self._exact(list({nik for shortlist in shortlists for nik in shortlist}))  # one store read
        ranked = []
        for query, shortlist in zip(queries, shortlists, strict=True):
            niks = [nik for nik in shortlist if nik in exact]
            scores = np.stack([exact[nik] for nik in niks]) @ query if niks else np.empty(0, dtype=np.float32)
            order = np.argsort(-scores, kind="stable")[:top_k]
            ranked.append([Candidate(niks[i], float(scores[i])) for i in order])
        return ranked


@dataclasses.dataclass
class _Shard:
    """The part of the gallery one core scans: its coarse and finer codes in one FAISS IndexRefine (which scores
    the scan's shortlist with the finer codes in C++), and the NIK of each position in them."""

    index: faiss.IndexRefine
    ids: np.ndarray

    def search(self, queries: np.ndarray, keep: int, shortlist: int) -> tuple[np.ndarray, np.ndarray]:
        if not len(self.ids):
            return np.full((len(queries), keep), -np.inf, np.float32), np.full((len(queries), keep), -1, np.int64)
        params = faiss.IndexRefineSearchParameters(k_factor=max(1.0, shortlist / keep))
        scores, positions = self.index.search(queries, keep, params=params)
        return scores, np.where(positions >= 0, self.ids[np.maximum(positions, 0)], -1)

    def remove(self, identifier: int) -> bool:
        positions = np.flatnonzero(self.ids == identifier)
        if not len(positions):
            return False
        chosen = faiss.IDSelectorArray(positions.astype(np.int64))  # both codes shift later positions down alike
        self.index.base_index.remove_ids(chosen)
        self.index.refine_index.remove_ids(chosen)
        self.index.ntotal = self.index.base_index.ntotal
        self.ids = np.delete(self.ids, positions)
        return True


class PqScanIndex(ReRankedIndex):
    """Every identity's short code, scanned whole by FAISS's 4-bit fast-scan kernels over the templates'
    principal components: nobody is left out of the scan. The scan's shortlist (IndexSpec.shortlist_for) is
    scored again in memory with finer codes, and only the best `refined` of those are read from the store. The
    gallery is split into one shard per core, searched side by side: a single query then uses every core.
    Removal is native in both codes."""

    kind = "pqfs"
    measured = ("kept every identification exact search made at 100k and 1M (954 of 954; 57 of 57 real pairs), "
                "0.996 at 10M with 16-byte codes (950 of 954; 57 of 57)")
    MAX_SHARDS = 8

    def __init__(self, dim: int, index: faiss.Index | None = None, *, spec: IndexSpec = IndexSpec(), size: int = 0,
                 exact: ExactTemplates) -> None:
        super().__init__(dim, index, spec=spec, size=size, exact=exact)
        self._shards: list[_Shard] = []
        self._pool: ThreadPoolExecutor | None = None

    def _new_index(self) -> faiss.Index:
        """The trained, empty quantisers every shard starts from."""
        quantisers = 2 * self._spec.scan_bytes_for(self._size)  # 4-bit codes of 4 principal components each
        # principal components dealt out so each sub-quantiser gets an even share of the variance: as accurate
        # at 1M as FAISS's OPQ rotation, which took a minute to train on 20,000 templates here
        components = faiss.PCAMatrix(self.dim, 4 * quantisers)
        components.balanced_bins = quantisers
        scan = faiss.index_factory(4 * quantisers, f"PQ{quantisers}x4fs", faiss.METRIC_INNER_PRODUCT)
        base = faiss.IndexPreTransform(components, scan)
        # 4-bit finer codes of half the sub-vectors' size train in a second where 8-bit ones took minutes; the
        # factory's polysemous training, which only Hamming searches use, is skipped
        finer = faiss.index_factory(self.dim, f"PQ{2 * self._spec.refine_bytes}x4", faiss.METRIC_INNER_PRODUCT)
        faiss.downcast_index(finer).do_polysemous_training = False
        return faiss.IndexRefine(base, finer)

    def how(self) -> str:
        return (f"every identity's {self._scan_bytes()}-byte code scanned on {len(self._shards) or self._cores()} "
                f"cores, the best {self._shortlist()} scored again with {self._spec.refine_bytes}-byte codes, the "
                f"best {self._spec.refined} or more of those (as many as asked for) re-ranked exactly")

    @staticmethod
    def _cores() -> int:
        return max(1, min(PqScanIndex.MAX_SHARDS, os.cpu_count() or 1))

    def _shortlist(self) -> int:
        return self._spec.shortlist_for(len(self))

    def _scan_bytes(self) -> int:
        """The code size this index was trained with (a saved index keeps its own as the gallery grows)."""
        scan = faiss.downcast_index(faiss.downcast_index(self._index.base_index).index)
        return scan.code_size

    def train(self, sample: np.ndarray) -> None:
        super().train(sample)
        with self._lock:
            self._shards = [_Shard(faiss.clone_index(self._index), np.zeros(0, dtype=np.int64))
                            for _ in range(self._cores())]

    def add(self, niks: Sequence[str], templates: np.ndarray) -> None:
        templates, ids = _matrix(templates, self.dim), _ids(niks)
        with self._lock:
            offset = int(np.argmin([len(shard.ids) for shard in self._shards]))
            for number, shard in enumerate(self._shards):  # every n-th row, starting with the smallest shard
                chosen = slice((number - offset) % len(self._shards), None, len(self._shards))
                shard.index.add(templates[chosen])
                shard.ids = np.concatenate([shard.ids, ids[chosen]])

    def remove(self, nik: str) -> bool:
        with self._lock:
            return any(shard.remove(int(nik)) for shard in self._shards)

    def _shortlists(self, queries: np.ndarray, top_k: int) -> np.ndarray:
        """The shards' best, merged. A large gallery's shards are scanned side by side, one core each; a smaller
        one's one after another on this thread: at 100k a lone query took as long either way and 0.4 ms more CPU
        side by side (the hand-offs between threads), and a batch of 8 two thirds as long for 5% more CPU."""
        keep, shortlist = max(top_k, self._spec.refined), -(-self._shortlist() // len(self._shards))
        with self._lock:
            if len(self) < SIDE_BY_SIDE_FROM:
                with _threads(1):  # one core: FAISS's own threads would be hand-offs too
                    found = [shard.search(queries, keep, shortlist) for shard in self._shards]
            else:
                if self._pool is None:
                    # one core a shard, set once in each of the pool's threads: the shards are the parallelism
                    self._pool = ThreadPoolExecutor(len(self._shards), thread_name_prefix="pqfs-shard",
                                                    initializer=faiss.omp_set_num_threads, initargs=(1,))
                found = list(self._pool.map(lambda shard: shard.search(queries, keep, shortlist), self._shards))
        scores = np.concatenate([shard_scores for shard_scores, _ in found], axis=1)
        ids = np.concatenate([shard_ids for _, shard_ids in found], axis=1)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :keep]
        return np.take_along_axis(ids, best, axis=1)

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        for number, shard in enumerate(self._shards):
            arrays[f"shard{number}"] = faiss.serialize_index(shard.index)
            arrays[f"ids{number}"] = shard.ids
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._shards = [_Shard(faiss.deserialize_index(arrays[f"shard{number}"]), arrays[f"ids{number}"])
                        for number in range(sum(name.startswith("shard") for name in arrays))]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def __len__(self) -> int:
        return sum(len(shard.ids) for shard in self._shards)


class IvfPqIndex(ReRankedIndex):
    """Coarse lists found through an HNSW quantiser, PQ codes in the lists. Removal is native (ids live in the
    lists), so erasure leaves nothing behind."""

    kind = "ivfpq"
    measured = "kept 0.86 of the identifications exact search made at 1M, 0.97 at 100k"

    def __init__(self, dim: int, index: faiss.Index | None = None, *, spec: IndexSpec = IndexSpec(), size: int = 0,
                 exact: ExactTemplates) -> None:
        super().__init__(dim, index, spec=spec, size=size, exact=exact)
        ivf = faiss.extract_index_ivf(self._index)
        ivf.nprobe = spec.probes(size)
        # the HNSW quantiser's default breadth (16) can file a template in a farther list: search it at least
        # as wide as the lists probed
        faiss.downcast_index(ivf.quantizer).hnsw.efSearch = max(128, ivf.nprobe)

    def how(self) -> str:
        ivf = faiss.extract_index_ivf(self._index)
        return f"{ivf.nprobe} of {ivf.nlist} lists searched, the best {self._spec.rerank} re-ranked exactly"

    def _new_index(self) -> faiss.Index:
        # 4-bit fast-scan codes: two sub-quantisers per byte; trains in seconds where 8-bit PQ takes minutes
        factory = f"IVF{self._spec.lists(self._size)}_HNSW32,PQ{2 * self._spec.pq_bytes}x4fs"
        return faiss.index_factory(self.dim, factory, faiss.METRIC_INNER_PRODUCT)


class HnswIndex(FaissIndex):
    """HNSW cannot delete: entries live in slots, and a removed or replaced entry's slot is marked dead in a
    bitmap that searches skip. Slot-to-NIK and the marks are saved with the snapshot; rebuild from the store
    when many slots are dead."""

    kind = "hnsw"
    measured = "kept 0.95 of the identifications exact search made at 100k"

    def __init__(self, dim: int, index: faiss.Index | None = None, *, spec: IndexSpec = IndexSpec(),
                 **_: object) -> None:
        self._spec = spec
        super().__init__(dim, index)
        self._slot_of: dict[str, int] = {}
        self._external = np.zeros(0, dtype=np.int64)
        self._dead = np.zeros(0, dtype=bool)

    def _new_index(self) -> faiss.Index:
        return faiss.index_factory(self.dim, f"HNSW{self._spec.hnsw_m},SQ8", faiss.METRIC_INNER_PRODUCT)

    def how(self) -> str:
        return f"a graph of 8-bit vectors searched {self._spec.ef_search} wide"

    def add(self, niks: Sequence[str], templates: np.ndarray) -> None:
        with self._lock:
            first = self._index.ntotal
            self._index.add(_matrix(templates, self.dim))
            self._external = np.concatenate([self._external, _ids(niks)])
            self._dead = np.concatenate([self._dead, np.zeros(len(niks), dtype=bool)])
            self._slot_of.update({nik: first + n for n, nik in enumerate(niks)})

    def remove(self, nik: str) -> bool:
        with self._lock:
            slot = self._slot_of.pop(nik, None)
            if slot is not None:
                self._dead[slot] = True
            return slot is not None

    def _raw_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        with self._lock, _threads(len(queries)):
            params = faiss.SearchParametersHNSW(efSearch=max(self._spec.ef_search, k))
            alive = np.packbits(~self._dead, bitorder="little")
            if self._dead.any():
                params.sel = faiss.IDSelectorBitmap(len(self._dead), faiss.swig_ptr(alive))
            scores, slots = self._index.search(queries, k, params=params)
            ids = np.where(slots >= 0, self._external[np.maximum(slots, 0)], -1)
        return scores, ids

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        return {"external": self._external, "dead": self._dead}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        self._external, self._dead = arrays["external"], arrays["dead"].astype(bool)
        self._slot_of = {_nik(i): slot for slot, i in enumerate(self._external) if not self._dead[slot]}

    def __len__(self) -> int:
        return int(self._index.ntotal - self._dead.sum())


INDEX_CLASSES: dict[str, type[FaissIndex]] = {"flat": FlatIndex, "pqfs": PqScanIndex, "ivfpq": IvfPqIndex,
                                              "hnsw": HnswIndex}
