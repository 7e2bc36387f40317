"""Execution providers: a GPU that is asked for but cannot run is said in the log, and the models still answer
on the CPU (this machine has no GPU, as the CI machine has none)."""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np
import pytest

from fr_gateway.config import load_settings
from fr_gateway.faces.engine import load_detector, recogniser_layout
from fr_gateway.faces.models import choose_providers, create_session, locate_pack


def test_a_missing_gpu_provider_is_named_and_the_cpu_is_kept(caplog):
    with caplog.at_level(logging.WARNING, logger="fr_gateway.faces.models"):
        chosen = choose_providers(("CUDAExecutionProvider",))
    assert chosen == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider" in caplog.text and "not available" in caplog.text


def test_a_gpu_provider_that_does_not_start_is_said_and_the_session_runs_on_the_cpu(caplog):
    pack = locate_pack()
    with caplog.at_level(logging.WARNING, logger="fr_gateway.faces.models"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ONNX Runtime's own word for the same thing
        session = create_session(pack.recognizer_file, ["CUDAExecutionProvider", "CPUExecutionProvider"], 1)
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert "w600k_mbf.onnx: providers ['CUDAExecutionProvider'] did not start" in caplog.text
    blob = np.random.default_rng(0).random((2, 3, 112, 112), dtype=np.float32)
    (embeddings,) = session.run(None, {session.get_inputs()[0].name: blob})
    assert embeddings.shape == (2, 512)


def test_the_default_on_a_cpu_runtime_says_nothing(caplog):
    with caplog.at_level(logging.WARNING, logger="fr_gateway.faces.models"):
        session = create_session(locate_pack().recognizer_file, choose_providers(), 1)
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert caplog.text == ""


@pytest.mark.parametrize(("spinning", "entry"), [(None, "0"), ("1", "1")])
def test_idle_onnx_threads_spin_only_when_asked(spinning, entry):
    """The detector's and the recogniser's sessions share the cores: by default neither spins while idle."""
    environ = {} if spinning is None else {"FRG_ORT_SPINNING": spinning}
    detector = load_detector(load_settings(environ=environ), locate_pack(), ["CPUExecutionProvider"])
    options = detector.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == entry


CORES = os.cpu_count()


@pytest.mark.parametrize(("environ", "providers", "layout"), [
    ({}, ["CPUExecutionProvider"], (CORES, 1, 8)),
    ({"FRG_EMBED_WORKERS": "1"}, ["CPUExecutionProvider"], (1, CORES, 8 if CORES == 1 else 32)),
    ({"FRG_EMBED_WORKERS": "2", "FRG_INTRA_OP_THREADS": "3", "FRG_BATCH_SIZE": "16"}, ["CPUExecutionProvider"],
     (2, 3, 16)),
    ({}, ["CUDAExecutionProvider", "CPUExecutionProvider"], (1, CORES, 32)),
])
def test_the_recogniser_runs_one_single_threaded_batch_per_core_on_the_cpu(environ, providers, layout):
    """Side-by-side runs of up to 8 crops scale better than one run split over the cores
    (benchmarks/realtime.md); a GPU gets one worker and batches of 32; every knob can be set."""
    assert recogniser_layout(load_settings(environ=environ), providers) == layout


def test_the_scrfd_internals_the_batched_detector_reads_are_those_of_the_pinned_insightface():
    """SCRFD has no public API for batches: FaceDetector letterboxes and decodes a batch itself from the
    model's anchor layout (`_num_anchors`, `_feat_stride_fpn`, `fmc`) and thresholds. These are private to
    insightface 0.7.3; this fails, naming what is gone, if an upgrade renames them."""
    from importlib.metadata import version

    settings = load_settings(environ={})
    detector = load_detector(settings, locate_pack(settings.model_dir or None), choose_providers(()))
    scrfd = detector._scrfd
    read = ("_num_anchors", "_feat_stride_fpn", "fmc", "det_thresh", "input_mean", "input_std", "input_name",
            "output_names", "session", "nms")
    missing = [name for name in read if not hasattr(scrfd, name)]
    assert not missing, f"insightface {version('insightface')} SCRFD no longer has {missing}: update FaceDetector"
    assert version("insightface") == "0.7.3", "insightface changed: check FaceDetector's use of SCRFD internals"
