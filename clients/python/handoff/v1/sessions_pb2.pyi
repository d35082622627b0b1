from handoff.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
EVENT_ORDER_NEWEST_FIRST: EventOrder
EVENT_ORDER_OLDEST_FIRST: EventOrder
EVENT_ORDER_UNSPECIFIED: EventOrder

class AddMemoryRequest(_message.Message):
    __slots__ = ["content", "metadata_json", "reasoning", "session_id"]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    content: str
    metadata_json: str
    reasoning: str
    session_id: str
    def __init__(self, session_id: _Optional[str] = ..., content: _Optional[str] = ..., metadata_json: _Optional[str] = ..., reasoning: _Optional[str] = ...) -> None: ...

class AddMemoryResponse(_message.Message):
    __slots__ = ["memory"]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    memory: _common_pb2.Memory
    def __init__(self, memory: _Optional[_Union[_common_pb2.Memory, _Mapping]] = ...) -> None: ...

class AddTurnRequest(_message.Message):
    __slots__ = ["input", "metadata_json", "output", "reasoning", "session_id"]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    input: str
    metadata_json: str
    output: str
    reasoning: str
    session_id: str
    def __init__(self, session_id: _Optional[str] = ..., input: _Optional[str] = ..., output: _Optional[str] = ..., metadata_json: _Optional[str] = ..., reasoning: _Optional[str] = ...) -> None: ...

class AddTurnResponse(_message.Message):
    __slots__ = ["turn"]
    TURN_FIELD_NUMBER: _ClassVar[int]
    turn: _common_pb2.Turn
    def __init__(self, turn: _Optional[_Union[_common_pb2.Turn, _Mapping]] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ["labels", "reasoning", "session_id", "state_json"]
    class LabelsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.ScalarMap[str, str]
    reasoning: str
    session_id: str
    state_json: str
    def __init__(self, session_id: _Optional[str] = ..., state_json: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., reasoning: _Optional[str] = ...) -> None: ...

class CreateSessionResponse(_message.Message):
    __slots__ = ["session"]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: _common_pb2.Session
    def __init__(self, session: _Optional[_Union[_common_pb2.Session, _Mapping]] = ...) -> None: ...

class GetContextRequest(_message.Message):
    __slots__ = ["session_id", "turn_limit"]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_LIMIT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    turn_limit: int
    def __init__(self, session_id: _Optional[str] = ..., turn_limit: _Optional[int] = ...) -> None: ...

class GetContextResponse(_message.Message):
    __slots__ = ["memories", "session", "total_turns", "turns"]
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TURNS_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    memories: _containers.RepeatedCompositeFieldContainer[_common_pb2.Memory]
    session: _common_pb2.Session
    total_turns: int
    turns: _containers.RepeatedCompositeFieldContainer[_common_pb2.Turn]
    def __init__(self, session: _Optional[_Union[_common_pb2.Session, _Mapping]] = ..., turns: _Optional[_Iterable[_Union[_common_pb2.Turn, _Mapping]]] = ..., memories: _Optional[_Iterable[_Union[_common_pb2.Memory, _Mapping]]] = ..., total_turns: _Optional[int] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ["session_id"]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetSessionResponse(_message.Message):
    __slots__ = ["session"]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: _common_pb2.Session
    def __init__(self, session: _Optional[_Union[_common_pb2.Session, _Mapping]] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ["actions", "order", "page_size", "page_token", "session_id", "since_unix_ms", "until_unix_ms"]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    actions: _containers.RepeatedScalarFieldContainer[str]
    order: EventOrder
    page_size: int
    page_token: str
    session_id: str
    since_unix_ms: int
    until_unix_ms: int
    def __init__(self, session_id: _Optional[str] = ..., actions: _Optional[_Iterable[str]] = ..., since_unix_ms: _Optional[int] = ..., until_unix_ms: _Optional[int] = ..., order: _Optional[_Union[EventOrder, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ["events", "next_page_token"]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_common_pb2.Event]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[_common_pb2.Event, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateStateRequest(_message.Message):
    __slots__ = ["expected_version", "merge_patch_json", "reasoning", "replacement_json", "session_id"]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    MERGE_PATCH_JSON_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    REPLACEMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    expected_version: int
    merge_patch_json: str
    reasoning: str
    replacement_json: str
    session_id: str
    def __init__(self, session_id: _Optional[str] = ..., merge_patch_json: _Optional[str] = ..., replacement_json: _Optional[str] = ..., reasoning: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class UpdateStateResponse(_message.Message):
    __slots__ = ["state_json", "version"]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    state_json: str
    version: int
    def __init__(self, version: _Optional[int] = ..., state_json: _Optional[str] = ...) -> None: ...

class EventOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
