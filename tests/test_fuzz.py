"""Random and mutated protobuf messages to every RPC of a real gateway: each call ends with a status (or an
answer), never a crash, and the gateway is still serving afterwards."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import grpc
import pytest
from conftest import ENROLLED, loose, nik_for, photos, serving
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fr_gateway.contract import face_pb2, gallery_pb2, recognition_pb2

RECOGNITION, GALLERY = "/frgateway.v1.Recognition/", "/frgateway.v1.Gallery/"
UNARY = (RECOGNITION + "Identify", RECOGNITION + "Verify", GALLERY + "Enroll", GALLERY + "Remove")
STREAMS = {RECOGNITION + "IdentifyStream": "stream_stream", GALLERY + "EnrollStream": "stream_unary"}
EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@functools.cache
def seeds() -> list[bytes]:
    """Well-formed requests of every kind, the seeds the mutations start from."""
    face = loose(photos(*ENROLLED[0])[1])
    small = face_pb2.Face(image=face.image[:600], kind=face_pb2.ALIGNED)
    return [message.SerializeToString() for message in (
        recognition_pb2.IdentifyRequest(camera_id="CAM-1", face=face, top_k=3),
        recognition_pb2.IdentifyRequest(camera_id="CAM-1", face=small),
        recognition_pb2.VerifyRequest(probe=small, nik=nik_for(0)),
        gallery_pb2.EnrollRequest(nik=nik_for(1), face=small, attributes={"province": "64"}),
        gallery_pb2.RemoveRequest(nik=nik_for(2)),
    )]



@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds())))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(("flip", "drop", "insert", "truncate")))
        if action == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "drop":
            del data[position]
        elif action == "insert":
            data.insert(position, draw(st.integers(0, 255)))
        else:
            del data[position:]
        if not data:
            break
    return bytes(data)


MESSAGES = st.one_of(st.binary(max_size=256), mutated())


@pytest.fixture(scope="module")
def gateway(engine, tmp_path_factory) -> Iterator:
    with serving(engine, tmp_path_factory.mktemp("fuzz"), rate_limit=0) as client:
        yield client
        health = health_pb2_grpc.HealthStub(client.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def answered(call) -> None:
    """An answer or a gRPC status; UNKNOWN would mean an exception escaped a servicer."""
    try:
        call()
    except grpc.RpcError as error:
        assert error.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), error.details()


@pytest.mark.parametrize("method", UNARY)
@EXAMPLES
@given(message=MESSAGES)
def test_unary_rpcs_survive_any_bytes(gateway, method, message):
    answered(lambda: gateway.channel.unary_unary(method)(message, timeout=30))


@pytest.mark.parametrize("method", STREAMS)
@EXAMPLES
@given(messages=st.lists(MESSAGES, min_size=1, max_size=3))
def test_streams_survive_any_bytes(gateway, method, messages):
    call = getattr(gateway.channel, STREAMS[method])(method)
    answered(lambda: list(call(iter(messages), timeout=30)) if STREAMS[method] == "stream_stream"
             else call(iter(messages), timeout=30))
