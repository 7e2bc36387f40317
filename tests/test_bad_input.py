"""Bad input never crashes the gateway and never ends a stream: each case gets a clear status or decision."""

from __future__ import annotations

import struct
import zlib

import cv2
import grpc
import numpy as np
import pytest
from conftest import ENROLLED, loose, nik_for, photos, png, serving
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fr_gateway.contract import face_pb2, gallery_pb2, recognition_pb2


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries no pixels: what an attacker sends to make a
    decoder allocate a huge buffer."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


BLANK = png(np.full((480, 640, 3), 128, dtype=np.uint8))
TRUNCATED_JPEG = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))[1].tobytes()[:40]

# (case, image bytes, crop kind, expected reason)
INVALID_IMAGES = [
    ("undecodable bytes", b"\x00\x01 definitely not an image", face_pb2.LOOSE, face_pb2.IMAGE_UNDECODABLE),
    ("truncated JPEG", TRUNCATED_JPEG, face_pb2.LOOSE, face_pb2.IMAGE_UNDECODABLE),
    ("empty image", b"", face_pb2.LOOSE, face_pb2.IMAGE_EMPTY),
    ("0x0 image", png_header_only(0, 0), face_pb2.LOOSE, face_pb2.IMAGE_UNDECODABLE),
    ("0x10 image", png_header_only(0, 10), face_pb2.LOOSE, face_pb2.IMAGE_UNDECODABLE),
    ("20000x20000 image", png_header_only(20000, 20000), face_pb2.LOOSE, face_pb2.IMAGE_TOO_LARGE),
    ("7000x7000 image", png_header_only(7000, 7000), face_pb2.LOOSE, face_pb2.IMAGE_TOO_LARGE),
    ("ALIGNED crop that is not 112x112", BLANK, face_pb2.ALIGNED, face_pb2.IMAGE_NOT_ALIGNED),
    ("GIF image", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", face_pb2.LOOSE, face_pb2.IMAGE_UNDECODABLE),
]
IDS = [case[0] for case in INVALID_IMAGES]


def identify_request(image: bytes, kind: int = face_pb2.LOOSE, request_id: str = "") -> recognition_pb2.IdentifyRequest:
    return recognition_pb2.IdentifyRequest(request_id=request_id, camera_id="cam",
                                           face=face_pb2.Face(image=image, kind=kind))


def assert_serving(client) -> None:
    status = health_pb2_grpc.HealthStub(client.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(("case", "image", "kind", "reason"), INVALID_IMAGES, ids=IDS)
def test_unary_identify_answers_invalid_argument(enrolled, case, image, kind, reason):
    with pytest.raises(grpc.RpcError) as error:
        enrolled.recognition.Identify(identify_request(image, kind))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(face_pb2.Reason.Name(reason)), error.value.details()
    assert_serving(enrolled)


@pytest.mark.parametrize(("case", "image", "kind", "reason"), INVALID_IMAGES, ids=IDS)
def test_verify_and_enroll_answer_invalid_argument(fresh, case, image, kind, reason):
    bad = face_pb2.Face(image=image, kind=kind)
    good = loose(photos(*ENROLLED[0])[0])
    calls = [
        lambda: fresh.recognition.Verify(recognition_pb2.VerifyRequest(probe=bad, reference_face=good)),
        lambda: fresh.recognition.Verify(recognition_pb2.VerifyRequest(probe=good, reference_face=bad)),
        lambda: fresh.gallery.Enroll(gallery_pb2.EnrollRequest(nik=nik_for(0), face=bad)),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_no_face_is_a_decision_not_an_error(enrolled):
    response = enrolled.recognition.Identify(identify_request(BLANK))
    assert response.decision == face_pb2.NO_FACE
    assert response.reason == face_pb2.NO_FACE_FOUND
    assert not response.candidates
    verify = enrolled.recognition.Verify(recognition_pb2.VerifyRequest(probe=face_pb2.Face(image=BLANK),
                                                                        nik=nik_for(0)))
    assert verify.decision == face_pb2.NO_FACE and not verify.match


def test_blurred_face_is_rejected_by_the_quality_gate(enrolled):
    image = cv2.imread(str(photos(*ENROLLED[0])[1]))
    aligned = cv2.resize(cv2.GaussianBlur(cv2.resize(image, (112, 112)), (0, 0), 6), (112, 112))
    response = enrolled.recognition.Identify(identify_request(png(aligned), face_pb2.ALIGNED))
    assert response.decision == face_pb2.REJECTED
    assert response.reason == face_pb2.FACE_BLURRY
    assert "sharpness" in response.detail


def test_top_k_above_the_maximum_is_invalid(enrolled):
    request = identify_request(photos(*ENROLLED[0])[1].read_bytes())
    request.top_k = enrolled.settings.max_top_k + 1
    with pytest.raises(grpc.RpcError) as error:
        enrolled.recognition.Identify(request)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_request_id_longer_than_the_audit_keeps_is_refused_not_echoed(enrolled):
    """A 1 MB request id is neither echoed back nor written: unary calls answer INVALID_ARGUMENT, a stream
    answers that crop INVALID with a bounded id and goes on."""
    image = photos(*ENROLLED[0])[1].read_bytes()
    long_id = "R" * 1_000_000
    with pytest.raises(grpc.RpcError) as error:
        enrolled.recognition.Identify(identify_request(image, request_id=long_id))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == "ARGUMENT_INVALID: request_id has 1000000 characters; at most 128 are kept"
    with pytest.raises(grpc.RpcError) as error:
        enrolled.recognition.Verify(recognition_pb2.VerifyRequest(request_id=long_id, probe=loose(photos(
            *ENROLLED[0])[1]), nik=nik_for(0)))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    answers = list(enrolled.recognition.IdentifyStream(iter([
        identify_request(image, request_id=long_id), identify_request(image, request_id="R" * 128)])))
    assert [(a.decision, a.reason) for a in answers] == [(face_pb2.INVALID, face_pb2.ARGUMENT_INVALID),
                                                         (face_pb2.MATCH, face_pb2.REASON_UNSPECIFIED)]
    assert answers[0].request_id == "R" * 128 + "...(+999872 characters)"
    assert answers[1].request_id == "R" * 128 and answers[1].candidates[0].nik == nik_for(0)


def test_image_over_the_byte_limit_is_refused(engine, tmp_path):
    with serving(engine, tmp_path / "g", max_image_bytes=100_000, max_message_bytes=1_000_000) as client:
        big = np.random.default_rng(1).integers(0, 255, (400, 400, 3), dtype=np.uint8)
        with pytest.raises(grpc.RpcError) as error:
            client.recognition.Identify(identify_request(png(big)))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "IMAGE_TOO_LARGE" in error.value.details()
        # above the transport limit gRPC itself refuses the message; the server stays up
        with pytest.raises(grpc.RpcError) as error:
            client.recognition.Identify(identify_request(b"\xff" * 2_000_000))
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert_serving(client)
        # within a stream, an oversized image is a decision and the stream goes on
        good = photos("orl", "s1")[1].read_bytes()
        answers = list(client.recognition.IdentifyStream(iter([
            identify_request(png(big), request_id="big"), identify_request(good, request_id="good")])))
        assert [(a.request_id, a.decision) for a in answers] == [("big", face_pb2.INVALID),
                                                                  ("good", face_pb2.NO_MATCH)]
        assert answers[0].reason == face_pb2.IMAGE_TOO_LARGE


def test_stream_answers_every_bad_item_and_goes_on(enrolled):
    good = photos(*ENROLLED[3])[1].read_bytes()
    requests = [identify_request(good, request_id="first")]
    requests += [identify_request(image, kind, request_id=case) for case, image, kind, _ in INVALID_IMAGES]
    requests += [identify_request(BLANK, request_id="blank"), identify_request(good, request_id="last")]
    answers = list(enrolled.recognition.IdentifyStream(iter(requests)))
    assert [a.request_id for a in answers] == [r.request_id for r in requests]
    by_id = {a.request_id: a for a in answers}
    for case, _, _, reason in INVALID_IMAGES:
        assert (by_id[case].decision, by_id[case].reason) == (face_pb2.INVALID, reason), case
        assert by_id[case].detail
    assert by_id["blank"].decision == face_pb2.NO_FACE
    assert by_id["first"].decision == by_id["last"].decision == face_pb2.MATCH
    assert by_id["first"].candidates[0].nik == by_id["last"].candidates[0].nik == nik_for(3)


def test_enrolment_photo_with_two_people_is_rejected(fresh):
    both = np.hstack([cv2.imread(str(photos("orl", person)[0])) for person in ("s1", "s2")])
    response = fresh.gallery.Enroll(gallery_pb2.EnrollRequest(nik=nik_for(5), face=face_pb2.Face(image=png(both))))
    assert not response.enrolled
    assert response.reason == face_pb2.MULTIPLE_FACES
    # the same picture as a camera crop is fine: the dominant face is searched
    answer = fresh.recognition.Identify(identify_request(png(both)))
    assert answer.decision == face_pb2.NO_MATCH
