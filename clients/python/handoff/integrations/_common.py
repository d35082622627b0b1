"""What the framework adapters share: errors, idempotency keys, the gate
that turns a tool call into an assessment, and running a released action
exactly once."""
from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import math
import os
import socket
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Set, Tuple, TypeVar

from handoff.client import Client
from handoff.errors import Aborted, DeadlineExceeded, FailedPrecondition, HandoffError, NotFound
from handoff.models import Assessment, Decision, Session, enum_name, from_json
from handoff.v1 import confirmations_pb2

__all__ = [
    "HandoffIntegrationError",
    "NotReleased",
    "Withdrawn",
    "ClaimedElsewhere",
    "ResumeRefused",
    "UnknownPendingAction",
    "current_release",
    "call_key",
    "default_action",
    "Gate",
    "Settled",
    "lock_for",
    "set_release",
    "reset_release",
    "CLAIMS_KEY",
    "MIN_SERVER_WAIT",
]

T = TypeVar("T")

_log = logging.getLogger("handoff.integrations")

#: Statuses after which the action will never run.
REFUSED_STATUSES = ("DECLINED", "REJECTED", "EXPIRED", "CANCELLED")

#: The session state key where workers claim a released action before running
#: it (``{pending_action_id: {"worker", "claimed_at_ms"}}``), and where a
#: withdrawn action is recorded (``{"withdrawn": true, ...}``).
CLAIMS_KEY = "handoff_executions"

#: The shortest wait the server is asked for when looking at a decision
#: (seconds): a settled action is answered at once; an undecided one costs this.
MIN_SERVER_WAIT = 0.5


class HandoffIntegrationError(RuntimeError):
    """An adapter refused to go on; the tool was not run."""


class NotReleased(HandoffIntegrationError):
    """Something claimed an approval that Handoff has not given."""


class Withdrawn(NotReleased):
    """The agent withdrew this action (the user said no); whatever Handoff
    later decided, it is never run."""


class ClaimedElsewhere(HandoffIntegrationError):
    """Another worker claimed this released action and has not reported it
    yet; it was not run here."""


class ResumeRefused(HandoffIntegrationError):
    """A resume value that cannot apply to this pending action (another
    action's id, a decision the strategy does not take, an edit that is not
    what Handoff released)."""


class UnknownPendingAction(HandoffIntegrationError, KeyError):
    """A decision keyed to a pending action id that is not waiting here."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


_current_release: contextvars.ContextVar[Optional[Decision]] = contextvars.ContextVar("handoff_release", default=None)


def set_release(decision: Optional[Decision]) -> "contextvars.Token[Optional[Decision]]":
    """Makes ``decision`` the :func:`current_release` (reset with the token returned)."""
    return _current_release.set(decision)


def reset_release(token: "contextvars.Token[Optional[Decision]]") -> None:
    """Undoes :func:`set_release`."""
    _current_release.reset(token)


def current_release() -> Optional[Decision]:
    """While a released tool runs under an adapter: its :class:`Decision`
    (``release_token``, ``pending_action_id``, ``action``); None otherwise.
    A tool calling a service that takes an idempotency key can pass the
    release token, closing the crash window between the tool and the report."""
    return _current_release.get()


def call_key(prefix: str, *parts: Optional[str]) -> str:
    """An idempotency key for one tool call: ``prefix-`` and 40 hex digits of
    SHA-256 over the parts (thread, message, call id, ...)."""
    digest = hashlib.sha256("\x1f".join(p or "" for p in parts).encode("utf-8")).hexdigest()
    return f"{prefix}-{digest[:40]}"


def default_action(tool_name: str, args: Mapping[str, Any], description: str = "",
                   currency: str = "USD") -> Dict[str, Any]:
    """The Handoff action for a tool call: the tool's name, its arguments as
    parameters, the description given, and ``amount``/``currency`` when the
    arguments carry an ``amount`` (the server refuses an action whose amount
    argument has no ``amount`` beside it)."""
    action: Dict[str, Any] = {"tool_name": tool_name, "parameters": dict(args)}
    if description:
        action["description"] = description
    if args.get("amount") is not None:
        action["amount"] = str(args["amount"])
        action["currency"] = str(args.get("currency") or currency)
    if isinstance(args.get("confidence"), (int, float)):
        action["confidence"] = float(args["confidence"])
    return action


@dataclass
class Settled:
    """What became of a pending action, as Handoff says."""

    pending_action_id: str
    #: RELEASED, EXECUTED, DECLINED, REJECTED, EXPIRED or CANCELLED.
    status: str
    decision: Optional[Decision] = None
    #: For EXECUTED: the recorded result and error of the first report.
    recorded_result: Any = None
    recorded_error: Optional[str] = None

    @property
    def released(self) -> bool:
        return self.status == "RELEASED"

    @property
    def comment(self) -> str:
        return self.decision.comment if self.decision is not None else ""


@dataclass
class PendingProgress:
    """What was already handed to Handoff for one pending action, read from
    its event log (durable, so a replayed step does not hand it in twice)."""

    prompt: str = ""
    confirmation_requested: bool = False
    multi_factor_started: bool = False
    answers: int = 0
    last_outcome: str = ""
    attempts_left: Optional[int] = None


# A lock lives as long as someone holds it (or is about to): two threads asking
# for the same action at the same time always get the same lock, and idle
# ones are forgotten without any eviction that could split them.
_locks: "weakref.WeakValueDictionary[str, threading.Lock]" = weakref.WeakValueDictionary()
_locks_guard = threading.Lock()


def lock_for(pending_action_id: str) -> threading.Lock:
    """The process-wide lock of one pending action (serialises attempts to run
    it in this process; :meth:`Gate.acquire` covers other processes)."""
    with _locks_guard:
        lock = _locks.get(pending_action_id)
        if lock is None:
            lock = threading.Lock()
            _locks[pending_action_id] = lock
        return lock


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Gate:
    """The Handoff side of one adapter: assessment, decisions, and running a
    released action once. Holds a blocking :class:`handoff.Client`."""

    client: Client
    #: How long a resume waits for Handoff to show a decision (seconds).
    resume_wait: float = 2.0
    #: Timeout of each unary call, and the time the network may add to a
    #: wait for a decision.
    call_timeout: float = 30.0
    #: How long a worker waits for another worker that claimed the same
    #: released action to report it (seconds), then raises ClaimedElsewhere.
    claim_wait: float = 30.0
    #: A claim older than this (seconds, by the server's clock) whose action is
    #: still RELEASED is taken to belong to a worker that died, and may be taken
    #: over (the tool may then run twice if that worker had run it). None: never.
    stale_claim_after: Optional[float] = 600.0
    #: This worker's name in claims (host, process id, a random part).
    worker_id: str = field(default_factory=_default_worker_id)
    _sessions_ready: Set[str] = field(default_factory=set)

    # -- sessions and assessment ---------------------------------------------------------

    def ensure_session(self, session_id: str) -> None:
        """Creates the session when it does not exist yet (once per id)."""
        if session_id in self._sessions_ready:
            return
        try:
            self.client.sessions.get(session_id, timeout=self.call_timeout)
        except NotFound:
            try:
                self.client.sessions.create(session_id, reasoning="agent framework session",
                                            timeout=self.call_timeout)
            except HandoffError as error:
                if error.code.name != "ALREADY_EXISTS":
                    raise
        self._sessions_ready.add(session_id)

    def assess(self, session_id: str, action: Mapping[str, Any], key: str) -> Assessment:
        """AssessAction under the call's key; a different action under a used
        key (a call whose arguments changed after it was assessed) is refused."""
        self.ensure_session(session_id)
        try:
            return self.client.assess(session_id, action, idempotency_key=key, timeout=self.call_timeout)
        except FailedPrecondition as error:
            raise ResumeRefused(f"the tool call {action.get('tool_name')!r} is not the call Handoff assessed under "
                                f"this call's id (its arguments changed?): {error.message}") from error

    # -- decisions ----------------------------------------------------------------------

    def peek(self, session_id: str, pending_action_id: str, wait: float = 0.0) -> Optional[Settled]:
        """The settled outcome (WaitForDecision), or None while the action is
        still undecided after ``wait`` seconds.

        The server waits (at least :data:`MIN_SERVER_WAIT`) and says when it
        gave up; the client allows the network ``call_timeout`` more, so a
        slow network never turns a decision into "undecided".

        Raises:
            ValueError: ``wait`` negative or not a finite number.
            NotFound: no such pending action (in the caller's tenant).
            DeadlineExceeded: the server did not answer within ``wait + call_timeout``.
        """
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not math.isfinite(wait) or wait < 0:
            raise ValueError(f"the wait for a decision must be a finite number of seconds >= 0, not {wait!r}")
        server_wait = max(float(wait), MIN_SERVER_WAIT)
        started = time.monotonic()
        try:
            decision = self.client.wait_for_decision(pending_action_id, timeout=server_wait, grace=self.call_timeout)
        except DeadlineExceeded:
            if time.monotonic() - started >= server_wait + self.call_timeout:
                raise  # the server never answered: not a verdict about the action
            return None  # the server's own deadline: not decided yet
        settled = Settled(pending_action_id, decision.status, decision)
        if settled.status == "EXECUTED":
            settled.recorded_result, settled.recorded_error = self.recorded_execution(session_id, pending_action_id)
        return settled

    def recorded_execution(self, session_id: str, pending_action_id: str) -> Tuple[Any, Optional[str]]:
        """The result (and error) of an EXECUTED action's first report, from the
        session's ``action.executed`` event ((None, None) without a session id)."""
        if not session_id:
            return None, None
        for event in self.client.sessions.list_events(session_id, actions=["action.executed"], newest_first=True,
                                                      timeout=self.call_timeout):
            details = from_json(event.details_json, {})
            if details.get("pending_action_id") == pending_action_id:
                return details.get("result"), details.get("error")
        return None, None

    def progress(self, session_id: str, pending_action_id: str) -> PendingProgress:
        """What was already asked and answered for this action (its events)."""
        progress = PendingProgress()
        events = self.client.sessions.list_events(
            session_id, actions=["confirmation.requested", "confirmation.answered", "mfa.started", "mfa.verified",
                                 "mfa.failed"], timeout=self.call_timeout)
        for event in events:
            details = from_json(event.details_json, {})
            if details.get("pending_action_id") != pending_action_id:
                continue
            if event.action == "confirmation.requested":
                progress.confirmation_requested = True
                progress.prompt = str(details.get("prompt") or "")
            elif event.action == "mfa.started":
                progress.multi_factor_started = True
            elif event.action == "confirmation.answered":
                progress.answers += 1
                progress.last_outcome = str(details.get("outcome") or "")
            elif event.action in ("mfa.verified", "mfa.failed"):
                progress.answers += 1
                progress.last_outcome = "verified" if event.action == "mfa.verified" else "wrong code"
                if "attempts_left" in details:
                    progress.attempts_left = int(details["attempts_left"])
        return progress

    def ask_user(self, assessment: Assessment, session_id: str) -> PendingProgress:
        """Makes sure the end user was asked (RequestConfirmation or
        StartMultiFactor, once per action however often the step replays);
        returns what was asked and answered so far."""
        pending_id = assessment.pending_action_id or ""
        progress = self.progress(session_id, pending_id)
        if assessment.needs_confirmation and not progress.confirmation_requested:
            progress.prompt = self.client.request_confirmation(pending_id, timeout=self.call_timeout).prompt
            progress.confirmation_requested = True
        elif assessment.needs_multi_factor and not progress.multi_factor_started:
            started = self.client.start_multi_factor(pending_id, timeout=self.call_timeout)
            progress.multi_factor_started = True
            progress.prompt = (f"A {started.code_length}-digit code was sent to the user "
                               f"({', '.join(started.channels)}); resume with it.")
        elif assessment.needs_multi_factor:
            progress.prompt = "A code was sent to the user; resume with it."
        return progress

    def hand_in(self, assessment: Assessment, text: str) -> str:
        """Relays the end user's answer (confirmation) or code (multi-factor),
        verbatim; returns how Handoff understood it."""
        pending_id = assessment.pending_action_id or ""
        if assessment.needs_confirmation:
            answered = self.client.respond_to_confirmation(pending_id, text, timeout=self.call_timeout)
            return enum_name(confirmations_pb2.ConfirmationOutcome, answered.outcome, "CONFIRMATION_OUTCOME_").lower()
        if assessment.needs_multi_factor:
            verified = self.client.verify_multi_factor(pending_id, text, timeout=self.call_timeout)
            return "verified" if verified.verified else "wrong code"
        raise ResumeRefused(f"pending action {pending_id} is decided by people at the "
                            f"{'approval' if assessment.approval_id else 'operator'} desk; "
                            "a resume value cannot answer it")

    # -- running once --------------------------------------------------------------------

    def begin(self, session_id: str, settled: Settled) -> Settled:
        """Checks, just before running, that the action is still RELEASED
        (returns the fresh decision) or already EXECUTED (returns that with
        the recorded result).

        Raises:
            NotReleased: anything else.
        """
        fresh = self.peek(session_id, settled.pending_action_id, wait=self.resume_wait)
        if fresh is None:
            raise NotReleased(f"pending action {settled.pending_action_id} is no longer settled; the tool was not run")
        if fresh.status == "EXECUTED":
            return fresh
        if not fresh.released or fresh.decision is None:
            raise NotReleased(f"pending action {settled.pending_action_id} is {fresh.status}, not RELEASED; "
                              "the tool was not run")
        return fresh

    def acquire(self, session_id: str, settled: Settled) -> Settled:
        """:meth:`begin`, then claims the released action for this worker in
        the session state (a compare-and-set on the session's version, so of
        two workers in any processes exactly one gets it). Returns the fresh
        RELEASED decision, now this worker's to run and :meth:`finish`, or the
        EXECUTED outcome with its recorded result (another worker ran it,
        also after waiting up to ``claim_wait`` for one that holds a claim).
        Hold :func:`lock_for` around acquire, the run and :meth:`finish`.

        Raises:
            Withdrawn: the agent withdrew the action; it never runs.
            ClaimedElsewhere: another worker holds the claim and did not report
                within ``claim_wait``.
            NotReleased: the action is not RELEASED.
        """
        pending_id = settled.pending_action_id
        fresh = self.begin(session_id, settled)
        if fresh.status == "EXECUTED":
            return fresh
        deadline = time.monotonic() + self.claim_wait
        while True:
            session = self.client.sessions.get(session_id, timeout=self.call_timeout)
            entry = _claim_of(session, pending_id)
            if entry is not None and entry.get("withdrawn"):
                raise Withdrawn(f"pending action {pending_id} was withdrawn by the agent"
                                + (f" ({entry.get('reason')})" if entry.get("reason") else "")
                                + "; it is not run whatever Handoff decided")
            holder = str(entry.get("worker") or "an unknown worker") if entry is not None else None
            if holder == self.worker_id:
                break  # ours already (an earlier attempt whose answer was lost)
            if entry is None or self._stale(entry):
                took_over = f" (taking over the stale claim of {holder})" if holder else ""
                claim = {"worker": self.worker_id, "claimed_at_ms": self._server_time_ms()}
                try:
                    self.client.sessions.update_state(
                        session_id, {CLAIMS_KEY: {pending_id: claim}}, expected_version=session.version,
                        reasoning=f"worker {self.worker_id} runs released pending action {pending_id}{took_over}",
                        timeout=self.call_timeout)
                    break
                except Aborted:  # the session changed since it was read: read it again
                    if time.monotonic() >= deadline:
                        raise HandoffIntegrationError(
                            f"could not claim pending action {pending_id}: session {session_id} kept changing for "
                            f"{self.claim_wait:g} s; the tool was not run") from None
                    continue
            else:
                if time.monotonic() >= deadline:
                    raise ClaimedElsewhere(
                        f"pending action {pending_id} is being run by worker {holder} (claimed at "
                        f"{entry.get('claimed_at_ms')} ms), which has not reported it within {self.claim_wait:g} s; "
                        f"the tool was not run here. Once that worker reports, the action is EXECUTED"
                        + (f"; a claim older than {self.stale_claim_after:g} s may be taken over"
                           if self.stale_claim_after is not None else
                           f"; if it died, remove {CLAIMS_KEY}.{pending_id} from the session state"))
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            fresh = self.begin(session_id, settled)
            if fresh.status == "EXECUTED":
                return fresh
        # Claimed. A worker that ran it and dropped its claim before we read the
        # session has reported first: look once more.
        fresh = self.begin(session_id, settled)
        if fresh.status == "EXECUTED":
            self.drop_claim(session_id, pending_id)
        return fresh

    def finish(self, session_id: str, decision: Decision, result: Any, error: Optional[str]) -> None:
        """:meth:`report`, then drops this worker's claim (the action is
        EXECUTED, which every later attempt sees first)."""
        self.report(decision, result, error)
        self.drop_claim(session_id, decision.pending_action_id)

    def withdraw(self, session_id: str, pending_action_id: str, reason: str) -> None:
        """Records in the session state that the agent withdrew the action, so
        that no worker of these adapters runs it, even if people release it
        later (Handoff offers agents no call to cancel a pending action).

        Raises:
            HandoffIntegrationError: a worker already claimed it to run it.
        """
        for _ in range(100):
            session = self.client.sessions.get(session_id, timeout=self.call_timeout)
            entry = _claim_of(session, pending_action_id)
            if entry is not None and entry.get("withdrawn"):
                return
            if entry is not None:
                raise HandoffIntegrationError(f"pending action {pending_action_id} is already being run by worker "
                                              f"{entry.get('worker')}; it can no longer be withdrawn")
            record = {"withdrawn": True, "worker": self.worker_id, "reason": reason,
                      "withdrawn_at_ms": self._server_time_ms()}
            try:
                self.client.sessions.update_state(
                    session_id, {CLAIMS_KEY: {pending_action_id: record}}, expected_version=session.version,
                    reasoning=f"the agent withdrew pending action {pending_action_id} ({reason}); it will not be run "
                              "even if released", timeout=self.call_timeout)
                return
            except Aborted:
                continue
        raise HandoffIntegrationError(f"could not record the withdrawal of pending action {pending_action_id}: "
                                      f"session {session_id} kept changing")

    def withdrawn(self, session_id: str, pending_action_id: str) -> bool:
        """Whether :meth:`withdraw` recorded the action as withdrawn."""
        session = self.client.sessions.get(session_id, timeout=self.call_timeout)
        entry = _claim_of(session, pending_action_id)
        return bool(entry is not None and entry.get("withdrawn"))

    def report(self, decision: Decision, result: Any, error: Optional[str]) -> None:
        """ReportExecution under the release token (its key derived from the token)."""
        self.client.report_execution(decision, json_safe(result), error=error[:2000] if error else None,
                                     timeout=self.call_timeout)

    def run_released(self, session_id: str, settled: Settled, run: Callable[[Dict[str, Any]], T],
                     describe: Callable[[T], Tuple[Any, Optional[str]]]) -> Tuple[str, Any]:
        """Runs a RELEASED action once with the action Handoff released and
        reports it. Returns ``("ran", value)`` or, when it had already been
        executed (a replay, or another worker in any process), ``("executed",
        (recorded_result, recorded_error))``.

        ``run`` gets the released action (dict with ``parameters``);
        ``describe`` turns its value into ``(result_json_value, error_text)``.
        A tool that raises is reported as failed (the release is used up) and
        the exception propagates.

        Raises:
            Withdrawn, ClaimedElsewhere, NotReleased: see :meth:`acquire`.
        """
        with lock_for(settled.pending_action_id):
            fresh = self.acquire(session_id, settled)
            if fresh.status == "EXECUTED":
                return "executed", (fresh.recorded_result, fresh.recorded_error)
            decision = fresh.decision
            assert decision is not None
            token = _current_release.set(decision)
            try:
                value = run(decision.action)
            except Exception as error:
                self.finish(session_id, decision, None, f"{type(error).__name__}: {error}")
                raise
            finally:
                _current_release.reset(token)
            result, failure = describe(value)
            self.finish(session_id, decision, result, failure)
            return "ran", value

    # -- claims ---------------------------------------------------------------------------

    def _server_time_ms(self) -> int:
        """The server's clock (claims are compared on one clock, whatever the workers' clocks say)."""
        return int(self.client.ping(timeout=self.call_timeout).server_time_unix_ms)

    def _stale(self, entry: Mapping[str, Any]) -> bool:
        if self.stale_claim_after is None or entry.get("withdrawn"):
            return False
        claimed_at = entry.get("claimed_at_ms")
        if isinstance(claimed_at, bool) or not isinstance(claimed_at, int):
            return False
        return self._server_time_ms() - claimed_at > self.stale_claim_after * 1000

    def drop_claim(self, session_id: str, pending_action_id: str) -> None:
        """Removes this worker's claim, if it still holds it. Best effort: the
        action is EXECUTED by now, which every attempt checks before claims."""
        try:
            for _ in range(20):
                session = self.client.sessions.get(session_id, timeout=self.call_timeout)
                entry = _claim_of(session, pending_action_id)
                if entry is None or entry.get("withdrawn") or entry.get("worker") != self.worker_id:
                    return
                try:
                    self.client.sessions.update_state(
                        session_id, {CLAIMS_KEY: {pending_action_id: None}}, expected_version=session.version,
                        reasoning=f"worker {self.worker_id} reported pending action {pending_action_id}",
                        timeout=self.call_timeout)
                    return
                except Aborted:
                    continue
        except HandoffError as error:
            _log.warning("could not drop the claim on pending action %s (it is executed; the claim stays in "
                         "the session state under %s): %s", pending_action_id, CLAIMS_KEY, error)


def _claim_of(session: Session, pending_action_id: str) -> Optional[Dict[str, Any]]:
    """The claim (or withdrawal) recorded for the action in the session state;
    something unreadable there counts as a claim by an unknown worker."""
    claims = session.state.get(CLAIMS_KEY)
    if not isinstance(claims, Mapping) or pending_action_id not in claims:
        return None
    entry = claims[pending_action_id]
    if entry is None:
        return None
    return dict(entry) if isinstance(entry, Mapping) else {"worker": f"unknown ({entry!r})"}


def json_safe(value: Any) -> Any:
    """``value`` if JSON can carry it, else its ``str``."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)
