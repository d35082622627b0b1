"""Whole desk stories through the `handoff` binary against a real handoffd:
the agent (Python SDK) escalates a frustrated customer with 60 turns of
history and an operator sees it on `handoff watch`, claims, replies and
resolves; a 12,000 refund needs two approvers, the first approves a lower
amount, the second approves, and the agent's WaitForDecision receives the
edited action."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any, List

import handoff
from conftest import ServerProcess

SECOND_APPROVER_TOKEN = "t0k-finance-bob"


def cli(binaries: Path, server: ServerProcess, certs: Path, *args: str, role: str = "operator", token: str = "") -> Any:
    command = [str(binaries / "handoff"), *args, "--server", server.address, "--certs", str(certs)]
    command += ["--token", token] if token else ["--role", role]
    ran = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, f"{' '.join(args)}: {ran.stdout}{ran.stderr}"
    return json.loads(ran.stdout) if "--json" in args else ran.stdout


def test_frustrated_customer_with_60_turns_goes_to_an_operator(binaries: Path, certs: Path, server: ServerProcess,
                                                              agent: handoff.Client) -> None:
    agent.sessions.create("story-60")
    for i in range(60):
        agent.sessions.add_turn("story-60", input=f"message {i}", output=f"answer {i}")
    watch = subprocess.Popen([str(binaries / "handoff"), "watch", "--json", "--count", "1", "--server", server.address,
                              "--certs", str(certs), "--role", "operator"], stdout=subprocess.PIPE, text=True)
    try:
        import time
        time.sleep(0.5)  # the watch is open
        ticket = agent.escalate("story-60", "The customer is frustrated: third time asking").ticket
        out, _ = watch.communicate(timeout=20)
    finally:
        if watch.poll() is None:
            watch.kill()
    seen = json.loads(out.splitlines()[0])
    assert seen["kind"] == "ticket_opened" and seen["ticket_id"] == ticket.id and seen["priority"] == "high", seen

    shown = cli(binaries, server, certs, "ticket", ticket.id, "--json")
    assert shown["status"] == "open" and len(shown["turns"]) >= 50
    claimed = cli(binaries, server, certs, "claim", ticket.id, "--json")
    assert claimed["status"] == "claimed" and claimed["assigned_to"] == "acme/operator"
    cli(binaries, server, certs, "reply", ticket.id, "Sorry for the wait, I'm on it.", "--json")
    assert agent.sessions.get_context("story-60", turn_limit=5).turns[-1].output == "Sorry for the wait, I'm on it."
    resolved = cli(binaries, server, certs, "resolve", ticket.id, "--outcome", "resolved", "--note", "sorted", "--json")
    assert resolved["status"] == "resolved"
    assert agent.sessions.get("story-60").status == "ACTIVE"


def test_a_12000_refund_needs_two_approvers_and_the_agent_gets_the_edited_action(
        binaries: Path, certs: Path, tmp_path: Path) -> None:
    digest = hashlib.sha256(SECOND_APPROVER_TOKEN.encode()).hexdigest()
    config = tmp_path / "handoffd.yaml"
    config.write_text(f"tokens:\n  - {{identity: \"handoff://tenant/acme/approver/bob\", sha256: \"{digest}\"}}\n")
    server = ServerProcess(binaries, tmp_path / "data", certs, config=config)
    agent = handoff.Client.from_certs(server.address, str(certs), role="agent", default_timeout=10)
    try:
        agent.sessions.create("refund-12k")
        verdict = agent.assess("refund-12k", {"tool_name": "issue_refund", "description": "Refund order A-7",
                                              "amount": "12000", "currency": "USD"})
        approval_id = verdict.approval_id
        shown = cli(binaries, server, certs, "approvals", "show", approval_id, "--json", role="approver")
        assert [step["status"] for step in shown["steps"]] == ["pending", "waiting"], shown
        first: List[Any] = cli(binaries, server, certs, "approve", approval_id, "--amount", "11000", "--comment",
                               "partial: one item was returned", "--json", role="approver")
        assert first[0]["status"] == "pending" and first[0]["current_level"] == 2, first
        # The first approver may not take the second level too.
        again = subprocess.run([str(binaries / "handoff"), "approve", approval_id, "--server", server.address, "--certs",
                                str(certs), "--role", "approver"], capture_output=True, text=True, timeout=30)
        assert again.returncode == 1 and "you decided level 1" in again.stdout, again.stdout + again.stderr
        second: List[Any] = cli(binaries, server, certs, "approve", approval_id, "--json", token=SECOND_APPROVER_TOKEN)
        assert second[0]["status"] == "approved", second
        decision = agent.wait_for_decision(verdict.pending_action_id, timeout=10)
        assert decision.released and decision.action["amount"] == "11000", decision
    finally:
        agent.close()
        server.stop()


def test_an_approvers_lower_amount_is_released_in_the_tools_arguments(
        binaries: Path, certs: Path, server: ServerProcess, agent: handoff.Client) -> None:
    """`handoff approve ID --amount 200` on a 250 refund: the released action's
    arguments say 200 too, so an agent that runs the tool with them refunds
    what was approved (the outside review found 250 there)."""
    agent.sessions.create("refund-edit")
    verdict = agent.assess("refund-edit", {"tool_name": "issue_refund", "description": "Refund order 42",
                                           "parameters": {"order_id": "42", "amount": 250}, "amount": "250", "currency": "USD"})
    assert verdict.approval_id
    decided: List[Any] = cli(binaries, server, certs, "approve", verdict.approval_id, "--amount", "200", "--comment",
                             "one item kept", "--json", role="approver")
    assert decided[0]["status"] == "approved", decided
    decision = agent.wait_for_decision(verdict.pending_action_id, timeout=10)
    assert decision.released, decision
    assert decision.action["amount"] == "200", decision.action
    assert decision.action["parameters"] == {"order_id": "42", "amount": 200}, decision.action


def test_an_action_whose_amount_argument_disagrees_is_never_assessed(
        binaries: Path, certs: Path, server: ServerProcess, agent: handoff.Client) -> None:
    """Fail closed: an action stated at 250 whose arguments move 2500 (or that
    states no amount, or writes it as "250,000") is refused at assessment, so
    it can never be approved or released."""
    agent.sessions.create("refund-mismatch")
    for action in [{"tool_name": "issue_refund", "parameters": {"amount": 2500}, "amount": "250", "currency": "USD"},
                   {"tool_name": "issue_refund", "parameters": {"amount": 1000000}},
                   {"tool_name": "issue_refund", "parameters": {"amount": "250,000"}, "amount": "250", "currency": "USD"}]:
        try:
            agent.assess("refund-mismatch", action)
            raise AssertionError(f"assessed: {action}")
        except handoff.InvalidArgument as error:
            assert "would not move the amount assessed and approved" in str(error), error
    assert agent.sessions.get("refund-mismatch").status == "ACTIVE"


def test_two_parallel_legal_actions_each_get_a_decision_one_after_the_other(
        binaries: Path, certs: Path, server: ServerProcess, agent: handoff.Client, operator: handoff.Client) -> None:
    """An agent proposes two actions the policy escalates, in parallel: the
    first ticket is the operator's, the second waits (`queue --status waiting`)
    and opens when the first is resolved; each action gets its own decision."""
    agent.sessions.create("two-legal")
    lease = agent.assess("two-legal", {"tool_name": "draft_contract", "description": "Give legal advice on the lease"})
    rash = agent.assess("two-legal", {"tool_name": "diagnose", "description": "Give a medical diagnosis of the rash"})
    assert lease.ticket_id and rash.ticket_id and lease.ticket_id != rash.ticket_id
    queue = cli(binaries, server, certs, "queue", "--json")
    assert [t["ticket_id"] for t in queue if t["session_id"] == "two-legal"] == [lease.ticket_id], queue
    waiting = cli(binaries, server, certs, "queue", "--status", "waiting", "--json")
    assert [(t["ticket_id"], t["status"]) for t in waiting] == [(rash.ticket_id, "waiting")], waiting
    assert [t.id for t in operator.desk.queue(statuses=["waiting"])] == [rash.ticket_id]  # the SDK names it too
    early = subprocess.run([str(binaries / "handoff"), "claim", rash.ticket_id, "--server", server.address, "--certs",
                            str(certs), "--role", "operator"], capture_output=True, text=True, timeout=30)
    assert early.returncode == 1 and "waiting" in early.stdout + early.stderr, early.stdout + early.stderr

    cli(binaries, server, certs, "claim", lease.ticket_id, "--json")
    cli(binaries, server, certs, "resolve", lease.ticket_id, "--outcome", "resolved", "--reject", "--note", "no", "--json")
    assert agent.wait_for_decision(lease.pending_action_id, timeout=10).status == "REJECTED"
    reopened = cli(binaries, server, certs, "ticket", rash.ticket_id, "--json")
    assert reopened["status"] == "open", reopened
    cli(binaries, server, certs, "claim", rash.ticket_id, "--json")
    cli(binaries, server, certs, "resolve", rash.ticket_id, "--outcome", "resolved", "--release", "--note", "ok", "--json")
    assert agent.wait_for_decision(rash.pending_action_id, timeout=10).released
    assert agent.sessions.get("two-legal").status == "ACTIVE"


def test_shutdown_ends_open_watches_at_once(binaries: Path, certs: Path, tmp_path: Path) -> None:
    """SIGTERM with a watcher connected: the Watch ends with UNAVAILABLE at once
    (the watcher resumes elsewhere) instead of holding shutdown for the whole
    10 s grace period."""
    import threading
    import time

    config = tmp_path / "handoffd.yaml"
    config.write_text("limits:\n  shutdown_grace_seconds: 10\n")
    server = ServerProcess(binaries, tmp_path / "data", certs, config=config)
    operator = handoff.Client.from_certs(server.address, str(certs), role="operator", default_timeout=10)
    ended: List[BaseException] = []

    def watch() -> None:
        try:
            with operator.desk.watch() as events:
                for _ in events:
                    pass
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            ended.append(error)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    time.sleep(0.5)  # the watch is open
    began = time.monotonic()
    status = server.stop()
    took = time.monotonic() - began
    thread.join(timeout=10)
    operator.close()
    assert status == 0
    assert took < 5, f"handoffd took {took:.1f} s to stop with a watcher connected"
    assert ended and isinstance(ended[0], handoff.Unavailable), ended
    assert "shutting down" in str(ended[0]), ended


def test_shutdown_still_sends_the_approval_notices_it_queued(binaries: Path, certs: Path, tmp_path: Path) -> None:
    """Three refunds open three approvals, each queueing a notice for its
    approvers; the webhook takes 0.6 s per notice. SIGTERM at once: handoffd
    delivers all three before it exits (within the shutdown grace)."""
    import http.server
    import threading
    import time

    received: List[Any] = []

    class SlowReceiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(0.6)
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    secret = tmp_path / "webhook.secret"
    secret.write_text("s3cret-for-the-test-only-32-bytes!!")
    secret.chmod(0o600)
    config = tmp_path / "handoffd.yaml"
    config.write_text("notifications:\n  channels:\n"
                      f"    - {{type: webhook, url: \"http://127.0.0.1:{receiver.server_address[1]}/notices\", "
                      f"secret_file: \"{secret}\"}}\n")
    server = ServerProcess(binaries, tmp_path / "data", certs, config=config)
    agent = handoff.Client.from_certs(server.address, str(certs), role="agent", default_timeout=10)
    try:
        approvals = []
        for i in range(3):
            agent.sessions.create(f"refund-{i}")
            approvals.append(agent.assess(f"refund-{i}", {"tool_name": "issue_refund", "description": "Refund order",
                                                          "amount": "250", "currency": "USD"}).approval_id)
        assert all(approvals), approvals
        agent.close()
        started = time.monotonic()
        assert server.stop() == 0, "".join(server.output)
        took = time.monotonic() - started
    finally:
        agent.close()
        server.stop()
        receiver.shutdown()
    delivered = {notice.get("approval_id") for notice in received}
    assert set(approvals) <= delivered, f"delivered {delivered}, opened {approvals}; took {took:.1f} s\n" + "".join(server.output)


def test_certs_issue_makes_a_global_admin_who_names_the_tenant(binaries: Path, tmp_path: Path) -> None:
    """`handoff certs issue --global` makes a global admin's certificate; with
    --tenant the CLI acts in that tenant, without it the server says what is missing."""
    certs = tmp_path / "certs"
    made = subprocess.run([str(binaries / "handoff"), "certs", "init", str(certs), "--tenant", "acme"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    issued = subprocess.run([str(binaries / "handoff"), "certs", "issue", str(certs), "--name", "root", "--role", "admin", "--global"],
                            capture_output=True, text=True)
    assert issued.returncode == 0 and "handoff://global/admin/root" in issued.stdout, issued.stdout + issued.stderr
    assert (certs / "global.admin.root.key").stat().st_mode & 0o077 == 0
    server = ServerProcess(binaries, tmp_path / "data", certs)
    try:
        agent = handoff.Client.from_certs(server.address, str(certs), role="agent", default_timeout=10)
        agent.sessions.create("visible")
        agent.escalate("visible", "security question")
        agent.close()
        base = [str(binaries / "handoff"), "queue", "--json", "--server", server.address, "--certs", str(certs),
                "--role", "global.admin.root"]
        unnamed = subprocess.run(base, capture_output=True, text=True, timeout=30)
        assert unnamed.returncode != 0 and "handoff-tenant" in unnamed.stderr + unnamed.stdout
        named = subprocess.run(base + ["--tenant", "acme"], capture_output=True, text=True, timeout=30)
        assert named.returncode == 0, named.stderr
        assert [t["session_id"] for t in json.loads(named.stdout)] == ["visible"]
    finally:
        server.stop()
