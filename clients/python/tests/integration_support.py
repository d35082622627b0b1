"""What the framework adapters' tests share: the people (approver, operator,
end user's phone) acting through the real `handoff` CLI, tools that count
their side effects, and a loud failure when a framework is not installed
(`scripts/bootstrap` installs them; a missing one is never a skip)."""
from __future__ import annotations

import importlib
import json
import queue
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from conftest import ServerProcess


def require(*modules: str) -> None:
    """Fails (never skips) when a framework the adapters need is missing."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as error:
            pytest.fail(f"{name} is not installed ({error}); run scripts/bootstrap or "
                        f"pip install -r clients/python/requirements-dev.txt", pytrace=False)


def new_session_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class SideEffects:
    """Counts each tool's runs, with their arguments."""

    def __init__(self) -> None:
        self.calls: List[tuple] = []

    def record(self, tool: str, **args: Any) -> None:
        self.calls.append((tool, dict(args)))

    def count(self, tool: str) -> int:
        return sum(1 for name, _ in self.calls if name == tool)

    def args(self, tool: str) -> List[Dict[str, Any]]:
        return [args for name, args in self.calls if name == tool]

    @property
    def counts(self) -> Counter:
        return Counter(name for name, _ in self.calls)


class People:
    """The approver, the operator and the end user's phone, through the `handoff` CLI."""

    def __init__(self, binaries: Path, server: ServerProcess, certs: Path) -> None:
        self.binaries = binaries
        self.server = server
        self.certs = certs
        self.commands: List[str] = []

    def cli(self, role: str, *args: str) -> Any:
        command = [str(self.binaries / "handoff"), *args, "--server", self.server.address, "--certs", str(self.certs),
                   "--role", role]
        self.commands.append(" ".join(["handoff", *args]))
        ran = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert ran.returncode == 0, f"handoff {' '.join(args)} (as {role}) exited {ran.returncode}:\n{ran.stdout}{ran.stderr}"
        return json.loads(ran.stdout) if "--json" in args else ran.stdout

    def approve(self, approval_id: str, amount: Optional[str] = None, comment: str = "checked") -> Any:
        extra = ["--amount", amount] if amount is not None else []
        return self.cli("approver", "approve", approval_id, *extra, "--comment", comment, "--json")

    def reject(self, approval_id: str, comment: str = "not this one") -> Any:
        return self.cli("approver", "reject", approval_id, "--comment", comment, "--json")

    def resolve(self, ticket_id: str, *, release: bool, reply: str = "", note: str = "decided") -> Any:
        self.cli("operator", "claim", ticket_id, "--json")
        if reply:
            self.cli("operator", "reply", ticket_id, reply, "--json")
        return self.cli("operator", "resolve", ticket_id, "--outcome", "resolved", "--note", note,
                        "--release" if release else "--reject", "--json")

    def code_for(self, pending_action_id: str, timeout: float = 10) -> str:
        """The one-time code the server 'sent to the user's phone' (the file channel)."""
        codes = self.server.data / "mfa-codes.jsonl"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if codes.exists():
                found = [json.loads(line) for line in codes.read_text().splitlines() if line.strip()]
                mine = [entry for entry in found if entry.get("pending_action_id") == pending_action_id]
                if mine:
                    return str(mine[-1]["code"])
            time.sleep(0.05)
        raise AssertionError(f"no code for {pending_action_id} in {codes}")


def executed_events(client: Any, session_id: str) -> List[Dict[str, Any]]:
    """The details of every `action.executed` event of the session."""
    return [json.loads(e.details_json) for e in client.sessions.list_events(session_id, actions=["action.executed"])]


class DelayProxy:
    """A TCP proxy that holds every chunk ``delay`` seconds before passing it
    on, each way (so a round trip costs twice that): a slow network between a
    client and the real handoffd. It forwards raw bytes, so TLS passes through
    untouched (the client still verifies the server as 127.0.0.1)."""

    def __init__(self, upstream: Tuple[str, int], delay: float = 0.06) -> None:
        self.upstream = upstream
        self.delay = delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: List[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="delay-proxy", daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            for one in (downstream, upstream):
                one.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [downstream, upstream]
            self._pipe(downstream, upstream)
            self._pipe(upstream, downstream)

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        """Two threads per direction: one reads and stamps each chunk, one
        sends it when its time comes (latency, not a bandwidth limit)."""
        chunks: "queue.Queue[Tuple[float, bytes]]" = queue.Queue()

        def read() -> None:
            while True:
                try:
                    data = source.recv(65536)
                except OSError:
                    data = b""
                chunks.put((time.monotonic() + self.delay, data))
                if not data:
                    return

        def send() -> None:
            while True:
                due, data = chunks.get()
                time.sleep(max(0.0, due - time.monotonic()))
                try:
                    if not data:
                        target.shutdown(socket.SHUT_WR)
                        return
                    target.sendall(data)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=send, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for one in self._sockets:
            try:
                one.close()
            except OSError:
                pass

    def __enter__(self) -> "DelayProxy":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
