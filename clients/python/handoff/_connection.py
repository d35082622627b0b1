"""One ``handoff/1`` connection: TLS, framing, call ids and multiplexing.

This module implements docs/PROTOCOL.md on asyncio. A :class:`Connection`
owns one TLS connection; any number of calls share it. Replies are matched to
their calls by call id as frames arrive (the asyncio protocol's
``data_received`` is the reader: it reassembles frames and dispatches each one
to its call without a task switch). Everything here runs on the event loop's
thread; nothing is thread-safe by itself (the synchronous client hands every
operation to the loop).
"""
from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple, Union

from handoff.errors import (
    DeadlineExceeded,
    HandoffError,
    Internal,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
    error_for,
)
from handoff.v1 import envelope_pb2

ALPN = "handoff/1"
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024
#: Messages a stream buffers for a slow reader before it is cancelled.
DEFAULT_MAX_STREAM_BUFFER = 10_000
_LAST_CALL_ID = 2**64 - 1

_REQUEST = envelope_pb2.FRAME_KIND_REQUEST
_MESSAGE = envelope_pb2.FRAME_KIND_MESSAGE
_END = envelope_pb2.FRAME_KIND_END
_CANCEL = envelope_pb2.FRAME_KIND_CANCEL
_PING = envelope_pb2.FRAME_KIND_PING
_PONG = envelope_pb2.FRAME_KIND_PONG
_GOAWAY = envelope_pb2.FRAME_KIND_GOAWAY
_Envelope = envelope_pb2.Envelope

Metadata = Sequence[Tuple[str, str]]


class StreamEnd:
    """The last item of a stream's queue: ``error`` is None for OK."""

    __slots__ = ("error",)

    def __init__(self, error: Optional[HandoffError]) -> None:
        self.error = error


class Call:
    """A call in flight. Unary calls complete ``future``; streams fill ``queue``
    with payloads and then one :class:`StreamEnd`."""

    __slots__ = ("id", "method", "future", "queue", "timer", "connection")

    def __init__(self, call_id: int, method: str, connection: "Connection", streaming: bool) -> None:
        self.id = call_id
        self.method = method
        self.connection = connection
        loop = connection.loop
        self.future: Optional[asyncio.Future[bytes]] = None if streaming else loop.create_future()
        self.queue: Optional[Deque[Union[bytes, StreamEnd]]] = collections.deque() if streaming else None
        self.timer: Optional[asyncio.TimerHandle] = None

    # Streams: a tiny queue whose waiter is a future (cheaper than asyncio.Queue).
    def _wake(self) -> None:
        waiter = self.future
        if waiter is not None and not waiter.done():
            waiter.set_result(b"")

    async def next_item(self) -> Union[bytes, StreamEnd]:
        """The next payload of a stream, or its end."""
        queue = self.queue
        assert queue is not None
        while not queue:
            self.future = self.connection.loop.create_future()
            try:
                await self.future
            finally:
                self.future = None
        return queue.popleft()


def frame(envelope: _Envelope) -> bytes:
    """Encodes one envelope with its 4-byte big-endian length prefix."""
    body = envelope.SerializeToString()
    return len(body).to_bytes(4, "big") + body


class _Protocol(asyncio.Protocol):
    """Bytes in and out for one :class:`Connection`."""

    def __init__(self, connection: "Connection") -> None:
        self.connection = connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connection._made(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.connection._data(data)

    def eof_received(self) -> Optional[bool]:
        return False  # close the transport

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.connection._lost(exc)

    def pause_writing(self) -> None:
        self.connection._pause_writing()

    def resume_writing(self) -> None:
        self.connection._resume_writing()


class Connection:
    """One TLS connection to a Handoff server carrying many calls.

    Use :meth:`open` to make one. Calls are started with :meth:`start` (which
    writes the REQUEST at once, so call ids increase on the wire), awaited
    through the returned :class:`Call`, and cancelled with :meth:`cancel`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 keepalive_interval: Optional[float] = 30.0,
                 max_stream_buffer: int = DEFAULT_MAX_STREAM_BUFFER, label: str = "") -> None:
        self.loop = loop
        self.label = label
        self.max_frame_bytes = max_frame_bytes
        self.max_stream_buffer = max_stream_buffer
        self.keepalive_interval = keepalive_interval
        self.transport: Optional[asyncio.Transport] = None
        self._pending: Dict[int, Call] = {}
        self._next_id = 1
        self._buffer = bytearray()
        self._goaway_last: Optional[int] = None
        self._closed: Optional[HandoffError] = None
        self._lost_waiter: asyncio.Future[None] = loop.create_future()
        self._writable: Optional[asyncio.Future[None]] = None
        # Frames written in one turn of the loop go out in one TLS write.
        self._outbox: List[bytes] = []
        self._batching = False
        self._keepalive: Optional[asyncio.TimerHandle] = None
        self._awaiting_pong = False
        #: Statistics: calls started, and the most calls ever in flight at once.
        self.calls_started = 0
        self.max_in_flight = 0

    # MARK: opening and closing

    @classmethod
    async def open(cls, host: str, port: int, ssl_context: ssl.SSLContext, *, server_hostname: Optional[str],
                   connect_timeout: float = 10.0, **options: Any) -> "Connection":
        """Connects (TCP, TLS with ALPN ``handoff/1``) and returns the connection.

        Raises:
            Unavailable: the server cannot be reached, the handshake failed, or
                the server did not select ``handoff/1``.
        """
        loop = asyncio.get_running_loop()
        connection = cls(loop, label=f"{host}:{port}", **options)
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(connection), host, port, ssl=ssl_context,
                                       server_hostname=server_hostname, ssl_handshake_timeout=connect_timeout),
                connect_timeout)
        except asyncio.TimeoutError:
            raise Unavailable(Unavailable.status, f"cannot connect to {host}:{port}: timed out after {connect_timeout} s") \
                from None
        except ssl.SSLError as error:
            raise Unavailable(Unavailable.status, f"TLS handshake with {host}:{port} failed: {error}") from error
        except OSError as error:
            raise Unavailable(Unavailable.status, f"cannot connect to {host}:{port}: {error}") from error
        transport = connection.transport
        assert transport is not None
        ssl_object = transport.get_extra_info("ssl_object")
        selected = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if selected != ALPN:
            transport.abort()
            raise Unavailable(Unavailable.status,
                              f"the server at {host}:{port} did not select ALPN {ALPN!r} (it selected {selected!r})")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        connection._schedule_keepalive()
        return connection

    @property
    def usable(self) -> bool:
        """True while new calls may start here: open, no GOAWAY, ids left."""
        return self._closed is None and self._goaway_last is None and self._next_id < _LAST_CALL_ID

    @property
    def closed(self) -> bool:
        """True once the connection is closed (or closing)."""
        return self._closed is not None

    @property
    def draining(self) -> bool:
        """True after a GOAWAY: calls in flight continue, new ones go elsewhere."""
        return self._goaway_last is not None

    @property
    def in_flight(self) -> int:
        """Calls started here and not yet ended."""
        return len(self._pending)

    def close(self, reason: Optional[HandoffError] = None) -> None:
        """Closes the connection (TLS close_notify, then TCP close). Calls in
        flight fail with ``reason`` (UNAVAILABLE "connection closed by the
        client" by default)."""
        if reason is None:
            reason = Unavailable(Unavailable.status, "connection closed by the client")
        self._shut(reason)

    async def wait_closed(self, timeout: float = 2.0) -> None:
        """Waits until the transport is gone; aborts it after ``timeout``."""
        if self._lost_waiter.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._lost_waiter), timeout)
        except asyncio.TimeoutError:
            if self.transport is not None:
                self.transport.abort()

    def _shut(self, reason: HandoffError) -> None:
        if self._closed is None:
            self._closed = reason
        self._fail_all(self._closed)
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        if self.transport is not None and not self.transport.is_closing():
            self._flush()  # CANCELs and PONGs already queued still go out
            self.transport.close()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # MARK: calls

    async def wait_writable(self) -> None:
        """Returns once the transport's write buffer is below its high-water mark."""
        waiter = self._writable
        if waiter is not None:
            await asyncio.shield(waiter)

    def start(self, method: str, payload: bytes, *, timeout: Optional[float], metadata: Metadata,
              streaming: bool, server_timeout: Optional[float] = None) -> Call:
        """Starts a call: allocates the next odd call id and writes the REQUEST
        in the same step, so REQUEST frames go out in increasing id order.

        ``timeout`` (seconds) is sent as ``timeout_ms`` and enforced here too:
        when it passes, the call fails with DEADLINE_EXCEEDED and a CANCEL is sent.
        ``server_timeout``, when given, is sent as ``timeout_ms`` instead (the
        server's own deadline, measured from when it reads the REQUEST), and
        ``timeout`` is only the local one.

        Raises:
            Unavailable: the connection is closed or draining (``not_started`` set).
            ResourceExhausted: the REQUEST would exceed the frame limit.
        """
        if self._closed is not None or self._goaway_last is not None or self._next_id >= _LAST_CALL_ID:
            reason = self._closed.message if self._closed is not None else "the server is shutting down this connection"
            error = Unavailable(Unavailable.status, f"{reason}; call not started", method=method)
            error.not_started = True
            raise error
        timeout_ms = local_ms = 0
        if timeout is not None:
            if timeout <= 0 or (server_timeout is not None and server_timeout <= 0):
                raise DeadlineExceeded(DeadlineExceeded.status, "the deadline passed before the call started",
                                       method=method)
            timeout_ms = local_ms = max(1, int(timeout * 1000))
            if server_timeout is not None:
                timeout_ms = max(1, int(server_timeout * 1000))
        envelope = _Envelope(kind=_REQUEST, call_id=self._next_id, method=method, timeout_ms=timeout_ms,
                             payload=payload)
        for key, value in metadata:
            envelope.metadata.add(key=key, value=value)
        data = frame(envelope)
        if len(data) - 4 > self.max_frame_bytes:
            raise ResourceExhausted(
                ResourceExhausted.status,
                f"request frame of {len(data) - 4} bytes exceeds the limit of {self.max_frame_bytes} bytes",
                method=method)
        call_id = self._next_id
        self._next_id += 2
        call = Call(call_id, method, self, streaming)
        if timeout is not None:
            call.timer = self.loop.call_later(timeout, self._deadline, call_id, local_ms)
        self._pending[call_id] = call
        self.calls_started += 1
        if len(self._pending) > self.max_in_flight:
            self.max_in_flight = len(self._pending)
        self._send(data)
        return call

    def cancel(self, call: Call, reason: Optional[HandoffError] = None) -> None:
        """Cancels a call in flight: sends CANCEL and completes the call with
        ``reason`` (CANCELLED by default). Does nothing when the call ended."""
        if self._pending.get(call.id) is not call:
            return
        del self._pending[call.id]
        if call.timer is not None:
            call.timer.cancel()
        self._complete(call, reason or error_for(1, "the call was cancelled by the client", method=call.method))
        self._write(_Envelope(kind=_CANCEL, call_id=call.id))
        self._maybe_finish_draining()

    def ping(self, data: bytes = b"") -> None:
        """Sends a PING frame (the keepalive does this on its own)."""
        self._write(_Envelope(kind=_PING, payload=data))

    def _deadline(self, call_id: int, timeout_ms: int) -> None:
        call = self._pending.pop(call_id, None)
        if call is None:
            return
        call.timer = None
        self._complete(call, DeadlineExceeded(DeadlineExceeded.status, f"deadline of {timeout_ms} ms exceeded",
                                              method=call.method))
        self._write(_Envelope(kind=_CANCEL, call_id=call_id))
        self._maybe_finish_draining()

    def _write(self, envelope: _Envelope) -> None:
        self._send(frame(envelope))

    def _send(self, data: bytes) -> None:
        # The first frame of a turn of the loop is written at once (no added
        # latency); frames that follow in the same turn are collected and
        # written together by _flush, one TLS record and syscall for many calls.
        if self._batching:
            self._outbox.append(data)
            return
        self._batching = True
        self.loop.call_soon(self._flush)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _flush(self) -> None:
        self._batching = False
        outbox, self._outbox = self._outbox, []
        if outbox and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(outbox) if len(outbox) > 1 else outbox[0])

    def _complete(self, call: Call, result: Union[bytes, HandoffError]) -> None:
        if call.queue is not None:
            call.queue.append(StreamEnd(result if isinstance(result, HandoffError) else None))
            call._wake()
            return
        future = call.future
        assert future is not None
        if future.done():
            return
        if isinstance(result, HandoffError):
            future.set_exception(result)
        else:
            future.set_result(result)

    def _fail_all(self, reason: HandoffError) -> None:
        pending, self._pending = self._pending, {}
        for call in pending.values():
            if call.timer is not None:
                call.timer.cancel()
            self._complete(call, _copy_error(reason, call.method))

    def _maybe_finish_draining(self) -> None:
        # After a GOAWAY the server closes once nothing is in flight; so do we.
        if self._goaway_last is not None and not self._pending and self._closed is None:
            self._shut(Unavailable(Unavailable.status, "connection closed after the server's GOAWAY"))

    # MARK: keepalive

    def _schedule_keepalive(self) -> None:
        if self.keepalive_interval and self._closed is None:
            self._keepalive = self.loop.call_later(self.keepalive_interval, self._keepalive_tick)

    def _keepalive_tick(self) -> None:
        self._keepalive = None
        if self._closed is not None:
            return
        if self._awaiting_pong:
            self._shut(Unavailable(Unavailable.status, "keepalive timed out: no PONG from the server"))
            return
        self._awaiting_pong = True
        self.ping()
        self._schedule_keepalive()

    # MARK: protocol callbacks

    def _made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def _pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self.loop.create_future()

    def _resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def _lost(self, exc: Optional[Exception]) -> None:
        if self._closed is None:
            message = f"connection closed: {exc}" if exc else "connection closed"
            self._closed = Unavailable(Unavailable.status, message)
        self._shut(self._closed)
        if not self._lost_waiter.done():
            self._lost_waiter.set_result(None)

    def _data(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        limit = self.max_frame_bytes
        position = 0
        available = len(buffer)
        view = memoryview(buffer)
        try:
            while available - position >= 4 and self._closed is None:
                size = int.from_bytes(view[position:position + 4], "big")
                if size > limit:
                    self._protocol_error(f"bad frame from the server: frame of {size} bytes exceeds the limit "
                                         f"of {limit} bytes")
                    return
                end = position + 4 + size
                if end > available:
                    break
                try:
                    envelope = _Envelope.FromString(view[position + 4:end].tobytes())
                except Exception as error:  # DecodeError, or a UTF-8 error from upb
                    self._protocol_error(f"bad frame from the server: {error}")
                    return
                position = end
                self._received(envelope)
        finally:
            view.release()
        if self._closed is not None:
            self._buffer = bytearray()
        elif position:
            del buffer[:position]

    def _protocol_error(self, message: str) -> None:
        self._shut(Internal(Internal.status, message))

    def _received(self, envelope: _Envelope) -> None:
        kind = envelope.kind
        if kind == _END:
            call = self._pending.pop(envelope.call_id, None)
            if call is None:
                return  # crossed a CANCEL or a local deadline
            if call.timer is not None:
                call.timer.cancel()
            if envelope.status_code == 0:
                self._complete(call, envelope.payload)
            else:
                self._complete(call, error_for(envelope.status_code, envelope.status_message, method=call.method))
            self._maybe_finish_draining()
        elif kind == _MESSAGE:
            call = self._pending.get(envelope.call_id)
            if call is None or call.queue is None:
                return  # a unary call gets no MESSAGE; ignore one if it comes
            if len(call.queue) >= self.max_stream_buffer:
                self.cancel(call, ResourceExhausted(
                    ResourceExhausted.status,
                    f"the stream's reader fell {self.max_stream_buffer} messages behind; the call was cancelled",
                    method=call.method))
                return
            call.queue.append(envelope.payload)
            call._wake()
        elif kind == _PING:
            self._write(_Envelope(kind=_PONG, call_id=envelope.call_id, payload=envelope.payload))
        elif kind == _PONG:
            self._awaiting_pong = False
        elif kind == _GOAWAY:
            last = envelope.call_id
            self._goaway_last = last if self._goaway_last is None else min(last, self._goaway_last)
            reason = envelope.status_message or "GOAWAY"
            for call_id in [i for i in self._pending if i > last]:
                call = self._pending.pop(call_id)
                if call.timer is not None:
                    call.timer.cancel()
                error = Unavailable(Unavailable.status, f"the server is shutting down ({reason}); call not started",
                                    method=call.method)
                error.not_started = True
                self._complete(call, error)
            self._maybe_finish_draining()
        else:
            self._protocol_error(f"the server sent an invalid frame kind {kind}")


def _copy_error(error: HandoffError, method: str) -> HandoffError:
    copy = error_for(error.wire_code, error.message, method=method)
    copy.not_started = error.not_started
    return copy


def check_no_nul(message: Any, path: str = "") -> None:
    """Refuses a request whose strings hold U+0000 (the server would silently
    truncate them, docs/PROTOCOL.md section 9.5)."""
    for field, value in message.ListFields():
        name = f"{path}{field.name}"
        if field.type == field.TYPE_STRING:
            values: List[str] = list(value) if _repeated(field) else [value]
            if any("\x00" in v for v in values):
                raise InvalidArgument(InvalidArgument.status, f"{name} contains U+0000, which Handoff cannot carry")
        elif field.type == field.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                for key, item in value.items():
                    if "\x00" in str(key) or (isinstance(item, str) and "\x00" in item):
                        raise InvalidArgument(InvalidArgument.status,
                                              f"{name} contains U+0000, which Handoff cannot carry")
            elif _repeated(field):
                for item in value:
                    check_no_nul(item, name + ".")
            else:
                check_no_nul(value, name + ".")


def _repeated(field: Any) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 6.32 deprecates `label`
    if flag is not None:
        return bool(flag)
    return bool(field.label == field.LABEL_REPEATED)
