"""Per-client limits on a real gateway: rate, open streams, undecodable messages, deadlines; every refusal
is a clear status, is audited, and the gateway stays up."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from conftest import DATA, ENROLLED, launch, loose, nik_for, photos, serving, stop
from test_enrolment import write_manifest

from fr_gateway.audit.export import Selection, export
from fr_gateway.audit.keys import AuditorKeys
from fr_gateway.contract import face_pb2, recognition_pb2, recognition_pb2_grpc
from fr_gateway.enrolment import run_enrolment
from fr_gateway.faces.detector import align
from fr_gateway.faces.images import PixelBudget
from fr_gateway.reasons import Problem, Reason
from fr_gateway.server.threads import ElasticThreadPool

IDENTIFY = "/frgateway.v1.Recognition/Identify"


def audited_refusals(client) -> list[str]:
    """Close the gateway's log and read back the refusals it holds, with the auditor's keys."""
    client.gateway.trail.close()
    folder = client.gateway.trail.log.folder
    out = io.StringIO()
    export(folder, AuditorKeys.load(folder.parent / "keys" / "audit-auditor"), out, "csv", Selection())
    return [line for line in out.getvalue().splitlines() if ",REFUSED," in line]


def test_rate_limit_answers_resource_exhausted_and_is_audited(engine, tmp_path):
    with serving(engine, tmp_path / "g", rate_limit=0.5, rate_burst=3) as client:
        codes = []
        for _ in range(5):
            with pytest.raises(grpc.RpcError) as raised:
                client.recognition.Verify(recognition_pb2.VerifyRequest(), timeout=10)
            codes.append(raised.value.code())
        assert codes[:3] == [grpc.StatusCode.INVALID_ARGUMENT] * 3
        assert codes[3:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
        refusals = audited_refusals(client)
        assert len(refusals) == 2 and all("RESOURCE_EXHAUSTED" in line and "rate limit" in line for line in refusals)


def test_a_stream_cannot_dodge_the_rate_limit(engine, tmp_path):
    """A stream that outruns its client's rate is slowed to it; one whose next token is further away than
    the guard waits is refused."""
    face = loose(photos(*ENROLLED[0])[1])
    with serving(engine, tmp_path / "g", rate_limit=2, rate_burst=2) as client:
        started = time.monotonic()
        answers = list(client.recognition.IdentifyStream(
            iter([recognition_pb2.IdentifyRequest(camera_id="C", face=face)] * 6), timeout=60))
        assert len(answers) == 6 and time.monotonic() - started >= 4 / 2  # four messages waited for tokens
    with serving(engine, tmp_path / "h", rate_limit=0.1, rate_burst=3) as client:
        stream = client.recognition.IdentifyStream(
            iter([recognition_pb2.IdentifyRequest(camera_id="C", face=face)] * 6), timeout=60)
        with pytest.raises(grpc.RpcError) as raised:
            list(stream)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_bulk_enrolment_run_again_at_the_rate_limit_finishes(engine, tmp_path):
    """A re-run sends every row at once (the gateway skips the unchanged ones): it runs at the client's rate
    instead of failing with RESOURCE_EXHAUSTED part-way."""
    rows = [(nik_for(n), path, "64") for n, path in enumerate(sorted(DATA.glob("orl/*/*.png"))[:120])]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    with serving(engine, tmp_path / "g", rate_limit=40, rate_burst=20) as client:
        first = run_enrolment(manifest, tmp_path / "r.csv", channel=client.channel, progress=False)
        again = run_enrolment(manifest, tmp_path / "r.csv", channel=client.channel, progress=False)
    assert first.counts["enrolled"] + first.counts["rejected"] == 120 and first.counts["enrolled"] > 100
    assert (again.counts["unchanged"], again.counts["rejected"]) == (first.counts["enrolled"], first.counts["rejected"])


def test_open_streams_per_client_are_capped(engine, tmp_path):
    with serving(engine, tmp_path / "g", streams_per_client=1) as client:
        release = threading.Event()

        def held() -> Iterator[recognition_pb2.IdentifyRequest]:
            yield recognition_pb2.IdentifyRequest(camera_id="C", face=loose(photos(*ENROLLED[0])[1]))
            release.wait(30)

        first = client.recognition.IdentifyStream(held(), timeout=60)
        next(first)  # the first stream is open and answered
        second = client.recognition.IdentifyStream(iter([recognition_pb2.IdentifyRequest()]), timeout=10)
        with pytest.raises(grpc.RpcError) as raised:
            list(second)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        release.set()
        list(first)
        third = client.recognition.IdentifyStream(iter([recognition_pb2.IdentifyRequest(camera_id="C")]), timeout=10)
        assert len(list(third)) == 1  # the slot is free again


def test_bytes_that_are_not_a_message_are_invalid_argument(fresh):
    raw = fresh.channel.unary_unary(IDENTIFY)
    with pytest.raises(grpc.RpcError) as raised:
        raw(b"\xff\xff\xff\xff", timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid Identify request" in raised.value.details()


def test_an_expired_deadline_leaves_the_gateway_serving(fresh):
    face = loose(photos(*ENROLLED[0])[1])
    with pytest.raises(grpc.RpcError) as raised:
        fresh.recognition.Identify(recognition_pb2.IdentifyRequest(camera_id="C", face=face), timeout=0.001)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    answer = fresh.recognition.Identify(recognition_pb2.IdentifyRequest(camera_id="C", face=face), timeout=30)
    assert answer.camera_id == "C"


def test_the_decode_budget_admits_what_fits_and_refuses_after_waiting():
    budget = PixelBudget(100, wait_s=0.2)
    with budget.reserved(60):
        with budget.reserved(40):  # together at the budget: admitted
            pass
        with pytest.raises(Problem, match="decode budget of 0 Mpx is taken") as refused, budget.reserved(50):
            pass
        assert refused.value.reason is Reason.GATEWAY_OVERLOADED
    with budget.reserved(100):  # given back: the whole budget again
        pass


def test_the_thread_pools_give_their_threads_back_when_the_load_is_gone():
    pool = ElasticThreadPool(64, "test", idle_s=0.2)
    release = threading.Event()
    running = [pool.submit(release.wait, 10) for _ in range(40)]
    assert pool.threads == 40
    release.set()
    assert all(future.result(10) for future in running)
    assert [future.result(10) for future in [pool.submit(pow, 2, n) for n in range(100)]] == [2**n for n in range(100)]
    deadline = time.monotonic() + 10
    while pool.threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.threads == 0
    assert pool.submit(pow, 3, 2).result(10) == 9  # and starts them again when work comes
    pool.shutdown()


def bomb_request() -> recognition_pb2.IdentifyRequest:
    """A 150 KB PNG of 6000x6600 pixels, sent as a LOOSE photo: about 0.6 GB and seconds to decode."""
    image = np.full((6600, 6000, 3), 128, dtype=np.uint8)
    image[::500] = 30
    return recognition_pb2.IdentifyRequest(face=face_pb2.Face(image=cv2.imencode(".png", image)[1].tobytes(),
                                                               kind=face_pb2.LOOSE))


def test_eight_bomb_images_at_once_stay_within_the_decode_budget(tmp_path):
    """Eight callers send a 150 KB PNG of 6000x6600 pixels at once (about 0.6 GB each to decode): the gateway
    decodes two at a time within its 80 Mpx budget, answers each one (decoded, or RESOURCE_EXHAUSTED when its
    turn does not come within 5 s), stays within 2 GiB (without the budget: 5.4-5.9, benchmarks/soak.md) and
    gives the images' memory back once answered (a reference cycle once kept 2 GB of them until Python's cycle
    collector ran)."""
    bomb = bomb_request()
    gateway = launch(tmp_path, "--insecure", "--gallery", str(tmp_path / "gallery"), rate_limit=0)
    before, peak, done = rss_mib(gateway.process.pid), 0.0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, rss_mib(gateway.process.pid))

    def identify(stub: recognition_pb2_grpc.RecognitionStub) -> str:
        try:
            return face_pb2.Decision.Name(stub.Identify(bomb, timeout=120).decision)
        except grpc.RpcError as exc:
            return exc.code().name

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with grpc.insecure_channel(gateway.target) as channel, futures.ThreadPoolExecutor(8) as callers:
            stub = recognition_pb2_grpc.RecognitionStub(channel)
            answers = list(callers.map(lambda _: identify(stub), range(8)))
        after = rss_mib(gateway.process.pid)
    finally:
        done.set()
        sampler.join()
        stop(gateway)
    assert set(answers) <= {"NO_FACE", "RESOURCE_EXHAUSTED"} and answers.count("NO_FACE") >= 2, answers
    assert peak < 2 * 1024, f"peak resident memory {peak:.0f} MiB"
    assert after < before + 512, f"resident memory {before:.0f} MiB before the burst, {after:.0f} MiB after"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_large_photos_being_decoded_hold_up_no_camera(engine, tmp_path):
    """Photos are decoded on threads, not on the event loop that reads and answers every stream: a camera's crop
    sent while four 6000x6600 photos decode is answered before any of them. (Decoded on the loop, each photo
    held every stream for seconds.)"""
    image = cv2.imread(str(photos(*ENROLLED[0])[0]))
    crop = cv2.imencode(".jpg", align(image, engine.detector.detect(image)[0]))[1].tobytes()
    bomb = bomb_request()
    gateway = launch(tmp_path, "--insecure", "--gallery", str(tmp_path / "gallery"), rate_limit=0)
    try:
        with grpc.insecure_channel(gateway.target) as channel, futures.ThreadPoolExecutor(4) as callers:
            stub = recognition_pb2_grpc.RecognitionStub(channel)
            photos_sent = [callers.submit(stub.Identify, bomb, timeout=120) for _ in range(4)]
            time.sleep(1.0)  # the photos are being decoded
            [answer] = stub.IdentifyStream(iter([recognition_pb2.IdentifyRequest(
                camera_id="gate-1", face=face_pb2.Face(image=crop, kind=face_pb2.ALIGNED))]), timeout=120)
            answered_before = [sent.done() for sent in photos_sent]
            futures.wait(photos_sent)
    finally:
        stop(gateway)
    assert answer.decision == face_pb2.NO_MATCH, answer
    assert not any(answered_before), "the crop waited for a large photo's decoding"
