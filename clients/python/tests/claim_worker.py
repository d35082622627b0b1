"""A worker process for the cross-process run-once test: for each round it
waits at a barrier for the other worker, then both resume the same released
action through the adapters' Gate at the same moment. The tool appends one
line per run to the effects file (so runs are counted across processes), and
the worker prints what it got for each round, one JSON line each::

    python3 claim_worker.py --server HOST:PORT --certs DIR --rounds FILE --effects FILE --barrier DIR --name A
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import handoff  # noqa: E402
from handoff.integrations._common import Gate, Settled  # noqa: E402


def barrier(directory: Path, round_number: int, name: str, parties: int = 2, timeout: float = 60) -> None:
    (directory / f"{round_number}-{name}").touch()
    deadline = time.monotonic() + timeout
    while len(list(directory.glob(f"{round_number}-*"))) < parties:
        if time.monotonic() > deadline:
            raise SystemExit(f"round {round_number}: the other worker never came")
        time.sleep(0.002)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--certs", required=True)
    parser.add_argument("--rounds", required=True, help="JSON list of [session_id, pending_action_id]")
    parser.add_argument("--effects", required=True)
    parser.add_argument("--barrier", required=True)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    rounds = json.loads(Path(args.rounds).read_text())
    effects = Path(args.effects)
    with handoff.Client.from_certs(args.server, args.certs, role="agent", default_timeout=10) as client:
        client.ping()  # connected before the first barrier
        gate = Gate(client)
        for number, (session_id, pending_id) in enumerate(rounds):

            def run(action: Dict[str, Any]) -> str:
                with effects.open("a") as out:
                    out.write(json.dumps({"round": number, "worker": args.name}) + "\n")
                time.sleep(0.2)  # a tool that takes a while: the other worker arrives meanwhile
                return f"refunded {action['parameters']['amount']}"

            def describe(value: str) -> Tuple[Any, Optional[str]]:
                return {"output": value}, None

            barrier(Path(args.barrier), number, args.name)
            outcome, _ = gate.run_released(session_id, Settled(pending_id, "RELEASED"), run, describe)
            print(json.dumps({"round": number, "worker": args.name, "outcome": outcome}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
