"""The `fr-gateway` command as operators run it: real processes, real gRPC on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator

import cv2
import onnx
import pytest
from conftest import ENROLLED, NOT_ENROLLED, fr_gateway, launch, nik_for, photos, start_gateway, stop

from fr_gateway.faces.models import locate_pack


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`fr-gateway serve --insecure` in its own process; yields HOST:PORT."""
    folder = tmp_path_factory.mktemp("served")
    gateway = launch(folder, "--insecure", "--gallery", str(folder / "gallery"))
    yield gateway.target
    log = stop(gateway)
    assert "PLAINTEXT" in log and "stopping" in log


def test_serve_without_certificates_or_insecure_refuses_to_start(tmp_path):
    result = fr_gateway("serve", "--gallery", str(tmp_path / "g"), "--certs", str(tmp_path / "no-certs"))
    assert result.returncode == 2
    assert "certs init" in result.stderr and "--insecure" in result.stderr


def test_enroll_identify_verify_and_camera_against_a_served_gateway(served, tmp_path, monkeypatch):
    manifest = tmp_path / "people.csv"
    rows = ["nik,photo,name"]
    rows += [f"{nik_for(i)},{photos(*ENROLLED[i])[0]},{'/'.join(ENROLLED[i])}" for i in range(3)]
    rows += [f"{nik_for(9)},{tmp_path / 'missing.jpg'},nobody", f"1234,{photos(*ENROLLED[4])[0]},bad nik"]
    manifest.write_text("\n".join(rows) + "\n")
    result = fr_gateway("enroll", "--manifest", str(manifest), "--target", served)
    assert result.returncode == 0, result.stderr
    assert "enrolled 3, replaced 0, unchanged 0, rejected 2 of 5 records (NIK_INVALID 1, PHOTO_NOT_FOUND 1)" \
        in result.stdout
    rejects = (tmp_path / "people.rejects.csv").read_text()
    assert "missing.jpg not found" in rejects and "NIK_INVALID" in rejects

    found = fr_gateway("identify", "--target", served, "--image", str(photos(*ENROLLED[1])[1]))
    assert found.returncode == 0 and found.stdout.startswith("MATCH")
    assert f"1. NIK {nik_for(1)}" in found.stdout
    stranger = fr_gateway("identify", "--target", served, "--image", str(photos(*NOT_ENROLLED[0])[0]))
    assert stranger.stdout.startswith("NO_MATCH")

    same = fr_gateway("verify", "--target", served, "--probe", str(photos(*ENROLLED[2])[1]), "--nik", nik_for(2))
    assert same.returncode == 0 and same.stdout.startswith("MATCH")
    pair = fr_gateway("verify", "--target", served, "--probe", str(photos(*ENROLLED[2])[1]),
                      "--reference", str(photos(*ENROLLED[0])[0]))
    assert pair.stdout.startswith("NO_MATCH")
    unknown = fr_gateway("verify", "--target", served, "--probe", str(photos(*ENROLLED[2])[1]), "--nik", nik_for(8))
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr

    frames = tmp_path / "frames"
    frames.mkdir()
    for n, who in enumerate([ENROLLED[0], NOT_ENROLLED[1], ENROLLED[2]]):
        shutil.copy(photos(*who)[1], frames / f"{n:03d}{photos(*who)[1].suffix}")
    decisions, view = tmp_path / "decisions.jsonl", tmp_path / "view.avi"
    camera = fr_gateway("camera", "--source", str(frames), "--camera-id", "GATE-7", "--target", served,
                        "--jsonl", str(decisions), "--annotate", str(view))
    assert camera.returncode == 0, camera.stderr
    assert cv2.VideoCapture(str(view)).get(cv2.CAP_PROP_FRAME_COUNT) == 3  # photos of three sizes, one video
    lines = [line for line in camera.stdout.splitlines() if line.startswith("[")]
    assert lines[0].startswith("[00:00:00.000] frame     0 face 1 GATE-7-t1  MATCH") and nik_for(0) in lines[0]
    records = [json.loads(line) for line in decisions.read_text().splitlines()]
    first_faces = [(r["frame"], r["decision"], r["nik"]) for r in records if r["face"] == 1]
    assert first_faces == [(0, "MATCH", nik_for(0)), (1, "NO_MATCH", ""), (2, "MATCH", nik_for(2))]
    assert "camera GATE-7: 3 frames" in camera.stdout
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    headless = fr_gateway("camera", "--source", str(frames), "--camera-id", "GATE-7", "--target", served, "--show")
    assert headless.returncode == 2 and "no display" in headless.stderr and "--annotate" in headless.stderr


def test_offline_enroll_from_jsonl(tmp_path):
    manifest = tmp_path / "people.jsonl"
    manifest.write_text("\n".join(json.dumps({"nik": nik_for(i), "photo": str(photos(*ENROLLED[i])[0]),
                                              "attributes": {"province": "64"}}) for i in range(2)) + "\n")
    result = fr_gateway("enroll", "--manifest", str(manifest), "--gallery", str(tmp_path / "gallery"))
    assert result.returncode == 0, result.stderr
    assert "enrolled 2, replaced 0, unchanged 0, rejected 0 of 2 records" in result.stdout
    again = fr_gateway("enroll", "--manifest", str(manifest), "--gallery", str(tmp_path / "gallery"))
    assert "enrolled 0, replaced 0, unchanged 2, rejected 0 of 2 records" in again.stdout


def test_gallery_of_another_model_is_refused(engine, tmp_path):
    """A re-exported recogniser (same weights, different file) has another fingerprint: the gallery built with
    the default model must not be served by it, and the operator is told why."""
    gallery = tmp_path / "gallery"
    gateway = start_gateway(engine, gallery)
    gateway.stop(grace=0)
    pack = locate_pack()
    other = tmp_path / "other-pack"
    other.mkdir()
    shutil.copy(pack.detector_file, other / "det.onnx")
    model = onnx.load(str(pack.recognizer_file))
    model.doc_string = "re-exported"
    onnx.save(model, str(other / "rec.onnx"))
    assert locate_pack(str(other)).fingerprint != pack.fingerprint

    result = fr_gateway("serve", "--insecure", "--listen", "127.0.0.1:0", "--gallery", str(gallery),
                        "--model-dir", str(other))
    assert result.returncode == 3
    assert "was built with model w600k_mbf.onnx" in result.stderr
    assert "rec.onnx" in result.stderr and "cannot be compared" in result.stderr


def test_a_running_gateway_writes_its_threads_stacks_on_sigusr1_and_still_stops_cleanly(tmp_path):
    gateway = launch(tmp_path, "--insecure", "--gallery", str(tmp_path / "gallery"))
    try:
        gateway.process.send_signal(signal.SIGUSR1)
        for _ in range(100):
            if "most recent call first" in gateway.log:
                break
            time.sleep(0.1)
    finally:
        log = stop(gateway)
    assert "most recent call first" in log and 'in serve' in log and "stopping" in log
