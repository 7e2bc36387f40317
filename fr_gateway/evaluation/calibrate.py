"""From an evaluation's scores to the thresholds a gateway runs at: chosen for a target error rate (Identify
for an FPIR, Verify for a FAR) or taken as given, each with the error rates it stands for on that data."""

from __future__ import annotations

import math

from fr_gateway.calibration import IDENTIFY_METRICS, VERIFY_METRICS, Calibration, StatedPoint
from fr_gateway.evaluation.harness import Scores
from fr_gateway.evaluation.metrics import accepted, fnir, needed_for, threshold_for

DECIMALS = 4  # thresholds are rounded up to this, so they stay at or above what the target needs


def identify_point(scores: Scores, threshold: float, target: float | None = None) -> StatedPoint:
    false_metric, other_metric = IDENTIFY_METRICS
    return StatedPoint(threshold, false_metric, accepted(scores.non_mated_top, threshold), len(scores.non_mated_top),
                       other_metric, fnir(scores.mated, threshold), len(scores.mated), target)


def verify_point(scores: Scores, threshold: float, target: float | None = None) -> StatedPoint:
    """Over every 1:1 comparison of the evaluation: probes against templates and the labelled pairs."""
    false_metric, other_metric = VERIFY_METRICS
    genuine, impostor = scores.comparisons()
    return StatedPoint(threshold, false_metric, accepted(impostor, threshold), len(impostor), other_metric,
                       accepted(genuine, threshold), len(genuine), target)


def _threshold(negatives: list[float], target: float, metric: str, what: str) -> float:
    threshold = threshold_for(negatives, target)
    if threshold is None:
        raise ValueError(f"{metric} {target:g} cannot be shown from {len(negatives)} {what}: it needs at least "
                         f"{needed_for(target)}; evaluate on more data or aim higher")
    return math.ceil(threshold * 10**DECIMALS) / 10**DECIMALS


def calibrate(run: dict, report: str, fpir: float | None = None, far: float | None = None,
              identify_threshold: float | None = None, verify_threshold: float | None = None) -> Calibration:
    """A calibration from one model's run of an evaluation report: each threshold from its target, or the
    given threshold with the rates it stands for."""
    scores = Scores.from_json(run["summary"]["scores"])
    if (fpir is None) == (identify_threshold is None) or (far is None) == (verify_threshold is None):
        raise ValueError("give each threshold either a target (--fpir, --far) or a value")
    if fpir is not None:
        identify_threshold = _threshold(scores.non_mated_top, fpir, "FPIR", "non-mated searches")
    if far is not None:
        verify_threshold = _threshold(scores.comparisons()[1], far, "FAR", "impostor comparisons")
    assert identify_threshold is not None and verify_threshold is not None
    return Calibration(model=run["model"], model_fingerprint=run["model_fingerprint"], data=run["data"],
                       report=report, date=run["date"], identify=identify_point(scores, identify_threshold, fpir),
                       verify=verify_point(scores, verify_threshold, far))
