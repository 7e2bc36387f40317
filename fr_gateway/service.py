"""The gateway's operations in domain terms: identify, verify, enrol, remove. Each runs faces -> search ->
decision; the servicers only translate the contract to and from these calls."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from fr_gateway.audit.trail import AuditTrail, Caller, Operation
from fr_gateway.batching import MicroBatcher, Overloaded, finished, then, time_left, wait_for
from fr_gateway.calibration import Thresholds
from fr_gateway.changes import EnrollResult, GalleryWrites
from fr_gateway.config import Settings
from fr_gateway.decision import Decision, decide, decision_for
from fr_gateway.faces.crops import CropKind, FaceCropper
from fr_gateway.faces.detector import DetectedFace
from fr_gateway.faces.engine import FaceEngine, RecogniserLayout, build_cropper, resolve_thresholds
from fr_gateway.gallery.nik import validate_nik
from fr_gateway.gallery.store import Enrolment, TemplateDamaged, attributes_problem
from fr_gateway.metrics import FACES_EMBEDDED
from fr_gateway.reasons import UNARY_STATUS_NAMES, Problem, Reason
from fr_gateway.search.base import Candidate, SearchUnavailable
from fr_gateway.watchlists.desk import Sighting, WatchlistDesk
from fr_gateway.watchlists.index import Hit
from fr_gateway.watchlists.store import Entry

log = logging.getLogger(__name__)

STAGE_TIMEOUT_S = 30.0
SEARCH_BATCH = 64  # queries searched together: FAISS and the re-rank's one store read amortise over them
MAX_ENTRY_PHOTOS = 16  # photos of one watchlist entry
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
    alerts: list[Hit] = dataclasses.field(default_factory=list)  # the watchlist hits, each with its alert
    evidence: bytes = b""  # the crop the alerts keep, as JPEG

    @classmethod
    def of_problem(cls, problem: Problem, threshold: float, gallery_size: int) -> IdentifyResult:
        """The answer for a face that was not compared, and why."""
        return cls(decision_for(problem.reason), threshold, gallery_size, reason=problem.reason,
                   detail=problem.detail)


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    decision: Decision
    threshold: float
    score: float = 0.0
    reason: Reason | None = None
    detail: str = ""

    @classmethod
    def of_problem(cls, problem: Problem, threshold: float) -> VerifyResult:
        """The answer for a comparison that was not made, and why."""
        return cls(decision_for(problem.reason), threshold, reason=problem.reason, detail=problem.detail)


@dataclasses.dataclass(frozen=True)
class EnrollRecord:
    nik: str
    face: FaceInput
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EntryResult:
    """A watchlist entry added from the photos that gave a template (None when none did), and the Problem of
    each photo that did not, by its position."""

    entry: Entry | None
    rejects: list[tuple[int, Problem]]


@dataclasses.dataclass(frozen=True)
class Batching:
    """The micro-batching stages' knobs: the recogniser's batch size and wait, and the queue bound of each (their
    defaults are the settings')."""

    batch_size: int
    wait_ms: float
    queue_size: int


TURNS = (0, 1, 2, 3)  # quarter turns of an enrolment photo; the detector's best face says which is upright
# the thumbnail side the turns are compared at: right for all 472 turned sample photos at 320, 256 and 192
# pixels, at 14.5 ms for the four looks at 192 (20 at 320)
ORIENTATION_SIDE = 192


def kept(problem: Problem) -> Problem:
    """A Problem kept as a value (a face's answer) rather than raised. Its traceback would hold the frames that
    hold the list that holds it: a reference cycle that keeps every decoded image in those frames until Python's
    cycle collector happens to run (measured: 2.3 GB still held after a burst of 6000x6600 photos)."""
    return problem.with_traceback(None)


def _best_score(found: list[DetectedFace]) -> float:
    """The detector scores the upright face highest: it did for each of 118 sample photos turned each way."""
    return max((face.score for face in found), default=0.0)


class GatewayService:
    """Decoding runs on the request's thread; detection, embedding and search each run on worker threads of
    their own (the recogniser on one per core) that take whatever the concurrent requests have queued, so the
    models and FAISS see batches."""

    def __init__(self, engine: FaceEngine, cropper: FaceCropper, thresholds: Thresholds, batching: Batching,
                 gallery: GalleryWrites, watchlists: WatchlistDesk, default_top_k: int, max_top_k: int) -> None:
        self.engine = engine
        self.cropper = cropper
        self.thresholds = thresholds
        self._batching = batching
        self._detector = MicroBatcher("detect", engine.detector.detect_many, DETECT_BATCH, 0, batching.queue_size)
        self._embedder = MicroBatcher("embed", self._embed_batch, batching.batch_size, batching.wait_ms,
                                      batching.queue_size, workers=engine.layout.workers)
        self._searcher = MicroBatcher("search", self._search_batch, SEARCH_BATCH, 0, batching.queue_size)
        self.gallery = gallery
        self.watchlists = watchlists
        self._default_top_k = default_top_k
        self._max_top_k = max_top_k
        self._closed = False

    @classmethod
    def open(cls, settings: Settings, engine: FaceEngine, load_index: bool = True,
             serving: bool = True) -> GatewayService:
        """Open (or create) the gallery's store, refusing another model's gallery, and its watchlists (their
        webhooks delivered and old evidence erased only when `serving`), start the micro-batching stages and,
        unless the caller does it later (a server reporting NOT_SERVING meanwhile), load the index."""
        gallery = GalleryWrites.open(settings, engine.pack.fingerprint, engine.pack.name, engine.embedder.dim)
        thresholds = resolve_thresholds(settings, engine.pack)
        try:
            watchlists = WatchlistDesk.open(settings, engine.pack, gallery.store.keys, engine.embedder.dim,
                                            thresholds.identify.value, deliver=serving)
        except BaseException:
            gallery.close()
            raise
        gallery.seal_beside(watchlists.store)
        batching = Batching(settings.batch_size or engine.layout.batch, settings.batch_wait_ms, settings.queue_size)
        service = cls(engine, build_cropper(settings), thresholds, batching, gallery, watchlists, settings.top_k,
                      settings.max_top_k)
        if load_index:
            service.load_index()
        return service

    @property
    def ready(self) -> bool:
        """The index is loaded: searches and enrolments can be served."""
        return self.gallery.index is not None

    def load_index(self) -> None:
        self.gallery.load_index()

    def audit_to(self, trail: AuditTrail) -> None:
        """Every gallery and watchlist change from now on is audited in `trail`."""
        self.gallery.audit_to(trail)
        self.watchlists.audit_to(trail)

    def close(self) -> None:
        """Stop the stages, save the index for a fast next start, close the store; once."""
        if self._closed:
            return
        self._closed = True
        self._detector.close()
        self._embedder.close()
        self._searcher.close()
        self.gallery.close()
        self.watchlists.close()

    @property
    def recogniser_layout(self) -> RecogniserLayout:
        """How the recogniser runs for this gateway: the engine's layout with this gateway's batch size."""
        return self.engine.layout._replace(batch=self._batching.batch_size)

    @property
    def search_backend(self) -> str:
        """Which index answers searches and how, in words for the start-up log."""
        return self.gallery.index.describe() if self.ready else "not loaded"

    @property
    def gallery_size(self) -> int:
        return len(self.gallery.index) if self.ready else 0

    @property
    def gallery_version(self) -> int:
        """The store's version: it grows with every enrolment or erasure, so an audit record pins the gallery."""
        return self.gallery.store.version

    def _embed_batch(self, crops: list[np.ndarray]) -> np.ndarray:
        templates = self.engine.embedder.embed(crops)
        FACES_EMBEDDED.inc(len(crops))
        return templates

    def _search_batch(self, queries: list[tuple[np.ndarray, int]]) -> list[tuple[list[Candidate] | Problem,
                                                                               list[Hit]]]:
        """One index search for every queued query, as deep as the deepest asked, and one check of the
        watchlists: those are in memory, so they answer even when the gallery's index cannot be reached (then
        each query's candidates are that Problem)."""
        templates = np.stack([template for template, _ in queries])
        hits = self.watchlists.check(templates)
        try:
            found = self.gallery.index.search_many(templates, max(top_k for _, top_k in queries))
        except SearchUnavailable as exc:
            log.warning("search batch of %d failed: %s", len(queries), exc)
            return [(Problem(Reason.SEARCH_UNAVAILABLE, str(exc)), face_hits) for face_hits in hits]
        return [(candidates[:top_k], face_hits)
                for candidates, face_hits, (_, top_k) in zip(found, hits, queries, strict=True)]

    @staticmethod
    def _through(stage: MicroBatcher, items: list, deadline: float | None) -> list:
        """Pass items through a micro-batching stage; a saturated gateway is a Problem like any other. Past the
        caller's deadline (time.monotonic()) the queued items are withdrawn: nobody waits for them."""
        wait = time_left(deadline, STAGE_TIMEOUT_S)
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
                crops.append(kept(problem))
        loose = [position for position, (face, crop) in enumerate(zip(faces, crops, strict=True))
                 if face.kind is CropKind.LOOSE and not isinstance(crop, Problem)]
        try:
            detections = self._through(self._detector, [crops[position] for position in loose], deadline)
            if enrolment:
                detections = self._turn_upright(crops, loose, detections)
        except Problem as problem:
            detections = [kept(problem)] * len(loose)
        for position, found in zip(loose, detections, strict=True):
            if isinstance(found, Problem):
                crops[position] = found
                continue
            try:
                crops[position] = self.cropper.choose(crops[position], found, enrolment=enrolment)
            except Problem as problem:
                crops[position] = kept(problem)
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

    def _gated_crops(self, *faces: FaceInput, deadline: float | None = None) -> list[np.ndarray]:
        """Every face cropped and gated; the first failure is raised as its Problem."""
        crops = self._crops(faces, deadline=deadline)
        if problems := [crop for crop in crops if isinstance(crop, Problem)]:
            raise Problem(problems[0].reason, problems[0].detail)  # a new one: this frame holds the first
        return crops

    def _templates(self, *faces: FaceInput, deadline: float | None = None) -> list[np.ndarray]:
        """Crop and gate every face, then embed them together."""
        return self._embed(self._gated_crops(*faces, deadline=deadline), deadline)

    def _enrolled_template(self, nik: str) -> np.ndarray:
        try:
            template = self.gallery.store.get(validate_nik(nik))
        except TemplateDamaged as exc:
            raise Problem(Reason.TEMPLATE_DAMAGED, str(exc)) from exc
        if template is None:
            raise Problem(Reason.NIK_NOT_ENROLLED, f"NIK {nik} is not enrolled in this gallery")
        return template

    def identify(self, face: FaceInput, top_k: int = 0, deadline: float | None = None,
                 sighting: Sighting | None = None) -> IdentifyResult:
        """identify_later's answer, waited for here (at most until the deadline)."""
        answer = self.identify_later(face, top_k, sighting)
        try:
            return wait_for(answer, deadline, STAGE_TIMEOUT_S)
        except Overloaded as exc:
            return self.overloaded(exc)

    def overloaded(self, exc: Overloaded) -> IdentifyResult:
        """The answer for a face the gateway had no room or no time for."""
        return IdentifyResult.of_problem(Problem(Reason.GATEWAY_OVERLOADED, str(exc)),
                                         self.thresholds.identify.value, self.gallery_size)

    def identify_later(self, face: FaceInput, top_k: int = 0,
                       sighting: Sighting | None = None) -> Future[IdentifyResult]:
        """The gallery's answer for the face, and an alert for each watchlist entry it matches. The face is decoded
        on the caller's thread; then each stage's worker hands it to the next (detector, recogniser, search) and
        the search's worker decides, so no thread waits for it. Whoever waits for the answer cancels it when the
        caller's deadline passes (wait_for)."""
        try:
            if top_k > self._max_top_k:
                raise Problem(Reason.ARGUMENT_INVALID, f"top_k {top_k} is above the maximum {self._max_top_k}")
            crop = self._crop_later(face)
        except Problem as problem:
            return finished(self._unanswered(problem))
        template = self._embedder.submit_after(crop, lambda image: image)
        searched = self._searcher.submit_after(template, lambda found: (found, top_k or self._default_top_k))
        return then(searched, lambda done: self._decided(done, crop, sighting))

    def _crop_later(self, face: FaceInput) -> Future[np.ndarray]:
        """The face ready to embed: an ALIGNED crop at once, a LOOSE photo's face once the detector's worker has
        found it (and aligned and gated it, on that thread). The decoded photo holds its share of the decode budget
        until then."""
        held = contextlib.ExitStack()
        try:
            image = self.cropper.decode(face.image, face.kind, held=held)
        except BaseException:
            held.close()
            raise
        if face.kind is CropKind.ALIGNED:
            held.close()
            return finished(image)
        detected = self._detector.submit_after(finished(image), lambda photo: photo)
        cropped = then(detected, lambda done: self.cropper.choose(image, done.result()))
        cropped.add_done_callback(lambda _: held.close())
        return cropped

    def _unanswered(self, problem: Problem) -> IdentifyResult:
        return IdentifyResult.of_problem(problem, self.thresholds.identify.value, self.gallery_size)

    def _decided(self, searched: Future[tuple[list[Candidate] | Problem, list[Hit]]], crop: Future[np.ndarray],
                 sighting: Sighting | None) -> IdentifyResult:
        """The decision on the search's answer, with the alerts of its watchlist hits (raised whatever the gallery
        answered); or the Problem that stopped the face on the way (read, not raised again: a traceback here would
        hold every frame of the stages' threads that led to it)."""
        failure = searched.exception()
        if isinstance(failure, Overloaded):
            return self.overloaded(failure)
        if isinstance(failure, Problem):
            return self._unanswered(failure)
        candidates, hits = searched.result()
        if isinstance(candidates, Problem):
            return self._alerted(self._unanswered(candidates), hits, crop.result(), sighting)
        threshold = self.thresholds.identify.value
        best = candidates[0].score if candidates else None
        result = IdentifyResult(decide(best, threshold), threshold, self.gallery_size, candidates)
        return self._alerted(result, hits, crop.result(), sighting)

    def _alerted(self, result: IdentifyResult, hits: list[Hit], crop: np.ndarray,
                 sighting: Sighting | None) -> IdentifyResult:
        """The result with the alerts its watchlist hits raised."""
        if not hits:
            return result
        alerts, evidence = self.watchlists.raise_alerts(hits, crop, sighting or Sighting())
        return dataclasses.replace(result, alerts=alerts, evidence=evidence)

    def add_watchlist_entry(self, watchlist: str, label: str, case_reference: str, expires: str,
                            faces: Sequence[FaceInput], caller: Caller, started: float | None = None) -> EntryResult:
        """An entry from the photos: each through the enrolment gate, as a KTP-el photo, and the templates of
        those that pass kept together under one entry id."""
        if not 0 < len(faces) <= MAX_ENTRY_PHOTOS:
            raise Problem(Reason.ARGUMENT_INVALID, f"give 1 to {MAX_ENTRY_PHOTOS} photos, not {len(faces)}")
        self.watchlists.store.watchlist(watchlist)  # an unknown list is refused before any photo is looked at
        crops = self._crops(faces, enrolment=True)
        rejects = [(position, crop) for position, crop in enumerate(crops) if isinstance(crop, Problem)]
        for position, problem in rejects:
            if problem.reason in UNARY_STATUS_NAMES:  # a malformed photo refuses the request, as in Enroll
                raise Problem(problem.reason, f"photo {position}: {problem.detail}")
        accepted = [crop for crop in crops if not isinstance(crop, Problem)]
        if not accepted:
            return EntryResult(None, rejects)
        templates = np.stack(self._embed(accepted))
        entry = self.watchlists.add_entry(watchlist, label, case_reference, templates, caller, expires=expires,
                                          started=started)
        return EntryResult(entry, rejects)

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
            return VerifyResult.of_problem(problem, threshold)
        score = float(np.dot(probe_template, reference_template))
        return VerifyResult(decide(score, threshold), threshold, score)

    def enroll(self, nik: str, face: FaceInput, attributes: Mapping[str, str], caller: Caller,
               started: float | None = None) -> EnrollResult:
        """One enrolment, answered as a unary call is (its audit record carries the status a bad photo gets)."""
        [result] = self.enroll_many([EnrollRecord(nik, face, attributes)], caller, unary=True, started=started)
        return result

    def enroll_many(self, records: Iterable[EnrollRecord], caller: Caller, *, skip_unchanged: bool = False,
                    unary: bool = False, started: float | None = None, chunk: int = 32) -> Iterator[EnrollResult]:
        """The one enrolment pipeline (CLI, Enroll, EnrollStream): validate the NIK, crop one dominant face
        through the enrolment gate, embed a chunk at a time, store the chunk in one transaction (the
        acknowledgement), then index it, then audit every record of it. One result per record, in order; a bad
        record never stops the rest."""
        records = iter(records)
        while batch := tuple(itertools.islice(records, chunk)):
            results = self._enroll_chunk(batch, skip_unchanged)
            for result in results:
                self.gallery.audit(Operation.ENROLL, caller, result, unary, started)
            yield from results

    def _enroll_chunk(self, batch: tuple[EnrollRecord, ...], skip_unchanged: bool) -> list[EnrollResult]:
        results: list[EnrollResult | None] = [None] * len(batch)
        wanted: list[tuple[int, str]] = []
        for position, record in enumerate(batch):
            try:
                validate_nik(record.nik)
                if why := attributes_problem(record.attributes):
                    raise Problem(Reason.ARGUMENT_INVALID, why)
            except Problem as problem:
                results[position] = EnrollResult.of_problem(record.nik, problem)
                continue
            source = hashlib.sha256(record.face.image).hexdigest()
            if skip_unchanged and self.gallery.store.source_of(record.nik) == source:
                results[position] = EnrollResult(record.nik, True, unchanged=True)
            else:
                wanted.append((position, source))
        accepted: list[tuple[int, np.ndarray, str]] = []
        crops = self._crops([batch[position].face for position, _ in wanted], enrolment=True)
        for (position, source), crop in zip(wanted, crops, strict=True):
            if isinstance(crop, Problem):
                results[position] = EnrollResult.of_problem(batch[position].nik, crop)
            else:
                accepted.append((position, crop, source))
        if accepted:
            try:
                templates = self._embed([crop for _, crop, _ in accepted])
            except Problem as problem:
                for position, _, _ in accepted:
                    results[position] = EnrollResult.of_problem(batch[position].nik, problem)
                return results
            enrolments = [Enrolment(batch[p].nik, t, batch[p].attributes, source)
                          for (p, _, source), t in zip(accepted, templates, strict=True)]
            replaced, behind = self.gallery.enrol(enrolments)
            for (position, _, _), was_there in zip(accepted, replaced, strict=True):
                results[position] = EnrollResult(batch[position].nik, True, replaced=was_there,
                                                 reason=Reason.INDEX_BEHIND if behind else None, detail=behind)
        return results
