from handoff.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecisionUpdate(_message.Message):
    __slots__ = ["action", "comment", "decided_at_unix_ms", "decided_by", "pending_action_id", "release_token", "status"]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    RELEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    action: _common_pb2.Action
    comment: str
    decided_at_unix_ms: int
    decided_by: _common_pb2.Identity
    pending_action_id: str
    release_token: str
    status: _common_pb2.PendingActionStatus
    def __init__(self, pending_action_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.PendingActionStatus, str]] = ..., release_token: _Optional[str] = ..., action: _Optional[_Union[_common_pb2.Action, _Mapping]] = ..., decided_by: _Optional[_Union[_common_pb2.Identity, _Mapping]] = ..., comment: _Optional[str] = ..., decided_at_unix_ms: _Optional[int] = ...) -> None: ...

class ReportExecutionRequest(_message.Message):
    __slots__ = ["error_message", "idempotency_key", "release_token", "result_json"]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    RELEASE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    error_message: str
    idempotency_key: str
    release_token: str
    result_json: str
    def __init__(self, release_token: _Optional[str] = ..., result_json: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class ReportExecutionResponse(_message.Message):
    __slots__ = ["duplicate", "executed_at_unix_ms", "pending_action_id", "recorded", "result_json"]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    duplicate: bool
    executed_at_unix_ms: int
    pending_action_id: str
    recorded: bool
    result_json: str
    def __init__(self, recorded: bool = ..., duplicate: bool = ..., executed_at_unix_ms: _Optional[int] = ..., pending_action_id: _Optional[str] = ..., result_json: _Optional[str] = ...) -> None: ...

class WaitForDecisionRequest(_message.Message):
    __slots__ = ["pending_action_ids"]
    PENDING_ACTION_IDS_FIELD_NUMBER: _ClassVar[int]
    pending_action_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pending_action_ids: _Optional[_Iterable[str]] = ...) -> None: ...
