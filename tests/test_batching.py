"""The micro-batcher: batches give the same templates as direct embedding, and a full queue refuses work; the
detector's batches find what insightface's one-image detect finds, and alignment gives its crop; faces pass
from stage to stage on the workers' threads, and a face given up on is skipped; model runs count their CPU."""

from __future__ import annotations

import os
import threading
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from conftest import ENROLLED, photos
from insightface.model_zoo.scrfd import SCRFD
from insightface.utils import face_align

from fr_gateway.batching import MicroBatcher, Overloaded, finished, settled, then, wait_for
from fr_gateway.faces.detector import ALIGNED_SIZE, ARCFACE_POINTS, DetectedFace, align, similarity
from fr_gateway.metrics import MODEL_CPU


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


def test_alignment_gives_insightface_norm_crop(engine):
    """The closed-form similarity gives insightface's matrix (which it computes in float32) and its crop, to a
    level of one pixel value at most, for the faces of a dozen photos."""
    compared = 0
    for who in ENROLLED[:12]:
        image = cv2.imread(str(photos(*who)[1]))
        for face in engine.detector.detect(image):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # scikit-image's estimate(), deprecated
                matrix = face_align.estimate_norm(face.landmarks, ALIGNED_SIZE)
                crop = face_align.norm_crop(image, face.landmarks, ALIGNED_SIZE)
            ours = similarity(face.landmarks.astype(np.float64), ARCFACE_POINTS)
            assert np.abs(ours - matrix).max() < 1e-3
            assert np.abs(align(image, face).astype(int) - crop).max() <= 1
            compared += 1
    assert compared >= 12


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
    """The real embedder behind a gate, so the test decides when the worker may proceed; `sizes` has the size of
    each batch it was given, as the worker took it."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder
        self.gate = threading.Event()
        self.sizes: list[int] = []

    def embed(self, batch):
        self.sizes.append(len(batch))
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
    sizes = gated.sizes
    batcher = MicroBatcher("share", gated.embed, batch_size=8, wait_ms=200, queue_size=16, workers=2)
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
    sizes = gated.sizes
    batcher = MicroBatcher("greedy", gated.embed, batch_size=8, wait_ms=0, queue_size=16)
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


def test_faces_pass_from_stage_to_stage_on_the_workers_threads(engine, crops):
    """A crop goes through the recogniser's stage and then a second stage with no thread waiting in between: each
    step runs on the thread of the worker that finished the one before, and the results come in order."""
    ran_on: list[str] = []

    def score(templates):
        ran_on.append(threading.current_thread().name)
        return [float(np.dot(template, template)) for template in templates]

    embedder = MicroBatcher("chain-embed", engine.embedder.embed, batch_size=8, wait_ms=0, queue_size=16)
    scorer = MicroBatcher("chain-score", score, batch_size=8, wait_ms=0, queue_size=16)
    try:
        answers = []
        for crop in crops:
            template = embedder.submit_after(finished(crop), lambda image: image)
            scored = scorer.submit_after(template, lambda found: found)
            answers.append(then(scored, lambda done: (threading.current_thread().name, round(done.result(), 3))))
        assert [wait_for(answer, None, 20) for answer in answers] == [("chain-score-0", 1.0)] * len(crops)
    finally:
        embedder.close()
        scorer.close()
    assert set(ran_on) == {"chain-score-0"}


def test_a_failure_on_the_way_reaches_the_end_without_the_frames_that_raised_it(engine, crops):
    """A step's failure fails every later step without running it, and arrives without a traceback: one would
    hold the frames of the stages' threads, and with them each face's images, until the cycle collector ran."""
    later_ran = threading.Event()

    def refuse(image):
        raise ValueError("no face here")

    embedder = MicroBatcher("failing-embed", engine.embedder.embed, batch_size=8, wait_ms=0, queue_size=16)
    try:
        refused = then(finished(crops[0]), lambda done: refuse(done.result()))
        template = embedder.submit_after(refused, lambda image: later_ran.set() or image)
        assert isinstance(template.exception(10), ValueError) and not later_ran.is_set()
        assert template.exception().__traceback__ is None
    finally:
        embedder.close()


def test_a_face_given_up_on_before_its_stage_runs_is_skipped(engine, crops):
    """The caller's deadline passes while the face is queued behind a busy worker: wait_for cancels it, the
    worker never embeds it, and the caller learns it as Overloaded."""
    gated = GatedEmbedder(engine.embedder)
    sizes = gated.sizes
    batcher = MicroBatcher("given-up", gated.embed, batch_size=1, wait_ms=0, queue_size=16)
    try:
        held = batcher.submit(crops[0])
        queued = then(batcher.submit_after(finished(crops[1]), lambda image: image), lambda done: done.result())
        with pytest.raises(Overloaded):
            wait_for(queued, time.monotonic() + 0.2, 20)
        assert queued.cancelled()
        gated.gate.set()
        assert held.result(20).shape == (engine.embedder.dim,)
        assert batcher.run(crops[2], timeout=20).shape == (engine.embedder.dim,)
    finally:
        gated.gate.set()
        batcher.close()
    assert sizes == [1, 1], sizes  # the cancelled crop was never embedded


def test_a_step_under_way_when_time_runs_out_is_waited_for(engine, crops):
    """Once the last step has started, its result comes: the caller's deadline passing then cancels nothing."""
    started, release = threading.Event(), threading.Event()

    def slow(done):
        started.set()
        release.wait(20)
        return done.result()

    worker = MicroBatcher("under-way", engine.embedder.embed, batch_size=1, wait_ms=0, queue_size=4)
    try:
        answer = then(worker.submit(crops[0]), slow)
        assert started.wait(20)
        threading.Timer(0.3, release.set).start()
        assert wait_for(answer, time.monotonic() + 0.05, 20).shape == (engine.embedder.dim,)
    finally:
        release.set()
        worker.close()


def test_settled_gives_the_result_once_the_record_is_durable_too():
    record, durable = Future(), Future()
    answer = settled(record, lambda made: durable)
    record.set_result("answer")
    assert not answer.done() and not answer.cancel()  # under way: no longer given up on
    durable.set_result(None)
    assert answer.result(1) == "answer"
    failing, unwritable = Future(), Future()
    refused = settled(failing, lambda made: unwritable)
    failing.set_result("answer")
    unwritable.set_exception(OSError("disk full"))
    assert isinstance(refused.exception(1), OSError)


def test_model_runs_count_their_cpu_with_the_threads_their_session_started(engine):
    """The detector runs on two intra-op threads: what its runs count is the process's CPU while they run, not
    the calling thread's alone (half of it)."""
    session = engine.detector.session
    blob = np.random.default_rng(0).random((4, 3, 640, 640), dtype=np.float32)
    name = session.get_inputs()[0].name
    session.run(None, {name: blob})
    counted = MODEL_CPU.labels("detector")._value.get()
    process, calling = time.process_time(), time.thread_time()
    for _ in range(3):
        session.run(None, {name: blob})
    process, calling = time.process_time() - process, time.thread_time() - calling
    counted = MODEL_CPU.labels("detector")._value.get() - counted
    assert 0.85 * process <= counted <= 1.02 * process, (counted, process, calling)
    if (os.cpu_count() or 1) > 1:
        assert counted > 1.3 * calling, (counted, calling)
