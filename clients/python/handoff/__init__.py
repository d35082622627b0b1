"""Handoff: the Python client of the Handoff human-in-the-loop server.

Two clients with the same API:

- :class:`Client`, blocking and thread-safe;
- :class:`AsyncClient`, for asyncio.

Each keeps one TLS connection (mutual TLS, ALPN ``handoff/1``) with any number
of calls in flight, reconnects after the connection is lost, and raises a
:class:`HandoffError` subclass carrying the call's :class:`StatusCode` when a
call fails. The generated protobuf modules are in :mod:`handoff.v1`.
"""
from handoff._trace import current_traceparent, traceparent
from handoff.aio import AsyncClient, Stream
from handoff.client import Client, SyncStream
from handoff.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    HandoffError,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    StatusCode,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
)
from handoff.models import Assessment, Context, Decision, Session, StateUpdate
from handoff.v1.common_pb2 import Action

__version__ = "0.1.0"

__all__ = [
    "traceparent", "current_traceparent",
    "Aborted",
    "Action",
    "AlreadyExists",
    "Assessment",
    "AsyncClient",
    "Cancelled",
    "Client",
    "Context",
    "DataLoss",
    "DeadlineExceeded",
    "Decision",
    "FailedPrecondition",
    "HandoffError",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Session",
    "StateUpdate",
    "StatusCode",
    "Stream",
    "SyncStream",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
]
