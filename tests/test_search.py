"""The index kinds on synthetic face-like templates: recall against exact search, erasure, replacement,
and a snapshot round trip (HNSW keeps its tombstones)."""

from __future__ import annotations

import numpy as np
import pytest

from fr_gateway.evaluation.galleries import TemplateShape
from fr_gateway.search.faiss_index import EXACT_LIMIT, INDEX_CLASSES, FaissIndex, IndexSpec

IDENTIFY_THRESHOLD = 0.40  # the shipped buffalo_s threshold

DIM = 512
SIZE = 4000


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def gallery():
    """Identities as random unit vectors; probes as noisy copies (cosine about 0.66 to their identity, as
    photos of one person score)."""
    rng = np.random.default_rng(7)
    templates = unit(rng.standard_normal((SIZE, DIM)))
    probes = unit(templates[:300] + 0.05 * rng.standard_normal((300, DIM)))
    niks = [f"6401010101{n:06d}" for n in range(SIZE)]
    return niks, templates, probes


SPEC = IndexSpec(nlist=16, nprobe=8, rerank=50, ef_search=64)
RE_RANKED = ("pqfs", "ivfpq")


def build(kind: str, niks, templates, store: dict | None = None) -> FaissIndex:
    """An index over the templates; `store` stands in for the template store that ivfpq re-ranks from."""
    store = {} if store is None else store
    store.update(zip(niks, templates, strict=True))
    index = INDEX_CLASSES[kind](DIM, spec=SPEC, size=len(niks),
                                exact=lambda wanted: {n: store[n] for n in wanted if n in store})
    if not index.trained:
        index.train(templates)
    index.add(niks, templates)
    return index


@pytest.mark.parametrize("kind", ["flat", "pqfs", "ivfpq", "hnsw"])
def test_recall_against_exact_search(gallery, kind):
    niks, templates, probes = gallery
    index = build(kind, niks, templates)
    found = [index.search(probe, 5)[0].nik for probe in probes]
    recall = np.mean([nik == niks[n] for n, nik in enumerate(found)])
    assert recall >= 0.98, f"{kind} recall@1 {recall:.3f}"
    assert len(index) == SIZE


@pytest.mark.parametrize("kind", ["flat", "pqfs", "ivfpq", "hnsw"])
def test_erased_and_replaced_templates_are_never_returned(gallery, kind):
    niks, templates, probes = gallery
    store: dict = {}
    index = build(kind, niks, templates, store)
    assert index.remove(niks[0]) and not index.remove(niks[0])
    del store[niks[0]]
    assert niks[0] not in [c.nik for c in index.search(probes[0], 20)]
    replacement = unit(np.random.default_rng(3).standard_normal((1, DIM)))[0]
    store[niks[1]] = replacement
    assert index.remove(niks[1])
    index.add([niks[1]], replacement)
    assert index.search(replacement, 1)[0].nik == niks[1]
    assert index.search(replacement, 1)[0].score == pytest.approx(1.0, abs=0.02)
    assert [c.nik for c in index.search(probes[1], 3)].count(niks[1]) <= 1
    assert len(index) == SIZE - 1

    restored = INDEX_CLASSES[kind].from_bytes(DIM, index.to_bytes(), spec=SPEC, size=SIZE,
                                              exact=index._exact if kind in RE_RANKED else None)
    assert len(restored) == SIZE - 1
    assert niks[0] not in [c.nik for c in restored.search(probes[0], 20)]
    assert [c.nik for c in restored.search(probes[5], 3)] == [c.nik for c in index.search(probes[5], 3)]


@pytest.mark.parametrize("kind", RE_RANKED)
def test_scores_are_exact_after_re_ranking(gallery, kind):
    niks, templates, probes = gallery
    index = build(kind, niks, templates)
    best = index.search(probes[9], 1)[0]
    assert best.nik == niks[9]
    assert best.score == pytest.approx(float(probes[9] @ templates[9]), abs=1e-5)


@pytest.mark.parametrize("kind", ["flat", "pqfs", "ivfpq", "hnsw"])
def test_a_batch_of_queries_finds_what_each_finds_alone(gallery, kind):
    """The gateway searches whatever concurrent requests have queued in one call (ivfpq re-ranks the union
    of their shortlists in one store read): each query's answer must not depend on its batch."""
    niks, templates, probes = gallery
    index = build(kind, niks, templates)
    together = index.search_many(probes[:40], 5)
    for probe, found in zip(probes[:40], together, strict=True):
        alone = index.search(probe, 5)
        assert [c.nik for c in found] == [c.nik for c in alone]
        assert [c.score for c in found] == pytest.approx([c.score for c in alone], abs=1e-5)


def test_auto_kind_follows_gallery_size():
    spec = IndexSpec()
    assert spec.resolve(10) == "flat" and spec.resolve(20_000) == "flat"
    assert spec.resolve(20_001) == "pqfs" and spec.resolve(100_000) == "pqfs" and spec.resolve(10_000_000) == "pqfs"
    assert IndexSpec(kind="pqfs").resolve(500) == "flat"  # too few to train on
    assert IndexSpec(kind="hnsw").resolve(50) == "flat"  # too few to train on
    with pytest.raises(ValueError, match="index kind"):
        IndexSpec(kind="annoy").resolve(10)


def test_the_default_approximate_index_keeps_real_identifications_on_a_realistic_gallery():
    """Among mated probes whose exact best match is their own enrolled template at or above the identify
    threshold, the share the index still answers with that person: 30,000 templates drawn like real buffalo_s
    ones, 1,000 mated pairs planted among them, the kind `auto` picks beyond the exact limit."""
    shape = TemplateShape.load()
    rng = np.random.default_rng(11)
    templates = shape.gallery(rng, 30_000)
    enrolled, probes = shape.mated_pairs(rng, 1000)
    slots = rng.choice(len(templates), len(enrolled), replace=False)
    templates[slots] = enrolled
    niks = [f"6401010101{n:06d}" for n in range(len(templates))]
    scores = probes @ templates.T
    best = scores.argmax(axis=1)
    kept = (best == slots) & (scores[np.arange(len(probes)), best] >= IDENTIFY_THRESHOLD)
    assert kept.sum() > 900  # the realistic pairs: a few fall below the threshold or behind a look-alike

    kind = IndexSpec().resolve(10 * EXACT_LIMIT)
    index = INDEX_CLASSES[kind](DIM, spec=IndexSpec(kind=kind), size=len(niks),
                                exact=lambda wanted: {n: templates[int(n[-6:])] for n in wanted})
    index.train(templates)
    index.add(niks, templates)
    found = index.search_many(probes[kept], 1)
    identified = np.mean([hits[0].nik == niks[slot] for hits, slot in zip(found, slots[kept], strict=True)])
    assert identified >= 0.999, f"{kind} kept {identified:.4f} of real identifications"
