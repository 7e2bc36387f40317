"""ArcFace embedding (insightface's model_zoo wrapper around one ONNX session): aligned crops in,
L2-normalised float32 templates out."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from insightface.model_zoo.arcface_onnx import ArcFaceONNX

from fr_gateway.faces.models import MeteredSession


class FaceEmbedder:
    """One call embeds a whole batch; normalising here lets inner product equal cosine similarity downstream."""

    def __init__(self, session: MeteredSession, model_file: str) -> None:
        self._arcface = ArcFaceONNX(model_file=model_file, session=session)
        self.dim = int(session.get_outputs()[0].shape[-1])

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.empty((0, self.dim), dtype=np.float32)
        features = np.asarray(self._arcface.get_feat(list(crops)), dtype=np.float32)
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        return features / np.maximum(norms, 1e-12)

    def blob(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """The model's input tensor for these crops, preprocessed as insightface does (quantisation calibrates
        on it)."""
        arcface = self._arcface
        return cv2.dnn.blobFromImages(list(crops), 1.0 / arcface.input_std, arcface.input_size,
                                      (arcface.input_mean,) * 3, swapRB=True)
