from handoff.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

CONFIRMATION_OUTCOME_AMBIGUOUS: ConfirmationOutcome
CONFIRMATION_OUTCOME_CONFIRMED: ConfirmationOutcome
CONFIRMATION_OUTCOME_DECLINED: ConfirmationOutcome
CONFIRMATION_OUTCOME_UNSPECIFIED: ConfirmationOutcome
DESCRIPTOR: _descriptor.FileDescriptor

class RequestConfirmationRequest(_message.Message):
    __slots__ = ["pending_action_id", "prompt"]
    PENDING_ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    pending_action_id: str
    prompt: str
    def __init__(self, pending_action_id: _Optional[str] = ..., prompt: _Optional[str] = ...) -> None: ...

class RequestConfirmationResponse(_message.Message):
    __slots__ = ["pending_action", "prompt"]
    PENDING_ACTION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    pending_action: _common_pb2.PendingAction
    prompt: str
    def __init__(self, prompt: _Optional[str] = ..., pending_action: _Optional[_Union[_common_pb2.PendingAction, _Mapping]] = ...) -> None: ...

class RespondToConfirmationRequest(_message.Message):
    __slots__ = ["pending_action_id", "text"]
    PENDING_ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    pending_action_id: str
    text: str
    def __init__(self, pending_action_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class RespondToConfirmationResponse(_message.Message):
    __slots__ = ["outcome", "pending_action", "reprompt", "reprompt_count"]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTION_FIELD_NUMBER: _ClassVar[int]
    REPROMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPROMPT_FIELD_NUMBER: _ClassVar[int]
    outcome: ConfirmationOutcome
    pending_action: _common_pb2.PendingAction
    reprompt: str
    reprompt_count: int
    def __init__(self, outcome: _Optional[_Union[ConfirmationOutcome, str]] = ..., reprompt: _Optional[str] = ..., reprompt_count: _Optional[int] = ..., pending_action: _Optional[_Union[_common_pb2.PendingAction, _Mapping]] = ...) -> None: ...

class StartMultiFactorRequest(_message.Message):
    __slots__ = ["pending_action_id"]
    PENDING_ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    pending_action_id: str
    def __init__(self, pending_action_id: _Optional[str] = ...) -> None: ...

class StartMultiFactorResponse(_message.Message):
    __slots__ = ["attempts_remaining", "channels", "code_length", "expires_at_unix_ms"]
    ATTEMPTS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    CODE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    attempts_remaining: int
    channels: _containers.RepeatedScalarFieldContainer[str]
    code_length: int
    expires_at_unix_ms: int
    def __init__(self, channels: _Optional[_Iterable[str]] = ..., expires_at_unix_ms: _Optional[int] = ..., code_length: _Optional[int] = ..., attempts_remaining: _Optional[int] = ...) -> None: ...

class VerifyMultiFactorRequest(_message.Message):
    __slots__ = ["code", "pending_action_id"]
    CODE_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    code: str
    pending_action_id: str
    def __init__(self, pending_action_id: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class VerifyMultiFactorResponse(_message.Message):
    __slots__ = ["attempts_remaining", "pending_action", "verified"]
    ATTEMPTS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTION_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    attempts_remaining: int
    pending_action: _common_pb2.PendingAction
    verified: bool
    def __init__(self, verified: bool = ..., attempts_remaining: _Optional[int] = ..., pending_action: _Optional[_Union[_common_pb2.PendingAction, _Mapping]] = ...) -> None: ...

class ConfirmationOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
