"""The quality gate: whether a detected face is good enough to search or to enrol, and if not, why."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from fr_gateway.faces.detector import DetectedFace
from fr_gateway.reasons import Problem, Reason


def sharpness(aligned: np.ndarray) -> float:
    """Variance of the Laplacian of the aligned crop: low for blurred or featureless faces."""
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY) if aligned.ndim == 3 else aligned
    # 16-bit integers hold every Laplacian of 8-bit pixels exactly, and OpenCV sums them in doubles: the same
    # variance as in 64-bit floats with numpy's var(), in two thirds of the time
    deviation = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_16S))[1][0, 0]
    return float(deviation * deviation)


def yaw_ratio(landmarks: np.ndarray) -> float:
    """How far the nose sits from the midpoint of the eyes, in eye distances: 0 frontal, about 1 in profile."""
    left_eye, right_eye, nose = landmarks[0], landmarks[1], landmarks[2]
    eye_distance = float(np.linalg.norm(right_eye - left_eye))
    if eye_distance < 1e-6:
        return float("inf")
    return abs(float(nose[0] - (left_eye[0] + right_eye[0]) / 2)) / eye_distance


@dataclasses.dataclass(frozen=True)
class QualityGate:
    """Thresholds from the settings; `check_*` raise a Problem naming the first test that failed."""

    min_det_score: float
    min_face_px: float
    min_blur: float
    max_yaw: float

    def check_detection(self, face: DetectedFace) -> None:
        if face.score < self.min_det_score:
            raise Problem(Reason.LOW_DETECTION_SCORE,
                          f"detector confidence {face.score:.2f} is below {self.min_det_score:.2f}")
        if face.size < self.min_face_px:
            raise Problem(Reason.FACE_TOO_SMALL, f"face is {face.size:.0f} px, the minimum is {self.min_face_px:.0f}")
        yaw = yaw_ratio(face.landmarks)
        if yaw > self.max_yaw:
            raise Problem(Reason.FACE_POSE, f"head turned too far (yaw ratio {yaw:.2f} > {self.max_yaw:.2f})")

    def check_crop(self, aligned: np.ndarray) -> None:
        blur = sharpness(aligned)
        if blur < self.min_blur:
            raise Problem(Reason.FACE_BLURRY, f"sharpness {blur:.1f} is below {self.min_blur:.1f}")
