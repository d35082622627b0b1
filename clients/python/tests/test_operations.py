"""What the teams that run handoffd rely on, against a real handoffd:
Prometheus metrics with exact values (read with prometheus_client's own
parser), /healthz and /readyz through a drain, JSON logs that parse and hold
no secret, trace context from the caller to the audit trail, an online backup
taken under write load that restores whole, and the versions reported."""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

import handoff
from handoff._methods import MethodInfo
from conftest import TEST_TOKEN, ServerProcess, wait_until
from handoff.v1 import admin_pb2, sessions_pb2

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def start(binaries: Path, certs: Path, data: Path, config: Path, *extra: str) -> Tuple[ServerProcess, str]:
    """A handoffd with metrics on a free port; returns it and its metrics base URL."""
    server = ServerProcess(binaries, data, certs, config=config, extra=["--metrics-listen", "127.0.0.1:0", *extra])
    assert wait_until(lambda: any("metrics and health checks on" in line for line in server.output), timeout=10), \
        "".join(server.output)
    line = next(line for line in server.output if "metrics and health checks on" in line)
    found = re.search(r"http://(127\.0\.0\.1:\d+)/metrics", line)
    assert found, line
    return server, f"http://{found.group(1)}"


def get(url: str) -> Tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(base: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by prometheus_client: (name, sorted labels) -> value."""
    status, text = get(base + "/metrics")
    assert status == 200, text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def ops_config(tmp_path: Path, server_config: Path) -> Path:
    """The test settings plus a drain delay, so /readyz can be seen answering 503 while calls are still served."""
    path = tmp_path / "ops.yaml"
    path.write_text(server_config.read_text().replace("limits:\n", "limits:\n  drain_delay_seconds: 2\n"))
    return path


def test_metrics_count_exactly_what_was_called(binaries: Path, certs: Path, tmp_path: Path, ops_config: Path) -> None:
    server, base = start(binaries, certs, tmp_path / "data", ops_config)
    agent = handoff.Client.from_certs(server.address, str(certs), role="agent", default_timeout=10)
    approver = handoff.Client.from_certs(server.address, str(certs), role="approver", default_timeout=10)
    try:
        before = scrape(base)
        assert value(before, "handoff_build_info", version="0.1.0", commit=next(
            labels for (name, labels) in before if name == "handoff_build_info")[0][1]) == 1
        session = agent.sessions.create("metrics-1")
        for i in range(3):
            agent.sessions.update_state(session.id, {"step": i}, reasoning="counting")
        with pytest.raises(handoff.HandoffError):  # a stale version: refused, counted by its code
            agent.call("handoff.v1.Sessions/UpdateState", sessions_pb2.UpdateStateRequest(
                session_id=session.id, expected_version=1, merge_patch_json='{"x": 1}', reasoning="stale"))
        with pytest.raises(handoff.HandoffError):  # a method nobody serves: its name never becomes a label
            agent.call(MethodInfo("handoff.v1.Nope/Nothing", sessions_pb2.GetSessionRequest, sessions_pb2.GetSessionResponse, False),
                       sessions_pb2.GetSessionRequest(session_id="x"))
        for _ in range(2):
            agent.assess(session.id, {"tool_name": "get_weather", "parameters": {"city": "Oslo"},
                                      "description": "What's the weather?", "confidence": 0.95})
        refund = agent.assess(session.id, {"tool_name": "issue_refund", "description": "Refund my order",
                                           "amount": 250, "currency": "USD"})
        requested = agent.request_approval(session.id, pending_action=refund, reason="customer asked")
        pending = scrape(base)
        assert value(pending, "handoff_approvals_pending") == 1
        assert value(pending, "handoff_pending_actions_undecided") == 1
        decided = requested.approval
        for _ in range(len(decided.steps)):
            decided = approver.decide_approval(decided.id, "approve", comment="ok")
        assert agent.wait_for_decision(refund, timeout=5).released

        after = scrape(base)
        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)
        update = "handoff.v1.Sessions/UpdateState"
        assert delta("handoff_rpc_calls_total", method=update, code="OK") == 3
        assert delta("handoff_rpc_calls_total", method=update, code="ABORTED") + \
            delta("handoff_rpc_calls_total", method=update, code="FAILED_PRECONDITION") == 1
        assert delta("handoff_rpc_duration_seconds_count", method=update) == 4
        assert delta("handoff_rpc_calls_total", method="unknown", code="UNIMPLEMENTED") == 1
        assert not any("Nope" in str(labels) for (_, labels) in after), "a client's method name became a label"
        assert delta("handoff_rpc_calls_total", method="handoff.v1.Sessions/CreateSession", code="OK") == 1
        assert delta("handoff_assessments_total", strategy="automate", decision_type="informational") == 2
        assert delta("handoff_assessments_total", strategy="escalate", decision_type="financial") == 1
        assert delta("handoff_pending_actions_total", status="pending") == 1
        assert delta("handoff_pending_actions_total", status="released") == 1
        assert delta("handoff_decision_wait_seconds_count", strategy="escalate", outcome="released") == 1
        assert value(after, "handoff_approvals_pending") == 0
        assert value(after, "handoff_pending_actions_undecided") == 0
        assert value(after, "handoff_connections_open") >= 2
        assert value(after, "handoff_store_commit_duration_seconds_count") > 0
        assert value(after, "handoff_store_writes_per_commit_count") > 0
        # Every label value comes from a small fixed set: no ids, identities or free text.
        for (name, labels) in after:
            for key, label in labels:
                assert "metrics-1" not in label and "handoff://" not in label and "pa-" not in label, (name, labels)
        status, text = get(base + "/healthz")
        assert (status, text) == (200, "ok\n")
        assert get(base + "/readyz")[0] == 200
        assert get(base + "/nothing")[0] == 404
    finally:
        agent.close()
        approver.close()
        assert server.stop() == 0, "".join(server.output)


def test_readyz_turns_503_when_sigterm_starts_the_drain(binaries: Path, certs: Path, tmp_path: Path,
                                                       ops_config: Path) -> None:
    server, base = start(binaries, certs, tmp_path / "data", ops_config)
    agent = handoff.Client.from_certs(server.address, str(certs), role="agent", default_timeout=10)
    try:
        assert get(base + "/readyz") == (200, "ready\n")
        server.process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: get(base + "/readyz")[0] == 503, timeout=1.5), "no 503 within the drain delay"
        status, text = get(base + "/readyz")
        assert status == 503 and "draining" in text, text
        assert get(base + "/healthz")[0] == 200, "the process still answers"
        assert agent.ping().server_version.startswith("0.1.0+"), "calls are still served during the drain delay"
    finally:
        agent.close()
        assert server.process.wait(20) == 0, "".join(server.output)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_logs_carry_each_call_and_hold_no_secret(binaries: Path, certs: Path, tmp_path: Path, ops_config: Path,
                                                 log_format: str) -> None:
    server, base = start(binaries, certs, tmp_path / "data", ops_config, "--log-format", log_format, "--log-level", "debug")
    agent = handoff.Client.from_certs(server.address, str(certs), role="agent", default_timeout=10)
    token_agent = handoff.Client(server.address, ca_file=str(certs / "ca.pem"), bearer_token=TEST_TOKEN, default_timeout=10)
    try:
        with handoff.traceparent(TRACEPARENT):
            session = agent.sessions.create("json-logs")
            agent.sessions.update_state(session.id, {"a": 1}, reasoning="traced")
        token_agent.sessions.create("json-logs-token")
        # A code sent by the development file channel: it must not reach the log.
        deletion = agent.assess(session.id, {"tool_name": "delete_account", "description": "Delete my account"})
        assert deletion.strategy == "MULTI_FACTOR", deletion
        agent.start_multi_factor(deletion)
        codes = (tmp_path / "data" / "mfa-codes.jsonl")
        assert wait_until(codes.exists)
        code = json.loads(codes.read_text().splitlines()[-1])["code"]
        assert agent.verify_multi_factor(deletion, code).verified
        events = agent.sessions.list_events(session.id)
        traced = [e for e in events if e.traceparent == TRACEPARENT]
        assert {e.action for e in traced} == {"session.created", "session.state_updated"}, [(e.action, e.traceparent) for e in events]
        assert all(e.traceparent == "" for e in events if e not in traced)
    finally:
        agent.close()
        token_agent.close()
        assert server.stop() == 0, "".join(server.output)
    lines = [line for line in server.output if line.strip()]
    text = "\n".join(lines)
    assert TEST_TOKEN not in text
    assert code not in text
    key = (tmp_path / "data" / "mfa.key").read_bytes()
    assert key.hex() not in text and key.decode("latin-1") not in text
    if log_format == "text":
        assert any("call" in line and f"traceparent={TRACEPARENT}" in line and "CreateSession" in line for line in lines), text
        return
    objects = [json.loads(line) for line in lines]  # every line parses
    assert all({"time", "level", "message"} <= set(o) for o in objects)
    calls = [o for o in objects if o["message"] == "call"]
    created = [o for o in calls if o["method"] == "handoff.v1.Sessions/CreateSession"]
    assert len(created) == 2
    first = created[0]
    assert first["status"] == "OK" and first["tenant"] == "acme", first
    assert first["caller"].startswith("handoff://tenant/acme/agent/"), first
    assert float(first["duration_ms"]) >= 0 and first["call"]
    assert first.get("traceparent") == TRACEPARENT
    assert "traceparent" not in created[1]


def test_backup_under_write_load_restores_whole(binaries: Path, certs: Path, tmp_path: Path, ops_config: Path) -> None:
    issued = subprocess.run([str(binaries / "handoff"), "certs", "issue", str(certs), "--role", "admin", "--global",
                             "--name", "backup-ops"], capture_output=True, text=True, timeout=60)
    assert issued.returncode == 0 or "exists" in issued.stdout + issued.stderr, issued.stdout + issued.stderr
    server, _ = start(binaries, certs, tmp_path / "data", ops_config)
    sessions = [f"backup-{i}" for i in range(8)]
    setup = handoff.Client.from_certs(server.address, str(certs), role="agent", default_timeout=10)
    for name in sessions:
        setup.sessions.create(name)
    acknowledged: List[Tuple[float, str, int]] = []  # (when the answer came, session, version)
    lock = threading.Lock()
    stop = threading.Event()

    def writer(name: str) -> None:
        client = handoff.Client.from_certs(server.address, str(certs), role="agent", default_timeout=10)
        try:
            i = 0
            while not stop.is_set():
                i += 1
                updated = client.sessions.update_state(name, {"i": i}, reasoning="load")
                with lock:
                    acknowledged.append((time.monotonic(), name, updated.version))
        finally:
            client.close()

    threads = [threading.Thread(target=writer, args=(name,)) for name in sessions]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        out = tmp_path / "copy.sqlite"
        started = time.monotonic()
        ran = subprocess.run([str(binaries / "handoff"), "admin", "backup", "--out", str(out), "--server", server.address,
                              "--certs", str(certs), "--cert", str(certs / "global.admin.backup-ops.pem"),
                              "--key", str(certs / "global.admin.backup-ops.key")],
                             capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "backup written" in ran.stdout and out.exists() and not Path(str(out) + ".partial").exists()
        time.sleep(0.3)  # writes go on after it
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        setup.close()
    assert server.stop() == 0, "".join(server.output)
    before = {}
    for when, name, version in acknowledged:
        if when < started:
            before[name] = max(before.get(name, 0), version)
    assert len(before) == len(sessions) and len(acknowledged) > len(sessions) * 5

    # Restore as the operations guide says: a new data directory holding the copy as handoff.sqlite.
    restored = tmp_path / "restored"
    restored.mkdir(mode=0o700)
    shutil.copy(out, restored / "handoff.sqlite")
    (restored / "handoff.sqlite").chmod(0o600)
    shutil.copy(tmp_path / "data" / "mfa.key", restored / "mfa.key")  # the server key: cursors and tokens stay valid
    again, _ = start(binaries, certs, restored, ops_config)
    operator = handoff.Client.from_certs(again.address, str(certs), role="operator", default_timeout=10)
    agent = handoff.Client.from_certs(again.address, str(certs), role="agent", default_timeout=10)
    try:
        for name in sessions:
            assert agent.sessions.get(name).version >= before[name], f"{name}: a write acknowledged before the backup is missing"
            verified = operator.call("handoff.v1.Admin/VerifyAuditChain", admin_pb2.VerifyAuditChainRequest(session_id=name))
            assert verified.ok and verified.events_checked >= before[name], (name, verified)
        # The restored server takes writes.
        agent.sessions.update_state(sessions[0], {"after": "restore"}, reasoning="restored")
    finally:
        operator.close()
        agent.close()
        assert again.stop() == 0, "".join(again.output)
    refused = subprocess.run([str(binaries / "handoff"), "admin", "backup", "--out", str(out), "--server", "127.0.0.1:1",
                              "--certs", str(certs)], capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "exists" in refused.stdout + refused.stderr


def test_versions_are_reported(binaries: Path, server: ServerProcess, agent: handoff.Client) -> None:
    for binary in ("handoffd", "handoff"):
        ran = subprocess.run([str(binaries / binary), "--version"], capture_output=True, text=True, timeout=30)
        assert ran.returncode == 0 and re.fullmatch(r"0\.1\.0 \(commit [0-9a-f]{7,40}(-dirty)?\)\n", ran.stdout), ran.stdout
    commit = re.search(r"commit (\S+)\)", ran.stdout).group(1)  # type: ignore[union-attr]
    assert agent.ping().server_version == f"0.1.0+{commit}"


def test_backup_to_a_reader_that_stops_waits_for_it(binaries: Path, certs: Path, tmp_path: Path, ops_config: Path) -> None:
    """Over TLS a reader that stops reading slows the stream down (PROTOCOL §6.6): the server
    keeps the copy on disk and does not read it all into memory (seen: +415 MiB for a 217 MB store)."""
    import asyncio
    import glob
    issued = subprocess.run([str(binaries / "handoff"), "certs", "issue", str(certs), "--role", "admin", "--global",
                             "--name", "backup-ops"], capture_output=True, text=True, timeout=60)
    assert issued.returncode == 0 or "exists" in issued.stdout + issued.stderr, issued.stdout + issued.stderr
    data = tmp_path / "data"
    server, _ = start(binaries, certs, data, ops_config)
    with handoff.Client.from_certs(server.address, str(certs), role="agent", default_timeout=30) as agent:
        blob = "".join(f"{i:08x}" for i in range(30_000))  # 240 KB, just under the state limit
        for i in range(160):
            agent.sessions.create(f"big-{i}", state={"blob": blob[i:] + blob[:i]})
    def anonymous_mib() -> float:
        line = next(l for l in open(f"/proc/{server.process.pid}/status") if l.startswith("RssAnon"))
        return int(line.split()[1]) / 1024

    async def paused_reader() -> Tuple[float, bool, int]:
        client = handoff.AsyncClient.from_certs(server.address, str(certs), role="global.admin.backup-ops")
        async with client:
            before = anonymous_mib()
            stream = client.stream("handoff.v1.Admin/Backup", admin_pb2.BackupRequest(), timeout=None)
            pieces = stream.__aiter__()
            await pieces.__anext__()
            client.connection.transport.pause_reading()
            await asyncio.sleep(2.5)
            grew = anonymous_mib() - before
            copy_on_disk = bool(glob.glob(str(data / "*.backup-*")))
            client.connection.transport.resume_reading()
            count = 1
            async for _ in pieces:
                count += 1
            return grew, copy_on_disk, count

    try:
        grew, copy_on_disk, count = asyncio.run(paused_reader())
        assert count > 30, "the copy (about 40 MB in 1 MiB pieces) arrived whole after the reader resumed"
        assert copy_on_disk, "the server had read the whole copy while its reader was paused"
        assert grew < 24, f"the server's memory grew by {grew:.0f} MiB while its reader was paused"
        assert not glob.glob(str(data / "*.backup-*")), "the copy is removed once streamed"
    finally:
        assert server.stop() == 0, "".join(server.output)


def test_the_metrics_listener_answers_a_half_closed_request_and_closes_bad_ones(
        binaries: Path, certs: Path, tmp_path: Path, ops_config: Path) -> None:
    import socket
    server, base = start(binaries, certs, tmp_path / "data", ops_config)
    host, port = base[len("http://"):].split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5) as s:  # what printf … | nc -N does
            s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
            assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(b"ok\n"), answer
        with socket.create_connection((host, int(port)), timeout=5) as s:  # malformed: 400, then closed
            s.sendall(b"GARBAGE\x00\x01 / HTTP/1.1\r\n\r\n")
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
            assert b" 400 " in answer.split(b"\r\n")[0], answer
        # Past 64 connections, one is closed as it arrives; the RPC port goes on answering.
        held = [socket.create_connection((host, int(port)), timeout=5) for _ in range(70)]
        try:
            time.sleep(0.3)
            closed = 0
            for s in held:
                s.setblocking(False)
                try:
                    closed += s.recv(1) == b""
                except BlockingIOError:
                    pass
            assert closed >= 6, f"{closed} of 70 connections closed; the cap is 64"
            with handoff.Client.from_certs(server.address, str(certs), role="agent", default_timeout=5) as agent:
                assert agent.ping().server_version
        finally:
            for s in held:
                s.close()
        time.sleep(0.3)
        assert get(base + "/healthz")[0] == 200, "connections are counted down as they close"
    finally:
        assert server.stop() == 0, "".join(server.output)
