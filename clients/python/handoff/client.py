"""The synchronous client: :class:`Client`.

A :class:`Client` runs an :class:`~handoff.aio.AsyncClient` on an asyncio
event loop in a daemon thread of its own and hands it each call, so its
methods block like ordinary functions and any number of threads can call one
client at the same time: their calls share one TLS connection, in flight
together. The API is the same as the async client's, without ``await``::

    with Client.from_certs("127.0.0.1:7443", "certs", role="agent") as client:
        session = client.sessions.create(state={"cart": []})
        client.sessions.update_state(session.id, {"cart": ["book"]}, reasoning="user added a book")
        verdict = client.assess(session.id, {"tool_name": "get_weather", "parameters": {"city": "Oslo"}})
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from typing import Any, Awaitable, Generic, Iterable, Iterator, List, Mapping, Optional, Set, Tuple, TypeVar, Union

from google.protobuf.message import Message

from handoff._trace import _within, current_traceparent
from handoff._connection import Connection
from handoff._methods import MethodInfo
from handoff.aio import AsyncClient, Stream
from handoff.errors import HandoffError, Unavailable
from handoff.models import ActionLike, Assessment, Context, Decision, PendingRef, Session, StateUpdate
from handoff.v1 import (approvals_pb2, common_pb2, confirmations_pb2, decisions_pb2, escalations_pb2, health_pb2,
                        operators_pb2)

__all__ = ["Client", "SyncStream"]

T = TypeVar("T")


class SyncStream(Generic[T]):
    """A server-streaming call as a blocking iterator.

    Use it in a ``with`` block (or call :meth:`close`) to cancel a stream you
    stop reading before it ended::

        with client.desk.watch() as events:
            for event in events:
                ...
    """

    def __init__(self, client: "Client", stream: Stream[T]) -> None:
        self._client = client
        self._stream = stream

    @property
    def method(self) -> str:
        """The stream's method, ``handoff.v1.<Service>/<Method>``."""
        return self._stream.method

    def start(self) -> None:
        """Sends the REQUEST now (iteration does it on first use otherwise)."""
        self._client._run(self._stream.start())

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        try:
            return self._client._run(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        """Cancels the call if it has not ended (sends CANCEL)."""
        if not self._client.closed:
            self._client._run(self._stream.aclose())

    def __enter__(self) -> "SyncStream[T]":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class Client:
    """A blocking client of a Handoff server; safe to share between threads.

    Takes the same arguments as :class:`~handoff.aio.AsyncClient` (address,
    ``ca_file``, ``cert_file``, ``key_file``, ``bearer_token``,
    ``default_timeout``, …). Close it with :meth:`close` or a ``with`` block.
    """

    def __init__(self, address: Union[str, Tuple[str, int]] = "127.0.0.1:7443", **options: Any) -> None:
        self._aio = AsyncClient(address, **options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=f"handoff-client {self._aio.host}:{self._aio.port}",
                                        daemon=True)
        self._closed = False
        self._close_lock = threading.Lock()
        self._futures: Set[concurrent.futures.Future[Any]] = set()
        self._futures_lock = threading.Lock()
        self._thread.start()
        self.sessions = Sessions(self)
        self.desk = Desk(self)

    @classmethod
    def from_certs(cls, address: Union[str, Tuple[str, int]], certs_dir: str, role: str = "agent",
                   **options: Any) -> "Client":
        """A client using ``DIR/ca.pem`` and ``DIR/<role>.pem``/``.key`` as
        written by ``handoff certs init DIR``."""
        return cls(address, ca_file=os.path.join(certs_dir, "ca.pem"),
                   cert_file=os.path.join(certs_dir, f"{role}.pem"),
                   key_file=os.path.join(certs_dir, f"{role}.key"), **options)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _run(self, awaitable: Awaitable[T]) -> T:
        if self._closed:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise Unavailable(Unavailable.status, "the client is closed")
        if threading.current_thread() is self._thread:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise RuntimeError("a handoff.Client method was called on the client's own event loop thread; "
                               "use the AsyncClient there")
        # The call runs on the client's loop thread: carry the caller's trace context there.
        trace = current_traceparent()
        if trace and asyncio.iscoroutine(awaitable):
            awaitable = _within(trace, awaitable)
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(awaitable, self._loop)  # type: ignore[arg-type]
        with self._futures_lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        try:
            return future.result()
        except BaseException:
            if not future.done():  # interrupted (KeyboardInterrupt): cancel the call
                future.cancel()
            raise

    def _forget(self, future: "concurrent.futures.Future[Any]") -> None:
        with self._futures_lock:
            self._futures.discard(future)

    # MARK: lifecycle

    @property
    def aio(self) -> AsyncClient:
        """The underlying :class:`~handoff.aio.AsyncClient` (it lives on this client's loop thread)."""
        return self._aio

    @property
    def connect_count(self) -> int:
        """How many connections this client has opened so far."""
        return self._aio.connect_count

    @property
    def connection(self) -> Optional[Connection]:
        """The connection new calls use (None before the first call)."""
        return self._aio.connection

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def connect(self) -> Connection:
        """Opens the connection now (calls do it on first use)."""
        return self._run(self._aio.connect())

    def close(self) -> None:
        """Closes the connection and stops the loop thread; calls in flight
        fail with UNAVAILABLE and later calls are refused. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        on_loop = threading.current_thread() is self._thread
        if not on_loop:
            try:
                asyncio.run_coroutine_threadsafe(self._aio.close(), self._loop).result(timeout=5)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        if on_loop:
            return
        self._thread.join(timeout=5)
        # A call submitted while the loop stopped would wait forever: end it.
        with self._futures_lock:
            left = list(self._futures)
        for future in left:
            if not future.done():
                try:
                    future.set_exception(Unavailable(Unavailable.status, "the client was closed"))
                except concurrent.futures.InvalidStateError:
                    pass
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed and self._loop.is_running():
                self._loop.call_soon_threadsafe(self._loop.stop)
        except Exception:  # noqa: BLE001
            pass

    # MARK: generic calls

    def call(self, method: Union[str, MethodInfo], request: Message, *, timeout: Optional[float] = None,
             metadata: Optional[Iterable[Tuple[str, str]]] = None) -> Any:
        """Makes a unary call (``"handoff.v1.<Service>/<Method>"``) and returns the response message."""
        return self._run(self._aio.call(method, request, timeout=timeout, metadata=metadata))

    def stream(self, method: Union[str, MethodInfo], request: Message, *, timeout: Optional[float] = None,
               metadata: Optional[Iterable[Tuple[str, str]]] = None) -> SyncStream[Any]:
        """Starts a server-streaming call; iterate the result."""
        return SyncStream(self, self._aio.stream(method, request, timeout=timeout, metadata=metadata))

    # MARK: agent helpers (see AsyncClient for the details of each)

    def ping(self, payload: bytes = b"", *, timeout: Optional[float] = None) -> health_pb2.PingResponse:
        """``Health/Ping``: the echoed payload, the server's clock and version."""
        return self._run(self._aio.ping(payload, timeout=timeout))

    def assess(self, session_id: str, action: ActionLike, *, idempotency_key: Optional[str] = None,
               timeout: Optional[float] = None) -> Assessment:
        """Assesses a proposed action (a dict or ``Action``); see :meth:`AsyncClient.assess`."""
        return self._run(self._aio.assess(session_id, action, idempotency_key=idempotency_key, timeout=timeout))

    def request_confirmation(self, pending_action: PendingRef, prompt: Optional[str] = None, *,
                             timeout: Optional[float] = None) -> confirmations_pb2.RequestConfirmationResponse:
        """Asks the end user to confirm; returns the prompt to show."""
        return self._run(self._aio.request_confirmation(pending_action, prompt, timeout=timeout))

    def respond_to_confirmation(self, pending_action: PendingRef, text: str, *,
                                timeout: Optional[float] = None) -> confirmations_pb2.RespondToConfirmationResponse:
        """Hands in the end user's answer, verbatim."""
        return self._run(self._aio.respond_to_confirmation(pending_action, text, timeout=timeout))

    def start_multi_factor(self, pending_action: PendingRef, *,
                           timeout: Optional[float] = None) -> confirmations_pb2.StartMultiFactorResponse:
        """Sends a new one-time code to the end user."""
        return self._run(self._aio.start_multi_factor(pending_action, timeout=timeout))

    def verify_multi_factor(self, pending_action: PendingRef, code: str, *,
                            timeout: Optional[float] = None) -> confirmations_pb2.VerifyMultiFactorResponse:
        """Checks the code the user typed."""
        return self._run(self._aio.verify_multi_factor(pending_action, code, timeout=timeout))

    def escalate(self, session_id: str, reason: str, pending_action_id: Optional[PendingRef] = None, *,
                 timeout: Optional[float] = None) -> escalations_pb2.EscalateResponse:
        """Hands the session to the operator desk; returns ``.ticket`` and ``.created``."""
        return self._run(self._aio.escalate(session_id, reason, pending_action_id, timeout=timeout))

    def wait_for_decisions(self, pending_actions: Iterable[PendingRef], *, timeout: Optional[float] = None,
                           grace: float = 0.0) -> SyncStream[Decision]:
        """One :class:`~handoff.models.Decision` per pending action as each is settled."""
        return SyncStream(self, self._aio.wait_for_decisions(list(pending_actions), timeout=timeout, grace=grace))

    def wait_for_decision(self, pending_action: PendingRef, *, timeout: Optional[float] = None,
                          grace: float = 0.0) -> Decision:
        """Blocks until the pending action is settled; DeadlineExceeded after
        ``timeout`` seconds (the server's; ``grace`` more for the network,
        see :meth:`AsyncClient.wait_for_decisions`)."""
        return self._run(self._aio.wait_for_decision(pending_action, timeout=timeout, grace=grace))

    def report_execution(self, release: Union[str, Decision, common_pb2.PendingAction], result: Any = None, *,
                         error: Optional[str] = None, idempotency_key: Optional[str] = None,
                         timeout: Optional[float] = None) -> decisions_pb2.ReportExecutionResponse:
        """Records the execution of a released action (exactly once)."""
        return self._run(self._aio.report_execution(release, result, error=error, idempotency_key=idempotency_key,
                                                    timeout=timeout))

    def request_approval(self, session_id: str, *, reason: str, pending_action: Optional[PendingRef] = None,
                         action: Optional[ActionLike] = None, amount: Union[str, int, float, None] = None,
                         currency: Optional[str] = None,
                         timeout: Optional[float] = None) -> approvals_pb2.RequestApprovalResponse:
        """Asks for human approval through the policy's chain of approvers."""
        return self._run(self._aio.request_approval(session_id, reason=reason, pending_action=pending_action,
                                                    action=action, amount=amount, currency=currency,
                                                    timeout=timeout))

    def get_approval(self, approval_id: str, *, timeout: Optional[float] = None) -> common_pb2.Approval:
        """Reads one approval with its chain."""
        return self._run(self._aio.get_approval(approval_id, timeout=timeout))

    def pending_approvals(self, session_id: Optional[str] = None, *, limit: Optional[int] = None,
                          timeout: Optional[float] = None) -> List[common_pb2.Approval]:
        """The approvals whose current step the caller may decide."""
        return self._run(self._aio.pending_approvals(session_id, limit=limit, timeout=timeout))

    def decide_approvals(self, decisions: Iterable[Union[approvals_pb2.ApprovalDecision, Mapping[str, Any]]], *,
                         timeout: Optional[float] = None) -> List[Union[common_pb2.Approval, HandoffError]]:
        """Decides several approvals; returns each approval or its item error, in order."""
        return self._run(self._aio.decide_approvals(list(decisions), timeout=timeout))

    def decide_approval(self, approval_id: str, verdict: Union[str, bool], *, comment: str = "",
                        edited_action: Optional[ActionLike] = None, expected_level: int = 0,
                        timeout: Optional[float] = None) -> common_pb2.Approval:
        """Approves or rejects one approval's current step; raises the item's error."""
        return self._run(self._aio.decide_approval(approval_id, verdict, comment=comment, edited_action=edited_action,
                                                   expected_level=expected_level, timeout=timeout))


class Sessions:
    """``client.sessions``: see :class:`handoff.aio.AsyncSessions`."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._aio = client.aio.sessions

    def create(self, session_id: Optional[str] = None, state: Optional[Mapping[str, Any]] = None,
               labels: Optional[Mapping[str, str]] = None, *, reasoning: str = "",
               timeout: Optional[float] = None) -> Session:
        """Creates a session (the server picks the id when None)."""
        return self._client._run(self._aio.create(session_id, state, labels, reasoning=reasoning, timeout=timeout))

    def get(self, session_id: str, *, timeout: Optional[float] = None) -> Session:
        """Reads a session, state included."""
        return self._client._run(self._aio.get(session_id, timeout=timeout))

    def update_state(self, session_id: str, state: Mapping[str, Any], *, reasoning: str, merge: bool = True,
                     expected_version: Optional[int] = None, timeout: Optional[float] = None) -> StateUpdate:
        """Merges (or with ``merge=False`` replaces) the state, with reasoning;
        Aborted on a stale ``expected_version``."""
        return self._client._run(self._aio.update_state(session_id, state, reasoning=reasoning, merge=merge,
                                                        expected_version=expected_version, timeout=timeout))

    def add_turn(self, session_id: str, input: str = "", output: str = "", *,
                 metadata: Optional[Mapping[str, Any]] = None, reasoning: str = "",
                 timeout: Optional[float] = None) -> common_pb2.Turn:
        """Records one exchange of the conversation."""
        return self._client._run(self._aio.add_turn(session_id, input, output, metadata=metadata, reasoning=reasoning,
                                                    timeout=timeout))

    def add_memory(self, session_id: str, content: str, *, metadata: Optional[Mapping[str, Any]] = None,
                   reasoning: str = "", timeout: Optional[float] = None) -> common_pb2.Memory:
        """Remembers a fact about the session or its user."""
        return self._client._run(self._aio.add_memory(session_id, content, metadata=metadata, reasoning=reasoning,
                                                      timeout=timeout))

    def get_context(self, session_id: str, turn_limit: int = 50, *, timeout: Optional[float] = None) -> Context:
        """The state, the most recent turns and the memories in one call."""
        return self._client._run(self._aio.get_context(session_id, turn_limit, timeout=timeout))

    def list_events(self, session_id: Optional[str] = None, *, actions: Optional[Iterable[str]] = None,
                    since_ms: int = 0, until_ms: int = 0, newest_first: bool = False, limit: Optional[int] = None,
                    timeout: Optional[float] = None) -> List[common_pb2.Event]:
        """The event log, every page up to ``limit`` events."""
        return self._client._run(self._aio.list_events(
            session_id, actions=list(actions) if actions is not None else None, since_ms=since_ms, until_ms=until_ms,
            newest_first=newest_first, limit=limit, timeout=timeout))


class Desk:
    """``client.desk``: see :class:`handoff.aio.AsyncDesk`."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._aio = client.aio.desk

    def queue(self, *, statuses: Optional[Iterable[Union[str, int]]] = None,
              priorities: Optional[Iterable[Union[str, int]]] = None, assigned_to: Optional[str] = None,
              limit: Optional[int] = None, timeout: Optional[float] = None) -> List[common_pb2.Ticket]:
        """The queue in desk order (OPEN and CLAIMED tickets by default)."""
        return self._client._run(self._aio.queue(
            statuses=list(statuses) if statuses is not None else None,
            priorities=list(priorities) if priorities is not None else None, assigned_to=assigned_to, limit=limit,
            timeout=timeout))

    def ticket(self, ticket_id: str, *, timeout: Optional[float] = None) -> escalations_pb2.GetTicketResponse:
        """A ticket with its snapshot, live context and pending action."""
        return self._client._run(self._aio.ticket(ticket_id, timeout=timeout))

    def claim(self, ticket_id: str, *, reassign: bool = False, assignee: Optional[str] = None,
              timeout: Optional[float] = None) -> common_pb2.Ticket:
        """Assigns the ticket to the caller."""
        return self._client._run(self._aio.claim(ticket_id, reassign=reassign, assignee=assignee, timeout=timeout))

    def reply(self, ticket_id: str, text: str, *, timeout: Optional[float] = None) -> common_pb2.Turn:
        """Adds the operator's message to the conversation."""
        return self._client._run(self._aio.reply(ticket_id, text, timeout=timeout))

    def resolve(self, ticket_id: str, outcome: Union[str, int] = "resolved", *, note: str = "",
                decision: Union[str, int, None] = None,
                timeout: Optional[float] = None) -> escalations_pb2.ResolveResponse:
        """Closes a claimed ticket; ``decision`` ``"release"``/``"reject"`` settles its pending action, ``"leave_pending"`` leaves it."""
        return self._client._run(self._aio.resolve(ticket_id, outcome, note=note, decision=decision, timeout=timeout))

    def watch(self, *, kinds: Optional[Iterable[Union[str, int]]] = None,
              priorities: Optional[Iterable[Union[str, int]]] = None, resume_cursor: Optional[str] = None,
              timeout: Optional[float] = None) -> SyncStream[operators_pb2.DeskEvent]:
        """The live desk feed; iterate it inside ``with`` to cancel on exit."""
        return SyncStream(self._client, self._aio.watch(
            kinds=list(kinds) if kinds is not None else None,
            priorities=list(priorities) if priorities is not None else None, resume_cursor=resume_cursor,
            timeout=timeout))
