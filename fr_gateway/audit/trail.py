"""What one audit record says: the events the gateway appends for decisions and refusals, with the caller,
model and gallery version filled in, so every writer produces the same fields."""

from __future__ import annotations

import dataclasses
import enum
import getpass
import logging
import threading
import time
from collections.abc import Callable, Iterable

from fr_gateway.audit.keys import SIGNING_KEY, WriterKeys, issue
from fr_gateway.audit.log import ALREADY, AuditLog, Durable, Fsync, utc_now
from fr_gateway.config import Settings, audit_dir_for, audit_keys_for, audit_witness_for, local_auditor_keys_for
from fr_gateway.decision import Decision
from fr_gateway.metrics import REQUESTS, STAGE_SECONDS

log = logging.getLogger(__name__)



class Operation(enum.StrEnum):
    """What a record answers: an RPC of the contract (tests/test_contract.py keeps the two in step), health's or
    reflection's, or a client refused in the TLS handshake, before any RPC. Auditors filter on these names."""

    IDENTIFY = "Identify"
    IDENTIFY_STREAM = "IdentifyStream"
    VERIFY = "Verify"
    WATCH_DECISIONS = "WatchDecisions"
    GET_INFO = "GetInfo"
    ENROLL = "Enroll"
    ENROLL_STREAM = "EnrollStream"
    REMOVE = "Remove"
    ROTATE_KEYS = "RotateKeys"
    WATCH_ALERTS = "WatchAlerts"
    CREATE_WATCHLIST = "CreateWatchlist"
    LIST_WATCHLISTS = "ListWatchlists"
    ADD_ENTRY = "AddEntry"
    REMOVE_ENTRY = "RemoveEntry"
    ADJUDICATE = "Adjudicate"
    LIST_CAMERAS = "ListCameras"
    GET_ANALYTICS = "GetAnalytics"
    RECORD_VIEW = "RecordView"
    CHECK = "Check"
    WATCH = "Watch"
    SERVER_REFLECTION_INFO = "ServerReflectionInfo"
    TLS_HANDSHAKE = "TLS handshake"


OPERATIONS = tuple(operation.value for operation in Operation)




class Verdict(enum.Enum):
    """What a record says happened when it is not a face decision (those are `Decision`'s): a gallery or
    watchlist change, a key rotation, an operator's decision on an alert, a console user's look at personal data,
    a refused call. Auditors filter on these names."""

    ENROLLED = enum.auto()
    REPLACED = enum.auto()
    UNCHANGED = enum.auto()
    ERASED = enum.auto()
    NOT_ENROLLED = enum.auto()
    ROTATED = enum.auto()
    CREATED = enum.auto()
    CONFIRMED = enum.auto()
    DISMISSED = enum.auto()
    VIEWED = enum.auto()
    REFUSED = enum.auto()


# Every name a record's decision can hold
DECISIONS = (*Decision.__members__, *Verdict.__members__)


# The longest a caller-given text is written into a record or echoed in a status, in characters: NIK and camera
# id by their rules, the rest by what a legitimate caller needs. A caller can never make a record large.
FIELD_LIMITS = {"request_id": 128, "camera_id": 64, "nik": 16, "detail": 512, "on_behalf_of": 64}


def bounded(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with a note of how many more there were."""
    return text if len(text) <= limit else f"{text[:limit]}...(+{len(text) - limit} characters)"


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who made a call: the identity and role from the client certificate ("insecure" on a plaintext port), and
    the person at a Command Center console the call was made for, when the console names one."""

    identity: str
    role: str
    peer: str
    on_behalf_of: str = ""

    def acting_for(self, person: str) -> Caller:
        """This caller acting for a console's user, the name cut to what the audit keeps."""
        return dataclasses.replace(self, on_behalf_of=bounded(person, FIELD_LIMITS["on_behalf_of"]))

    @property
    def who(self) -> str:
        """The identity, with the console's user when there is one: "operator/console-1 for alice"."""
        return f"{self.identity} for {self.on_behalf_of}" if self.on_behalf_of else self.identity

    @classmethod
    def local(cls) -> Caller:
        """An operator running a command on the gateway's machine, with the store at hand."""
        return cls(f"local/{getpass.getuser()}", "admin", "local")

    @property
    def name(self) -> str:
        """The identity without its role: a camera's certificate names its camera id here."""
        return self.identity.partition("/")[2]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The answer to one audited operation; `status` is the gRPC status code name the caller received."""

    decision: Decision | Verdict
    status: str = "OK"
    reason: str = ""
    detail: str = ""
    nik: str = ""
    candidates: Iterable[tuple[str, float]] = ()
    score: float | None = None
    threshold: float | None = None
    # the watchlist alerts a face raised: (watchlist, entry id, score, alert id)
    alerts: Iterable[tuple[str, str, float, str]] = ()


@dataclasses.dataclass
class _Flood:
    """Refusals of one kind within one window: the first REFUSALS_PER_WINDOW are recorded one by one, the rest
    counted, with a few of their peers, into one summary record."""

    started: float
    seen: int = 0
    peers: set[str] = dataclasses.field(default_factory=set)

    @property
    def summarised(self) -> int:
        return max(0, self.seen - REFUSALS_PER_WINDOW)


REFUSALS_PER_WINDOW = 20
FLOOD_WINDOW_S = 10.0
SUMMARY_PEERS = 10


@dataclasses.dataclass(frozen=True)
class Recorded:
    """An audit record queued (none when audit is off): wait() returns once it is durable, timing the audit
    stage from the queueing, and counts it for the audit summary."""

    durable: Durable
    queued: float | None
    tally: Callable[[], None] | None

    def wait(self) -> None:
        self.durable.wait()
        if self.queued is not None:
            STAGE_SECONDS.labels("audit").observe(time.perf_counter() - self.queued)
        if self.tally is not None:
            self.tally()


class AuditTrail:
    """Appends one event per decision or refusal; with no log (audit switched off) it records nothing. A flood
    of refusals (garbage connections, a client over its limit) is recorded in counted summaries, so it cannot
    grow the log faster than decisions do."""

    def __init__(self, log: AuditLog | None, model: str, gallery_version: Callable[[], int]) -> None:
        self.log = log
        self._model = model
        self._gallery_version = gallery_version
        self._tally: Callable[[str, str], None] | None = None
        self._floods: dict[tuple[str, str], _Flood] = {}
        self._lock = threading.Lock()

    def record(self, caller: Caller, operation: Operation, outcome: Outcome, *, request_id: str = "",
               camera_id: str = "", started: float | None = None) -> None:
        """`started` is a time.perf_counter() value taken when the call arrived, for the latency field. Every
        decision and refusal passes here (or record_later), so this is also where they are counted for the
        metrics. Returns once the record is durable (as the log's policy has it)."""
        self.record_later(caller, operation, outcome, request_id=request_id, camera_id=camera_id,
                          started=started).wait()

    def record_later(self, caller: Caller, operation: Operation, outcome: Outcome, *, request_id: str = "",
                     camera_id: str = "", started: float | None = None) -> Recorded:
        """record, returning once the record is queued: the caller waits on what this returns before it acts on
        the decision, and the thread that made the decision need not wait for the disk."""
        REQUESTS.labels(operation, outcome.decision.name).inc()
        return self._queued(caller, operation, outcome, request_id, camera_id, started)

    def tally_to(self, tally: Callable[[str, str], None]) -> None:
        """Count each record written, by operation and decision, for the Command Center's audit summary."""
        self._tally = tally

    def _queued(self, caller: Caller, operation: Operation, outcome: Outcome, request_id: str = "",
                camera_id: str = "", started: float | None = None) -> Recorded:
        if self.log is None:
            return Recorded(ALREADY, None, None)
        queued = time.perf_counter()
        durable = self.log.append_later(self._event(caller, operation, outcome, request_id, camera_id, started))
        tally = self._tally
        return Recorded(durable, queued, None if tally is None else lambda: tally(operation, outcome.decision.name))

    def _event(self, caller: Caller, operation: Operation, outcome: Outcome, request_id: str,
               camera_id: str, started: float | None) -> dict:
        given = {"request_id": request_id, "camera_id": camera_id, "nik": outcome.nik, "detail": outcome.detail,
                 "on_behalf_of": caller.on_behalf_of}
        given = {field: bounded(text, FIELD_LIMITS[field]) for field, text in given.items()}
        return {
            "time": utc_now(), "caller": caller.identity, "role": caller.role, "peer": caller.peer,
            "operation": operation, "decision": outcome.decision.name, "status": outcome.status,
            "reason": outcome.reason, **given,
            "candidates": [{"nik": nik, "score": round(score, 4)} for nik, score in outcome.candidates],
            "alerts": [{"watchlist": watchlist, "entry_id": entry, "score": round(score, 4), "alert_id": alert}
                       for watchlist, entry, score, alert in outcome.alerts],
            "score": None if outcome.score is None else round(outcome.score, 4), "threshold": outcome.threshold,
            "model": self._model, "gallery_version": self._gallery_version(),
            "latency_ms": None if started is None else round((time.perf_counter() - started) * 1000, 2),
        }

    def refusal(self, caller: Caller, operation: Operation, status: str, detail: str, camera_id: str = "",
                started: float | None = None) -> None:
        now = time.monotonic()
        with self._lock:
            flood = self._floods.get((operation, status))
            ended = flood if flood is not None and now - flood.started >= FLOOD_WINDOW_S else None
            if flood is None or ended is not None:
                flood = self._floods[(operation, status)] = _Flood(now)
            flood.seen += 1
            if flood.summarised and len(flood.peers) < SUMMARY_PEERS:
                flood.peers.add(caller.peer)
        if ended is not None and ended.summarised:
            self._summary(operation, status, ended)
        if flood.summarised:
            REQUESTS.labels(operation, Verdict.REFUSED.name).inc()  # counted now, recorded in the window's summary
            return
        self.record(caller, operation, Outcome(Verdict.REFUSED, status=status, detail=detail), camera_id=camera_id,
                    started=started)

    def _summary(self, operation: Operation, status: str, flood: _Flood) -> None:
        peers = ", ".join(sorted(flood.peers)) + (", ..." if flood.summarised > len(flood.peers) else "")
        self._queued(Caller("summary", "", peers), operation, Outcome(
            Verdict.REFUSED, status=status, reason="SUMMARY", detail=f"{flood.summarised} more refusals like the "
            f"{REFUSALS_PER_WINDOW} recorded before them, within {FLOOD_WINDOW_S:.0f} s, from {peers}")).wait()

    def close(self) -> None:
        """Record what floods were summarising, then close the log."""
        with self._lock:
            floods, self._floods = self._floods, {}
        for (operation, status), flood in floods.items():
            if flood.summarised:
                self._summary(operation, status, flood)
        if self.log is not None:
            self.log.close()


def open_trail(settings: Settings, model: str, gallery_version: Callable[[], int], create_keys: bool) -> AuditTrail:
    """The audit trail the settings ask for; `create_keys` (plaintext mode and local commands only) makes
    missing keys, with the auditor's half beside the gateway's, instead of refusing to start."""
    if not settings.audit:
        log.warning("AUDIT OFF: decisions and refusals are not recorded")
        return AuditTrail(None, model, gallery_version)
    folder = audit_keys_for(settings)
    if create_keys and not (folder / SIGNING_KEY).exists():
        auditor = local_auditor_keys_for(settings)
        issue(folder, auditor)
        log.warning("created audit keys: the gateway's in %s, the auditor's in %s; in production the auditor "
                    "keeps theirs elsewhere (see `fr-gateway audit keys init`)", folder, auditor)
    witness_file = audit_witness_for(settings)
    if witness_file is None:
        log.warning("AUDIT WITNESS OFF: a log rolled back to an older checkpoint cannot be told from an intact one")
    return AuditTrail(AuditLog(audit_dir_for(settings), WriterKeys.load(folder), Fsync(settings.audit_fsync),
                               settings.audit_segment_mb * 2**20, settings.audit_checkpoint_s,
                               witness_file=witness_file), model, gallery_version)
