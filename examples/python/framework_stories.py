"""What the framework examples share: the seed's five stories, the tools
(canned results), a handoffd of their own, and the people (approver,
operator, the user's phone) acting through the `handoff` CLI.

The examples (langchain_agent.py, openai_agents_agent.py,
mcp_client_session.py) each play the same stories with their framework:

1. "What's the weather in Paris?"  get_weather: automated, runs at once;
2. "Book a flight to NYC"           book_flight: the user confirms ("Yes");
3. "Refund my order of 250 dollars" issue_refund: an approver approves 200;
4. "Delete all my data"             delete_account: released by the user's code;
5. "Can I double my blood pressure medication?"  answer_question: an operator
   takes the conversation, replies, and rejects the agent's draft.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]
try:
    import handoff  # noqa: F401
except ImportError:  # running from a checkout without `pip install ./clients/python`
    sys.path.insert(0, str(ROOT / "clients" / "python"))

#: The user's messages and the tool call a model would make for each.
STORIES: List[Dict[str, Any]] = [
    {"say": "What's the weather in Paris?", "tool": "get_weather", "args": {"city": "Paris"}},
    {"say": "Book a flight to NYC", "tool": "book_flight", "args": {"to": "NYC", "date": "2026-12-01"}},
    {"say": "Refund my order of 250 dollars", "tool": "issue_refund", "args": {"order_id": "A-1042", "amount": 250}},
    {"say": "Delete all my data", "tool": "delete_account", "args": {"account_id": "u-7"}},
    {"say": "Can I double my blood pressure medication?", "tool": "answer_question",
     "args": {"question": "Can I double my blood pressure medication?", "draft": "Doubling a dose is sometimes fine."}},
]

DESCRIPTIONS = {
    "get_weather": "Get the current weather for a city.",
    "book_flight": "Book a flight.",
    "issue_refund": "Refund an order.",
    "delete_account": "Delete a user's account and all its data.",
    "answer_question": "Answer a question about medication dosage.",
}

APPROVED_AMOUNT = "200"
OPERATOR_REPLY = "Please don't change your dose on your own; call your doctor or pharmacist today."

#: Every tool run, in order (the examples print it; a tool must never appear twice for one story).
RUNS: List[str] = []


def get_weather(city: str) -> str:
    RUNS.append("get_weather")
    return f"It is sunny and 18 °C in {city}."


def book_flight(to: str, date: str) -> str:
    RUNS.append("book_flight")
    return f"Booked: flight to {to} on {date}, booking BK-4471."


def issue_refund(order_id: str, amount: float) -> str:
    RUNS.append("issue_refund")
    return f"Refund RF-2093 of {amount:g} USD issued for order {order_id}."


def delete_account(account_id: str) -> str:
    RUNS.append("delete_account")
    return f"Account {account_id} and all its data are deleted."


def answer_question(question: str, draft: str) -> str:
    RUNS.append("answer_question")
    return draft


TOOLS: Dict[str, Callable[..., str]] = {
    "get_weather": get_weather, "book_flight": book_flight, "issue_refund": issue_refund,
    "delete_account": delete_account, "answer_question": answer_question,
}


def say(who: str, text: str) -> None:
    print(f"{who:<8} {text}", flush=True)


class Playground:
    """A handoffd of its own (development certificates, a temporary data
    directory) and the people acting on it through the `handoff` CLI."""

    def __init__(self, bin_dir: Optional[str] = None) -> None:
        self.bin_dir = Path(bin_dir or os.environ.get("HANDOFF_BIN_DIR") or ROOT / ".build" / "debug")
        self.work = Path(tempfile.mkdtemp(prefix="handoff-example-"))
        self.certs = self.work / "certs"
        self.data = self.work / "data"
        self.address = ""
        self._server: Optional[subprocess.Popen[str]] = None

    def __enter__(self) -> "Playground":
        for name in ("handoff", "handoffd"):
            if not os.access(self.bin_dir / name, os.X_OK):
                raise SystemExit(f"{self.bin_dir / name} is missing: build it (swift build) or pass --bin-dir")
        subprocess.run([str(self.bin_dir / "handoff"), "certs", "init", str(self.certs), "--tenant", "acme"],
                       check=True, capture_output=True, timeout=60)
        config = self.work / "handoffd.yaml"
        config.write_text("limits:\n  shutdown_grace_seconds: 2\n")
        self._server = subprocess.Popen(
            [str(self.bin_dir / "handoffd"), "--listen", "127.0.0.1:0", "--data", str(self.data), "--config",
             str(config), "--tls-cert", str(self.certs / "server.pem"), "--tls-key", str(self.certs / "server.key"),
             "--client-ca", str(self.certs / "ca.pem")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        listening = threading.Event()

        def drain() -> None:
            assert self._server is not None and self._server.stderr is not None
            for line in self._server.stderr:
                found = re.search(r"listening on (127\.0\.0\.1:\d+)", line)
                if found and not self.address:
                    self.address = found.group(1)
                    listening.set()
            listening.set()

        threading.Thread(target=drain, daemon=True).start()
        if not listening.wait(30) or not self.address:
            self.__exit__()
            raise SystemExit("handoffd did not start")
        say("system", f"handoffd listening on {self.address}")
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._server is not None and self._server.poll() is None:
            self._server.send_signal(signal.SIGTERM)
            try:
                self._server.wait(10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
        shutil.rmtree(self.work, ignore_errors=True)

    def client(self, role: str = "agent") -> Any:
        import handoff
        return handoff.Client.from_certs(self.address, str(self.certs), role=role, default_timeout=10)

    # -- the people, through the CLI ---------------------------------------------------

    def cli(self, role: str, *args: str) -> str:
        shown = "handoff " + " ".join(a if re.fullmatch(r"[\w@%+=:,./-]+", a) else json.dumps(a) for a in args)
        say(role, f"$ {shown}")
        ran = subprocess.run([str(self.bin_dir / "handoff"), *args, "--server", self.address, "--certs",
                              str(self.certs), "--role", role], capture_output=True, text=True, timeout=30)
        if ran.returncode != 0:
            raise SystemExit(f"`{shown}` failed ({ran.returncode}):\n{ran.stdout}{ran.stderr}")
        for line in ran.stdout.strip().splitlines()[:3]:
            say("", f"  {line}")
        return ran.stdout

    def approver_approves(self, approval_id: str) -> None:
        self.cli("approver", "approve", approval_id, "--amount", APPROVED_AMOUNT, "--comment",
                 "Order A-1042: one item kept; refund 200.")

    def operator_takes_over(self, ticket_id: str) -> None:
        self.cli("operator", "claim", ticket_id)
        self.cli("operator", "reply", ticket_id, OPERATOR_REPLY)
        self.cli("operator", "resolve", ticket_id, "--outcome", "resolved", "--note",
                 "Answered by the on-call nurse; the agent's draft is rejected.", "--reject")

    def code_on_the_users_phone(self, pending_action_id: str) -> str:
        codes = self.data / "mfa-codes.jsonl"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if codes.exists():
                for line in reversed(codes.read_text().splitlines()):
                    entry = json.loads(line)
                    if entry.get("pending_action_id") == pending_action_id:
                        say("phone", f"(the user reads code {entry['code']})")
                        return str(entry["code"])
            time.sleep(0.05)
        raise SystemExit(f"no code for {pending_action_id}")


def check_runs(expected: List[str]) -> int:
    """Exit status: 0 when exactly these tools ran, each once."""
    say("system", f"tools run: {', '.join(RUNS)}")
    if RUNS != expected:
        print(f"EXAMPLE FAILED: the tools that ran were {RUNS}, not {expected}", file=sys.stderr)
        return 1
    print("all five stories played", flush=True)
    return 0


EXPECTED_RUNS = ["get_weather", "book_flight", "issue_refund", "delete_account"]
