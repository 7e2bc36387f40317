"""The one write path of a gallery: every change (enrolment, re-enrolment, erasure) writes the store first (the
acknowledgement), then the search index, then its audit record, whoever asked for it: a servicer, the
enrolment pipeline or the CLI. A change the store committed but the index did not take is its own outcome,
INDEX_BEHIND, told and audited like any other."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Protocol

import numpy as np

from fr_gateway.audit.trail import AuditTrail, Caller, Operation, Outcome, Verdict
from fr_gateway.config import Settings, key_file_for
from fr_gateway.decision import Decision
from fr_gateway.gallery.nik import validate_nik
from fr_gateway.gallery.store import Enrolment, TemplateStore
from fr_gateway.reasons import Problem, Reason, reason_name, status_name
from fr_gateway.search.base import SearchIndex, SearchUnavailable
from fr_gateway.search.manager import GalleryIndex

log = logging.getLogger(__name__)

SYNC_HINT = "run `fr-gateway gallery sync`"


@dataclasses.dataclass(frozen=True)
class EnrollResult:
    """enrolled: stored (the index may be behind: reason INDEX_BEHIND); unchanged: already enrolled from the
    same photo, so skipped."""

    nik: str
    enrolled: bool
    replaced: bool = False
    unchanged: bool = False
    reason: Reason | None = None
    detail: str = ""

    @property
    def decision(self) -> Decision | Verdict:
        """The outcome as the audit log records it."""
        if not self.enrolled:
            return Decision.REJECTED
        return Verdict.UNCHANGED if self.unchanged else Verdict.REPLACED if self.replaced else Verdict.ENROLLED

    @classmethod
    def of_problem(cls, nik: str, problem: Problem) -> EnrollResult:
        """The answer for a record that was not enrolled, and why."""
        return cls(nik, False, reason=problem.reason, detail=problem.detail)


@dataclasses.dataclass(frozen=True)
class RemoveResult:
    """removed: the store held the NIK and erased it; a reason says why nothing was erased (a malformed NIK)
    or, with INDEX_BEHIND, that the index has not taken the erasure yet."""

    nik: str
    removed: bool
    reason: Reason | None = None
    detail: str = ""

    @property
    def decision(self) -> Decision | Verdict:
        """The outcome as the audit log records it."""
        if self.reason not in (None, Reason.INDEX_BEHIND):
            return Decision.REJECTED
        return Verdict.ERASED if self.removed else Verdict.NOT_ENROLLED


class SealedBeside(Protocol):
    """A store sealed with the gallery's key ring."""

    def reseal(self) -> int: ...

    def key_ids_in_use(self) -> set[str]: ...


@dataclasses.dataclass(frozen=True)
class Rotation:
    """A key rotation done: the new active key, the templates sealed again under it, the keys dropped."""

    active: str
    resealed: int
    retired: tuple[str, ...] = ()

    def text(self) -> str:
        retired = f"; retired {', '.join(self.retired)}" if self.retired else ""
        return f"new active key {self.active}; resealed {self.resealed} records{retired}"


class GalleryWrites:
    """A store with its index and audit trail, changed one write at a time so that store, index and snapshot
    agree."""

    def __init__(self, store: TemplateStore, gallery_index: GalleryIndex) -> None:
        self.store = store
        self._gallery_index = gallery_index
        self._lock = threading.Lock()
        self._trail: AuditTrail | None = None
        self._beside: list[SealedBeside] = []

    def seal_beside(self, other: SealedBeside) -> None:
        """Another store sealed with this gallery's key ring (its watchlists): a key rotation re-seals it too, and
        never retires a key it still uses."""
        self._beside.append(other)

    @classmethod
    def open(cls, settings: Settings, model_fingerprint: str, model_name: str, dim: int | None = None,
             create: bool = True) -> GalleryWrites:
        """The settings' store (refusing another model's) and the index backend they name, not yet loaded."""
        store = TemplateStore.open(settings.gallery, key_file_for(settings), model_fingerprint, model_name, dim,
                                   create=create)
        try:
            return cls(store, GalleryIndex.for_settings(settings, store))
        except ValueError:
            store.close()
            raise

    def audit_to(self, trail: AuditTrail) -> None:
        """Every change from now on writes its audit record to `trail`."""
        self._trail = trail

    @property
    def index(self) -> SearchIndex | None:
        """The loaded index; None until `load_index()` has finished."""
        return self._gallery_index.index

    def load_index(self) -> None:
        self._gallery_index.load()

    def close(self) -> None:
        """Save the index for a fast next start, let go of it, close the store."""
        with self._lock:
            self._gallery_index.close()
        self.store.close()

    def audit(self, operation: Operation, caller: Caller, result: EnrollResult | RemoveResult, unary: bool = False,
              started: float | None = None) -> None:
        """The change's audit record, with the status a unary call answers it with."""
        if self._trail is not None:
            self._trail.record(caller, operation, Outcome(
                result.decision, status=status_name(result.reason, unary), nik=result.nik,
                reason=reason_name(result.reason), detail=result.detail), started=started)

    def enrol(self, enrolments: list[Enrolment]) -> tuple[list[bool], str]:
        """Store the enrolments in one transaction (the acknowledgement), then index them. Returns, per
        enrolment, whether it replaced a template, and what went wrong when the index did not take them ("" when
        it did); the caller audits each record with its own result."""
        with self._lock:
            replaced = self.store.upsert_many(enrolments)
            existed: dict[str, bool] = {}  # per NIK: in the gallery before this chunk (a NIK may recur in it)
            latest: dict[str, np.ndarray] = {}
            for item, was_there in zip(enrolments, replaced, strict=True):
                existed.setdefault(item.nik, was_there)
                latest[item.nik] = item.template
            try:
                for nik in (nik for nik, was_there in existed.items() if was_there):
                    self.index.remove(nik)
                self.index.add(list(latest), np.stack(list(latest.values())))
            except SearchUnavailable as exc:
                log.warning("%d enrolments stored but not indexed: %s", len(latest), exc)
                return replaced, f"stored, not yet searchable: {exc}; {SYNC_HINT}"
        return replaced, ""

    def rotate_keys(self, caller: Caller, retire: bool = False, started: float | None = None) -> Rotation:
        """A new active data key, every template sealed again under it and, with `retire`, the keys nothing is
        sealed with any more dropped; then the saved index sealed under the new key, then the audit record.
        The key file is written first: a crash while resealing leaves records under keys the file still holds.
        Reads go on meanwhile: the key ring holds every key until the resealing is done."""
        with self._lock:
            keys = self.store.keys
            active = keys.add_active()
            keys.save()
            resealed = self.store.reseal() + sum(other.reseal() for other in self._beside)
            in_use = self.store.key_ids_in_use().union(*(other.key_ids_in_use() for other in self._beside))
            retired = tuple(sorted(set(keys.ids) - in_use - {active})) if retire else ()
            for old in retired:
                keys.retire(old)
            if retired:
                keys.save()
            self._gallery_index.save()
        rotation = Rotation(active, resealed, retired)
        if self._trail is not None:
            self._trail.record(caller, Operation.ROTATE_KEYS, Outcome(Verdict.ROTATED, detail=rotation.text()),
                               started=started)
        return rotation

    def remove(self, nik: str, caller: Caller, *, unary: bool = False, started: float | None = None) -> RemoveResult:
        """Erase the NIK's template from the store (the acknowledgement), then from the index, then audit it."""
        try:
            validate_nik(nik)
        except Problem as problem:
            result = RemoveResult(nik, False, problem.reason, problem.detail)
        else:
            with self._lock:
                removed = self.store.delete(nik)
                try:
                    self.index.remove(nik)
                    result = RemoveResult(nik, removed)
                except SearchUnavailable as exc:
                    log.warning("NIK %s erased from the store but not from the index: %s", nik, exc)
                    result = RemoveResult(nik, removed, Reason.INDEX_BEHIND,
                                          f"erased from the store, the index still holds it: {exc}; {SYNC_HINT}")
        self.audit(Operation.REMOVE, caller, result, unary, started)
        return result
