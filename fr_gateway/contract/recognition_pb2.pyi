from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf.internal import containers as _containers

from . import face_pb2 as _face_pb2

DESCRIPTOR: _descriptor.FileDescriptor

class IdentifyRequest(_message.Message):
    __slots__ = ("camera_id", "face", "request_id", "top_k")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    camera_id: str
    face: _face_pb2.Face
    top_k: int
    def __init__(self, request_id: str | None = ..., camera_id: str | None = ..., face: _face_pb2.Face | _Mapping | None = ..., top_k: int | None = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("nik", "score")
    NIK_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    nik: str
    score: float
    def __init__(self, nik: str | None = ..., score: float | None = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("camera_id", "candidates", "decision", "detail", "gallery_size", "model_fingerprint", "reason", "request_id", "threshold")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    GALLERY_SIZE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    decision: _face_pb2.Decision
    threshold: float
    reason: _face_pb2.Reason
    detail: str
    camera_id: str
    gallery_size: int
    model_fingerprint: str
    def __init__(self, request_id: str | None = ..., candidates: _Iterable[Candidate | _Mapping] | None = ..., decision: _face_pb2.Decision | str | None = ..., threshold: float | None = ..., reason: _face_pb2.Reason | str | None = ..., detail: str | None = ..., camera_id: str | None = ..., gallery_size: int | None = ..., model_fingerprint: str | None = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("nik", "probe", "reference_face", "request_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    NIK_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FACE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    probe: _face_pb2.Face
    nik: str
    reference_face: _face_pb2.Face
    def __init__(self, request_id: str | None = ..., probe: _face_pb2.Face | _Mapping | None = ..., nik: str | None = ..., reference_face: _face_pb2.Face | _Mapping | None = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("decision", "detail", "match", "model_fingerprint", "reason", "request_id", "score", "threshold")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    match: bool
    score: float
    threshold: float
    decision: _face_pb2.Decision
    reason: _face_pb2.Reason
    detail: str
    model_fingerprint: str
    def __init__(self, request_id: str | None = ..., match: bool | None = ..., score: float | None = ..., threshold: float | None = ..., decision: _face_pb2.Decision | str | None = ..., reason: _face_pb2.Reason | str | None = ..., detail: str | None = ..., model_fingerprint: str | None = ...) -> None: ...
