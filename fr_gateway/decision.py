"""Decisions: what a similarity score, or a reason a face could not be used, means for the checkpoint."""

from __future__ import annotations

import enum

from fr_gateway.reasons import INPUT_REASONS, Reason


class Decision(enum.Enum):
    """Names match frgateway.v1.Decision."""

    MATCH = enum.auto()
    NO_MATCH = enum.auto()
    NO_FACE = enum.auto()
    REJECTED = enum.auto()
    INVALID = enum.auto()
    OVERLOADED = enum.auto()


def decide(best_score: float | None, threshold: float) -> Decision:
    """MATCH when the best candidate reaches the threshold; an empty gallery is simply NO_MATCH."""
    return Decision.MATCH if best_score is not None and best_score >= threshold else Decision.NO_MATCH


def decision_for(reason: Reason) -> Decision:
    """The decision reported when a face was not compared, by why."""
    if reason is Reason.NO_FACE_FOUND:
        return Decision.NO_FACE
    if reason in (Reason.GATEWAY_OVERLOADED, Reason.SEARCH_UNAVAILABLE):  # not processed now: try a newer crop
        return Decision.OVERLOADED
    if reason in INPUT_REASONS or reason is Reason.NIK_NOT_ENROLLED:
        return Decision.INVALID
    return Decision.REJECTED
