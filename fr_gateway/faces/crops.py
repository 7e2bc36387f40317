"""Turn encoded image bytes into one aligned 112x112 face that passed the quality gate, or a Problem."""

from __future__ import annotations

import contextlib
import dataclasses
import enum

import numpy as np

from fr_gateway.faces.detector import ALIGNED_SIZE, DetectedFace, align
from fr_gateway.faces.images import PixelBudget, decode_image
from fr_gateway.faces.quality import QualityGate
from fr_gateway.metrics import timed
from fr_gateway.reasons import Problem, Reason


class CropKind(enum.Enum):
    """How the sender prepared the image (mirrors frgateway.v1.CropKind)."""

    ALIGNED = "aligned"
    LOOSE = "loose"


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int
    budget: PixelBudget | None = None  # shared by every decode in the process


def aligned_size(width: int, height: int) -> None:
    """An ALIGNED crop is ALIGNED_SIZE square."""
    if (width, height) != (ALIGNED_SIZE, ALIGNED_SIZE):
        raise Problem(Reason.IMAGE_NOT_ALIGNED, f"an ALIGNED crop must be {ALIGNED_SIZE}x{ALIGNED_SIZE}, got "
                                                f"{width}x{height}; send it as LOOSE instead")


class FaceCropper:
    """Decode, keep the dominant detected face, gate its quality, align. Detection itself is the caller's (a
    micro-batched stage), so the cropper works in two steps around it. Enrolment is stricter: the photo must
    show one person, with a surer detection."""

    def __init__(self, gate: QualityGate, enrol_gate: QualityGate, limits: ImageLimits,
                 enrol_dominance: float) -> None:
        self._gate = gate
        self._enrol_gate = enrol_gate
        self._limits = limits
        self._enrol_dominance = enrol_dominance

    def decode(self, data: bytes, kind: CropKind, *, enrolment: bool = False,
               held: contextlib.ExitStack | None = None) -> np.ndarray:
        """The decoded image. An ALIGNED crop is checked and gated here: it is ready to embed; one of another size
        is refused from its header, before any pixel is decoded. Its share of the decode budget is kept until
        `held` closes."""
        aligned = kind is CropKind.ALIGNED
        with timed("decode"):
            image = decode_image(data, self._limits.max_bytes, self._limits.max_pixels, self._limits.budget, held,
                                 check_size=aligned_size if aligned else None)
        if aligned:
            (self._enrol_gate if enrolment else self._gate).check_crop(image)
        return image

    def choose(self, image: np.ndarray, faces: list[DetectedFace], *, enrolment: bool = False) -> np.ndarray:
        """The dominant face of a LOOSE image (faces largest first, from the detector), gated and aligned."""
        if not faces:
            raise Problem(Reason.NO_FACE_FOUND, "no face found in the image")
        dominant = faces[0]
        if enrolment and len(faces) > 1 and faces[1].area > self._enrol_dominance * dominant.area:
            raise Problem(Reason.MULTIPLE_FACES,
                          f"{len(faces)} faces of similar size; an enrolment photo must show one person")
        gate = self._enrol_gate if enrolment else self._gate
        gate.check_detection(dominant)
        aligned = align(image, dominant)
        gate.check_crop(aligned)
        return aligned
