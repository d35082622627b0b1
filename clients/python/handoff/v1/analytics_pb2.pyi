from handoff.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EscalationStatsRequest(_message.Message):
    __slots__ = ["duration_ms", "range", "top_reasons_limit"]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    TOP_REASONS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    duration_ms: int
    range: _common_pb2.TimeRange
    top_reasons_limit: int
    def __init__(self, range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., duration_ms: _Optional[int] = ..., top_reasons_limit: _Optional[int] = ...) -> None: ...

class EscalationStatsResponse(_message.Message):
    __slots__ = ["alert_active", "alert_threshold", "by_priority", "escalation_rate", "escalations", "median_time_to_claim_ms", "median_time_to_resolve_ms", "p90_time_to_claim_ms", "p90_time_to_resolve_ms", "sessions_in_window", "since_unix_ms", "tickets_claimed", "tickets_resolved", "top_reasons", "until_unix_ms"]
    ALERT_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    ALERT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    BY_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ESCALATIONS_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_RATE_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_TIME_TO_CLAIM_MS_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_TIME_TO_RESOLVE_MS_FIELD_NUMBER: _ClassVar[int]
    P90_TIME_TO_CLAIM_MS_FIELD_NUMBER: _ClassVar[int]
    P90_TIME_TO_RESOLVE_MS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_IN_WINDOW_FIELD_NUMBER: _ClassVar[int]
    SINCE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    TICKETS_CLAIMED_FIELD_NUMBER: _ClassVar[int]
    TICKETS_RESOLVED_FIELD_NUMBER: _ClassVar[int]
    TOP_REASONS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    alert_active: bool
    alert_threshold: float
    by_priority: _containers.RepeatedCompositeFieldContainer[PriorityCount]
    escalation_rate: float
    escalations: int
    median_time_to_claim_ms: int
    median_time_to_resolve_ms: int
    p90_time_to_claim_ms: int
    p90_time_to_resolve_ms: int
    sessions_in_window: int
    since_unix_ms: int
    tickets_claimed: int
    tickets_resolved: int
    top_reasons: _containers.RepeatedCompositeFieldContainer[ReasonCount]
    until_unix_ms: int
    def __init__(self, since_unix_ms: _Optional[int] = ..., until_unix_ms: _Optional[int] = ..., sessions_in_window: _Optional[int] = ..., escalations: _Optional[int] = ..., escalation_rate: _Optional[float] = ..., top_reasons: _Optional[_Iterable[_Union[ReasonCount, _Mapping]]] = ..., by_priority: _Optional[_Iterable[_Union[PriorityCount, _Mapping]]] = ..., tickets_claimed: _Optional[int] = ..., tickets_resolved: _Optional[int] = ..., median_time_to_claim_ms: _Optional[int] = ..., p90_time_to_claim_ms: _Optional[int] = ..., median_time_to_resolve_ms: _Optional[int] = ..., p90_time_to_resolve_ms: _Optional[int] = ..., alert_threshold: _Optional[float] = ..., alert_active: bool = ...) -> None: ...

class PriorityCount(_message.Message):
    __slots__ = ["count", "priority"]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    count: int
    priority: _common_pb2.Priority
    def __init__(self, priority: _Optional[_Union[_common_pb2.Priority, str]] = ..., count: _Optional[int] = ...) -> None: ...

class ReasonCount(_message.Message):
    __slots__ = ["count", "reason"]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    count: int
    reason: str
    def __init__(self, reason: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...
