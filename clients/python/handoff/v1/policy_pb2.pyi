from handoff.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
RULE_KIND_AMOUNT: RuleKind
RULE_KIND_CONFIDENCE: RuleKind
RULE_KIND_DECLARED_TYPE: RuleKind
RULE_KIND_DEFAULT: RuleKind
RULE_KIND_PERSONAL_DATA: RuleKind
RULE_KIND_STANDING_DECISION: RuleKind
RULE_KIND_TOOL: RuleKind
RULE_KIND_UNSPECIFIED: RuleKind
RULE_KIND_WORD: RuleKind

class AssessActionRequest(_message.Message):
    __slots__ = ["action", "idempotency_key", "session_id"]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    action: _common_pb2.Action
    idempotency_key: str
    session_id: str
    def __init__(self, session_id: _Optional[str] = ..., action: _Optional[_Union[_common_pb2.Action, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class AssessActionResponse(_message.Message):
    __slots__ = ["approval_id", "decision_type", "matched_rules", "pending_action", "policy_version", "risk", "sampled_for_review", "strategy", "ticket_id"]
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_TYPE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_RULES_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTION_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_FOR_REVIEW_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    approval_id: str
    decision_type: _common_pb2.DecisionType
    matched_rules: _containers.RepeatedCompositeFieldContainer[MatchedRule]
    pending_action: _common_pb2.PendingAction
    policy_version: str
    risk: _common_pb2.RiskLevel
    sampled_for_review: bool
    strategy: _common_pb2.Strategy
    ticket_id: str
    def __init__(self, risk: _Optional[_Union[_common_pb2.RiskLevel, str]] = ..., decision_type: _Optional[_Union[_common_pb2.DecisionType, str]] = ..., strategy: _Optional[_Union[_common_pb2.Strategy, str]] = ..., matched_rules: _Optional[_Iterable[_Union[MatchedRule, _Mapping]]] = ..., pending_action: _Optional[_Union[_common_pb2.PendingAction, _Mapping]] = ..., sampled_for_review: bool = ..., policy_version: _Optional[str] = ..., ticket_id: _Optional[str] = ..., approval_id: _Optional[str] = ...) -> None: ...

class MatchedRule(_message.Message):
    __slots__ = ["decision_type", "explanation", "kind", "risk", "rule_id"]
    DECISION_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    decision_type: _common_pb2.DecisionType
    explanation: str
    kind: RuleKind
    risk: _common_pb2.RiskLevel
    rule_id: str
    def __init__(self, rule_id: _Optional[str] = ..., kind: _Optional[_Union[RuleKind, str]] = ..., explanation: _Optional[str] = ..., risk: _Optional[_Union[_common_pb2.RiskLevel, str]] = ..., decision_type: _Optional[_Union[_common_pb2.DecisionType, str]] = ...) -> None: ...

class RuleKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
