"""HandoffApprovals with the real OpenAI Agents SDK (Runner, RunState,
needs_approval) and its own ScriptedModel, against a real handoffd; approvers
act through the `handoff` CLI. Tools append every run to a file, so side
effects are counted across processes too."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from conftest import ServerProcess
from integration_support import DelayProxy, People, executed_events, new_session_id, require

require("agents")

import handoff  # noqa: E402
from agents import Runner  # noqa: E402
from agents.exceptions import UserError  # noqa: E402

from handoff.integrations import UnknownPendingAction  # noqa: E402
from handoff.integrations.openai_agents import STATE_KEY, HandoffApprovals, RunTooLarge  # noqa: E402
from openai_agents_app import effects_of, make_agent  # noqa: E402

APP = Path(__file__).resolve().parent / "openai_agents_app.py"


@pytest.fixture
def people(binaries: Path, server: ServerProcess, certs: Path) -> People:
    return People(binaries, server, certs)


class Harness:
    def __init__(self, client: handoff.Client, tmp_path: Path) -> None:
        self.client = client
        self.session_id = new_session_id("oa")
        self.effects = tmp_path / f"{self.session_id}.jsonl"
        self.approvals = HandoffApprovals(client, session_id=self.session_id, resume_wait=1.0)
        self.agent = make_agent(self.approvals, self.effects)

    def run(self, what: Any) -> Any:
        return asyncio.run(Runner.run(self.agent, what))

    def ran(self, tool: str) -> List[Dict[str, Any]]:
        return [e["args"] for e in effects_of(self.effects) if e["tool"] == tool]

    def pending(self, result: Any) -> Dict[str, Any]:
        """{order_id or tool: (pending_action_id, assessment)} of a result's interruptions."""
        state = result.to_state()
        by_pending = asyncio.run(self.approvals.pending(state))
        out = {}
        for pending_id, item in by_pending.items():
            arguments = json.loads(item.arguments or "{}")
            assessment = self.approvals.assess(item.tool_name, arguments, item.call_id)
            out[arguments.get("order_id", item.tool_name)] = (pending_id, assessment)
        return out


def test_automated_call_needs_no_approval(agent: handoff.Client, tmp_path: Path) -> None:
    h = Harness(agent, tmp_path)
    result = h.run("weather")
    assert result.interruptions == []
    assert result.final_output == "results: sunny in Paris"
    assert h.ran("get_weather") == [{"city": "Paris"}]


def test_refund_interrupts_and_runs_once_as_the_approver_edited_it(agent: handoff.Client, people: People,
                                                                  tmp_path: Path) -> None:
    h = Harness(agent, tmp_path)
    result = h.run("refund")
    assert [i.tool_name for i in result.interruptions] == ["issue_refund"] and h.ran("issue_refund") == []
    (pending_id, assessment), = h.pending(result).values()
    assert assessment.strategy == "ESCALATE" and assessment.approval_id

    state = result.to_state()
    assert asyncio.run(h.approvals.decide(state)) == {pending_id: "PENDING"}
    people.approve(assessment.approval_id, amount="200")
    assert asyncio.run(h.approvals.decide(state)) == {pending_id: "RELEASED"}
    final = h.run(state)
    assert h.ran("issue_refund") == [{"order_id": "A-1042", "amount": 200}]
    assert final.final_output == "results: refunded 200 on A-1042"
    executed = executed_events(agent, h.session_id)
    assert [e["pending_action_id"] for e in executed] == [pending_id]
    assert executed[0]["result"] == {"output": "refunded 200 on A-1042"}


def test_rejected_refund_is_rejected_in_the_run(agent: handoff.Client, people: People, tmp_path: Path) -> None:
    h = Harness(agent, tmp_path)
    result = h.run("refund")
    (pending_id, assessment), = h.pending(result).values()
    people.reject(assessment.approval_id, comment="already refunded")
    state = result.to_state()
    assert asyncio.run(h.approvals.decide(state)) == {pending_id: "REJECTED"}
    final = h.run(state)
    assert h.ran("issue_refund") == []
    assert "rejected: already refunded" in final.final_output


def test_an_approval_given_to_the_sdk_without_handoffs_release_is_refused(agent: handoff.Client, people: People,
                                                                         tmp_path: Path) -> None:
    h = Harness(agent, tmp_path)
    result = h.run("refund")
    state = result.to_state()
    for item in state.get_interruptions():
        state.approve(item)  # the application approves on its own
    with pytest.raises(UserError, match="Handoff has not released pending action"):
        h.run(state)
    assert h.ran("issue_refund") == []
    # Rejected by the approver: approving in the SDK still does not run it.
    (pending_id, assessment), = h.pending(result).values()
    people.reject(assessment.approval_id)
    state = result.to_state()
    for item in state.get_interruptions():
        state.approve(item)
    with pytest.raises(UserError, match="Handoff rejected pending action"):
        h.run(state)
    assert h.ran("issue_refund") == []


def test_a_resumed_run_replayed_from_the_same_state_runs_the_tool_once(agent: handoff.Client, people: People,
                                                                      tmp_path: Path) -> None:
    h = Harness(agent, tmp_path)
    result = h.run("refund")
    h.approvals.save(result.to_state())
    (pending_id, assessment), = h.pending(result).values()
    people.approve(assessment.approval_id)
    outputs = []
    for _ in range(2):  # the same saved run resumed twice (a retry after a crash, a second worker)
        state = asyncio.run(h.approvals.load(h.agent))
        assert asyncio.run(h.approvals.decide(state)) in ({pending_id: "RELEASED"}, {pending_id: "EXECUTED"})
        outputs.append(h.run(state).final_output)
    assert h.ran("issue_refund") == [{"order_id": "A-1042", "amount": 250}]
    assert outputs[0] == "results: refunded 250 on A-1042"
    assert "already executed" in outputs[1] and "refunded 250 on A-1042" in outputs[1]
    assert len(executed_events(agent, h.session_id)) == 1


def test_the_run_is_resumed_in_a_new_process_from_the_state_kept_with_the_session(
        agent: handoff.Client, people: People, server: ServerProcess, certs: Path, tmp_path: Path) -> None:
    h = Harness(agent, tmp_path)
    result = h.run("refund")
    version = h.approvals.save(result.to_state())
    saved = agent.sessions.get(h.session_id).state[STATE_KEY]
    assert saved["interruptions"] == [{"call_id": result.interruptions[0].call_id, "tool": "issue_refund"}]
    assert version >= 2 and json.loads(saved["run_state"])
    (pending_id, assessment), = h.pending(result).values()
    people.approve(assessment.approval_id, amount="180")

    def second_process() -> Dict[str, Any]:
        ran = subprocess.run([sys.executable, str(APP), "--server", server.address, "--certs", str(certs),
                              "--session", h.session_id, "--effects", str(h.effects)],
                             capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        return json.loads(ran.stdout.strip().splitlines()[-1])

    done = second_process()
    assert done == {"decided": {pending_id: "RELEASED"}, "final_output": "results: refunded 180 on A-1042",
                    "interruptions": 0}
    assert h.ran("issue_refund") == [{"order_id": "A-1042", "amount": 180}]
    assert STATE_KEY not in agent.sessions.get(h.session_id).state  # finished: the saved run is dropped
    assert len(executed_events(agent, h.session_id)) == 1


@pytest.mark.parametrize("order", ["A-1 first", "A-2 first"])
def test_two_parallel_calls_are_decided_by_pending_action_id_in_either_order(
        agent: handoff.Client, people: People, tmp_path: Path, order: str) -> None:
    h = Harness(agent, tmp_path)
    result = h.run("two refunds")
    assert len(result.interruptions) == 2
    pending = h.pending(result)
    first, second = ("A-1", "A-2") if order == "A-1 first" else ("A-2", "A-1")
    state = result.to_state()
    with pytest.raises(UnknownPendingAction, match="pa-nope"):
        asyncio.run(h.approvals.decide(state, answers={"pa-nope": "yes"}))

    people.approve(pending[first][1].approval_id)
    decided = asyncio.run(h.approvals.decide(state))
    assert decided == {pending[first][0]: "RELEASED", pending[second][0]: "PENDING"}
    partial = h.run(state)
    assert [a["order_id"] for a in h.ran("issue_refund")] == [first]
    assert [json.loads(i.arguments)["order_id"] for i in partial.interruptions] == [second]

    people.reject(pending[second][1].approval_id)
    state = partial.to_state()
    assert asyncio.run(h.approvals.decide(state)) == {pending[second][0]: "REJECTED"}
    final = h.run(state)
    assert [a["order_id"] for a in h.ran("issue_refund")] == [first]
    assert final.interruptions == [] and "rejected" in final.final_output


def test_the_users_confirmation_is_handed_to_handoff(agent: handoff.Client, tmp_path: Path) -> None:
    h = Harness(agent, tmp_path)
    result = h.run("book")
    state = result.to_state()
    shown = asyncio.run(h.approvals.ask_user(state))
    (pending_id, prompt), = shown.items()
    assert "Please confirm" in prompt
    assert asyncio.run(h.approvals.decide(state, answers={pending_id: "Yes"})) == {pending_id: "RELEASED"}
    final = h.run(state)
    assert h.ran("book_flight") == [{"to": "NYC", "date": "2026-12-01"}]
    assert final.final_output == "results: booked BK-4471 to NYC"


def test_a_run_too_large_for_the_session_state_is_refused_clearly(agent: handoff.Client, tmp_path: Path) -> None:
    h = Harness(agent, tmp_path)
    long_conversation = [{"role": "user", "content": "x" * 300_000}, {"role": "user", "content": "refund"}]
    result = h.run(long_conversation)
    assert [i.tool_name for i in result.interruptions] == ["issue_refund"]
    with pytest.raises(RunTooLarge) as refused:
        h.approvals.save(result.to_state())
    message = str(refused.value)
    assert "sessions.state_size_limit_bytes" in message and "262,144 bytes here" in message
    assert "256 KiB" in message and "Nothing was saved" in message
    assert STATE_KEY not in agent.sessions.get(h.session_id).state
    h.approvals.save(h.run("refund").to_state())  # a run of ordinary size fits


def test_an_approved_refund_runs_over_a_slow_network(server: ServerProcess, certs: Path, agent: handoff.Client,
                                                     people: People, tmp_path: Path) -> None:
    """60 ms each way between the agent and handoffd: decide() sees the release, the tool runs once."""
    with DelayProxy(("127.0.0.1", server.port), delay=0.06) as proxy, \
            handoff.Client.from_certs(proxy.address, str(certs), role="agent", default_timeout=10) as slow:
        h = Harness(slow, tmp_path)
        result = h.run("refund")
        (pending_id, assessment), = h.pending(result).values()
        people.approve(assessment.approval_id)
        state = result.to_state()
        assert asyncio.run(h.approvals.decide(state)) == {pending_id: "RELEASED"}
        final = h.run(state)
        assert h.ran("issue_refund") == [{"order_id": "A-1042", "amount": 250}]
        assert final.final_output == "results: refunded 250 on A-1042"
    assert len(executed_events(agent, h.session_id)) == 1
