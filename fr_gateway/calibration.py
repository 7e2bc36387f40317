"""What a decision threshold stands for: the operating point an evaluation measured at it, on which model and
data, as `fr-gateway calibrate` writes it into the config and the gateway reports it to its callers."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

# The error each threshold is chosen for, and the other error it costs
IDENTIFY_METRICS = ("FPIR", "FNIR")  # non-mated searches answered MATCH; mated searches not matched at rank 1
VERIFY_METRICS = ("FAR", "TAR")  # impostor comparisons accepted; genuine comparisons accepted


@dataclasses.dataclass(frozen=True)
class StatedPoint:
    """One threshold and the error rates measured at it. `target` is the false rate it was chosen for (None
    when the threshold was set first and the rates measured at it)."""

    threshold: float
    false_metric: str
    false_rate: float
    negatives: int  # non-mated searches or impostor comparisons behind false_rate
    other_metric: str
    other_rate: float
    positives: int  # mated searches or genuine comparisons behind other_rate
    target: float | None = None

    def false_rate_text(self) -> str:
        """A rate seen as zero is bounded, not zero: under 3/n at 95% confidence (the rule of three)."""
        if self.false_rate == 0 and self.negatives:
            return f"0 of {self.negatives} (< {3 / self.negatives:.2g} at 95%)"
        return f"{self.false_rate:.4g} of {self.negatives}"

    def rates_text(self) -> str:
        aim = f" (chosen for {self.false_metric} {self.target:g})" if self.target is not None else ""
        return (f"{self.false_metric} {self.false_rate_text()}, {self.other_metric} {self.other_rate:.4g} of "
                f"{self.positives}{aim}")

    def text(self) -> str:
        return f"threshold {self.threshold:.4f}: {self.rates_text()}"


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Both thresholds of one recogniser and where they were measured: the `[calibration]` table of a config."""

    model: str
    model_fingerprint: str
    data: str  # the dataset, in words a reader can find again
    report: str  # the evaluation report the points come from
    date: str
    identify: StatedPoint
    verify: StatedPoint

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> Calibration:
        """Parse the config table; a missing or unknown key is an error naming it."""
        try:
            fields = {**table, "identify": StatedPoint(**table["identify"]), "verify": StatedPoint(**table["verify"])}
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"[calibration] table: {exc}") from exc

    def as_table(self) -> dict[str, Any]:
        """For TOML: no None values (TOML has no null)."""
        return {key: ({k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value)
                for key, value in dataclasses.asdict(self).items()}


@dataclasses.dataclass(frozen=True)
class Threshold:
    """One threshold in force, where it comes from (calibrated, measured default, configured, unmeasured
    default) and, when it was measured, what it stands for and on which data."""

    value: float
    origin: str
    point: StatedPoint | None = None
    data: str = ""

    def text(self) -> str:
        stands = f"): {self.point.rates_text()}, on {self.data}" if self.point else ")"
        return f"{self.value:.4f} ({self.origin}{stands}"


@dataclasses.dataclass(frozen=True)
class Thresholds:
    identify: Threshold
    verify: Threshold

    @classmethod
    def from_calibration(cls, calibration: Calibration, origin: str, identify: float | None = None,
                         verify: float | None = None) -> Thresholds:
        """The calibration's thresholds, or the configured ones where given; a configured value other than the
        calibrated one stands for no measured point."""
        data = f"{calibration.data} ({calibration.report}, {calibration.date})"

        def pick(point: StatedPoint, configured: float | None) -> Threshold:
            if configured is None or configured == point.threshold:
                return Threshold(point.threshold, origin, point, data)
            return Threshold(configured, "configured")

        return cls(pick(calibration.identify, identify), pick(calibration.verify, verify))
