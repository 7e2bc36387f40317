from . import face_pb2 as _face_pb2
from . import watchlists_pb2 as _watchlists_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IdentifyRequest(_message.Message):
    __slots__ = ("request_id", "camera_id", "face", "top_k", "track_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    camera_id: str
    face: _face_pb2.Face
    top_k: int
    track_id: str
    def __init__(self, request_id: _Optional[str] = ..., camera_id: _Optional[str] = ..., face: _Optional[_Union[_face_pb2.Face, _Mapping]] = ..., top_k: _Optional[int] = ..., track_id: _Optional[str] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("nik", "score")
    NIK_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    nik: str
    score: float
    def __init__(self, nik: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("request_id", "candidates", "decision", "threshold", "reason", "detail", "camera_id", "gallery_size", "model_fingerprint", "track_id", "watchlist_hits")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    GALLERY_SIZE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    WATCHLIST_HITS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    decision: _face_pb2.Decision
    threshold: float
    reason: _face_pb2.Reason
    detail: str
    camera_id: str
    gallery_size: int
    model_fingerprint: str
    track_id: str
    watchlist_hits: _containers.RepeatedCompositeFieldContainer[_watchlists_pb2.WatchlistHit]
    def __init__(self, request_id: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., decision: _Optional[_Union[_face_pb2.Decision, str]] = ..., threshold: _Optional[float] = ..., reason: _Optional[_Union[_face_pb2.Reason, str]] = ..., detail: _Optional[str] = ..., camera_id: _Optional[str] = ..., gallery_size: _Optional[int] = ..., model_fingerprint: _Optional[str] = ..., track_id: _Optional[str] = ..., watchlist_hits: _Optional[_Iterable[_Union[_watchlists_pb2.WatchlistHit, _Mapping]]] = ...) -> None: ...

class WatchDecisionsRequest(_message.Message):
    __slots__ = ("camera_ids", "all_decisions")
    CAMERA_IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_DECISIONS_FIELD_NUMBER: _ClassVar[int]
    camera_ids: _containers.RepeatedScalarFieldContainer[str]
    all_decisions: bool
    def __init__(self, camera_ids: _Optional[_Iterable[str]] = ..., all_decisions: _Optional[bool] = ...) -> None: ...

class DecisionEvent(_message.Message):
    __slots__ = ("time", "camera_id", "track_id", "request_id", "decision", "candidates", "threshold", "dropped_before", "reason", "latency_ms")
    TIME_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DROPPED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    time: str
    camera_id: str
    track_id: str
    request_id: str
    decision: _face_pb2.Decision
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    threshold: float
    dropped_before: int
    reason: _face_pb2.Reason
    latency_ms: float
    def __init__(self, time: _Optional[str] = ..., camera_id: _Optional[str] = ..., track_id: _Optional[str] = ..., request_id: _Optional[str] = ..., decision: _Optional[_Union[_face_pb2.Decision, str]] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., threshold: _Optional[float] = ..., dropped_before: _Optional[int] = ..., reason: _Optional[_Union[_face_pb2.Reason, str]] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("request_id", "probe", "nik", "reference_face")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    NIK_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FACE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    probe: _face_pb2.Face
    nik: str
    reference_face: _face_pb2.Face
    def __init__(self, request_id: _Optional[str] = ..., probe: _Optional[_Union[_face_pb2.Face, _Mapping]] = ..., nik: _Optional[str] = ..., reference_face: _Optional[_Union[_face_pb2.Face, _Mapping]] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("request_id", "match", "score", "threshold", "decision", "reason", "detail", "model_fingerprint")
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
    def __init__(self, request_id: _Optional[str] = ..., match: _Optional[bool] = ..., score: _Optional[float] = ..., threshold: _Optional[float] = ..., decision: _Optional[_Union[_face_pb2.Decision, str]] = ..., reason: _Optional[_Union[_face_pb2.Reason, str]] = ..., detail: _Optional[str] = ..., model_fingerprint: _Optional[str] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OperatingPoint(_message.Message):
    __slots__ = ("false_metric", "false_rate", "negatives", "other_metric", "other_rate", "positives", "target")
    FALSE_METRIC_FIELD_NUMBER: _ClassVar[int]
    FALSE_RATE_FIELD_NUMBER: _ClassVar[int]
    NEGATIVES_FIELD_NUMBER: _ClassVar[int]
    OTHER_METRIC_FIELD_NUMBER: _ClassVar[int]
    OTHER_RATE_FIELD_NUMBER: _ClassVar[int]
    POSITIVES_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    false_metric: str
    false_rate: float
    negatives: int
    other_metric: str
    other_rate: float
    positives: int
    target: float
    def __init__(self, false_metric: _Optional[str] = ..., false_rate: _Optional[float] = ..., negatives: _Optional[int] = ..., other_metric: _Optional[str] = ..., other_rate: _Optional[float] = ..., positives: _Optional[int] = ..., target: _Optional[float] = ...) -> None: ...

class ThresholdInfo(_message.Message):
    __slots__ = ("threshold", "origin", "operating_point", "data")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    OPERATING_POINT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    threshold: float
    origin: str
    operating_point: OperatingPoint
    data: str
    def __init__(self, threshold: _Optional[float] = ..., origin: _Optional[str] = ..., operating_point: _Optional[_Union[OperatingPoint, _Mapping]] = ..., data: _Optional[str] = ...) -> None: ...

class GatewayInfo(_message.Message):
    __slots__ = ("model", "model_fingerprint", "providers", "gallery_size", "identify", "verify", "version", "search", "watchlists")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    GALLERY_SIZE_FIELD_NUMBER: _ClassVar[int]
    IDENTIFY_FIELD_NUMBER: _ClassVar[int]
    VERIFY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    WATCHLISTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    model_fingerprint: str
    providers: _containers.RepeatedScalarFieldContainer[str]
    gallery_size: int
    identify: ThresholdInfo
    verify: ThresholdInfo
    version: str
    search: str
    watchlists: _containers.RepeatedCompositeFieldContainer[_watchlists_pb2.WatchlistInfo]
    def __init__(self, model: _Optional[str] = ..., model_fingerprint: _Optional[str] = ..., providers: _Optional[_Iterable[str]] = ..., gallery_size: _Optional[int] = ..., identify: _Optional[_Union[ThresholdInfo, _Mapping]] = ..., verify: _Optional[_Union[ThresholdInfo, _Mapping]] = ..., version: _Optional[str] = ..., search: _Optional[str] = ..., watchlists: _Optional[_Iterable[_Union[_watchlists_pb2.WatchlistInfo, _Mapping]]] = ...) -> None: ...
