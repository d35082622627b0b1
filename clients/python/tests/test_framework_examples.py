"""The framework examples play the seed's five stories end to end, each with
its own handoffd, a scripted model, and people acting through the CLI:
examples/python/langchain_agent.py, openai_agents_agent.py and
mcp_client_session.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from integration_support import require

EXAMPLES = ROOT / "examples" / "python"


@pytest.mark.parametrize("script,framework", [("langchain_agent.py", "langchain"),
                                              ("openai_agents_agent.py", "agents"),
                                              ("mcp_client_session.py", "mcp")])
def test_framework_example_plays_the_seed_stories(binaries: Path, script: str, framework: str) -> None:
    require(framework)
    ran = subprocess.run([sys.executable, str(EXAMPLES / script), "--bin-dir", str(binaries)],
                         capture_output=True, text=True, timeout=180, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out = ran.stdout + ran.stderr
    assert ran.returncode == 0, out
    assert "all five stories played" in ran.stdout, out
    assert "tools run: get_weather, book_flight, issue_refund, delete_account\n" in ran.stdout, out
    for seen in ["handoff approve", "--amount 200", "handoff resolve", "(the user reads code",
                 "Refund RF-2093 of 200 USD issued for order A-1042."]:
        assert seen in ran.stdout, f"{script} never shows {seen!r}:\n{out}"
