"""Concurrent camera streams: one response per request, in order, each with the right answer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from conftest import ENROLLED, NOT_ENROLLED, nik_for, photos

from fr_gateway.contract import face_pb2, recognition_pb2

STREAMS = 6
PER_STREAM = 12


def camera_requests(camera: int) -> list[tuple[recognition_pb2.IdentifyRequest, str]]:
    """A mix of enrolled people, strangers and junk, different for every camera; with the expected NIK."""
    out = []
    for n in range(PER_STREAM):
        pick = (camera * PER_STREAM + n) % 5
        if pick < 3:
            number = (camera + n) % len(ENROLLED)
            image, expected = photos(*ENROLLED[number])[1].read_bytes(), nik_for(number)
        elif pick == 3:
            image, expected = photos(*NOT_ENROLLED[(camera + n) % len(NOT_ENROLLED)])[0].read_bytes(), "NO_MATCH"
        else:
            image, expected = b"junk", "INVALID"
        request = recognition_pb2.IdentifyRequest(request_id=f"cam{camera}-{n}", camera_id=f"cam{camera}",
                                                  face=face_pb2.Face(image=image, kind=face_pb2.LOOSE))
        out.append((request, expected))
    return out


def run_camera(client, camera: int) -> list[tuple[str, str, str]]:
    plan = camera_requests(camera)
    answers = list(client.recognition.IdentifyStream(iter([request for request, _ in plan])))
    assert len(answers) == len(plan)
    results = []
    for (request, expected), answer in zip(plan, answers, strict=True):
        assert answer.request_id == request.request_id and answer.camera_id == request.camera_id
        got = answer.candidates[0].nik if answer.decision == face_pb2.MATCH else face_pb2.Decision.Name(answer.decision)
        results.append((request.request_id, expected, got))
    return results


def test_concurrent_streams_each_get_their_own_answers(enrolled):
    with ThreadPoolExecutor(STREAMS) as pool:
        per_camera = list(pool.map(lambda camera: run_camera(enrolled, camera), range(STREAMS)))
    results = [row for camera in per_camera for row in camera]
    assert len(results) == STREAMS * PER_STREAM
    wrong = [row for row in results if row[1] != row[2]]
    assert not wrong, wrong
