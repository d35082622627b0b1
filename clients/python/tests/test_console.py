"""`handoff console` driven under tmux against a real handoffd: the live
queue, the ticket's conversation, claim, reply, resolve, approve, a resize,
and a dropped connection that the console recovers from.

tmux plays the operator's terminal: send-keys types, capture-pane reads the
screen as the operator sees it.
"""
from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Callable, List

import pytest

import handoff
from conftest import ServerProcess, wait_until


def tmux(*args: str) -> str:
    result = subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, f"tmux {' '.join(args)}: {result.stderr}"
    return result.stdout


class ConsolePane:
    """A console process in a detached tmux session of its own."""

    def __init__(self, binaries: Path, certs: Path, address: str, role: str, width: int = 160, height: int = 40) -> None:
        self.name = "handoff-console-" + uuid.uuid4().hex[:8]
        command = f"{binaries / 'handoff'} console --server {address} --certs {certs} --role {role}"
        tmux("new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), command)

    def screen(self) -> str:
        return tmux("capture-pane", "-p", "-t", self.name)

    def wait_for(self, predicate: Callable[[str], bool], what: str, timeout: float = 15) -> str:
        if not wait_until(lambda: predicate(self.screen()), timeout=timeout, interval=0.1):
            raise AssertionError(f"the console never showed {what}; its screen:\n{self.screen()}")
        return self.screen()

    def keys(self, *keys: str) -> None:
        tmux("send-keys", "-t", self.name, *keys)

    def type(self, text: str) -> None:
        tmux("send-keys", "-t", self.name, "-l", text)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True, timeout=10)


@pytest.fixture
def panes() -> List[ConsolePane]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing: make deps installs it", pytrace=False)
    opened: List[ConsolePane] = []
    yield opened
    for pane in opened:
        pane.close()


def test_operator_console_live_queue_claim_reply_resolve_resize(binaries: Path, certs: Path, server: ServerProcess,
                                                                  agent: handoff.Client, operator: handoff.Client,
                                                                  panes: List[ConsolePane]) -> None:
    session = "console-" + uuid.uuid4().hex[:6]
    agent.sessions.create(session)
    agent.sessions.add_turn(session, input="Someone used my card in Lisbon", output="Let me get a person for you")
    console = ConsolePane(binaries, certs, server.address, "operator")
    panes.append(console)
    console.wait_for(lambda s: "connected" in s and "Queue" in s, "the queue")

    # Live: the escalation appears without a key pressed.
    ticket = agent.escalate(session, "fraud on my card").ticket
    screen = console.wait_for(lambda s: ticket.id in s, "the new ticket")
    line = next(l for l in screen.splitlines() if ticket.id in l)
    assert "URGENT" in line and "left" in line, line

    # Select it and read the conversation.
    for _ in range(50):
        if any(l.startswith(">") and ticket.id in l for l in console.screen().splitlines()):
            break
        console.keys("Down")
    console.wait_for(lambda s: "user: Someone used my card in Lisbon" in s, "the conversation")

    console.keys("c")
    console.wait_for(lambda s: f"claimed {ticket.id}" in s, "the claim")
    assert operator.desk.ticket(ticket.id).ticket.status == handoff.v1.common_pb2.TICKET_STATUS_CLAIMED

    console.keys("r")
    console.type("Hi, I'm Sam from the fraud team")
    console.keys("Enter")
    console.wait_for(lambda s: "operator: Hi, I'm Sam from the fraud team" in s, "the reply in the conversation")
    assert agent.sessions.get_context(session).turns[-1].output == "Hi, I'm Sam from the fraud team"

    # A narrower window: the console redraws to its width.
    tmux("resize-window", "-t", console.name, "-x", "100", "-y", "30")
    console.wait_for(lambda s: max(len(l) for l in s.splitlines()) <= 100 and "─" * 100 in s, "a redraw at 100 columns")

    console.keys("s")
    console.wait_for(lambda s: "Resolve:" in s, "the resolve prompt")
    console.keys("h")
    console.wait_for(lambda s: f"Resolve {ticket.id} as handed back? note" in s, "the note prompt")
    console.type("handed back to the agent")
    console.keys("Enter")
    console.wait_for(lambda s: f"resolved {ticket.id}" in s and ticket.id not in s.split("─")[0], "the ticket leaving the queue")
    console.keys("q")
    assert wait_until(lambda: subprocess.run(["tmux", "has-session", "-t", console.name], capture_output=True).returncode != 0,
                      timeout=10), "q did not end the console"


def test_approver_console_approves_and_survives_a_restart(binaries: Path, certs: Path, start_server, tmp_path: Path,
                                                          panes: List[ConsolePane]) -> None:
    data = tmp_path / "data"
    first = start_server(data)
    agent = handoff.Client.from_certs(first.address, str(certs), role="agent", default_timeout=10)
    approver = None
    try:
        agent.sessions.create("refunds")
        assessed = agent.assess("refunds", {"tool_name": "issue_refund", "description": "Refund my order",
                                            "amount": "250", "currency": "USD"})
        approval_id = assessed.approval_id
        assert approval_id
        console = ConsolePane(binaries, certs, first.address, "approver")
        panes.append(console)
        console.wait_for(lambda s: approval_id in s, "the approval waiting")

        # The server goes away: the console says so, and recovers when it is back on the same port.
        port = first.port
        first.stop()
        console.wait_for(lambda s: "DISCONNECTED" in s, "the lost connection")
        second = start_server(data, listen=f"127.0.0.1:{port}")
        console.wait_for(lambda s: "connected" in s and "DISCONNECTED" not in s, "the reconnection", timeout=20)

        # A second refund, requested while the console is back: it appears live.
        agent2 = handoff.Client.from_certs(second.address, str(certs), role="agent", default_timeout=10)
        try:
            again = agent2.assess("refunds", {"tool_name": "issue_refund", "description": "Refund my other order",
                                              "amount": "300", "currency": "USD"})
        finally:
            agent2.close()
        console.wait_for(lambda s: again.approval_id in s, "the approval requested after the restart")

        # a asks first: nothing is decided until enter, and the comment goes with the decision.
        console.keys("a")
        console.wait_for(lambda s: "? comment (optional; enter approves, esc cancels)" in s, "the confirmation")
        console.type("receipt checked")
        console.keys("Enter")
        console.wait_for(lambda s: ": approved" in s, "the approval decided")
        approver = handoff.Client.from_certs(second.address, str(certs), role="approver", default_timeout=10)
        statuses = {approval_id: approver.get_approval(approval_id).status,
                    again.approval_id: approver.get_approval(again.approval_id).status}
        assert sorted(statuses.values()).count(handoff.v1.common_pb2.APPROVAL_STATUS_APPROVED) == 1, statuses
        decided = next(a for a in statuses if statuses[a] == handoff.v1.common_pb2.APPROVAL_STATUS_APPROVED)
        assert approver.get_approval(decided).steps[0].comment == "receipt checked"
    finally:
        agent.close()
        if approver is not None:
            approver.close()
