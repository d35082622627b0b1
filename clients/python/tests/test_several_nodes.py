"""Several handoffd nodes on one PostgreSQL database (real processes, real TLS,
a real PostgreSQL server: HANDOFF_TEST_POSTGRES from scripts/with-postgres, or
a throwaway cluster started here). A write acknowledged by one node is seen by
every later call on the other (resident sessions included); concurrent claims
on both nodes have exactly one winner; a Watch on one node delivers what the
other committed, and its cursor resumes on the other; a node killed with -9
loses nothing it acknowledged, and the other goes on."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

import handoff
from conftest import ROOT, ServerProcess, bin_dir

OPERATOR_TOKEN = "t0k-operator-{}"
CLUSTER_DIR = Path(f"/tmp/handoff-pg-pytest-{os.getpid()}")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    url = os.environ.get("HANDOFF_TEST_POSTGRES")
    if url:
        yield url
        return
    os.environ["HANDOFF_TEST_POSTGRES_DIR"] = str(CLUSTER_DIR)
    started = subprocess.run([str(ROOT / "scripts" / "pg-cluster"), "start", str(CLUSTER_DIR)],
                             capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    yield started.stdout.strip().splitlines()[-1]
    subprocess.run([str(ROOT / "scripts" / "pg-cluster"), "stop", str(CLUSTER_DIR)], capture_output=True, timeout=60)
    subprocess.run(["rm", "-rf", str(CLUSTER_DIR)])


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    """A database of its own for one test."""
    name = "n_" + uuid.uuid4().hex
    admin = postgres_url.rsplit("/", 1)[0] + "/postgres"
    subprocess.run(["psql", admin, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", f"CREATE DATABASE {name}"], check=True,
                   capture_output=True, timeout=60)
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    subprocess.run(["psql", admin, "-qAt", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True,
                   timeout=60)


@pytest.fixture
def nodes(binaries: Path, certs: Path, database: str, tmp_path: Path) -> Iterator[List[ServerProcess]]:
    """Two nodes on one database, sharing the key that seals cursors and codes,
    with a one-second claim SLA and sweeps every 100 ms."""
    policy = tmp_path / "policy.yaml"
    shipped = subprocess.run([str(binaries / "handoff"), "policy", "default"], capture_output=True, text=True, check=True)
    policy.write_text(shipped.stdout.replace("sla_seconds: {urgent: 300, high: 900, normal: 3600}",
                                             "sla_seconds: {urgent: 1, high: 1, normal: 1}"))
    config = tmp_path / "node.yaml"
    tokens = "".join(
        f"  - {{identity: \"handoff://tenant/acme/operator/op-{i}\", sha256: \"{hashlib.sha256(OPERATOR_TOKEN.format(i).encode()).hexdigest()}\"}}\n"
        for i in range(8))
    config.write_text(
        "limits:\n  shutdown_grace_seconds: 2\n"
        f"policy: {policy}\n"
        "desk:\n  sweep_interval_ms: 100\n"
        f"multi_factor:\n  key_file: {tmp_path / 'shared-mfa.key'}\n"
        f"store:\n  url: {database}\n  pool_size: 8\n"
        f"tokens:\n{tokens}")
    started = [ServerProcess(binaries, tmp_path / f"node-{i}", certs, config=config) for i in range(2)]
    yield started
    for node in started:
        if node.process.poll() is None:
            assert node.stop() == 0, "".join(node.output)


def audit_verify(node: ServerProcess, certs: Path, session: str) -> None:
    """`handoff audit verify` of `session` on `node`: its whole chain checks."""
    verified = subprocess.run([str(bin_dir() / "handoff"), "audit", "verify", session, "--server", node.address,
                               "--certs", str(certs), "--role", "operator"], capture_output=True, text=True, timeout=30)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def assert_numbered(events) -> None:  # type: ignore[no-untyped-def]
    """A session's events are numbered 1, 2, 3, … without gaps."""
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))


def client(node: ServerProcess, certs: Path, role: str = "agent") -> handoff.Client:
    return handoff.Client.from_certs(node.address, str(certs), role=role, default_timeout=20)


def test_each_node_sees_what_the_other_acknowledged(nodes: List[ServerProcess], certs: Path) -> None:
    a, b = client(nodes[0], certs), client(nodes[1], certs)
    try:
        a.sessions.create("s-1", state={"step": 0})
        assert a.sessions.get("s-1").version == 1  # resident on node A now
        assert b.sessions.update_state("s-1", {"step": 1}, reasoning="on B").version == 2
        # Node A's resident session does not answer from its stale copy.
        seen = a.sessions.get("s-1")
        assert (seen.version, seen.state["step"]) == (2, 1)
        assert a.sessions.update_state("s-1", {"step": 2}, reasoning="on A").version == 3
        with pytest.raises(handoff.Aborted):
            b.sessions.update_state("s-1", {"step": 9}, reasoning="stale", expected_version=2)
        a.sessions.get_context("s-1")  # fills A's context cache
        b.sessions.add_turn("s-1", input="hello", output="from B")
        b.sessions.add_memory("s-1", "prefers email")
        context = a.sessions.get_context("s-1")
        assert [t.output for t in context.turns] == ["from B"]
        assert [m.content for m in context.memories] == ["prefers email"]
        assert_numbered(a.sessions.list_events("s-1"))
    finally:
        a.close()
        b.close()


def test_concurrent_claims_on_both_nodes_have_one_winner(nodes: List[ServerProcess], certs: Path) -> None:
    agent = client(nodes[0], certs)
    # Eight operators (a claim by the operator who holds it already is a no-op, not a second winner).
    operators = [handoff.Client(nodes[i % 2].address, ca_file=str(certs / "ca.pem"),
                                bearer_token=OPERATOR_TOKEN.format(i), default_timeout=20) for i in range(8)]
    try:
        tickets = []
        for i in range(20):  # 20 rounds
            agent.sessions.create(f"c-{i}")
            tickets.append(agent.escalate(f"c-{i}", "needs a person").ticket.id)
        for ticket_id in tickets:
            outcomes: List[str] = []
            barrier = threading.Barrier(len(operators))

            def claim(op: handoff.Client) -> None:
                barrier.wait()
                try:
                    op.desk.claim(ticket_id)
                    outcomes.append("won")
                except handoff.HandoffError as error:
                    outcomes.append(type(error).__name__)

            threads = [threading.Thread(target=claim, args=(op,)) for op in operators]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert outcomes.count("won") == 1, outcomes
            assert len(outcomes) == len(operators), outcomes
    finally:
        agent.close()
        for op in operators:
            op.close()


def _watch(op: handoff.Client, found: List[Tuple[str, str, str]], stop: threading.Event, cursor: str = "") -> None:
    with op.desk.watch(resume_cursor=cursor or None, timeout=60) as events:
        for event in events:
            if event.HasField("ticket") and event.ticket.id:
                found.append((operators_kind(event), event.ticket.id, event.cursor))
            if stop.is_set():
                return


def operators_kind(event) -> str:  # type: ignore[no-untyped-def]
    from handoff.v1 import operators_pb2
    return operators_pb2.DeskEventKind.Name(event.kind)


def test_a_watch_on_one_node_sees_the_other_nodes_commits_and_resumes_there(nodes: List[ServerProcess],
                                                                            certs: Path) -> None:
    agent = client(nodes[0], certs)
    watcher_b = client(nodes[1], certs, "operator")
    watcher_a = client(nodes[0], certs, "operator")
    try:
        found: List[Tuple[str, str, str]] = []
        stop = threading.Event()
        thread = threading.Thread(target=_watch, args=(watcher_b, found, stop), daemon=True)
        thread.start()
        time.sleep(1.0)  # the watch is open on node B
        opened: List[str] = []
        started = time.monotonic()
        for i in range(5):
            agent.sessions.create(f"w-{i}")
            opened.append(agent.escalate(f"w-{i}", "look at this").ticket.id)
        deadline = time.monotonic() + 15
        while len({t for _, t, _ in found}) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        seen = [t for k, t, _ in found if k.endswith("TICKET_OPENED")]
        assert seen == opened, (found, opened)  # every one, once, in commit order
        # Told by NOTIFY, not only by the two-second poll (generous on a busy machine).
        assert time.monotonic() - started < 10
        # Node B's cursor after the second ticket resumes on node A with the rest.
        cursor = found[1][2]
        resumed: List[Tuple[str, str, str]] = []
        thread_a = threading.Thread(target=_watch, args=(watcher_a, resumed, stop, cursor), daemon=True)
        thread_a.start()
        deadline = time.monotonic() + 15
        while len(resumed) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [t for _, t, _ in resumed[:3]] == opened[2:], resumed
        stop.set()
        agent.sessions.create("w-last")
        agent.escalate("w-last", "ends the watches")
        thread.join(20)
        thread_a.join(20)
    finally:
        agent.close()
        watcher_a.close()
        watcher_b.close()


def test_a_node_killed_mid_writes_loses_nothing_it_acknowledged(nodes: List[ServerProcess], certs: Path) -> None:
    setup = client(nodes[1], certs)
    for i in range(4):
        setup.sessions.create(f"k-{i}", state={"n": 0})
    acknowledged: dict = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(node: ServerProcess, session: str) -> None:
        c = client(node, certs)
        try:
            while not stop.is_set():
                try:
                    version = c.sessions.update_state(session, {"n": time.time_ns()}, reasoning="load").version
                except handoff.HandoffError:
                    if node.process.poll() is not None:
                        return  # the node is gone
                    continue
                with lock:
                    acknowledged[session] = max(acknowledged.get(session, 0), version)
        finally:
            c.close()

    threads = [threading.Thread(target=writer, args=(nodes[i % 2], f"k-{i % 4}")) for i in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    nodes[0].process.send_signal(signal.SIGKILL)
    nodes[0].process.wait(10)
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join(30)
    try:
        for session, version in acknowledged.items():
            stored = setup.sessions.get(session)
            assert stored.version >= version, (session, stored.version, version)
            assert_numbered(setup.sessions.list_events(session))
        for i in range(4):
            audit_verify(nodes[1], certs, f"k-{i}")
        # Node B still serves writes.
        assert setup.sessions.update_state("k-0", {"n": -1}, reasoning="after").version > acknowledged.get("k-0", 1)
    finally:
        setup.close()


def test_a_store_that_cannot_be_reached_or_named_stops_the_start_with_one_line(binaries: Path, certs: Path,
                                                                              tmp_path: Path) -> None:
    cases = [("postgres://handoff@127.0.0.1:1/handoff", "cannot connect to PostgreSQL at handoff@127.0.0.1:1/handoff: "
              "connection refused"),
             ("mysql://handoff:hunter2@db/handoff", "is not a PostgreSQL URL")]
    for url, expected in cases:
        ran = subprocess.run([str(binaries / "handoffd"), "--data", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
                              "--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key"),
                              "--client-ca", str(certs / "ca.pem"), "--store", url],
                             capture_output=True, text=True, timeout=60)
        assert ran.returncode == 1, ran.stderr
        assert expected in ran.stderr, ran.stderr
        assert "hunter2" not in ran.stderr  # a password in the URL is never printed


def test_a_decision_on_one_node_reaches_a_waiter_on_the_other_and_its_release_runs_once(
        nodes: List[ServerProcess], certs: Path) -> None:
    agent_a, agent_b = client(nodes[0], certs), client(nodes[1], certs)
    approver_b = client(nodes[1], certs, "approver")
    try:
        session = agent_a.sessions.create()
        assessment = agent_a.assess(session.id, {"tool_name": "issue_refund", "description": "Refund my order",
                                                 "amount": 250, "currency": "USD"})
        assert assessment.escalated and assessment.approval_id
        decided: List[object] = []
        waiter = threading.Thread(target=lambda: decided.append(agent_a.wait_for_decision(assessment, timeout=30)))
        waiter.start()
        time.sleep(0.5)  # the wait is open on node A
        approval = approver_b.get_approval(assessment.approval_id)
        while approval.status == 1:  # APPROVAL_STATUS_PENDING: one decision per step, all on node B
            approval = approver_b.decide_approval(approval.id, "approve", comment="ok")
        waiter.join(30)
        assert decided and decided[0].released, decided  # type: ignore[attr-defined]
        decision = decided[0]
        outcomes: List[str] = []
        barrier = threading.Barrier(2)

        def report(agent: handoff.Client, key: str) -> None:
            barrier.wait()
            try:
                result = agent.report_execution(decision, {"refund": key}, idempotency_key=key)  # type: ignore[arg-type]
                outcomes.append("recorded" if result.recorded and not result.duplicate else "duplicate")
            except handoff.HandoffError as error:
                outcomes.append(type(error).__name__)

        threads = [threading.Thread(target=report, args=(agent_a, "run-a")),
                   threading.Thread(target=report, args=(agent_b, "run-b"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert outcomes.count("recorded") == 1, outcomes
    finally:
        agent_a.close()
        agent_b.close()
        approver_b.close()


def test_the_sweepers_of_both_nodes_record_each_sla_breach_once(nodes: List[ServerProcess], certs: Path) -> None:
    agent = client(nodes[0], certs)
    try:
        for i in range(6):
            agent.sessions.create(f"sla-{i}")
            agent.escalate(f"sla-{i}", "nobody claims this")
        time.sleep(3)  # past the one-second SLA; both nodes sweep every 100 ms
        for i in range(6):
            breaches = [e for e in agent.sessions.list_events(f"sla-{i}") if e.action == "ticket.sla_breached"]
            assert len(breaches) == 1, (i, breaches)
    finally:
        agent.close()


def test_sixteen_writers_on_each_node_with_expected_versions_lose_no_update(nodes: List[ServerProcess],
                                                                          certs: Path) -> None:
    setup = client(nodes[0], certs)
    sessions = [f"v-{i}" for i in range(4)]
    for session in sessions:
        setup.sessions.create(session, state={"writes": []})
    written: List[Tuple[str, int]] = []
    lock = threading.Lock()

    def writer(node: ServerProcess, number: int) -> None:
        c = client(node, certs)
        try:
            for round_ in range(6):
                session = sessions[(number + round_) % len(sessions)]
                while True:
                    current = c.sessions.get(session)
                    try:
                        update = c.sessions.update_state(
                            session, {"writes": current.state["writes"] + [f"{number}-{round_}"]}, reasoning="w",
                            expected_version=current.version)
                    except handoff.Aborted:
                        continue  # another writer came first: read again
                    with lock:
                        written.append((session, update.version))
                    break
        finally:
            c.close()

    threads = [threading.Thread(target=writer, args=(nodes[i % 2], i)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        assert len(written) == 32 * 6
        for session in sessions:
            versions = sorted(v for s, v in written if s == session)
            stored = setup.sessions.get(session)
            # Versions without gaps or repeats, and every acknowledged write in the state: no lost update.
            assert versions == list(range(2, stored.version + 1)), (session, versions[:10], stored.version)
            assert len(stored.state["writes"]) == len(versions) == len(set(stored.state["writes"]))
            audit_verify(nodes[1], certs, session)
    finally:
        setup.close()


def test_the_seed_story_across_two_nodes(nodes: List[ServerProcess], certs: Path) -> None:
    """The agent on node A; the operator and the approver on node B."""
    agent = client(nodes[0], certs)
    operator = client(nodes[1], certs, "operator")
    approver = client(nodes[1], certs, "approver")
    try:
        found: List[Tuple[str, str, str]] = []
        stop = threading.Event()
        watching = threading.Thread(target=_watch, args=(operator, found, stop), daemon=True)
        watching.start()
        time.sleep(1.0)  # B's Watch is open
        session = agent.sessions.create("seed-1")
        agent.sessions.add_turn(session.id, input="I want my money back", output="Let me check")
        booking = agent.assess(session.id, {"tool_name": "book_flight", "description": "Change my flight",
                                            "parameters": {"to": "NYC"}})
        ticket = agent.escalate(session.id, "the customer asks for a person", booking.pending_action_id).ticket
        deadline = time.monotonic() + 15
        while not any(t == ticket.id for _, t, _ in found) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert any(k.endswith("TICKET_OPENED") and t == ticket.id for k, t, _ in found), found
        operator.desk.claim(ticket.id)
        operator.desk.reply(ticket.id, "I am on it: your flight is changed.")
        assert agent.sessions.get_context(session.id).turns[-1].output == "I am on it: your flight is changed."
        waited: List[object] = []
        waiter = threading.Thread(target=lambda: waited.append(agent.wait_for_decision(booking, timeout=30)))
        waiter.start()
        time.sleep(0.3)
        operator.desk.resolve(ticket.id, "resolved", note="changed", decision="release")
        waiter.join(30)
        assert waited and waited[0].released, waited  # type: ignore[attr-defined]
        # A refund approved on B releases on A.
        refund = agent.assess(session.id, {"tool_name": "issue_refund", "description": "Refund my order",
                                           "amount": 250, "currency": "USD"})
        approval = approver.get_approval(refund.approval_id)
        while approval.status == 1:
            approval = approver.decide_approval(approval.id, "approve", comment="ok")
        assert agent.wait_for_decision(refund, timeout=30).released
        stop.set()
    finally:
        agent.close()
        operator.close()
        approver.close()


def test_postgresql_stopped_and_started_while_the_nodes_serve(nodes: List[ServerProcess], certs: Path) -> None:
    directory = os.environ.get("HANDOFF_TEST_POSTGRES_DIR")
    assert directory, "scripts/with-postgres names the cluster's directory"
    port = Path(directory, "port").read_text().strip()
    a, b = client(nodes[0], certs), client(nodes[1], certs)
    try:
        a.sessions.create("pg-down", state={"n": 0})
        acknowledged = a.sessions.update_state("pg-down", {"n": 1}, reasoning="before").version
        stopped = subprocess.run([str(ROOT / "scripts" / "pg-cluster"), "stop", directory], capture_output=True, text=True,
                                 timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        try:
            for node in (a, b):
                started = time.monotonic()
                with pytest.raises(handoff.Unavailable) as refused:
                    node.sessions.update_state("pg-down", {"n": 2}, reasoning="while down")
                # A status naming the store, within the lease timeout (not the call's deadline).
                assert "PostgreSQL" in str(refused.value) or "store" in str(refused.value), str(refused.value)
                assert time.monotonic() - started < 15
        finally:
            restarted = subprocess.run([str(ROOT / "scripts" / "pg-cluster"), "start", directory, port],
                                       capture_output=True, text=True, timeout=120)
            assert restarted.returncode == 0, restarted.stderr
        # Both nodes write again once the server is back.
        for node in (a, b):
            deadline = time.monotonic() + 60
            while True:
                try:
                    node.sessions.update_state("pg-down", {"n": 3}, reasoning="after")
                    break
                except handoff.Unavailable:
                    assert time.monotonic() < deadline, "the node did not write again within 60 s of PostgreSQL's restart"
                    time.sleep(0.5)
        stored = b.sessions.get("pg-down")
        assert stored.version >= acknowledged + 2 and stored.state["n"] == 3
        assert_numbered(b.sessions.list_events("pg-down"))
    finally:
        a.close()
        b.close()


def test_updates_without_an_expected_version_are_never_refused_as_stale(nodes: List[ServerProcess], certs: Path) -> None:
    setup = client(nodes[0], certs)
    setup.sessions.create("plain", state={})
    refused: List[str] = []

    def writer(node: ServerProcess, number: int) -> None:
        c = client(node, certs)
        try:
            for i in range(20):
                try:
                    c.sessions.update_state("plain", {f"w{number}": i}, reasoning="plain")
                except handoff.HandoffError as error:
                    refused.append(f"{type(error).__name__}: {error}")
        finally:
            c.close()

    threads = [threading.Thread(target=writer, args=(nodes[i % 2], i)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        assert refused == [], refused[:3]
        stored = setup.sessions.get("plain")
        assert stored.version == 1 + 10 * 20 and all(stored.state[f"w{i}"] == 19 for i in range(10))
    finally:
        setup.close()
