"""The seed scenario's Swift agent (examples/swift/HITLAgent, product
`hitl-agent`) against a real handoffd: the user's "Yes" and one-time code go
in on its standard input; an approver and an operator (Python clients) decide
what waits for a person. It must run every action the people allowed."""
from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import List

import handoff
from conftest import ServerProcess, wait_until


def test_swift_agent_plays_the_seed_scenario(binaries: Path, certs: Path, start_server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    server: ServerProcess = start_server(data)
    agent = subprocess.Popen([str(binaries / "hitl-agent"), "--server", server.address, "--certs", str(certs),
                              "--session", "swift-seed"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: List[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(agent.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    approver = handoff.Client.from_certs(server.address, str(certs), role="approver", default_timeout=10)
    operator = handoff.Client.from_certs(server.address, str(certs), role="operator", default_timeout=10)
    try:
        assert agent.stdin is not None
        agent.stdin.write("Yes\n")
        agent.stdin.flush()
        # The refund waits for the approver.
        assert wait_until(lambda: len(approver.pending_approvals("swift-seed")) == 1, timeout=30), "".join(lines)
        approval = approver.pending_approvals("swift-seed")[0]
        approver.decide_approval(approval.id, "approve", comment="checked")
        # The deletion's code arrives in the development channel; the user types it.
        codes = data / "mfa-codes.jsonl"
        assert wait_until(lambda: codes.exists() and "swift-seed" in codes.read_text(), timeout=30), "".join(lines)
        code = [json.loads(l) for l in codes.read_text().splitlines() if "swift-seed" in l][-1]["code"]
        agent.stdin.write(code + "\n")
        agent.stdin.flush()
        # The medical question goes to the operator, who answers and rejects the agent's own answer.
        assert wait_until(lambda: len(operator.desk.queue()) == 1, timeout=30), "".join(lines)
        ticket = operator.desk.queue()[0]
        operator.desk.claim(ticket.id)
        operator.desk.reply(ticket.id, "Please ask your doctor before changing any dose.")
        assert wait_until(lambda: any("operator: Please ask your doctor" in l for l in lines), timeout=30), "".join(lines)
        operator.desk.resolve(ticket.id, "resolved", decision="reject")
        assert agent.wait(timeout=60) == 0, "".join(lines)
    finally:
        if agent.poll() is None:
            agent.kill()
        approver.close()
        operator.close()
    reader.join(timeout=5)
    out = "".join(lines)
    for expected in ["It is 18 °C and sunny in Paris.", "Your flight to NYC is booked.", "Your refund of 250 USD is on its way.",
                     "All your data is deleted.", "A person decided not to go ahead"]:
        assert expected in out, f"missing {expected!r}:\n{out}"
