"""Plain-Python views of Handoff's records, and conversions into requests.

Handoff carries JSON as text (``state_json``, ``parameters_json``, …, see
common.proto) and money as decimal text. These helpers turn Python dicts,
numbers and short names into those fields and back, so agent code handles
dicts and never JSON strings. Every view keeps the protobuf message it was
made from in ``raw``.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from handoff.v1 import approvals_pb2, common_pb2, decisions_pb2, escalations_pb2, operators_pb2, policy_pb2, \
    sessions_pb2

__all__ = [
    "JSON",
    "ActionLike",
    "PendingRef",
    "Session",
    "StateUpdate",
    "Context",
    "Assessment",
    "Decision",
    "to_json",
    "from_json",
    "to_action",
    "decimal_text",
    "enum_value",
    "enum_name",
    "pending_action_id",
]

#: A JSON value as Python holds it.
JSON = Any
#: An action as a dict (see :func:`to_action`) or an ``Action`` message.
ActionLike = Union[Mapping[str, Any], common_pb2.Action]


def to_json(value: JSON) -> str:
    """Compact JSON text for a Python value (UTF-8, not ASCII-escaped)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def from_json(text: str, default: JSON = None) -> JSON:
    """The Python value of JSON text; ``default`` for the empty string."""
    if not text:
        return default
    return json.loads(text)


_WIRE_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


def decimal_text(amount: Union[str, int, float, Decimal]) -> str:
    """Money as Handoff's decimal text: digits, maybe one '.', no sign,
    exponent or grouping (``250``, ``12000.50``).

    Raises:
        ValueError: negative, not finite, or not a number.
    """
    if isinstance(amount, bool):
        raise ValueError(f"amount {amount!r} is not a number")
    written = isinstance(amount, str)
    if isinstance(amount, float):
        if not math.isfinite(amount):
            raise ValueError(f"amount {amount!r} is not finite")
        amount = repr(amount)  # the shortest text that round-trips: 0.1 stays 0.1
    try:
        number = Decimal(str(amount).strip())
    except InvalidOperation:
        raise ValueError(f"amount {amount!r} is not a decimal number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"amount {amount!r} must be a finite number >= 0")
    if written and _WIRE_DECIMAL.fullmatch(str(amount).strip()):
        return str(amount).strip()  # already in the wire form: keep "12000.50" as written
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def enum_value(enum: Any, value: Union[str, int, None], prefix: str) -> int:
    """An enum number from a short name (``"financial"``), a full name
    (``"DECISION_TYPE_FINANCIAL"``) or a number.

    Raises:
        ValueError: a name the enum does not have.
    """
    if value is None:
        return 0
    if isinstance(value, int):
        return int(value)
    name = value.strip().upper().replace("-", "_").replace(" ", "_")
    if not name.startswith(prefix):
        name = prefix + name
    try:
        return int(enum.Value(name))
    except ValueError:
        known = ", ".join(n[len(prefix):].lower() for n in enum.keys() if not n.endswith("_UNSPECIFIED"))
        raise ValueError(f"{value!r} is not one of: {known}") from None


def enum_name(enum: Any, number: int, prefix: str) -> str:
    """The short upper-case name of an enum number (``"AUTOMATE"``); ``"<n>"``
    for a number this client does not know (newer servers add values)."""
    try:
        name: str = enum.Name(number)
    except ValueError:
        return str(number)
    return name[len(prefix):] if name.startswith(prefix) else name


_ACTION_KEYS = {"tool_name", "tool", "description", "text", "parameters", "parameters_json", "amount", "currency",
                "confidence", "decision_type"}


def to_action(action: ActionLike) -> common_pb2.Action:
    """An ``Action`` message from a dict (or the message itself, copied).

    Keys: ``tool_name`` (or ``tool``; required by the server), ``description``
    (or ``text``), ``parameters`` (a dict, sent as ``parameters_json``; or
    ``parameters_json`` as text), ``amount`` (str, int, float or Decimal;
    sent as decimal text), ``currency`` (ISO 4217), ``confidence`` (0.0 to
    1.0; omitted when None) and ``decision_type`` (the agent's hint: a name
    such as ``"financial"`` or a ``DecisionType`` number).

    Raises:
        ValueError: an unknown key or a value that cannot be converted.
    """
    if isinstance(action, common_pb2.Action):
        copy = common_pb2.Action()
        copy.CopyFrom(action)
        return copy
    unknown = set(action) - _ACTION_KEYS
    if unknown:
        raise ValueError(f"unknown action keys {sorted(unknown)}; known: {sorted(_ACTION_KEYS)}")
    message = common_pb2.Action(tool_name=str(action.get("tool_name", action.get("tool", "")) or ""))
    description = action.get("description", action.get("text"))
    if description:
        message.description = str(description)
    if action.get("parameters") is not None:
        message.parameters_json = to_json(action["parameters"])
    elif action.get("parameters_json"):
        message.parameters_json = str(action["parameters_json"])
    if action.get("amount") is not None and action.get("amount") != "":
        message.amount = decimal_text(action["amount"])
    if action.get("currency"):
        message.currency = str(action["currency"])
    if action.get("confidence") is not None:
        message.confidence = float(action["confidence"])
    if action.get("decision_type") is not None:
        message.decision_type = enum_value(common_pb2.DecisionType, action["decision_type"],  # type: ignore[assignment]
                                           "DECISION_TYPE_")
    return message


def action_dict(action: common_pb2.Action) -> Dict[str, Any]:
    """The dict form of an ``Action`` (parameters parsed from JSON)."""
    out: Dict[str, Any] = {"tool_name": action.tool_name, "parameters": from_json(action.parameters_json, {})}
    if action.description:
        out["description"] = action.description
    if action.amount:
        out["amount"] = action.amount
    if action.currency:
        out["currency"] = action.currency
    if action.HasField("confidence"):
        out["confidence"] = action.confidence
    if action.decision_type:
        out["decision_type"] = enum_name(common_pb2.DecisionType, action.decision_type, "DECISION_TYPE_").lower()
    return out


@dataclass(frozen=True)
class Session:
    """A session with its state as a dict."""

    id: str
    tenant_id: str
    #: 1 after creation, +1 for every accepted state update.
    version: int
    state: Dict[str, Any]
    #: ``"ACTIVE"``, ``"AWAITING_CONFIRMATION"`` or ``"ESCALATED"``.
    status: str
    labels: Dict[str, str]
    created_at_ms: int
    updated_at_ms: int
    escalation_ticket_id: str
    raw: common_pb2.Session = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, session: common_pb2.Session) -> "Session":
        return cls(
            id=session.id, tenant_id=session.tenant_id, version=session.version,
            state=from_json(session.state_json, {}),
            status=enum_name(common_pb2.SessionStatus, session.status, "SESSION_STATUS_"),
            labels=dict(session.labels), created_at_ms=session.created_at_unix_ms,
            updated_at_ms=session.updated_at_unix_ms, escalation_ticket_id=session.escalation_ticket_id,
            raw=session)


@dataclass(frozen=True)
class StateUpdate:
    """The result of ``update_state``: the new version and the whole new state."""

    version: int
    state: Dict[str, Any]
    raw: sessions_pb2.UpdateStateResponse = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, response: sessions_pb2.UpdateStateResponse) -> "StateUpdate":
        return cls(version=response.version, state=from_json(response.state_json, {}), raw=response)


@dataclass(frozen=True)
class Context:
    """What an agent reads back: the session (state included), the most recent
    turns (oldest first), all memories, and how many turns there are in all."""

    session: Session
    turns: List[common_pb2.Turn]
    memories: List[common_pb2.Memory]
    total_turns: int
    raw: sessions_pb2.GetContextResponse = field(repr=False, compare=False)

    @property
    def state(self) -> Dict[str, Any]:
        """The session's current state."""
        return self.session.state

    @classmethod
    def from_proto(cls, response: sessions_pb2.GetContextResponse) -> "Context":
        return cls(session=Session.from_proto(response.session), turns=list(response.turns),
                   memories=list(response.memories), total_turns=response.total_turns, raw=response)


@dataclass(frozen=True)
class Assessment:
    """The policy's verdict on an action (``Policy/AssessAction``)."""

    #: ``"LOW"`` … ``"CRITICAL"``.
    risk: str
    #: ``"INFORMATIONAL"``, ``"FINANCIAL"``, …
    decision_type: str
    #: ``"AUTOMATE"``, ``"CONFIRM"``, ``"EXPLICIT_CONFIRM"``, ``"MULTI_FACTOR"`` or ``"ESCALATE"``.
    strategy: str
    #: The pending action to settle; None exactly when the strategy is AUTOMATE.
    pending_action: Optional[common_pb2.PendingAction]
    #: ``"<rule id>: <explanation>"`` for every rule that matched, in order.
    reasons: List[str]
    sampled_for_review: bool
    policy_version: str
    raw: policy_pb2.AssessActionResponse = field(repr=False, compare=False)

    @property
    def automated(self) -> bool:
        """True when the action may run at once."""
        return self.strategy == "AUTOMATE"

    @property
    def needs_confirmation(self) -> bool:
        """True when the end user must confirm (plain or explicit)."""
        return self.strategy in ("CONFIRM", "EXPLICIT_CONFIRM")

    @property
    def needs_multi_factor(self) -> bool:
        """True when the end user must enter a one-time code."""
        return self.strategy == "MULTI_FACTOR"

    @property
    def escalated(self) -> bool:
        """True when a human (approver or operator) decides."""
        return self.strategy == "ESCALATE"

    @property
    def pending_action_id(self) -> Optional[str]:
        """The pending action's id, or None for an automated action."""
        return self.pending_action.id if self.pending_action is not None else None

    @property
    def ticket_id(self) -> str:
        """The operator ticket the escalate strategy opened (or found open); empty otherwise."""
        return self.raw.ticket_id

    @property
    def approval_id(self) -> str:
        """The approval the escalate strategy requested for a routed decision type; empty otherwise."""
        return self.raw.approval_id

    @classmethod
    def from_proto(cls, response: policy_pb2.AssessActionResponse) -> "Assessment":
        return cls(
            risk=enum_name(common_pb2.RiskLevel, response.risk, "RISK_LEVEL_"),
            decision_type=enum_name(common_pb2.DecisionType, response.decision_type, "DECISION_TYPE_"),
            strategy=enum_name(common_pb2.Strategy, response.strategy, "STRATEGY_"),
            pending_action=response.pending_action if response.HasField("pending_action") else None,
            reasons=[f"{rule.rule_id}: {rule.explanation}" for rule in response.matched_rules],
            sampled_for_review=response.sampled_for_review, policy_version=response.policy_version, raw=response)


@dataclass(frozen=True)
class Decision:
    """A pending action's settled outcome (one message of ``WaitForDecision``)."""

    pending_action_id: str
    #: ``"RELEASED"``, ``"DECLINED"``, ``"REJECTED"``, ``"EXPIRED"``, ``"CANCELLED"`` or ``"EXECUTED"``.
    status: str
    #: The single-use token for ``report_execution``; empty unless RELEASED.
    release_token: str
    #: The action to run (as proposed, or as an approver edited it).
    action: Dict[str, Any]
    comment: str
    decided_at_ms: int
    raw: decisions_pb2.DecisionUpdate = field(repr=False, compare=False)

    @property
    def released(self) -> bool:
        """True when the agent may now execute the action (once)."""
        return self.status == "RELEASED"

    @classmethod
    def from_proto(cls, update: decisions_pb2.DecisionUpdate) -> "Decision":
        return cls(
            pending_action_id=update.pending_action_id,
            status=enum_name(common_pb2.PendingActionStatus, update.status, "PENDING_ACTION_STATUS_"),
            release_token=update.release_token, action=action_dict(update.action), comment=update.comment,
            decided_at_ms=update.decided_at_unix_ms, raw=update)


#: Where a pending action id is expected: the id, or something that carries one.
PendingRef = Union[str, Assessment, Decision, common_pb2.PendingAction]


def pending_action_id(ref: PendingRef) -> str:
    """The pending action id of an id, an :class:`Assessment`, a
    :class:`Decision` or a ``PendingAction`` message.

    Raises:
        ValueError: an assessment without a pending action (AUTOMATE).
    """
    if isinstance(ref, str):
        return ref
    if isinstance(ref, Assessment):
        if ref.pending_action is None:
            raise ValueError("the assessment has no pending action: its strategy is AUTOMATE")
        return ref.pending_action.id
    if isinstance(ref, Decision):
        return ref.pending_action_id
    return str(ref.id)


def ticket_statuses(values: Optional[Iterable[Union[str, int]]]) -> List[int]:
    return [enum_value(common_pb2.TicketStatus, v, "TICKET_STATUS_") for v in values or ()]


def priorities(values: Optional[Iterable[Union[str, int]]]) -> List[int]:
    return [enum_value(common_pb2.Priority, v, "PRIORITY_") for v in values or ()]


def desk_event_kinds(values: Optional[Iterable[Union[str, int]]]) -> List[int]:
    return [enum_value(operators_pb2.DeskEventKind, v, "DESK_EVENT_KIND_") for v in values or ()]


def ticket_outcome(value: Union[str, int]) -> int:
    return enum_value(common_pb2.TicketOutcome, value, "TICKET_OUTCOME_")


def pending_decision(value: Union[str, int, None]) -> int:
    return enum_value(escalations_pb2.PendingActionDecision, value, "PENDING_ACTION_DECISION_")


def approval_verdict(value: Union[str, int, bool]) -> int:
    if isinstance(value, bool):
        return approvals_pb2.APPROVAL_VERDICT_APPROVE if value else approvals_pb2.APPROVAL_VERDICT_REJECT
    return enum_value(approvals_pb2.ApprovalVerdict, value, "APPROVAL_VERDICT_")
