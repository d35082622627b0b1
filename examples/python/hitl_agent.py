#!/usr/bin/env python3
"""The classic human-in-the-loop agent, on Handoff.

A loop over the user's messages. For each one the agent proposes a tool call,
asks the Handoff server how it may proceed (``client.assess``), and then, by the
policy's strategy:

- AUTOMATE: runs the tool at once;
- CONFIRM / EXPLICIT_CONFIRM: shows the server's question, relays the user's
  answer, and runs the tool once the action is released;
- MULTI_FACTOR: has the server send the user a one-time code, relays the code
  the user types, and runs the tool once it is verified;
- ESCALATE: a person decides. The server has already routed the action: to an
  approver (``approval_id``) or to the operator desk with the conversation
  (``ticket_id``). The agent shows what the operator writes into the
  conversation (it reads it back with GetContext) and waits for the decision.

Every released action runs once and is reported with ``report_execution``; the
conversation is kept with ``add_turn`` and the agent's state with
``update_state``.

Only two things here are pretend: :class:`FakeLLM`, a fixed rule table standing
in for the language model that would choose the tool call and say how sure it
is, and the tools themselves (:data:`TOOLS`), which return canned results.
Everything else (the server, its policy, the people deciding) is real.

The user's messages are the five of the seed scenario (or ``--message``, given
several times). The user's answers to questions (a "Yes", a code) are read one
line at a time from ``--answers`` (default: standard input), so a script can
play the user. Before reading an answer the agent prints a line starting with
``(waiting for the user:``.

    python3 examples/python/hitl_agent.py --server 127.0.0.1:7443 --certs certs

Exit status: 0 when every message was handled, 1 when a step failed, 2 on bad
arguments.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, IO, List, Optional

try:
    import handoff
except ImportError:  # running from a checkout without `pip install ./clients/python`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
    import handoff

from handoff.v1 import common_pb2, confirmations_pb2

SEED_MESSAGES = [
    "What's the weather in Paris?",
    "Book a flight to NYC",
    "Refund my order of 250 dollars",
    "Delete all my data",
    "Can I double my blood pressure medication?",
]


# ---------------------------------------------------------------------------
# The stand-in for the model. A real agent asks an LLM which tool to call, with
# which arguments, and how confident it is; this table answers the same
# questions for the scenario's messages, deterministically.
# ---------------------------------------------------------------------------

@dataclass
class ToolCall:
    """What the model proposes: a tool, its arguments, and the model's confidence."""

    tool_name: str
    description: str
    parameters: Dict[str, Any]
    confidence: float
    #: What the agent says while it proposes this.
    say: str
    amount: Optional[str] = None
    currency: Optional[str] = None

    def action(self) -> Dict[str, Any]:
        action: Dict[str, Any] = {"tool_name": self.tool_name, "description": self.description,
                                  "parameters": self.parameters, "confidence": self.confidence}
        if self.amount is not None:
            action["amount"] = self.amount
            action["currency"] = self.currency or "USD"
        return action


class FakeLLM:
    """NOT A MODEL: a deterministic rule table in place of the LLM.

    Maps each user message to the tool call a model would propose, by the first
    pattern that matches. The confidences are what a model might report; the
    medical answer is deliberately unsure (0.4), which the policy sends to a person.
    """

    RULES = [
        (r"\bweather\b.*\bin (?P<city>[A-Z][a-z]+)",
         lambda m: ToolCall("get_weather", f"Get the weather in {m['city']}", {"city": m["city"]}, 0.98,
                            f"Let me look up the weather in {m['city']}.")),
        (r"\bbook a flight to (?P<to>[A-Z]{3})\b",
         lambda m: ToolCall("book_flight", f"Book a flight to {m['to']}", {"to": m["to"], "date": "2026-12-01",
                                                                          "class": "economy"}, 0.93,
                            f"I can book a flight to {m['to']} on 2026-12-01.")),
        (r"\brefund my order of (?P<amount>\d+(\.\d+)?) dollars\b",
         lambda m: ToolCall("issue_refund", f"Refund order A-1042 ({m['amount']} USD)", {"order_id": "A-1042"}, 0.9,
                            f"I'll refund your order A-1042 of {m['amount']} dollars.", amount=m["amount"],
                            currency="USD")),
        (r"\bdelete all my data\b",
         lambda m: ToolCall("delete_account", "Delete the account and all its data", {"account_id": "u-7"}, 0.95,
                            "I can delete your account and all its data. This cannot be undone.")),
        (r"\b(medication|diagnosis|dose|dosage)\b",
         lambda m: ToolCall("answer_question", "Answer a question about medication dosage",
                            {"question": m.string, "draft": "Doubling a dose is sometimes fine."}, 0.4,
                            "Let me see what I can tell you about your medication.")),
    ]

    def propose(self, message: str) -> Optional[ToolCall]:
        for pattern, make in self.RULES:
            found = re.search(pattern, message, re.IGNORECASE)
            if found:
                return make(found)
        return None


# ---------------------------------------------------------------------------
# The tools (canned results; a real agent calls real services here).
# ---------------------------------------------------------------------------

def get_weather(city: str) -> Dict[str, Any]:
    return {"city": city, "forecast": "sunny", "temperature_c": 18}


def book_flight(to: str, date: str, **_: Any) -> Dict[str, Any]:
    return {"booking": "BK-4471", "to": to, "date": date}


def issue_refund(order_id: str) -> Dict[str, Any]:
    return {"refund": "RF-2093", "order_id": order_id}


def delete_account(account_id: str) -> Dict[str, Any]:
    return {"deleted": account_id}


def answer_question(question: str, draft: str) -> Dict[str, Any]:
    return {"answer": draft}


TOOLS: Dict[str, Callable[..., Dict[str, Any]]] = {
    "get_weather": get_weather, "book_flight": book_flight, "issue_refund": issue_refund,
    "delete_account": delete_account, "answer_question": answer_question,
}

SAY_RESULT: Dict[str, Callable[[Dict[str, Any]], str]] = {
    "get_weather": lambda r: f"It is {r['forecast']} and {r['temperature_c']} °C in {r['city']}.",
    "book_flight": lambda r: f"Booked: flight to {r['to']} on {r['date']}, booking {r['booking']}.",
    "issue_refund": lambda r: f"Refund {r['refund']} issued for order {r['order_id']}.",
    "delete_account": lambda r: f"Account {r['deleted']} and all its data are deleted.",
    "answer_question": lambda r: r["answer"],
}


# ---------------------------------------------------------------------------
# The agent.
# ---------------------------------------------------------------------------

class StepFailed(Exception):
    """A step of the conversation did not go as the protocol says it must."""


@dataclass
class Transcript:
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def line(self, who: str, text: str) -> None:
        prefix = f"{who:<8} "
        body = textwrap.indent(text, " " * len(prefix))[len(prefix):]
        with self.lock:
            print(prefix + body, file=self.out, flush=True)

    def user(self, text: str) -> None:
        self.line("user", text)

    def agent(self, text: str) -> None:
        self.line("agent", text)

    def system(self, text: str) -> None:
        self.line("system", text)

    def operator(self, text: str) -> None:
        self.line("operator", text)


class HITLAgent:
    def __init__(self, client: handoff.Client, session_id: str, answers: IO[str], transcript: Transcript,
                 decision_timeout: float) -> None:
        self.client = client
        self.session_id = session_id
        self.answers = answers
        self.say = transcript
        self.llm = FakeLLM()
        self.decision_timeout = decision_timeout
        self.seen_up_to = 0

    # -- the loop ------------------------------------------------------------

    def run(self, messages: List[str]) -> None:
        self.open_session()
        for number, message in enumerate(messages, 1):
            self.say.user(message)
            self.handle(message)
            self.client.sessions.update_state(self.session_id, {"messages_handled": number},
                                              reasoning=f"finished message {number}")
        context = self.client.sessions.get_context(self.session_id, turn_limit=50)
        self.say.system(f"session {self.session_id}: {context.total_turns} turns; state "
                        + json.dumps(context.session.state, sort_keys=True))

    def open_session(self) -> None:
        try:
            self.client.sessions.create(self.session_id, state={"user": "u-7", "done": []},
                                        labels={"channel": "seed-scenario"}, reasoning="new conversation")
        except handoff.AlreadyExists:
            pass  # carry on with an existing conversation
        self.say.system(f"session {self.session_id}")

    def handle(self, message: str) -> None:
        call = self.llm.propose(message)
        if call is None:
            reply = "Sorry, I can't help with that."
            self.say.agent(reply)
            self.client.sessions.add_turn(self.session_id, message, reply, reasoning="no tool fits")
            return
        self.say.agent(call.say)
        turn = self.client.sessions.add_turn(self.session_id, message, call.say,
                                             metadata={"proposed": call.tool_name, "confidence": call.confidence},
                                             reasoning=f"the model proposes {call.tool_name} (confidence {call.confidence})")
        self.seen_up_to = turn.sequence  # turns after this one are news (a person's reply, a system note)

        verdict = self.client.assess(self.session_id, call.action())
        self.say.system(f"policy: {verdict.strategy} ({verdict.decision_type.lower()}, risk {verdict.risk.lower()})"
                        + "".join(f"\n- {reason}" for reason in verdict.reasons))

        if verdict.automated:
            self.execute(call, None)
        elif verdict.needs_confirmation:
            self.confirm(call, verdict)
        elif verdict.needs_multi_factor:
            self.multi_factor(call, verdict)
        elif verdict.escalated:
            self.escalated(call, verdict)
        else:
            raise StepFailed(f"unknown strategy {verdict.strategy}")

    # -- the strategies --------------------------------------------------------

    def confirm(self, call: ToolCall, verdict: handoff.Assessment) -> None:
        asked = self.client.request_confirmation(verdict)
        self.say.agent(asked.prompt)
        while True:
            answer = self.ask_user("confirmation")
            response = self.client.respond_to_confirmation(verdict, answer)
            outcome = confirmations_pb2.ConfirmationOutcome.Name(response.outcome).replace("CONFIRMATION_OUTCOME_", "")
            self.say.system(f"confirmation: {outcome}")
            if outcome != "AMBIGUOUS":
                break
            self.say.agent(response.reprompt)
        self.client.sessions.add_turn(self.session_id, answer, f"(confirmation {outcome.lower()})",
                                      reasoning="the user answered the confirmation")
        self.after_decision(call, verdict)

    def multi_factor(self, call: ToolCall, verdict: handoff.Assessment) -> None:
        started = self.client.start_multi_factor(verdict)
        self.say.agent(f"To be sure it is you, I sent a {started.code_length}-digit code "
                       f"({', '.join(started.channels)}). Please type it.")
        while True:
            code = self.ask_user("code")
            checked = self.client.verify_multi_factor(verdict, code)
            if checked.verified:
                self.say.system("code verified")
                break
            if checked.attempts_remaining == 0:
                self.say.system("code refused; no attempts left")
                break
            self.say.agent(f"That code is not right; {checked.attempts_remaining} attempts left.")
        self.client.sessions.add_turn(self.session_id, "(code)", "(code verified)" if checked.verified
                                      else "(code refused)", reasoning="the user entered the code")
        self.after_decision(call, verdict)

    def escalated(self, call: ToolCall, verdict: handoff.Assessment) -> None:
        # Where the server sent it: an approval chain, or an operator's ticket.
        approval_id, ticket_id = verdict.approval_id, verdict.ticket_id
        if approval_id:
            self.say.agent("This needs a person's approval. I've asked; please bear with me.")
            self.say.system(f"approval {approval_id} requested; waiting for the approver")
            self.client.sessions.update_state(self.session_id, {"waiting_for": {"approval": approval_id}},
                                              reasoning="waiting for an approver")
        elif ticket_id:
            self.say.agent("A person should answer this one: I've passed your question and our conversation to our staff.")
            self.say.system(f"ticket {ticket_id} opened for the operator desk, with the conversation")
            self.client.sessions.update_state(self.session_id, {"waiting_for": {"ticket": ticket_id}},
                                              reasoning="waiting for an operator")
        else:
            # The policy escalated but routed nowhere: hand it over ourselves.
            opened = self.client.escalate(self.session_id, f"{call.tool_name}: {call.description}", verdict)
            ticket_id = opened.ticket.id
            self.say.system(f"ticket {ticket_id} opened by the agent")
        self.after_decision(call, verdict, show_operator_turns=bool(ticket_id))
        self.client.sessions.update_state(self.session_id, {"waiting_for": None}, reasoning="a person decided")

    # -- after the decision ----------------------------------------------------

    def after_decision(self, call: ToolCall, verdict: handoff.Assessment, show_operator_turns: bool = False) -> None:
        """Waits for the pending action's decision; runs the tool when it is released."""
        if show_operator_turns:
            decision = self.wait_showing_conversation(verdict)
        else:
            decision = self.client.wait_for_decision(verdict, timeout=self.decision_timeout)
        self.say.system(f"decision: {decision.status}" + (f" ({decision.comment})" if decision.comment else ""))
        approval_id = verdict.approval_id
        if approval_id:
            # Who decided, and why, is on the approval's chain.
            for step in self.client.get_approval(approval_id).steps:
                if step.HasField("decided_by"):
                    self.say.system(f"approval level {step.level}: decided by {step.decided_by.name}"
                                    + (f": {step.comment}" if step.comment else ""))
        if decision.released:
            self.execute(call, decision)
            return
        if show_operator_turns:
            reply = "The person who answered above has the final word; I won't add to it."
        else:
            reply = f"I did not {call.description[0].lower()}{call.description[1:]}: it was {decision.status.lower()}."
        self.say.agent(reply)
        self.client.sessions.add_turn(self.session_id, "", reply, reasoning=f"the action was {decision.status.lower()}")
        self.remember(call, decision.status.lower())

    def wait_showing_conversation(self, verdict: handoff.Assessment) -> handoff.Decision:
        """Waits for the decision, showing what operators write into the conversation meanwhile."""
        found: Dict[str, Any] = {}

        def wait() -> None:
            try:
                found["decision"] = self.client.wait_for_decision(verdict, timeout=self.decision_timeout)
            except BaseException as error:  # noqa: BLE001 - handed to the main thread
                found["error"] = error

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        while waiter.is_alive():
            self.show_new_turns()
            waiter.join(0.2)
        self.show_new_turns()
        if "error" in found:
            raise found["error"]
        return found["decision"]

    def show_new_turns(self) -> None:
        for turn in self.client.sessions.get_context(self.session_id, turn_limit=20).turns:
            if turn.sequence <= self.seen_up_to:
                continue
            self.seen_up_to = turn.sequence
            if turn.source == common_pb2.TURN_SOURCE_OPERATOR:
                self.say.operator(f"{turn.output}  [{turn.author.name}, read back with GetContext]")
            elif turn.source == common_pb2.TURN_SOURCE_SYSTEM:
                self.say.system(f"(in the conversation) {turn.output}")

    def execute(self, call: ToolCall, decision: Optional[handoff.Decision]) -> None:
        """Runs the tool: at once (automated) or with the released action (an approver may have edited it)."""
        parameters = decision.action.get("parameters", call.parameters) if decision else call.parameters
        result = TOOLS[call.tool_name](**parameters)
        if decision is not None:
            reported = self.client.report_execution(decision, result)
            self.say.system(f"executed {call.tool_name}; reported (action {reported.pending_action_id})")
        else:
            self.say.system(f"executed {call.tool_name} automatically")
        reply = SAY_RESULT[call.tool_name](result)
        self.say.agent(reply)
        self.client.sessions.add_turn(self.session_id, "", reply, metadata={"tool": call.tool_name, "result": result},
                                      reasoning=f"ran {call.tool_name}")
        self.remember(call, "done")

    def remember(self, call: ToolCall, outcome: str) -> None:
        done = self.client.sessions.get(self.session_id).state.get("done", [])
        self.client.sessions.update_state(self.session_id, {"done": done + [{"tool": call.tool_name,
                                                                              "outcome": outcome}]},
                                          reasoning=f"{call.tool_name}: {outcome}")

    def ask_user(self, what: str) -> str:
        self.say.line("", f"(waiting for the user: {what})")
        line = self.answers.readline()
        if not line:
            raise StepFailed(f"the user's answers ended while the agent waited for a {what}")
        answer = line.strip()
        self.say.user(answer)
        return answer


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="127.0.0.1:7443", help="HOST:PORT of handoffd")
    parser.add_argument("--certs", default=".handoff/certs", help="directory from `handoff certs init`")
    parser.add_argument("--role", default="agent", help="whose certificate to use (default agent)")
    parser.add_argument("--session", default=f"seed-{int(time.time())}", help="session id (created if new)")
    parser.add_argument("--answers", default="-",
                        help="file the user's answers come from, one per line ('-': standard input)")
    parser.add_argument("--message", action="append", dest="messages",
                        help="a user message (repeatable; default: the five of the seed scenario)")
    parser.add_argument("--decision-timeout", type=float, default=120,
                        help="seconds to wait for a person's decision (default 120)")
    args = parser.parse_args(argv)

    answers = sys.stdin if args.answers == "-" else open(args.answers, encoding="utf-8")
    transcript = Transcript()
    try:
        with handoff.Client.from_certs(args.server, args.certs, role=args.role, default_timeout=15) as client:
            HITLAgent(client, args.session, answers, transcript, args.decision_timeout).run(
                args.messages or SEED_MESSAGES)
    except (StepFailed, handoff.HandoffError) as error:
        transcript.line("error", f"{type(error).__name__}: {error}")
        return 1
    finally:
        if answers is not sys.stdin:
            answers.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
