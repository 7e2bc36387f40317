"""Per-client limits on a real gateway: rate, open streams, undecodable messages, deadlines; every refusal
is a clear status, is audited, and the gateway stays up."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import grpc
import pytest
from conftest import ENROLLED, loose, photos, serving

from fr_gateway.audit.export import Selection, export
from fr_gateway.audit.keys import AuditorKeys
from fr_gateway.contract import recognition_pb2

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
    with serving(engine, tmp_path / "g", rate_limit=0.5, rate_burst=3) as client:
        face = loose(photos(*ENROLLED[0])[1])
        stream = client.recognition.IdentifyStream(
            iter([recognition_pb2.IdentifyRequest(camera_id="C", face=face)] * 6), timeout=60)
        with pytest.raises(grpc.RpcError) as raised:
            list(stream)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


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
