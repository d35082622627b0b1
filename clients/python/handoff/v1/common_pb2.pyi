from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

APPROVAL_STATUS_APPROVED: ApprovalStatus
APPROVAL_STATUS_CANCELLED: ApprovalStatus
APPROVAL_STATUS_EXPIRED: ApprovalStatus
APPROVAL_STATUS_PENDING: ApprovalStatus
APPROVAL_STATUS_REJECTED: ApprovalStatus
APPROVAL_STATUS_UNSPECIFIED: ApprovalStatus
APPROVAL_STATUS_WAITING: ApprovalStatus
DECISION_TYPE_DESTRUCTIVE: DecisionType
DECISION_TYPE_FINANCIAL: DecisionType
DECISION_TYPE_INFORMATIONAL: DecisionType
DECISION_TYPE_LEGAL: DecisionType
DECISION_TYPE_MEDICAL: DecisionType
DECISION_TYPE_PREFERENCES: DecisionType
DECISION_TYPE_TRANSACTIONAL: DecisionType
DECISION_TYPE_UNSPECIFIED: DecisionType
DESCRIPTOR: _descriptor.FileDescriptor
PENDING_ACTION_STATUS_APPROVED: PendingActionStatus
PENDING_ACTION_STATUS_CANCELLED: PendingActionStatus
PENDING_ACTION_STATUS_CONFIRMED: PendingActionStatus
PENDING_ACTION_STATUS_DECLINED: PendingActionStatus
PENDING_ACTION_STATUS_EXECUTED: PendingActionStatus
PENDING_ACTION_STATUS_EXPIRED: PendingActionStatus
PENDING_ACTION_STATUS_PENDING: PendingActionStatus
PENDING_ACTION_STATUS_REJECTED: PendingActionStatus
PENDING_ACTION_STATUS_RELEASED: PendingActionStatus
PENDING_ACTION_STATUS_UNSPECIFIED: PendingActionStatus
PRIORITY_HIGH: Priority
PRIORITY_NORMAL: Priority
PRIORITY_UNSPECIFIED: Priority
PRIORITY_URGENT: Priority
RISK_LEVEL_CRITICAL: RiskLevel
RISK_LEVEL_HIGH: RiskLevel
RISK_LEVEL_LOW: RiskLevel
RISK_LEVEL_LOW_MEDIUM: RiskLevel
RISK_LEVEL_MEDIUM: RiskLevel
RISK_LEVEL_UNSPECIFIED: RiskLevel
ROLE_ADMIN: Role
ROLE_AGENT: Role
ROLE_APPROVER: Role
ROLE_OPERATOR: Role
ROLE_SYSTEM: Role
ROLE_UNSPECIFIED: Role
SESSION_STATUS_ACTIVE: SessionStatus
SESSION_STATUS_AWAITING_CONFIRMATION: SessionStatus
SESSION_STATUS_ESCALATED: SessionStatus
SESSION_STATUS_UNSPECIFIED: SessionStatus
STRATEGY_AUTOMATE: Strategy
STRATEGY_CONFIRM: Strategy
STRATEGY_ESCALATE: Strategy
STRATEGY_EXPLICIT_CONFIRM: Strategy
STRATEGY_MULTI_FACTOR: Strategy
STRATEGY_UNSPECIFIED: Strategy
TICKET_OUTCOME_DISMISSED: TicketOutcome
TICKET_OUTCOME_HANDED_BACK: TicketOutcome
TICKET_OUTCOME_RESOLVED: TicketOutcome
TICKET_OUTCOME_UNSPECIFIED: TicketOutcome
TICKET_STATUS_CLAIMED: TicketStatus
TICKET_STATUS_OPEN: TicketStatus
TICKET_STATUS_RESOLVED: TicketStatus
TICKET_STATUS_UNSPECIFIED: TicketStatus
TICKET_STATUS_WAITING: TicketStatus
TURN_SOURCE_AGENT: TurnSource
TURN_SOURCE_OPERATOR: TurnSource
TURN_SOURCE_SYSTEM: TurnSource
TURN_SOURCE_UNSPECIFIED: TurnSource

class Action(_message.Message):
    __slots__ = ["amount", "confidence", "currency", "decision_type", "description", "parameters_json", "tool_name"]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DECISION_TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    amount: str
    confidence: float
    currency: str
    decision_type: DecisionType
    description: str
    parameters_json: str
    tool_name: str
    def __init__(self, tool_name: _Optional[str] = ..., decision_type: _Optional[_Union[DecisionType, str]] = ..., parameters_json: _Optional[str] = ..., description: _Optional[str] = ..., amount: _Optional[str] = ..., currency: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ["action", "amount", "created_at_unix_ms", "currency", "current_level", "decided_at_unix_ms", "edited_action", "id", "pending_action_id", "reason", "requester", "session_id", "status", "steps", "tenant_id"]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_LEVEL_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    EDITED_ACTION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    action: Action
    amount: str
    created_at_unix_ms: int
    currency: str
    current_level: int
    decided_at_unix_ms: int
    edited_action: Action
    id: str
    pending_action_id: str
    reason: str
    requester: Identity
    session_id: str
    status: ApprovalStatus
    steps: _containers.RepeatedCompositeFieldContainer[ApprovalStep]
    tenant_id: str
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., session_id: _Optional[str] = ..., pending_action_id: _Optional[str] = ..., action: _Optional[_Union[Action, _Mapping]] = ..., edited_action: _Optional[_Union[Action, _Mapping]] = ..., amount: _Optional[str] = ..., currency: _Optional[str] = ..., reason: _Optional[str] = ..., requester: _Optional[_Union[Identity, _Mapping]] = ..., status: _Optional[_Union[ApprovalStatus, str]] = ..., steps: _Optional[_Iterable[_Union[ApprovalStep, _Mapping]]] = ..., current_level: _Optional[int] = ..., created_at_unix_ms: _Optional[int] = ..., decided_at_unix_ms: _Optional[int] = ...) -> None: ...

class ApprovalStep(_message.Message):
    __slots__ = ["activated_at_unix_ms", "approvers", "comment", "decided_at_unix_ms", "decided_by", "edited_action", "expires_at_unix_ms", "level", "status"]
    ACTIVATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    APPROVERS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    EDITED_ACTION_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    activated_at_unix_ms: int
    approvers: _containers.RepeatedScalarFieldContainer[str]
    comment: str
    decided_at_unix_ms: int
    decided_by: Identity
    edited_action: Action
    expires_at_unix_ms: int
    level: int
    status: ApprovalStatus
    def __init__(self, level: _Optional[int] = ..., approvers: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[ApprovalStatus, str]] = ..., decided_by: _Optional[_Union[Identity, _Mapping]] = ..., comment: _Optional[str] = ..., edited_action: _Optional[_Union[Action, _Mapping]] = ..., activated_at_unix_ms: _Optional[int] = ..., expires_at_unix_ms: _Optional[int] = ..., decided_at_unix_ms: _Optional[int] = ...) -> None: ...

class ContextSnapshot(_message.Message):
    __slots__ = ["memories", "session_id", "session_version", "state_json", "taken_at_unix_ms", "total_turns", "turns"]
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    TAKEN_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TURNS_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    memories: _containers.RepeatedCompositeFieldContainer[Memory]
    session_id: str
    session_version: int
    state_json: str
    taken_at_unix_ms: int
    total_turns: int
    turns: _containers.RepeatedCompositeFieldContainer[Turn]
    def __init__(self, session_id: _Optional[str] = ..., session_version: _Optional[int] = ..., state_json: _Optional[str] = ..., turns: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ..., memories: _Optional[_Iterable[_Union[Memory, _Mapping]]] = ..., total_turns: _Optional[int] = ..., taken_at_unix_ms: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ["action", "actor", "details_json", "hash", "occurred_at_unix_ms", "prev_hash", "reasoning", "sequence", "session_id", "traceparent"]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    action: str
    actor: Identity
    details_json: str
    hash: bytes
    occurred_at_unix_ms: int
    prev_hash: bytes
    reasoning: str
    sequence: int
    session_id: str
    traceparent: str
    def __init__(self, sequence: _Optional[int] = ..., session_id: _Optional[str] = ..., action: _Optional[str] = ..., actor: _Optional[_Union[Identity, _Mapping]] = ..., reasoning: _Optional[str] = ..., details_json: _Optional[str] = ..., occurred_at_unix_ms: _Optional[int] = ..., prev_hash: _Optional[bytes] = ..., hash: _Optional[bytes] = ..., traceparent: _Optional[str] = ...) -> None: ...

class Identity(_message.Message):
    __slots__ = ["name", "role", "tenant_id"]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: Role
    tenant_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., name: _Optional[str] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ["code", "message"]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class Memory(_message.Message):
    __slots__ = ["content", "created_at_unix_ms", "metadata_json", "sequence", "session_id"]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    content: str
    created_at_unix_ms: int
    metadata_json: str
    sequence: int
    session_id: str
    def __init__(self, session_id: _Optional[str] = ..., sequence: _Optional[int] = ..., content: _Optional[str] = ..., metadata_json: _Optional[str] = ..., created_at_unix_ms: _Optional[int] = ...) -> None: ...

class PendingAction(_message.Message):
    __slots__ = ["action", "action_hash", "approval_id", "assessed_session_version", "created_at_unix_ms", "decision_type", "expires_at_unix_ms", "id", "idempotency_key", "release_token", "risk", "session_id", "status", "strategy", "ticket_id", "updated_at_unix_ms"]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTION_HASH_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    ASSESSED_SESSION_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    DECISION_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    RELEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    action: Action
    action_hash: bytes
    approval_id: str
    assessed_session_version: int
    created_at_unix_ms: int
    decision_type: DecisionType
    expires_at_unix_ms: int
    id: str
    idempotency_key: str
    release_token: str
    risk: RiskLevel
    session_id: str
    status: PendingActionStatus
    strategy: Strategy
    ticket_id: str
    updated_at_unix_ms: int
    def __init__(self, id: _Optional[str] = ..., session_id: _Optional[str] = ..., action: _Optional[_Union[Action, _Mapping]] = ..., risk: _Optional[_Union[RiskLevel, str]] = ..., decision_type: _Optional[_Union[DecisionType, str]] = ..., strategy: _Optional[_Union[Strategy, str]] = ..., status: _Optional[_Union[PendingActionStatus, str]] = ..., created_at_unix_ms: _Optional[int] = ..., updated_at_unix_ms: _Optional[int] = ..., expires_at_unix_ms: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., release_token: _Optional[str] = ..., action_hash: _Optional[bytes] = ..., assessed_session_version: _Optional[int] = ..., ticket_id: _Optional[str] = ..., approval_id: _Optional[str] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ["created_at_unix_ms", "escalation_ticket_id", "id", "labels", "state_json", "status", "tenant_id", "updated_at_unix_ms", "version"]
    class LabelsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    created_at_unix_ms: int
    escalation_ticket_id: str
    id: str
    labels: _containers.ScalarMap[str, str]
    state_json: str
    status: SessionStatus
    tenant_id: str
    updated_at_unix_ms: int
    version: int
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., version: _Optional[int] = ..., state_json: _Optional[str] = ..., status: _Optional[_Union[SessionStatus, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., created_at_unix_ms: _Optional[int] = ..., updated_at_unix_ms: _Optional[int] = ..., escalation_ticket_id: _Optional[str] = ...) -> None: ...

class Ticket(_message.Message):
    __slots__ = ["assigned_to", "claimed_at_unix_ms", "created_at_unix_ms", "created_by", "id", "outcome", "pending_action_id", "priority", "reason", "resolution_note", "resolved_at_unix_ms", "session_id", "sla_breached", "sla_deadline_unix_ms", "status", "tenant_id"]
    ASSIGNED_TO_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_NOTE_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SLA_BREACHED_FIELD_NUMBER: _ClassVar[int]
    SLA_DEADLINE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    assigned_to: Identity
    claimed_at_unix_ms: int
    created_at_unix_ms: int
    created_by: Identity
    id: str
    outcome: TicketOutcome
    pending_action_id: str
    priority: Priority
    reason: str
    resolution_note: str
    resolved_at_unix_ms: int
    session_id: str
    sla_breached: bool
    sla_deadline_unix_ms: int
    status: TicketStatus
    tenant_id: str
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., session_id: _Optional[str] = ..., pending_action_id: _Optional[str] = ..., reason: _Optional[str] = ..., priority: _Optional[_Union[Priority, str]] = ..., status: _Optional[_Union[TicketStatus, str]] = ..., created_by: _Optional[_Union[Identity, _Mapping]] = ..., assigned_to: _Optional[_Union[Identity, _Mapping]] = ..., created_at_unix_ms: _Optional[int] = ..., claimed_at_unix_ms: _Optional[int] = ..., resolved_at_unix_ms: _Optional[int] = ..., sla_deadline_unix_ms: _Optional[int] = ..., sla_breached: bool = ..., outcome: _Optional[_Union[TicketOutcome, str]] = ..., resolution_note: _Optional[str] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ["since_unix_ms", "until_unix_ms"]
    SINCE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    since_unix_ms: int
    until_unix_ms: int
    def __init__(self, since_unix_ms: _Optional[int] = ..., until_unix_ms: _Optional[int] = ...) -> None: ...

class Turn(_message.Message):
    __slots__ = ["author", "created_at_unix_ms", "input", "metadata_json", "output", "reasoning", "sequence", "session_id", "source"]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    author: Identity
    created_at_unix_ms: int
    input: str
    metadata_json: str
    output: str
    reasoning: str
    sequence: int
    session_id: str
    source: TurnSource
    def __init__(self, session_id: _Optional[str] = ..., sequence: _Optional[int] = ..., input: _Optional[str] = ..., output: _Optional[str] = ..., metadata_json: _Optional[str] = ..., reasoning: _Optional[str] = ..., source: _Optional[_Union[TurnSource, str]] = ..., author: _Optional[_Union[Identity, _Mapping]] = ..., created_at_unix_ms: _Optional[int] = ...) -> None: ...

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class SessionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class TurnSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class RiskLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class DecisionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class Strategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class PendingActionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class TicketStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class TicketOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class ApprovalStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
