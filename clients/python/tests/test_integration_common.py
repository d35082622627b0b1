"""What the framework adapters share (handoff.integrations._common), against a
real handoffd and without any framework: decisions read over a slow network,
a released action run exactly once by two worker processes racing on it,
claims held elsewhere, stale or withdrawn, and the per-action locks."""
from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import handoff
from conftest import ServerProcess
from integration_support import DelayProxy, executed_events, new_session_id

from handoff.integrations._common import (CLAIMS_KEY, ClaimedElsewhere, Gate, Settled, Withdrawn, call_key,
                                          default_action, lock_for)
from handoff.integrations import _common

WORKER = Path(__file__).resolve().parent / "claim_worker.py"


def refund(agent: handoff.Client, session_id: Optional[str] = None, amount: int = 250) -> Tuple[str, Any]:
    """A refund assessed in a new session (it goes to the approval desk)."""
    session_id = session_id or new_session_id("gate")
    agent.sessions.create(session_id, reasoning="test")
    action = default_action("issue_refund", {"order_id": "A-1042", "amount": amount}, "Refund an order.")
    assessment = agent.assess(session_id, action, idempotency_key=call_key("test", session_id))
    assert assessment.approval_id, assessment
    return session_id, assessment


def released_refund(agent: handoff.Client, approver: handoff.Client) -> Tuple[str, str]:
    session_id, assessment = refund(agent)
    approver.decide_approval(assessment.approval_id, "approve", comment="fine")
    assert agent.wait_for_decision(assessment.pending_action_id, timeout=10).status == "RELEASED"
    return session_id, assessment.pending_action_id


def describe(value: Any) -> Tuple[Any, Optional[str]]:
    return {"output": value}, None


def test_a_stale_expected_version_is_aborted(agent: handoff.Client) -> None:
    """The claim's compare-and-set relies on this (docs/PROTOCOL.md, ABORTED)."""
    session = agent.sessions.create(new_session_id("gate"), reasoning="test")
    agent.sessions.update_state(session.id, {"a": 1}, reasoning="first writer", expected_version=session.version)
    with pytest.raises(handoff.Aborted):
        agent.sessions.update_state(session.id, {"b": 2}, reasoning="second writer", expected_version=session.version)
    assert agent.sessions.get(session.id).state == {"a": 1}


def test_decisions_are_read_right_over_a_slow_network(server: ServerProcess, certs: Path, agent: handoff.Client,
                                                      approver: handoff.Client) -> None:
    """60 ms each way: a released action is seen and run, an executed one
    returns its result, an unknown id is NOT_FOUND, an undecided one is None."""
    session_id, pending_id = released_refund(agent, approver)
    undecided_session, undecided = refund(agent)
    with DelayProxy(("127.0.0.1", server.port), delay=0.06) as proxy, \
            handoff.Client.from_certs(proxy.address, str(certs), role="agent", default_timeout=10) as slow:
        slow.ping()
        started = time.monotonic()
        slow.ping()
        assert time.monotonic() - started >= 0.12  # the proxy does slow it down
        # The client's own wait: the server's deadline, plus grace for the network.
        assert slow.wait_for_decision(pending_id, timeout=0.05, grace=10).status == "RELEASED"

        gate = Gate(slow)
        settled = gate.peek(session_id, pending_id)
        assert settled is not None and settled.status == "RELEASED" and settled.decision is not None
        ran: List[Dict[str, Any]] = []
        outcome, value = gate.run_released(session_id, settled, lambda action: ran.append(action) or "refunded",
                                           describe)
        assert (outcome, value) == ("ran", "refunded") and len(ran) == 1
        assert ran[0]["parameters"] == {"order_id": "A-1042", "amount": 250}
        executed = gate.peek(session_id, pending_id)
        assert executed is not None and executed.status == "EXECUTED"
        assert executed.recorded_result == {"output": "refunded"}
        assert gate.run_released(session_id, settled, lambda action: ran.append(action), describe) == \
            ("executed", ({"output": "refunded"}, None))
        assert len(ran) == 1

        with pytest.raises(handoff.NotFound):
            gate.peek(session_id, "pa-no-such-action")
        started = time.monotonic()
        assert gate.peek(undecided_session, undecided.pending_action_id) is None
        assert gate.peek(undecided_session, undecided.pending_action_id, wait=0.3) is None
        assert time.monotonic() - started < 5
        for bad in (-1, -0.01, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="finite number of seconds"):
                gate.peek(session_id, pending_id, wait=bad)
    assert len(executed_events(agent, session_id)) == 1


def test_two_worker_processes_racing_on_a_released_action_run_it_once(server: ServerProcess, certs: Path,
                                                                     agent: handoff.Client,
                                                                     approver: handoff.Client,
                                                                     tmp_path: Path) -> None:
    rounds = [released_refund(agent, approver) for _ in range(10)]
    (tmp_path / "rounds.json").write_text(json.dumps(rounds))
    (tmp_path / "barrier").mkdir()
    effects = tmp_path / "effects.jsonl"
    workers = [subprocess.Popen([sys.executable, str(WORKER), "--server", server.address, "--certs", str(certs),
                                 "--rounds", str(tmp_path / "rounds.json"), "--effects", str(effects),
                                 "--barrier", str(tmp_path / "barrier"), "--name", name],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name in ("A", "B")]
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, out + err
        outputs += [json.loads(line) for line in out.splitlines() if line.strip()]
    runs = Counter(json.loads(line)["round"] for line in effects.read_text().splitlines())
    assert runs == {number: 1 for number in range(10)}, f"tool runs per round: {dict(runs)}"
    outcomes: Dict[int, List[str]] = defaultdict(list)
    for entry in outputs:
        outcomes[entry["round"]].append(entry["outcome"])
    assert all(sorted(outcomes[number]) == ["executed", "ran"] for number in range(10)), dict(outcomes)
    for session_id, pending_id in rounds:
        assert [e["pending_action_id"] for e in executed_events(agent, session_id)] == [pending_id]
        assert pending_id not in agent.sessions.get(session_id).state.get(CLAIMS_KEY, {})  # claim dropped


def test_a_claim_held_elsewhere_is_waited_for_and_a_stale_one_taken_over(agent: handoff.Client,
                                                                        approver: handoff.Client) -> None:
    session_id, pending_id = released_refund(agent, approver)
    now = agent.ping().server_time_unix_ms
    agent.sessions.update_state(session_id, {CLAIMS_KEY: {pending_id: {"worker": "other-host:4242:0f0f",
                                                                       "claimed_at_ms": now}}},
                                reasoning="another worker runs it")
    ran: List[Dict[str, Any]] = []

    def run(action: Dict[str, Any]) -> str:
        ran.append(action)
        return "refunded"

    gate = Gate(agent, claim_wait=0.5)
    started = time.monotonic()
    with pytest.raises(ClaimedElsewhere, match="being run by worker other-host:4242:0f0f"):
        gate.run_released(session_id, Settled(pending_id, "RELEASED"), run, describe)
    assert ran == [] and time.monotonic() - started >= 0.5
    # Never taken over when stale claims are not to be taken over.
    agent.sessions.update_state(session_id, {CLAIMS_KEY: {pending_id: {"claimed_at_ms": now - 3_600_000}}},
                                reasoning="the other worker died long ago")
    with pytest.raises(ClaimedElsewhere, match="remove handoff_executions"):
        Gate(agent, claim_wait=0.2, stale_claim_after=None).run_released(
            session_id, Settled(pending_id, "RELEASED"), run, describe)
    assert ran == []
    # An hour old: its worker is taken to have died, and the claim is taken over.
    assert gate.run_released(session_id, Settled(pending_id, "RELEASED"), run, describe) == ("ran", "refunded")
    assert len(ran) == 1 and pending_id not in agent.sessions.get(session_id).state[CLAIMS_KEY]
    taken = [e.reasoning for e in agent.sessions.list_events(session_id, actions=["session.state_updated"])]
    assert any("taking over the stale claim of other-host:4242:0f0f" in reason for reason in taken), taken


def test_a_withdrawn_action_never_runs_even_once_released(agent: handoff.Client, approver: handoff.Client) -> None:
    session_id, assessment = refund(agent)
    gate = Gate(agent)
    gate.withdraw(session_id, assessment.pending_action_id, "the user said no")
    gate.withdraw(session_id, assessment.pending_action_id, "the user said no")  # idempotent
    assert gate.withdrawn(session_id, assessment.pending_action_id)
    approver.decide_approval(assessment.approval_id, "approve", comment="approved before seeing it")
    ran: List[Any] = []
    with pytest.raises(Withdrawn, match="withdrawn by the agent .the user said no."):
        gate.run_released(session_id, Settled(assessment.pending_action_id, "RELEASED"), ran.append, describe)
    assert ran == [] and executed_events(agent, session_id) == []


def test_lock_for_never_splits_a_lock_that_is_in_use() -> None:
    held = lock_for("pa-held")             # handed out, not acquired yet
    acquired = lock_for("pa-acquired")
    acquired.acquire()
    try:
        others = [lock_for(f"pa-{number}") for number in range(12_000)]
        assert lock_for("pa-held") is held and lock_for("pa-acquired") is acquired
        assert lock_for("pa-0") is others[0]
        del others
        gc.collect()
        assert len(_common._locks) < 100  # idle locks are forgotten
        assert lock_for("pa-held") is held
    finally:
        acquired.release()
