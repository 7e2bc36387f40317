from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf.internal import containers as _containers

from . import face_pb2 as _face_pb2

DESCRIPTOR: _descriptor.FileDescriptor

class EnrollRequest(_message.Message):
    __slots__ = ("attributes", "face", "nik")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: str | None = ..., value: str | None = ...) -> None: ...
    NIK_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    nik: str
    face: _face_pb2.Face
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, nik: str | None = ..., face: _face_pb2.Face | _Mapping | None = ..., attributes: _Mapping[str, str] | None = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("detail", "enrolled", "model_fingerprint", "nik", "reason", "replaced")
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
    def __init__(self, nik: str | None = ..., enrolled: bool | None = ..., replaced: bool | None = ..., reason: _face_pb2.Reason | str | None = ..., detail: str | None = ..., model_fingerprint: str | None = ...) -> None: ...

class RejectedRecord(_message.Message):
    __slots__ = ("detail", "index", "nik", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NIK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    index: int
    nik: str
    reason: _face_pb2.Reason
    detail: str
    def __init__(self, index: int | None = ..., nik: str | None = ..., reason: _face_pb2.Reason | str | None = ..., detail: str | None = ...) -> None: ...

class EnrollSummary(_message.Message):
    __slots__ = ("enrolled", "rejected", "rejected_by_reason", "rejects", "replaced")
    class RejectedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: str | None = ..., value: int | None = ...) -> None: ...
    ENROLLED_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    REJECTS_FIELD_NUMBER: _ClassVar[int]
    enrolled: int
    replaced: int
    rejected: int
    rejected_by_reason: _containers.ScalarMap[str, int]
    rejects: _containers.RepeatedCompositeFieldContainer[RejectedRecord]
    def __init__(self, enrolled: int | None = ..., replaced: int | None = ..., rejected: int | None = ..., rejected_by_reason: _Mapping[str, int] | None = ..., rejects: _Iterable[RejectedRecord | _Mapping] | None = ...) -> None: ...

class RemoveRequest(_message.Message):
    __slots__ = ("nik",)
    NIK_FIELD_NUMBER: _ClassVar[int]
    nik: str
    def __init__(self, nik: str | None = ...) -> None: ...

class RemoveResponse(_message.Message):
    __slots__ = ("nik", "removed")
    NIK_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    nik: str
    removed: bool
    def __init__(self, nik: str | None = ..., removed: bool | None = ...) -> None: ...
