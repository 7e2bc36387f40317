"""One small evaluation end to end, as an operator runs it: `fr-gateway eval` starts a gateway in its own
process and measures it over gRPC (counts of searches and pairs, failures to acquire counted rather than
dropped, an operating point the data cannot show said so); `fr-gateway calibrate` writes thresholds into a
config, and a gateway served with it reports what they stand for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import grpc
import pytest
from conftest import DATA, fr_gateway, launch, stop

from fr_gateway.config import load_settings
from fr_gateway.contract import recognition_pb2, recognition_pb2_grpc

PEOPLE, IMAGES = 6, 3


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`fr-gateway eval` over 6 ORL people with 3 images each, a broken file and a pairs.csv; returns its
    output folder."""
    folder = tmp_path_factory.mktemp("eval")
    root = folder / "data"
    for person in range(1, PEOPLE + 1):
        (root / f"s{person}").mkdir(parents=True)
        for image in sorted((DATA / "orl" / f"s{person}").iterdir())[:IMAGES]:
            shutil.copy(image, root / f"s{person}" / image.name)
    (root / "s1" / "zz-broken.png").write_bytes(b"not an image")
    (root / "pairs.csv").write_text("img1,img2,same\ns1/1.png,s1/2.png,1\ns2/1.png,s3/1.png,0\n"
                                    "s4/1.png,s4/2.png,1\ns1/zz-broken.png,s2/1.png,0\n")
    result = fr_gateway("eval", str(root), "--out", str(folder / "report"), timeout=600)
    assert result.returncode == 0, result.stderr
    return folder / "report"


def test_eval_counts_every_search_pair_and_failure(evaluated):
    [run] = json.loads((evaluated / "eval.json").read_text())["runs"]
    report = run["summary"]
    identification = report["identification"]
    # s3 and s6 stay out: 4 enrolled people with 2 probes each (s1's broken file fails to acquire), and
    # 2 x 3 non-mated searches
    assert identification["mated_searches"] == 4 * (IMAGES - 1)
    assert identification["non_mated_searches"] == 2 * IMAGES
    assert report["failed_to_acquire"] == {"IMAGE_UNDECODABLE": 1}
    assert identification["rank1"] == 1.0
    pairs = report["verification"]["pairs file"]
    assert (pairs["genuine"], pairs["impostor"]) == (2, 1) and report["pairs_failed"] == {"IMAGE_UNDECODABLE": 1}
    gallery = report["verification"]["gallery templates"]
    assert gallery["genuine"] == 4 * (IMAGES - 1)
    assert gallery["impostor"] == 4 * (IMAGES - 1) * 3 + 2 * IMAGES * 4  # every probe against every template
    far_1e4 = gallery["tar_at_far"][2]
    assert far_1e4["threshold"] is None and far_1e4["needed"] == 10_000
    assert run["model"] == "w600k_mbf.onnx" and run["thresholds"]["identify"]["origin"] == "measured default"


def test_eval_writes_a_report_a_reader_can_check(evaluated):
    text = (evaluated / "report.md").read_text()
    assert "not shown: 6 non-mated searches, needs 10" in text  # FPIR 0.1 from 6 searches
    assert "IMAGE_UNDECODABLE 1" in text and "fr-gateway eval" in text
    for plot in ("det.png", "roc.png"):
        assert (evaluated / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calibrate_refuses_a_target_the_data_cannot_show(evaluated, tmp_path):
    result = fr_gateway("calibrate", str(evaluated / "eval.json"), "--config", str(tmp_path / "frg.toml"),
                        "--fpir", "0.1", "--far", "0.1")
    assert result.returncode == 2
    assert "FPIR 0.1 cannot be shown from 6 non-mated searches: it needs at least 10" in result.stderr
    assert not (tmp_path / "frg.toml").exists()


def test_a_calibrated_gateway_reports_what_its_thresholds_stand_for(evaluated, tmp_path):
    config = tmp_path / "frg.toml"
    config.write_text("top_k = 3\n")
    result = fr_gateway("calibrate", str(evaluated / "eval.json"), "--config", str(config),
                        "--identify-threshold", "0.45", "--far", "0.05")
    assert result.returncode == 0, result.stderr
    settings = load_settings(config, environ={})
    assert settings.top_k == 3 and settings.identify_threshold == 0.45  # other settings kept
    verify = settings.calibration.verify
    assert verify.target == 0.05 and verify.false_rate <= 0.05 and verify.negatives == 48 + 1
    assert settings.verify_threshold == verify.threshold

    gateway = launch(tmp_path, "--insecure", "--gallery", str(tmp_path / "gallery"), "--config", str(config))
    try:
        with grpc.insecure_channel(gateway.target) as channel:
            info = recognition_pb2_grpc.RecognitionStub(channel).GetInfo(recognition_pb2.GetInfoRequest(),
                                                                         timeout=30)
        shown = fr_gateway("info", "--target", gateway.target)
    finally:
        stop(gateway)
    assert info.identify.origin == "calibrated" and info.identify.threshold == pytest.approx(0.45)
    assert not info.identify.operating_point.HasField("target")  # a kept threshold, stated, not chosen
    assert info.identify.operating_point.negatives == 2 * IMAGES
    point = info.verify.operating_point
    assert (point.false_metric, point.target, point.negatives) == ("FAR", 0.05, 48 + 1)  # templates and pairs
    assert point.false_rate == pytest.approx(verify.false_rate) and point.other_rate == pytest.approx(verify.other_rate)
    assert str(evaluated / "eval.json") in info.verify.data
    assert shown.returncode == 0 and "chosen for FAR 0.05" in shown.stdout
    assert "search: FAISS flat index in process, exact" in shown.stdout  # which index answers, and how


def test_a_calibration_of_another_model_is_refused(evaluated, tmp_path):
    config = tmp_path / "frg.toml"
    assert fr_gateway("calibrate", str(evaluated / "eval.json"), "--config", str(config),
                      "--identify-threshold", "0.45", "--verify-threshold", "0.4").returncode == 0
    config.write_text(config.read_text().replace('model_fingerprint = "', 'model_fingerprint = "0'))
    result = fr_gateway("serve", "--insecure", "--gallery", str(tmp_path / "g"), "--config", str(config))
    assert result.returncode == 2 and "was measured on w600k_mbf.onnx" in result.stderr
