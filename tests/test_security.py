"""Mutual TLS, roles and the audit trail, end to end: `fr-gateway certs init`, a gateway served over TLS in its
own process, clients with good, missing, foreign, expired and wrong-role certificates, a camera that spoofs
another camera's id; then the auditor verifies and exports the log with the CLI."""

from __future__ import annotations

import datetime
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import ENROLLED, Site, fr_gateway, launch, loose, nik_for, photos, refused, stop

from fr_gateway.contract import gallery_pb2, gallery_pb2_grpc, recognition_pb2, recognition_pb2_grpc
from fr_gateway.security.certs import Authority, Principal

CAMERA = Principal("camera", "CAM-017")
CLIENTS = (CAMERA, Principal("verifier", "V-1"), Principal("integrator", "DUKCAPIL-1"), Principal("auditor", "AU-1"))


def identify(channel: grpc.Channel, camera_id: str) -> recognition_pb2.IdentifyResponse:
    face = loose(photos(*ENROLLED[0])[1])
    return recognition_pb2_grpc.RecognitionStub(channel).Identify(
        recognition_pb2.IdentifyRequest(camera_id=camera_id, face=face), timeout=30)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site = Site(tmp_path_factory.mktemp("site"))
    clients = [arg for principal in CLIENTS for arg in ("--client", f"{principal.role}:{principal.identity}")]
    made = fr_gateway("certs", "init", "--dir", str(site.certs), *clients)
    assert made.returncode == 0, made.stderr
    # the gateway's audit keys where it looks by default: beside its gallery
    keys = fr_gateway("audit", "keys", "init", "--gateway", str(site.folder / "keys" / "audit-gateway"),
                      "--auditor", str(site.auditor_keys))
    assert keys.returncode == 0, keys.stderr
    # an expired camera certificate from the right CA, and a camera certificate from another CA
    Authority.load(site.certs).issue_client(site.folder / "expired", CAMERA, days=1,
                                            not_before=datetime.datetime.now(datetime.UTC) - datetime.timedelta(3))
    Authority.create().issue_client(site.folder / "foreign", CAMERA)
    gateway = launch(site.folder, "--certs", str(site.certs), "--gallery", str(site.folder / "g"))
    try:
        site.target = gateway.target
        with site.channel(Principal("integrator", "DUKCAPIL-1")) as channel:
            gallery_pb2_grpc.GalleryStub(channel).Enroll(
                gallery_pb2.EnrollRequest(nik=nik_for(0), face=loose(photos(*ENROLLED[0])[0])), timeout=60)
        yield site
    finally:
        site.log = stop(gateway)


def test_a_camera_with_its_certificate_is_served(site):
    with site.channel(CAMERA) as channel:
        response = identify(channel, CAMERA.identity)
        info = recognition_pb2_grpc.RecognitionStub(channel).GetInfo(recognition_pb2.GetInfoRequest(), timeout=10)
    assert response.candidates[0].nik == nik_for(0)
    assert info.gallery_size == 1 and info.identify.threshold == pytest.approx(response.threshold)


def test_no_foreign_or_expired_certificate_gets_in(site):
    with site.channel(None) as channel:
        assert refused(lambda: identify(channel, CAMERA.identity)) == grpc.StatusCode.UNAVAILABLE
    with site.channel(CAMERA, site.folder / "foreign") as channel:
        assert refused(lambda: identify(channel, CAMERA.identity)) == grpc.StatusCode.UNAVAILABLE
    with site.channel(CAMERA, site.folder / "expired") as channel:
        assert refused(lambda: identify(channel, CAMERA.identity)) == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(site.target) as channel:  # plaintext to the TLS port
        assert refused(lambda: identify(channel, CAMERA.identity)) == grpc.StatusCode.UNAVAILABLE


def test_roles_are_deny_by_default(site):
    with site.channel(Principal("verifier", "V-1")) as channel:
        assert refused(lambda: identify(channel, "")) == grpc.StatusCode.PERMISSION_DENIED
    with site.channel(Principal("auditor", "AU-1")) as channel:
        assert refused(lambda: identify(channel, "")) == grpc.StatusCode.PERMISSION_DENIED
        info = recognition_pb2_grpc.RecognitionStub(channel).GetInfo
        assert refused(lambda: info(recognition_pb2.GetInfoRequest(), timeout=10)) == \
            grpc.StatusCode.PERMISSION_DENIED
    with site.channel(CAMERA) as channel:
        enrol = gallery_pb2_grpc.GalleryStub(channel).Remove
        assert refused(lambda: enrol(gallery_pb2.RemoveRequest(nik=nik_for(0)), timeout=10)) == \
            grpc.StatusCode.PERMISSION_DENIED
    with site.channel(Principal("integrator", "DUKCAPIL-1")) as channel:  # enrols and erases, keys are the admin's
        rotate = gallery_pb2_grpc.GalleryStub(channel).RotateKeys
        assert refused(lambda: rotate(gallery_pb2.RotateKeysRequest(), timeout=10)) == \
            grpc.StatusCode.PERMISSION_DENIED


def test_a_camera_cannot_speak_for_another_camera(site):
    with site.channel(CAMERA) as channel:
        assert refused(lambda: identify(channel, "CAM-999")) == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as flooding:  # a megabyte of camera id is refused, not echoed
            identify(channel, "X" * 2**20)
        assert flooding.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert len(flooding.value.details()) < 300 and "(+1048512 characters)" in flooding.value.details()
        stream = recognition_pb2_grpc.RecognitionStub(channel).IdentifyStream(iter([
            recognition_pb2.IdentifyRequest(camera_id="CAM-017", face=loose(photos(*ENROLLED[0])[1])),
            recognition_pb2.IdentifyRequest(camera_id="CAM-999", face=loose(photos(*ENROLLED[0])[1])),
        ]), timeout=30)
        first = next(stream)
        assert first.camera_id == "CAM-017"
        assert refused(lambda: next(stream)) == grpc.StatusCode.PERMISSION_DENIED


def test_the_auditor_verifies_and_exports_every_decision_and_refusal(site):
    with site.channel(CAMERA) as channel:
        identify(channel, "")  # an empty camera_id is the certificate's
    witness = site.auditor_keys / "witness.jsonl"  # beside the auditor's keys, where `audit keys init` put them
    deadline = time.monotonic() + 10
    while not witness.exists() and time.monotonic() < deadline:  # the first checkpoint comes within a second
        time.sleep(0.1)
    verified = fr_gateway("audit", "verify", "--dir", str(site.audit_dir), "--keys", str(site.auditor_keys))
    assert verified.returncode == 0 and verified.stdout.startswith("INTACT"), verified.stdout
    # the gateway kept its witness there, and verify found it unasked
    assert f"checked against the witness file {witness.resolve()}: checkpoint" in verified.stdout
    first, *records = site.export()
    assert first["verification"]["intact"]
    by_operation = {}
    for record in records:
        by_operation.setdefault(record["operation"], []).append(record)
    enrol = by_operation["Enroll"][0]
    assert (enrol["caller"], enrol["role"], enrol["decision"], enrol["nik"]) == \
        ("integrator/DUKCAPIL-1", "integrator", "ENROLLED", nik_for(0))
    matches = [r for r in by_operation["Identify"] if r["decision"] == "MATCH"]
    assert matches and all(r["caller"] == "camera/CAM-017" and r["camera_id"] == "CAM-017" for r in matches)
    assert matches[0]["candidates"][0]["nik"] == nik_for(0) and matches[0]["threshold"] > 0
    assert matches[0]["model"] and matches[0]["gallery_version"] >= 1 and matches[0]["latency_ms"] > 0
    assert all("image" not in r and "template" not in r for r in records)
    refusals = [r for r in records if r["decision"] == "REFUSED"]
    spoof = [r for r in refusals if r["camera_id"] == "CAM-999"]
    assert spoof and {r["status"] for r in spoof} == {"PERMISSION_DENIED"}
    flood = [r for r in refusals if r["camera_id"].startswith("XXXX")]
    assert [r["camera_id"] for r in flood] == ["X" * 64 + "...(+1048512 characters)"]
    assert len(flood[0]["detail"]) <= 512 + 40
    denied = {(r["caller"], r["operation"]) for r in refusals if r["status"] == "PERMISSION_DENIED"}
    assert {("verifier/V-1", "Identify"), ("auditor/AU-1", "Identify"), ("camera/CAM-017", "Remove")} <= denied
    handshakes = " | ".join(r["detail"] for r in by_operation["TLS handshake"])
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in handshakes or "did not return a certificate" in handshakes.lower()
    assert "certificate has expired" in handshakes
    assert "unable to get local issuer certificate" in handshakes
    only_spoof = site.export("--camera", "CAM-999", "--operation", "identify")[1:]
    assert only_spoof and all(r["camera_id"] == "CAM-999" for r in only_spoof)


def tls_flags(site: Site, principal: Principal, certs: Path | None = None) -> list[str]:
    stem = (certs or site.certs) / f"{principal.role}-{principal.identity}"
    return ["--cert", f"{stem}.pem", "--key", f"{stem}.key", "--ca", str(site.certs / "ca.pem")]


def test_the_cli_speaks_for_the_camera_its_certificate_names_and_checks_its_files_before_calling(site):
    image = str(photos(*ENROLLED[0])[1])
    found = fr_gateway("identify", "--target", site.target, "--image", image, *tls_flags(site, CAMERA))
    assert found.returncode == 0 and found.stdout.startswith("MATCH"), found.stderr
    assert f"1. NIK {nik_for(0)}" in found.stdout
    verifier = fr_gateway("verify", "--target", site.target, "--probe", image, "--nik", nik_for(0),
                          *tls_flags(site, Principal("verifier", "V-1")))
    assert verifier.returncode == 0 and verifier.stdout.startswith("MATCH"), verifier.stderr

    foreign = fr_gateway("identify", "--target", site.target, "--image", image,
                         *tls_flags(site, CAMERA, site.folder / "foreign"))
    assert foreign.returncode == 2 and "was not issued by the CA in --ca" in foreign.stderr
    expired = fr_gateway("identify", "--target", site.target, "--image", image,
                         *tls_flags(site, CAMERA, site.folder / "expired"))
    assert expired.returncode == 2 and "not now: the gateway would refuse it" in expired.stderr
    without_key = [flag for flag in tls_flags(site, CAMERA) if not flag.endswith(".key") and flag != "--key"]
    no_key = fr_gateway("identify", "--target", site.target, "--image", image, *without_key)
    assert no_key.returncode == 2 and "--cert, --key and --ca together: --key missing" in no_key.stderr
    missing = fr_gateway("identify", "--target", site.target, "--image", image,
                         *tls_flags(site, Principal("camera", "NOBODY")))
    assert missing.returncode == 2 and "camera-NOBODY.pem does not exist" in missing.stderr
    for result in (foreign, expired, no_key, missing):
        assert "Traceback" not in result.stderr and "Socket closed" not in result.stderr
    mismatched = [*tls_flags(site, CAMERA)[:2], "--key", str(site.certs / "verifier-V-1.key"),
                  "--ca", str(site.certs / "ca.pem")]
    wrong_key = fr_gateway("identify", "--target", site.target, "--image", image, *mismatched)
    assert wrong_key.returncode == 2 and "is not this certificate's key" in wrong_key.stderr


def test_the_auditor_is_told_wrong_keys_and_a_missing_folder_apart_from_tampering(site, tmp_path):
    other = tmp_path / "other-auditor"
    assert fr_gateway("audit", "keys", "init", "--gateway", str(tmp_path / "other-gateway"),
                      "--auditor", str(other)).returncode == 0
    wrong = fr_gateway("audit", "verify", "--dir", str(site.audit_dir), "--keys", str(other))
    assert wrong.returncode == 2 and wrong.stdout.startswith("NOT VERIFIED: none of the log's signatures")
    assert "DAMAGED" not in wrong.stdout
    nowhere = fr_gateway("audit", "verify", "--dir", str(tmp_path / "no-such-log"), "--keys", str(site.auditor_keys))
    assert nowhere.returncode == 2 and "does not exist" in nowhere.stderr and "DAMAGED" not in nowhere.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    hollow = fr_gateway("audit", "verify", "--dir", str(empty), "--keys", str(site.auditor_keys))
    assert hollow.returncode == 2 and "holds no audit log" in hollow.stderr


def test_an_export_that_could_select_nothing_is_refused_with_the_flag_named(site):
    def export(*args: str) -> subprocess.CompletedProcess:
        return fr_gateway("audit", "export", "--dir", str(site.audit_dir), "--keys", str(site.auditor_keys), *args)

    unknown = export("--operation", "Frobnicate")
    assert unknown.returncode == 2 and "--operation 'Frobnicate'" in unknown.stderr and "Identify" in unknown.stderr
    backwards = export("--from", "2026-12-01", "--to", "2026-11-01")
    assert backwards.returncode == 2 and "--from must come before --to" in backwards.stderr
    local_format = export("--from", "30/11/2026")
    assert local_format.returncode == 2 and "argument --from: '30/11/2026' is not an ISO date" in local_format.stderr
    for result in (unknown, backwards, local_format):
        assert "Traceback" not in result.stderr and not result.stdout
