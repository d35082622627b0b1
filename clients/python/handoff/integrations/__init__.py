"""Handoff inside agent frameworks.

One module per framework, each importing its framework only when it is
imported itself (``import handoff`` never needs them):

- :mod:`handoff.integrations.langchain`: ``HandoffMiddleware``, an
  ``AgentMiddleware`` for LangChain 1.x agents (``pip install 'handoff[langchain]'``);
- :mod:`handoff.integrations.openai_agents`: ``HandoffApprovals``, a
  ``needs_approval`` policy and tool wrapper for the OpenAI Agents SDK
  (``pip install 'handoff[openai-agents]'``);
- :mod:`handoff.integrations.mcp`: the ``handoff-mcp`` MCP server
  (``pip install 'handoff[mcp]'``).

What every adapter guarantees:

- **Handoff decides.** A tool call is assessed (``AssessAction``) before it
  runs; unless the policy automates it, it runs only once Handoff has
  RELEASED its pending action, whatever the framework's own resume or
  approval value says.
- **Bound to the exact call.** The assessment's idempotency key is derived
  from the call's identity (thread, model message and tool call id), so a
  replay finds the same pending action, and different arguments under the
  same call are refused (FAILED_PRECONDITION). The tool runs with the action
  Handoff released: as proposed, or as an approver edited it.
- **Runs once.** The result is reported with ``ReportExecution`` under the
  release token; a replayed step finds the action EXECUTED and returns the
  recorded result without running the tool again. Before running, a worker
  claims the action in the session state (``handoff_executions``, a
  compare-and-set on the session's version), so of two workers in any
  processes exactly one runs it; the other waits for the report and returns
  the recorded result (or raises :class:`ClaimedElsewhere`). Within one
  process, attempts are also serialised by a lock per action.
- **Fails closed.** Anything unexpected (an unknown id, a resume for another
  action, a claim of approval Handoff did not make, an action the agent
  withdrew, an unreachable server) raises :class:`HandoffIntegrationError`
  or leaves the tool unrun.

The one window no client can close: a process that dies after the tool
returned and before ``ReportExecution`` was recorded leaves the action
RELEASED with its claim; once the claim is older than
``Gate.stale_claim_after`` (600 s) another worker may take it over and run
the tool again. Keep tools idempotent where that matters (the release token
is a good idempotency key for the tool's own service: :func:`current_release`).
"""
from handoff.integrations._common import (ClaimedElsewhere, HandoffIntegrationError, NotReleased, ResumeRefused,
                                          UnknownPendingAction, Withdrawn, current_release)

__all__ = ["ClaimedElsewhere", "HandoffIntegrationError", "NotReleased", "ResumeRefused", "UnknownPendingAction",
           "Withdrawn", "current_release"]
