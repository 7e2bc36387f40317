"""The gateway's operations in domain terms: identify, verify, enrol, remove. Each runs faces -> search ->
decision; the servicers only translate the contract to and from these calls."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from fr_gateway.batching import MicroBatcher, Overloaded
from fr_gateway.calibration import Thresholds
from fr_gateway.config import Settings, key_file_for
from fr_gateway.decision import Decision, decide, decision_for
from fr_gateway.faces.crops import CropKind, FaceCropper
from fr_gateway.faces.detector import DetectedFace
from fr_gateway.faces.engine import FaceEngine, RecogniserLayout, build_cropper, resolve_thresholds
from fr_gateway.gallery.nik import validate_nik
from fr_gateway.gallery.store import Enrolment, TemplateDamaged, TemplateStore, attributes_problem
from fr_gateway.metrics import FACES_EMBEDDED
from fr_gateway.reasons import Problem, Reason
from fr_gateway.search.backend import SearchIndex, SearchUnavailable
from fr_gateway.search.faiss_index import INDEX_CLASSES, Candidate, IndexSpec
from fr_gateway.search.milvus_index import MilvusIndex, MilvusSpec
from fr_gateway.search.snapshot import load_snapshot, save_snapshot

log = logging.getLogger(__name__)

STAGE_TIMEOUT_S = 30.0
SEARCH_BATCH = 64  # queries searched together: FAISS and the re-rank's one store read amortise over them
DETECT_BATCH = 8  # LOOSE photos detected together: the model gains little past 8 on a CPU, and each waits longer


@dataclasses.dataclass(frozen=True)
class FaceInput:
    image: bytes
    kind: CropKind


@dataclasses.dataclass(frozen=True)
class IdentifyResult:
    decision: Decision
    threshold: float
    gallery_size: int
    candidates: list[Candidate] = dataclasses.field(default_factory=list)
    reason: Reason | None = None
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    decision: Decision
    threshold: float
    score: float = 0.0
    reason: Reason | None = None
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class EnrollRecord:
    nik: str
    face: FaceInput
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EnrollResult:
    """enrolled: stored and indexed; unchanged: already enrolled from the same photo, so skipped."""

    nik: str
    enrolled: bool
    replaced: bool = False
    unchanged: bool = False
    reason: Reason | None = None
    detail: str = ""

    @property
    def decision(self) -> str:
        """One word for the outcome, as the audit log records it."""
        if not self.enrolled:
            return "REJECTED"
        return "UNCHANGED" if self.unchanged else "REPLACED" if self.replaced else "ENROLLED"


@dataclasses.dataclass(frozen=True)
class Batching:
    """The micro-batching stages' knobs: the recogniser's batch size and wait, and the queue bound of each (their
    defaults are the settings')."""

    batch_size: int
    wait_ms: float
    queue_size: int


def milvus_spec(settings: Settings) -> MilvusSpec | None:
    """The Milvus collection the settings name, or None for the in-process FAISS index."""
    if settings.search_backend not in ("faiss", "milvus"):
        raise ValueError(f"search_backend {settings.search_backend!r}: choose faiss or milvus")
    if settings.search_backend == "faiss":
        return None
    if not settings.milvus_uri:
        raise ValueError("search_backend milvus needs milvus_uri (http://HOST:PORT of milvus-lite or a cluster)")
    return MilvusSpec(settings.milvus_uri, settings.milvus_collection, settings.milvus_index_type,
                      settings.milvus_token, settings.milvus_metric)


TURNS = (0, 1, 2, 3)  # quarter turns of an enrolment photo; the detector's best face says which is upright
# the thumbnail side the turns are compared at: right for all 472 turned sample photos at 320, 256 and 192
# pixels, at 14.5 ms for the four looks at 192 (20 at 320)
ORIENTATION_SIDE = 192


def _best_score(found: list[DetectedFace]) -> float:
    """The detector scores the upright face highest: it did for each of 118 sample photos turned each way."""
    return max((face.score for face in found), default=0.0)


class GatewayService:
    """Decoding runs on the request's thread; detection, embedding and search each run on worker threads of
    their own (the recogniser on one per core) that take whatever the concurrent requests have queued, so the
    models and FAISS see batches."""

    def __init__(self, engine: FaceEngine, cropper: FaceCropper, thresholds: Thresholds, batching: Batching,
                 store: TemplateStore, spec: IndexSpec, default_top_k: int, max_top_k: int,
                 milvus: MilvusSpec | None = None) -> None:
        self.engine = engine
        self.cropper = cropper
        self.thresholds = thresholds
        self._batching = batching
        self._detector = MicroBatcher("detect", engine.detector.detect_many, DETECT_BATCH, 0, batching.queue_size)
        self._embedder = MicroBatcher("embed", self._embed_batch, batching.batch_size, batching.wait_ms,
                                      batching.queue_size, workers=engine.layout.workers)
        self._searcher = MicroBatcher("search", self._search_batch, SEARCH_BATCH, 0, batching.queue_size,
                                      expected=(SearchUnavailable,))
        self._store = store
        self._spec = spec
        self._milvus = milvus
        self._default_top_k = default_top_k
        self._max_top_k = max_top_k
        self._write_lock = threading.Lock()
        self._closed = False
        self._index: SearchIndex | None = None

    @classmethod
    def open(cls, settings: Settings, engine: FaceEngine, load_index: bool = True) -> GatewayService:
        """Open (or create) the gallery's store, refusing another model's gallery, start the micro-batching
        stages and, unless the caller does it later (a server reporting NOT_SERVING meanwhile), load
        the index."""
        store = TemplateStore.open(settings.gallery, key_file_for(settings), engine.pack.fingerprint, engine.pack.name,
                                   engine.embedder.dim)
        batching = Batching(settings.batch_size or engine.layout.batch, settings.batch_wait_ms, settings.queue_size)
        spec = IndexSpec(kind=settings.index_kind, nlist=settings.ivf_lists, nprobe=settings.ivf_nprobe,
                         rerank=settings.rerank, ef_search=settings.hnsw_ef_search)
        service = cls(engine, build_cropper(settings), resolve_thresholds(settings, engine.pack),
                      batching, store, spec, settings.top_k, settings.max_top_k, milvus_spec(settings))
        if load_index:
            service.load_index()
        return service

    def _snapshot_header(self, kind: str) -> dict:
        return {"store_version": self._store.version, "count": len(self._store), "dim": self._store.dim,
                "model_sha256": self.engine.pack.fingerprint, "kind": kind}

    @property
    def ready(self) -> bool:
        """The index is loaded: searches and enrolments can be served."""
        return self._index is not None

    def load_index(self) -> None:
        """The shared Milvus collection when configured; else the saved FAISS index when it reflects the store's
        current version, or a rebuild from the store (minutes for millions of templates)."""
        size = len(self._store)
        if self._milvus is not None:
            self._index = MilvusIndex.connect(self._milvus, self._store.dim, self._store.model_fingerprint)
            if (held := len(self._index)) != size:
                log.warning("Milvus collection %s holds %d templates, the store %d: run `fr-gateway gallery sync`",
                            self._milvus.collection, held, size)
            return
        kind = self._spec.resolve(size)
        options = {"spec": self._spec, "size": size, "exact": self._store.get_many}
        saved = load_snapshot(self._store.directory, self._snapshot_header(kind), self._store.keys)
        if saved is not None:
            self._index = INDEX_CLASSES[kind].from_bytes(self._store.dim, saved, **options)
            return
        log.info("building a %s index of %d templates", kind, size)
        index = INDEX_CLASSES[kind](self._store.dim, **options)
        if not index.trained:
            index.train(self._training_sample(self._spec.training_size(size, kind)))
        for niks, templates in self._store.iter_templates():
            index.add(niks, templates)
        if damaged := len(self._store.damaged):
            log.error("%d damaged templates were left out of the index (Verify answers TEMPLATE_DAMAGED for their "
                      "NIKs); re-enrol them from their photos", damaged)
        self._index = index  # ready only once whole
        self.save_index()

    def _training_sample(self, wanted: int) -> np.ndarray:
        chunks, have = [], 0
        for _, templates in self._store.iter_templates():
            chunks.append(templates)
            have += len(templates)
            if have >= wanted:
                break
        return np.concatenate(chunks)[:wanted]

    def save_index(self) -> None:
        """Snapshot a FAISS index beside the store; a Milvus collection keeps itself."""
        if self._milvus is not None:
            return
        with self._write_lock:
            header = self._snapshot_header(self._index.kind)
            save_snapshot(self._index.to_bytes(), self._store.directory, header, self._store.keys)

    def close(self) -> None:
        """Stop the stages, save the index for a fast next start, close the store; once."""
        if self._closed:
            return
        self._closed = True
        self._detector.close()
        self._embedder.close()
        self._searcher.close()
        if self.ready:
            self.save_index()
            self._index.close()
        self._store.close()

    @property
    def recogniser_layout(self) -> RecogniserLayout:
        """How the recogniser runs for this gateway: the engine's layout with this gateway's batch size."""
        return self.engine.layout._replace(batch=self._batching.batch_size)

    @property
    def search_backend(self) -> str:
        """Which index answers searches and how, in words for the start-up log."""
        return self._index.describe() if self.ready else "not loaded"

    @property
    def gallery_size(self) -> int:
        return len(self._index) if self.ready else 0

    @property
    def gallery_version(self) -> int:
        """The store's version: it grows with every enrolment or erasure, so an audit record pins the gallery."""
        return self._store.version

    def _embed_batch(self, crops: list[np.ndarray]) -> np.ndarray:
        templates = self.engine.embedder.embed(crops)
        FACES_EMBEDDED.inc(len(crops))
        return templates

    def _search_batch(self, queries: list[tuple[np.ndarray, int]]) -> list[list[Candidate]]:
        """One index search for every queued query, as deep as the deepest asked."""
        found = self._index.search_many(np.stack([template for template, _ in queries]),
                                        max(top_k for _, top_k in queries))
        return [candidates[:top_k] for candidates, (_, top_k) in zip(found, queries, strict=True)]

    @staticmethod
    def _through(stage: MicroBatcher, items: list, deadline: float | None) -> list:
        """Pass items through a micro-batching stage; a saturated gateway is a Problem like any other. Past the
        caller's deadline (time.monotonic()) the queued items are withdrawn: nobody waits for them."""
        wait = STAGE_TIMEOUT_S if deadline is None else max(0.0, min(STAGE_TIMEOUT_S, deadline - time.monotonic()))
        pending = []
        try:
            pending = [stage.submit(item) for item in items]
            return [future.result(wait) for future in pending]
        except (Overloaded, FutureTimeout) as exc:
            for future in pending:
                future.cancel()
            raise Problem(Reason.GATEWAY_OVERLOADED, str(exc) or "no time left before the deadline") from exc
        except SearchUnavailable as exc:
            raise Problem(Reason.SEARCH_UNAVAILABLE, str(exc)) from exc

    def _embed(self, crops: list[np.ndarray], deadline: float | None = None) -> list[np.ndarray]:
        return self._through(self._embedder, crops, deadline)

    def _crops(self, faces: Sequence[FaceInput], *, enrolment: bool = False,
               deadline: float | None = None) -> list[np.ndarray | Problem]:
        """Each face decoded, the LOOSE photos among them detected together, then gated and aligned: per face a
        crop ready to embed, or the Problem that stopped it. The decoded images hold their share of the decode
        budget until they are cropped."""
        with contextlib.ExitStack() as held:
            return self._crops_held(faces, enrolment, deadline, held)

    def _crops_held(self, faces: Sequence[FaceInput], enrolment: bool, deadline: float | None,
                    held: contextlib.ExitStack) -> list[np.ndarray | Problem]:
        crops: list[np.ndarray | Problem] = []
        for face in faces:
            try:
                crops.append(self.cropper.decode(face.image, face.kind, enrolment=enrolment, held=held))
            except Problem as problem:
                crops.append(problem)
        loose = [position for position, (face, crop) in enumerate(zip(faces, crops, strict=True))
                 if face.kind is CropKind.LOOSE and not isinstance(crop, Problem)]
        try:
            detections = self._through(self._detector, [crops[position] for position in loose], deadline)
            if enrolment:
                detections = self._turn_upright(crops, loose, detections)
        except Problem as problem:
            detections = [problem] * len(loose)
        for position, found in zip(loose, detections, strict=True):
            if isinstance(found, Problem):
                crops[position] = found
                continue
            try:
                crops[position] = self.cropper.choose(crops[position], found, enrolment=enrolment)
            except Problem as problem:
                crops[position] = problem
        return crops

    def _turn_upright(self, crops: list[np.ndarray | Problem], loose: list[int], detections: list) -> list:
        """An enrolment photo scanned upside down or on its side is turned upright before alignment: aligned as it
        is, it enrols a template of nobody (measured: cosine -0.05 to the upright photo's) and the person's
        upright photos then find no match. The detector looks at the four quarter turns of a thumbnail; when it
        scores a face highest in a turned one, the photo is turned and detected again. These runs go to the
        detector directly: the photos were admitted by its queue already."""
        detector = self.engine.detector
        looks = detector.detect_many([np.ascontiguousarray(np.rot90(detector.thumbnail(crops[position],
                                                                                      ORIENTATION_SIDE), turn))
                                      for position in loose for turn in TURNS])
        detections = list(detections)
        for number, position in enumerate(loose):
            scores = [_best_score(found) for found in looks[len(TURNS) * number:len(TURNS) * (number + 1)]]
            if turn := TURNS[int(np.argmax(scores))]:
                crops[position] = np.ascontiguousarray(np.rot90(crops[position], turn))
                [detections[number]] = detector.detect_many([crops[position]])
        return detections

    def _templates(self, *faces: FaceInput, deadline: float | None = None) -> list[np.ndarray]:
        """Crop and gate every face, then embed them together; the first failure is raised as its Problem."""
        crops = self._crops(faces, deadline=deadline)
        if problems := [crop for crop in crops if isinstance(crop, Problem)]:
            raise problems[0]
        return self._embed(crops, deadline)

    def _enrolled_template(self, nik: str) -> np.ndarray:
        try:
            template = self._store.get(validate_nik(nik))
        except TemplateDamaged as exc:
            raise Problem(Reason.TEMPLATE_DAMAGED, str(exc)) from exc
        if template is None:
            raise Problem(Reason.NIK_NOT_ENROLLED, f"NIK {nik} is not enrolled in this gallery")
        return template

    def identify(self, face: FaceInput, top_k: int = 0, deadline: float | None = None) -> IdentifyResult:
        threshold = self.thresholds.identify.value
        try:
            if top_k > self._max_top_k:
                raise Problem(Reason.ARGUMENT_INVALID, f"top_k {top_k} is above the maximum {self._max_top_k}")
            [template] = self._templates(face, deadline=deadline)
            [candidates] = self._through(self._searcher, [(template, top_k or self._default_top_k)], deadline)
        except Problem as problem:
            return IdentifyResult(decision_for(problem.reason), threshold, self.gallery_size,
                                  reason=problem.reason, detail=problem.detail)
        best = candidates[0].score if candidates else None
        return IdentifyResult(decide(best, threshold), threshold, self.gallery_size, candidates)

    def verify(self, probe: FaceInput, nik: str | None = None, reference: FaceInput | None = None) -> VerifyResult:
        """Compare the probe with an enrolled NIK's template or with a second face."""
        threshold = self.thresholds.verify.value
        try:
            if nik is not None:
                reference_template = self._enrolled_template(nik)
                [probe_template] = self._templates(probe)
            elif reference is not None:
                probe_template, reference_template = self._templates(probe, reference)
            else:
                raise Problem(Reason.ARGUMENT_INVALID, "give a reference: an enrolled NIK or a reference face")
        except Problem as problem:
            return VerifyResult(decision_for(problem.reason), threshold, reason=problem.reason,
                                detail=problem.detail)
        score = float(np.dot(probe_template, reference_template))
        return VerifyResult(decide(score, threshold), threshold, score)

    def enroll(self, nik: str, face: FaceInput, attributes: Mapping[str, str]) -> EnrollResult:
        return next(self.enroll_many([EnrollRecord(nik, face, attributes)]))

    def enroll_many(self, records: Iterable[EnrollRecord], *, skip_unchanged: bool = False,
                    chunk: int = 32) -> Iterator[EnrollResult]:
        """The one enrolment pipeline (CLI, Enroll, EnrollStream): validate the NIK, crop one dominant face
        through the enrolment gate, embed a chunk at a time, store the chunk in one transaction (the
        acknowledgement), then index it. One result per record, in order; a bad record never stops the rest."""
        records = iter(records)
        while batch := tuple(itertools.islice(records, chunk)):
            yield from self._enroll_chunk(batch, skip_unchanged)

    def _enroll_chunk(self, batch: tuple[EnrollRecord, ...], skip_unchanged: bool) -> list[EnrollResult]:
        results: list[EnrollResult | None] = [None] * len(batch)
        wanted: list[tuple[int, str]] = []
        for position, record in enumerate(batch):
            try:
                validate_nik(record.nik)
                if why := attributes_problem(record.attributes):
                    raise Problem(Reason.ARGUMENT_INVALID, why)
            except Problem as problem:
                results[position] = EnrollResult(record.nik, False, reason=problem.reason, detail=problem.detail)
                continue
            source = hashlib.sha256(record.face.image).hexdigest()
            if skip_unchanged and self._store.source_of(record.nik) == source:
                results[position] = EnrollResult(record.nik, True, unchanged=True)
            else:
                wanted.append((position, source))
        accepted: list[tuple[int, np.ndarray, str]] = []
        crops = self._crops([batch[position].face for position, _ in wanted], enrolment=True)
        for (position, source), crop in zip(wanted, crops, strict=True):
            if isinstance(crop, Problem):
                results[position] = EnrollResult(batch[position].nik, False, reason=crop.reason, detail=crop.detail)
            else:
                accepted.append((position, crop, source))
        if accepted:
            try:
                templates = self._embed([crop for _, crop, _ in accepted])
            except Problem as problem:
                for position, _, _ in accepted:
                    results[position] = EnrollResult(batch[position].nik, False, reason=problem.reason,
                                                     detail=problem.detail)
                return results
            enrolments = [Enrolment(batch[p].nik, t, batch[p].attributes, source)
                          for (p, _, source), t in zip(accepted, templates, strict=True)]
            with self._write_lock:
                replaced = self._store.upsert_many(enrolments)
                existed: dict[str, bool] = {}  # per NIK: in the gallery before this chunk (a NIK may recur in it)
                latest: dict[str, np.ndarray] = {}
                for item, was_there in zip(enrolments, replaced, strict=True):
                    existed.setdefault(item.nik, was_there)
                    latest[item.nik] = item.template
                for nik in (nik for nik, was_there in existed.items() if was_there):
                    self._index.remove(nik)
                self._index.add(list(latest), np.stack(list(latest.values())))
            for (position, _, _), was_there in zip(accepted, replaced, strict=True):
                results[position] = EnrollResult(batch[position].nik, True, replaced=was_there)
        return results

    def remove(self, nik: str) -> bool:
        """Erase the NIK's template from store and index; False when it was not enrolled."""
        validate_nik(nik)
        with self._write_lock:
            removed = self._store.delete(nik)
            self._index.remove(nik)
        return removed
