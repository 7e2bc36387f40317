"""Enrol, re-enrol, remove and bulk enrolment over the Gallery RPCs; the store stays the source of truth."""

from __future__ import annotations

import grpc
import pytest
from conftest import ENROLLED, loose, nik_for, photos, serving

from fr_gateway.contract import face_pb2, gallery_pb2, recognition_pb2


def enroll(client, nik, path):
    return client.gallery.Enroll(gallery_pb2.EnrollRequest(nik=nik, face=loose(path), attributes={"prov": "64"}))


def identify(client, path):
    return client.recognition.Identify(recognition_pb2.IdentifyRequest(face=loose(path)))


def test_enroll_identify_reenroll_and_remove(fresh):
    nik, person = nik_for(0), ENROLLED[0]
    first = enroll(fresh, nik, photos(*person)[0])
    assert first.enrolled and not first.replaced and first.model_fingerprint
    assert identify(fresh, photos(*person)[2]).candidates[0].nik == nik

    again = enroll(fresh, nik, photos(*person)[1])
    assert again.enrolled and again.replaced
    answer = identify(fresh, photos(*person)[2])
    assert answer.gallery_size == 1 and [c.nik for c in answer.candidates] == [nik]

    assert fresh.gallery.Remove(gallery_pb2.RemoveRequest(nik=nik)).removed
    gone = identify(fresh, photos(*person)[2])
    assert gone.decision == face_pb2.NO_MATCH and not gone.candidates and gone.gallery_size == 0
    assert not fresh.gallery.Remove(gallery_pb2.RemoveRequest(nik=nik)).removed


def test_malformed_nik_is_invalid_argument_everywhere(fresh):
    for call in (
        lambda: enroll(fresh, "12345", photos(*ENROLLED[0])[0]),
        lambda: fresh.gallery.Remove(gallery_pb2.RemoveRequest(nik="9999999999999999")),
        lambda: fresh.recognition.Verify(recognition_pb2.VerifyRequest(probe=loose(photos(*ENROLLED[0])[0]),
                                                                       nik="31710141019000")),
    ):
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "NIK_INVALID" in error.value.details()


def test_verify_against_a_nik_not_enrolled_is_not_found(fresh):
    with pytest.raises(grpc.RpcError) as error:
        fresh.recognition.Verify(recognition_pb2.VerifyRequest(probe=loose(photos(*ENROLLED[0])[0]), nik=nik_for(7)))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_enroll_stream_counts_and_explains_rejects(fresh):
    requests = [
        gallery_pb2.EnrollRequest(nik=nik_for(1), face=loose(photos(*ENROLLED[1])[0])),
        gallery_pb2.EnrollRequest(nik="not-a-nik", face=loose(photos(*ENROLLED[2])[0])),
        gallery_pb2.EnrollRequest(nik=nik_for(3), face=face_pb2.Face(image=b"garbage")),
        gallery_pb2.EnrollRequest(nik=nik_for(4), face=loose(photos(*ENROLLED[4])[0])),
        gallery_pb2.EnrollRequest(nik=nik_for(1), face=loose(photos(*ENROLLED[1])[1])),
    ]
    summary = fresh.gallery.EnrollStream(iter(requests))
    assert (summary.enrolled, summary.replaced, summary.rejected) == (3, 1, 2)
    assert dict(summary.rejected_by_reason) == {"NIK_INVALID": 1, "IMAGE_UNDECODABLE": 1}
    assert [(r.index, r.nik, r.reason) for r in summary.rejects] == [
        (1, "not-a-nik", face_pb2.NIK_INVALID), (2, nik_for(3), face_pb2.IMAGE_UNDECODABLE)]
    assert all(r.detail for r in summary.rejects)


def test_acknowledged_enrolments_survive_a_restart(engine, tmp_path):
    gallery = tmp_path / "gallery"
    with serving(engine, gallery) as client:
        for number in range(3):
            assert enroll(client, nik_for(number), photos(*ENROLLED[number])[0]).enrolled
    with serving(engine, gallery) as client:
        answer = identify(client, photos(*ENROLLED[2])[1])
        assert answer.gallery_size == 3
        assert answer.decision == face_pb2.MATCH and answer.candidates[0].nik == nik_for(2)
