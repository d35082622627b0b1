#!/usr/bin/env python3
"""The seed's five stories as an MCP client session with handoff-mcp.

The MCP server is `handoff-mcp` (here `python -m handoff.integrations.mcp`)
over stdio, started with the agent's certificate. The client's "model" is a
script: each user message makes the tool call a model would. The client asks
Handoff through the server's tools (assess_action, wait_for_decision,
report_execution, get_context) and runs a tool only when Handoff released it,
exactly as released. Nobody decides through MCP: the user's "Yes" and code
reach Handoff through the application (`handoff answer`, `handoff code
verify`), the approver and the operator act through the `handoff` CLI.

    python3 examples/python/mcp_client_session.py [--bin-dir .build/debug]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict

sys.path.insert(0, str(Path(__file__).resolve().parent))

import framework_stories as stories  # noqa: E402
from framework_stories import ROOT, Playground, say  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402


def result_of(result: Any) -> Dict[str, Any]:
    if result.is_error:
        raise SystemExit(f"tool error: {result.content}")
    if result.structured_content is not None:
        return dict(result.structured_content.get("result", result.structured_content))
    return json.loads(result.content[0].text)


async def play(playground: Playground) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "clients" / "python") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    server = StdioServerParameters(command=sys.executable, args=[
        "-m", "handoff.integrations.mcp", "--server", playground.address, "--certs", str(playground.certs)], env=env)
    session_id = "mcp-seed"
    async with Client(server) as client:
        names = sorted(tool.name for tool in (await client.list_tools()).tools)
        say("system", f"handoff-mcp tools: {', '.join(names)}")

        async def call(name: str, **arguments: Any) -> Dict[str, Any]:
            return result_of(await client.call_tool(name, arguments))

        for story in stories.STORIES:
            say("user", story["say"])
            verdict = await call("assess_action", session_id=session_id, tool_name=story["tool"],
                                 description=stories.DESCRIPTIONS[story["tool"]], parameters=story["args"],
                                 **({"amount": str(story["args"]["amount"]), "currency": "USD"}
                                    if "amount" in story["args"] else {}))
            pending = verdict["pending_action_id"]
            say("system", f"assess_action: {verdict['strategy']}" + (f", pending action {pending}" if pending else ""))
            if verdict["automated"]:
                say("agent", stories.TOOLS[story["tool"]](**story["args"]))
                continue
            if verdict["strategy"] in ("CONFIRM", "EXPLICIT_CONFIRM"):
                say("agent", verdict["user_prompt"])
                say("user", "Yes")
                await asyncio.to_thread(playground.cli, "agent", "answer", pending, "Yes")  # the application relays it
            elif verdict["strategy"] == "MULTI_FACTOR":
                code = await asyncio.to_thread(playground.code_on_the_users_phone, pending)
                say("user", code)
                await asyncio.to_thread(playground.cli, "agent", "code", "verify", pending, code)
            elif verdict["approval_id"]:
                await asyncio.to_thread(playground.approver_approves, verdict["approval_id"])
            else:
                await asyncio.to_thread(playground.operator_takes_over, verdict["ticket_id"])
            decision = await call("wait_for_decision", pending_action_id=pending, timeout_seconds=10)
            say("system", f"wait_for_decision: {decision['status']}")
            if decision["status"] != "RELEASED":
                context = await call("get_context", session_id=session_id)
                say("operator", context["turns"][-2]["output"] if len(context["turns"]) > 1 else "")
                say("agent", "A person answered above; I won't add to it.")
                continue
            output = stories.TOOLS[story["tool"]](**decision["action"]["parameters"])  # exactly as released
            reported = await call("report_execution", release_token=decision["release_token"], result=output)
            say("system", f"report_execution: recorded={reported['recorded']}")
            say("agent", output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", help="directory with handoffd and handoff (default $HANDOFF_BIN_DIR or .build/debug)")
    args = parser.parse_args()
    with Playground(args.bin_dir) as playground:
        asyncio.run(play(playground))
    return stories.check_runs(stories.EXPECTED_RUNS)


if __name__ == "__main__":
    sys.exit(main())
