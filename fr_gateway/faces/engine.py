"""Load a model pack once (detector and embedder sessions), and build the settings-dependent parts on it:
the cropper with its limits and quality gate, and the thresholds."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import NamedTuple

from fr_gateway.calibration import Threshold, Thresholds
from fr_gateway.config import Settings
from fr_gateway.faces.crops import FaceCropper, ImageLimits
from fr_gateway.faces.detector import FaceDetector
from fr_gateway.faces.embedder import FaceEmbedder
from fr_gateway.faces.images import PixelBudget
from fr_gateway.faces.models import (
    UNMEASURED,
    ModelPack,
    choose_providers,
    create_session,
    locate_pack,
    warn_if_two_runtimes,
)
from fr_gateway.faces.quality import QualityGate

log = logging.getLogger(__name__)


class RecogniserLayout(NamedTuple):
    workers: int  # runs side by side on the one session
    threads: int  # intra-op threads of each run
    batch: int  # the most crops in one run

    def __str__(self) -> str:
        return f"{self.workers} x {self.threads}-thread runs of up to {self.batch} crops"


@dataclasses.dataclass(frozen=True)
class FaceEngine:
    """The loaded models; shareable by several gateways with different settings."""

    pack: ModelPack
    providers: list[str]
    detector: FaceDetector
    embedder: FaceEmbedder
    layout: RecogniserLayout


def load_pack(settings: Settings) -> ModelPack:
    return locate_pack(settings.model_dir, settings.detector_file, settings.recognizer_file)


def load_detector(settings: Settings, pack: ModelPack, providers: list[str]) -> FaceDetector:
    session = create_session(pack.detector_file, providers, settings.intra_op_threads, settings.ort_spinning,
                             "detector")
    return FaceDetector(session, str(pack.detector_file), settings.det_size, settings.det_score)


def resolve_thresholds(settings: Settings, pack: ModelPack) -> Thresholds:
    """Configured thresholds win, then the config's calibration, then the one shipped for the model. A
    calibration measured on another model is refused, and an unmeasured model is said out loud."""
    calibration, origin = settings.calibration, "calibrated"
    if calibration is not None and calibration.model_fingerprint != pack.fingerprint:
        raise ValueError(
            f"the config's [calibration] was measured on {calibration.model} ({calibration.model_fingerprint[:12]}), "
            f"not on this gateway's {pack.name} ({pack.fingerprint[:12]}): run `fr-gateway eval` and "
            "`fr-gateway calibrate` for it, or remove the table")
    if calibration is None:
        calibration, origin = pack.shipped_calibration, "measured default"
    if calibration is not None:
        return Thresholds.from_calibration(calibration, origin, settings.identify_threshold,
                                           settings.verify_threshold)
    identify, verify = UNMEASURED
    thresholds = Thresholds(
        Threshold(identify, "unmeasured default") if settings.identify_threshold is None else
        Threshold(settings.identify_threshold, "configured"),
        Threshold(verify, "unmeasured default") if settings.verify_threshold is None else
        Threshold(settings.verify_threshold, "configured"))
    if "unmeasured default" in (thresholds.identify.origin, thresholds.verify.origin):
        log.warning("no calibration for %s (%s): %s thresholds are unmeasured; run `fr-gateway eval` and "
                    "`fr-gateway calibrate`", pack.name, pack.fingerprint[:12], pack.name)
    return thresholds


def load_engine(settings: Settings) -> FaceEngine:
    warn_if_two_runtimes()
    pack = load_pack(settings)
    providers = choose_providers(settings.providers)
    detector = load_detector(settings, pack, providers)
    layout = recogniser_layout(settings, providers)
    recognizer = create_session(pack.recognizer_file, providers, layout.threads, settings.ort_spinning,
                                "recognizer")
    log.info("models: detector %s, recogniser %s (sha256 %s; %s), providers %s",
             pack.detector_file.name, pack.name, pack.fingerprint, layout, recognizer.get_providers())
    return FaceEngine(pack, recognizer.get_providers(), detector, FaceEmbedder(recognizer, str(pack.recognizer_file)),
                      layout)


def recogniser_layout(settings: Settings, providers: list[str]) -> RecogniserLayout:
    """On the CPU, by default one single-threaded run of up to 8 crops per core: runs side by side scale better
    than one run split over the cores, and a single-threaded run gains nothing from larger batches (measured:
    benchmarks/realtime.md). On a GPU one worker feeds the device batches of up to 32."""
    cores, gpu = os.cpu_count() or 1, providers[0] != "CPUExecutionProvider"
    workers = settings.embed_workers or (1 if gpu else cores)
    threads = settings.intra_op_threads or max(1, cores // workers)
    return RecogniserLayout(workers, threads, settings.batch_size or (32 if gpu or threads > 1 else 8))


def build_cropper(settings: Settings) -> FaceCropper:
    gate = QualityGate(settings.det_score, settings.min_face_px, settings.min_blur, settings.max_yaw)
    enrol_gate = dataclasses.replace(gate, min_det_score=settings.enrol_min_det_score)
    limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels,
                         PixelBudget(max(settings.decode_budget_pixels, settings.max_image_pixels)))
    return FaceCropper(gate, enrol_gate, limits, settings.enrol_dominance)
