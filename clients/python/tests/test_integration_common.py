"""What the framework adapters share (handoff.integrations._common), against a
real handoffd and without any framework: decisions read over a slow network,
and the per-action locks."""
from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import handoff
from conftest import ServerProcess
from integration_support import DelayProxy, executed_events, new_session_id

from handoff.integrations._common import Gate, call_key, default_action, lock_for
from handoff.integrations import _common


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
