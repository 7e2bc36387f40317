"""gRPC servicers: translate frgateway.v1 messages to GatewayService calls and results back to messages and
status codes. Unary calls answer malformed input with a status; streams answer with a decision and go on."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterator

import grpc

from fr_gateway.contract import face_pb2, gallery_pb2, gallery_pb2_grpc, recognition_pb2, recognition_pb2_grpc
from fr_gateway.decision import Decision
from fr_gateway.faces.crops import CropKind
from fr_gateway.reasons import INPUT_REASONS, Problem, Reason
from fr_gateway.service import EnrollRecord, EnrollResult, FaceInput, GatewayService, IdentifyResult, VerifyResult

log = logging.getLogger(__name__)

# Status for unary calls, by reason; reasons not listed are answered in the response itself.
UNARY_STATUS = {
    **{reason: grpc.StatusCode.INVALID_ARGUMENT for reason in INPUT_REASONS},
    Reason.NIK_NOT_ENROLLED: grpc.StatusCode.NOT_FOUND,
    Reason.GATEWAY_OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
LOOSE_KINDS = (face_pb2.CROP_KIND_UNSPECIFIED, face_pb2.LOOSE)


def face_input(face: face_pb2.Face) -> FaceInput:
    return FaceInput(bytes(face.image), CropKind.LOOSE if face.kind in LOOSE_KINDS else CropKind.ALIGNED)


def reason_pb(reason: Reason | None) -> int:
    return face_pb2.Reason.Value(reason.name) if reason else face_pb2.REASON_UNSPECIFIED


def decision_pb(decision: Decision) -> int:
    return face_pb2.Decision.Value(decision.name)


def abort_if_unary_status(context: grpc.ServicerContext, reason: Reason | None, detail: str) -> None:
    if reason in UNARY_STATUS:
        context.abort(UNARY_STATUS[reason], f"{reason.name}: {detail}")


class RecognitionServicer(recognition_pb2_grpc.RecognitionServicer):
    def __init__(self, service: GatewayService) -> None:
        self._service = service

    def _identify(self, request: recognition_pb2.IdentifyRequest) -> tuple[IdentifyResult,
                                                                            recognition_pb2.IdentifyResponse]:
        result = self._service.identify(face_input(request.face), request.top_k)
        response = recognition_pb2.IdentifyResponse(
            request_id=request.request_id or uuid.uuid4().hex,
            camera_id=request.camera_id,
            candidates=[recognition_pb2.Candidate(nik=c.nik, score=c.score) for c in result.candidates],
            decision=decision_pb(result.decision),
            threshold=result.threshold,
            reason=reason_pb(result.reason),
            detail=result.detail,
            gallery_size=result.gallery_size,
            model_fingerprint=self._service.engine.pack.fingerprint,
        )
        log.debug("identify %s camera=%s decision=%s", response.request_id, request.camera_id,
                  result.decision.name)
        return result, response

    def Identify(self, request, context):
        result, response = self._identify(request)
        abort_if_unary_status(context, result.reason, result.detail)
        return response

    def IdentifyStream(self, request_iterator, context) -> Iterator[recognition_pb2.IdentifyResponse]:
        for request in request_iterator:
            yield self._identify(request)[1]

    def Verify(self, request, context):
        reference = request.WhichOneof("reference")
        result: VerifyResult = self._service.verify(
            face_input(request.probe),
            nik=request.nik if reference == "nik" else None,
            reference=face_input(request.reference_face) if reference == "reference_face" else None,
        )
        abort_if_unary_status(context, result.reason, result.detail)
        return recognition_pb2.VerifyResponse(
            request_id=request.request_id or uuid.uuid4().hex,
            match=result.decision is Decision.MATCH,
            score=result.score,
            threshold=result.threshold,
            decision=decision_pb(result.decision),
            reason=reason_pb(result.reason),
            detail=result.detail,
            model_fingerprint=self._service.engine.pack.fingerprint,
        )


class GalleryServicer(gallery_pb2_grpc.GalleryServicer):
    def __init__(self, service: GatewayService) -> None:
        self._service = service

    def _response(self, result: EnrollResult) -> gallery_pb2.EnrollResponse:
        return gallery_pb2.EnrollResponse(
            nik=result.nik, enrolled=result.enrolled, replaced=result.replaced, reason=reason_pb(result.reason),
            detail=result.detail, model_fingerprint=self._service.engine.pack.fingerprint,
        )

    def Enroll(self, request, context):
        result = self._service.enroll(request.nik, face_input(request.face), dict(request.attributes))
        abort_if_unary_status(context, result.reason, result.detail)
        return self._response(result)

    def EnrollStream(self, request_iterator, context):
        records = (EnrollRecord(r.nik, face_input(r.face), dict(r.attributes)) for r in request_iterator)
        summary = gallery_pb2.EnrollSummary()
        by_reason: Counter[str] = Counter()
        for position, result in enumerate(self._service.enroll_many(records, skip_unchanged=True)):
            if result.unchanged:
                summary.unchanged += 1
            elif result.enrolled:
                summary.enrolled += 1
                summary.replaced += int(result.replaced)
            else:
                summary.rejected += 1
                by_reason[result.reason.name] += 1
                summary.rejects.append(gallery_pb2.RejectedRecord(
                    index=position, nik=result.nik, reason=reason_pb(result.reason), detail=result.detail))
        summary.rejected_by_reason.update(by_reason)
        return summary

    def Remove(self, request, context):
        try:
            removed = self._service.remove(request.nik)
        except Problem as problem:
            abort_if_unary_status(context, problem.reason, problem.detail)
            raise
        return gallery_pb2.RemoveResponse(nik=request.nik, removed=removed)
