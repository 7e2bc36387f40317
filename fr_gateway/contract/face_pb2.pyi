from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CropKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CROP_KIND_UNSPECIFIED: _ClassVar[CropKind]
    ALIGNED: _ClassVar[CropKind]
    LOOSE: _ClassVar[CropKind]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    MATCH: _ClassVar[Decision]
    NO_MATCH: _ClassVar[Decision]
    NO_FACE: _ClassVar[Decision]
    REJECTED: _ClassVar[Decision]
    INVALID: _ClassVar[Decision]
    OVERLOADED: _ClassVar[Decision]

class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_UNSPECIFIED: _ClassVar[Reason]
    IMAGE_UNDECODABLE: _ClassVar[Reason]
    IMAGE_EMPTY: _ClassVar[Reason]
    IMAGE_TOO_LARGE: _ClassVar[Reason]
    IMAGE_NOT_ALIGNED: _ClassVar[Reason]
    NO_FACE_FOUND: _ClassVar[Reason]
    MULTIPLE_FACES: _ClassVar[Reason]
    LOW_DETECTION_SCORE: _ClassVar[Reason]
    FACE_TOO_SMALL: _ClassVar[Reason]
    FACE_BLURRY: _ClassVar[Reason]
    FACE_POSE: _ClassVar[Reason]
    NIK_INVALID: _ClassVar[Reason]
    NIK_NOT_ENROLLED: _ClassVar[Reason]
    ARGUMENT_INVALID: _ClassVar[Reason]
    GATEWAY_OVERLOADED: _ClassVar[Reason]
    SEARCH_UNAVAILABLE: _ClassVar[Reason]
    TEMPLATE_DAMAGED: _ClassVar[Reason]
    INDEX_BEHIND: _ClassVar[Reason]
CROP_KIND_UNSPECIFIED: CropKind
ALIGNED: CropKind
LOOSE: CropKind
DECISION_UNSPECIFIED: Decision
MATCH: Decision
NO_MATCH: Decision
NO_FACE: Decision
REJECTED: Decision
INVALID: Decision
OVERLOADED: Decision
REASON_UNSPECIFIED: Reason
IMAGE_UNDECODABLE: Reason
IMAGE_EMPTY: Reason
IMAGE_TOO_LARGE: Reason
IMAGE_NOT_ALIGNED: Reason
NO_FACE_FOUND: Reason
MULTIPLE_FACES: Reason
LOW_DETECTION_SCORE: Reason
FACE_TOO_SMALL: Reason
FACE_BLURRY: Reason
FACE_POSE: Reason
NIK_INVALID: Reason
NIK_NOT_ENROLLED: Reason
ARGUMENT_INVALID: Reason
GATEWAY_OVERLOADED: Reason
SEARCH_UNAVAILABLE: Reason
TEMPLATE_DAMAGED: Reason
INDEX_BEHIND: Reason

class Face(_message.Message):
    __slots__ = ("image", "kind")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    kind: CropKind
    def __init__(self, image: _Optional[bytes] = ..., kind: _Optional[_Union[CropKind, str]] = ...) -> None: ...
