from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class BackupChunk(_message.Message):
    __slots__ = ["data", "format", "sha256", "total_bytes"]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    format: str
    sha256: bytes
    total_bytes: int
    def __init__(self, data: _Optional[bytes] = ..., total_bytes: _Optional[int] = ..., sha256: _Optional[bytes] = ..., format: _Optional[str] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ["chunk_bytes"]
    CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    chunk_bytes: int
    def __init__(self, chunk_bytes: _Optional[int] = ...) -> None: ...

class ReloadPolicyRequest(_message.Message):
    __slots__ = ["validate_only"]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    validate_only: bool
    def __init__(self, validate_only: bool = ...) -> None: ...

class ReloadPolicyResponse(_message.Message):
    __slots__ = ["applied", "loaded_at_unix_ms", "policy_hash", "policy_version", "rule_count"]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    POLICY_HASH_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RULE_COUNT_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    loaded_at_unix_ms: int
    policy_hash: bytes
    policy_version: str
    rule_count: int
    def __init__(self, policy_version: _Optional[str] = ..., policy_hash: _Optional[bytes] = ..., rule_count: _Optional[int] = ..., applied: bool = ..., loaded_at_unix_ms: _Optional[int] = ...) -> None: ...

class VerifyAuditChainRequest(_message.Message):
    __slots__ = ["session_id"]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class VerifyAuditChainResponse(_message.Message):
    __slots__ = ["events_checked", "first_broken_sequence", "head_hash", "ok", "reason"]
    EVENTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    FIRST_BROKEN_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    events_checked: int
    first_broken_sequence: int
    head_hash: bytes
    ok: bool
    reason: str
    def __init__(self, ok: bool = ..., events_checked: _Optional[int] = ..., first_broken_sequence: _Optional[int] = ..., reason: _Optional[str] = ..., head_hash: _Optional[bytes] = ...) -> None: ...
