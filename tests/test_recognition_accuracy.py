"""1:N and 1:1 over real gRPC on the shared labelled faces, at the model's default thresholds.

Measured on this data (buffalo_s, default thresholds 0.40): rank-1 of mated searches 1.000 (332 searches),
non-mated searches answered NO_MATCH 1.000 (128 searches), celebrities pairs.csv verify accuracy 527 of 528
(140 same, 388 different; one same-person pair scores 0.372); the full evaluation is benchmarks/eval/.
"""

from __future__ import annotations

import csv

import pytest
from conftest import DATA, ENROLLED, NOT_ENROLLED, loose, nik_for, photos

from fr_gateway.contract import face_pb2, recognition_pb2


def identify(client, path, top_k=5):
    return client.recognition.Identify(recognition_pb2.IdentifyRequest(camera_id="test", face=loose(path), top_k=top_k))


def test_enrolled_people_are_found_at_rank_one(enrolled):
    searches = hits = matches = 0
    for number, who in enumerate(ENROLLED):
        for path in photos(*who)[1:]:
            response = identify(enrolled, path)
            searches += 1
            hits += response.candidates[0].nik == nik_for(number)
            matches += response.decision == face_pb2.MATCH and response.candidates[0].nik == nik_for(number)
    assert searches > 300
    assert hits / searches >= 0.98, f"rank-1 {hits}/{searches}"
    assert matches / searches >= 0.97, f"MATCH with the right NIK {matches}/{searches}"


def test_people_not_enrolled_get_no_match(enrolled):
    decisions = [identify(enrolled, path).decision for who in NOT_ENROLLED for path in photos(*who)]
    assert len(decisions) > 100
    assert decisions.count(face_pb2.NO_MATCH) == len(decisions), decisions


def test_candidates_are_best_first_with_threshold(enrolled):
    response = identify(enrolled, photos(*ENROLLED[0])[1], top_k=7)
    scores = [c.score for c in response.candidates]
    assert len(scores) == 7
    assert scores == sorted(scores, reverse=True)
    assert response.threshold == pytest.approx(enrolled.gateway.service.thresholds.identify.value)
    assert response.gallery_size == len(ENROLLED)
    assert response.model_fingerprint == enrolled.gateway.engine.pack.fingerprint


def test_verify_celebrity_pairs(enrolled):
    folder = DATA / "celebrities"
    where = {p.name: p for p in folder.glob("*/*")}
    rows = list(csv.DictReader((folder / "pairs.csv").open()))
    correct = 0
    for row in rows:
        response = enrolled.recognition.Verify(recognition_pb2.VerifyRequest(
            probe=loose(where[row["img1"]]), reference_face=loose(where[row["img2"]])))
        assert response.decision in (face_pb2.MATCH, face_pb2.NO_MATCH)
        correct += response.match == (row["same"] == "1")
    assert len(rows) == 528
    assert correct / len(rows) >= 0.97, f"verify accuracy {correct}/{len(rows)}"


def test_verify_against_an_enrolled_nik(enrolled):
    same = enrolled.recognition.Verify(recognition_pb2.VerifyRequest(probe=loose(photos(*ENROLLED[1])[1]),
                                                                      nik=nik_for(1)))
    other = enrolled.recognition.Verify(recognition_pb2.VerifyRequest(probe=loose(photos(*ENROLLED[2])[1]),
                                                                       nik=nik_for(1)))
    assert same.match and same.decision == face_pb2.MATCH and same.score >= same.threshold
    assert not other.match and other.decision == face_pb2.NO_MATCH and other.score < other.threshold
