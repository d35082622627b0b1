from handoff.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
DESK_EVENT_KIND_APPROVAL_DECIDED: DeskEventKind
DESK_EVENT_KIND_APPROVAL_EXPIRED: DeskEventKind
DESK_EVENT_KIND_APPROVAL_REQUESTED: DeskEventKind
DESK_EVENT_KIND_TICKET_CLAIMED: DeskEventKind
DESK_EVENT_KIND_TICKET_OPENED: DeskEventKind
DESK_EVENT_KIND_TICKET_RESOLVED: DeskEventKind
DESK_EVENT_KIND_TICKET_SLA_BREACHED: DeskEventKind
DESK_EVENT_KIND_UNSPECIFIED: DeskEventKind
DESK_EVENT_KIND_WATCHER_LAGGED: DeskEventKind

class DeskEvent(_message.Message):
    __slots__ = ["actor", "approval", "cursor", "kind", "occurred_at_unix_ms", "ticket"]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    actor: _common_pb2.Identity
    approval: _common_pb2.Approval
    cursor: str
    kind: DeskEventKind
    occurred_at_unix_ms: int
    ticket: _common_pb2.Ticket
    def __init__(self, cursor: _Optional[str] = ..., kind: _Optional[_Union[DeskEventKind, str]] = ..., ticket: _Optional[_Union[_common_pb2.Ticket, _Mapping]] = ..., approval: _Optional[_Union[_common_pb2.Approval, _Mapping]] = ..., actor: _Optional[_Union[_common_pb2.Identity, _Mapping]] = ..., occurred_at_unix_ms: _Optional[int] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ["kinds", "priorities", "resume_cursor"]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    PRIORITIES_FIELD_NUMBER: _ClassVar[int]
    RESUME_CURSOR_FIELD_NUMBER: _ClassVar[int]
    kinds: _containers.RepeatedScalarFieldContainer[DeskEventKind]
    priorities: _containers.RepeatedScalarFieldContainer[_common_pb2.Priority]
    resume_cursor: str
    def __init__(self, kinds: _Optional[_Iterable[_Union[DeskEventKind, str]]] = ..., priorities: _Optional[_Iterable[_Union[_common_pb2.Priority, str]]] = ..., resume_cursor: _Optional[str] = ...) -> None: ...

class DeskEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
