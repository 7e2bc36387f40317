"""The micro-batcher: batches give the same templates as direct embedding, and a full queue refuses work; the
detector's batches find what insightface's one-image detect finds."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from conftest import ENROLLED, photos
from insightface.model_zoo.scrfd import SCRFD

from fr_gateway.batching import MicroBatcher, Overloaded
from fr_gateway.faces.detector import DetectedFace, align


@pytest.fixture(scope="module")
def crops(engine):
    out = []
    for who in ENROLLED[:8]:
        image = cv2.imread(str(photos(*who)[0]))
        out.append(align(image, engine.detector.detect(image)[0]))
    return out


def insightface_detect(scrfd: SCRFD, side: int, image: np.ndarray) -> list[DetectedFace]:
    boxes, landmarks = scrfd.detect(image, input_size=(side, side))
    faces = [DetectedFace(tuple(box[:4]), float(box[4]), points) for box, points in zip(boxes, landmarks, strict=True)]
    return sorted(faces, key=lambda face: face.area, reverse=True)


def test_one_detector_batch_finds_what_insightface_finds_one_image_at_a_time(engine, crops):
    """Photos of several sizes (several input sides in one batch), aligned crops, and a face cut inside its own
    outline (found only on the retry with a border) give the boxes, scores and landmarks of insightface's
    detect run on each image alone."""
    images = [cv2.imread(str(photos(*who)[1])) for who in (ENROLLED[0], ENROLLED[10], ENROLLED[-1], ENROLLED[3])]
    orl_s3 = cv2.imread(str(photos(*ENROLLED[12])[0]))
    inside = cv2.resize(align(orl_s3, engine.detector.detect(orl_s3)[0])[35:87, 31:81], (160, 160))
    images += [cv2.resize(images[0], None, fx=0.4, fy=0.4), *crops[:2], inside]
    scrfd = SCRFD(session=engine.detector.session)
    scrfd.prepare(0, det_thresh=0.5)
    expected, retried = [], 0
    for image in images:
        faces = insightface_detect(scrfd, engine.detector.input_side(*image.shape[:2]), image)
        if not faces:
            retried += 1
            pad = max(image.shape[:2]) // 2
            padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
            faces = [DetectedFace(tuple(np.array(f.box) - pad), f.score, f.landmarks - pad)
                     for f in insightface_detect(scrfd, engine.detector.input_side(*padded.shape[:2]), padded)]
        expected.append(faces)
    assert len({engine.detector.input_side(*image.shape[:2]) for image in images}) >= 3
    assert retried == 1
    found = engine.detector.detect_many(images)
    assert [len(faces) for faces in found] == [len(faces) for faces in expected] and all(found)
    for got, want in zip(found, expected, strict=True):
        for face, reference in zip(got, want, strict=True):
            assert np.allclose(face.box, reference.box, atol=1e-3)
            assert face.score == pytest.approx(reference.score, abs=1e-5)
            assert np.allclose(face.landmarks, reference.landmarks, atol=1e-3)


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


def test_workers_run_batches_side_by_side_and_all_stop_on_close(engine, crops):
    """Two workers hold a batch each at once (the recogniser's layout on two cores); close ends both."""
    both_inside = threading.Barrier(2, timeout=10)

    def embed_when_both_inside(batch):
        both_inside.wait()  # raises BrokenBarrierError, failing the batch, unless the other worker is in too
        return engine.embedder.embed(batch)

    batcher = MicroBatcher("side-by-side", embed_when_both_inside, batch_size=1, wait_ms=0, queue_size=8, workers=2)
    try:
        first, second = batcher.submit(crops[0]), batcher.submit(crops[1])
        assert first.result(20).shape == second.result(20).shape == (engine.embedder.dim,)
    finally:
        batcher.close()
    assert not any(thread.name.startswith("side-by-side-") and thread.is_alive() for thread in threading.enumerate())


def test_several_workers_share_out_a_backlog_instead_of_one_taking_it_whole(engine, crops):
    """Six crops queue while both workers are busy; once free, neither takes more than half of them, though a
    batch may hold eight: a single-threaded run of the whole backlog would leave the other core idle."""
    gated = GatedEmbedder(engine.embedder)
    sizes: list[int] = []

    def embed(batch):
        sizes.append(len(batch))
        return gated.embed(batch)

    batcher = MicroBatcher("share", embed, batch_size=8, wait_ms=200, queue_size=16, workers=2)
    try:
        held = [batcher.submit(crops[0]), batcher.submit(crops[1])]
        for _ in range(500):  # until both workers hold one at the gate
            if len(sizes) == 2:
                break
            time.sleep(0.01)
        backlog = [batcher.submit(crop) for crop in crops[2:8]]
        gated.gate.set()
        assert all(f.result(20).shape == (engine.embedder.dim,) for f in held + backlog)
    finally:
        gated.gate.set()
        batcher.close()
    assert sizes[:2] == [1, 1] and sum(sizes[2:]) == 6 and max(sizes[2:]) <= 3, sizes


def test_with_no_wait_a_lone_crop_runs_alone_and_a_backlog_runs_as_one_batch(engine, crops):
    """The default: nothing is held back for company, yet crops that queued while the worker was busy go into
    its next run together, so batches grow with the load."""
    gated = GatedEmbedder(engine.embedder)
    sizes: list[int] = []

    def embed(batch):
        sizes.append(len(batch))
        return gated.embed(batch)

    batcher = MicroBatcher("greedy", embed, batch_size=8, wait_ms=0, queue_size=16)
    try:
        held = batcher.submit(crops[0])
        for _ in range(500):  # until the worker holds it at the gate
            if sizes:
                break
            time.sleep(0.01)
        backlog = [batcher.submit(crop) for crop in crops[1:6]]
        gated.gate.set()
        assert all(f.result(20).shape == (engine.embedder.dim,) for f in [held, *backlog])
    finally:
        gated.gate.set()
        batcher.close()
    assert sizes == [1, 5], sizes
