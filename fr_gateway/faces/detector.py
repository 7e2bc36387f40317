"""SCRFD face detection (insightface's model_zoo wrapper around one ONNX session) and ArcFace alignment."""

from __future__ import annotations

import dataclasses
import math
import threading
import warnings

import numpy as np
import onnxruntime as ort
from insightface.model_zoo.scrfd import SCRFD
from insightface.utils import face_align

ALIGNED_SIZE = 112
# The detector's anchors stop at stride 32; inputs are multiples of it.
STRIDE = 32
MIN_INPUT = 128


@dataclasses.dataclass(frozen=True)
class DetectedFace:
    """One face: box (x1, y1, x2, y2) in image pixels, detector confidence, five landmarks (eyes, nose, mouth)."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def size(self) -> float:
        """The shorter side of the box, the usual measure of face size in pixels."""
        x1, y1, x2, y2 = self.box
        return min(x2 - x1, y2 - y1)

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def align(image: np.ndarray, face: DetectedFace) -> np.ndarray:
    """Warp the face onto the 112x112 ArcFace five-point template."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-image's deprecated estimate(), still correct
        return face_align.norm_crop(image, landmark=face.landmarks, image_size=ALIGNED_SIZE)


class FaceDetector:
    """Finds faces, largest first. Runs are serialised: two runs at once only fight over the same cores."""

    def __init__(self, session: ort.InferenceSession, model_file: str, max_side: int, min_score: float) -> None:
        self._scrfd = SCRFD(model_file=model_file, session=session)
        self._scrfd.prepare(0, det_thresh=min_score, input_size=(max_side, max_side))
        self._max_side = max_side
        self._lock = threading.Lock()

    @property
    def session(self) -> ort.InferenceSession:
        """The model's session, for timing the model alone."""
        return self._scrfd.session

    def _input_side(self, height: int, width: int) -> int:
        """Small images are searched at their own size (cheaper), large ones scaled down to max_side."""
        side = math.ceil(max(height, width) / STRIDE) * STRIDE
        return max(MIN_INPUT, min(self._max_side, side))

    def _run(self, image: np.ndarray) -> list[DetectedFace]:
        side = self._input_side(*image.shape[:2])
        with self._lock:
            boxes, landmarks = self._scrfd.detect(image, input_size=(side, side))
        faces = [
            DetectedFace(tuple(float(v) for v in box[:4]), float(box[4]), kps.astype(np.float32))
            for box, kps in zip(boxes, landmarks, strict=True)
        ]
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in the image. A tight crop (face filling the frame) is retried with a border around it,
        because the detector expects some context around a face."""
        faces = self._run(image)
        if faces:
            return faces
        height, width = image.shape[:2]
        pad = max(height, width) // 2
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="constant")
        shift = np.array([pad, pad], dtype=np.float32)
        return [
            DetectedFace(
                (f.box[0] - pad, f.box[1] - pad, f.box[2] - pad, f.box[3] - pad), f.score, f.landmarks - shift
            )
            for f in self._run(padded)
        ]
