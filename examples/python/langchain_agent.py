#!/usr/bin/env python3
"""The seed's five stories as a LangChain 1.x agent with HandoffMiddleware.

A real ``create_agent`` graph (LangGraph checkpointer, interrupts) whose chat
model is scripted (no network, no API key): each user message makes the tool
call a model would. Handoff decides every call; when the graph pauses, the
person Handoff named acts (the user answers or types the code, carried in the
resume value; the approver and the operator use the `handoff` CLI), and the
graph is resumed by pending action id.

    python3 examples/python/langchain_agent.py [--bin-dir .build/debug]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, List

sys.path.insert(0, str(Path(__file__).resolve().parent))

import framework_stories as stories  # noqa: E402
from framework_stories import Playground, say  # noqa: E402
from langchain.agents import create_agent  # noqa: E402
from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.tools import StructuredTool  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402

from handoff.integrations.langchain import HandoffMiddleware, resume  # noqa: E402


class ScriptedChatModel(BaseChatModel):
    """NOT A MODEL: the user's message picks the story's tool call; after the
    tool's result it repeats it to the user."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedChatModel":
        return self

    def _generate(self, messages: List[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, HumanMessage):
            story = next(s for s in stories.STORIES if s["say"] == last.content)
            turn = sum(1 for m in messages if isinstance(m, HumanMessage))
            message = AIMessage(content="", tool_calls=[{"name": story["tool"], "args": story["args"],
                                                         "id": f"call-{turn}"}])
        else:
            message = AIMessage(content=str(last.content))
        return ChatResult(generations=[ChatGeneration(message=message)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", help="directory with handoffd and handoff (default $HANDOFF_BIN_DIR or .build/debug)")
    args = parser.parse_args()
    with Playground(args.bin_dir) as playground:
        client = playground.client()
        tools = [StructuredTool.from_function(f, description=stories.DESCRIPTIONS[name])
                 for name, f in stories.TOOLS.items()]
        agent = create_agent(ScriptedChatModel(), tools,
                             middleware=[HandoffMiddleware(client, session_id="langchain-seed")],
                             checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "langchain-seed"}}
        for story in stories.STORIES:
            say("user", story["say"])
            result = agent.invoke({"messages": [{"role": "user", "content": story["say"]}]}, config)
            while result.get("__interrupt__"):
                request = result["__interrupt__"][0].value
                info = request["handoff"]
                pending = info["pending_action_id"]
                say("system", f"paused: {info['strategy']} ({info['decision_type'].lower()}), pending action {pending}")
                if info["strategy"] in ("CONFIRM", "EXPLICIT_CONFIRM"):
                    say("agent", info["prompt"])
                    say("user", "Yes")
                    answer: Any = "Yes"  # the user's answer travels in the resume value
                elif info["strategy"] == "MULTI_FACTOR":
                    answer = playground.code_on_the_users_phone(pending)
                    say("user", answer)
                elif info["approval_id"]:
                    playground.approver_approves(info["approval_id"])
                    answer = None  # read the decision from Handoff
                else:
                    playground.operator_takes_over(info["ticket_id"])
                    answer = None
                result = agent.invoke(resume(result["__interrupt__"], {pending: answer}), config)
            tool_message = next(m for m in reversed(result["messages"]) if isinstance(m, ToolMessage))
            say("system", f"{story['tool']}: {'NOT RUN' if tool_message.status == 'error' else 'ran'}")
            say("agent", str(result["messages"][-1].content))
        client.close()
    return stories.check_runs(stories.EXPECTED_RUNS)


if __name__ == "__main__":
    sys.exit(main())
