"""TLS turned off: handoffd refuses to start unless --insecure-dev is given,
and then serves the same protocol over plain TCP (callers by bearer token only),
saying loudly in its log that it does."""
from __future__ import annotations

import hashlib
import socket
import struct
import subprocess
from pathlib import Path

from conftest import ServerProcess
from handoff.v1 import envelope_pb2, health_pb2, sessions_pb2

TOKEN = "t0k-plaintext"


def config(tmp_path: Path) -> Path:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    path = tmp_path / "handoffd.yaml"
    path.write_text("tls: {enabled: false}\n"
                    f"tokens:\n  - {{identity: \"handoff://tenant/acme/agent/dev\", sha256: \"{digest}\"}}\n")
    return path


def call(sock: socket.socket, call_id: int, method: str, payload: bytes, token: str = "") -> envelope_pb2.Envelope:
    envelope = envelope_pb2.Envelope(kind=envelope_pb2.FRAME_KIND_REQUEST, call_id=call_id, method=method, timeout_ms=5000,
                                     payload=payload)
    if token:
        envelope.metadata.append(envelope_pb2.MetadataEntry(key="authorization", value=f"Bearer {token}"))
    body = envelope.SerializeToString()
    sock.sendall(struct.pack(">I", len(body)) + body)
    while True:
        header = sock.recv(4, socket.MSG_WAITALL)
        assert len(header) == 4, "the server closed the connection"
        data = sock.recv(struct.unpack(">I", header)[0], socket.MSG_WAITALL)
        reply = envelope_pb2.Envelope.FromString(data)
        if reply.call_id == call_id and reply.kind == envelope_pb2.FRAME_KIND_END:
            return reply


def test_plaintext_is_refused_without_insecure_dev(binaries: Path, certs: Path, tmp_path: Path) -> None:
    ran = subprocess.run([str(binaries / "handoffd"), "--listen", "127.0.0.1:0", "--data", str(tmp_path / "data"),
                          "--config", str(config(tmp_path))], capture_output=True, text=True, timeout=30)
    assert ran.returncode != 0
    assert "refuses to serve plaintext unless started with --insecure-dev" in ran.stderr, ran.stderr


def test_insecure_dev_serves_plaintext_to_token_holders(binaries: Path, certs: Path, tmp_path: Path) -> None:
    server = ServerProcess(binaries, tmp_path / "data", certs, config=config(tmp_path), extra=["--insecure-dev"])
    try:
        assert any("serving WITHOUT TLS" in line for line in server.output), "".join(server.output)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            pong = call(sock, 1, "handoff.v1.Health/Ping", health_pb2.PingRequest(payload=b"hi").SerializeToString())
            assert pong.status_code == 0 and health_pb2.PingResponse.FromString(pong.payload).payload == b"hi"
            anonymous = call(sock, 3, "handoff.v1.Sessions/CreateSession",
                             sessions_pb2.CreateSessionRequest(session_id="p", reasoning="r").SerializeToString())
            assert anonymous.status_code == 16, anonymous  # UNAUTHENTICATED
            created = call(sock, 5, "handoff.v1.Sessions/CreateSession",
                           sessions_pb2.CreateSessionRequest(session_id="p", reasoning="r").SerializeToString(), TOKEN)
            assert created.status_code == 0, created.status_message
            assert sessions_pb2.CreateSessionResponse.FromString(created.payload).session.tenant_id == "acme"
    finally:
        assert server.stop() == 0
