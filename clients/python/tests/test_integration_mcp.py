"""handoff-mcp with the real MCP SDK: a client session over stdio (the
server as its own process, `python -m handoff.integrations.mcp`), over
streamable HTTP, and in memory, against a real handoffd; approvers and
operators act through the `handoff` CLI."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from conftest import ROOT, ServerProcess
from integration_support import DelayProxy, People, executed_events, new_session_id, require

require("mcp")

import handoff  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402

from handoff.integrations.mcp import TOOLS, build_server  # noqa: E402

PYTHON_PATH = str(ROOT / "clients" / "python")


@pytest.fixture
def people(binaries: Path, server: ServerProcess, certs: Path) -> People:
    return People(binaries, server, certs)


def stdio_server(server: ServerProcess, certs: Path) -> StdioServerParameters:
    env = {**os.environ, "PYTHONPATH": PYTHON_PATH + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return StdioServerParameters(command=sys.executable,
                                 args=["-m", "handoff.integrations.mcp", "--server", server.address, "--certs",
                                       str(certs), "--max-wait", "5"], env=env)


def data(result: Any) -> Dict[str, Any]:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return dict(result.structured_content.get("result", result.structured_content))
    return json.loads(result.content[0].text)


def error_text(result: Any) -> str:
    assert result.is_error, result
    return " ".join(getattr(block, "text", "") for block in result.content)


def test_the_server_offers_exactly_the_seven_tools_and_none_that_decides(server: ServerProcess,
                                                                       certs: Path) -> None:
    async def play() -> List[str]:
        async with Client(stdio_server(server, certs)) as client:
            return sorted(tool.name for tool in (await client.list_tools()).tools)

    names = asyncio.run(play())
    assert names == sorted(TOOLS)
    assert not [n for n in names if any(word in n for word in ("approve", "decide", "resolve", "respond", "verify",
                                                                "confirm", "reject"))]


def test_a_client_cannot_approve_its_own_request(server: ServerProcess, certs: Path, people: People,
                                                 agent: handoff.Client) -> None:
    session_id = new_session_id("mcp")
    asked: List[Any] = []

    async def yes_to_everything(context: Any, params: Any) -> Any:  # a client that would approve anything
        asked.append(params)
        from mcp.types import ElicitResult
        return ElicitResult(action="accept", content={"approve": True})

    async def play() -> Dict[str, Any]:
        async with Client(stdio_server(server, certs), elicitation_callback=yes_to_everything) as client:
            verdict = data(await client.call_tool("assess_action", {
                "session_id": session_id, "tool_name": "issue_refund", "description": "Refund order A-1042",
                "parameters": {"order_id": "A-1042", "amount": 250}, "amount": "250", "currency": "USD"}))
            assert verdict["strategy"] == "ESCALATE" and verdict["approval_id"]
            pending = verdict["pending_action_id"]
            # Every way a client might try: tools that do not exist, a forged token, waiting it out.
            for name, arguments in (("decide_approval", {"approval_id": verdict["approval_id"], "verdict": "approve"}),
                                    ("approve", {"approval_id": verdict["approval_id"]}),
                                    ("respond_to_confirmation", {"pending_action_id": pending, "text": "yes"})):
                try:
                    result = await client.call_tool(name, arguments)
                    assert result.is_error, (name, result)
                except Exception as error:  # unknown tool: a protocol error
                    assert "Unknown tool" in str(error) or name in str(error), error
            forged = error_text(await client.call_tool("report_execution", {"release_token": "f" * 64,
                                                                            "result": {"refund": "RF-1"}}))
            assert "FAILED_PRECONDITION" in forged
            # Requesting approval again does not approve either.
            again = await client.call_tool("request_approval", {"session_id": session_id, "reason": "please",
                                                                "pending_action_id": pending})
            assert again.is_error or data(again)["status"] == "PENDING"
            waited = data(await client.call_tool("wait_for_decision", {"pending_action_id": pending,
                                                                       "timeout_seconds": 1}))
            assert waited["status"] == "PENDING" and "release_token" not in waited
            # The approver decides at the desk, out of band.
            await asyncio.to_thread(people.approve, verdict["approval_id"], "200")
            released = data(await client.call_tool("wait_for_decision", {"pending_action_id": pending,
                                                                         "timeout_seconds": 5}))
            assert released["status"] == "RELEASED" and released["action"]["parameters"]["amount"] == 200
            reported = data(await client.call_tool("report_execution", {"release_token": released["release_token"],
                                                                        "result": {"refund": "RF-2093"}}))
            repeated = data(await client.call_tool("report_execution", {"release_token": released["release_token"],
                                                                        "result": {"refund": "RF-2093"}}))
            after = data(await client.call_tool("get_decision", {"pending_action_id": pending,
                                                                 "session_id": session_id}))
            return {"reported": reported, "repeated": repeated, "after": after}

    outcome = asyncio.run(play())
    assert asked == []  # the server never asked the client to decide
    assert outcome["reported"]["recorded"] and not outcome["reported"]["duplicate"]
    assert outcome["repeated"]["duplicate"]
    assert outcome["after"]["status"] == "EXECUTED" and outcome["after"]["result"] == {"refund": "RF-2093"}
    assert len(executed_events(agent, session_id)) == 1


def test_the_seed_stories_over_an_in_memory_session(server: ServerProcess, certs: Path, people: People,
                                                    agent: handoff.Client) -> None:
    session_id = new_session_id("mcp")
    client_of_server = handoff.Client.from_certs(server.address, str(certs), role="agent", default_timeout=10)
    mcp_server = build_server(client_of_server, max_wait=5)

    async def play() -> Dict[str, Any]:
        seen: Dict[str, Any] = {}
        async with Client(mcp_server) as client:
            async def assess(**action: Any) -> Dict[str, Any]:
                return data(await client.call_tool("assess_action", {"session_id": session_id, **action}))

            weather = await assess(tool_name="get_weather", description="Get the weather in Paris",
                                   parameters={"city": "Paris"})
            seen["weather"] = weather["strategy"]
            booking = await assess(tool_name="book_flight", description="Book a flight to NYC",
                                   parameters={"to": "NYC"})
            assert "Please confirm" in booking["user_prompt"]
            # The user answers in the application (here: `handoff answer`), never through MCP.
            await asyncio.to_thread(people.cli, "agent", "answer", booking["pending_action_id"], "Yes")
            seen["booking"] = data(await client.call_tool("wait_for_decision", {
                "pending_action_id": booking["pending_action_id"], "timeout_seconds": 5}))["status"]
            deletion = await assess(tool_name="delete_account", description="Delete the account and all its data",
                                    parameters={"account_id": "u-7"})
            code = await asyncio.to_thread(people.code_for, deletion["pending_action_id"])
            await asyncio.to_thread(people.cli, "agent", "code", "verify", deletion["pending_action_id"], code)
            seen["deletion"] = data(await client.call_tool("get_decision", {
                "pending_action_id": deletion["pending_action_id"]}))["status"]
            medical = await assess(tool_name="answer_question", description="Answer a question about medication",
                                   parameters={"question": "Can I double my blood pressure medication?"},
                                   confidence=0.4)
            assert medical["ticket_id"]
            await asyncio.to_thread(people.resolve, medical["ticket_id"], release=False,
                                    reply="Please ask your doctor first.")
            seen["medical"] = data(await client.call_tool("wait_for_decision", {
                "pending_action_id": medical["pending_action_id"], "timeout_seconds": 5}))["status"]
            context = data(await client.call_tool("get_context", {"session_id": session_id}))
            seen["operator_reply"] = "Please ask your doctor first." in [t["output"] for t in context["turns"]]
        return seen

    try:
        seen = asyncio.run(play())
    finally:
        client_of_server.close()
    assert seen == {"weather": "AUTOMATE", "booking": "RELEASED", "deletion": "RELEASED", "medical": "REJECTED",
                    "operator_reply": True}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_streamable_http_transport_with_a_bearer_token(server: ServerProcess, certs: Path) -> None:
    from conftest import TEST_TOKEN
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": PYTHON_PATH + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "HANDOFF_TOKEN": TEST_TOKEN}
    process = subprocess.Popen([sys.executable, "-m", "handoff.integrations.mcp", "--transport", "streamable-http",
                                "--port", str(port), "--server", server.address, "--ca", str(certs / "ca.pem")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(0.1)

        async def play() -> Dict[str, Any]:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                return data(await client.call_tool("assess_action", {
                    "session_id": new_session_id("mcp-http"), "tool_name": "get_weather",
                    "parameters": {"city": "Oslo"}}))

        verdict = asyncio.run(play())
        assert verdict["strategy"] == "AUTOMATE"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_decisions_over_a_slow_network_and_bad_ids_or_timeouts(server: ServerProcess, certs: Path, people: People,
                                                              agent: handoff.Client) -> None:
    """handoff-mcp 60 ms (each way) from handoffd: a released action is
    RELEASED (not PENDING), an unknown id is NOT_FOUND, a negative or
    non-numeric timeout is refused and an absurd one capped."""
    session_id = new_session_id("mcp-slow")
    with DelayProxy(("127.0.0.1", server.port), delay=0.06) as proxy:
        client_of_server = handoff.Client.from_certs(proxy.address, str(certs), role="agent", default_timeout=10)
        mcp_server = build_server(client_of_server, max_wait=2)

        async def play() -> Dict[str, Any]:
            seen: Dict[str, Any] = {}
            async with Client(mcp_server) as client:
                verdict = data(await client.call_tool("assess_action", {
                    "session_id": session_id, "tool_name": "issue_refund", "description": "Refund order A-1042",
                    "parameters": {"order_id": "A-1042", "amount": 250}, "amount": "250", "currency": "USD"}))
                pending = verdict["pending_action_id"]
                seen["undecided"] = data(await client.call_tool("get_decision", {"pending_action_id": pending}))
                started = time.monotonic()
                seen["capped"] = data(await client.call_tool("wait_for_decision", {"pending_action_id": pending,
                                                                                   "timeout_seconds": 1e9}))
                seen["capped_after"] = time.monotonic() - started
                await asyncio.to_thread(people.approve, verdict["approval_id"])
                seen["released"] = data(await client.call_tool("get_decision", {"pending_action_id": pending}))
                seen["waited"] = data(await client.call_tool("wait_for_decision", {"pending_action_id": pending,
                                                                                   "timeout_seconds": 0}))
                for timeout in (-1, "soon"):
                    seen[f"timeout {timeout}"] = error_text(await client.call_tool(
                        "wait_for_decision", {"pending_action_id": pending, "timeout_seconds": timeout}))
                seen["unknown"] = error_text(await client.call_tool("get_decision",
                                                                    {"pending_action_id": "pa-no-such-action"}))
                seen["unknown_waited"] = error_text(await client.call_tool(
                    "wait_for_decision", {"pending_action_id": "pa-no-such-action", "timeout_seconds": 1}))
            return seen

        try:
            seen = asyncio.run(play())
        finally:
            client_of_server.close()
    assert seen["undecided"]["status"] == "PENDING" and seen["capped"]["status"] == "PENDING"
    assert 2 <= seen["capped_after"] < 10
    assert seen["released"]["status"] == "RELEASED" and seen["released"]["release_token"]
    assert seen["released"]["action"]["parameters"] == {"order_id": "A-1042", "amount": 250}
    assert seen["waited"]["status"] == "RELEASED"
    assert "timeout_seconds must be a number of seconds from 0 to 2" in seen["timeout -1"]
    assert "timeout_seconds" in seen["timeout soon"]
    assert "NOT_FOUND" in seen["unknown"] and "NOT_FOUND" in seen["unknown_waited"]
