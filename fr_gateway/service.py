"""The gateway's operations in domain terms: identify, verify, enrol, remove. Each runs faces -> search ->
decision; the servicers only translate the contract to and from these calls."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from fr_gateway.config import Settings, key_file_for
from fr_gateway.decision import Decision, decide, decision_for
from fr_gateway.faces.batching import EmbeddingBatcher, Overloaded
from fr_gateway.faces.crops import CropKind, FaceCropper
from fr_gateway.faces.engine import FaceEngine, build_cropper, resolve_thresholds
from fr_gateway.faces.models import Thresholds
from fr_gateway.gallery.nik import validate_nik
from fr_gateway.gallery.store import TemplateStore
from fr_gateway.reasons import Problem, Reason
from fr_gateway.search.faiss_index import Candidate, FaissIndex
from fr_gateway.security.keys import KeyRing

EMBED_TIMEOUT_S = 30.0


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
class EnrollResult:
    nik: str
    enrolled: bool
    replaced: bool = False
    reason: Reason | None = None
    detail: str = ""


class GatewayService:
    def __init__(self, engine: FaceEngine, cropper: FaceCropper, thresholds: Thresholds, batcher: EmbeddingBatcher,
                 store: TemplateStore, index: FaissIndex, default_top_k: int, max_top_k: int) -> None:
        self.engine = engine
        self.cropper = cropper
        self.thresholds = thresholds
        self._batcher = batcher
        self._store = store
        self._index = index
        self._default_top_k = default_top_k
        self._max_top_k = max_top_k
        self._write_lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings, engine: FaceEngine) -> GatewayService:
        """Open (or create) the gallery's store, refusing another model's gallery, rebuild the index from it,
        and start the embedding micro-batcher."""
        keys = KeyRing.load(key_file_for(settings))
        store = TemplateStore(settings.gallery, engine.pack.fingerprint, engine.pack.name, keys, engine.embedder.dim)
        index = FaissIndex(engine.embedder.dim)
        for niks, templates in store.iter_templates():
            index.add(niks, templates)
        batcher = EmbeddingBatcher(engine.embedder, settings.batch_size, settings.batch_wait_ms, settings.queue_size)
        return cls(engine, build_cropper(settings, engine.detector), resolve_thresholds(settings, engine.pack),
                   batcher, store, index, settings.top_k, settings.max_top_k)

    def close(self) -> None:
        self._batcher.close()
        self._store.close()

    @property
    def gallery_size(self) -> int:
        return len(self._index)

    def _templates(self, *faces: FaceInput, enrolment: bool = False) -> list[np.ndarray]:
        """Crop and gate every face, then embed them together in one batch; every failure is a Problem."""
        crops = [self.cropper.crop(face.image, face.kind, enrolment=enrolment) for face in faces]
        try:
            pending = [self._batcher.submit(crop) for crop in crops]
            return [future.result(EMBED_TIMEOUT_S) for future in pending]
        except (Overloaded, FutureTimeout) as exc:
            raise Problem(Reason.GATEWAY_OVERLOADED, str(exc) or "embedding timed out") from exc

    def _enrolled_template(self, nik: str) -> np.ndarray:
        template = self._store.get(validate_nik(nik))
        if template is None:
            raise Problem(Reason.NIK_NOT_ENROLLED, f"NIK {nik} is not enrolled in this gallery")
        return template

    def identify(self, face: FaceInput, top_k: int = 0) -> IdentifyResult:
        threshold = self.thresholds.identify
        try:
            if top_k > self._max_top_k:
                raise Problem(Reason.ARGUMENT_INVALID, f"top_k {top_k} is above the maximum {self._max_top_k}")
            [template] = self._templates(face)
        except Problem as problem:
            return IdentifyResult(decision_for(problem.reason), threshold, self.gallery_size,
                                  reason=problem.reason, detail=problem.detail)
        candidates = self._index.search(template, top_k or self._default_top_k)
        best = candidates[0].score if candidates else None
        return IdentifyResult(decide(best, threshold), threshold, self.gallery_size, candidates)

    def verify(self, probe: FaceInput, nik: str | None = None, reference: FaceInput | None = None) -> VerifyResult:
        """Compare the probe with an enrolled NIK's template or with a second face."""
        threshold = self.thresholds.verify
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
        """Store first (the source of truth), then index: an acknowledged enrolment is always in the store."""
        try:
            validate_nik(nik)
            [template] = self._templates(face, enrolment=True)
        except Problem as problem:
            return EnrollResult(nik, False, reason=problem.reason, detail=problem.detail)
        with self._write_lock:
            replaced = self._store.upsert(nik, template, attributes)
            self._index.upsert(nik, template)
        return EnrollResult(nik, True, replaced)

    def remove(self, nik: str) -> bool:
        """Erase the NIK's template from store and index; False when it was not enrolled."""
        validate_nik(nik)
        with self._write_lock:
            removed = self._store.delete(nik)
            self._index.remove(nik)
        return removed
