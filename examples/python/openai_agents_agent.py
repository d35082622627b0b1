#!/usr/bin/env python3
"""The seed's five stories as an OpenAI Agents SDK agent with HandoffApprovals.

A real ``Runner`` run whose model is the SDK's own ``ScriptedModel`` (no
network, no API key): each user message makes the tool call a model would.
Handoff decides every call through ``needs_approval``; an interrupted run is
saved with the Handoff session, the person Handoff named acts (the user's
"Yes" and code go to Handoff, the approver and the operator use the
`handoff` CLI), and the run is loaded back, decided from Handoff and resumed,
as another process would after a restart.

    python3 examples/python/openai_agents_agent.py [--bin-dir .build/debug]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Dict

sys.path.insert(0, str(Path(__file__).resolve().parent))

import framework_stories as stories  # noqa: E402
from framework_stories import Playground, say  # noqa: E402
from agents import Agent, Runner, function_tool, set_tracing_disabled  # noqa: E402
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call  # noqa: E402

from handoff.integrations.openai_agents import HandoffApprovals  # noqa: E402

set_tracing_disabled(True)  # nothing leaves this machine


def scripted(call: ModelCall) -> Any:
    """NOT A MODEL: the user's message picks the story's tool call; a tool's
    output is repeated to the user."""
    items = call.input if isinstance(call.input, list) else [{"role": "user", "content": call.input}]
    last: Dict[str, Any] = items[-1] if items else {}
    if last.get("type") == "function_call_output":
        return [assistant_message(str(last.get("output")))]
    story = next(s for s in stories.STORIES if s["say"] == last.get("content"))
    turn = sum(1 for i in items if isinstance(i, dict) and i.get("role") == "user")
    return [function_call(story["tool"], story["args"], call_id=f"call-{turn}")]


def make_agent(approvals: HandoffApprovals) -> Agent[Any]:
    tools = [function_tool(f, description_override=stories.DESCRIPTIONS[name]) for name, f in stories.TOOLS.items()]
    return Agent(name="support", instructions="Help the customer.",
                 model=ScriptedModel([ModelStep.respond(scripted) for _ in range(40)]),
                 tools=approvals.wrap_all(tools))


async def play(playground: Playground) -> None:
    client = playground.client()
    session_id = "openai-agents-seed"
    approvals = HandoffApprovals(client, session_id=session_id)
    agent = make_agent(approvals)
    history: Any = []
    for story in stories.STORIES:
        say("user", story["say"])
        result = await Runner.run(agent, history + [{"role": "user", "content": story["say"]}])
        while result.interruptions:
            approvals.save(result.to_state())  # kept with the Handoff session
            say("system", f"run paused on {result.interruptions[0].tool_name}; saved with session {session_id}")
            shown = await approvals.ask_user(result.to_state())
            (pending, assessment), = [(p, approvals.assess(i.tool_name, json.loads(i.arguments or "{}"), i.call_id))
                                      for p, i in (await approvals.pending(result.to_state())).items()]
            answers: Dict[str, str] = {}
            if assessment.needs_confirmation:
                say("agent", shown[pending])
                say("user", "Yes")
                answers[pending] = "Yes"
            elif assessment.needs_multi_factor:
                answers[pending] = playground.code_on_the_users_phone(pending)
                say("user", answers[pending])
            elif assessment.approval_id:
                playground.approver_approves(assessment.approval_id)
            else:
                playground.operator_takes_over(assessment.ticket_id)
            # As a process started after a restart would: a fresh agent, the run loaded from the session.
            fresh = HandoffApprovals(client, session_id=session_id)
            resumed_agent = make_agent(fresh)
            state = await fresh.load(resumed_agent)
            assert state is not None
            decided = await fresh.decide(state, answers=answers, wait=5)
            say("system", f"Handoff decided: {decided}")
            result = await Runner.run(resumed_agent, state)
        fresh_clear = HandoffApprovals(client, session_id=session_id)
        fresh_clear.clear()
        history = result.to_input_list()
        say("agent", str(result.final_output))
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", help="directory with handoffd and handoff (default $HANDOFF_BIN_DIR or .build/debug)")
    args = parser.parse_args()
    with Playground(args.bin_dir) as playground:
        asyncio.run(play(playground))
    return stories.check_runs(stories.EXPECTED_RUNS)


if __name__ == "__main__":
    sys.exit(main())
