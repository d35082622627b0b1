"""What the framework adapters' tests share: the people (approver, operator,
end user's phone) acting through the real `handoff` CLI, tools that count
their side effects, and a loud failure when a framework is not installed
(`scripts/bootstrap` installs them; a missing one is never a skip)."""
from __future__ import annotations

import importlib
import json
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional

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
        return self.cli("approver", "approvals", "approve", approval_id, *extra, "--comment", comment, "--json")

    def reject(self, approval_id: str, comment: str = "not this one") -> Any:
        return self.cli("approver", "approvals", "reject", approval_id, "--comment", comment, "--json")

    def resolve(self, ticket_id: str, *, release: bool, reply: str = "", note: str = "decided") -> Any:
        self.cli("operator", "desk", "claim", ticket_id, "--json")
        if reply:
            self.cli("operator", "desk", "reply", ticket_id, reply, "--json")
        return self.cli("operator", "desk", "resolve", ticket_id, "--outcome", "resolved", "--note", note,
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
