"""gRPC servicers: translate frgateway.v1 messages to GatewayService calls and results back to messages and
status codes, and audit each decision. Unary calls answer malformed input with a status; streams answer
with a decision and go on."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future

import grpc

from fr_gateway import __version__
from fr_gateway.analytics import Aggregates, day_text
from fr_gateway.audit.log import AuditUnavailable, parse_time, utc_now
from fr_gateway.audit.trail import FIELD_LIMITS, AuditTrail, Caller, Operation, Outcome, Recorded, Verdict, bounded
from fr_gateway.batching import Overloaded, arrival, finished, settled, then
from fr_gateway.calibration import Threshold
from fr_gateway.changes import EnrollResult
from fr_gateway.contract import (
    command_center_pb2,
    command_center_pb2_grpc,
    face_pb2,
    gallery_pb2,
    gallery_pb2_grpc,
    recognition_pb2,
    recognition_pb2_grpc,
    watchlists_pb2,
    watchlists_pb2_grpc,
)
from fr_gateway.decision import Decision
from fr_gateway.faces.crops import CropKind
from fr_gateway.reasons import UNARY_STATUS_NAMES, Problem, Reason, reason_name, status_name
from fr_gateway.security.keys import KeyRingError
from fr_gateway.server.decisions import Cameras, Hub, alert_filter, decision_filter
from fr_gateway.server.guard import Refused, current_caller
from fr_gateway.service import (
    STAGE_TIMEOUT_S,
    EnrollRecord,
    FaceInput,
    GatewayService,
    IdentifyResult,
    VerifyResult,
)
from fr_gateway.watchlists.desk import ListStatus, Sighting, rfc3339
from fr_gateway.watchlists.index import Hit
from fr_gateway.watchlists.store import WatchlistError

log = logging.getLogger(__name__)

# Status for unary calls, by reason; reasons not listed are answered in the response itself.
UNARY_STATUS = {reason: grpc.StatusCode[name] for reason, name in UNARY_STATUS_NAMES.items()}
LOOSE_KINDS = (face_pb2.CROP_KIND_UNSPECIFIED, face_pb2.LOOSE)


def crop_kind(face: face_pb2.Face) -> CropKind:
    return CropKind.LOOSE if face.kind in LOOSE_KINDS else CropKind.ALIGNED


def face_input(face: face_pb2.Face) -> FaceInput:
    return FaceInput(bytes(face.image), crop_kind(face))


def request_id_of(
        request: recognition_pb2.IdentifyRequest | recognition_pb2.VerifyRequest) -> tuple[str, Problem | None]:
    """The caller's request id (a new one when empty), and the Problem that refuses the call when the id is
    longer than the audit keeps: then the id is cut, with a note of how much more there was, wherever it is
    answered or recorded, so no caller can make a large answer or record with it."""
    limit = FIELD_LIMITS["request_id"]
    if len(request.request_id) > limit:
        return bounded(request.request_id, limit), Problem(
            Reason.ARGUMENT_INVALID, f"request_id has {len(request.request_id)} characters; at most {limit} are kept")
    return request.request_id or uuid.uuid4().hex, None


def threshold_info(threshold: Threshold) -> recognition_pb2.ThresholdInfo:
    info = recognition_pb2.ThresholdInfo(threshold=threshold.value, origin=threshold.origin, data=threshold.data)
    if threshold.point is not None:
        point = threshold.point
        info.operating_point.CopyFrom(recognition_pb2.OperatingPoint(
            false_metric=point.false_metric, false_rate=point.false_rate, negatives=point.negatives,
            other_metric=point.other_metric, other_rate=point.other_rate, positives=point.positives,
            target=point.target))
    return info


def reason_pb(reason: Reason | None) -> int:
    return face_pb2.Reason.Value(reason.name) if reason else face_pb2.REASON_UNSPECIFIED


def decision_pb(decision: Decision) -> int:
    return face_pb2.Decision.Value(decision.name)


def unary_status(reason: Reason | None, detail: str) -> tuple[grpc.StatusCode, str] | None:
    """The status a unary call answers with for this reason, if it is one answered by a status."""
    return (UNARY_STATUS[reason], f"{reason.name}: {detail}") if reason in UNARY_STATUS else None


def abort_if_unary_status(context: grpc.ServicerContext, reason: Reason | None, detail: str) -> None:
    if status := unary_status(reason, detail):
        context.abort(*status)


def unaudited_status(failure: AuditUnavailable) -> tuple[grpc.StatusCode, str]:
    """A decision that cannot be audited is not given: UNAVAILABLE."""
    return grpc.StatusCode.UNAVAILABLE, f"no decision without an audit record: {failure}"


@contextlib.contextmanager
def audit_or_unavailable(context: grpc.ServicerContext) -> Iterator[None]:
    """A decision that cannot be audited is not given: UNAVAILABLE."""
    try:
        yield
    except AuditUnavailable as exc:
        context.abort(*unaudited_status(exc))


def hit_pb(hit: Hit) -> watchlists_pb2.WatchlistHit:
    return watchlists_pb2.WatchlistHit(
        watchlist=hit.watchlist, entry_id=hit.entry_id, label=hit.label, case_reference=hit.case_reference,
        score=hit.score, threshold=hit.threshold, priority=hit.priority, alert_id=hit.alert_id)


def watchlist_info(status: ListStatus) -> watchlists_pb2.WatchlistInfo:
    watchlist = status.watchlist
    return watchlists_pb2.WatchlistInfo(
        name=watchlist.name, reason=watchlist.reason, owner=watchlist.owner, created=rfc3339(watchlist.created_at),
        expires=rfc3339(watchlist.expires_at), priority=watchlist.priority, entries=status.entries,
        templates=status.templates, threshold=watchlist.threshold, threshold_origin=watchlist.threshold_origin,
        false_match_rate=watchlist.false_match_rate, expected_fpir=status.expected_fpir,
        expected_false_alerts_per_day=status.expected_false_alerts_per_day, alerts=status.counts.alerts,
        confirmed=status.counts.confirmed, dismissed=status.counts.dismissed, created_by=watchlist.created_by)


def audited(trail: AuditTrail, context: grpc.ServicerContext, operation: Operation, outcome: Outcome,
            caller: Caller | None = None, **fields: object) -> None:
    """Append the decision's audit record, of the current caller unless another is given."""
    with audit_or_unavailable(context):
        trail.record(caller or current_caller(), operation, outcome, **fields)


async def _events(hub: Hub, wants) -> AsyncIterator:
    """A subscriber's events until it hangs up (gRPC then cancels its call)."""
    with hub.subscribe(wants) as subscription:
        while True:
            yield await subscription.next()


@dataclasses.dataclass(frozen=True)
class Answer:
    """A face's answer, made by the worker that decided it: the response, and its audit record, queued; the
    caller's thread waits for that record before the response leaves or anyone is told."""

    result: IdentifyResult
    response: recognition_pb2.IdentifyResponse
    recorded: Recorded
    started: float


@dataclasses.dataclass(frozen=True)
class InFlight:
    """One face on its way: the service's result (cancelled when the caller gives up before the decision is
    under way), and the answer made from it, given once its audit record is durable (the caller's thread then
    wakes once for it)."""

    result: Future[IdentifyResult]
    answer: Future[Answer]
    request: recognition_pb2.IdentifyRequest
    request_id: str
    started: float


class RecognitionServicer(recognition_pb2_grpc.RecognitionServicer):
    """Identify, IdentifyStream and the two watches are coroutines on the server's event loop: no thread is held
    for a call or a face. Up to `stream_window` crops of a stream are on their way at once, and their answers
    leave in order."""

    def __init__(self, service: GatewayService, trail: AuditTrail,
                 decisions: Hub[recognition_pb2.DecisionEvent], alerts: Hub[watchlists_pb2.Alert], cameras: Cameras,
                 aggregates: Aggregates, stream_window: int) -> None:
        self._service = service
        self._trail = trail
        self._decisions = decisions
        self._alerts = alerts
        self._cameras = cameras
        self._aggregates = aggregates
        self._window = max(1, stream_window)

    @staticmethod
    def _check_camera(request: recognition_pb2.IdentifyRequest, caller: Caller) -> None:
        """A camera speaks only for itself: its certificate's camera id, or none (then the certificate's)."""
        if caller.role != "camera":
            return
        if not request.camera_id:
            request.camera_id = caller.name
        elif request.camera_id != caller.name:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, f"camera {caller.name} may not send camera_id "
                          f"{bounded(request.camera_id, FIELD_LIMITS['camera_id'])!r}", caller, request.camera_id)

    def _identify_later(self, request: recognition_pb2.IdentifyRequest, caller: Caller, unary: bool) -> InFlight:
        """The face sent on its way from the calling thread (which decodes it); the worker that decides it also
        makes its answer and queues its audit record."""
        started = time.perf_counter()
        self._check_camera(request, caller)
        request_id, refused = request_id_of(request)
        if refused:
            result = finished(IdentifyResult.of_problem(refused, self._service.thresholds.identify.value,
                                                        self._service.gallery_size))
        else:
            result = self._service.identify_later(face_input(request.face), request.top_k,
                                                  Sighting(request.camera_id, request.track_id, request_id))
        answer = then(result, lambda done: self._answer(done.result(), request, request_id, caller, unary, started))
        return InFlight(result, settled(answer, lambda made: made.recorded.durable), request, request_id, started)

    async def _sent_off(self, request: recognition_pb2.IdentifyRequest, caller: Caller, unary: bool) -> InFlight:
        """_identify_later, decoding where it costs the other streams least: an ALIGNED crop (112x112 pixels;
        any other size is refused from its header) on the event loop, a LOOSE photo (up to the pixel limit) on a
        thread, so that a large one holds up no other stream's reading or answers."""
        if crop_kind(request.face) is CropKind.ALIGNED:
            return self._identify_later(request, caller, unary)
        return await asyncio.get_running_loop().run_in_executor(None, self._identify_later, request, caller, unary)

    def _answer(self, result: IdentifyResult, request: recognition_pb2.IdentifyRequest, request_id: str,
                caller: Caller, unary: bool, started: float) -> Answer:
        response = recognition_pb2.IdentifyResponse(
            request_id=request_id,
            camera_id=request.camera_id,
            candidates=[recognition_pb2.Candidate(nik=c.nik, score=c.score) for c in result.candidates],
            decision=decision_pb(result.decision),
            threshold=result.threshold,
            reason=reason_pb(result.reason),
            detail=result.detail,
            gallery_size=result.gallery_size,
            model_fingerprint=self._service.engine.pack.fingerprint,
            track_id=request.track_id,
            watchlist_hits=[hit_pb(hit) for hit in result.alerts],
        )
        log.debug("identify %s camera=%s decision=%s", response.request_id, request.camera_id,
                  result.decision.name)
        recorded = self._trail.record_later(caller, Operation.IDENTIFY, Outcome(
            result.decision, status=status_name(result.reason, unary), reason=reason_name(result.reason),
            detail=result.detail, candidates=[(c.nik, c.score) for c in result.candidates],
            threshold=result.threshold, alerts=[(h.watchlist, h.entry_id, h.score, h.alert_id) for h in result.alerts]),
            request_id=response.request_id, camera_id=request.camera_id, started=started)
        self._cameras.face(request.camera_id)
        self._aggregates.face(request.camera_id, request.track_id, result.decision.name, reason_name(result.reason))
        return Answer(result, response, recorded, started)

    async def _answered(self, face: InFlight, context: grpc.aio.ServicerContext, caller: Caller,
                        unary: bool) -> Answer:
        """The face's answer once its audit record is durable (none is given without one: UNAVAILABLE), then
        told to the watchers. Past the call's deadline (or STAGE_TIMEOUT_S) a face not yet decided is answered
        GATEWAY_OVERLOADED."""
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        try:
            try:
                answer = await arrival(face.answer, deadline, STAGE_TIMEOUT_S, work=face.result)
            except Overloaded as exc:
                answer = self._answer(self._service.overloaded(exc), face.request, face.request_id, caller, unary,
                                      face.started)
                # shielded: the records written with this one share its durable, which a caller hanging up here
                # must not cancel
                await asyncio.shield(asyncio.wrap_future(answer.recorded.durable))
            answer.recorded.wait()  # durable by now: this times the audit stage and counts the record
        except AuditUnavailable as exc:
            await context.abort(*unaudited_status(exc))
        response = answer.response
        if self._decisions.watched:
            self._decisions.publish(recognition_pb2.DecisionEvent(
                time=utc_now(), camera_id=response.camera_id, track_id=response.track_id,
                request_id=response.request_id, decision=response.decision, candidates=response.candidates,
                threshold=response.threshold, reason=response.reason,
                latency_ms=(time.perf_counter() - answer.started) * 1000))
        for raised, hit in zip(answer.result.alerts, response.watchlist_hits, strict=True):  # stamped as stored
            self._alerts.publish(watchlists_pb2.Alert(
                alert_id=hit.alert_id, time=rfc3339(raised.raised_at), camera_id=response.camera_id,
                track_id=response.track_id, request_id=response.request_id, hit=hit, evidence=answer.result.evidence))
        return answer

    async def Identify(self, request, context):
        caller = current_caller()
        answer = await self._answered(await self._sent_off(request, caller, unary=True), context, caller,
                                      unary=True)
        if status := unary_status(answer.result.reason, answer.result.detail):
            await context.abort(*status)
        return answer.response

    async def IdentifyStream(self, request_iterator, context) -> AsyncIterator[recognition_pb2.IdentifyResponse]:
        """The camera counts as streaming, for the camera wall, until the call ends."""
        with self._cameras.streaming() as camera_named:
            async for response in self._stream_answers(request_iterator, context, camera_named):
                yield response

    async def _stream_answers(self, request_iterator: AsyncIterator[recognition_pb2.IdentifyRequest],
                              context: grpc.aio.ServicerContext,
                              camera_named: Callable[[str], None]) -> AsyncIterator[recognition_pb2.IdentifyResponse]:
        """A reading task sends up to `stream_window` crops of the stream on their way, so a camera's burst of
        faces reaches the recogniser as one batch; answers leave in the order the crops came. While the window is
        full nothing more is read, and gRPC flow control holds the camera back."""
        in_flight: asyncio.Queue[InFlight | BaseException | None] = asyncio.Queue()
        window = asyncio.Semaphore(self._window)
        caller = current_caller()

        async def read() -> None:
            try:
                async for request in request_iterator:
                    camera_named(request.camera_id or (caller.name if caller.role == "camera" else ""))
                    await window.acquire()
                    in_flight.put_nowait(await self._sent_off(request, caller, False))
            except Exception as exc:  # a refusal or a broken stream ends the call, after the answers before it
                in_flight.put_nowait(exc)
            else:
                in_flight.put_nowait(None)

        reading = asyncio.create_task(read())
        try:
            while (item := await in_flight.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                response = (await self._answered(item, context, caller, unary=False)).response
                window.release()
                yield response
        finally:
            reading.cancel()

    async def WatchDecisions(self, request, context) -> AsyncIterator[recognition_pb2.DecisionEvent]:
        async for event in _events(self._decisions, decision_filter(request)):
            yield event

    async def WatchAlerts(self, request, context) -> AsyncIterator[watchlists_pb2.Alert]:
        async for alert in _events(self._alerts, alert_filter(request)):
            if not request.with_evidence:
                alert.ClearField("evidence")
            yield alert

    def Verify(self, request, context):
        started = time.perf_counter()
        reference = request.WhichOneof("reference")
        request_id, refused = request_id_of(request)
        if refused:
            result = VerifyResult.of_problem(refused, self._service.thresholds.verify.value)
        else:
            result = self._service.verify(
                face_input(request.probe),
                nik=request.nik if reference == "nik" else None,
                reference=face_input(request.reference_face) if reference == "reference_face" else None,
            )
        audited(self._trail, context, Operation.VERIFY, Outcome(
            result.decision, status=status_name(result.reason, unary=True), reason=reason_name(result.reason),
            detail=result.detail, nik=request.nik, score=result.score if result.reason is None else None,
            threshold=result.threshold),
            request_id=request_id, started=started)
        abort_if_unary_status(context, result.reason, result.detail)
        return recognition_pb2.VerifyResponse(
            request_id=request_id,
            match=result.decision is Decision.MATCH,
            score=result.score,
            threshold=result.threshold,
            decision=decision_pb(result.decision),
            reason=reason_pb(result.reason),
            detail=result.detail,
            model_fingerprint=self._service.engine.pack.fingerprint,
        )

    def GetInfo(self, request, context):
        engine, thresholds = self._service.engine, self._service.thresholds
        return recognition_pb2.GatewayInfo(
            model=engine.pack.name, model_fingerprint=engine.pack.fingerprint, providers=engine.providers,
            gallery_size=self._service.gallery_size, identify=threshold_info(thresholds.identify),
            verify=threshold_info(thresholds.verify), version=__version__, search=self._service.search_backend,
            watchlists=[watchlist_info(status) for status in self._service.watchlists.statuses()])


class GalleryServicer(gallery_pb2_grpc.GalleryServicer):
    """Every change goes through the gallery's one write path, which audits it; a change that cannot be audited
    is answered UNAVAILABLE (it may be committed: the store acknowledged it before the audit failed)."""

    def __init__(self, service: GatewayService) -> None:
        self._service = service

    def _response(self, result: EnrollResult) -> gallery_pb2.EnrollResponse:
        return gallery_pb2.EnrollResponse(
            nik=result.nik, enrolled=result.enrolled, replaced=result.replaced, reason=reason_pb(result.reason),
            detail=result.detail, model_fingerprint=self._service.engine.pack.fingerprint,
        )

    def Enroll(self, request, context):
        started = time.perf_counter()
        with audit_or_unavailable(context):
            result = self._service.enroll(request.nik, face_input(request.face), dict(request.attributes),
                                          current_caller(), started)
        abort_if_unary_status(context, result.reason, result.detail)
        return self._response(result)

    def EnrollStream(self, request_iterator, context):
        records = (EnrollRecord(r.nik, face_input(r.face), dict(r.attributes)) for r in request_iterator)
        summary = gallery_pb2.EnrollSummary()
        by_reason: Counter[str] = Counter()
        with audit_or_unavailable(context):
            results = self._service.enroll_many(records, current_caller(), skip_unchanged=True,
                                                started=time.perf_counter())
            for position, result in enumerate(results):  # counted as each chunk is stored and audited
                if result.unchanged:
                    summary.unchanged += 1
                elif result.enrolled:
                    summary.enrolled += 1
                    summary.replaced += int(result.replaced)
                    summary.index_behind += int(result.reason is Reason.INDEX_BEHIND)
                else:
                    summary.rejected += 1
                    by_reason[result.reason.name] += 1
                    summary.rejects.append(gallery_pb2.RejectedRecord(
                        index=position, nik=result.nik, reason=reason_pb(result.reason), detail=result.detail))
        summary.rejected_by_reason.update(by_reason)
        return summary

    def Remove(self, request, context):
        with audit_or_unavailable(context):
            result = self._service.gallery.remove(request.nik, current_caller(), unary=True,
                                                  started=time.perf_counter())
        abort_if_unary_status(context, result.reason, result.detail)
        return gallery_pb2.RemoveResponse(nik=result.nik, removed=result.removed, reason=reason_pb(result.reason),
                                          detail=result.detail)

    def RotateKeys(self, request, context):
        try:
            with audit_or_unavailable(context):
                rotation = self._service.gallery.rotate_keys(current_caller(), request.retire,
                                                             started=time.perf_counter())
        except KeyRingError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return gallery_pb2.RotateKeysResponse(active_key=rotation.active, resealed=rotation.resealed,
                                              retired=rotation.retired)


class WatchlistsServicer(watchlists_pb2_grpc.WatchlistsServicer):
    """Every change goes through the watchlists' one write path, which audits it; a refused change is audited
    with the status its caller gets."""

    def __init__(self, service: GatewayService) -> None:
        self._service = service

    @contextlib.contextmanager
    def _refusals(self, context: grpc.ServicerContext, operation: Operation, started: float) -> Iterator[None]:
        with audit_or_unavailable(context):
            try:
                yield
            except WatchlistError as exc:
                self._service.watchlists.refused(operation, current_caller(), exc, started)
                context.abort(grpc.StatusCode[exc.status], str(exc))

    def CreateWatchlist(self, request, context):
        started = time.perf_counter()
        choice = request.WhichOneof("threshold_choice")
        with self._refusals(context, Operation.CREATE_WATCHLIST, started):
            watchlist = self._service.watchlists.create(
                request.name, request.reason, request.owner, current_caller(), expires=request.expires,
                threshold=request.threshold if choice == "threshold" else None,
                target_fpir=request.target_fpir if choice == "target_fpir" else None,
                expected_templates=request.expected_templates, priority=request.priority, started=started)
        [status] = [s for s in self._service.watchlists.statuses() if s.watchlist.name == watchlist.name]
        return watchlist_info(status)

    def ListWatchlists(self, request, context):
        return watchlists_pb2.ListWatchlistsResponse(
            watchlists=[watchlist_info(status) for status in self._service.watchlists.statuses()])

    def AddEntry(self, request, context):
        started = time.perf_counter()
        with self._refusals(context, Operation.ADD_ENTRY, started):
            try:
                result = self._service.add_watchlist_entry(
                    request.watchlist, request.label, request.case_reference, request.expires,
                    [face_input(face) for face in request.faces], current_caller(), started)
            except Problem as problem:
                self._service.watchlists.refused(Operation.ADD_ENTRY, current_caller(), WatchlistError(
                    problem.detail, status_name(problem.reason, unary=True)), started)
                abort_if_unary_status(context, problem.reason, problem.detail)
                raise
        return watchlists_pb2.AddEntryResponse(
            entry_id=result.entry.entry_id if result.entry else "",
            templates=len(result.entry.templates) if result.entry else 0,
            rejects=[watchlists_pb2.RejectedPhoto(index=position, reason=reason_pb(problem.reason),
                                                  detail=problem.detail) for position, problem in result.rejects])

    def RemoveEntry(self, request, context):
        started = time.perf_counter()
        with self._refusals(context, Operation.REMOVE_ENTRY, started):
            removed = self._service.watchlists.remove_entry(request.watchlist, request.entry_id, current_caller(),
                                                            started)
        return watchlists_pb2.RemoveEntryResponse(removed=removed)

    def Adjudicate(self, request, context):
        started = time.perf_counter()
        with self._refusals(context, Operation.ADJUDICATE, started):
            caller = current_caller().acting_for(request.on_behalf_of)
            alert = self._service.watchlists.adjudicate(
                request.alert_id, watchlists_pb2.Adjudication.Name(request.adjudication), request.note, caller,
                started)
        return watchlists_pb2.AdjudicateResponse(alert_id=alert.alert_id, adjudication=request.adjudication,
                                                 adjudicated_by=caller.who, time=utc_now())


ANALYTICS_DAYS = 7  # the period GetAnalytics answers when none is asked for
ANALYTICS_MAX_DAYS = 92
VIEW_NAME_LIMIT = 64


def analytics_period(request: command_center_pb2.GetAnalyticsRequest) -> tuple[float, float]:
    """The period asked for as Unix times; ValueError names what is wrong with it."""
    def moment(text: str, flag: str) -> float:
        try:
            return parse_time(text).timestamp()
        except ValueError:
            raise ValueError(f"{flag} {bounded(text, 40)!r} is not an RFC 3339 time") from None

    until = moment(request.until, "until") if request.until else time.time()
    since = moment(request.since, "since") if request.since else until - ANALYTICS_DAYS * 86400
    if not 0 <= until - since <= ANALYTICS_MAX_DAYS * 86400:
        raise ValueError(f"since must come before until, at most {ANALYTICS_MAX_DAYS} days before it")
    return since, until


class CommandCenterServicer(command_center_pb2_grpc.CommandCenterServicer):
    """What a console shows beside the live events: the camera wall, counts for analytics, and the audit record
    of each look at personal data."""

    def __init__(self, service: GatewayService, trail: AuditTrail, cameras: Cameras, aggregates: Aggregates) -> None:
        self._service = service
        self._trail = trail
        self._cameras = cameras
        self._aggregates = aggregates

    def ListCameras(self, request, context):
        return command_center_pb2.ListCamerasResponse(cameras=[
            command_center_pb2.CameraStatus(camera_id=camera_id, online=online, open_streams=seen.open_streams,
                                            last_seen=rfc3339(seen.last_seen or None), faces=seen.faces)
            for camera_id, seen, online in self._cameras.statuses()])

    def GetAnalytics(self, request, context):
        try:
            since, until = analytics_period(request)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        analytics = command_center_pb2.Analytics(since=rfc3339(since), until=rfc3339(until))
        for hour in self._aggregates.camera_hours(since, until):
            analytics.hours.add(camera_id=hour.camera_id, hour=rfc3339(hour.hour), reasons=hour.reasons,
                                **hour.counts)
        for watchlist, day, alerts, confirmed, dismissed in self._service.watchlists.store.alert_days(since, until):
            analytics.watchlist_days.add(watchlist=watchlist, day=day_text(day), alerts=alerts,
                                         confirmed=confirmed or 0, dismissed=dismissed or 0)
        for day in self._aggregates.audit_days(since, until):
            analytics.audit_days.add(day=day_text(day.day), operation=day.operation, decision=day.decision,
                                     records=day.records)
        return analytics

    def RecordView(self, request, context):
        started = time.perf_counter()
        if not request.on_behalf_of or not request.view:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "on_behalf_of and view name who looked at what")
        audited(self._trail, context, Operation.RECORD_VIEW, Outcome(
            Verdict.VIEWED, detail=f"view {bounded(request.view, VIEW_NAME_LIMIT)}"),
            started=started, caller=current_caller().acting_for(request.on_behalf_of))
        return command_center_pb2.RecordViewResponse()
