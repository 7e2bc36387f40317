from . import face_pb2 as _face_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnrollRequest(_message.Message):
    __slots__ = ("nik", "face", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NIK_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    nik: str
    face: _face_pb2.Face
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, nik: _Optional[str] = ..., face: _Optional[_Union[_face_pb2.Face, _Mapping]] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("nik", "enrolled", "replaced", "reason", "detail", "model_fingerprint")
    NIK_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    nik: str
    enrolled: bool
    replaced: bool
    reason: _face_pb2.Reason
    detail: str
    model_fingerprint: str
    def __init__(self, nik: _Optional[str] = ..., enrolled: _Optional[bool] = ..., replaced: _Optional[bool] = ..., reason: _Optional[_Union[_face_pb2.Reason, str]] = ..., detail: _Optional[str] = ..., model_fingerprint: _Optional[str] = ...) -> None: ...

class RejectedRecord(_message.Message):
    __slots__ = ("index", "nik", "reason", "detail")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NIK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    index: int
    nik: str
    reason: _face_pb2.Reason
    detail: str
    def __init__(self, index: _Optional[int] = ..., nik: _Optional[str] = ..., reason: _Optional[_Union[_face_pb2.Reason, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class EnrollSummary(_message.Message):
    __slots__ = ("enrolled", "replaced", "rejected", "rejected_by_reason", "rejects", "unchanged", "index_behind")
    class RejectedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ENROLLED_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    REJECTS_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    INDEX_BEHIND_FIELD_NUMBER: _ClassVar[int]
    enrolled: int
    replaced: int
    rejected: int
    rejected_by_reason: _containers.ScalarMap[str, int]
    rejects: _containers.RepeatedCompositeFieldContainer[RejectedRecord]
    unchanged: int
    index_behind: int
    def __init__(self, enrolled: _Optional[int] = ..., replaced: _Optional[int] = ..., rejected: _Optional[int] = ..., rejected_by_reason: _Optional[_Mapping[str, int]] = ..., rejects: _Optional[_Iterable[_Union[RejectedRecord, _Mapping]]] = ..., unchanged: _Optional[int] = ..., index_behind: _Optional[int] = ...) -> None: ...

class RemoveRequest(_message.Message):
    __slots__ = ("nik",)
    NIK_FIELD_NUMBER: _ClassVar[int]
    nik: str
    def __init__(self, nik: _Optional[str] = ...) -> None: ...

class RemoveResponse(_message.Message):
    __slots__ = ("nik", "removed", "reason", "detail")
    NIK_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    nik: str
    removed: bool
    reason: _face_pb2.Reason
    detail: str
    def __init__(self, nik: _Optional[str] = ..., removed: _Optional[bool] = ..., reason: _Optional[_Union[_face_pb2.Reason, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class RotateKeysRequest(_message.Message):
    __slots__ = ("retire",)
    RETIRE_FIELD_NUMBER: _ClassVar[int]
    retire: bool
    def __init__(self, retire: _Optional[bool] = ...) -> None: ...

class RotateKeysResponse(_message.Message):
    __slots__ = ("active_key", "resealed", "retired")
    ACTIVE_KEY_FIELD_NUMBER: _ClassVar[int]
    RESEALED_FIELD_NUMBER: _ClassVar[int]
    RETIRED_FIELD_NUMBER: _ClassVar[int]
    active_key: str
    resealed: int
    retired: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, active_key: _Optional[str] = ..., resealed: _Optional[int] = ..., retired: _Optional[_Iterable[str]] = ...) -> None: ...
