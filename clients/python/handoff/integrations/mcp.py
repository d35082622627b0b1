"""``handoff-mcp``: Handoff as an MCP server, for any MCP client.

::

    handoff-mcp --server 127.0.0.1:7443 --certs .handoff/certs              # stdio
    handoff-mcp --transport streamable-http --port 8765 --token "$TOKEN" --ca ca.pem

Tools: ``assess_action``, ``request_approval``, ``get_decision``,
``wait_for_decision`` (bounded by ``--max-wait``), ``escalate``,
``report_execution`` and ``get_context``.

What it guarantees:

- **The decision is always out of band.** People decide at their desks
  (``handoff approvals``, ``handoff desk``, the console), and the end user
  answers a confirmation or types a code in the application, which hands it
  to Handoff with the SDK or ``handoff answer`` / ``handoff code verify``.
  No tool here approves, rejects, resolves, confirms or verifies anything,
  and the server never asks the MCP client (no elicitation, no sampling): a
  client cannot approve its own request, whatever it answers.
- **One identity.** Every call is made with the certificate or bearer token
  the server was started with (an agent's); the MCP client cannot choose
  another, and an agent identity may not decide approvals or tickets.
- **Bound and once.** A release token is bound to the exact action Handoff
  released (``get_decision`` returns that action: run it, not another), and
  ``report_execution`` is idempotent (the key is derived from the token): a
  repeat is a duplicate, never a second execution on record.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from typing import Any, Dict, List, Optional

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError as error:  # pragma: no cover - exercised without the extra
    raise ImportError("handoff.integrations.mcp needs the MCP SDK: pip install 'handoff[mcp]'") from error

from handoff.client import Client
from handoff.errors import HandoffError
from handoff.integrations._common import Gate, Settled
from handoff.models import Assessment

__all__ = ["build_server", "main", "TOOLS"]

#: The tools the server offers (and nothing that decides).
TOOLS = ("assess_action", "request_approval", "get_decision", "wait_for_decision", "escalate", "report_execution",
         "get_context")

INSTRUCTIONS = """Handoff decides whether your actions may run. Before a consequential tool call, call
assess_action. AUTOMATE: run it. Otherwise a person decides out of band: the end user (confirmation or code,
through the application) or an approver or operator at their desk. Poll get_decision or wait_for_decision;
run the action only when it is RELEASED, exactly as returned in `action`, then call report_execution with the
release_token. Never ask the user to approve through this conversation: no answer you give can approve."""


def _assessment_view(assessment: Assessment) -> Dict[str, Any]:
    view: Dict[str, Any] = {
        "strategy": assessment.strategy,
        "automated": assessment.automated,
        "risk": assessment.risk,
        "decision_type": assessment.decision_type,
        "reasons": list(assessment.reasons),
        "pending_action_id": assessment.pending_action_id or "",
        "approval_id": assessment.approval_id,
        "ticket_id": assessment.ticket_id,
    }
    if assessment.automated:
        view["next"] = "Run the action now."
    elif assessment.escalated:
        view["next"] = ("A person decides at the " + ("approval desk" if assessment.approval_id else "operator desk")
                        + ". Wait with wait_for_decision; run only a RELEASED action.")
    return view


def _settled_view(pending_action_id: str, settled: Optional[Settled]) -> Dict[str, Any]:
    if settled is None:
        return {"pending_action_id": pending_action_id, "status": "PENDING", "released": False,
                "next": "Not decided yet: people decide out of band. Ask again later."}
    view: Dict[str, Any] = {"pending_action_id": pending_action_id, "status": settled.status,
                            "released": settled.released, "comment": settled.comment}
    if settled.decision is not None:
        view["action"] = settled.decision.action
    if settled.released and settled.decision is not None:
        view["release_token"] = settled.decision.release_token
        view["next"] = ("Run exactly `action` once, then call report_execution with release_token.")
    elif settled.status == "EXECUTED":
        view["result"] = settled.recorded_result
        view["next"] = "Already executed: do not run it again."
    else:
        view["next"] = "Do not run it."
    return view


def build_server(client: Client, *, max_wait: float = 60.0, name: str = "handoff") -> MCPServer:
    """The MCP server over one Handoff client (its identity is the server's)."""
    if not (math.isfinite(max_wait) and max_wait >= 0):
        raise ValueError(f"max_wait must be a finite number of seconds >= 0, not {max_wait!r}")
    gate = Gate(client)
    server = MCPServer(name, instructions=INSTRUCTIONS, version="0.1.0")

    async def call(function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except HandoffError as error:
            raise ToolError(f"{error.code.name}: {error.message}") from error
        except ValueError as error:
            raise ToolError(str(error)) from error

    @server.tool()
    async def assess_action(session_id: str, tool_name: str, parameters: Optional[Dict[str, Any]] = None,
                            description: str = "", amount: Optional[str] = None, currency: Optional[str] = None,
                            confidence: Optional[float] = None, decision_type: Optional[str] = None,
                            idempotency_key: Optional[str] = None) -> Dict[str, Any]:
        """Assess an action before running it (Handoff's policy). Returns the strategy and, unless it is
        AUTOMATE, the pending action a person settles out of band: for a confirmation the question to show
        the user (their answer reaches Handoff through the application), for a code where it was sent."""
        action: Dict[str, Any] = {"tool_name": tool_name, "parameters": parameters or {}}
        for key, value in (("description", description), ("amount", amount), ("currency", currency),
                           ("confidence", confidence), ("decision_type", decision_type)):
            if value not in (None, ""):
                action[key] = value
        await call(gate.ensure_session, session_id)
        assessment = await call(client.assess, session_id, action, idempotency_key=idempotency_key)
        view = _assessment_view(assessment)
        if assessment.needs_confirmation or assessment.needs_multi_factor:
            progress = await call(gate.ask_user, assessment, session_id)
            view["user_prompt"] = progress.prompt
            view["next"] = ("Show user_prompt to the user. Their answer or code goes to Handoff through the "
                            "application, not through this server. Then wait_for_decision.")
        return view

    @server.tool()
    async def request_approval(session_id: str, reason: str, pending_action_id: Optional[str] = None,
                               tool_name: Optional[str] = None, parameters: Optional[Dict[str, Any]] = None,
                               amount: Optional[str] = None, currency: Optional[str] = None) -> Dict[str, Any]:
        """Ask approvers (the policy's chain) to decide a pending action, or a new action. Approvers decide at
        their desk; wait_for_decision tells the outcome."""
        action = None
        if pending_action_id is None:
            if not tool_name:
                raise ToolError("give pending_action_id, or tool_name (and parameters) for a new action")
            action = {"tool_name": tool_name, "parameters": parameters or {}}
            if amount is not None:
                action["amount"] = amount
                action["currency"] = currency or "USD"
        response = await call(client.request_approval, session_id, reason=reason, pending_action=pending_action_id,
                              action=action, amount=amount, currency=currency)
        return {"approval_id": response.approval.id, "pending_action_id": response.pending_action.id,
                "status": "PENDING", "next": "Approvers decide at their desk; wait_for_decision."}

    @server.tool()
    async def get_decision(pending_action_id: str, session_id: str = "") -> Dict[str, Any]:
        """Where a pending action stands now: PENDING, or its outcome (RELEASED with the release token and the
        exact action to run, DECLINED, REJECTED, EXPIRED, CANCELLED, EXECUTED; with session_id an executed
        action's recorded result). An id Handoff does not know is an error (NOT_FOUND)."""
        return _settled_view(pending_action_id, await call(gate.peek, session_id, pending_action_id))

    @server.tool()
    async def wait_for_decision(pending_action_id: str, timeout_seconds: float = 30.0,
                                session_id: str = "") -> Dict[str, Any]:
        """Wait until people settle a pending action, at most timeout_seconds (0 or more, capped by the server's
        --max-wait); PENDING when nobody decided in time."""
        try:
            requested = float(timeout_seconds)
        except (TypeError, ValueError):
            requested = math.nan
        if math.isnan(requested) or requested < 0:
            raise ToolError(f"timeout_seconds must be a number of seconds from 0 to {max_wait:g}, "
                            f"not {timeout_seconds!r}")
        wait = min(requested, max_wait)
        return _settled_view(pending_action_id, await call(gate.peek, session_id, pending_action_id, wait))

    @server.tool()
    async def escalate(session_id: str, reason: str, pending_action_id: Optional[str] = None) -> Dict[str, Any]:
        """Hand the conversation to the operator desk (with the pending action an operator should decide)."""
        response = await call(client.escalate, session_id, reason, pending_action_id)
        return {"ticket_id": response.ticket.id, "created": response.created,
                "next": "An operator takes over; read their replies with get_context."}

    @server.tool()
    async def report_execution(release_token: str, result: Any = None, error: Optional[str] = None) -> Dict[str, Any]:
        """Record that a RELEASED action ran (once: a repeat with the same token is a duplicate)."""
        response = await call(client.report_execution, release_token, result, error=error)
        return {"recorded": response.recorded, "duplicate": response.duplicate,
                "pending_action_id": response.pending_action_id}

    @server.tool()
    async def get_context(session_id: str, turn_limit: int = 20) -> Dict[str, Any]:
        """The session's state, recent turns (operators' replies included) and memories."""
        context = await call(client.sessions.get_context, session_id, turn_limit)
        return {"state": context.state, "total_turns": context.total_turns,
                "turns": [{"input": t.input, "output": t.output} for t in context.turns],
                "memories": [m.content for m in context.memories]}

    return server


def _client(args: argparse.Namespace) -> Client:
    certs = args.certs
    ca = args.ca or (os.path.join(certs, "ca.pem") if certs else None)
    if args.token:
        return Client(args.server, ca_file=ca, bearer_token=args.token)
    cert = args.cert or (os.path.join(certs, f"{args.role}.pem") if certs else None)
    key = args.key or (os.path.join(certs, f"{args.role}.key") if certs else None)
    return Client(args.server, ca_file=ca, cert_file=cert, key_file=key)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="handoff-mcp", description=(
        "An MCP server exposing Handoff to any MCP client. It acts with the identity it is started with "
        "(an agent's certificate or token); people decide out of band, never through the MCP client."))
    parser.add_argument("--server", default=os.environ.get("HANDOFF_SERVER", "127.0.0.1:7443"),
                        help="Handoff server HOST:PORT (env HANDOFF_SERVER)")
    parser.add_argument("--certs", default=os.environ.get("HANDOFF_CERTS", ".handoff/certs"),
                        help="directory made by `handoff certs init` (env HANDOFF_CERTS)")
    parser.add_argument("--role", default="agent", help="which certificate of --certs (default agent)")
    parser.add_argument("--ca", help="CA bundle of the server certificate (default <certs>/ca.pem)")
    parser.add_argument("--cert", help="client certificate (default <certs>/<role>.pem)")
    parser.add_argument("--key", help="client key (default <certs>/<role>.key)")
    parser.add_argument("--token", default=os.environ.get("HANDOFF_TOKEN"),
                        help="a bearer token instead of a certificate (env HANDOFF_TOKEN)")
    parser.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="streamable-http: address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="streamable-http: port (default 8765)")
    parser.add_argument("--max-wait", type=float, default=60.0,
                        help="the longest wait_for_decision may block, in seconds (default 60)")
    args = parser.parse_args(argv)
    client = _client(args)
    try:
        server = build_server(client, max_wait=args.max_wait)
        if args.transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=args.host, port=args.port)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
