"""Error rates from score sets, as NIST FRTE and the LFW protocol define them. Pure functions of scores, so
they can be checked on hand-made sets with known answers.

Scores are similarities: higher means more alike, and a comparison is accepted when score >= threshold.
- Verification (1:1): genuine scores (same person) and impostor scores (different people).
  FAR(t) = share of impostor scores >= t; TAR(t) = share of genuine scores >= t.
- Identification (1:N): a mated search has its mate in the gallery, a non-mated one does not.
  FPIR(t) = share of non-mated searches whose best candidate scores >= t.
  FNIR(t) = share of mated searches whose mate is not the best candidate with score >= t (rank 1: a
  checkpoint acts on its top candidate).
An operating point asked for below what the data can show (FAR 1e-4 from 388 impostor pairs) has no value,
and says how many comparisons it would need.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class OperatingPoint:
    """The threshold reaching a target false rate, and the other error at it; `threshold` is None when the
    data is too small to show the target (fewer than 1/target comparisons of the kind that sets it)."""

    target: float
    threshold: float | None
    achieved: float | None  # the false rate the threshold gives on this data (<= target)
    rate: float | None  # TAR for verification, FNIR for identification
    count: int  # impostor comparisons or non-mated searches behind the point
    needed: int  # the fewest such comparisons that can show the target

    @property
    def shown(self) -> bool:
        return self.threshold is not None


def _as_array(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(scores, dtype=np.float64).ravel()


def needed_for(target: float) -> int:
    """The fewest negative comparisons that can show a false rate as low as `target`."""
    return math.ceil(1 / target - 1e-9)


def threshold_for(negatives: Sequence[float] | np.ndarray, target: float) -> float | None:
    """The lowest threshold at which at most `target` of the negative scores are accepted; None when there
    are fewer than 1/target negatives (no threshold can be shown to reach the target)."""
    scores = np.sort(_as_array(negatives))[::-1]
    if len(scores) < needed_for(target):
        return None
    allowed = math.floor(target * len(scores) + 1e-9)  # false accepts the target permits
    if allowed >= len(scores):
        return float(scores[-1])
    # just above the first negative that must be refused; ties with it are refused too
    return float(np.nextafter(scores[allowed], np.inf))


def accepted(scores: Sequence[float] | np.ndarray, threshold: float) -> float:
    """The share of scores at or above the threshold."""
    values = _as_array(scores)
    return float((values >= threshold).mean()) if len(values) else 0.0


def _accepted_at(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The share of scores at or above each threshold, by one sort (curves have a threshold per score)."""
    if not len(scores):
        return np.zeros(len(thresholds))
    return (len(scores) - np.searchsorted(np.sort(scores), thresholds, side="left")) / len(scores)


def roc(genuine: Sequence[float] | np.ndarray, impostor: Sequence[float] | np.ndarray
        ) -> list[tuple[float, float, float]]:
    """(threshold, FAR, TAR) at every distinct score, from the highest threshold down."""
    genuine, impostor = _as_array(genuine), _as_array(impostor)
    thresholds = np.unique(np.concatenate([genuine, impostor]))[::-1]
    return list(zip(thresholds.tolist(), _accepted_at(impostor, thresholds).tolist(),
                    _accepted_at(genuine, thresholds).tolist(), strict=True))


def operating_point(negatives: Sequence[float] | np.ndarray, target: float,
                    rate_at: Callable[[float], float]) -> OperatingPoint:
    """The threshold for a target false rate over `negatives`, with `rate_at(threshold)` as the other error."""
    negatives = _as_array(negatives)
    threshold = threshold_for(negatives, target)
    needed = needed_for(target)
    if threshold is None:
        return OperatingPoint(target, None, None, None, len(negatives), needed)
    return OperatingPoint(target, threshold, accepted(negatives, threshold), rate_at(threshold), len(negatives),
                          needed)


def tar_at_far(genuine: Sequence[float] | np.ndarray, impostor: Sequence[float] | np.ndarray,
               far: float) -> OperatingPoint:
    return operating_point(impostor, far, lambda threshold: accepted(genuine, threshold))


@dataclasses.dataclass(frozen=True)
class MatedSearch:
    """Where the mate came in a search's candidate list (rank 1 is best; None: not returned) and its score."""

    rank: int | None
    score: float | None


def hit_rate(mated: Sequence[MatedSearch], rank: int) -> float:
    """The share of mated searches with the mate among the first `rank` candidates, whatever its score."""
    return sum(1 for m in mated if m.rank is not None and m.rank <= rank) / len(mated) if mated else 0.0


def fnir(mated: Sequence[MatedSearch], threshold: float) -> float:
    """The share of mated searches whose mate is not the top candidate at or above the threshold."""
    found = sum(1 for m in mated if m.rank == 1 and m.score is not None and m.score >= threshold)
    return 1 - found / len(mated) if mated else 0.0


def det(mated: Sequence[MatedSearch], non_mated_top: Sequence[float] | np.ndarray
        ) -> list[tuple[float, float, float]]:
    """(threshold, FPIR, FNIR) at every distinct score, from the highest threshold down: the DET curve."""
    non_mated = _as_array(non_mated_top)
    top_mates = _as_array([m.score for m in mated if m.rank == 1 and m.score is not None])
    thresholds = np.unique(np.concatenate([non_mated, top_mates]))[::-1]
    missed = len(mated) - _accepted_at(top_mates, thresholds) * len(top_mates)
    fnirs = missed / len(mated) if mated else np.zeros(len(thresholds))
    return list(zip(thresholds.tolist(), _accepted_at(non_mated, thresholds).tolist(), fnirs.tolist(), strict=True))


def fnir_at_fpir(mated: Sequence[MatedSearch], non_mated_top: Sequence[float] | np.ndarray,
                 fpir: float) -> OperatingPoint:
    """`non_mated_top`: the best candidate's score of each non-mated search (-1, the lowest cosine, when none
    came back)."""
    return operating_point(non_mated_top, fpir, lambda threshold: fnir(mated, threshold))


def best_accuracy_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold that classifies the most pairs right (midway between neighbouring scores)."""
    candidates = np.unique(scores)
    cuts = np.concatenate([[candidates[0] - 1e-6], (candidates[:-1] + candidates[1:]) / 2, [candidates[-1] + 1e-6]])
    right = [((scores >= cut) == same).sum() for cut in cuts]
    return float(cuts[int(np.argmax(right))])


def ten_fold_accuracy(scores: Sequence[float], same: Sequence[bool], folds: Sequence[int]
                      ) -> tuple[float, float, list[float]]:
    """The LFW protocol: for each fold, the threshold that is best on the other folds, applied to it.
    Returns the mean accuracy, its standard deviation and each fold's accuracy."""
    scores_a, same_a, folds_a = _as_array(scores), np.asarray(same, dtype=bool), np.asarray(folds)
    per_fold = []
    for fold in np.unique(folds_a):
        test = folds_a == fold
        threshold = best_accuracy_threshold(scores_a[~test], same_a[~test])
        per_fold.append(float(((scores_a[test] >= threshold) == same_a[test]).mean()))
    return float(np.mean(per_fold)), float(np.std(per_fold)), per_fold
