"""W3C trace context for Handoff calls.

A call carries a ``traceparent`` in its metadata when the caller gave one —
``with handoff.traceparent("00-…-…-01"):`` around the calls — or, when
``opentelemetry-api`` is installed, from the current OpenTelemetry span.
handoffd logs it with the call and records it on every event the call
writes (``Event.traceparent``), so an agent's trace and Handoff's audit
trail can be joined.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Coroutine, Iterator, Optional, TypeVar

_T = TypeVar("_T")
_FORMAT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_current: ContextVar[Optional[str]] = ContextVar("handoff_traceparent", default=None)


def _valid(value: str) -> bool:
    if not _FORMAT.fullmatch(value):
        return False
    _, trace_id, parent_id, _ = value.split("-")
    return trace_id != "0" * 32 and parent_id != "0" * 16


@contextmanager
def traceparent(value: str) -> Iterator[None]:
    """Sends ``value`` (``00-<32 hex>-<16 hex>-<2 hex>``) with every call made inside the block.

    Raises:
        ValueError: ``value`` is not a version-00 W3C traceparent.
    """
    if not _valid(value):
        raise ValueError(f"{value!r} is not a W3C traceparent such as 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    token = _current.set(value)
    try:
        yield
    finally:
        _current.reset(token)


def current_traceparent() -> Optional[str]:
    """The traceparent the next call sends: the innermost ``traceparent()`` block's, else the
    current OpenTelemetry span's (when ``opentelemetry-api`` is installed and a span is recording), else None."""
    value = _current.get()
    if value:
        return value
    try:
        from opentelemetry import trace  # type: ignore[import-not-found]
    except ImportError:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


async def _within(value: str, awaitable: Coroutine[Any, Any, _T]) -> _T:
    """Runs ``awaitable`` with ``value`` as its traceparent (the sync client's calls run on another thread)."""
    token = _current.set(value)
    try:
        return await awaitable
    finally:
        _current.reset(token)
