"""The Python client against a real handoffd (see conftest.py)."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import List

import pytest

import handoff
from handoff import StatusCode
from handoff.v1 import common_pb2, confirmations_pb2, operators_pb2
from conftest import TEST_TOKEN, ServerProcess, wait_until


def new_id(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# MARK: round trips and state


def test_unary_round_trip(agent: handoff.Client) -> None:
    pong = agent.ping(b"\x00hi")
    assert pong.payload == b"\x00hi"
    assert pong.server_version
    session_id = new_id()
    created = agent.sessions.create(session_id, state={"cart": ["book"], "n": 1}, labels={"channel": "python"},
                                    reasoning="test")
    assert created.id == session_id and created.version == 1 and created.tenant_id == "acme"
    assert created.state == {"cart": ["book"], "n": 1}
    got = agent.sessions.get(session_id)
    assert got.state == {"cart": ["book"], "n": 1}
    assert got.labels == {"channel": "python"}
    assert got.status == "ACTIVE"
    with pytest.raises(handoff.AlreadyExists):
        agent.sessions.create(session_id)


def test_update_state_merge_replace_and_stale_version(agent: handoff.Client) -> None:
    session = agent.sessions.create(state={"a": 1, "nested": {"x": 1, "y": 2}})
    merged = agent.sessions.update_state(session.id, {"b": 2, "nested": {"y": None}}, reasoning="merge b",
                                         expected_version=1)
    assert merged.version == 2
    assert merged.state == {"a": 1, "b": 2, "nested": {"x": 1}}
    replaced = agent.sessions.update_state(session.id, {"only": "this"}, reasoning="replace", merge=False)
    assert replaced.version == 3 and replaced.state == {"only": "this"}

    with pytest.raises(handoff.Aborted) as caught:
        agent.sessions.update_state(session.id, {"late": True}, reasoning="stale", expected_version=2)
    assert caught.value.code is StatusCode.ABORTED and caught.value.code == 10
    assert caught.value.message and "version" in caught.value.message
    assert isinstance(caught.value, handoff.HandoffError)
    after = agent.sessions.get(session.id)
    assert after.version == 3 and after.state == {"only": "this"}, "a stale update changed the state"

    events = agent.sessions.list_events(session.id)
    assert [e.action for e in events].count("session.state_updated") == 2
    assert [e.reasoning for e in events if e.action == "session.state_updated"] == ["merge b", "replace"]


def test_turns_memories_and_context(agent: handoff.Client) -> None:
    session = agent.sessions.create(state={"step": 1})
    for i in range(3):
        turn = agent.sessions.add_turn(session.id, f"q{i}", f"a{i}", metadata={"i": i}, reasoning="r")
        assert turn.sequence == i + 1
    memory = agent.sessions.add_memory(session.id, "prefers aisle seats", reasoning="said so")
    assert memory.sequence == 1
    context = agent.sessions.get_context(session.id, turn_limit=2)
    assert context.total_turns == 3
    assert [t.input for t in context.turns] == ["q1", "q2"]
    assert json.loads(context.turns[0].metadata_json) == {"i": 1}
    assert [m.content for m in context.memories] == ["prefers aisle seats"]
    assert context.state == {"step": 1}


def test_errors_carry_code_and_message(agent: handoff.Client) -> None:
    missing = new_id("missing")
    with pytest.raises(handoff.NotFound) as caught:
        agent.sessions.get(missing)
    assert caught.value.code is StatusCode.NOT_FOUND
    assert missing in caught.value.message
    assert caught.value.method == "handoff.v1.Sessions/GetSession"
    assert str(caught.value).startswith("NOT_FOUND: ")

    session = agent.sessions.create()
    with pytest.raises(handoff.InvalidArgument) as caught:
        agent.sessions.update_state(session.id, {"a": 1}, reasoning="")
    assert caught.value.code is StatusCode.INVALID_ARGUMENT and caught.value.code == 3
    assert "reasoning" in caught.value.message
    # The connection survives failed calls.
    assert agent.sessions.get(session.id).version == 1
    assert agent.connect_count == 1


def test_wrong_role_is_permission_denied(agent: handoff.Client, operator: handoff.Client) -> None:
    with pytest.raises(handoff.PermissionDenied) as caught:
        agent.desk.queue()
    assert caught.value.code is StatusCode.PERMISSION_DENIED
    assert "operator" in caught.value.message
    session = agent.sessions.create()
    with pytest.raises(handoff.PermissionDenied):
        operator.sessions.update_state(session.id, {"a": 1}, reasoning="operators may not")


def test_other_tenant_sees_not_found(server: ServerProcess, certs: Path, agent: handoff.Client) -> None:
    session = agent.sessions.create(state={"secret": 1})
    with handoff.Client.from_certs(server.address, str(certs), role="globex.agent") as globex:
        with pytest.raises(handoff.NotFound):
            globex.sessions.get(session.id)


def test_bearer_token_identifies_a_caller_without_certificate(server: ServerProcess, certs: Path) -> None:
    with handoff.Client(server.address, ca_file=str(certs / "ca.pem"), bearer_token=TEST_TOKEN) as client:
        session = client.sessions.create(reasoning="by token")
        events = client.sessions.list_events(session.id)
        assert events[0].actor.name.endswith("token-agent")
    with handoff.Client(server.address, ca_file=str(certs / "ca.pem"), bearer_token="wrong") as client:
        with pytest.raises(handoff.Unauthenticated):
            client.sessions.create()


def test_request_over_the_frame_limit_fails_locally(agent: handoff.Client) -> None:
    agent.ping()
    with pytest.raises(handoff.ResourceExhausted) as caught:
        agent.ping(b"x" * (4 * 1024 * 1024 + 1))
    assert "exceeds the limit" in caught.value.message
    # Nothing was sent: the server did not close the connection.
    assert agent.ping(b"ok").payload == b"ok"
    assert agent.connect_count == 1


# MARK: concurrency on one connection


def test_async_64_calls_in_flight_on_one_connection(server: ServerProcess, certs: Path) -> None:
    async def main() -> None:
        async with handoff.AsyncClient.from_certs(server.address, str(certs), role="agent") as client:
            session = await client.sessions.create(state={})
            connection = client.connection
            assert connection is not None and client.connect_count == 1
            results = await asyncio.gather(*(
                client.sessions.update_state(session.id, {f"k{i}": i}, reasoning=f"set k{i}") for i in range(64)))
            assert client.connection is connection and client.connect_count == 1
            assert connection.max_in_flight == 64, "the 64 calls were not in flight together"
            assert connection.calls_started == 65
            assert sorted(r.version for r in results) == list(range(2, 66))
            final = await client.sessions.get(session.id)
            assert final.state == {f"k{i}": i for i in range(64)}
            # Mixed methods complete out of order and still reach their callers.
            pings = [client.ping(str(i).encode()) for i in range(32)]
            gets = [client.sessions.get(session.id) for _ in range(32)]
            answers = await asyncio.gather(*pings, *gets)
            assert [a.payload for a in answers[:32]] == [str(i).encode() for i in range(32)]
            assert all(a.version == 65 for a in answers[32:])
            assert client.connect_count == 1

    asyncio.run(main())


def test_threads_share_one_connection(agent: handoff.Client) -> None:
    session = agent.sessions.create(state={})
    connection = agent.connect()
    barrier = threading.Barrier(64)
    errors: List[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            agent.sessions.update_state(session.id, {f"t{i}": i}, reasoning=f"thread {i}")
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert agent.connection is connection and agent.connect_count == 1
    assert connection.max_in_flight > 1, "calls from threads were serialised, not multiplexed"
    final = agent.sessions.get(session.id)
    assert final.version == 65 and final.state == {f"t{i}": i for i in range(64)}


# MARK: deadlines, policy, decisions


def test_deadline_exceeded(agent: handoff.Client) -> None:
    session = agent.sessions.create()
    pending = agent.assess(session.id, {"tool_name": "book_flight", "description": "Book a flight to NYC"})
    assert pending.pending_action_id
    started = time.monotonic()
    with pytest.raises(handoff.DeadlineExceeded) as caught:
        agent.wait_for_decision(pending, timeout=0.3)
    elapsed = time.monotonic() - started
    assert caught.value.code is StatusCode.DEADLINE_EXCEEDED
    assert 0.25 <= elapsed < 2.0, f"the deadline fired after {elapsed:.2f} s"
    connection = agent.connection
    assert connection is not None and connection.in_flight == 0, "the timed-out call is still registered"
    # The connection is still good, and the deadline applies to unary calls too.
    assert agent.ping().server_version
    assert agent.connect_count == 1


def test_assess_get_weather_automates(agent: handoff.Client) -> None:
    session = agent.sessions.create()
    weather = agent.assess(session.id, {"tool_name": "get_weather", "parameters": {"city": "Oslo"},
                                        "description": "What's the weather?", "confidence": 0.95})
    assert weather.strategy == "AUTOMATE" and weather.automated
    assert weather.pending_action is None and weather.pending_action_id is None
    assert weather.risk == "LOW" and weather.decision_type == "INFORMATIONAL"
    assert any("get_weather" in reason for reason in weather.reasons)
    refund = agent.assess(session.id, handoff.Action(tool_name="issue_refund", description="Refund my order",
                                                      amount="250", currency="USD"))
    assert refund.strategy == "ESCALATE" and refund.pending_action_id


def test_confirmation_then_release_and_execution(agent: handoff.Client) -> None:
    session = agent.sessions.create()
    assessment = agent.assess(session.id, {"tool_name": "book_flight", "description": "Book a flight to NYC",
                                           "parameters": {"to": "NYC"}}, idempotency_key="k1")
    assert assessment.needs_confirmation
    again = agent.assess(session.id, {"tool_name": "book_flight", "description": "Book a flight to NYC",
                                      "parameters": {"to": "NYC"}}, idempotency_key="k1")
    assert again.pending_action_id == assessment.pending_action_id
    prompt = agent.request_confirmation(assessment)
    assert "NYC" in prompt.prompt
    answer = agent.respond_to_confirmation(assessment, "Yes")
    assert answer.pending_action.release_token
    decision = agent.wait_for_decision(assessment, timeout=5)
    assert decision.released and decision.action["parameters"] == {"to": "NYC"}
    report = agent.report_execution(decision, {"booking": "B-1"})
    assert report.recorded and not report.duplicate
    repeat = agent.report_execution(decision, {"booking": "B-1"})
    assert repeat.duplicate and json.loads(repeat.result_json) == {"booking": "B-1"}

    # A second action, declined; the sync stream yields both outcomes, then ends.
    declined = agent.assess(session.id, {"tool_name": "book_hotel", "description": "Book a hotel in NYC"})
    agent.request_confirmation(declined)
    assert agent.respond_to_confirmation(declined, "no").outcome == confirmations_pb2.CONFIRMATION_OUTCOME_DECLINED
    with agent.wait_for_decisions([assessment, declined], timeout=5) as updates:
        outcomes = {update.pending_action_id: update.status for update in updates}
    assert outcomes == {assessment.pending_action_id: "EXECUTED", declined.pending_action_id: "DECLINED"}


def test_multi_factor_code(agent: handoff.Client, server: ServerProcess) -> None:
    session = agent.sessions.create()
    assessment = agent.assess(session.id, {"tool_name": "delete_user_data", "description": "Delete all my data"})
    assert assessment.needs_multi_factor
    started = agent.start_multi_factor(assessment)
    assert started.channels and started.code_length >= 6
    codes = server.data / "mfa-codes.jsonl"

    def delivered() -> List[dict]:
        if not codes.exists():
            return []
        return [json.loads(line) for line in codes.read_text().splitlines()
                if json.loads(line)["pending_action_id"] == assessment.pending_action_id]

    assert wait_until(lambda: bool(delivered()), 5), f"no code in {codes}"
    code = delivered()[-1]["code"]
    wrong = "0" * len(code) if code != "0" * len(code) else "1" * len(code)
    refused = agent.verify_multi_factor(assessment, wrong)
    assert not refused.verified and refused.attempts_remaining == started.attempts_remaining - 1
    verified = agent.verify_multi_factor(assessment, code)
    assert verified.verified and verified.pending_action.release_token
    assert agent.wait_for_decision(assessment, timeout=5).released


# MARK: desk


def test_watch_sees_the_ticket_an_escalation_opens(server: ServerProcess, certs: Path, agent: handoff.Client) -> None:
    async def main() -> None:
        async with handoff.AsyncClient.from_certs(server.address, str(certs), role="operator") as operator:
            escalated = set()
            async with operator.desk.watch(kinds=["ticket_opened"]) as events:
                event = None
                # Watch starts "from now"; the server subscribes asynchronously, so
                # escalate fresh sessions until the feed shows one of them.
                for _ in range(50):
                    session = await asyncio.get_running_loop().run_in_executor(None, agent.sessions.create)
                    escalated.add(session.id)
                    ticket = await asyncio.get_running_loop().run_in_executor(
                        None, agent.escalate, session.id, "customer is frustrated")
                    assert ticket.created
                    try:
                        event = await asyncio.wait_for(events.__anext__(), 0.5)
                        break
                    except asyncio.TimeoutError:
                        continue
                assert event is not None, "Watch delivered nothing"
                assert event.kind == operators_pb2.DESK_EVENT_KIND_TICKET_OPENED
                assert event.ticket.session_id in escalated
                assert event.ticket.reason == "customer is frustrated"
                assert event.ticket.priority == common_pb2.PRIORITY_HIGH
                assert event.cursor
                connection = operator.connection
                assert connection is not None and connection.in_flight == 1
            # Leaving the block cancelled the stream: nothing is in flight, the
            # connection is fine.
            assert connection.in_flight == 0
            assert (await operator.ping()).server_version
            assert operator.connect_count == 1

    asyncio.run(main())


def test_desk_claim_reply_resolve(agent: handoff.Client, operator: handoff.Client) -> None:
    session = agent.sessions.create()
    agent.sessions.add_turn(session.id, "Is this mole dangerous?", "", reasoning="unsure")
    assessment = agent.assess(session.id, {"tool_name": "answer", "description": "diagnosis of a mole",
                                           "confidence": 0.4})
    assert assessment.escalated
    ticket = agent.escalate(session.id, "low confidence medical question", assessment).ticket
    assert agent.sessions.get(session.id).status == "ESCALATED"
    assert ticket.id in [t.id for t in operator.desk.queue()]
    view = operator.desk.ticket(ticket.id)
    assert view.snapshot.turns[0].input == "Is this mole dangerous?"
    claimed = operator.desk.claim(ticket.id)
    assert claimed.status == common_pb2.TICKET_STATUS_CLAIMED
    operator.desk.reply(ticket.id, "Please see a dermatologist.")
    context = agent.sessions.get_context(session.id)
    assert context.turns[-1].output == "Please see a dermatologist."
    assert context.turns[-1].source == common_pb2.TURN_SOURCE_OPERATOR
    resolved = operator.desk.resolve(ticket.id, "resolved", note="answered", decision="reject")
    assert resolved.ticket.status == common_pb2.TICKET_STATUS_RESOLVED
    assert agent.wait_for_decision(assessment, timeout=5).status == "REJECTED"
    assert agent.sessions.get(session.id).status == "ACTIVE"


# MARK: reconnect


def test_reconnect_after_the_server_restarts(start_server, tmp_path: Path, certs: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    first = start_server(data)
    client = handoff.Client.from_certs(first.address, str(certs), role="agent", default_timeout=10)
    try:
        session = client.sessions.create(state={"n": 1})
        connection = client.connection
        assert client.connect_count == 1

        # Graceful: SIGTERM sends GOAWAY and closes; the next call reconnects.
        assert first.stop() == 0
        assert wait_until(lambda: connection.closed, 5), "the client did not see the connection close"
        with pytest.raises(handoff.Unavailable):
            client.sessions.get(session.id)  # nobody listens now
        second = start_server(data, listen=first.address)
        assert client.sessions.get(session.id).state == {"n": 1}
        assert client.connect_count == 2 and client.connection is not connection

        # Abrupt: a call in flight when the server dies fails UNAVAILABLE.
        pending = client.assess(session.id, {"tool_name": "book_flight", "description": "Book a flight"})
        outcome: List[BaseException] = []

        def wait() -> None:
            try:
                client.wait_for_decision(pending, timeout=30)
            except BaseException as error:  # noqa: BLE001
                outcome.append(error)

        waiter = threading.Thread(target=wait)
        waiter.start()
        assert wait_until(lambda: client.connection is not None and client.connection.in_flight == 1, 5)
        second.stop(signal.SIGKILL)
        waiter.join(10)
        assert not waiter.is_alive(), "the call in flight did not fail when the connection dropped"
        assert len(outcome) == 1 and isinstance(outcome[0], handoff.Unavailable), outcome
        assert outcome[0].code is StatusCode.UNAVAILABLE

        third = start_server(data, listen=first.address)
        assert third.port == first.port
        assert client.sessions.get(session.id).version == 1
        assert client.connect_count == 3
    finally:
        client.close()
    with pytest.raises(handoff.Unavailable):
        client.ping()


# MARK: approvals


def _approvals_call(call):  # type: ignore[no-untyped-def]
    # handoffd serves Approvals: an UNIMPLEMENTED answer is a failure, never a skip.
    return call()


@pytest.mark.approvals
def test_approval_chain(agent: handoff.Client, approver: handoff.Client) -> None:
    session = agent.sessions.create()
    assessment = agent.assess(session.id, {"tool_name": "issue_refund", "description": "Refund my order",
                                           "amount": 250, "currency": "USD"})
    assert assessment.escalated
    requested = _approvals_call(lambda: agent.request_approval(
        session.id, pending_action=assessment, reason="customer asked for a refund"))
    approval = requested.approval
    assert approval.status == common_pb2.APPROVAL_STATUS_PENDING and approval.steps
    assert agent.get_approval(approval.id).id == approval.id
    assert approval.id in [a.id for a in approver.pending_approvals(session.id)]
    with pytest.raises(handoff.PermissionDenied):
        agent.decide_approval(approval.id, "approve")
    decided = approval
    for _ in range(len(approval.steps)):
        decided = approver.decide_approval(decided.id, "approve", comment="ok")
    assert decided.status == common_pb2.APPROVAL_STATUS_APPROVED
    assert agent.wait_for_decision(assessment, timeout=5).released
    results = approver.decide_approvals([{"approval_id": approval.id, "verdict": "approve"},
                                         {"approval_id": "nope", "verdict": "reject"}])
    assert all(isinstance(r, handoff.HandoffError) for r in results)
    assert isinstance(results[1], handoff.NotFound)
