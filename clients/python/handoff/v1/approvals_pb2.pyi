from handoff.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

APPROVAL_VERDICT_APPROVE: ApprovalVerdict
APPROVAL_VERDICT_REJECT: ApprovalVerdict
APPROVAL_VERDICT_UNSPECIFIED: ApprovalVerdict
DESCRIPTOR: _descriptor.FileDescriptor

class ApprovalDecision(_message.Message):
    __slots__ = ["approval_id", "comment", "edited_action", "expected_level", "verdict"]
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    EDITED_ACTION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_LEVEL_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    approval_id: str
    comment: str
    edited_action: _common_pb2.Action
    expected_level: int
    verdict: ApprovalVerdict
    def __init__(self, approval_id: _Optional[str] = ..., verdict: _Optional[_Union[ApprovalVerdict, str]] = ..., comment: _Optional[str] = ..., edited_action: _Optional[_Union[_common_pb2.Action, _Mapping]] = ..., expected_level: _Optional[int] = ...) -> None: ...

class ApprovalDecisionResult(_message.Message):
    __slots__ = ["approval", "approval_id", "error"]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    approval: _common_pb2.Approval
    approval_id: str
    error: _common_pb2.ItemError
    def __init__(self, approval_id: _Optional[str] = ..., approval: _Optional[_Union[_common_pb2.Approval, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ItemError, _Mapping]] = ...) -> None: ...

class DecideApprovalRequest(_message.Message):
    __slots__ = ["decisions"]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[ApprovalDecision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[ApprovalDecision, _Mapping]]] = ...) -> None: ...

class DecideApprovalResponse(_message.Message):
    __slots__ = ["results"]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ApprovalDecisionResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ApprovalDecisionResult, _Mapping]]] = ...) -> None: ...

class GetApprovalRequest(_message.Message):
    __slots__ = ["approval_id"]
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    approval_id: str
    def __init__(self, approval_id: _Optional[str] = ...) -> None: ...

class GetApprovalResponse(_message.Message):
    __slots__ = ["approval"]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    approval: _common_pb2.Approval
    def __init__(self, approval: _Optional[_Union[_common_pb2.Approval, _Mapping]] = ...) -> None: ...

class ListPendingApprovalsRequest(_message.Message):
    __slots__ = ["page_size", "page_token", "session_id"]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    session_id: str
    def __init__(self, session_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPendingApprovalsResponse(_message.Message):
    __slots__ = ["approvals", "next_page_token"]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    approvals: _containers.RepeatedCompositeFieldContainer[_common_pb2.Approval]
    next_page_token: str
    def __init__(self, approvals: _Optional[_Iterable[_Union[_common_pb2.Approval, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RequestApprovalRequest(_message.Message):
    __slots__ = ["action", "amount", "currency", "pending_action_id", "reason", "session_id"]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    action: _common_pb2.Action
    amount: str
    currency: str
    pending_action_id: str
    reason: str
    session_id: str
    def __init__(self, session_id: _Optional[str] = ..., pending_action_id: _Optional[str] = ..., action: _Optional[_Union[_common_pb2.Action, _Mapping]] = ..., amount: _Optional[str] = ..., currency: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RequestApprovalResponse(_message.Message):
    __slots__ = ["approval", "pending_action"]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTION_FIELD_NUMBER: _ClassVar[int]
    approval: _common_pb2.Approval
    pending_action: _common_pb2.PendingAction
    def __init__(self, approval: _Optional[_Union[_common_pb2.Approval, _Mapping]] = ..., pending_action: _Optional[_Union[_common_pb2.PendingAction, _Mapping]] = ...) -> None: ...

class ApprovalVerdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
