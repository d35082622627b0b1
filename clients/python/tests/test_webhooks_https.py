"""Webhook channels over https: handoffd verifies the receiver's certificate
(against `ca_file`, else the system's trust store) and its name, then POSTs
the signed JSON. A receiver whose certificate does not chain to the CA gets
nothing; the call is UNAVAILABLE and the server's log says why."""
from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest

import handoff
from conftest import ServerProcess

SECRET = b"https-webhook-secret-for-tests!!"


@pytest.fixture
def receiver(certs: Path) -> Iterator[Tuple[int, List[Any]]]:
    """An HTTPS receiver with the development server certificate (localhost, 127.0.0.1)."""
    received: List[Any] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            timestamp = self.headers["X-Handoff-Timestamp"]
            expected = "sha256=" + hmac.new(SECRET, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
            signed = hmac.compare_digest(expected, self.headers["X-Handoff-Signature"])
            received.append((json.loads(body), signed))
            self.send_response(204 if signed else 401)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certs / "server.pem"), str(certs / "server.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()


def config_for(tmp_path: Path, url: str, ca_file: Path) -> Path:
    """Settings whose one code channel is the webhook at `url`."""
    secret = tmp_path / "hook.secret"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    config = tmp_path / "handoffd.yaml"
    config.write_text("multi_factor:\n  channels:\n"
                      f"    - {{type: webhook, url: \"{url}\", secret_file: \"{secret}\", ca_file: \"{ca_file}\"}}\n")
    return config


def start(binaries: Path, certs: Path, tmp_path: Path, port: int, ca_file: Path) -> ServerProcess:
    config = config_for(tmp_path, f"https://127.0.0.1:{port}/codes", ca_file)
    return ServerProcess(binaries, tmp_path / "data", certs, config=config)


def test_a_code_reaches_an_https_receiver_signed(binaries: Path, certs: Path, tmp_path: Path,
                                                 receiver: Tuple[int, List[Any]]) -> None:
    port, received = receiver
    server = start(binaries, certs, tmp_path, port, certs / "ca.pem")
    agent = handoff.Client.from_certs(server.address, str(certs), role="agent", default_timeout=10)
    try:
        agent.sessions.create("https-mfa")
        assessment = agent.assess("https-mfa", {"tool_name": "delete_user_data", "description": "Delete all my data"})
        assert assessment.needs_multi_factor
        agent.start_multi_factor(assessment)
        assert len(received) == 1 and received[0][1], received
        delivery = received[0][0]
        assert delivery["pending_action_id"] == assessment.pending_action_id
        assert agent.verify_multi_factor(assessment, delivery["code"]).verified
    finally:
        agent.close()
        server.stop()


def test_a_receiver_outside_the_ca_gets_nothing_and_the_log_says_why(
        binaries: Path, certs: Path, tmp_path: Path, receiver: Tuple[int, List[Any]]) -> None:
    port, received = receiver
    other = tmp_path / "other-ca"
    made = subprocess.run([str(binaries / "handoff"), "certs", "init", str(other)], capture_output=True, text=True,
                          timeout=60)
    assert made.returncode == 0, made.stdout + made.stderr
    server = start(binaries, certs, tmp_path, port, other / "ca.pem")
    agent = handoff.Client.from_certs(server.address, str(certs), role="agent", default_timeout=10)
    try:
        agent.sessions.create("https-untrusted")
        assessment = agent.assess("https-untrusted", {"tool_name": "delete_user_data", "description": "Delete it all"})
        with pytest.raises(handoff.HandoffError) as refused:
            agent.start_multi_factor(assessment)
        assert refused.value.code == handoff.StatusCode.UNAVAILABLE, refused.value
        assert received == []
    finally:
        agent.close()
        server.stop()
    # The operator's log names the channel and OpenSSL's reason (the agent is told only that delivery failed).
    log = "".join(server.output)
    assert "certificate verify failed" in log, log


def test_ca_file_on_an_http_url_is_refused_at_start(binaries: Path, certs: Path, tmp_path: Path) -> None:
    config = config_for(tmp_path, "http://127.0.0.1:9/codes", certs / "ca.pem")
    with pytest.raises(RuntimeError) as failed:
        ServerProcess(binaries, tmp_path / "data", certs, config=config)
    assert "ca_file applies to https:// only" in str(failed.value), str(failed.value)
