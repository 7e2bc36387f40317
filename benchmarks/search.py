"""1:N search benchmark: synthetic galleries of 100k, 1M and 10M identities through the gateway's own template
store (sealed SQLite) and index kinds, against plain numpy brute force measured in the same run.

Data: identity centres are random unit vectors in 512-d; the enrolled template is a noisy copy of its centre and
a mated probe another noisy copy (cosine about 0.66 to the template, like two photos of one person); non-mated
probes are centres of people not enrolled. Generated in seeded chunks, so any chunk can be made again instead
of kept in memory.

    .venv/bin/python benchmarks/search.py [--sizes 100000 1000000 10000000] [--out benchmarks/search]
writes search.json and search.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from fr_gateway.gallery.store import Enrolment, TemplateStore
from fr_gateway.search.faiss_index import INDEX_CLASSES, IndexSpec
from fr_gateway.security.keys import KeyRing

DIM = 512
CHUNK = 100_000
NOISE = 0.035  # per dimension: cosine(template, probe) is about 0.6, as for two photos of one person
MATED, NON_MATED, BATCH = 300, 100, 32
MODEL = "synthetic-benchmark-model"
MEMORY_BUDGET = 20 * 2**30  # what a run may use on this 24 GiB machine
PLANS = {  # kind, its settings, the largest gallery it is run at, and why not beyond
    "flat": ({}, 1_000_000, "exact float32 search needs 2 KiB per identity (20 GiB at 10M): does not fit beside "
                            "the store and the baseline in 24 GiB"),
    "ivfpq": ({"nprobe": 64, "rerank": 200}, 10_000_000, ""),
    "hnsw": ({"ef_search": 128}, 1_000_000, "graph + SQ8 vectors need about 900 B per identity (over the 256 B "
                                            "target) and hours to build on 2 cores at 10M"),
}


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def centres(chunk: int, rows: int) -> np.ndarray:
    return unit(np.random.default_rng([1, chunk]).standard_normal((rows, DIM), dtype=np.float32))


def enrolled_chunk(chunk: int, rows: int) -> np.ndarray:
    noise = np.random.default_rng([2, chunk]).standard_normal((rows, DIM), dtype=np.float32)
    return unit(centres(chunk, rows) + NOISE * noise)


def chunks(size: int):
    for chunk, start in enumerate(range(0, size, CHUNK)):
        rows = min(CHUNK, size - start)
        yield start, [f"{3100000000000000 + start + n:016d}" for n in range(rows)], enrolled_chunk(chunk, rows)


def probes(size: int) -> np.ndarray:
    """Mated probes (another noisy copy of an enrolled centre), then non-mated ones (people not enrolled)."""
    rng = np.random.default_rng(3)
    rows = np.sort(rng.choice(size, MATED, replace=False))
    mated = np.stack([centres(r // CHUNK, min(CHUNK, size - r // CHUNK * CHUNK))[r % CHUNK] for r in rows])
    mated = unit(mated + NOISE * rng.standard_normal(mated.shape, dtype=np.float32))
    strangers = unit(rng.standard_normal((NON_MATED, DIM), dtype=np.float32))
    return np.concatenate([mated, strangers])


def rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


def exact_top1(size: int, queries: np.ndarray) -> np.ndarray:
    """The exact best row per query, in float32 over regenerated chunks."""
    best_score = np.full(len(queries), -2.0, dtype=np.float32)
    best_row = np.zeros(len(queries), dtype=np.int64)
    columns = np.arange(len(queries))
    for start, _, templates in chunks(size):
        scores = templates @ queries.T
        top = scores.argmax(axis=0)
        better = scores[top, columns] > best_score
        best_score[better] = scores[top, columns][better]
        best_row[better] = start + top[better]
    return best_row


def numpy_baseline(size: int, queries: np.ndarray) -> dict:
    """Plain numpy brute force over the gallery in memory: one query at a time, and all queries in one batch.
    float32 where it fits; at 10M float16 (half the memory), multiplied in float32 blocks."""
    dtype = np.float32 if size * DIM * 4 <= 8 * 2**30 else np.float16
    gallery = np.empty((size, DIM), dtype=dtype)
    for start, _, templates in chunks(size):
        gallery[start:start + len(templates)] = templates

    def scan(block: np.ndarray) -> None:
        for start in range(0, size, CHUNK):
            np.argmax(gallery[start:start + CHUNK].astype(np.float32, copy=False) @ block, axis=0)

    singles = []
    for query in queries[:10]:
        started = time.perf_counter()
        scan(query[:, None])
        singles.append(time.perf_counter() - started)
    started = time.perf_counter()
    scan(queries.T)
    batch = (time.perf_counter() - started) / len(queries)
    return {"numpy_dtype": np.dtype(dtype).name, "numpy_query_ms": round(float(np.median(singles)) * 1000, 2),
            "numpy_batch_per_query_ms": round(batch * 1000, 3)}


def percentile_ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(samples, q)) * 1000, 3)


def fill_store(folder: Path, size: int) -> tuple[TemplateStore, float]:
    keys = KeyRing.load(folder / "key.json")
    store = TemplateStore(folder / "gallery", MODEL, "synthetic", keys, DIM)
    started = time.perf_counter()
    for _, niks, templates in chunks(size):
        store.upsert_many(Enrolment(nik, t, {}) for nik, t in zip(niks, templates, strict=True))
    return store, time.perf_counter() - started


def measure(kind: str, options: dict, size: int, store: TemplateStore, queries: np.ndarray,
            truth: np.ndarray) -> dict:
    spec = IndexSpec(kind=kind, **options)
    gc.collect()
    before = rss()
    started = time.perf_counter()
    index = INDEX_CLASSES[kind](DIM, spec=spec, size=size, exact=store.get_many)
    if not index.trained:
        sample = []
        for _, _, templates in chunks(min(size, spec.training_size(size))):
            sample.append(templates)
        index.train(np.concatenate(sample))
        del sample
    for _, niks, templates in chunks(size):
        index.add(niks, templates)
    build = time.perf_counter() - started
    gc.collect()
    resident = rss() - before
    serialised = len(index.to_bytes())
    singles = []
    found = []
    for query in queries:
        started = time.perf_counter()
        found.append(index.search(query, 5)[0].nik)
        singles.append(time.perf_counter() - started)
    batches = []
    for start in range(0, len(queries), BATCH):
        started = time.perf_counter()
        index.search_many(queries[start:start + BATCH], 5)
        batches.append(time.perf_counter() - started)
    expected = [f"{3100000000000000 + row:016d}" for row in truth]
    hits = np.array([a == b for a, b in zip(found, expected, strict=True)])
    row = {
        "size": size, "kind": kind, "settings": options, "build_s": round(build, 1),
        "rss_bytes_per_identity": round(resident / size, 1), "index_bytes_per_identity": round(serialised / size, 1),
        "query_p50_ms": percentile_ms(singles, 50), "query_p99_ms": percentile_ms(singles, 99),
        "batch32_p50_ms": percentile_ms(batches, 50), "batch32_per_query_ms": round(
            float(np.median(batches)) / BATCH * 1000, 3),
        "recall_at_1": round(float(hits.mean()), 4), "recall_at_1_mated": round(float(hits[:MATED].mean()), 4),
    }
    del index
    gc.collect()
    return row


def run(sizes: list[int]) -> dict:
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "processor": platform.processor() or platform.machine()},
               "data": {"dim": DIM, "noise_per_dim": NOISE, "mated_probes": MATED, "non_mated_probes": NON_MATED},
               "rows": [], "skipped": []}
    for size in sizes:
        queries = probes(size)
        truth = exact_top1(size, queries)
        baseline = numpy_baseline(size, queries)
        print(f"{size}: numpy brute force {baseline}", flush=True)
        folder = Path(tempfile.mkdtemp(prefix=f"bench-{size}-", dir=Path(__file__).resolve().parent.parent))
        try:
            store, fill = fill_store(folder, size)
            print(f"{size}: store filled in {fill:.0f} s", flush=True)
            for kind, (options, largest, why) in PLANS.items():
                if size > largest:
                    results["skipped"].append({"size": size, "kind": kind, "why": why})
                    continue
                row = measure(kind, options, size, store, queries, truth)
                row.update(baseline, store_fill_s=round(fill, 1),
                           speedup_vs_numpy=round(baseline["numpy_query_ms"] / max(row["query_p50_ms"], 1e-6), 1))
                results["rows"].append(row)
                print(json.dumps(row), flush=True)
            store.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return results


def markdown(results: dict) -> str:
    lines = [
        "| identities | index | build s | RSS B/identity | index B/identity | query p50 ms | query p99 ms | "
        "batch of 32, ms/query | recall@1 vs exact (all / mated) | numpy brute force ms/query | "
        "speed-up vs numpy (p50) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["rows"]:
        lines.append(f"| {r['size']:,} | {r['kind']} | {r['build_s']} | {r['rss_bytes_per_identity']} | "
                     f"{r['index_bytes_per_identity']} | {r['query_p50_ms']} | {r['query_p99_ms']} | "
                     f"{r['batch32_per_query_ms']} | {r['recall_at_1']} / {r['recall_at_1_mated']} | "
                     f"{r['numpy_query_ms']} ({r['numpy_dtype']}) | "
                     f"{r['speedup_vs_numpy']}x |")
    for s in results["skipped"]:
        lines.append(f"| {s['size']:,} | {s['kind']} | not run: {s['why']} | | | | | | | | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "search")
    args = parser.parse_args()
    results = run(args.sizes)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
