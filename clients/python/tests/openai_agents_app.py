"""An OpenAI Agents SDK agent for the adapter's tests: a scripted model (the
SDK's own ``ScriptedModel``: the user's message picks the tool calls, tool
results end the turn) and tools that append each run to a file, so side
effects are counted across processes.

Run as a script it is the *second process* of the restart test: it loads the
run saved with the Handoff session, applies Handoff's decisions and runs the
agent to its end::

    python3 openai_agents_app.py --server HOST:PORT --certs DIR --session ID --effects FILE
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import Agent, FunctionTool, Runner, function_tool, set_tracing_disabled  # noqa: E402
from agents.items import ModelResponse  # noqa: E402
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call  # noqa: E402

import handoff  # noqa: E402
from handoff.integrations.openai_agents import HandoffApprovals  # noqa: E402

set_tracing_disabled(True)

STORY_CALLS: Dict[str, List[Dict[str, Any]]] = {
    "weather": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
    "book": [{"name": "book_flight", "arguments": {"to": "NYC", "date": "2026-12-01"}}],
    "refund": [{"name": "issue_refund", "arguments": {"order_id": "A-1042", "amount": 250}}],
    "two refunds": [{"name": "issue_refund", "arguments": {"order_id": "A-1", "amount": 150}},
                    {"name": "issue_refund", "arguments": {"order_id": "A-2", "amount": 300}}],
    "delete": [{"name": "delete_account", "arguments": {"account_id": "u-7"}}],
    "medication": [{"name": "answer_question", "arguments": {"question": "Can I double my blood pressure medication?"}}],
}


def _texts(items: Any) -> List[Dict[str, Any]]:
    return [item for item in (items if isinstance(items, list) else [{"role": "user", "content": items}])
            if isinstance(item, dict)]


def respond(call: ModelCall) -> Any:
    """The scripted model: tool outputs end the turn; a user message picks calls."""
    items = _texts(call.input)
    last = items[-1] if items else {}
    if last.get("type") == "function_call_output":
        outputs = [str(i.get("output")) for i in items if i.get("type") == "function_call_output"]
        return [assistant_message("results: " + " | ".join(outputs))]
    text = str(last.get("content", ""))
    turn = sum(1 for i in items if i.get("role") == "user")
    return [function_call(c["name"], c["arguments"], call_id=f"call-{text.replace(' ', '_')}-{turn}-{n}")
            for n, c in enumerate(STORY_CALLS[text])]


def scripted_model() -> ScriptedModel:
    # Enough steps for any test: each model call answers from what it is given.
    return ScriptedModel([ModelStep.respond(respond) for _ in range(50)])


def make_tools(effects: Path) -> List[FunctionTool]:
    def record(tool: str, **args: Any) -> None:
        with effects.open("a") as out:
            out.write(json.dumps({"tool": tool, "args": args}) + "\n")

    @function_tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        record("get_weather", city=city)
        return f"sunny in {city}"

    @function_tool
    def book_flight(to: str, date: str) -> str:
        """Book a flight."""
        record("book_flight", to=to, date=date)
        return f"booked BK-4471 to {to}"

    @function_tool
    def issue_refund(order_id: str, amount: float) -> str:
        """Refund an order."""
        record("issue_refund", order_id=order_id, amount=amount)
        return f"refunded {amount:g} on {order_id}"

    @function_tool
    def delete_account(account_id: str) -> str:
        """Delete a user's account and all its data."""
        record("delete_account", account_id=account_id)
        return f"deleted {account_id}"

    @function_tool
    def answer_question(question: str) -> str:
        """Answer a question about medication dosage."""
        record("answer_question", question=question)
        return "Doubling a dose is sometimes fine."

    return [get_weather, book_flight, issue_refund, delete_account, answer_question]


def effects_of(effects: Path) -> List[Dict[str, Any]]:
    if not effects.exists():
        return []
    return [json.loads(line) for line in effects.read_text().splitlines() if line.strip()]


def make_agent(approvals: HandoffApprovals, effects: Path) -> Agent[Any]:
    return Agent(name="support", instructions="Help the customer.", model=scripted_model(),
                 tools=approvals.wrap_all(make_tools(effects)))


async def resume_saved(client: handoff.Client, session_id: str, effects: Path) -> str:
    approvals = HandoffApprovals(client, session_id=session_id)
    agent = make_agent(approvals, effects)
    state = await approvals.load(agent)
    if state is None:
        raise SystemExit("no saved run in the session")
    decided = await approvals.decide(state)
    result = await Runner.run(agent, state)
    if result.interruptions:
        approvals.save(result.to_state())
    else:
        approvals.clear()
    return json.dumps({"decided": decided, "final_output": result.final_output,
                       "interruptions": len(result.interruptions)})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--certs", required=True)
    parser.add_argument("--session", required=True)
    parser.add_argument("--effects", required=True)
    args = parser.parse_args()
    with handoff.Client.from_certs(args.server, args.certs, role="agent", default_timeout=10) as client:
        print(asyncio.run(resume_saved(client, args.session, Path(args.effects))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
