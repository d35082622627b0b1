"""Typed errors of the Handoff client.

Every failed call raises a :class:`HandoffError` whose :attr:`~HandoffError.code`
is a :class:`StatusCode` (gRPC's canonical codes, as carried in an END or GOAWAY
frame, docs/PROTOCOL.md section 5.4) and whose :attr:`~HandoffError.message` is
the server's ``status_message`` (or the client's own reason for errors it
detects locally: a lost connection, a local deadline, an oversized request).

The most common codes have their own subclasses, so agent code can write::

    try:
        client.sessions.update_state(sid, {"step": 2}, reasoning="...", expected_version=v)
    except handoff.Aborted:
        ...  # somebody else changed the state first; re-read and retry

Status messages are for humans and logs; do not parse them.
"""
from __future__ import annotations

import enum
from typing import Dict, Optional, Type

__all__ = [
    "StatusCode",
    "HandoffError",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
    "error_for",
]


class StatusCode(enum.IntEnum):
    """gRPC's canonical status codes, with the numbers used on the wire."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16

    @classmethod
    def from_wire(cls, number: int) -> "StatusCode":
        """The code for a wire number; numbers this client does not know are UNKNOWN."""
        try:
            return cls(number)
        except ValueError:
            return cls.UNKNOWN


class HandoffError(Exception):
    """A call failed with a non-OK status.

    Attributes:
        code: the status code (numbers above 16 are reported as UNKNOWN).
        message: the server's status message, or the client's reason.
        wire_code: the number as received (differs from ``code`` only for
            codes this client does not know).
        method: the full method name of the call, when known.
    """

    #: The code a subclass stands for (``None`` on the base class).
    status: Optional[StatusCode] = None

    def __init__(self, code: StatusCode, message: str = "", *, wire_code: Optional[int] = None,
                 method: Optional[str] = None) -> None:
        self.code = StatusCode(code)
        self.message = message
        self.wire_code = int(code) if wire_code is None else wire_code
        self.method = method
        # True when the server certainly did not start the call (a GOAWAY
        # below its id): it is safe to retry on a new connection.
        self.not_started = False
        super().__init__(code, message)

    def __str__(self) -> str:
        name = self.code.name if self.wire_code == int(self.code) else f"CODE_{self.wire_code}"
        where = f" ({self.method})" if self.method else ""
        return f"{name}: {self.message}{where}" if self.message else f"{name}{where}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.name}, message={self.message!r})"


class Cancelled(HandoffError):
    """CANCELLED: the call was cancelled (locally, or by the method handler)."""
    status = StatusCode.CANCELLED


class Unknown(HandoffError):
    """UNKNOWN: an error without a known code."""
    status = StatusCode.UNKNOWN


class InvalidArgument(HandoffError):
    """INVALID_ARGUMENT: a request field is missing or invalid."""
    status = StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(HandoffError):
    """DEADLINE_EXCEEDED: the call's deadline passed (locally or on the server)."""
    status = StatusCode.DEADLINE_EXCEEDED


class NotFound(HandoffError):
    """NOT_FOUND: the named record does not exist (or belongs to another tenant)."""
    status = StatusCode.NOT_FOUND


class AlreadyExists(HandoffError):
    """ALREADY_EXISTS: a create with a client-chosen id that is taken."""
    status = StatusCode.ALREADY_EXISTS


class PermissionDenied(HandoffError):
    """PERMISSION_DENIED: the caller's identity (role, tenant) may not do this."""
    status = StatusCode.PERMISSION_DENIED


class ResourceExhausted(HandoffError):
    """RESOURCE_EXHAUSTED: a limit was hit (calls in flight, frame size, rate)."""
    status = StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(HandoffError):
    """FAILED_PRECONDITION: the record is not in a state that allows the call."""
    status = StatusCode.FAILED_PRECONDITION


class Aborted(HandoffError):
    """ABORTED: a concurrency conflict (a stale ``expected_version``); nothing changed."""
    status = StatusCode.ABORTED


class OutOfRange(HandoffError):
    """OUT_OF_RANGE: a position past what is retained (an old Watch cursor)."""
    status = StatusCode.OUT_OF_RANGE


class Unimplemented(HandoffError):
    """UNIMPLEMENTED: this server does not serve the method."""
    status = StatusCode.UNIMPLEMENTED


class Internal(HandoffError):
    """INTERNAL: the server (or a malformed frame from it) failed."""
    status = StatusCode.INTERNAL


class Unavailable(HandoffError):
    """UNAVAILABLE: the server cannot be reached, is shutting down, or the
    connection was lost while the call was in flight (its outcome is then
    unknown unless :attr:`not_started` is true)."""
    status = StatusCode.UNAVAILABLE


class DataLoss(HandoffError):
    """DATA_LOSS: not used by Handoff 1."""
    status = StatusCode.DATA_LOSS


class Unauthenticated(HandoffError):
    """UNAUTHENTICATED: no valid credentials (certificate or bearer token)."""
    status = StatusCode.UNAUTHENTICATED


_BY_CODE: Dict[StatusCode, Type[HandoffError]] = {
    cls.status: cls for cls in HandoffError.__subclasses__() if cls.status is not None
}


def error_for(code: int, message: str = "", *, method: Optional[str] = None) -> HandoffError:
    """The error for a wire status code: an instance of the code's subclass."""
    status = StatusCode.from_wire(code)
    cls = _BY_CODE.get(status, HandoffError)
    return cls(status, message, wire_code=code, method=method)
