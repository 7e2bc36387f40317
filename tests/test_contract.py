"""The contract integrators build against: exact names, current stubs, health and reflection served."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fr_gateway.audit.trail import OPERATIONS
from fr_gateway.contract import command_center_pb2, face_pb2, gallery_pb2, recognition_pb2, watchlists_pb2

ROOT = Path(__file__).resolve().parents[1]


def test_checked_in_stubs_match_the_proto_files():
    result = subprocess.run([sys.executable, "scripts/gen_proto.py", "--check"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def methods(module, service):
    desc = module.DESCRIPTOR.services_by_name[service]
    return {m.name: (m.input_type.name, m.output_type.name, m.client_streaming, m.server_streaming)
            for m in desc.methods}


def test_services_and_methods_are_exactly_the_contract():
    assert recognition_pb2.DESCRIPTOR.package == "frgateway.v1"
    assert methods(recognition_pb2, "Recognition") == {
        "Identify": ("IdentifyRequest", "IdentifyResponse", False, False),
        "IdentifyStream": ("IdentifyRequest", "IdentifyResponse", True, True),
        "Verify": ("VerifyRequest", "VerifyResponse", False, False),
        "WatchDecisions": ("WatchDecisionsRequest", "DecisionEvent", False, True),
        "GetInfo": ("GetInfoRequest", "GatewayInfo", False, False),
        "WatchAlerts": ("WatchAlertsRequest", "Alert", False, True),
    }
    assert methods(watchlists_pb2, "Watchlists") == {
        "CreateWatchlist": ("CreateWatchlistRequest", "WatchlistInfo", False, False),
        "ListWatchlists": ("ListWatchlistsRequest", "ListWatchlistsResponse", False, False),
        "AddEntry": ("AddEntryRequest", "AddEntryResponse", False, False),
        "RemoveEntry": ("RemoveEntryRequest", "RemoveEntryResponse", False, False),
        "Adjudicate": ("AdjudicateRequest", "AdjudicateResponse", False, False),
    }
    assert methods(command_center_pb2, "CommandCenter") == {
        "ListCameras": ("ListCamerasRequest", "ListCamerasResponse", False, False),
        "GetAnalytics": ("GetAnalyticsRequest", "Analytics", False, False),
        "RecordView": ("RecordViewRequest", "RecordViewResponse", False, False),
    }
    assert methods(gallery_pb2, "Gallery") == {
        "Enroll": ("EnrollRequest", "EnrollResponse", False, False),
        "EnrollStream": ("EnrollRequest", "EnrollSummary", True, False),
        "Remove": ("RemoveRequest", "RemoveResponse", False, False),
        "RotateKeys": ("RotateKeysRequest", "RotateKeysResponse", False, False),
    }


def test_every_served_method_has_an_audit_operation():
    served = {method.name for module, service in ((recognition_pb2, "Recognition"), (gallery_pb2, "Gallery"),
                                                  (watchlists_pb2, "Watchlists"),
                                                  (command_center_pb2, "CommandCenter"))
              for method in module.DESCRIPTOR.services_by_name[service].methods}
    assert served | {"Check", "Watch", "ServerReflectionInfo", "TLS handshake"} == set(OPERATIONS)


def fields(message):
    return {f.name: f.number for f in message.DESCRIPTOR.fields}


def test_fixed_fields_keep_their_numbers():
    assert fields(face_pb2.Face) == {"image": 1, "kind": 2}
    assert face_pb2.CropKind.Value("CROP_KIND_UNSPECIFIED") == 0
    assert {"ALIGNED", "LOOSE"} <= set(face_pb2.CropKind.keys())
    assert {"MATCH", "NO_MATCH", "NO_FACE", "REJECTED"} <= set(face_pb2.Decision.keys())
    assert fields(recognition_pb2.IdentifyRequest) == {"request_id": 1, "camera_id": 2, "face": 3, "top_k": 4,
                                                      "track_id": 5}
    assert {"request_id": 1, "candidates": 2, "decision": 3, "threshold": 4}.items() <= fields(
        recognition_pb2.IdentifyResponse).items()
    assert fields(recognition_pb2.Candidate) == {"nik": 1, "score": 2}
    assert fields(recognition_pb2.VerifyRequest) == {"request_id": 1, "probe": 2, "nik": 3, "reference_face": 4}
    assert [f.name for f in recognition_pb2.VerifyRequest.DESCRIPTOR.oneofs_by_name["reference"].fields] == [
        "nik", "reference_face"]
    assert {"request_id": 1, "match": 2, "score": 3, "threshold": 4, "decision": 5}.items() <= fields(
        recognition_pb2.VerifyResponse).items()
    assert fields(gallery_pb2.EnrollRequest) == {"nik": 1, "face": 2, "attributes": 3}
    assert fields(gallery_pb2.RemoveRequest) == {"nik": 1}


def test_domain_codes_mirror_the_contract():
    from fr_gateway.decision import Decision
    from fr_gateway.reasons import Reason

    assert {d.name for d in Decision} == set(face_pb2.Decision.keys()) - {"DECISION_UNSPECIFIED"}
    assert {r.name for r in Reason} == set(face_pb2.Reason.keys()) - {"REASON_UNSPECIFIED"}


def test_health_and_reflection_are_served(fresh):
    health = health_pb2_grpc.HealthStub(fresh.channel)
    for service in ("", "frgateway.v1.Recognition", "frgateway.v1.Gallery"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == \
            health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(fresh.channel)
    answer = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in answer.list_services_response.service}
    assert {"frgateway.v1.Recognition", "frgateway.v1.Gallery", "grpc.health.v1.Health"} <= names


def test_the_console_depends_on_the_contract_only_and_the_gateway_never_imports_it():
    def loaded(module: str) -> set[str]:
        found = subprocess.run([sys.executable, "-c", f"import sys, {module}; print(' '.join(sys.modules))"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        return {name for name in found if name.startswith("fr_gateway")}

    assert not {name for name in loaded("fr_gateway.server.app") if name.startswith("fr_gateway.console")}
    beyond = {name for name in loaded("fr_gateway.console.server")
              if not name.startswith(("fr_gateway.console", "fr_gateway.contract"))}
    assert beyond == {"fr_gateway"}
