// Handoff — the seed scenario as a Swift agent (`swift run hitl-agent`).
//
// The structure of the classic human-in-the-loop agent: for each user
// message the model proposes an action, Handoff assesses it, and the agent
// runs it at once, asks the user to confirm, asks for a one-time code, or
// waits for a person (an approver or an operator) to decide. Only the model
// is a stand-in (a fixed table below); sessions, assessment, confirmation,
// codes, approvals, tickets and execution reports are the real server's.
//
//   hitl-agent --server 127.0.0.1:7443 --certs .handoff/certs [--session ID]
//
// The end user's answers (the "Yes" and the one-time code) are read from
// standard input, one line per question.

import Foundation
import HandoffClient
import HandoffProto
import HandoffRPC
import HandoffTLS

/// The stand-in for the model: what it would call for each message.
struct Proposal {
    var reply: String
    var action: Action
}

func propose(_ message: String) -> Proposal {
    let text = message.lowercased()
    if text.contains("weather") {
        return Proposal(
            reply: "It is 18 °C and sunny in Paris.",
            action: Action(
                toolName: "get_weather", parametersJSON: #"{"city":"Paris"}"#, description: message, confidence: 0.95))
    }
    if text.contains("flight") {
        return Proposal(
            reply: "Your flight to NYC is booked.",
            action: Action(
                toolName: "book_flight", parametersJSON: #"{"to":"NYC"}"#, description: message, confidence: 0.9))
    }
    if text.contains("refund") {
        return Proposal(
            reply: "Your refund of 250 USD is on its way.",
            action: Action(
                toolName: "issue_refund", parametersJSON: #"{"order":"A-1001"}"#, description: message, amount: "250", currency: "USD",
                confidence: 0.9))
    }
    if text.contains("delete") {
        return Proposal(
            reply: "All your data is deleted.",
            action: Action(
                toolName: "delete_account", parametersJSON: #"{"scope":"all"}"#, description: message, confidence: 0.9))
    }
    return Proposal(
        reply: "Here is what I found.",
        action: Action(
            toolName: "answer_question", description: message, confidence: 0.4))
}

struct Agent {
    let client: HandoffClient
    let session: String
    var answers = AnyIterator { readLine() }

    func say(_ who: String, _ text: String) { show("\(who): \(text)") }

    mutating func handle(_ message: String) async throws {
        say("user", message)
        let proposal = propose(message)
        let assessed = try await client.call(Policy.assessAction, AssessActionRequest(sessionID: session, action: proposal.action))
        say("system", "\(proposal.action.toolName): risk \(assessed.risk), strategy \(assessed.strategy)")
        var token = ""
        switch assessed.strategy {
        case .automate:
            break
        case .confirm, .explicitConfirm:
            let id = assessed.pendingAction!.id
            let asked = try await client.call(Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: id))
            say("agent", asked.prompt)
            let answer = answers.next() ?? ""
            say("user", answer)
            let response = try await client.call(
                Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: id, text: answer))
            guard response.outcome == .confirmed, let released = response.pendingAction else {
                say("agent", "Then I won't do it.")
                return
            }
            token = released.releaseToken
        case .multiFactor:
            let id = assessed.pendingAction!.id
            let started = try await client.call(Confirmations.startMultiFactor, StartMultiFactorRequest(pendingActionID: id))
            say("agent", "I sent a \(started.codeLength)-digit code to you (\(started.channels.joined(separator: ", "))). What is it?")
            let code = answers.next() ?? ""
            say("user", String(repeating: "•", count: code.count))
            let verified = try await client.call(Confirmations.verifyMultiFactor, VerifyMultiFactorRequest(pendingActionID: id, code: code))
            guard verified.verified, let released = verified.pendingAction else {
                say("agent", "That code did not work; nothing was done.")
                return
            }
            token = released.releaseToken
        default:
            let id = assessed.pendingAction!.id
            if !assessed.approvalID.isEmpty {
                say("agent", "This needs a manager's approval (\(assessed.approvalID)); I'll wait.")
            } else {
                say("agent", "I'm handing you to a person (ticket \(assessed.ticketID)); they will reply here.")
            }
            let decision = try await waitForDecision(id, ticket: assessed.ticketID)
            guard decision.status == .released else {
                say("agent", "A person decided not to go ahead (\(decision.status)).")
                return
            }
            token = decision.releaseToken
        }
        // Run the tool (the stand-in answers), then tell Handoff it ran.
        say("agent", proposal.reply)
        if !token.isEmpty {
            _ = try await client.call(
                Decisions.reportExecution,
                ReportExecutionRequest(
                    releaseToken: token, resultJSON: #"{"ok":true}"#, idempotencyKey: "exec-\(session)-\(proposal.action.toolName)"))
        }
        _ = try await client.call(
            Sessions.addTurn,
            AddTurnRequest(
                sessionID: session, input: message, output: proposal.reply, reasoning: "\(proposal.action.toolName) \(assessed.strategy)"))
    }

    /// Waits for the person's decision, showing an operator's replies as they come.
    func waitForDecision(_ id: String, ticket: String) async throws -> DecisionUpdate {
        let client = self.client
        let session = self.session
        let watcher = Task {
            var shown = Set<Int64>()
            while !Task.isCancelled, !ticket.isEmpty {
                let context = try await client.call(Sessions.getContext, GetContextRequest(sessionID: session, turnLimit: 20))
                for turn in context.turns where turn.source == .operator && !shown.contains(turn.sequence) {
                    shown.insert(turn.sequence)
                    show("operator: \(turn.output)")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        defer { watcher.cancel() }
        for try await update in try await client.stream(
            Decisions.waitForDecision, WaitForDecisionRequest(pendingActionIDs: [id]), options: CallOptions(timeout: .seconds(120)))
        {
            return update
        }
        throw RPCError(code: .unavailable, message: "the decision stream ended without a decision")
    }
}

/// Writes a line at once (print buffers when the output is a pipe).
func show(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

@main
struct HITLAgent {
    static func main() async throws {
        var arguments = ArraySlice(CommandLine.arguments.dropFirst())
        var server = "127.0.0.1:7443"
        var certs = ".handoff/certs"
        var session = "swift-\(UUID().uuidString.prefix(8))"
        while let flag = arguments.popFirst() {
            guard let value = arguments.popFirst() else { fatalError("\(flag) needs a value") }
            switch flag {
            case "--server": server = value
            case "--certs": certs = value
            case "--session": session = value
            default: fatalError("unknown option \(flag); known: --server, --certs, --session")
            }
        }
        guard let address = HostAndPort(server) else { fatalError("--server \(server) is not HOST:PORT") }
        let client = try HandoffClient(
            configuration: .init(
                host: address.host, port: address.port,
                tls: .client(
                    trustRootsPath: "\(certs)/ca.pem", serverHostname: address.host,
                    certificateChainPath: "\(certs)/agent.pem", privateKeyPath: "\(certs)/agent.key")))
        _ = try await client.call(
            Sessions.createSession,
            CreateSessionRequest(
                sessionID: session, stateJSON: #"{"channel":"chat"}"#, reasoning: "a customer opened the chat"))
        var agent = Agent(client: client, session: session)
        for message in [
            "What's the weather in Paris?", "Book a flight to NYC", "Refund my order of 250 dollars", "Delete all my data",
            "Can I double my blood pressure medication?",
        ] {
            try await agent.handle(message)
        }
        await client.close()
    }
}
