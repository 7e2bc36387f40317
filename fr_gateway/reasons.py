"""Why a face or a record was not used: one set of codes shared by every layer and mirrored by the contract."""

from __future__ import annotations

import enum


class Reason(enum.Enum):
    """Names match frgateway.v1.Reason, so the servicers translate by name."""

    IMAGE_UNDECODABLE = enum.auto()
    IMAGE_EMPTY = enum.auto()
    IMAGE_TOO_LARGE = enum.auto()
    IMAGE_NOT_ALIGNED = enum.auto()
    NO_FACE_FOUND = enum.auto()
    MULTIPLE_FACES = enum.auto()
    LOW_DETECTION_SCORE = enum.auto()
    FACE_TOO_SMALL = enum.auto()
    FACE_BLURRY = enum.auto()
    FACE_POSE = enum.auto()
    NIK_INVALID = enum.auto()
    NIK_NOT_ENROLLED = enum.auto()
    ARGUMENT_INVALID = enum.auto()
    GATEWAY_OVERLOADED = enum.auto()
    SEARCH_UNAVAILABLE = enum.auto()
    TEMPLATE_DAMAGED = enum.auto()
    INDEX_BEHIND = enum.auto()


# Reasons that mean the request itself was malformed (INVALID_ARGUMENT on unary calls).
INPUT_REASONS = frozenset({
    Reason.IMAGE_UNDECODABLE, Reason.IMAGE_EMPTY, Reason.IMAGE_TOO_LARGE, Reason.IMAGE_NOT_ALIGNED,
    Reason.NIK_INVALID, Reason.ARGUMENT_INVALID,
})


# How a unary call answers each reason that is not a plain answer (gRPC status code names); streams and local
# runs answer every reason in the result and go on.
UNARY_STATUS_NAMES = {
    **{reason: "INVALID_ARGUMENT" for reason in INPUT_REASONS},
    Reason.NIK_NOT_ENROLLED: "NOT_FOUND",
    Reason.GATEWAY_OVERLOADED: "RESOURCE_EXHAUSTED",
    Reason.SEARCH_UNAVAILABLE: "UNAVAILABLE",
    Reason.TEMPLATE_DAMAGED: "DATA_LOSS",
}


def reason_name(reason: Reason | None) -> str:
    """A reason as the audit log records it: its name, or nothing."""
    return reason.name if reason else ""


def status_name(reason: Reason | None, unary: bool) -> str:
    """The status a caller receives for `reason`, as the audit log records it."""
    return UNARY_STATUS_NAMES.get(reason, "OK") if unary else "OK"


class Problem(Exception):
    """A face or record that cannot be used, with a stable reason code and words for the operator."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.name}: {detail}")
        self.reason = reason
        self.detail = detail
