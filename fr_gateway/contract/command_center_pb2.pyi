from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListCamerasRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CameraStatus(_message.Message):
    __slots__ = ("camera_id", "online", "open_streams", "last_seen", "faces")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    OPEN_STREAMS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    online: bool
    open_streams: int
    last_seen: str
    faces: int
    def __init__(self, camera_id: _Optional[str] = ..., online: _Optional[bool] = ..., open_streams: _Optional[int] = ..., last_seen: _Optional[str] = ..., faces: _Optional[int] = ...) -> None: ...

class ListCamerasResponse(_message.Message):
    __slots__ = ("cameras",)
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    cameras: _containers.RepeatedCompositeFieldContainer[CameraStatus]
    def __init__(self, cameras: _Optional[_Iterable[_Union[CameraStatus, _Mapping]]] = ...) -> None: ...

class GetAnalyticsRequest(_message.Message):
    __slots__ = ("since", "until")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    since: str
    until: str
    def __init__(self, since: _Optional[str] = ..., until: _Optional[str] = ...) -> None: ...

class CameraHour(_message.Message):
    __slots__ = ("camera_id", "hour", "faces", "tracks", "matched", "not_matched", "no_face", "rejected", "invalid", "overloaded", "reasons")
    class ReasonsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    HOUR_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    NOT_MATCHED_FIELD_NUMBER: _ClassVar[int]
    NO_FACE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    INVALID_FIELD_NUMBER: _ClassVar[int]
    OVERLOADED_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    hour: str
    faces: int
    tracks: int
    matched: int
    not_matched: int
    no_face: int
    rejected: int
    invalid: int
    overloaded: int
    reasons: _containers.ScalarMap[str, int]
    def __init__(self, camera_id: _Optional[str] = ..., hour: _Optional[str] = ..., faces: _Optional[int] = ..., tracks: _Optional[int] = ..., matched: _Optional[int] = ..., not_matched: _Optional[int] = ..., no_face: _Optional[int] = ..., rejected: _Optional[int] = ..., invalid: _Optional[int] = ..., overloaded: _Optional[int] = ..., reasons: _Optional[_Mapping[str, int]] = ...) -> None: ...

class WatchlistDay(_message.Message):
    __slots__ = ("watchlist", "day", "alerts", "confirmed", "dismissed")
    WATCHLIST_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    DISMISSED_FIELD_NUMBER: _ClassVar[int]
    watchlist: str
    day: str
    alerts: int
    confirmed: int
    dismissed: int
    def __init__(self, watchlist: _Optional[str] = ..., day: _Optional[str] = ..., alerts: _Optional[int] = ..., confirmed: _Optional[int] = ..., dismissed: _Optional[int] = ...) -> None: ...

class AuditDay(_message.Message):
    __slots__ = ("day", "operation", "decision", "records")
    DAY_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    day: str
    operation: str
    decision: str
    records: int
    def __init__(self, day: _Optional[str] = ..., operation: _Optional[str] = ..., decision: _Optional[str] = ..., records: _Optional[int] = ...) -> None: ...

class Analytics(_message.Message):
    __slots__ = ("since", "until", "hours", "watchlist_days", "audit_days")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    HOURS_FIELD_NUMBER: _ClassVar[int]
    WATCHLIST_DAYS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_DAYS_FIELD_NUMBER: _ClassVar[int]
    since: str
    until: str
    hours: _containers.RepeatedCompositeFieldContainer[CameraHour]
    watchlist_days: _containers.RepeatedCompositeFieldContainer[WatchlistDay]
    audit_days: _containers.RepeatedCompositeFieldContainer[AuditDay]
    def __init__(self, since: _Optional[str] = ..., until: _Optional[str] = ..., hours: _Optional[_Iterable[_Union[CameraHour, _Mapping]]] = ..., watchlist_days: _Optional[_Iterable[_Union[WatchlistDay, _Mapping]]] = ..., audit_days: _Optional[_Iterable[_Union[AuditDay, _Mapping]]] = ...) -> None: ...

class RecordViewRequest(_message.Message):
    __slots__ = ("on_behalf_of", "view")
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    on_behalf_of: str
    view: str
    def __init__(self, on_behalf_of: _Optional[str] = ..., view: _Optional[str] = ...) -> None: ...

class RecordViewResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
