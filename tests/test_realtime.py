"""Checkpoint scale on a real gateway, in seconds: 256 camera streams open at once with bounded memory,
answers that stay right and bounded under overload, live decisions for a Command Center, the health service
while the gallery loads, and the Prometheus metrics."""

from __future__ import annotations

import dataclasses
import os
import resource
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import cv2
import grpc
import pytest
from conftest import ENROLLED, Client, engine_settings, nik_for, photos, serving
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from fr_gateway.contract import face_pb2, gallery_pb2, recognition_pb2
from fr_gateway.faces.detector import align
from fr_gateway.faces.images import decode_image
from fr_gateway.server.app import Gateway

PEOPLE = 8


@pytest.fixture(scope="module")
def aligned(engine) -> list[bytes]:
    """One aligned 112x112 crop (PNG) of a second photo of each of the first PEOPLE enrolled people, as a
    camera sends them."""
    crops = []
    for who in ENROLLED[:PEOPLE]:
        image = decode_image(photos(*who)[1].read_bytes(), 1 << 30, 1 << 30)
        crops.append(cv2.imencode(".png", align(image, engine.detector.detect(image)[0]))[1].tobytes())
    return crops


def enrol(client: Client) -> None:
    summary = client.gallery.EnrollStream(iter(
        gallery_pb2.EnrollRequest(nik=nik_for(n), face=face_pb2.Face(image=photos(*who)[0].read_bytes()))
        for n, who in enumerate(ENROLLED[:PEOPLE])), timeout=120)
    assert summary.enrolled == PEOPLE


def request(crops: list[bytes], camera: int, n: int = 0) -> recognition_pb2.IdentifyRequest:
    return recognition_pb2.IdentifyRequest(camera_id=f"CAM-{camera:03d}", track_id=f"t{n}",
                                           face=face_pb2.Face(image=crops[camera % PEOPLE], kind=face_pb2.ALIGNED))


def test_256_camera_streams_at_once_with_bounded_memory(engine, tmp_path, aligned):
    streams, release = 256, threading.Event()
    with serving(engine, tmp_path / "g", streams_per_client=0, rate_limit=0) as client:
        enrol(client)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        def camera(number: int) -> Iterator[recognition_pb2.IdentifyRequest]:
            yield request(aligned, number)
            release.wait(60)  # then idle, as most cameras are most of the time

        calls = [client.recognition.IdentifyStream(camera(n), timeout=120) for n in range(streams)]
        answers = [next(call) for call in calls]  # all 256 are open and answered before any closes
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        release.set()
        for call in calls:
            assert list(call) == []
    assert all(a.decision == face_pb2.MATCH and a.track_id == "t0" for a in answers), \
        Counter(f"{face_pb2.Decision.Name(a.decision)} {a.detail}" for a in answers)
    assert [a.candidates[0].nik for a in answers] == [nik_for(n % PEOPLE) for n in range(streams)]
    assert grown_mb < 512, f"256 open streams grew the process by {grown_mb:.0f} MB"


def test_overload_answers_overloaded_quickly_and_everything_else_right(engine, tmp_path, aligned):
    with serving(engine, tmp_path / "g", queue_size=PEOPLE, batch_size=4, streams_per_client=0, rate_limit=0) as client:
        enrol(client)

        def camera(number: int) -> list[tuple[float, recognition_pb2.IdentifyResponse]]:
            sent = [request(aligned, number, n) for n in range(12)]
            started = time.perf_counter()
            return [(time.perf_counter() - started, answer)
                    for answer in client.recognition.IdentifyStream(iter(sent), timeout=120)]

        with ThreadPoolExecutor(24) as pool:
            results = [row for rows in pool.map(camera, range(24)) for row in rows]
    decisions = [answer.decision for _, answer in results]
    assert len(results) == 24 * 12
    assert face_pb2.OVERLOADED in decisions, "a queue of 8 under 24 cameras should have refused some crops"
    assert set(decisions) <= {face_pb2.MATCH, face_pb2.OVERLOADED}
    for _, answer in results:
        if answer.decision == face_pb2.MATCH:
            assert answer.candidates[0].nik == nik_for(int(answer.camera_id[4:]) % PEOPLE)


def batches_run(stage: str) -> tuple[float, float]:
    """Items through a micro-batching stage and batches it ran so far in this process (the metrics registry is
    global)."""
    return (REGISTRY.get_sample_value("frgateway_batch_size_sum", {"stage": stage}) or 0.0,
            REGISTRY.get_sample_value("frgateway_batch_size_count", {"stage": stage}) or 0.0)


def loose_request(n: int) -> recognition_pb2.IdentifyRequest:
    """A second photo of an enrolled person, whole, for the gateway to detect the face in."""
    return recognition_pb2.IdentifyRequest(camera_id="CAM-000", track_id=f"t{n}", face=face_pb2.Face(
        image=photos(*ENROLLED[n % PEOPLE])[1].read_bytes(), kind=face_pb2.LOOSE))


@pytest.mark.parametrize(("kind", "stage"), [("aligned", "embed"), ("loose", "detect")])
def test_one_cameras_burst_is_batched_and_answered_in_order(engine, tmp_path, aligned, kind, stage):
    """A stream's crops are worked on side by side (up to stream_window), so one camera's burst reaches the
    recogniser (and, for LOOSE photos, the detector) in batches; with a window of one, every crop is a batch of
    its own. Answers keep their order. One recogniser worker, so that no second one shares the batches out."""
    engine = dataclasses.replace(engine, layout=engine.layout._replace(workers=1))
    burst = [request(aligned, n % PEOPLE, n) if kind == "aligned" else loose_request(n) for n in range(24)]
    per_batch = {}
    for window in (1, 8):
        with serving(engine, tmp_path / f"w{window}", stream_window=window, batch_wait_ms=20) as client:
            enrol(client)
            items, batches = batches_run(stage)
            answers = list(client.recognition.IdentifyStream(iter(burst), timeout=120))
            after_items, after_batches = batches_run(stage)
        assert [a.track_id for a in answers] == [r.track_id for r in burst]
        assert all(a.decision == face_pb2.MATCH and a.candidates[0].nik == nik_for(n % PEOPLE)
                   for n, a in enumerate(answers))
        per_batch[window] = (after_items - items) / (after_batches - batches)
    assert per_batch[1] == 1.0
    assert per_batch[8] > (2.0 if stage == "embed" else 1.5), per_batch


def test_a_command_center_watches_match_decisions_of_its_cameras(engine, tmp_path, aligned):
    with serving(engine, tmp_path / "g") as client:
        enrol(client)
        watch = client.recognition.WatchDecisions(recognition_pb2.WatchDecisionsRequest(camera_ids=["CAM-001"]),
                                                  timeout=60)
        time.sleep(0.3)  # subscribed before the cameras send
        junk = recognition_pb2.IdentifyRequest(camera_id="CAM-001", face=face_pb2.Face(image=b"junk"))
        list(client.recognition.IdentifyStream(iter([request(aligned, 1), junk, request(aligned, 2),
                                                     request(aligned, 1, 7)])))
        first, second = next(watch), next(watch)
        watch.cancel()
    assert [e.camera_id for e in (first, second)] == ["CAM-001", "CAM-001"]
    # as each decision is made (a stream's crops run side by side); CAM-002 and the INVALID junk are filtered
    assert sorted(e.track_id for e in (first, second)) == ["t0", "t7"]
    assert all(e.decision == face_pb2.MATCH and e.candidates[0].nik == nik_for(1) for e in (first, second))
    assert first.time.endswith("Z") and first.dropped_before == 0


def test_health_says_not_serving_until_the_gallery_is_loaded(engine, tmp_path, aligned):
    gateway = Gateway(engine_settings(tmp_path / "g"), engine=engine)
    gateway.listen()
    client = Client(gateway)
    health = health_pb2_grpc.HealthStub(client.channel)
    try:
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == \
            health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as raised:
            client.recognition.Identify(request(aligned, 0), timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        gateway.start()
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == \
            health_pb2.HealthCheckResponse.SERVING
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=10).read()
    finally:
        client.channel.close()
        gateway.stop(grace=1)
    text = metrics.decode()
    assert 'frgateway_requests_total{decision="REFUSED",operation="Identify"}' in text
    assert "frgateway_runtime_info{" in text and "CPUExecutionProvider" in text
    assert f'recognizer_runs="{os.cpu_count()} x 1-thread runs of up to 8 crops"' in text
    assert 'identify_threshold="0.4000 (measured default)"' in text
    for stage in ("decode", "detect", "embed", "search", "audit"):
        assert f'frgateway_stage_seconds_count{{stage="{stage}"}}' in text, stage
