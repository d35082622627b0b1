"""The seed scenario end to end: examples/run-seed-scenario starts its own
handoffd, runs the Python agent (examples/python/hitl_agent.py) and acts as the
approver and the operator through the `handoff` CLI. It exits 0 only when
every step happened and the transcript shows each outcome."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

SCRIPT = ROOT / "examples" / "run-seed-scenario"


def test_seed_scenario(binaries: Path, tmp_path: Path) -> None:
    transcript = tmp_path / "transcript.txt"
    try:
        ran = subprocess.run(
            [sys.executable, str(SCRIPT), "--bin-dir", str(binaries), "--timeout", "60", "--transcript",
             str(transcript)],
            capture_output=True, text=True, timeout=90, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(f"run-seed-scenario did not finish within 90 s:\n{expired.stdout}\n{expired.stderr}")
    assert ran.returncode == 0, f"run-seed-scenario exited {ran.returncode}:\n{ran.stdout}\n{ran.stderr}"
    assert "seed scenario passed" in ran.stdout, ran.stdout + ran.stderr
    written = transcript.read_text(encoding="utf-8")
    for outcome in ["executed get_weather automatically", "executed book_flight; reported",
                    "executed issue_refund; reported", "executed delete_account; reported", "decision: REJECTED",
                    "handoff approve", "handoff resolve"]:
        assert outcome in written, f"the transcript lacks {outcome!r}:\n{written}"
