"""Calibrations in the config: written beside the other settings, read back whole, applied only to the model
they were measured on, and each threshold's origin stated (a hand-set value stands for no measured point)."""

from __future__ import annotations

import json

import pytest

from fr_gateway.calibration import Calibration, StatedPoint
from fr_gateway.config import load_settings, save_calibration
from fr_gateway.faces.engine import resolve_thresholds
from fr_gateway.faces.models import locate_pack


@pytest.fixture(scope="module")
def pack():
    return locate_pack()


def calibration_for(fingerprint: str) -> Calibration:
    return Calibration(
        model="w600k_mbf.onnx", model_fingerprint=fingerprint, data="test data: 3 people", report="eval.json",
        date="2026-11-22",
        identify=StatedPoint(0.42, "FPIR", 0.01, 300, "FNIR", 0.05, 200, target=0.01),
        verify=StatedPoint(0.37, "FAR", 0.0, 5000, "TAR", 0.99, 400))


def test_a_calibration_is_written_beside_the_other_settings_and_read_back_whole(tmp_path, pack):
    config = tmp_path / "frg.toml"
    config.write_text('listen = "127.0.0.1:6000"\nidentify_threshold = 0.9\n')
    calibration = calibration_for(pack.fingerprint)
    save_calibration(config, calibration)
    settings = load_settings(config, environ={})
    assert settings.listen == "127.0.0.1:6000"
    assert (settings.identify_threshold, settings.verify_threshold) == (0.42, 0.37)
    assert settings.calibration == calibration  # target None survives TOML, which has no null


def test_a_calibration_can_come_from_the_environment_and_a_wrong_key_is_named(pack):
    table = calibration_for(pack.fingerprint).as_table()
    settings = load_settings(environ={"FRG_CALIBRATION": json.dumps(table)})
    assert settings.calibration.identify.target == 0.01
    table["verify"]["fals_rate"] = 0.0
    with pytest.raises(ValueError, match=r"calibration.*fals_rate"):
        load_settings(environ={"FRG_CALIBRATION": json.dumps(table)})


def test_each_threshold_says_where_it_comes_from(pack):
    shipped = resolve_thresholds(load_settings(environ={}), pack)
    assert shipped.identify.origin == "measured default" and shipped.identify.point.negatives > 0
    assert "(data/faces)" in shipped.verify.data

    calibrated = load_settings(environ={"FRG_CALIBRATION": json.dumps(calibration_for(pack.fingerprint).as_table()),
                                        "FRG_VERIFY_THRESHOLD": "0.5"})
    thresholds = resolve_thresholds(calibrated, pack)
    assert (thresholds.identify.value, thresholds.identify.origin) == (0.42, "calibrated")
    assert thresholds.identify.point.target == 0.01 and "test data" in thresholds.identify.data
    # a hand-set verify threshold overrides the calibrated one and stands for nothing measured
    assert (thresholds.verify.value, thresholds.verify.origin, thresholds.verify.point) == (0.5, "configured", None)


def test_a_calibration_of_another_model_is_refused(pack):
    other = load_settings(environ={"FRG_CALIBRATION": json.dumps(calibration_for("ab" * 32).as_table())})
    with pytest.raises(ValueError, match=r"was measured on w600k_mbf\.onnx"):
        resolve_thresholds(other, pack)
