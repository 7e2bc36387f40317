"""The micro-batcher: batches give the same templates as direct embedding, and a full queue refuses work."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from conftest import ENROLLED, photos

from fr_gateway.batching import MicroBatcher, Overloaded
from fr_gateway.faces.detector import align


@pytest.fixture(scope="module")
def crops(engine):
    out = []
    for who in ENROLLED[:8]:
        image = cv2.imread(str(photos(*who)[0]))
        out.append(align(image, engine.detector.detect(image)[0]))
    return out


def test_batched_templates_equal_direct_ones(engine, crops):
    direct = engine.embedder.embed(crops)
    assert np.allclose(np.linalg.norm(direct, axis=1), 1.0, atol=1e-5)
    batcher = MicroBatcher("embed", engine.embedder.embed, batch_size=4, wait_ms=20, queue_size=64)
    try:
        with ThreadPoolExecutor(8) as pool:
            batched = list(pool.map(batcher.run, crops))
    finally:
        batcher.close()
    assert np.allclose(np.stack(batched), direct, atol=1e-4)


class GatedEmbedder:
    """The real embedder behind a gate, so the test decides when the worker may proceed."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder
        self.gate = threading.Event()

    def embed(self, batch):
        self.gate.wait(10)
        return self._embedder.embed(batch)


def test_full_queue_raises_overloaded_and_recovers(engine, crops):
    gated = GatedEmbedder(engine.embedder)
    batcher = MicroBatcher("embed", gated.embed, batch_size=1, wait_ms=0, queue_size=2)
    try:
        accepted = [batcher.submit(crops[0])]  # taken by the worker, held at the gate
        for _ in range(500):  # until the worker has taken it off the queue
            if batcher.depth == 0:
                break
            time.sleep(0.01)
        accepted += [batcher.submit(crops[1]), batcher.submit(crops[2])]  # fills the queue
        with pytest.raises(Overloaded):
            batcher.submit(crops[3])
        gated.gate.set()
        assert all(f.result(10).shape == (engine.embedder.dim,) for f in accepted)
        assert batcher.run(crops[3], timeout=10).shape == (engine.embedder.dim,)
    finally:
        gated.gate.set()
        batcher.close()
