"""The Python snippets of both READMEs, run as written against a real
handoffd (only its address differs: the test server's port instead of 7443),
from a directory holding `.handoff/certs` as `make run` leaves it, so that
the documentation cannot drift from the client."""
from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path
from typing import Iterator, List

import pytest

import handoff
from conftest import ROOT, ServerProcess


def python_blocks(readme: Path, heading: str) -> List[str]:
    """The ```python blocks of the section under `heading` (up to the next heading of the same level)."""
    text = readme.read_text()
    level = heading.split(" ")[0]
    start = text.index(heading + "\n")
    following = re.search(rf"^{level} ", text[start + len(heading):], flags=re.M)
    section = text[start:start + len(heading) + (following.start() if following else len(text))]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture
def workdir(tmp_path: Path, certs: Path) -> Iterator[Path]:
    """A directory with .handoff/certs, as `make run` leaves the repository root."""
    shutil.copytree(certs, tmp_path / ".handoff" / "certs")
    previous = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(previous)


def run_snippet(code: str, server: ServerProcess) -> dict:
    namespace: dict = {"run_tool": lambda **kwargs: {"ok": True, **kwargs}}
    exec(compile(code.replace("127.0.0.1:7443", server.address), "<README snippet>", "exec"), namespace)
    return namespace


def approve_everything(server: ServerProcess, certs: Path, stop: threading.Event) -> None:
    """An approver at the desk: approves each pending approval (every level) until stopped."""
    with handoff.Client.from_certs(server.address, str(certs), role="approver", default_timeout=10) as approver:
        while not stop.is_set():
            for approval in approver.pending_approvals():
                try:
                    approver.decide_approval(approval.id, "approve", comment="fine")
                except handoff.HandoffError:
                    pass
            stop.wait(0.1)


def test_main_readme_python_snippet(workdir: Path, certs: Path, start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(workdir / "data")
    [code] = python_blocks(ROOT / "README.md", "## From Python")
    stop = threading.Event()
    desk = threading.Thread(target=approve_everything, args=(server, certs, stop))
    desk.start()
    try:
        namespace = run_snippet(code, server)
    finally:
        stop.set()
        desk.join(15)
    assert namespace["verdict"].escalated and namespace["decision"].released
    with handoff.Client.from_certs(server.address, str(certs), role="agent") as client:
        assert client.sessions.get("py-1").state == {"cart": {"items": 2}}


def test_python_readme_quick_start(workdir: Path, start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(workdir / "data")
    blocks = python_blocks(ROOT / "clients" / "python" / "README.md", "## Quick start")
    assert len(blocks) == 3, "the quick start has a sync, an asyncio and an operator snippet"
    sync, asynchronous, _operator = blocks  # the operator's loop watches for ever: not run here
    namespace = run_snippet(sync, server)
    assert namespace["verdict"].needs_confirmation and namespace["decision"].released
    assert namespace["result"]["ok"] and [t.output for t in namespace["context"].turns] == ["Let me check."]
    run_snippet(asynchronous, server)
