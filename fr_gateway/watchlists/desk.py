"""The watchlists' one write path and the alerts they raise. A change writes the store (the acknowledgement),
then the in-memory index, then its audit record, whoever asks: a servicer or the CLI. An alert is committed
with its sealed evidence and its webhook deliveries in one transaction before anyone is told of it."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import re
import threading
import time
from collections.abc import Sequence

import cv2
import numpy as np

from fr_gateway.audit.log import parse_time
from fr_gateway.audit.trail import AuditTrail, Caller, Operation, Outcome, Verdict
from fr_gateway.config import Settings, webhook_secret_for
from fr_gateway.faces.models import ModelPack
from fr_gateway.metrics import ALERTS
from fr_gateway.security.keys import KeyRing
from fr_gateway.watchlists.index import Hit, WatchlistIndex
from fr_gateway.watchlists.store import (
    AlertRecord,
    Entry,
    ListCounts,
    Watchlist,
    WatchlistError,
    WatchlistStore,
    new_alert_id,
    new_entry_id,
)
from fr_gateway.watchlists.thresholds import choose, list_fpir
from fr_gateway.watchlists.webhooks import WebhookSender, load_secret

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TEXT_LIMITS = {"reason": 512, "owner": 128, "label": 256, "case_reference": 128, "note": 1024}
PRIORITIES = {1: "LOW", 2: "NORMAL", 3: "HIGH"}
NORMAL = 2
ADJUDICATIONS = {"CONFIRMED": Verdict.CONFIRMED, "DISMISSED": Verdict.DISMISSED}
SWEEP_S = 60.0  # how often crops past their retention are looked for
EVIDENCE_QUALITY = 90  # JPEG quality of a kept crop: enough for an operator to compare faces


class UnknownAlert(WatchlistError):
    status = "NOT_FOUND"


class AlreadyAdjudicated(WatchlistError):
    status = "FAILED_PRECONDITION"


@dataclasses.dataclass(frozen=True)
class Sighting:
    """Where and when a face was seen, for its alerts."""

    camera_id: str = ""
    track_id: str = ""
    request_id: str = ""


@dataclasses.dataclass(frozen=True)
class ListStatus:
    """A list as the operator sees it: what matches now, what its threshold stands for, how its alerts fared."""

    watchlist: Watchlist
    entries: int
    templates: int
    counts: ListCounts
    expected_fpir: float | None
    expected_false_alerts_per_day: float | None


def rfc3339(moment: float | None) -> str:
    if moment is None:
        return ""
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_expiry(text: str, what: str, now: float) -> float | None:
    """RFC 3339 (a date alone means its midnight UTC); empty for none; one already past is refused."""
    if not text:
        return None
    try:
        moment = parse_time(text)
    except ValueError:
        raise WatchlistError(f"{what} {text[:64]!r} is not an RFC 3339 time or date") from None
    if moment.timestamp() <= now:
        raise WatchlistError(f"{what} {text} has passed already")
    return moment.timestamp()


def _text(name: str, value: str, required: bool = False) -> str:
    if required and not value.strip():
        raise WatchlistError(f"{name} is required")
    if len(value) > TEXT_LIMITS[name]:
        raise WatchlistError(f"{name} has {len(value)} characters; at most {TEXT_LIMITS[name]}")
    return value


def evidence_of(crop: np.ndarray) -> bytes:
    """The aligned crop the recogniser saw, as JPEG."""
    return cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, EVIDENCE_QUALITY])[1].tobytes()


class WatchlistDesk:
    def __init__(self, store: WatchlistStore, impostors: np.ndarray | None, identify_threshold: float,
                 retention_s: float, endpoints: Sequence[str], faces_per_day: int,
                 sender: WebhookSender | None = None) -> None:
        self.store = store
        self.index = WatchlistIndex(store.dim)
        self._impostors = impostors
        self._identify_threshold = identify_threshold
        self._retention_s = retention_s
        self._endpoints = tuple(endpoints)
        self._faces_per_day = faces_per_day
        self._sender = sender
        self._trail: AuditTrail | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sweeper: threading.Thread | None = None

    @classmethod
    def open(cls, settings: Settings, pack: ModelPack, keys: KeyRing, dim: int, identify_threshold: float,
             deliver: bool = True) -> WatchlistDesk:
        """The gallery's watchlists, sealed with its key ring, loaded; with `deliver`, webhooks delivered and old
        evidence erased in the background (a serving gateway, not a command)."""
        store = WatchlistStore(settings.gallery, keys, pack.fingerprint, dim)
        sender = None
        if deliver and settings.webhooks:
            sender = WebhookSender(store, load_secret(webhook_secret_for(settings)), settings.webhook_ca).start()
        desk = cls(store, pack.shipped_impostors, identify_threshold, settings.alert_retention_days * 86400,
                   settings.webhooks, settings.faces_per_day, sender)
        desk.index.load(store.watchlists(), list(store.entries()))
        if deliver:
            desk._sweeper = threading.Thread(target=desk._sweep_every, name="evidence-retention", daemon=True)
            desk._sweeper.start()
        return desk

    def audit_to(self, trail: AuditTrail) -> None:
        self._trail = trail

    def _audit(self, operation: Operation, caller: Caller, verdict: Verdict, detail: str,
               started: float | None = None, status: str = "OK") -> None:
        if self._trail is not None:
            self._trail.record(caller, operation, Outcome(verdict, status=status, detail=detail), started=started)

    def refused(self, operation: Operation, caller: Caller, error: WatchlistError,
                started: float | None = None) -> None:
        """A change turned away is audited too, with the status the caller got."""
        self._audit(operation, caller, Verdict.REFUSED, str(error), started, error.status)

    def create(self, name: str, reason: str, owner: str, caller: Caller, *, expires: str = "",
               threshold: float | None = None, target_fpir: float | None = None, expected_templates: int = 0,
               priority: int = 0, started: float | None = None) -> Watchlist:
        if not NAME_PATTERN.match(name):
            raise WatchlistError(f"watchlist name {name[:64]!r}: 1-64 letters, digits, '.', '_' or '-'")
        if priority not in (0, *PRIORITIES):
            raise WatchlistError(f"priority {priority} is not one of {sorted(PRIORITIES)}")
        now = time.time()
        chosen = choose(self._impostors, self._identify_threshold, threshold, target_fpir, expected_templates)
        watchlist = Watchlist(name, _text("reason", reason, True), _text("owner", owner, True), now, caller.identity,
                              parse_expiry(expires, "expires", now), chosen.value, chosen.origin,
                              chosen.false_match_rate, priority or NORMAL)
        with self._lock:
            self.store.create(watchlist)
            self.index.set_list(watchlist)
        self._audit(Operation.CREATE_WATCHLIST, caller, Verdict.CREATED,
                    f"watchlist {name} (owner {owner}; threshold {chosen.value:.4f}, {chosen.origin})", started)
        return watchlist

    def add_entry(self, watchlist: str, label: str, case_reference: str, templates: np.ndarray, caller: Caller, *,
                  expires: str = "", started: float | None = None) -> Entry:
        """Store the entry and its templates (the store refuses an unknown list), then match them."""
        entry = Entry(new_entry_id(), watchlist, _text("label", label, True), _text("case_reference", case_reference),
                      parse_expiry(expires, "expires", time.time()), np.asarray(templates, np.float32))
        with self._lock:
            self.store.add_entry(entry, caller.identity)
            self.index.add(entry)
        self._audit(Operation.ADD_ENTRY, caller, Verdict.ENROLLED,
                    f"watchlist {watchlist} entry {entry.entry_id} ({len(entry.templates)} templates)", started)
        return entry

    def remove_entry(self, watchlist: str, entry_id: str, caller: Caller, started: float | None = None) -> bool:
        self.store.watchlist(watchlist)
        with self._lock:
            removed = self.store.remove_entry(watchlist, entry_id)
            self.index.remove(entry_id)
        self._audit(Operation.REMOVE_ENTRY, caller, Verdict.ERASED if removed else Verdict.NOT_ENROLLED,
                    f"watchlist {watchlist} entry {entry_id[:32]}", started)
        return removed

    def check(self, templates: np.ndarray) -> list[list[Hit]]:
        """The hits of each face, for the search stage's micro-batch."""
        return self.index.search(templates)

    def raise_alerts(self, hits: list[Hit], crop: np.ndarray, sighting: Sighting) -> tuple[list[Hit], bytes]:
        """One alert per hit, committed with its sealed evidence and webhook deliveries; the hits come back with
        their alert ids, and the evidence as kept."""
        raised = []
        now = time.time()
        evidence = evidence_of(crop)
        for hit in hits:
            alert = AlertRecord(new_alert_id(), now, hit.watchlist, hit.entry_id, sighting.camera_id,
                                sighting.track_id, sighting.request_id, hit.score, hit.threshold, evidence, None)
            body = json.dumps({
                "alert_id": alert.alert_id, "time": rfc3339(now), "camera_id": alert.camera_id,
                "track_id": alert.track_id, "request_id": alert.request_id, "watchlist": hit.watchlist,
                "entry_id": hit.entry_id, "label": hit.label, "case_reference": hit.case_reference,
                "score": round(hit.score, 4), "threshold": round(hit.threshold, 4),
                "priority": PRIORITIES.get(hit.priority, "NORMAL")}).encode()
            self.store.add_alert(alert, now + self._retention_s, [(endpoint, body) for endpoint in self._endpoints])
            ALERTS.labels(hit.watchlist).inc()
            raised.append(dataclasses.replace(hit, alert_id=alert.alert_id, raised_at=now))
        if self._sender is not None:
            self._sender.notify()
        return raised, evidence

    def adjudicate(self, alert_id: str, adjudication: str, note: str, caller: Caller,
                   started: float | None = None) -> AlertRecord:
        if adjudication not in ADJUDICATIONS:
            raise WatchlistError(f"adjudication must be one of {', '.join(ADJUDICATIONS)}")
        _text("note", note)
        alert = self.store.alert(alert_id[:32])
        if alert is None:
            raise UnknownAlert(f"no alert {alert_id[:32]!r}")
        if not self.store.adjudicate(alert.alert_id, adjudication, caller.who):
            raise AlreadyAdjudicated(f"alert {alert.alert_id} was adjudicated already")
        self._audit(Operation.ADJUDICATE, caller, ADJUDICATIONS[adjudication],
                    f"alert {alert.alert_id} (watchlist {alert.watchlist} entry {alert.entry_id}, camera "
                    f"{alert.camera_id}, score {alert.score:.4f}): {note}", started)
        return dataclasses.replace(alert, adjudication=adjudication)

    def statuses(self) -> list[ListStatus]:
        counts = self.store.counts()
        statuses = []
        for watchlist in self.store.watchlists():
            entries, templates = self.index.size(watchlist.name)
            fpir = None
            if watchlist.false_match_rate is not None and self._impostors is not None:
                fpir = list_fpir(watchlist.false_match_rate, len(self._impostors), templates)
            statuses.append(ListStatus(watchlist, entries, templates, counts.get(watchlist.name, ListCounts()), fpir,
                                       None if fpir is None else fpir * self._faces_per_day))
        return statuses

    def sweep(self, now: float | None = None) -> int:
        """Erase the alert crops whose retention has ended."""
        erased = self.store.erase_old_evidence(time.time() if now is None else now)
        if erased:
            log.info("erased the face crops of %d alerts past their retention", erased)
        return erased

    def _sweep_every(self) -> None:
        while True:
            self.sweep()
            if self._stopping.wait(SWEEP_S):
                return

    def close(self) -> None:
        self._stopping.set()
        if self._sweeper is not None:
            self._sweeper.join()
        if self._sender is not None:
            self._sender.close()
        self.store.close()
