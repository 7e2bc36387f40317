"""Enrol, re-enrol, remove and bulk enrolment over the Gallery RPCs; the store stays the source of truth."""

from __future__ import annotations

import io
import json
import sqlite3

import cv2
import grpc
import numpy as np
import pytest
from conftest import ENROLLED, loose, nik_for, photos, serving

from fr_gateway.audit.export import export
from fr_gateway.audit.keys import AuditorKeys
from fr_gateway.config import audit_dir_for, audit_keys_for
from fr_gateway.contract import face_pb2, gallery_pb2, recognition_pb2
from fr_gateway.gallery.store import STORE_FILE
from fr_gateway.search.snapshot import SNAPSHOT_FILE


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


def test_a_damaged_template_is_isolated_answered_and_audited(engine, tmp_path):
    """64 bytes flipped in one sealed row: with the saved index and after a rebuild, the gateway serves the
    rest, Verify of that NIK answers DATA_LOSS with TEMPLATE_DAMAGED, and the answer is in the audit log."""
    gallery = tmp_path / "gallery"
    with serving(engine, gallery) as client:
        for number in (1, 2):
            assert enroll(client, nik_for(number), photos(*ENROLLED[number])[0]).enrolled
    with sqlite3.connect(gallery / STORE_FILE) as db:
        sealed = bytearray(db.execute("SELECT sealed FROM templates WHERE nik = ?", (nik_for(1),)).fetchone()[0])
        sealed[100:164] = bytes(b ^ 0xFF for b in sealed[100:164])
        db.execute("UPDATE templates SET sealed = ? WHERE nik = ?", (bytes(sealed), nik_for(1)))

    for saved_index in (True, False):
        if not saved_index:
            (gallery / SNAPSHOT_FILE).unlink()
        with serving(engine, gallery) as client:
            with pytest.raises(grpc.RpcError) as error:
                client.recognition.Verify(recognition_pb2.VerifyRequest(
                    probe=loose(photos(*ENROLLED[1])[1]), nik=nik_for(1), request_id=f"damaged-{saved_index}"))
            assert error.value.code() == grpc.StatusCode.DATA_LOSS
            assert f"TEMPLATE_DAMAGED: the template of NIK {nik_for(1)} is damaged" in error.value.details()
            assert identify(client, photos(*ENROLLED[2])[1]).candidates[0].nik == nik_for(2)
            found = [c.nik for c in identify(client, photos(*ENROLLED[1])[1]).candidates]
            assert (nik_for(1) in found) is saved_index  # the saved index holds an authenticated copy; a rebuild not
            settings = client.settings

    out = io.StringIO()
    export(audit_dir_for(settings), AuditorKeys.load(audit_keys_for(settings).parent / "audit-auditor"), out)
    damaged = [event for event in map(json.loads, out.getvalue().splitlines()[1:])
               if event.get("request_id", "").startswith("damaged-")]
    assert [(event["reason"], event["status"]) for event in damaged] == [("TEMPLATE_DAMAGED", "DATA_LOSS")] * 2


def test_attributes_have_a_count_and_a_size_limit(fresh):
    face = photos(*ENROLLED[0])[0]
    for attributes, said in (({f"a{n}": "x" for n in range(10_000)}, "10000 attributes; at most 32"),
                             ({"note": "x" * 2**21}, "attribute 'note' has 2097152 characters; at most 1024")):
        with pytest.raises(grpc.RpcError) as error:
            fresh.gallery.Enroll(gallery_pb2.EnrollRequest(nik=nik_for(0), face=loose(face), attributes=attributes))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and said in error.value.details()
    assert enroll(fresh, nik_for(0), face).enrolled  # within the limits: {"prov": "64"}


@pytest.mark.parametrize("turn", [2, 1])
def test_a_photo_scanned_upside_down_or_on_its_side_enrols_the_upright_face(fresh, turn):
    photo = photos(*ENROLLED[3])[0]
    image = cv2.imread(str(photo))
    turned = face_pb2.Face(image=cv2.imencode(".png", np.ascontiguousarray(np.rot90(image, turn)))[1].tobytes())
    assert fresh.gallery.Enroll(gallery_pb2.EnrollRequest(nik=nik_for(3), face=turned)).enrolled
    answer = identify(fresh, photos(*ENROLLED[3])[1])
    assert answer.decision == face_pb2.MATCH and answer.candidates[0].nik == nik_for(3)
