from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
FRAME_KIND_CANCEL: FrameKind
FRAME_KIND_END: FrameKind
FRAME_KIND_GOAWAY: FrameKind
FRAME_KIND_MESSAGE: FrameKind
FRAME_KIND_PING: FrameKind
FRAME_KIND_PONG: FrameKind
FRAME_KIND_REQUEST: FrameKind
FRAME_KIND_UNSPECIFIED: FrameKind

class Envelope(_message.Message):
    __slots__ = ["call_id", "kind", "metadata", "method", "payload", "status_code", "status_message", "timeout_ms"]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    kind: FrameKind
    metadata: _containers.RepeatedCompositeFieldContainer[MetadataEntry]
    method: str
    payload: bytes
    status_code: int
    status_message: str
    timeout_ms: int
    def __init__(self, kind: _Optional[_Union[FrameKind, str]] = ..., call_id: _Optional[int] = ..., method: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., metadata: _Optional[_Iterable[_Union[MetadataEntry, _Mapping]]] = ..., payload: _Optional[bytes] = ..., status_code: _Optional[int] = ..., status_message: _Optional[str] = ...) -> None: ...

class MetadataEntry(_message.Message):
    __slots__ = ["key", "value"]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class FrameKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
