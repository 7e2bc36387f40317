"""Synthetic galleries shaped like real ones, for measuring 1:N search at sizes no labelled set reaches.

The shape comes from statistics of real buffalo_s templates (`data/template-stats/`): their mean, the covariance
of one template per person (a gallery's spread) and the covariance of the capture noise between two photos of
one person. A gallery template is drawn as unit(mean + cov_all^(1/2) z). A mated pair is a centre drawn with
cov_all - cov_within plus two captures of noise with cov_within, each person's noise scaled by a lognormal
factor: real people differ in how much their photos differ (a constant noise gives mated cosines with a
standard deviation of 0.04 where real pairs show 0.12, and hides the pairs that fall near the threshold).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Protocol

import numpy as np

STATISTICS = Path(__file__).resolve().parents[2] / "data" / "template-stats" / "buffalo_s_w600k_mbf.npz"
# Per-person noise scale: lognormal with this sigma (of the variance), times NOISE_GAIN; chosen so the mated
# cosine's mean, sd and 5th percentile come out as measured (0.616, 0.121, 0.409)
NOISE_SIGMA = 0.5
NOISE_GAIN = 1.05


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _root(covariance: np.ndarray) -> np.ndarray:
    """A matrix R with R R^T = covariance (negative eigenvalues, from measurement noise, clipped)."""
    values, vectors = np.linalg.eigh(covariance.astype(np.float64))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class TemplateShape:
    """How real templates of one recogniser are spread; draws galleries and mated pairs from it."""

    mean: np.ndarray
    gallery_root: np.ndarray
    centre_root: np.ndarray
    noise_root: np.ndarray

    @classmethod
    def load(cls, path: str | Path = STATISTICS) -> TemplateShape:
        with np.load(path) as stats:
            return cls(stats["mean"].astype(np.float32), _root(stats["cov_all"]),
                       _root(stats["cov_all"] - stats["cov_within"]), _root(stats["cov_within"]))

    @property
    def dim(self) -> int:
        return len(self.mean)

    def _normal(self, rng: np.random.Generator, rows: int) -> np.ndarray:
        return rng.standard_normal((rows, self.dim), dtype=np.float32)

    def gallery(self, rng: np.random.Generator, rows: int) -> np.ndarray:
        """One template each of `rows` different people."""
        return unit(self.mean + self._normal(rng, rows) @ self.gallery_root.T)

    def mated_pairs(self, rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Two captures each of `rows` people: the enrolled templates and the probes, row i one person."""
        enrolled, probes = self.captures(rng, rows, 2)
        return enrolled, probes

    def captures(self, rng: np.random.Generator, rows: int, count: int) -> list[np.ndarray]:
        """`count` captures each of `rows` people (each capture rows x dim, row i one person)."""
        centres = self.mean + self._normal(rng, rows) @ self.centre_root.T
        scale = NOISE_GAIN * np.exp(0.5 * (NOISE_SIGMA * rng.standard_normal((rows, 1), dtype=np.float32)
                                           - NOISE_SIGMA ** 2 / 2))
        return [unit(centres + scale * (self._normal(rng, rows) @ self.noise_root.T)) for _ in range(count)]

    def statistics(self, rng: np.random.Generator, rows: int = 4000) -> dict[str, float]:
        return shape_statistics(self, rng, rows)


class Shape(Protocol):
    """What draws synthetic templates: a gallery of different people, and mated pairs."""

    def gallery(self, rng: np.random.Generator, rows: int) -> np.ndarray: ...

    def mated_pairs(self, rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]: ...


def shape_statistics(shape: Shape, rng: np.random.Generator, rows: int = 4000) -> dict[str, float]:
    """Impostor and mated cosine figures of what a generator draws, to check against the measured ones."""
    first, second = shape.gallery(rng, rows), shape.gallery(rng, rows)
    impostor = (first[: rows // 2] @ second[: rows // 2].T).ravel()
    enrolled, probes = shape.mated_pairs(rng, rows)
    mated = np.sum(enrolled * probes, axis=1)
    return {"impostor_mean": round(float(impostor.mean()), 3), "impostor_sd": round(float(impostor.std()), 3),
            "mated_mean": round(float(mated.mean()), 3), "mated_sd": round(float(mated.std()), 3),
            "mated_p5": round(float(np.percentile(mated, 5)), 3)}
