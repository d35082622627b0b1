"""HandoffMiddleware in a real LangChain 1.x agent (create_agent, LangGraph
checkpointer, interrupts) against a real handoffd, with a scripted chat model
that emits tool calls; approvers and operators act through the `handoff` CLI.
Every tool counts its side effects."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

from conftest import ServerProcess
from integration_support import DelayProxy, People, SideEffects, executed_events, new_session_id, require

require("langchain", "langgraph", "langchain_core")

import handoff  # noqa: E402
from langchain.agents import create_agent  # noqa: E402
from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.tools import StructuredTool  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.types import Command  # noqa: E402

from handoff.integrations import NotReleased, ResumeRefused, UnknownPendingAction  # noqa: E402
from handoff.integrations._common import CLAIMS_KEY, Gate, Settled, Withdrawn  # noqa: E402
from handoff.integrations.langchain import HandoffMiddleware, pending_action_ids, resume  # noqa: E402


class ScriptedChatModel(BaseChatModel):
    """A chat model without a model: the user's message picks the tool calls;
    after tool results it answers with them. Tool call ids are unique per turn."""

    calls_for: Any  # Callable[[str], List[dict]]

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedChatModel":
        return self

    def _generate(self, messages: List[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, HumanMessage):
            turn = sum(1 for m in messages if isinstance(m, HumanMessage))
            calls = [{**call, "id": f"call-{turn}-{i}"} for i, call in enumerate(self.calls_for(str(last.content)))]
            message = AIMessage(content="", tool_calls=calls)
        else:
            results = [str(m.content) for m in messages if isinstance(m, ToolMessage)]
            message = AIMessage(content="results: " + " | ".join(results))
        return ChatResult(generations=[ChatGeneration(message=message)])


STORY_CALLS: Dict[str, List[Dict[str, Any]]] = {
    "weather": [{"name": "get_weather", "args": {"city": "Paris"}}],
    "book": [{"name": "book_flight", "args": {"to": "NYC", "date": "2026-12-01"}}],
    "refund": [{"name": "issue_refund", "args": {"order_id": "A-1042", "amount": 250}}],
    "two refunds": [{"name": "issue_refund", "args": {"order_id": "A-1", "amount": 150}},
                    {"name": "issue_refund", "args": {"order_id": "A-2", "amount": 300}}],
    "delete": [{"name": "delete_account", "args": {"account_id": "u-7"}}],
    "medication": [{"name": "answer_question",
                    "args": {"question": "Can I double my blood pressure medication?",
                             "draft": "Doubling a dose is sometimes fine."}}],
}


def make_tools(effects: SideEffects) -> List[StructuredTool]:
    def get_weather(city: str) -> str:
        effects.record("get_weather", city=city)
        return f"sunny in {city}"

    def book_flight(to: str, date: str) -> str:
        effects.record("book_flight", to=to, date=date)
        return f"booked BK-4471 to {to}"

    def issue_refund(order_id: str, amount: float) -> str:
        effects.record("issue_refund", order_id=order_id, amount=amount)
        return f"refunded {amount:g} on {order_id}"

    def delete_account(account_id: str) -> str:
        effects.record("delete_account", account_id=account_id)
        return f"deleted {account_id}"

    def answer_question(question: str, draft: str) -> str:
        effects.record("answer_question", question=question)
        return draft

    return [
        StructuredTool.from_function(get_weather, description="Get the current weather for a city."),
        StructuredTool.from_function(book_flight, description="Book a flight."),
        StructuredTool.from_function(issue_refund, description="Refund an order."),
        StructuredTool.from_function(delete_account, description="Delete a user's account and all its data."),
        StructuredTool.from_function(answer_question, description="Answer a question about medication dosage."),
    ]


class Harness:
    def __init__(self, agent_client: handoff.Client, people: People, session_id: Optional[str] = None) -> None:
        self.client = agent_client
        self.people = people
        self.effects = SideEffects()
        self.session_id = session_id or new_session_id("lc")
        self.middleware = HandoffMiddleware(agent_client, session_id=self.session_id, resume_wait=1.0)
        self.checkpointer = InMemorySaver()
        self.graph = create_agent(ScriptedChatModel(calls_for=lambda text: STORY_CALLS[text]),
                                  make_tools(self.effects), middleware=[self.middleware],
                                  checkpointer=self.checkpointer)
        self.config: Dict[str, Any] = {"configurable": {"thread_id": self.session_id}}

    def say(self, text: str) -> Dict[str, Any]:
        return self.graph.invoke({"messages": [{"role": "user", "content": text}]}, self.config)

    def interrupts(self) -> List[Any]:
        return list(self.graph.get_state(self.config).interrupts)

    def resume(self, answers: Dict[str, Any]) -> Dict[str, Any]:
        return self.graph.invoke(resume(self.interrupts(), answers), self.config)

    def only_interrupt(self) -> Dict[str, Any]:
        interrupts = self.interrupts()
        assert len(interrupts) == 1, interrupts
        return interrupts[0].value


@pytest.fixture
def people(binaries: Path, server: ServerProcess, certs: Path) -> People:
    return People(binaries, server, certs)


def tool_messages(result: Dict[str, Any]) -> List[ToolMessage]:
    return [m for m in result["messages"] if isinstance(m, ToolMessage)]


def test_automated_call_runs_at_once_without_pausing(agent: handoff.Client, people: People) -> None:
    h = Harness(agent, people)
    result = h.say("weather")
    assert "__interrupt__" not in result and not h.interrupts()
    assert h.effects.args("get_weather") == [{"city": "Paris"}]
    assert tool_messages(result)[-1].content == "sunny in Paris"
    assert result["messages"][-1].content == "results: sunny in Paris"


def test_refund_pauses_with_the_hitl_request_and_runs_as_the_approver_edited_it(agent: handoff.Client,
                                                                               people: People) -> None:
    h = Harness(agent, people)
    result = h.say("refund")
    assert h.effects.count("issue_refund") == 0
    value = h.only_interrupt()
    assert result["__interrupt__"][0].value == value
    # LangChain's human-in-the-loop shape (Agent Inbox / Agent Chat UI), with Handoff's ids.
    assert value["action_requests"][0]["name"] == "issue_refund"
    assert value["action_requests"][0]["args"] == {"order_id": "A-1042", "amount": 250}
    assert value["review_configs"] == [{"action_name": "issue_refund", "allowed_decisions": ["approve", "reject"]}]
    info = value["handoff"]
    assert info["strategy"] == "ESCALATE" and info["approval_id"] and info["pending_action_id"].startswith("pa-")
    assert value["action_requests"][0]["pending_action_id"] == info["pending_action_id"]

    # Resuming before anyone decided only pauses again.
    h.resume({info["pending_action_id"]: None})
    assert h.effects.count("issue_refund") == 0 and len(h.interrupts()) == 1

    people.approve(info["approval_id"], amount="200", comment="one item kept")
    result = h.resume({info["pending_action_id"]: {"type": "approve"}})
    assert h.effects.args("issue_refund") == [{"order_id": "A-1042", "amount": 200}]
    message = tool_messages(result)[-1]
    assert "refunded 200 on A-1042" in message.content and "a person changed this call" in message.content
    executed = executed_events(agent, h.session_id)
    assert [(e["pending_action_id"], e["status"]) for e in executed] == [(info["pending_action_id"], "executed")]
    assert "refunded 200" in executed[0]["result"]["content"]


def test_rejected_refund_does_not_run(agent: handoff.Client, people: People) -> None:
    h = Harness(agent, people)
    h.say("refund")
    info = h.only_interrupt()["handoff"]
    people.reject(info["approval_id"], comment="order already refunded")
    with pytest.raises(NotReleased, match="Handoff rejected pending action"):
        h.resume({info["pending_action_id"]: {"type": "approve"}})  # a claim against Handoff's decision
    assert h.effects.count("issue_refund") == 0
    result = h.resume({info["pending_action_id"]: None})  # the agent goes on, told it was rejected
    assert h.effects.count("issue_refund") == 0
    message = tool_messages(result)[-1]
    assert message.status == "error" and "rejected" in message.content and "order already refunded" in message.content
    assert executed_events(agent, h.session_id) == []


def test_a_resume_claiming_approval_without_handoffs_release_is_refused(agent: handoff.Client,
                                                                       people: People) -> None:
    h = Harness(agent, people)
    h.say("refund")
    info = h.only_interrupt()["handoff"]
    pending = info["pending_action_id"]
    for lie in ({"type": "approve"}, {"decisions": [{"type": "approve"}]},
                {"type": "edit", "edited_action": {"name": "issue_refund", "args": {"order_id": "A-1042", "amount": 5}}}):
        with pytest.raises(NotReleased, match="has not released pending action"):
            h.resume({pending: lie})
        assert h.effects.count("issue_refund") == 0
    # Answering an approval as if it were the user's confirmation is no way round it.
    with pytest.raises(ResumeRefused, match="approval desk"):
        h.resume({pending: "yes, approved"})
    assert h.effects.count("issue_refund") == 0 and len(h.interrupts()) == 1
    assert people.cli("approver", "approvals", "show", info["approval_id"], "--json")["status"] == "pending"

    # An edit that is not what Handoff released is refused even after the release.
    people.approve(info["approval_id"])
    with pytest.raises(ResumeRefused, match="edits are made by the approver"):
        h.resume({pending: {"type": "edit", "edited_action": {"name": "issue_refund",
                                                              "args": {"order_id": "A-1042", "amount": 9999}}}})
    assert h.effects.count("issue_refund") == 0
    h.resume({pending: {"type": "approve"}})
    assert h.effects.args("issue_refund") == [{"order_id": "A-1042", "amount": 250}]


def test_a_replayed_step_and_a_second_resume_never_run_the_tool_twice(agent: handoff.Client,
                                                                     people: People) -> None:
    h = Harness(agent, people)
    h.say("refund")
    info = h.only_interrupt()["handoff"]
    people.approve(info["approval_id"])
    first = h.resume({info["pending_action_id"]: None})
    assert h.effects.count("issue_refund") == 1

    # Time travel: replay from the checkpoint where the tool step was about to run.
    before_tools = next(s for s in h.graph.get_state_history(h.config) if s.next == ("tools",))
    replayed = h.graph.invoke(None, before_tools.config)
    assert h.effects.count("issue_refund") == 1
    assert "already executed" in tool_messages(replayed)[-1].content
    assert "refunded 250" in tool_messages(replayed)[-1].content

    # The same step run again as after a crash between the report and the checkpoint:
    # a new graph over the same checkpoints, resumed once more.
    again = Harness(agent, people, session_id=h.session_id)
    again.checkpointer = h.checkpointer
    again.graph = create_agent(ScriptedChatModel(calls_for=lambda text: STORY_CALLS[text]), make_tools(h.effects),
                               middleware=[HandoffMiddleware(agent, session_id=h.session_id)],
                               checkpointer=h.checkpointer)
    again.graph.invoke(None, before_tools.config)
    assert h.effects.count("issue_refund") == 1
    assert len(executed_events(agent, h.session_id)) == 1
    assert tool_messages(first)[-1].content.startswith("refunded 250")


@pytest.mark.parametrize("order", ["first-then-second", "second-then-first"])
def test_two_parallel_calls_are_resumed_by_pending_action_id_in_either_order(
        agent: handoff.Client, people: People, order: str) -> None:
    h = Harness(agent, people)
    h.say("two refunds")
    interrupts = h.interrupts()
    assert len(interrupts) == 2
    ids = pending_action_ids(interrupts)
    by_order = {interrupt.value["action_requests"][0]["args"]["order_id"]: interrupt.value["handoff"]
                for interrupt in interrupts}
    assert set(ids) == {by_order["A-1"]["pending_action_id"], by_order["A-2"]["pending_action_id"]}

    with pytest.raises(UnknownPendingAction, match="pa-not-here"):
        resume(interrupts, {"pa-not-here": None})
    # A value for one action delivered to the other's interrupt is refused.
    one, other = by_order["A-1"]["pending_action_id"], by_order["A-2"]["pending_action_id"]
    crossed = Command(resume={ids[one]: {"type": "approve", "pending_action_id": other}})
    with pytest.raises(ResumeRefused, match="reached the tool call waiting on"):
        h.graph.invoke(crossed, h.config)
    # The refused value stays that step's error until the step is resumed with its own value.
    h.resume({one: None})
    assert len(h.interrupts()) == 2 and h.effects.count("issue_refund") == 0

    sequence = ["A-1", "A-2"] if order == "first-then-second" else ["A-2", "A-1"]
    amounts = {"A-1": "150", "A-2": "300"}
    first, second = sequence
    people.approve(by_order[first]["approval_id"], amount=str(int(amounts[first]) - 50))
    h.resume({by_order[first]["pending_action_id"]: None})
    assert [a["order_id"] for a in h.effects.args("issue_refund")] == [first]
    assert [i.value["handoff"]["pending_action_id"] for i in h.interrupts()] == [by_order[second]["pending_action_id"]]

    people.reject(by_order[second]["approval_id"])
    result = h.resume({by_order[second]["pending_action_id"]: None})
    assert h.effects.args("issue_refund") == [{"order_id": first, "amount": int(amounts[first]) - 50}]
    assert not h.interrupts()
    contents = {m.tool_call_id: m for m in tool_messages(result)}
    assert len(contents) == 2
    assert sorted(m.status for m in contents.values()) == ["error", "success"]


def test_the_users_confirmation_travels_in_the_resume_value(agent: handoff.Client, people: People) -> None:
    h = Harness(agent, people)
    h.say("book")
    value = h.only_interrupt()
    info = value["handoff"]
    assert info["strategy"] == "EXPLICIT_CONFIRM" and "Please confirm" in info["prompt"]
    assert value["review_configs"][0]["allowed_decisions"] == ["respond", "reject"]
    h.resume({info["pending_action_id"]: "hmm, maybe"})  # ambiguous: asked again
    assert h.effects.count("book_flight") == 0
    assert "not a clear yes or no" in h.only_interrupt()["action_requests"][0]["description"]
    h.resume({info["pending_action_id"]: "Yes"})
    assert h.effects.args("book_flight") == [{"to": "NYC", "date": "2026-12-01"}]
    # Each answer reached Handoff once, although the step ran three times.
    answered = [json.loads(e.details_json)["text"]
                for e in agent.sessions.list_events(h.session_id, actions=["confirmation.answered"])]
    assert answered == ["hmm, maybe", "Yes"]


def test_a_declined_booking_does_not_run(agent: handoff.Client, people: People) -> None:
    h = Harness(agent, people)
    h.say("book")
    info = h.only_interrupt()["handoff"]
    result = h.resume({info["pending_action_id"]: {"type": "reject"}})
    assert h.effects.count("book_flight") == 0
    assert tool_messages(result)[-1].status == "error"
    assert agent.wait_for_decision(info["pending_action_id"], timeout=5).status == "DECLINED"


def test_deletion_is_released_by_the_users_code(agent: handoff.Client, people: People) -> None:
    h = Harness(agent, people)
    h.say("delete")
    info = h.only_interrupt()["handoff"]
    assert info["strategy"] == "MULTI_FACTOR"
    code = people.code_for(info["pending_action_id"])
    wrong = "000000" if code != "000000" else "111111"
    h.resume({info["pending_action_id"]: wrong})
    assert h.effects.count("delete_account") == 0 and "wrong" in h.only_interrupt()["action_requests"][0]["description"]
    h.resume({info["pending_action_id"]: code})
    assert h.effects.args("delete_account") == [{"account_id": "u-7"}]
    # One code was sent although the step ran three times.
    assert len(agent.sessions.list_events(h.session_id, actions=["mfa.started"])) == 1


def test_medical_question_goes_to_an_operator_who_rejects_the_draft(agent: handoff.Client, people: People) -> None:
    h = Harness(agent, people)
    h.say("medication")
    info = h.only_interrupt()["handoff"]
    assert info["strategy"] == "ESCALATE" and info["ticket_id"]
    people.resolve(info["ticket_id"], release=False, reply="Please call your doctor before changing a dose.",
                   note="answered by the nurse")
    result = h.resume({info["pending_action_id"]: None})
    assert h.effects.count("answer_question") == 0
    assert "rejected" in tool_messages(result)[-1].content
    turns = [t.output for t in agent.sessions.get_context(h.session_id).turns]
    assert "Please call your doctor before changing a dose." in turns


def test_async_agent_pauses_and_runs_once(agent: handoff.Client, people: People) -> None:
    h = Harness(agent, people)

    async def play() -> None:
        result = await h.graph.ainvoke({"messages": [{"role": "user", "content": "weather"}]}, h.config)
        assert "__interrupt__" not in result
        result = await h.graph.ainvoke({"messages": [{"role": "user", "content": "refund"}]}, h.config)
        info = result["__interrupt__"][0].value["handoff"]
        with pytest.raises(NotReleased):
            await h.graph.ainvoke(resume(result["__interrupt__"], {info["pending_action_id"]: {"type": "approve"}}),
                                  h.config)
        people.approve(info["approval_id"])
        await h.graph.ainvoke(resume(h.interrupts(), {info["pending_action_id"]: None}), h.config)

    asyncio.run(play())
    assert h.effects.counts == {"get_weather": 1, "issue_refund": 1}


@pytest.mark.parametrize("story", ["refund", "delete"])
def test_a_withdrawn_action_is_never_run_even_if_people_release_it_later(agent: handoff.Client, people: People,
                                                                        story: str) -> None:
    """A reject on an approval (escalated) or a code (multi-factor) cannot
    cancel the pending action in Handoff; the adapter records the withdrawal,
    so a later release runs nothing: not a replayed step, not another worker."""
    h = Harness(agent, people)
    h.say(story)
    info = h.only_interrupt()["handoff"]
    pending = info["pending_action_id"]
    result = h.resume({pending: {"type": "reject", "message": "changed my mind"}})
    tool = STORY_CALLS[story][0]["name"]
    assert h.effects.count(tool) == 0 and "user rejected" in tool_messages(result)[-1].content
    assert agent.sessions.get(h.session_id).state[CLAIMS_KEY][pending]["withdrawn"] is True

    if story == "refund":  # the approver decides later anyway
        people.approve(info["approval_id"])
    else:  # the user types the code later anyway
        people.cli("agent", "code", "verify", pending, people.code_for(pending))
    assert agent.wait_for_decision(pending, timeout=5).status == "RELEASED"

    before_tools = next(s for s in h.graph.get_state_history(h.config) if s.next == ("tools",))
    replayed = h.graph.invoke(None, before_tools.config)
    assert "user rejected" in tool_messages(replayed)[-1].content
    with pytest.raises(Withdrawn):
        Gate(agent).run_released(h.session_id, Settled(pending, "RELEASED"), lambda action: h.effects.record(tool),
                                 lambda value: (None, None))
    assert h.effects.count(tool) == 0 and executed_events(agent, h.session_id) == []


def test_an_approved_refund_runs_over_a_slow_network(server: ServerProcess, certs: Path, agent: handoff.Client,
                                                     people: People) -> None:
    """60 ms each way between the agent and handoffd: the release is seen, the tool runs once."""
    with DelayProxy(("127.0.0.1", server.port), delay=0.06) as proxy, \
            handoff.Client.from_certs(proxy.address, str(certs), role="agent", default_timeout=10) as slow:
        h = Harness(slow, people)
        h.say("refund")
        info = h.only_interrupt()["handoff"]
        people.approve(info["approval_id"])
        result = h.resume({info["pending_action_id"]: None})
        assert h.effects.args("issue_refund") == [{"order_id": "A-1042", "amount": 250}]
        assert tool_messages(result)[-1].content == "refunded 250 on A-1042" and not h.interrupts()
    assert len(executed_events(agent, h.session_id)) == 1
