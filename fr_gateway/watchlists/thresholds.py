"""What a watchlist threshold stands for. A face is compared with every template of a list, so a list's false-
alert rate (FPIR: the share of faces of people not on it that raise an alert) grows with its size: with a
false-match rate f per comparison, a list of n templates alerts on 1 - (1 - f)^n of strangers. The rate f comes
from the impostor comparisons of the recogniser's calibration data."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from fr_gateway.evaluation.metrics import accepted, needed_for, threshold_for
from fr_gateway.watchlists.store import WatchlistError

DEFAULT_EXPECTED_TEMPLATES = 1000
DECIMALS = 4  # thresholds are rounded up, so they stay at or above what the target needs


class ThresholdRefused(WatchlistError):
    """A target the calibration data cannot show, or a threshold out of range."""

    status = "FAILED_PRECONDITION"


@dataclasses.dataclass(frozen=True)
class ListThreshold:
    value: float
    origin: str
    # share of impostor comparisons at or above value; None without calibration data
    false_match_rate: float | None


def per_comparison(fpir: float, templates: int) -> float:
    """The false-match rate per comparison that gives `fpir` over `templates` comparisons."""
    return 1 - (1 - fpir) ** (1 / max(1, templates))


def list_fpir(false_match_rate: float, negatives: int, templates: int) -> float:
    """The FPIR of a list of `templates`; a rate seen as zero counts as its 95% bound, 3 / negatives (the rule
    of three), so a small calibration set never promises fewer false alerts than it can show."""
    rate = false_match_rate or (3 / negatives if negatives else 0.0)
    return 1 - (1 - rate) ** templates


def choose(impostors: np.ndarray | None, identify_threshold: float, threshold: float | None = None,
           target_fpir: float | None = None, expected_templates: int = 0) -> ListThreshold:
    """A list's threshold: given, chosen for a target FPIR at the expected size, or the gallery's identify
    threshold; each with the false-match rate it stands for in the calibration data."""
    if target_fpir is not None:
        if impostors is None:
            raise ThresholdRefused("no calibration data for this recogniser: give a threshold")
        if not 0 < target_fpir < 1:
            raise ThresholdRefused(f"target FPIR {target_fpir:g} must be between 0 and 1")
        templates = expected_templates or DEFAULT_EXPECTED_TEMPLATES
        rate = per_comparison(target_fpir, templates)
        chosen = threshold_for(impostors, rate)
        if chosen is None:
            raise ThresholdRefused(
                f"FPIR {target_fpir:g} over {templates} templates needs a false-match rate of {rate:.3g} a "
                f"comparison, which {len(impostors)} impostor comparisons cannot show (it needs {needed_for(rate)}): "
                "aim higher, expect a smaller list, or give a threshold")
        value = math.ceil(chosen * 10**DECIMALS) / 10**DECIMALS
        origin = f"chosen for FPIR {target_fpir:g} at {templates} templates"
    elif threshold is not None:
        if not -1 <= threshold <= 1:
            raise ThresholdRefused(f"threshold {threshold:g} is not a cosine similarity in [-1, 1]")
        value, origin = float(threshold), "configured"
    else:
        value, origin = identify_threshold, "the gateway's identify threshold"
    return ListThreshold(value, origin, None if impostors is None else accepted(impostors, value))
