from . import face_pb2 as _face_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_LOW: _ClassVar[Priority]
    PRIORITY_NORMAL: _ClassVar[Priority]
    PRIORITY_HIGH: _ClassVar[Priority]

class Adjudication(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADJUDICATION_UNSPECIFIED: _ClassVar[Adjudication]
    CONFIRMED: _ClassVar[Adjudication]
    DISMISSED: _ClassVar[Adjudication]
PRIORITY_UNSPECIFIED: Priority
PRIORITY_LOW: Priority
PRIORITY_NORMAL: Priority
PRIORITY_HIGH: Priority
ADJUDICATION_UNSPECIFIED: Adjudication
CONFIRMED: Adjudication
DISMISSED: Adjudication

class CreateWatchlistRequest(_message.Message):
    __slots__ = ("name", "reason", "owner", "expires", "threshold", "target_fpir", "expected_templates", "priority")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TARGET_FPIR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    owner: str
    expires: str
    threshold: float
    target_fpir: float
    expected_templates: int
    priority: Priority
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ..., owner: _Optional[str] = ..., expires: _Optional[str] = ..., threshold: _Optional[float] = ..., target_fpir: _Optional[float] = ..., expected_templates: _Optional[int] = ..., priority: _Optional[_Union[Priority, str]] = ...) -> None: ...

class ListWatchlistsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWatchlistsResponse(_message.Message):
    __slots__ = ("watchlists",)
    WATCHLISTS_FIELD_NUMBER: _ClassVar[int]
    watchlists: _containers.RepeatedCompositeFieldContainer[WatchlistInfo]
    def __init__(self, watchlists: _Optional[_Iterable[_Union[WatchlistInfo, _Mapping]]] = ...) -> None: ...

class WatchlistInfo(_message.Message):
    __slots__ = ("name", "reason", "owner", "created", "expires", "priority", "entries", "templates", "threshold", "threshold_origin", "false_match_rate", "expected_fpir", "expected_false_alerts_per_day", "alerts", "confirmed", "dismissed", "created_by")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    FALSE_MATCH_RATE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FPIR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FALSE_ALERTS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    owner: str
    created: str
    expires: str
    priority: Priority
    entries: int
    templates: int
    threshold: float
    threshold_origin: str
    false_match_rate: float
    expected_fpir: float
    expected_false_alerts_per_day: float
    alerts: int
    confirmed: int
    dismissed: int
    created_by: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ..., owner: _Optional[str] = ..., created: _Optional[str] = ..., expires: _Optional[str] = ..., priority: _Optional[_Union[Priority, str]] = ..., entries: _Optional[int] = ..., templates: _Optional[int] = ..., threshold: _Optional[float] = ..., threshold_origin: _Optional[str] = ..., false_match_rate: _Optional[float] = ..., expected_fpir: _Optional[float] = ..., expected_false_alerts_per_day: _Optional[float] = ..., alerts: _Optional[int] = ..., confirmed: _Optional[int] = ..., dismissed: _Optional[int] = ..., created_by: _Optional[str] = ...) -> None: ...

class AddEntryRequest(_message.Message):
    __slots__ = ("watchlist", "label", "case_reference", "expires", "faces")
    WATCHLIST_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CASE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    watchlist: str
    label: str
    case_reference: str
    expires: str
    faces: _containers.RepeatedCompositeFieldContainer[_face_pb2.Face]
    def __init__(self, watchlist: _Optional[str] = ..., label: _Optional[str] = ..., case_reference: _Optional[str] = ..., expires: _Optional[str] = ..., faces: _Optional[_Iterable[_Union[_face_pb2.Face, _Mapping]]] = ...) -> None: ...

class RejectedPhoto(_message.Message):
    __slots__ = ("index", "reason", "detail")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    index: int
    reason: _face_pb2.Reason
    detail: str
    def __init__(self, index: _Optional[int] = ..., reason: _Optional[_Union[_face_pb2.Reason, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class AddEntryResponse(_message.Message):
    __slots__ = ("entry_id", "templates", "rejects")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    REJECTS_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    templates: int
    rejects: _containers.RepeatedCompositeFieldContainer[RejectedPhoto]
    def __init__(self, entry_id: _Optional[str] = ..., templates: _Optional[int] = ..., rejects: _Optional[_Iterable[_Union[RejectedPhoto, _Mapping]]] = ...) -> None: ...

class RemoveEntryRequest(_message.Message):
    __slots__ = ("watchlist", "entry_id")
    WATCHLIST_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    watchlist: str
    entry_id: str
    def __init__(self, watchlist: _Optional[str] = ..., entry_id: _Optional[str] = ...) -> None: ...

class RemoveEntryResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: bool
    def __init__(self, removed: _Optional[bool] = ...) -> None: ...

class AdjudicateRequest(_message.Message):
    __slots__ = ("alert_id", "adjudication", "note", "on_behalf_of")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    ADJUDICATION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    adjudication: Adjudication
    note: str
    on_behalf_of: str
    def __init__(self, alert_id: _Optional[str] = ..., adjudication: _Optional[_Union[Adjudication, str]] = ..., note: _Optional[str] = ..., on_behalf_of: _Optional[str] = ...) -> None: ...

class AdjudicateResponse(_message.Message):
    __slots__ = ("alert_id", "adjudication", "adjudicated_by", "time")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    ADJUDICATION_FIELD_NUMBER: _ClassVar[int]
    ADJUDICATED_BY_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    adjudication: Adjudication
    adjudicated_by: str
    time: str
    def __init__(self, alert_id: _Optional[str] = ..., adjudication: _Optional[_Union[Adjudication, str]] = ..., adjudicated_by: _Optional[str] = ..., time: _Optional[str] = ...) -> None: ...

class WatchlistHit(_message.Message):
    __slots__ = ("watchlist", "entry_id", "label", "case_reference", "score", "threshold", "priority", "alert_id")
    WATCHLIST_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CASE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    watchlist: str
    entry_id: str
    label: str
    case_reference: str
    score: float
    threshold: float
    priority: Priority
    alert_id: str
    def __init__(self, watchlist: _Optional[str] = ..., entry_id: _Optional[str] = ..., label: _Optional[str] = ..., case_reference: _Optional[str] = ..., score: _Optional[float] = ..., threshold: _Optional[float] = ..., priority: _Optional[_Union[Priority, str]] = ..., alert_id: _Optional[str] = ...) -> None: ...

class WatchAlertsRequest(_message.Message):
    __slots__ = ("watchlists", "camera_ids", "min_priority", "with_evidence")
    WATCHLISTS_FIELD_NUMBER: _ClassVar[int]
    CAMERA_IDS_FIELD_NUMBER: _ClassVar[int]
    MIN_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WITH_EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    watchlists: _containers.RepeatedScalarFieldContainer[str]
    camera_ids: _containers.RepeatedScalarFieldContainer[str]
    min_priority: Priority
    with_evidence: bool
    def __init__(self, watchlists: _Optional[_Iterable[str]] = ..., camera_ids: _Optional[_Iterable[str]] = ..., min_priority: _Optional[_Union[Priority, str]] = ..., with_evidence: _Optional[bool] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("alert_id", "time", "camera_id", "track_id", "request_id", "hit", "evidence", "dropped_before")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    HIT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    DROPPED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    time: str
    camera_id: str
    track_id: str
    request_id: str
    hit: WatchlistHit
    evidence: bytes
    dropped_before: int
    def __init__(self, alert_id: _Optional[str] = ..., time: _Optional[str] = ..., camera_id: _Optional[str] = ..., track_id: _Optional[str] = ..., request_id: _Optional[str] = ..., hit: _Optional[_Union[WatchlistHit, _Mapping]] = ..., evidence: _Optional[bytes] = ..., dropped_before: _Optional[int] = ...) -> None: ...
