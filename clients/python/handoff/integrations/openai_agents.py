"""Handoff for the OpenAI Agents SDK: :class:`HandoffApprovals`.

::

    from agents import Agent, Runner, function_tool
    from handoff.integrations.openai_agents import HandoffApprovals

    approvals = HandoffApprovals(client, session_id="s-1")
    agent = Agent(name="support", tools=approvals.wrap_all([get_weather, issue_refund]))

    result = await Runner.run(agent, "Refund order A-1042")
    if result.interruptions:                     # Handoff did not automate a call
        approvals.save(result.to_state())        # kept with the Handoff session
    # ... later, in any process, once people decided:
    state = await approvals.load(agent)
    await approvals.decide(state)                # state.approve / state.reject from Handoff
    result = await Runner.run(agent, state)

What it does:

- ``needs_approval`` (set by :meth:`HandoffApprovals.wrap`, or
  :meth:`HandoffApprovals.needs_approval` for a tool you build): assesses the
  call with Handoff under a key bound to the call id; AUTOMATE needs no
  approval, anything else interrupts the run. An error fails closed (the SDK
  then asks for approval).
- :meth:`HandoffApprovals.decide`: for each interruption, reads Handoff's
  decision (WaitForDecision) and calls ``state.approve`` when it was RELEASED,
  ``state.reject`` (with Handoff's status and comment) when it was declined,
  rejected, expired or cancelled; undecided ones stay pending. The user's
  confirmation answer or code goes to Handoff first (``answers``).
- The wrapped tool checks Handoff again when the SDK invokes it: it runs only
  a RELEASED action, with the action as released (an approver's edit
  included), reports the result with ReportExecution under the release token,
  and for an action already EXECUTED returns the recorded result instead of
  running again. An approval given to the SDK directly (``state.approve``
  without Handoff's release) is refused with
  :class:`~handoff.integrations.NotReleased`.
- :meth:`HandoffApprovals.save` keeps the serialized ``RunState`` in the
  Handoff **session state** (UpdateState, key ``openai_agents_run``), with the
  pending action of each interruption; :meth:`HandoffApprovals.load` reads it
  back (GetSession), so any process can resume the run after a restart. The
  session state was chosen over memories because it is one current value
  (a memory is an append-only fact), versioned, and in GetContext. The server
  limits the whole state to ``sessions.state_size_limit_bytes`` (256 KiB by
  default); a run that does not fit raises :class:`RunTooLarge`.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional

try:
    from agents import Agent, FunctionTool, RunContextWrapper, RunState, ToolApprovalItem
    from agents.tool_context import ToolContext
except ImportError as error:  # pragma: no cover - exercised without the extra
    raise ImportError("handoff.integrations.openai_agents needs the OpenAI Agents SDK: "
                      "pip install 'handoff[openai-agents]'") from error

from handoff.client import Client
from handoff.errors import InvalidArgument, ResourceExhausted
from handoff.integrations._common import (REFUSED_STATUSES, Gate, HandoffIntegrationError, NotReleased, Settled,
                                          UnknownPendingAction, call_key, default_action, json_safe, lock_for,
                                          reset_release, set_release)
from handoff.models import Assessment

__all__ = ["HandoffApprovals", "RunTooLarge", "STATE_KEY"]

#: The session state key holding the saved run.
STATE_KEY = "openai_agents_run"

ActionFor = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]


class RunTooLarge(HandoffIntegrationError):
    """The serialized run does not fit in the session state (the server's
    ``sessions.state_size_limit_bytes``, 256 KiB by default)."""


class HandoffApprovals:
    """Handoff's decisions for one session's Agents SDK runs (see the module).

    Args:
        client: a blocking :class:`handoff.Client` with an agent identity.
        session_id: the Handoff session (created when missing).
        action_for: ``(tool_name, arguments) -> action dict``; the default
            names the tool, passes the arguments as parameters and takes
            ``amount``/``currency`` from them. Give descriptions with
            :meth:`wrap` instead when that is all you need.
        resume_wait: seconds to wait for a decision when the tool is invoked.
    """

    def __init__(self, client: Client, *, session_id: str, action_for: Optional[ActionFor] = None,
                 resume_wait: float = 2.0) -> None:
        self.client = client
        self.session_id = session_id
        self.action_for = action_for
        self.gate = Gate(client, resume_wait=resume_wait)
        self._descriptions: Dict[str, str] = {}

    # -- assessing ------------------------------------------------------------------------

    def _action(self, tool_name: str, arguments: Mapping[str, Any]) -> Dict[str, Any]:
        if self.action_for is not None:
            return dict(self.action_for(tool_name, arguments))
        return default_action(tool_name, arguments, self._descriptions.get(tool_name, ""))

    def _key(self, tool_name: str, call_id: str) -> str:
        if not call_id:
            raise NotReleased(f"a call of {tool_name!r} has no call id; Handoff binds each decision to one call")
        return call_key("oa", self.session_id, tool_name, call_id)

    def assess(self, tool_name: str, arguments: Mapping[str, Any], call_id: str) -> Assessment:
        """AssessAction for one call (idempotent: the same call gets the same pending action)."""
        return self.gate.assess(self.session_id, self._action(tool_name, arguments), self._key(tool_name, call_id))

    async def _assess(self, tool_name: str, arguments: Mapping[str, Any], call_id: str) -> Assessment:
        return await asyncio.to_thread(self.assess, tool_name, arguments, call_id)

    def needs_approval(self, tool_name: str) -> Callable[[RunContextWrapper[Any], Dict[str, Any], str], Awaitable[bool]]:
        """A ``needs_approval`` callable for the tool named ``tool_name``:
        False exactly when Handoff automates the call."""

        async def needs_approval(context: RunContextWrapper[Any], arguments: Dict[str, Any], call_id: str) -> bool:
            return not (await self._assess(tool_name, arguments, call_id)).automated

        return needs_approval

    # -- the tool wrapper -----------------------------------------------------------------

    def wrap(self, tool: FunctionTool, *, description: Optional[str] = None) -> FunctionTool:
        """A copy of ``tool`` that Handoff gates: ``needs_approval`` from
        Handoff's assessment, and an invocation that runs only what Handoff
        released, once, and reports it. ``description`` is the text the policy
        reads (default: the tool's description)."""
        self._descriptions[tool.name] = (description or tool.description or "").strip().splitlines()[0] \
            if (description or tool.description) else ""
        invoke = tool.on_invoke_tool

        async def on_invoke_tool(context: ToolContext[Any], arguments_json: str) -> Any:
            return await self._invoke(tool.name, invoke, context, arguments_json)

        return dataclasses.replace(tool, needs_approval=self.needs_approval(tool.name), on_invoke_tool=on_invoke_tool)

    def wrap_all(self, tools: Iterable[FunctionTool]) -> List[FunctionTool]:
        """:meth:`wrap` for each tool."""
        return [self.wrap(tool) for tool in tools]

    async def _invoke(self, tool_name: str, invoke: Callable[[ToolContext[Any], str], Awaitable[Any]],
                      context: ToolContext[Any], arguments_json: str) -> Any:
        arguments = json.loads(arguments_json or "{}")
        assessment = await self._assess(tool_name, arguments, context.tool_call_id)
        if assessment.automated:
            return await invoke(context, arguments_json)
        pending_id = assessment.pending_action_id or ""
        settled = await asyncio.to_thread(self.gate.peek, self.session_id, pending_id, self.gate.resume_wait)
        if settled is None:
            raise NotReleased(f"{tool_name} was approved in the run, but Handoff has not released pending action "
                              f"{pending_id} ({assessment.strategy}); the tool was not run")
        if settled.status == "EXECUTED":
            return _recorded(settled.recorded_result, settled.recorded_error)
        if settled.status in REFUSED_STATUSES or not settled.released:
            raise NotReleased(f"{tool_name} was approved in the run, but Handoff {settled.status.lower()} pending "
                              f"action {pending_id}; the tool was not run")
        lock = lock_for(pending_id)
        await asyncio.to_thread(lock.acquire)
        try:
            fresh = await asyncio.to_thread(self.gate.acquire, self.session_id, settled)
            if fresh.status == "EXECUTED":
                return _recorded(fresh.recorded_result, fresh.recorded_error)
            decision = fresh.decision
            assert decision is not None
            if decision.action.get("tool_name") != tool_name:
                await asyncio.to_thread(self.gate.drop_claim, self.session_id, pending_id)
                raise NotReleased(f"Handoff released {decision.action.get('tool_name')!r}, not {tool_name!r}")
            released_json = json.dumps(decision.action.get("parameters") or {})
            token = set_release(decision)
            try:
                value = await invoke(context, released_json)
            except Exception as error:
                await asyncio.to_thread(self.gate.finish, self.session_id, decision, None,
                                        f"{type(error).__name__}: {error}")
                raise
            finally:
                reset_release(token)
            await asyncio.to_thread(self.gate.finish, self.session_id, decision, {"output": json_safe(value)}, None)
            return value
        finally:
            lock.release()

    # -- deciding interruptions from Handoff ----------------------------------------------

    async def pending(self, state: RunState[Any]) -> Dict[str, ToolApprovalItem]:
        """``{pending_action_id: interruption}`` for the run's interruptions."""
        found: Dict[str, ToolApprovalItem] = {}
        for item in state.get_interruptions():
            name = item.tool_name or item.name or ""
            arguments = json.loads(item.arguments or "{}")
            assessment = await self._assess(name, arguments, item.call_id or "")
            if assessment.pending_action_id:
                found[assessment.pending_action_id] = item
        return found

    async def decide(self, state: RunState[Any], *, answers: Optional[Mapping[str, str]] = None,
                     wait: float = 0.0) -> Dict[str, str]:
        """Applies Handoff's decisions to the run's interruptions.

        Args:
            answers: ``{pending_action_id: the end user's answer or code}``,
                handed to RespondToConfirmation / VerifyMultiFactor first.
            wait: seconds to wait for each undecided action.

        Returns:
            ``{pending_action_id: status}`` (RELEASED: approved; DECLINED,
            REJECTED, EXPIRED, CANCELLED: rejected; PENDING: left waiting;
            EXECUTED: approved, its tool returns the recorded result).

        Raises:
            UnknownPendingAction: an answer for an action this run does not wait on.
        """
        by_pending = await self.pending(state)
        unknown = [p for p in (answers or {}) if p not in by_pending]
        if unknown:
            raise UnknownPendingAction(f"the run does not wait on pending action(s) {unknown}; it waits on "
                                       f"{sorted(by_pending) or 'none'}")
        outcome: Dict[str, str] = {}
        for pending_id, item in by_pending.items():
            name = item.tool_name or item.name or ""
            assessment = await self._assess(name, json.loads(item.arguments or "{}"), item.call_id or "")
            if answers and pending_id in answers:
                await asyncio.to_thread(self.gate.hand_in, assessment, answers[pending_id])
            settled: Optional[Settled] = await asyncio.to_thread(self.gate.peek, self.session_id, pending_id, wait)
            if settled is None:
                outcome[pending_id] = "PENDING"
            elif settled.released or settled.status == "EXECUTED":
                state.approve(item)
                outcome[pending_id] = settled.status
            else:
                why = f": {settled.comment.rstrip('.')}" if settled.comment else ""
                state.reject(item, rejection_message=f"Handoff: this action was {settled.status.lower()}{why}. "
                                                     "The tool was not run; do not retry it unless the user asks.")
                outcome[pending_id] = settled.status
        return outcome

    async def ask_user(self, state: RunState[Any]) -> Dict[str, str]:
        """For interruptions the end user decides: asks for confirmation or
        sends the code (once per action). Returns ``{pending_action_id: what
        to show the user}`` (the prompt, or where the code went)."""
        shown: Dict[str, str] = {}
        for pending_id, item in (await self.pending(state)).items():
            name = item.tool_name or item.name or ""
            assessment = await self._assess(name, json.loads(item.arguments or "{}"), item.call_id or "")
            if assessment.needs_confirmation or assessment.needs_multi_factor:
                progress = await asyncio.to_thread(self.gate.ask_user, assessment, self.session_id)
                shown[pending_id] = progress.prompt
        return shown

    # -- keeping the run with the session -------------------------------------------------

    def save(self, state: RunState[Any], **to_json: Any) -> int:
        """Keeps the serialized run in the session state (UpdateState); returns
        the session's new version. ``to_json`` goes to ``RunState.to_json``
        (e.g. ``context_serializer``).

        Raises:
            RunTooLarge: the run does not fit in the session state, whose size
                the server limits (``sessions.state_size_limit_bytes``, 256 KiB
                by default); nothing was saved.
        """
        interruptions = [{"call_id": item.call_id, "tool": item.tool_name or item.name}
                         for item in state.get_interruptions()]
        run_state = json.dumps(state.to_json(**to_json))
        saved = {STATE_KEY: {"run_state": run_state, "interruptions": interruptions}}
        self.gate.ensure_session(self.session_id)
        try:
            update = self.client.sessions.update_state(self.session_id, saved,
                                                       reasoning=f"run paused on {len(interruptions)} tool call(s) "
                                                                 "awaiting Handoff's decision")
        except (InvalidArgument, ResourceExhausted) as error:
            if "the limit is" not in error.message and "frame" not in error.message:
                raise  # not about the size
            size = len(run_state.encode("utf-8"))
            limit = re.search(r"limit (?:is|of) (\d+) bytes", error.message)
            setting = ("sessions.state_size_limit_bytes" if isinstance(error, InvalidArgument)
                       else "limits.max_frame_bytes")
            raise RunTooLarge(
                f"the paused run cannot be saved with session {self.session_id}: its RunState is {size:,} bytes of "
                f"JSON, and the server refused it ({error.message}). A session's state is limited by handoffd's "
                f"{setting}" + (f" ({int(limit.group(1)):,} bytes here)" if limit else "")
                + "; sessions.state_size_limit_bytes is 262,144 (256 KiB) by default, at most half of "
                "limits.max_frame_bytes. Raise it in handoffd's configuration, or keep the run smaller (a "
                "shorter conversation, a context_serializer that leaves out what can be rebuilt). Nothing was "
                "saved.") from error
        return update.version

    async def load(self, agent: Agent[Any], **from_json: Any) -> Optional[RunState[Any]]:
        """The run saved with :meth:`save`, or None. ``from_json`` goes to
        ``RunState.from_json`` (e.g. ``context_deserializer``)."""
        session = await asyncio.to_thread(self.client.sessions.get, self.session_id)
        saved = session.state.get(STATE_KEY)
        if not isinstance(saved, Mapping) or not saved.get("run_state"):
            return None
        return await RunState.from_json(agent, json.loads(saved["run_state"]), **from_json)

    def clear(self) -> None:
        """Drops the saved run (once it finished)."""
        self.client.sessions.update_state(self.session_id, {STATE_KEY: None}, reasoning="run finished")


def _recorded(result: Any, error: Optional[str]) -> Any:
    if isinstance(result, Mapping) and "output" in result:
        result = result["output"]
    text = result if isinstance(result, str) else json.dumps(result)
    return f"(already executed; the recorded result) {text}" + (f" [error: {error}]" if error else "")
