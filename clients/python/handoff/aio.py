"""The asyncio client: :class:`AsyncClient`.

One :class:`AsyncClient` keeps one TLS connection to the server and runs every
call on it, as many at once as the caller starts (each call has its own call
id; replies are matched by id). When the connection is lost, the calls in
flight on it fail with :class:`~handoff.errors.Unavailable`, and the next call
opens a new connection. After the server's GOAWAY (graceful shutdown), calls
still in flight finish on the old connection and new calls open a new one;
calls the server certainly did not start are retried there transparently.

::

    async with AsyncClient.from_certs("127.0.0.1:7443", "certs", role="agent") as client:
        session = await client.sessions.create(state={"cart": []})
        await client.sessions.update_state(session.id, {"cart": ["book"]}, reasoning="user added a book")
        verdict = await client.assess(session.id, {"tool_name": "get_weather", "parameters": {"city": "Oslo"}})
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from typing import (Any, Callable, Dict, Generic, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, TypeVar,
                    Union)

from google.protobuf.message import Message

from handoff._trace import current_traceparent
from handoff import models
from handoff._connection import ALPN, DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_STREAM_BUFFER, Call, Connection, \
    StreamEnd, check_no_nul
from handoff._methods import METHODS, MethodInfo
from handoff.errors import DeadlineExceeded, HandoffError, Internal, Unavailable, error_for
from handoff.models import ActionLike, Assessment, Context, Decision, PendingRef, Session, StateUpdate
from handoff.v1 import (approvals_pb2, common_pb2, confirmations_pb2, decisions_pb2, escalations_pb2, health_pb2,
                        operators_pb2, policy_pb2, sessions_pb2)

__all__ = ["AsyncClient", "Stream", "parse_address", "make_ssl_context"]

T = TypeVar("T")
_M = TypeVar("_M", bound=Message)

#: How often a call the server did not start (GOAWAY) is retried on a new connection.
_NOT_STARTED_RETRIES = 3
_DEFAULT_PORT = 7443


def parse_address(address: Union[str, Tuple[str, int]]) -> Tuple[str, int]:
    """``"host:port"``, ``"[::1]:port"``, ``"host"`` (port 7443) or a tuple."""
    if isinstance(address, tuple):
        return address[0], int(address[1])
    text = address.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else _DEFAULT_PORT
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, _DEFAULT_PORT  # a bare host name, or a bare IPv6 literal


def make_ssl_context(ca_file: Optional[str] = None, cert_file: Optional[str] = None,
                     key_file: Optional[str] = None) -> ssl.SSLContext:
    """A client TLS context for Handoff: TLS 1.2 at least, ALPN ``handoff/1``,
    the server verified against ``ca_file`` (the system store when None),
    and the client certificate ``cert_file``/``key_file`` when given."""
    for what, path in (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file)):
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"{what} {path} does not exist")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ALPN])
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


class Stream(Generic[T]):
    """A server-streaming call: an async iterator of its messages.

    The call starts on first use. Leaving an ``async with`` block, or calling
    :meth:`aclose`, cancels a call that has not ended (a CANCEL frame is
    sent); so does dropping the last reference to an unfinished stream::

        async with client.desk.watch() as events:
            async for event in events:
                ...

    Iteration ends when the server ends the stream with OK, and raises the
    stream's error (a :class:`~handoff.errors.HandoffError`) otherwise.
    """

    def __init__(self, client: "AsyncClient", info: MethodInfo, payload: bytes, timeout: Optional[float],
                 metadata: Sequence[Tuple[str, str]], convert: Callable[[Any], T], grace: float = 0.0) -> None:
        self._client = client
        self._info = info
        self._payload = payload
        self._timeout = timeout
        self._grace = grace
        self._metadata = metadata
        self._convert = convert
        self._call: Optional[Call] = None
        self._starting: Optional[asyncio.Future[None]] = None
        self._finished = False

    @property
    def method(self) -> str:
        """The stream's method, ``handoff.v1.<Service>/<Method>``."""
        return self._info.name

    async def start(self) -> None:
        """Sends the REQUEST now (iteration does it on first use otherwise)."""
        if self._call is not None or self._finished:
            return
        if self._starting is not None:  # another task is starting it
            other = self._starting
            try:
                await asyncio.shield(other)
            except asyncio.CancelledError:
                if not other.cancelled():
                    raise  # this task was cancelled
            return
        starting = self._starting = asyncio.get_running_loop().create_future()
        try:
            self._call = await self._client._start(self._info, self._payload, self._timeout, self._metadata,
                                                   streaming=True, grace=self._grace)
        except BaseException:
            self._finished = True
            starting.cancel()
            raise
        finally:
            if not starting.done():
                starting.set_result(None)

    def __aiter__(self) -> "Stream[T]":
        return self

    async def __anext__(self) -> T:
        if self._call is None:
            if self._finished:
                raise StopAsyncIteration
            await self.start()
        call = self._call
        if call is None:  # another task's start failed; it raised the error
            raise StopAsyncIteration
        item = await call.next_item()
        if isinstance(item, StreamEnd):
            self._finished = True
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        try:
            message = self._info.response.FromString(item)
        except Exception as error:
            self.cancel()
            raise Internal(Internal.status, f"the server sent a message that is not a valid "
                                            f"{self._info.response.DESCRIPTOR.full_name}: {error}",
                           method=self._info.name) from error
        return self._convert(message)

    def cancel(self) -> None:
        """Cancels the call if it has not ended (sends CANCEL). Must run on the
        client's event loop."""
        call = self._call
        if call is not None and not self._finished:
            self._finished = True
            call.connection.cancel(call)
        self._finished = True

    async def aclose(self) -> None:
        """Cancels the call if it has not ended."""
        self.cancel()

    async def __aenter__(self) -> "Stream[T]":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.cancel()

    def __del__(self) -> None:
        call = self._call
        if call is None or self._finished:
            return
        loop = call.connection.loop
        try:
            if not loop.is_closed():
                loop.call_soon_threadsafe(call.connection.cancel, call)
        except RuntimeError:
            pass


class AsyncClient:
    """An asyncio client of a Handoff server.

    Args:
        address: ``"host:port"`` of the server (``"127.0.0.1:7443"`` by default).
        ca_file: PEM bundle the server's certificate must chain to; the system
            trust store when None.
        cert_file, key_file: the client certificate (its SAN URI
            ``handoff://tenant/<tenant>/<role>/<name>`` is the caller's identity).
        server_hostname: the name to verify the server certificate against
            (and send as SNI); the host of ``address`` by default.
        bearer_token: sent as ``authorization: Bearer <token>`` with every call
            (for callers without a client certificate).
        metadata: extra ``(key, value)`` pairs sent with every call; keys lower-case.
        default_timeout: deadline of unary calls that set none, in seconds
            (None: no deadline). Streams have no deadline unless given one.
        connect_timeout: seconds to wait for TCP and TLS.
        keepalive_interval: a PING every so many seconds keeps the connection
            open (the server closes one idle for 120 s) and detects a dead one
            (no PONG by the next PING: the connection is closed). None: off.
        max_frame_bytes: the frame size limit (4 MiB, as the server's default).
        max_calls_in_flight: unary calls beyond this many wait for a slot (the
            server refuses more than 1024 per connection by default).
        ssl_context: a ready TLS context instead of the three files (ALPN
            ``handoff/1`` is set on it).

    Every call takes ``timeout`` in seconds; the deadline is sent to the server
    (``timeout_ms``) and enforced locally: when it passes the call raises
    :class:`~handoff.errors.DeadlineExceeded` and a CANCEL is sent.
    """

    def __init__(self, address: Union[str, Tuple[str, int]] = "127.0.0.1:7443", *, ca_file: Optional[str] = None,
                 cert_file: Optional[str] = None, key_file: Optional[str] = None,
                 server_hostname: Optional[str] = None, bearer_token: Optional[str] = None,
                 metadata: Optional[Iterable[Tuple[str, str]]] = None, default_timeout: Optional[float] = 30.0,
                 connect_timeout: float = 10.0, keepalive_interval: Optional[float] = 30.0,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, max_calls_in_flight: int = 1024,
                 max_stream_buffer: int = DEFAULT_MAX_STREAM_BUFFER,
                 ssl_context: Optional[ssl.SSLContext] = None) -> None:
        self.host, self.port = parse_address(address)
        self.server_hostname = server_hostname or self.host
        if ssl_context is None:
            ssl_context = make_ssl_context(ca_file, cert_file, key_file)
        else:
            ssl_context.set_alpn_protocols([ALPN])
        self.ssl_context = ssl_context
        entries = [(str(k), str(v)) for k, v in (metadata or ())]
        for key, _ in entries:
            if key != key.lower():
                raise ValueError(f"metadata key {key!r} must be lower-case")
        if bearer_token is not None:
            entries.insert(0, ("authorization", f"Bearer {bearer_token}"))
        self.metadata: List[Tuple[str, str]] = entries
        self.default_timeout = default_timeout
        self.connect_timeout = connect_timeout
        self.keepalive_interval = keepalive_interval
        self.max_frame_bytes = max_frame_bytes
        self.max_calls_in_flight = max_calls_in_flight
        self.max_stream_buffer = max_stream_buffer
        #: How many connections this client has opened so far.
        self.connect_count = 0
        self._connection: Optional[Connection] = None
        self._connections: Set[Connection] = set()
        self._connecting: Optional[asyncio.Task[Connection]] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._slots: Optional[asyncio.Semaphore] = None
        self._closed = False
        self.sessions = AsyncSessions(self)
        self.desk = AsyncDesk(self)

    @classmethod
    def from_certs(cls, address: Union[str, Tuple[str, int]], certs_dir: str, role: str = "agent",
                   **options: Any) -> "AsyncClient":
        """A client using the files ``handoff certs init DIR`` writes:
        ``DIR/ca.pem`` and ``DIR/<role>.pem``/``DIR/<role>.key`` (``role`` may
        be ``"agent"`` or, with several tenants, ``"<tenant>.<role>"``)."""
        return cls(address, ca_file=os.path.join(certs_dir, "ca.pem"),
                   cert_file=os.path.join(certs_dir, f"{role}.pem"),
                   key_file=os.path.join(certs_dir, f"{role}.key"), **options)

    # MARK: connection

    @property
    def connection(self) -> Optional[Connection]:
        """The connection new calls use (None before the first call)."""
        return self._connection

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                raise RuntimeError("this AsyncClient is in use on another event loop; make one client per loop")
            self._loop = loop
            self._connection = None
            self._connections = set()
            self._connecting = None
            self._slots = asyncio.Semaphore(self.max_calls_in_flight)
        return loop

    async def connect(self) -> Connection:
        """Opens the connection now (calls do it on first use) and returns it."""
        self._bind()
        return await self._shared_connection()

    async def _shared_connection(self) -> Connection:
        connection = self._connection
        if connection is not None and connection.usable:
            return connection
        if self._closed:
            raise Unavailable(Unavailable.status, "the client is closed")
        task = self._connecting
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open())
            task.add_done_callback(_retrieve)
            self._connecting = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done() and self._connecting is task:
                self._connecting = None

    async def _open(self) -> Connection:
        connection = await Connection.open(
            self.host, self.port, self.ssl_context, server_hostname=self.server_hostname,
            connect_timeout=self.connect_timeout, max_frame_bytes=self.max_frame_bytes,
            keepalive_interval=self.keepalive_interval, max_stream_buffer=self.max_stream_buffer)
        if self._closed:
            connection.close()
            raise Unavailable(Unavailable.status, "the client is closed")
        self.connect_count += 1
        self._connection = connection
        self._connections.add(connection)
        connection._lost_waiter.add_done_callback(lambda _: self._connections.discard(connection))
        return connection

    async def _connection_within(self, deadline: Optional[float], method: str) -> Connection:
        connection = self._connection
        if connection is not None and connection.usable:
            return connection
        if deadline is None:
            return await self._shared_connection()
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(self._shared_connection(), max(remaining, 0))
        except asyncio.TimeoutError:
            raise DeadlineExceeded(DeadlineExceeded.status, "the deadline passed while connecting",
                                   method=method) from None

    async def close(self) -> None:
        """Closes every connection; calls in flight fail with UNAVAILABLE and
        later calls are refused."""
        self._closed = True
        connections = list(self._connections)
        self._connection = None
        for connection in connections:
            connection.close(Unavailable(Unavailable.status, "the client was closed"))
        if connections:
            await asyncio.gather(*(c.wait_closed() for c in connections), return_exceptions=True)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    # MARK: generic calls

    def _resolve(self, method: Union[str, MethodInfo], request: Message, streaming: bool) -> MethodInfo:
        info = method if isinstance(method, MethodInfo) else METHODS.get(method)
        if info is None:
            raise ValueError(f"unknown method {method!r}; expected handoff.v1.<Service>/<Method>")
        if info.server_streaming != streaming:
            raise ValueError(f"{info.name} is {'server streaming: use stream()' if info.server_streaming else 'unary: use call()'}")
        if not isinstance(request, info.request):
            raise TypeError(f"{info.name} takes a {info.request.DESCRIPTOR.full_name}, not {type(request).__name__}")
        return info

    def _encode(self, info: MethodInfo, request: Message) -> bytes:
        check_no_nul(request)
        return request.SerializeToString()

    def _call_metadata(self, metadata: Optional[Iterable[Tuple[str, str]]]) -> List[Tuple[str, str]]:
        extra = [(str(k), str(v)) for k, v in (metadata or ())]
        for key, value in extra:
            if key != key.lower():
                raise ValueError(f"metadata key {key!r} must be lower-case")
            if "\x00" in key or "\x00" in value:
                raise ValueError("metadata cannot hold U+0000")
        # The trace context of the calling code (handoff.traceparent or OpenTelemetry), unless given explicitly.
        if not any(key == "traceparent" for key, _ in self.metadata + extra):
            trace = current_traceparent()
            if trace:
                extra.append(("traceparent", trace))
        return self.metadata + extra if extra else self.metadata

    async def _start(self, info: MethodInfo, payload: bytes, timeout: Optional[float],
                     metadata: Sequence[Tuple[str, str]], streaming: bool, grace: float = 0.0) -> Call:
        """Starts a call on the current connection (opening one if needed),
        retrying calls the server certainly did not start. With ``grace``, the
        server's deadline is ``timeout`` and the local one ``grace`` later."""
        loop = self._bind()
        deadline = None if timeout is None else loop.time() + timeout + grace
        for attempt in range(_NOT_STARTED_RETRIES + 1):
            connection = await self._connection_within(deadline, info.name)
            await connection.wait_writable()
            remaining = None if deadline is None else deadline - loop.time()
            server_timeout = None if timeout is None or not grace or remaining is None else min(timeout, remaining)
            try:
                return connection.start(info.name, payload, timeout=remaining, metadata=metadata,
                                        streaming=streaming, server_timeout=server_timeout)
            except HandoffError as error:
                if error.not_started and attempt < _NOT_STARTED_RETRIES:
                    continue
                raise
        raise AssertionError("unreachable")

    async def call(self, method: Union[str, MethodInfo], request: _M, *, timeout: Optional[float] = None,
                   metadata: Optional[Iterable[Tuple[str, str]]] = None) -> Any:
        """Makes a unary call and returns the response message.

        Args:
            method: ``"handoff.v1.<Service>/<Method>"``.
            request: the method's request message.
            timeout: seconds; the client's ``default_timeout`` when None.
            metadata: extra ``(key, value)`` pairs for this call.

        Raises:
            HandoffError: the call's status (a subclass per code).
        """
        info = self._resolve(method, request, streaming=False)
        payload = self._encode(info, request)
        entries = self._call_metadata(metadata)
        seconds = self.default_timeout if timeout is None else timeout
        self._bind()
        assert self._slots is not None
        async with self._slots:
            loop = asyncio.get_running_loop()
            deadline = None if seconds is None else loop.time() + seconds
            for attempt in range(_NOT_STARTED_RETRIES + 1):
                remaining = None if deadline is None else deadline - loop.time()
                call = await self._start(info, payload, remaining, entries, streaming=False)
                assert call.future is not None
                try:
                    raw = await call.future
                except asyncio.CancelledError:
                    call.connection.cancel(call)
                    raise
                except HandoffError as error:
                    if error.not_started and attempt < _NOT_STARTED_RETRIES:
                        continue  # crossed a GOAWAY: never ran, safe to send again
                    raise
                try:
                    return info.response.FromString(raw)
                except Exception as error:
                    raise Internal(Internal.status, f"the response is not a valid "
                                                    f"{info.response.DESCRIPTOR.full_name}: {error}",
                                   method=info.name) from error
        raise AssertionError("unreachable")

    def stream(self, method: Union[str, MethodInfo], request: Message, *, timeout: Optional[float] = None,
               metadata: Optional[Iterable[Tuple[str, str]]] = None) -> Stream[Any]:
        """Starts a server-streaming call (on first use of the returned
        :class:`Stream`). ``timeout`` in seconds; None: no deadline."""
        info = self._resolve(method, request, streaming=True)
        return Stream(self, info, self._encode(info, request), timeout, self._call_metadata(metadata),
                      lambda message: message)

    def _typed_stream(self, method: str, request: Message, timeout: Optional[float],
                      convert: Callable[[Any], T], grace: float = 0.0) -> Stream[T]:
        info = self._resolve(method, request, streaming=True)
        return Stream(self, info, self._encode(info, request), timeout, self._call_metadata(None), convert, grace)

    # MARK: health

    async def ping(self, payload: bytes = b"", *, timeout: Optional[float] = None) -> health_pb2.PingResponse:
        """``Health/Ping``: a round trip that touches no store; returns the
        echoed payload, the server's clock and version."""
        response: health_pb2.PingResponse = await self.call(
            "handoff.v1.Health/Ping", health_pb2.PingRequest(payload=payload), timeout=timeout)
        return response

    # MARK: policy, confirmations, decisions

    async def assess(self, session_id: str, action: ActionLike, *, idempotency_key: Optional[str] = None,
                     timeout: Optional[float] = None) -> Assessment:
        """Assesses an action the agent proposes (``Policy/AssessAction``).

        ``action`` is an ``Action`` message or a dict such as
        ``{"tool_name": "issue_refund", "description": "Refund order 1234",
        "parameters": {"order": 1234}, "amount": 250, "currency": "USD",
        "confidence": 0.93}`` (see :func:`handoff.models.to_action`).
        Unless the strategy is AUTOMATE the result carries a pending action.
        """
        request = policy_pb2.AssessActionRequest(session_id=session_id, action=models.to_action(action),
                                                 idempotency_key=idempotency_key or "")
        return Assessment.from_proto(await self.call("handoff.v1.Policy/AssessAction", request, timeout=timeout))

    async def request_confirmation(self, pending_action: PendingRef, prompt: Optional[str] = None, *,
                                   timeout: Optional[float] = None) -> confirmations_pb2.RequestConfirmationResponse:
        """Asks the end user to confirm a CONFIRM/EXPLICIT_CONFIRM action;
        returns the prompt to show (``.prompt``) and the pending action."""
        request = confirmations_pb2.RequestConfirmationRequest(
            pending_action_id=models.pending_action_id(pending_action), prompt=prompt or "")
        response: confirmations_pb2.RequestConfirmationResponse = await self.call(
            "handoff.v1.Confirmations/RequestConfirmation", request, timeout=timeout)
        return response

    async def respond_to_confirmation(self, pending_action: PendingRef, text: str, *,
                                      timeout: Optional[float] = None,
                                      ) -> confirmations_pb2.RespondToConfirmationResponse:
        """Hands in the end user's answer, verbatim. ``.outcome`` says how it
        was understood; when confirmed, ``.pending_action.release_token`` is set."""
        request = confirmations_pb2.RespondToConfirmationRequest(
            pending_action_id=models.pending_action_id(pending_action), text=text)
        response: confirmations_pb2.RespondToConfirmationResponse = await self.call(
            "handoff.v1.Confirmations/RespondToConfirmation", request, timeout=timeout)
        return response

    async def start_multi_factor(self, pending_action: PendingRef, *, timeout: Optional[float] = None,
                                 ) -> confirmations_pb2.StartMultiFactorResponse:
        """Sends a new one-time code for a MULTI_FACTOR action through the
        server's channels (the response never contains the code)."""
        request = confirmations_pb2.StartMultiFactorRequest(pending_action_id=models.pending_action_id(pending_action))
        response: confirmations_pb2.StartMultiFactorResponse = await self.call(
            "handoff.v1.Confirmations/StartMultiFactor", request, timeout=timeout)
        return response

    async def verify_multi_factor(self, pending_action: PendingRef, code: str, *,
                                  timeout: Optional[float] = None) -> confirmations_pb2.VerifyMultiFactorResponse:
        """Checks the code the user typed; ``.verified`` is True when it
        released the action (a wrong code is an answer, not an error)."""
        request = confirmations_pb2.VerifyMultiFactorRequest(
            pending_action_id=models.pending_action_id(pending_action), code=str(code))
        response: confirmations_pb2.VerifyMultiFactorResponse = await self.call(
            "handoff.v1.Confirmations/VerifyMultiFactor", request, timeout=timeout)
        return response

    async def escalate(self, session_id: str, reason: str, pending_action_id: Optional[PendingRef] = None, *,
                       timeout: Optional[float] = None) -> escalations_pb2.EscalateResponse:
        """Hands the session to the human operator desk. Returns ``.ticket``
        and ``.created`` (False when a ticket was already open)."""
        request = escalations_pb2.EscalateRequest(
            session_id=session_id, reason=reason,
            pending_action_id=models.pending_action_id(pending_action_id) if pending_action_id else "")
        response: escalations_pb2.EscalateResponse = await self.call(
            "handoff.v1.Escalations/Escalate", request, timeout=timeout)
        return response

    def wait_for_decisions(self, pending_actions: Iterable[PendingRef], *, timeout: Optional[float] = None,
                           grace: float = 0.0) -> Stream[Decision]:
        """A stream of one :class:`~handoff.models.Decision` per pending action
        as each is settled (at once for those already settled); it ends after
        the last. ``timeout`` in seconds; None: wait as long as it takes.

        ``grace``: seconds the client waits beyond ``timeout`` for the server's
        own answer. The server still waits ``timeout`` (from when it reads the
        request) and then ends the call with DEADLINE_EXCEEDED, so a decision
        already made is never mistaken for none over a slow network; only a
        network silent for ``timeout + grace`` ends the call in the client."""
        if not grace >= 0:
            raise ValueError(f"grace must be a number of seconds >= 0, not {grace!r}")
        request = decisions_pb2.WaitForDecisionRequest(
            pending_action_ids=[models.pending_action_id(p) for p in pending_actions])
        return self._typed_stream("handoff.v1.Decisions/WaitForDecision", request, timeout, Decision.from_proto,
                                  grace)

    async def wait_for_decision(self, pending_action: PendingRef, *, timeout: Optional[float] = None,
                                grace: float = 0.0) -> Decision:
        """Waits until a pending action is settled (released, declined,
        rejected, expired or cancelled) and returns the decision. ``grace``:
        see :meth:`wait_for_decisions`.

        Raises:
            DeadlineExceeded: ``timeout`` seconds passed first.
            NotFound: no such pending action in the caller's tenant.
        """
        async with self.wait_for_decisions([pending_action], timeout=timeout, grace=grace) as updates:
            async for decision in updates:
                return decision
        raise Internal(Internal.status, "WaitForDecision ended without a decision",
                       method="handoff.v1.Decisions/WaitForDecision")

    async def report_execution(self, release: Union[str, Decision, common_pb2.PendingAction], result: Any = None, *,
                               error: Optional[str] = None, idempotency_key: Optional[str] = None,
                               timeout: Optional[float] = None) -> decisions_pb2.ReportExecutionResponse:
        """Records that a released action was executed (exactly once).

        Args:
            release: the release token, or the :class:`Decision` /
                ``PendingAction`` carrying it.
            result: the tool's result, any JSON value (None: none).
            error: why the execution failed, when it did (the release is used up anyway).
            idempotency_key: for retries; derived from the token when None, so
                a repeated report returns the first one (``.duplicate``).
        """
        token = release if isinstance(release, str) else release.release_token
        if not token:
            raise ValueError("no release token: the action was not released")
        key = idempotency_key or "auto-" + hashlib.sha256(token.encode()).hexdigest()[:32]
        request = decisions_pb2.ReportExecutionRequest(
            release_token=token, result_json="" if result is None else models.to_json(result),
            idempotency_key=key, error_message=error or "")
        response: decisions_pb2.ReportExecutionResponse = await self.call(
            "handoff.v1.Decisions/ReportExecution", request, timeout=timeout)
        return response

    # MARK: approvals

    async def request_approval(self, session_id: str, *, reason: str, pending_action: Optional[PendingRef] = None,
                               action: Optional[ActionLike] = None, amount: Union[str, int, float, None] = None,
                               currency: Optional[str] = None,
                               timeout: Optional[float] = None) -> approvals_pb2.RequestApprovalResponse:
        """Asks for human approval through the policy's chain of approvers,
        for an existing pending action or a new ``action`` (exactly one).
        Returns ``.approval`` (with its steps) and ``.pending_action``."""
        if (pending_action is None) == (action is None):
            raise ValueError("give exactly one of pending_action and action")
        request = approvals_pb2.RequestApprovalRequest(
            session_id=session_id, reason=reason, currency=currency or "",
            amount=models.decimal_text(amount) if amount is not None and amount != "" else "")
        if pending_action is not None:
            request.pending_action_id = models.pending_action_id(pending_action)
        else:
            assert action is not None
            request.action.CopyFrom(models.to_action(action))
        response: approvals_pb2.RequestApprovalResponse = await self.call(
            "handoff.v1.Approvals/RequestApproval", request, timeout=timeout)
        return response

    async def get_approval(self, approval_id: str, *, timeout: Optional[float] = None) -> common_pb2.Approval:
        """Reads one approval with its chain."""
        response: approvals_pb2.GetApprovalResponse = await self.call(
            "handoff.v1.Approvals/GetApproval", approvals_pb2.GetApprovalRequest(approval_id=approval_id),
            timeout=timeout)
        return response.approval

    async def pending_approvals(self, session_id: Optional[str] = None, *, limit: Optional[int] = None,
                                timeout: Optional[float] = None) -> List[common_pb2.Approval]:
        """The approvals whose current step the caller may decide (every page,
        up to ``limit``)."""
        out: List[common_pb2.Approval] = []
        token = ""
        while True:
            request = approvals_pb2.ListPendingApprovalsRequest(session_id=session_id or "", page_token=token)
            response: approvals_pb2.ListPendingApprovalsResponse = await self.call(
                "handoff.v1.Approvals/ListPendingApprovals", request, timeout=timeout)
            out.extend(response.approvals)
            token = response.next_page_token
            if not token or (limit is not None and len(out) >= limit):
                return out[:limit] if limit is not None else out

    async def decide_approvals(self, decisions: Iterable[Union[approvals_pb2.ApprovalDecision, Mapping[str, Any]]],
                               *, timeout: Optional[float] = None,
                               ) -> List[Union[common_pb2.Approval, HandoffError]]:
        """Decides several approvals in one call (each applied on its own).

        Each decision is an ``ApprovalDecision`` or a dict with
        ``approval_id``, ``verdict`` (``"approve"``/``"reject"`` or a bool),
        and optionally ``comment``, ``edited_action`` and ``expected_level``.
        Returns, in order, the decided ``Approval`` or the item's error.
        """
        items: List[approvals_pb2.ApprovalDecision] = []
        for decision in decisions:
            if isinstance(decision, approvals_pb2.ApprovalDecision):
                items.append(decision)
                continue
            item = approvals_pb2.ApprovalDecision(
                approval_id=str(decision["approval_id"]),
                verdict=models.approval_verdict(decision["verdict"]),  # type: ignore[arg-type]
                comment=str(decision.get("comment") or ""), expected_level=int(decision.get("expected_level") or 0))
            if decision.get("edited_action") is not None:
                item.edited_action.CopyFrom(models.to_action(decision["edited_action"]))
            items.append(item)
        response: approvals_pb2.DecideApprovalResponse = await self.call(
            "handoff.v1.Approvals/DecideApproval", approvals_pb2.DecideApprovalRequest(decisions=items),
            timeout=timeout)
        results: List[Union[common_pb2.Approval, HandoffError]] = []
        for result in response.results:
            if result.HasField("error"):
                results.append(error_for(result.error.code, result.error.message,
                                         method="handoff.v1.Approvals/DecideApproval"))
            else:
                results.append(result.approval)
        return results

    async def decide_approval(self, approval_id: str, verdict: Union[str, bool], *, comment: str = "",
                              edited_action: Optional[ActionLike] = None, expected_level: int = 0,
                              timeout: Optional[float] = None) -> common_pb2.Approval:
        """Approves (``"approve"`` or True) or rejects (``"reject"`` or False)
        the current step of one approval; returns the approval after it.

        Raises:
            HandoffError: the item's error (PermissionDenied, FailedPrecondition, NotFound, …).
        """
        decision: Dict[str, Any] = {"approval_id": approval_id, "verdict": verdict, "comment": comment,
                                    "edited_action": edited_action, "expected_level": expected_level}
        result = (await self.decide_approvals([decision], timeout=timeout))[0]
        if isinstance(result, HandoffError):
            raise result
        return result


def _retrieve(task: "asyncio.Task[Any]") -> None:
    # Marks a shared connect's failure as seen even when every waiter gave up.
    if not task.cancelled():
        task.exception()


class AsyncSessions:
    """``client.sessions``: session state, turns, memories, context and events."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(self, session_id: Optional[str] = None, state: Optional[Mapping[str, Any]] = None,
                     labels: Optional[Mapping[str, str]] = None, *, reasoning: str = "",
                     timeout: Optional[float] = None) -> Session:
        """Creates a session (the server picks the id when None).

        Raises:
            AlreadyExists: the id is taken.
        """
        request = sessions_pb2.CreateSessionRequest(
            session_id=session_id or "", state_json=models.to_json(dict(state)) if state is not None else "",
            labels=dict(labels or {}), reasoning=reasoning)
        response: sessions_pb2.CreateSessionResponse = await self._client.call(
            "handoff.v1.Sessions/CreateSession", request, timeout=timeout)
        return Session.from_proto(response.session)

    async def get(self, session_id: str, *, timeout: Optional[float] = None) -> Session:
        """Reads a session, state included.

        Raises:
            NotFound: no such session in the caller's tenant.
        """
        response: sessions_pb2.GetSessionResponse = await self._client.call(
            "handoff.v1.Sessions/GetSession", sessions_pb2.GetSessionRequest(session_id=session_id), timeout=timeout)
        return Session.from_proto(response.session)

    async def update_state(self, session_id: str, state: Mapping[str, Any], *, reasoning: str, merge: bool = True,
                           expected_version: Optional[int] = None,
                           timeout: Optional[float] = None) -> StateUpdate:
        """Changes the session state, with the agent's reasoning (required).

        Args:
            state: with ``merge=True`` (default) an RFC 7386 merge patch
                (``None`` values delete keys); with ``merge=False`` the whole
                new state.
            reasoning: why; recorded on the ``session.state_updated`` event.
            expected_version: when given, the update applies only if the
                session is still at this version.

        Raises:
            Aborted: ``expected_version`` is stale; nothing was changed.
            InvalidArgument: empty reasoning, or a state that is not an object.
        """
        text = models.to_json(dict(state))
        request = sessions_pb2.UpdateStateRequest(session_id=session_id, reasoning=reasoning)
        if merge:
            request.merge_patch_json = text
        else:
            request.replacement_json = text
        if expected_version is not None:
            request.expected_version = expected_version
        return StateUpdate.from_proto(await self._client.call("handoff.v1.Sessions/UpdateState", request,
                                                              timeout=timeout))

    async def add_turn(self, session_id: str, input: str = "", output: str = "", *,
                       metadata: Optional[Mapping[str, Any]] = None, reasoning: str = "",
                       timeout: Optional[float] = None) -> common_pb2.Turn:
        """Records one exchange of the conversation; returns it with its sequence."""
        request = sessions_pb2.AddTurnRequest(
            session_id=session_id, input=input, output=output, reasoning=reasoning,
            metadata_json=models.to_json(dict(metadata)) if metadata else "")
        response: sessions_pb2.AddTurnResponse = await self._client.call(
            "handoff.v1.Sessions/AddTurn", request, timeout=timeout)
        return response.turn

    async def add_memory(self, session_id: str, content: str, *, metadata: Optional[Mapping[str, Any]] = None,
                         reasoning: str = "", timeout: Optional[float] = None) -> common_pb2.Memory:
        """Remembers a fact about the session or its user."""
        request = sessions_pb2.AddMemoryRequest(
            session_id=session_id, content=content, reasoning=reasoning,
            metadata_json=models.to_json(dict(metadata)) if metadata else "")
        response: sessions_pb2.AddMemoryResponse = await self._client.call(
            "handoff.v1.Sessions/AddMemory", request, timeout=timeout)
        return response.memory

    async def get_context(self, session_id: str, turn_limit: int = 50, *,
                          timeout: Optional[float] = None) -> Context:
        """The state, the ``turn_limit`` most recent turns and the memories, in one call."""
        response: sessions_pb2.GetContextResponse = await self._client.call(
            "handoff.v1.Sessions/GetContext",
            sessions_pb2.GetContextRequest(session_id=session_id, turn_limit=turn_limit), timeout=timeout)
        return Context.from_proto(response)

    async def list_events(self, session_id: Optional[str] = None, *, actions: Optional[Iterable[str]] = None,
                          since_ms: int = 0, until_ms: int = 0, newest_first: bool = False,
                          limit: Optional[int] = None, timeout: Optional[float] = None) -> List[common_pb2.Event]:
        """The event log (every page, up to ``limit`` events), oldest first
        unless ``newest_first``; all the tenant's sessions when ``session_id`` is None."""
        out: List[common_pb2.Event] = []
        token = ""
        order = sessions_pb2.EVENT_ORDER_NEWEST_FIRST if newest_first else sessions_pb2.EVENT_ORDER_OLDEST_FIRST
        while True:
            page_size = 0 if limit is None else min(500, max(1, limit - len(out)))
            request = sessions_pb2.ListEventsRequest(
                session_id=session_id or "", actions=list(actions or ()), since_unix_ms=since_ms,
                until_unix_ms=until_ms, order=order, page_size=page_size, page_token=token)
            response: sessions_pb2.ListEventsResponse = await self._client.call(
                "handoff.v1.Sessions/ListEvents", request, timeout=timeout)
            out.extend(response.events)
            token = response.next_page_token
            if not token or (limit is not None and len(out) >= limit):
                return out[:limit] if limit is not None else out


class AsyncDesk:
    """``client.desk``: the operator desk (escalation tickets and the live feed)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def queue(self, *, statuses: Optional[Iterable[Union[str, int]]] = None,
                    priorities: Optional[Iterable[Union[str, int]]] = None, assigned_to: Optional[str] = None,
                    limit: Optional[int] = None, timeout: Optional[float] = None) -> List[common_pb2.Ticket]:
        """The queue in desk order (priority, SLA-breached first, oldest
        first): OPEN and CLAIMED tickets unless ``statuses`` says otherwise
        (``"open"``, ``"claimed"``, ``"waiting"``, ``"resolved"``). A WAITING
        ticket holds a session's second escalated action until the ticket in
        hand is resolved."""
        out: List[common_pb2.Ticket] = []
        token = ""
        while True:
            request = escalations_pb2.ListQueueRequest(
                statuses=models.ticket_statuses(statuses),  # type: ignore[arg-type]
                priorities=models.priorities(priorities),  # type: ignore[arg-type]
                assigned_to=assigned_to or "", page_token=token)
            response: escalations_pb2.ListQueueResponse = await self._client.call(
                "handoff.v1.Escalations/ListQueue", request, timeout=timeout)
            out.extend(response.tickets)
            token = response.next_page_token
            if not token or (limit is not None and len(out) >= limit):
                return out[:limit] if limit is not None else out

    async def ticket(self, ticket_id: str, *, timeout: Optional[float] = None) -> escalations_pb2.GetTicketResponse:
        """A ticket with its snapshot, the live context and its pending action."""
        response: escalations_pb2.GetTicketResponse = await self._client.call(
            "handoff.v1.Escalations/GetTicket", escalations_pb2.GetTicketRequest(ticket_id=ticket_id), timeout=timeout)
        return response

    async def claim(self, ticket_id: str, *, reassign: bool = False, assignee: Optional[str] = None,
                    timeout: Optional[float] = None) -> common_pb2.Ticket:
        """Assigns the ticket to the caller (or, for admins, to ``assignee``)."""
        response: escalations_pb2.ClaimResponse = await self._client.call(
            "handoff.v1.Escalations/Claim",
            escalations_pb2.ClaimRequest(ticket_id=ticket_id, reassign=reassign, assignee=assignee or ""),
            timeout=timeout)
        return response.ticket

    async def reply(self, ticket_id: str, text: str, *, timeout: Optional[float] = None) -> common_pb2.Turn:
        """Adds the operator's message to the escalated conversation."""
        response: escalations_pb2.ReplyResponse = await self._client.call(
            "handoff.v1.Escalations/Reply", escalations_pb2.ReplyRequest(ticket_id=ticket_id, text=text),
            timeout=timeout)
        return response.turn

    async def resolve(self, ticket_id: str, outcome: Union[str, int] = "resolved", *, note: str = "",
                      decision: Union[str, int, None] = None,
                      timeout: Optional[float] = None) -> escalations_pb2.ResolveResponse:
        """Closes a claimed ticket and hands the session back.

        Args:
            outcome: ``"resolved"``, ``"handed_back"`` or ``"dismissed"``.
            decision: for the ticket's pending action: ``"release"``,
                ``"reject"`` or ``"leave_pending"``. None only for a ticket
                without an undecided action (else FAILED_PRECONDITION: say
                what becomes of it).
        """
        request = escalations_pb2.ResolveRequest(
            ticket_id=ticket_id, outcome=models.ticket_outcome(outcome), note=note,  # type: ignore[arg-type]
            pending_action_decision=models.pending_decision(decision))  # type: ignore[arg-type]
        response: escalations_pb2.ResolveResponse = await self._client.call(
            "handoff.v1.Escalations/Resolve", request, timeout=timeout)
        return response

    def watch(self, *, kinds: Optional[Iterable[Union[str, int]]] = None,
              priorities: Optional[Iterable[Union[str, int]]] = None, resume_cursor: Optional[str] = None,
              timeout: Optional[float] = None) -> Stream[operators_pb2.DeskEvent]:
        """The live desk feed (``Operators/Watch``) from now on, or after
        ``resume_cursor`` (the ``cursor`` of the last event seen). Kinds are
        names such as ``"ticket_opened"``. Runs until cancelled; a
        WATCHER_LAGGED event ends it (watch again from its cursor)."""
        request = operators_pb2.WatchRequest(
            kinds=models.desk_event_kinds(kinds),  # type: ignore[arg-type]
            priorities=models.priorities(priorities),  # type: ignore[arg-type]
            resume_cursor=resume_cursor or "")
        return self._client._typed_stream("handoff.v1.Operators/Watch", request, timeout, lambda event: event)
