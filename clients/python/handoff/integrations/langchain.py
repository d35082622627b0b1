"""Handoff for LangChain 1.x agents: :class:`HandoffMiddleware`.

::

    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver
    from handoff.integrations.langchain import HandoffMiddleware, resume

    agent = create_agent(model, tools, middleware=[HandoffMiddleware(client, session_id="s-1")],
                         checkpointer=InMemorySaver())
    result = agent.invoke({"messages": [...]}, config)
    # paused: result["__interrupt__"] holds one interrupt per gated tool call
    agent.invoke(resume(result["__interrupt__"], {pending_action_id: "Yes"}), config)

Every tool call is assessed with Handoff (``AssessAction``) before it runs:

- AUTOMATE: the tool runs at once; nothing waits.
- CONFIRM, EXPLICIT_CONFIRM, MULTI_FACTOR or ESCALATE: the step pauses with
  LangGraph's ``interrupt()``. Its value has LangChain's human-in-the-loop
  shape (``action_requests``, ``review_configs``, as ``HumanInTheLoopMiddleware``
  raises it, so Agent Inbox and Agent Chat UI show it) and a ``handoff`` entry
  with the pending action id, the strategy, the question for the user, and
  the approval or ticket deciding it. The user's confirmation prompt is asked
  (RequestConfirmation) or the code sent (StartMultiFactor) before the pause.
- On resume the decision is read from Handoff (WaitForDecision). The resume
  value (one per interrupt; :func:`resume` builds it keyed by pending action
  id) may be a decision of LangChain's shape:

  - ``{"type": "respond", "message": "Yes"}`` (or just ``"Yes"``): the end
    user's answer to a confirmation, or the code they typed, handed to
    RespondToConfirmation / VerifyMultiFactor verbatim;
  - ``{"type": "approve"}`` or ``{"type": "edit", "edited_action": {...}}``:
    a claim only. If Handoff has not released the action,
    :class:`~handoff.integrations.NotReleased` is raised and the tool does
    not run; an edit must be exactly what Handoff released (approvers edit
    at their desk, not in the resume value);
  - ``{"type": "reject", ...}``: the tool does not run (a confirmation is
    answered "no"; an approval, ticket or code, which an agent cannot
    cancel in Handoff, is recorded as withdrawn in the session state, and
    no adapter runs it even if people release it later);
  - ``None`` or ``{"type": "check"}``: look again; still undecided pauses again.

  A value naming another pending action raises
  :class:`~handoff.integrations.ResumeRefused`.
- Released: the tool runs with the action Handoff released (an approver's
  edit included) and its result is reported with ReportExecution under the
  release token. Rejected, declined, expired or cancelled: the model gets an
  error ToolMessage saying so, and the tool does not run.
- A replayed step (a crash, time travel, a second resume) finds the action
  EXECUTED and returns the recorded result: the tool does not run again.

Several tool calls in one model turn run as parallel steps, each with its
own pending action and interrupt; resume them together or one by one, in any
order. The agent needs a checkpointer, as for any interrupt.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

try:
    from langchain.agents.middleware.types import AgentMiddleware, ToolCallRequest
    from langchain_core.messages import AIMessage, ToolMessage
    from langgraph.errors import GraphInterrupt
    from langgraph.types import Command, interrupt
except ImportError as error:  # pragma: no cover - exercised without the extra
    raise ImportError("handoff.integrations.langchain needs LangChain 1.x and LangGraph: "
                      "pip install 'handoff[langchain]'") from error

from handoff.client import Client
from handoff.integrations._common import (REFUSED_STATUSES, Gate, NotReleased, PendingProgress, ResumeRefused,
                                          Settled, UnknownPendingAction, Withdrawn, call_key, default_action,
                                          json_safe)
from handoff.models import Assessment, enum_name
from handoff.v1 import common_pb2

__all__ = ["HandoffMiddleware", "resume", "pending_action_ids"]

ActionFor = Callable[[Mapping[str, Any], Any], Mapping[str, Any]]
SessionFor = Callable[[ToolCallRequest], str]

_ALLOWED = {
    "CONFIRM": ["respond", "reject"],
    "EXPLICIT_CONFIRM": ["respond", "reject"],
    "MULTI_FACTOR": ["respond", "reject"],
    "ESCALATE": ["approve", "reject"],
}


@dataclass
class _Claim:
    """What a resume value says."""

    kind: str  # check, respond, approve, edit, reject
    text: Optional[str] = None
    edited_args: Optional[Dict[str, Any]] = None


def _parse_resume(value: Any, pending_action_id: str) -> _Claim:
    if value is None:
        return _Claim("check")
    if isinstance(value, str):
        return _Claim("respond", text=value)
    if not isinstance(value, Mapping):
        raise ResumeRefused(f"a resume value for pending action {pending_action_id} must be a decision dict, "
                            f"a string (the user's answer) or None, not {type(value).__name__}")
    named = value.get("pending_action_id")
    decision: Any = value
    if "decisions" in value:
        decisions = value["decisions"]
        if not isinstance(decisions, list) or len(decisions) != 1:
            raise ResumeRefused(f"pending action {pending_action_id} takes exactly one decision, got {decisions!r}")
        decision = decisions[0]
        if not isinstance(decision, Mapping):
            raise ResumeRefused(f"a decision must be a dict, not {decision!r}")
        named = decision.get("pending_action_id", named)
    if named is not None and named != pending_action_id:
        raise ResumeRefused(f"this resume value is for pending action {named!r}, but it reached the tool call "
                            f"waiting on {pending_action_id}; resume each interrupt with its own value "
                            "(handoff.integrations.langchain.resume does)")
    kind = decision.get("type") or ("respond" if ("answer" in decision or "code" in decision) else "check")
    if kind == "respond":
        text = decision.get("message", decision.get("answer", decision.get("code")))
        if not isinstance(text, str) or not text:
            raise ResumeRefused("a respond decision needs the user's answer as a non-empty string in 'message'")
        return _Claim("respond", text=text)
    if kind == "edit":
        edited = decision.get("edited_action") or {}
        args = edited.get("args") if isinstance(edited, Mapping) else None
        if not isinstance(args, Mapping):
            raise ResumeRefused("an edit decision needs edited_action.args")
        return _Claim("edit", edited_args=dict(args))
    if kind in ("approve", "check"):
        return _Claim(kind)
    if kind == "reject":
        message = decision.get("message")
        return _Claim("reject", text=message if isinstance(message, str) else None)
    raise ResumeRefused(f"unknown decision type {kind!r} for pending action {pending_action_id}; "
                        "expected respond, approve, edit, reject or check")


def pending_action_ids(interrupts: Iterable[Any]) -> Dict[str, str]:
    """``{pending_action_id: interrupt_id}`` for the interrupts this middleware raised."""
    found: Dict[str, str] = {}
    for item in interrupts:
        value = getattr(item, "value", None)
        if isinstance(value, Mapping) and isinstance(value.get("handoff"), Mapping):
            pending = value["handoff"].get("pending_action_id")
            if pending:
                found[str(pending)] = str(item.id)
    return found


def resume(interrupts: Iterable[Any], answers: Mapping[str, Any]) -> Command:
    """A ``Command(resume=...)`` answering interrupts by Handoff pending action id.

    ``interrupts``: the run's interrupts (``result["__interrupt__"]``, or
    ``agent.get_state(config).interrupts``). ``answers``: pending action id
    to resume value (``"Yes"``, a code, ``None`` to look again, or a decision
    dict). Interrupts not named stay paused.

    Raises:
        UnknownPendingAction: an id that no interrupt waits on (a decision is
            never dropped silently).
    """
    by_pending = pending_action_ids(interrupts)
    unknown = [pending for pending in answers if pending not in by_pending]
    if unknown:
        raise UnknownPendingAction(f"no interrupt waits on pending action(s) {unknown}; waiting: "
                                   f"{sorted(by_pending) or 'none'}")
    values: Dict[str, Any] = {}
    for pending, answer in answers.items():
        if answer is None:
            answer = {"type": "check"}
        elif isinstance(answer, str):
            answer = {"type": "respond", "message": answer}
        elif isinstance(answer, Mapping):
            answer = dict(answer)
        else:
            raise ResumeRefused(f"the answer for {pending} must be None, a string or a dict")
        answer["pending_action_id"] = pending
        values[by_pending[pending]] = answer
    return Command(resume=values)


class HandoffMiddleware(AgentMiddleware):  # type: ignore[type-arg]
    """Assesses every tool call with Handoff before it runs (see the module).

    Args:
        client: a blocking :class:`handoff.Client` with an agent identity.
        session_id: the Handoff session, or a function of the
            ``ToolCallRequest`` returning it (e.g. from the thread id). A
            session that does not exist is created.
        action_for: ``(tool_call, tool) -> action dict`` (``description``,
            ``amount``, ``currency``, ``confidence``, ``decision_type``,
            ``parameters``...); the default names the tool, passes its
            arguments as parameters, uses the tool's description, and takes
            ``amount``/``currency`` from the arguments.
        resume_wait: seconds a resumed step waits for Handoff's decision to
            show before it pauses again (or refuses a claim of approval).
        edit_notice: tell the model when a person changed the call before it ran.
    """

    def __init__(self, client: Client, *, session_id: Union[str, SessionFor],
                 action_for: Optional[ActionFor] = None, resume_wait: float = 2.0,
                 edit_notice: bool = True) -> None:
        super().__init__()
        self.client = client
        self.session_id = session_id
        self.action_for = action_for
        self.edit_notice = edit_notice
        self.gate = Gate(client, resume_wait=resume_wait)

    # -- the hooks ------------------------------------------------------------------------

    def wrap_tool_call(self, request: ToolCallRequest,
                       handler: Callable[[ToolCallRequest], Any]) -> Any:
        return self._gate_call(request, handler)

    async def awrap_tool_call(self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Any]) -> Any:
        # The Handoff client blocks: run the gate in a thread (the context, and
        # so interrupt()'s graph config, goes with it) and the tool on this loop.
        loop = asyncio.get_running_loop()

        def run_on_loop(to_run: ToolCallRequest) -> Any:
            return asyncio.run_coroutine_threadsafe(handler(to_run), loop).result()

        return await asyncio.to_thread(self._gate_call, request, run_on_loop)

    # -- the gate -------------------------------------------------------------------------

    def _session(self, request: ToolCallRequest) -> str:
        if callable(self.session_id):
            return str(self.session_id(request))
        return self.session_id

    def _action(self, request: ToolCallRequest) -> Dict[str, Any]:
        call = request.tool_call
        if self.action_for is not None:
            return dict(self.action_for(call, request.tool))
        description = ""
        if request.tool is not None and getattr(request.tool, "description", ""):
            description = str(request.tool.description).strip().splitlines()[0]
        return default_action(call["name"], call.get("args") or {}, description)

    @staticmethod
    def _call_identity(request: ToolCallRequest) -> Tuple[str, str, str]:
        """(thread id, id of the model message holding the call, tool call id)."""
        call_id = request.tool_call.get("id") or ""
        if not call_id:
            raise ResumeRefused(f"tool call {request.tool_call.get('name')!r} has no id; Handoff binds each "
                                "decision to one call, so the chat model must give tool call ids")
        config = getattr(request.runtime, "config", None) or {}
        thread = str((config.get("configurable") or {}).get("thread_id") or "")
        message_id = ""
        state = request.state
        messages = state.get("messages", []) if isinstance(state, Mapping) else getattr(state, "messages", [])
        for message in reversed(messages or []):
            if isinstance(message, AIMessage) and any(c.get("id") == call_id for c in message.tool_calls):
                message_id = message.id or ""
                break
        return thread, message_id, call_id

    def _gate_call(self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Any]) -> Any:
        session_id = self._session(request)
        action = self._action(request)
        thread, message_id, call_id = self._call_identity(request)
        assessment = self.gate.assess(session_id, action, call_key("lc", session_id, thread, message_id, call_id))
        if assessment.automated:
            return handler(request)
        assert assessment.pending_action is not None
        pending_id = assessment.pending_action.id
        status = enum_name(common_pb2.PendingActionStatus, assessment.pending_action.status, "PENDING_ACTION_STATUS_")
        if status not in REFUSED_STATUSES and status != "EXECUTED" and self.gate.withdrawn(session_id, pending_id):
            return self._rejected(request)  # withdrawn earlier: a replayed step says so again
        claim: Optional[_Claim] = None
        if status in ("PENDING", "CONFIRMED", "APPROVED"):
            settled, claim = self._pause(request, assessment, session_id)
            if settled is None:  # the user withdrew it while it was undecided
                if not assessment.needs_confirmation:  # (a confirmation was answered "no": DECLINED)
                    self.gate.withdraw(session_id, pending_id, "the user rejected it (a LangChain reject)")
                return self._rejected(request)
            if claim is not None and claim.kind == "reject" and settled.released:  # withdrawn after the release
                self.gate.withdraw(session_id, pending_id, "the user rejected it (a LangChain reject)")
                return self._rejected(request)
        else:
            settled = self.gate.peek(session_id, pending_id, wait=self.gate.resume_wait)
            if settled is None:
                raise NotReleased(f"pending action {pending_id} is {status} but Handoff shows "
                                  "no decision; the tool was not run")
            claim = self._last_claim(request, assessment, session_id, pending_id, None)
            if claim is not None and claim.kind == "reject" and settled.released:
                self.gate.withdraw(session_id, pending_id, "the user rejected it (a LangChain reject)")
                return self._rejected(request)
        return self._finish(request, handler, session_id, settled, claim)

    def _rejected(self, request: ToolCallRequest) -> ToolMessage:
        return self._message(request, "The user rejected this action; the tool was not run. Do not "
                                      "retry it unless the user asks.", error=True)

    def _pause(self, request: ToolCallRequest, assessment: Assessment,
               session_id: str) -> Tuple[Optional[Settled], Optional[_Claim]]:
        """Pauses until Handoff settles the action; returns it (None: withdrawn)."""
        pending_id = assessment.pending_action_id or ""
        people_decide = assessment.escalated
        progress = PendingProgress() if people_decide else self.gate.ask_user(assessment, session_id)
        handed = 0
        # LangGraph hands a resumed step every resume value it was given, in
        # order (a value that made the step fail stays first). Each is applied
        # once; only the last decides whether to pause again or refuse.
        value = interrupt(self._request_value(request, assessment, session_id, progress.prompt, ""))
        while True:
            try:
                claim = _parse_resume(value, pending_id)
                text = claim.text if claim.kind == "respond" else None
                if claim.kind == "reject" and assessment.needs_confirmation:
                    text = "no"
                if text is not None:
                    handed += 1
                    if handed > progress.answers:  # not handed in by an earlier run of this step
                        progress.last_outcome = self.gate.hand_in(assessment, text)
                        progress.answers += 1
            except ResumeRefused as refused:
                # A refused value is skipped once a later one was given, else it is the error.
                try:
                    value = interrupt(self._request_value(request, assessment, session_id, progress.prompt, ""))
                except GraphInterrupt:
                    raise refused from None
                continue
            if claim.kind == "reject":
                return None, claim
            settled = self.gate.peek(session_id, pending_id)
            if settled is not None:
                return settled, self._last_claim(request, assessment, session_id, pending_id, claim)
            note = {"ambiguous": "The answer was not a clear yes or no. ",
                    "wrong code": "That code was wrong. "}.get(progress.last_outcome, "Still waiting for a decision. ")
            try:  # a later resume value, if there is one
                value = interrupt(self._request_value(request, assessment, session_id, progress.prompt, note))
            except GraphInterrupt:
                settled = self.gate.peek(session_id, pending_id, wait=self.gate.resume_wait)
                if settled is not None:
                    return settled, claim
                if claim.kind in ("approve", "edit"):
                    waits_for = ("the end user's answer (resume with their words or code)" if not people_decide else
                                 f"approval {assessment.approval_id}" if assessment.approval_id else
                                 f"the operator desk (ticket {assessment.ticket_id})")
                    raise NotReleased(f"the resume value says {claim.kind!r}, but Handoff has not released pending "
                                      f"action {pending_id} ({assessment.strategy}; it waits for {waits_for}). The "
                                      "tool was not run.") from None
                raise  # pause again

    def _last_claim(self, request: ToolCallRequest, assessment: Assessment, session_id: str, pending_id: str,
                    claim: Optional[_Claim]) -> Optional[_Claim]:
        """The last of the resume values still unread (``claim`` when none is
        left): once Handoff has settled the action only the latest word
        counts. Reading them never pauses the step."""
        refusal: Optional[ResumeRefused] = None
        while True:
            try:
                value = interrupt(self._request_value(request, assessment, session_id, "", ""))
            except GraphInterrupt:
                if refusal is not None:  # the latest value is a refused one
                    raise refusal from None
                return claim
            try:
                claim, refusal = _parse_resume(value, pending_id), None
            except ResumeRefused as refused:
                refusal = refused

    def _request_value(self, request: ToolCallRequest, assessment: Assessment, session_id: str, prompt: str,
                       note: str) -> Dict[str, Any]:
        call = request.tool_call
        pending_id = assessment.pending_action_id
        if assessment.escalated:
            who = (f"approval {assessment.approval_id} (approvers decide at their desk)" if assessment.approval_id
                   else f"ticket {assessment.ticket_id} (an operator decides at the desk)")
            description = (f"Handoff: a person decides this action: {who}. Resume once they have; the "
                           "decision is read from Handoff.")
        elif assessment.needs_multi_factor:
            description = f"Handoff: {prompt or 'a code was sent to the user'} Resume with the code the user types."
        else:
            description = f"Handoff: ask the user. {prompt} Resume with the user's answer, verbatim."
        if note:
            description = note + description
        return {
            "action_requests": [{"name": call["name"], "args": call.get("args") or {}, "description": description,
                                 "pending_action_id": pending_id}],
            "review_configs": [{"action_name": call["name"],
                                "allowed_decisions": list(_ALLOWED.get(assessment.strategy, ["approve", "reject"]))}],
            "handoff": {
                "pending_action_id": pending_id,
                "session_id": session_id,
                "tool_call_id": call.get("id"),
                "strategy": assessment.strategy,
                "risk": assessment.risk,
                "decision_type": assessment.decision_type,
                "reasons": list(assessment.reasons),
                "prompt": prompt,
                "approval_id": assessment.approval_id,
                "ticket_id": assessment.ticket_id,
            },
        }

    def _finish(self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Any], session_id: str,
                settled: Settled, claim: Optional[_Claim]) -> Any:
        """Acts on Handoff's outcome; ``claim`` is the latest resume value's word."""
        call = request.tool_call
        if settled.status == "EXECUTED":
            return self._recorded(request, settled.recorded_result, settled.recorded_error)
        if settled.status in REFUSED_STATUSES or not settled.released:
            if claim is not None and claim.kind in ("approve", "edit"):
                raise NotReleased(f"the resume value says {claim.kind!r}, but Handoff {settled.status.lower()} pending "
                                  f"action {settled.pending_action_id}"
                                  + (f" ({settled.comment})" if settled.comment else "")
                                  + ". The tool was not run; resume with None to let the agent go on.")
            why = f" ({settled.comment})" if settled.comment else ""
            return self._message(request, f"Handoff: this action was {settled.status.lower()}{why}; the tool was "
                                          "not run. Do not retry it unless the user asks.", error=True)
        assert settled.decision is not None
        released = settled.decision.action
        if claim is not None and claim.kind == "edit" and claim.edited_args != released.get("parameters"):
            raise ResumeRefused(f"the resume value edits the call to {claim.edited_args}, but Handoff released "
                                f"{released.get('parameters')}; edits are made by the approver in Handoff. The tool "
                                "was not run.")
        changed = released.get("parameters") != (call.get("args") or {})

        def run(action: Dict[str, Any]) -> Any:
            if action.get("tool_name") != call["name"]:
                raise NotReleased(f"Handoff released {action.get('tool_name')!r}, not {call['name']!r}")
            return handler(request.override(tool_call={**call, "args": dict(action.get("parameters") or {})}))

        try:
            outcome, value = self.gate.run_released(session_id, settled, run, _describe)
        except Withdrawn:
            return self._rejected(request)
        if outcome == "executed":
            result, error = value
            return self._recorded(request, result, error)
        if changed and self.edit_notice and isinstance(value, ToolMessage):
            notice = (f"Note: a person changed this call before it ran; it ran with arguments "
                      f"{json.dumps(released.get('parameters'), sort_keys=True)}. Do not re-issue the original call.")
            content = value.content if isinstance(value.content, str) else json.dumps(value.content)
            value = value.model_copy(update={"content": f"{notice}\n\nTool response: {content}"})
        return value

    @staticmethod
    def _message(request: ToolCallRequest, text: str, *, error: bool = False) -> ToolMessage:
        return ToolMessage(content=text, name=request.tool_call["name"], tool_call_id=request.tool_call.get("id"),
                           status="error" if error else "success")

    def _recorded(self, request: ToolCallRequest, result: Any, error: Optional[str]) -> ToolMessage:
        content = result.get("content") if isinstance(result, Mapping) and "content" in result else result
        text = content if isinstance(content, str) else json.dumps(content)
        return self._message(request, f"(already executed; the recorded result) {text}",
                             error=bool(error) or (isinstance(result, Mapping) and result.get("status") == "error"))


def _describe(value: Any) -> Tuple[Any, Optional[str]]:
    """A tool node's result as the JSON reported to Handoff, and its error text."""
    messages: List[ToolMessage] = []
    if isinstance(value, ToolMessage):
        messages = [value]
    elif isinstance(value, Command) and isinstance(value.update, Mapping):
        messages = [m for m in value.update.get("messages", []) if isinstance(m, ToolMessage)]
    if not messages:
        return {"content": json_safe(str(value)), "status": "success"}, None
    message = messages[0]
    content = json_safe(message.content)
    error = (content if isinstance(content, str) else json.dumps(content)) if message.status == "error" else None
    return {"content": content, "status": message.status}, error
