"""SCRFD face detection (insightface's model_zoo wrapper around one ONNX session) and ArcFace alignment."""

from __future__ import annotations

import dataclasses
import math
import threading

import cv2
import numpy as np
from insightface.model_zoo.scrfd import SCRFD, distance2bbox, distance2kps
from insightface.utils import face_align

from fr_gateway.faces.models import MeteredSession

ALIGNED_SIZE = 112
ARCFACE_POINTS = face_align.arcface_dst.astype(np.float64)  # where the five landmarks go in the 112x112 crop
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


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 rotation, scale and shift that takes the source points nearest the target's in least squares:
    the 2-D closed form of Umeyama's estimate, which insightface's norm_crop gets from scikit-image's
    SimilarityTransform (the same matrix to 1e-4, insightface computing in float32; 36 microseconds a face
    here against its 202)."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    x, y = (source - source_mean).T
    u, v = (target - target_mean).T
    spread = (x * x + y * y).sum()
    cos, sin = (x * u + y * v).sum() / spread, (x * v - y * u).sum() / spread
    turn = np.array([[cos, -sin], [sin, cos]])
    return np.hstack([turn, (target_mean - turn @ source_mean)[:, None]])


def align(image: np.ndarray, face: DetectedFace) -> np.ndarray:
    """Warp the face onto the 112x112 ArcFace five-point template, as insightface's norm_crop does."""
    matrix = similarity(face.landmarks.astype(np.float64), ARCFACE_POINTS)
    return cv2.warpAffine(image, matrix, (ALIGNED_SIZE, ALIGNED_SIZE), borderValue=0.0)


class FaceDetector:
    """Finds faces, largest first, in one image or a batch of them. Runs are serialised: two runs at once only
    fight over the same cores. SCRFD's own detect takes one image; the batch is letterboxed and decoded here
    the same way, with insightface's box and landmark decoding and its NMS."""

    def __init__(self, session: MeteredSession, model_file: str, max_side: int, min_score: float) -> None:
        self._scrfd = SCRFD(model_file=model_file, session=session)
        self._scrfd.prepare(0, det_thresh=min_score, input_size=(max_side, max_side))
        self._max_side = max_side
        self._lock = threading.Lock()
        self._centres: dict[tuple[int, int], np.ndarray] = {}

    @property
    def session(self) -> MeteredSession:
        """The model's session, for timing the model alone."""
        return self._scrfd.session

    @staticmethod
    def thumbnail(image: np.ndarray, side: int) -> np.ndarray:
        """The image with its longer side at most `side`, for a cheap look (small inputs cost the detector less)."""
        height, width = image.shape[:2]
        scale = side / max(height, width)
        if scale >= 1:
            return image
        return cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)

    def input_side(self, height: int, width: int) -> int:
        """Small images are searched at their own size (cheaper), large ones scaled down to max_side."""
        side = math.ceil(max(height, width) / STRIDE) * STRIDE
        return max(MIN_INPUT, min(self._max_side, side))

    @staticmethod
    def _letterbox(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
        """The image scaled to fit a side x side canvas at its top left (as SCRFD.detect does), and the scale."""
        height, width = image.shape[:2]
        if height > width:
            new_height, new_width = side, int(side * width / height)
        else:
            new_height, new_width = int(side * height / width), side
        canvas = np.zeros((side, side, 3), dtype=np.uint8)
        canvas[:new_height, :new_width] = cv2.resize(image, (new_width, new_height))
        return canvas, new_height / height

    def _anchor_centres(self, side: int, stride: int) -> np.ndarray:
        key = (side, stride)
        if key not in self._centres:
            cells = side // stride
            grid = np.stack(np.mgrid[:cells, :cells][::-1], axis=-1).astype(np.float32).reshape(-1, 2) * stride
            self._centres[key] = np.repeat(grid, self._scrfd._num_anchors, axis=0)
        return self._centres[key]

    def _decode(self, outputs: list[np.ndarray], row: int, side: int, scale: float) -> list[DetectedFace]:
        """One image's faces from the batch outputs: per stride, the anchors over the score threshold; then
        NMS over all strides."""
        scrfd, levels = self._scrfd, self._scrfd.fmc
        scores, boxes, points = [], [], []
        for level, stride in enumerate(scrfd._feat_stride_fpn):
            centres = self._anchor_centres(side, stride)
            passed = np.where(outputs[level][row] >= scrfd.det_thresh)[0]  # only these anchors are decoded
            scores.append(outputs[level][row][passed])
            boxes.append(distance2bbox(centres[passed], outputs[level + levels][row][passed] * stride))
            points.append(distance2kps(centres[passed], outputs[level + 2 * levels][row][passed] * stride))
        scores_all = np.vstack(scores)
        order = scores_all.ravel().argsort()[::-1]
        detections = np.hstack((np.vstack(boxes) / scale, scores_all)).astype(np.float32)[order]
        landmarks = (np.vstack(points) / scale).reshape(-1, 5, 2)[order]
        keep = scrfd.nms(detections)
        faces = [DetectedFace(tuple(float(v) for v in detections[k, :4]), float(detections[k, 4]),
                              landmarks[k].astype(np.float32)) for k in keep]
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def _run_many(self, images: list[np.ndarray]) -> list[list[DetectedFace]]:
        """One model run per input side among the images."""
        found: list[list[DetectedFace]] = [[] for _ in images]
        by_side: dict[int, list[int]] = {}
        for position, image in enumerate(images):
            by_side.setdefault(self.input_side(*image.shape[:2]), []).append(position)
        scrfd = self._scrfd
        for side, positions in by_side.items():
            boxed = [self._letterbox(images[p], side) for p in positions]
            blob = cv2.dnn.blobFromImages([canvas for canvas, _ in boxed], 1.0 / scrfd.input_std, (side, side),
                                          (scrfd.input_mean,) * 3, swapRB=True)
            with self._lock:
                outputs = scrfd.session.run(scrfd.output_names, {scrfd.input_name: blob})
            for row, (position, (_, scale)) in enumerate(zip(positions, boxed, strict=True)):
                found[position] = self._decode(outputs, row, side, scale)
        return found

    def detect_many(self, images: list[np.ndarray]) -> list[list[DetectedFace]]:
        """Faces in each image. A tight crop (face filling the frame) is retried with a border around it,
        because the detector expects some context around a face."""
        found = self._run_many(images)
        retry = [position for position, faces in enumerate(found) if not faces]
        if retry:
            pads = [max(images[p].shape[:2]) // 2 for p in retry]
            padded = [np.pad(images[p], ((pad, pad), (pad, pad), (0, 0)), mode="constant")
                      for p, pad in zip(retry, pads, strict=True)]
            for position, pad, faces in zip(retry, pads, self._run_many(padded), strict=True):
                shift = np.array([pad, pad], dtype=np.float32)
                found[position] = [DetectedFace((f.box[0] - pad, f.box[1] - pad, f.box[2] - pad, f.box[3] - pad),
                                                f.score, f.landmarks - shift) for f in faces]
        return found

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in one image, largest first."""
        return self.detect_many([image])[0]
