from handoff.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
PENDING_ACTION_DECISION_LEAVE_PENDING: PendingActionDecision
PENDING_ACTION_DECISION_REJECT: PendingActionDecision
PENDING_ACTION_DECISION_RELEASE: PendingActionDecision
PENDING_ACTION_DECISION_UNSPECIFIED: PendingActionDecision

class ClaimRequest(_message.Message):
    __slots__ = ["assignee", "reassign", "ticket_id"]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    REASSIGN_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    assignee: str
    reassign: bool
    ticket_id: str
    def __init__(self, ticket_id: _Optional[str] = ..., reassign: bool = ..., assignee: _Optional[str] = ...) -> None: ...

class ClaimResponse(_message.Message):
    __slots__ = ["ticket"]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ticket: _common_pb2.Ticket
    def __init__(self, ticket: _Optional[_Union[_common_pb2.Ticket, _Mapping]] = ...) -> None: ...

class EscalateRequest(_message.Message):
    __slots__ = ["pending_action_id", "reason", "session_id"]
    PENDING_ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    pending_action_id: str
    reason: str
    session_id: str
    def __init__(self, session_id: _Optional[str] = ..., reason: _Optional[str] = ..., pending_action_id: _Optional[str] = ...) -> None: ...

class EscalateResponse(_message.Message):
    __slots__ = ["created", "ticket"]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    created: bool
    ticket: _common_pb2.Ticket
    def __init__(self, ticket: _Optional[_Union[_common_pb2.Ticket, _Mapping]] = ..., created: bool = ...) -> None: ...

class GetTicketRequest(_message.Message):
    __slots__ = ["ticket_id"]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    def __init__(self, ticket_id: _Optional[str] = ...) -> None: ...

class GetTicketResponse(_message.Message):
    __slots__ = ["live_context", "pending_action", "snapshot", "ticket"]
    LIVE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    live_context: _common_pb2.ContextSnapshot
    pending_action: _common_pb2.PendingAction
    snapshot: _common_pb2.ContextSnapshot
    ticket: _common_pb2.Ticket
    def __init__(self, ticket: _Optional[_Union[_common_pb2.Ticket, _Mapping]] = ..., snapshot: _Optional[_Union[_common_pb2.ContextSnapshot, _Mapping]] = ..., live_context: _Optional[_Union[_common_pb2.ContextSnapshot, _Mapping]] = ..., pending_action: _Optional[_Union[_common_pb2.PendingAction, _Mapping]] = ...) -> None: ...

class ListQueueRequest(_message.Message):
    __slots__ = ["assigned_to", "page_size", "page_token", "priorities", "statuses"]
    ASSIGNED_TO_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PRIORITIES_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    assigned_to: str
    page_size: int
    page_token: str
    priorities: _containers.RepeatedScalarFieldContainer[_common_pb2.Priority]
    statuses: _containers.RepeatedScalarFieldContainer[_common_pb2.TicketStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[_common_pb2.TicketStatus, str]]] = ..., priorities: _Optional[_Iterable[_Union[_common_pb2.Priority, str]]] = ..., assigned_to: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListQueueResponse(_message.Message):
    __slots__ = ["next_page_token", "tickets"]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TICKETS_FIELD_NUMBER: _ClassVar[int]
    next_page_token: str
    tickets: _containers.RepeatedCompositeFieldContainer[_common_pb2.Ticket]
    def __init__(self, tickets: _Optional[_Iterable[_Union[_common_pb2.Ticket, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReplyRequest(_message.Message):
    __slots__ = ["text", "ticket_id"]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    ticket_id: str
    def __init__(self, ticket_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class ReplyResponse(_message.Message):
    __slots__ = ["turn"]
    TURN_FIELD_NUMBER: _ClassVar[int]
    turn: _common_pb2.Turn
    def __init__(self, turn: _Optional[_Union[_common_pb2.Turn, _Mapping]] = ...) -> None: ...

class ResolveRequest(_message.Message):
    __slots__ = ["note", "outcome", "pending_action_decision", "ticket_id"]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTION_DECISION_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    note: str
    outcome: _common_pb2.TicketOutcome
    pending_action_decision: PendingActionDecision
    ticket_id: str
    def __init__(self, ticket_id: _Optional[str] = ..., outcome: _Optional[_Union[_common_pb2.TicketOutcome, str]] = ..., note: _Optional[str] = ..., pending_action_decision: _Optional[_Union[PendingActionDecision, str]] = ...) -> None: ...

class ResolveResponse(_message.Message):
    __slots__ = ["pending_action", "ticket"]
    PENDING_ACTION_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    pending_action: _common_pb2.PendingAction
    ticket: _common_pb2.Ticket
    def __init__(self, ticket: _Optional[_Union[_common_pb2.Ticket, _Mapping]] = ..., pending_action: _Optional[_Union[_common_pb2.PendingAction, _Mapping]] = ...) -> None: ...

class PendingActionDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
