"""Concurrent camera streams: one response per request, in order, each with the right answer."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from conftest import ENROLLED, NOT_ENROLLED, nik_for, photos, serving

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


def test_calls_beyond_the_worker_limit_are_refused_not_queued(engine, tmp_path):
    release = threading.Event()
    probe = photos(*ENROLLED[0])[1].read_bytes()

    def held_stream(camera: str):
        yield recognition_pb2.IdentifyRequest(request_id=camera, face=face_pb2.Face(image=probe))
        release.wait(30)

    with serving(engine, tmp_path / "gallery", workers=2) as client:
        try:
            streams = [client.recognition.IdentifyStream(held_stream(f"cam{n}")) for n in range(2)]
            assert [next(stream).request_id for stream in streams] == ["cam0", "cam1"]  # both are being served
            with pytest.raises(grpc.RpcError) as error:
                client.recognition.Identify(recognition_pb2.IdentifyRequest(face=face_pb2.Face(image=probe)),
                                            timeout=10)
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            release.set()
            for stream in streams:
                assert list(stream) == []
            assert client.recognition.Identify(recognition_pb2.IdentifyRequest(face=face_pb2.Face(image=probe)))
        finally:
            release.set()
