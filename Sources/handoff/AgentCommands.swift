// Handoff — the agent's side from the shell, for trying things out: `handoff
// assess`, `escalate`, `confirm` / `answer`, `code start|verify`, `wait` and
// `executed`. Each is one call of the agent's API; what to type next is
// printed with the answer.

import ArgumentParser
import Foundation
import HandoffClient
import HandoffProto
import HandoffRPC

extension Names {
    static func strategy(_ s: Strategy) -> String {
        switch s {
        case .automate: "automate"
        case .confirm: "confirm"
        case .explicitConfirm: "explicit_confirm"
        case .multiFactor: "multi_factor"
        case .escalate: "escalate"
        default: "unspecified"
        }
    }

    static func risk(_ r: RiskLevel) -> String {
        switch r {
        case .low: "low"
        case .lowMedium: "low_medium"
        case .medium: "medium"
        case .high: "high"
        case .critical: "critical"
        default: "unspecified"
        }
    }

    static func decisionType(_ t: DecisionType) -> String {
        DecisionTypeName.allCases.first { $0.proto == t }?.rawValue ?? "unspecified"
    }

    static func confirmation(_ o: ConfirmationOutcome) -> String {
        switch o {
        case .confirmed: "confirmed"
        case .declined: "declined"
        case .ambiguous: "ambiguous"
        default: "unspecified"
        }
    }
}

/// A decision type as typed on the command line (the agent's hint).
enum DecisionTypeName: String, ExpressibleByArgument, CaseIterable {
    case informational, preferences, transactional, financial, legal, medical, destructive

    var proto: DecisionType {
        switch self {
        case .informational: .informational
        case .preferences: .preferences
        case .transactional: .transactional
        case .financial: .financial
        case .legal: .legal
        case .medical: .medical
        case .destructive: .destructive
        }
    }
}

/// The lines that say what to type next about a pending action.
enum NextStep {
    static func forAssessment(_ r: AssessActionResponse, session: String) -> String {
        guard let pending = r.pendingAction else {
            return "run the tool now; nothing waits for a person" + (r.sampledForReview ? " (sampled for review after the fact)" : "")
        }
        let id = pending.id
        switch r.strategy {
        case .confirm, .explicitConfirm:
            return "ask the user: `handoff confirm \(id)`, then hand in the answer: `handoff answer \(id) yes` (or no)"
        case .multiFactor:
            return "send the user a code: `handoff code start \(id)`, then `handoff code verify \(id) CODE`"
        case .escalate where !r.approvalID.isEmpty:
            return "an approver decides approval \(r.approvalID) (`handoff approve \(r.approvalID)`); meanwhile `handoff wait \(id)`"
        case .escalate where !r.ticketID.isEmpty:
            return "an operator works ticket \(r.ticketID) (`handoff claim \(r.ticketID)`, `handoff resolve \(r.ticketID) …`); "
                + "meanwhile `handoff wait \(id)`"
        case .escalate:
            return "hand it to the operator desk: `handoff escalate \(session) --reason TEXT --action \(id)`, then `handoff wait \(id)`"
        default:
            return "`handoff wait \(id)`"
        }
    }

    /// After an answer or a code: wait if released, else what happened.
    static func afterDecision(_ pending: PendingAction?) -> String? {
        guard let pending else { return nil }
        switch pending.status {
        case .released:
            return "run the action, then `handoff executed \(pending.releaseToken) --idempotency-key KEY` (or `handoff wait \(pending.id)`)"
        case .pending: return nil
        default: return "nothing to run: the action is \(Names.pendingStatus(pending.status))"
        }
    }
}

func pendingFields(_ pending: PendingAction?) -> [(String, Any)] {
    guard let p = pending else { return [] }
    var fields: [(String, Any)] = [("pending_action_id", p.id), ("status", Names.pendingStatus(p.status))]
    if !p.releaseToken.isEmpty { fields.append(("release_token", p.releaseToken)) }
    if p.expiresAtUnixMs > 0, p.status == .pending { fields.append(("expires_at_unix_ms", p.expiresAtUnixMs)) }
    return fields
}

struct AssessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assess",
        abstract: "Assess an action the agent proposes: the strategy, the risk, the rules that matched and what happens next.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Session id.") var session: String
    @Option(help: "The tool the agent wants to call, for example issue_refund.") var tool: String
    @Option(help: "What the action does, in words (the policy's word rules read it).") var description = ""
    @Option(help: "The tool's arguments, a JSON object.") var params = ""
    @Option(help: "Money the action moves, decimal text (with --currency).") var amount = ""
    @Option(help: "ISO 4217 currency of --amount, for example USD.") var currency = ""
    @Option(help: "The model's confidence, 0 to 1.") var confidence: Double?
    @Option(
        name: .customLong("type"),
        help: "The agent's own classification, a hint: \(DecisionTypeName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var decisionType: DecisionTypeName?
    // Not --key: that is the client key of ConnectionOptions.
    @Option(help: "Makes a retry safe: the same key in the session returns the first assessment and pending action.")
    var idempotencyKey = ""
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        if !params.isEmpty {
            guard (try? JSONSerialization.jsonObject(with: Data(params.utf8))) is [String: Any] else {
                throw ValidationError("--params must be a JSON object, for example '{\"order\": \"A-1042\"}'")
            }
        }
        if amount.isEmpty != currency.isEmpty { throw ValidationError("give --amount and --currency together") }
        if let confidence, !(0...1).contains(confidence) { throw ValidationError("--confidence is between 0 and 1") }
    }

    func run() async throws {
        let action = Action(
            toolName: tool, decisionType: decisionType?.proto ?? .unspecified, parametersJSON: params, description: description,
            amount: amount, currency: currency, confidence: confidence)
        let client = try connection.makeClient(for: .agent)
        let r = try await perform(
            client, HandoffProto.Policy.assessAction,
            AssessActionRequest(sessionID: session, action: action, idempotencyKey: idempotencyKey))
        await client.close()
        var fields: [(String, Any)] = [
            ("strategy", Names.strategy(r.strategy)), ("risk", Names.risk(r.risk)), ("decision_type", Names.decisionType(r.decisionType)),
        ]
        if let pending = r.pendingAction { fields.append(("pending_action_id", pending.id)) }
        if !r.ticketID.isEmpty { fields.append(("ticket_id", r.ticketID)) }
        if !r.approvalID.isEmpty { fields.append(("approval_id", r.approvalID)) }
        if r.sampledForReview { fields.append(("sampled_for_review", true)) }
        fields.append(("policy_version", r.policyVersion))
        let next = NextStep.forAssessment(r, session: session)
        if json {
            let rules = r.matchedRules.map {
                ["rule_id": $0.ruleID, "explanation": $0.explanation, "risk": Names.risk($0.risk)] as [String: Any]
            }
            return try emit(fields + [("matched_rules", rules), ("next", next)], json: true)
        }
        try emit(fields, json: false)
        print("rules:")
        for rule in r.matchedRules { print("  - \(rule.ruleID): \(rule.explanation)") }
        print("next: \(next)")
    }
}

struct EscalateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "escalate", abstract: "Hand a session to the operator desk, with the pending action a person should decide.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Session id.") var session: String
    @Option(help: "Why, in words (the priority rules read it).") var reason: String
    @Option(help: "The pending action the operator should decide.") var action = ""
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let client = try connection.makeClient(for: .agent)
        let response = try await perform(
            client, Escalations.escalate, EscalateRequest(sessionID: session, reason: reason, pendingActionID: action))
        await client.close()
        let ticket = response.ticket
        var fields: [(String, Any)] = [
            ("ticket_id", ticket?.id ?? ""), ("created", response.created),
            ("status", Names.ticketStatus(ticket?.status ?? .unspecified)), ("priority", Names.priority(ticket?.priority ?? .unspecified)),
        ]
        if let pending = ticket?.pendingActionID, !pending.isEmpty { fields.append(("pending_action_id", pending)) }
        if !json {
            let id = ticket?.id ?? ""
            fields.append(
                (
                    "next",
                    "an operator claims it (`handoff claim \(id)`) and resolves it"
                        + (action.isEmpty ? "" : "; meanwhile `handoff wait \(action)`")
                ))
        }
        try emit(fields, json: json)
    }
}

struct ConfirmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confirm", abstract: "Ask the end user to confirm a pending action: prints the question to put to them.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Pending action id.") var pendingAction: String
    @Option(help: "The question (default: the server words it from the action).") var prompt = ""
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let client = try connection.makeClient(for: .agent)
        let response = try await perform(
            client, Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: pendingAction, prompt: prompt))
        await client.close()
        if json { return try emit([("prompt", response.prompt)] + pendingFields(response.pendingAction), json: true) }
        print(response.prompt)
        print("")
        print("next: hand in the user's answer: `handoff answer \(pendingAction) TEXT` (yes-words release it, no-words decline)")
    }
}

struct AnswerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "answer", abstract: "Hand in the end user's answer to a confirmation (verbatim): confirmed, declined or asked again.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Pending action id.") var pendingAction: String
    @Argument(help: "What the user answered.") var text: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let client = try connection.makeClient(for: .agent)
        let response = try await perform(
            client, Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: pendingAction, text: text))
        await client.close()
        var fields: [(String, Any)] = [("outcome", Names.confirmation(response.outcome))]
        if response.outcome == .ambiguous { fields += [("reprompt", response.reprompt), ("reprompt_count", response.repromptCount)] }
        fields += pendingFields(response.pendingAction)
        if !json {
            if response.outcome == .ambiguous {
                fields.append(("next", "show the user the reprompt, then `handoff answer \(pendingAction) TEXT` again"))
            } else if let next = NextStep.afterDecision(response.pendingAction) {
                fields.append(("next", next))
            }
        }
        try emit(fields, json: json)
    }
}

struct CodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "code", abstract: "One-time codes for a multi-factor action: send one, check what the user typed.",
        subcommands: [Start.self, Verify.self])

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send the user a new code through the server's channels (the development one: <data>/mfa-codes.jsonl).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Pending action id.") var pendingAction: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try connection.makeClient(for: .agent)
            let r = try await perform(client, Confirmations.startMultiFactor, StartMultiFactorRequest(pendingActionID: pendingAction))
            await client.close()
            var fields: [(String, Any)] = [
                ("pending_action_id", pendingAction), ("channels", r.channels), ("code_length", r.codeLength),
                ("attempts_remaining", r.attemptsRemaining), ("expires_at_unix_ms", r.expiresAtUnixMs),
            ]
            if !json { fields.append(("next", "`handoff code verify \(pendingAction) CODE` with the code the user received")) }
            try emit(fields, json: json)
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the code the user typed; a right one releases the action. Exits 1 when the code was not right.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Pending action id.") var pendingAction: String
        @Argument(help: "The code as the user typed it.") var code: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try connection.makeClient(for: .agent)
            let r = try await perform(
                client, Confirmations.verifyMultiFactor, VerifyMultiFactorRequest(pendingActionID: pendingAction, code: code))
            await client.close()
            var fields: [(String, Any)] = [("verified", r.verified), ("attempts_remaining", r.attemptsRemaining)]
            fields += pendingFields(r.pendingAction)
            if !json {
                if r.verified, let next = NextStep.afterDecision(r.pendingAction) {
                    fields.append(("next", next))
                } else if !r.verified, r.pendingAction?.status == .pending {
                    fields.append(("next", "ask the user again: `handoff code verify \(pendingAction) CODE`"))
                } else if !r.verified {
                    fields.append(
                        ("next", "the action is \(Names.pendingStatus(r.pendingAction?.status ?? .cancelled)); assess it again for a new one"))
                }
            }
            try emit(fields, json: json)
            if !r.verified { throw ExitCode.failure }
        }
    }
}

struct WaitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Wait for pending actions to be decided: prints each decision as it comes, the release token and the action to run.",
        discussion: "Without --timeout it waits until every listed action is decided (interrupt to stop).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Pending action ids (1 to 100).") var pendingActions: [String]
    @Flag(help: "Print one JSON line per decision.") var json = false

    func run() async throws {
        let client = try connection.makeClient(for: .agent)
        var waiting = Set(pendingActions)
        var first = true
        do {
            let stream = try await client.stream(
                Decisions.waitForDecision, WaitForDecisionRequest(pendingActionIDs: pendingActions),
                options: CallOptions(timeout: connection.timeout.map { .milliseconds(Int64($0 * 1000)) }))
            for try await update in stream {
                waiting.remove(update.pendingActionID)
                var fields: [(String, Any)] = [("pending_action_id", update.pendingActionID), ("status", Names.pendingStatus(update.status))]
                if !update.releaseToken.isEmpty { fields.append(("release_token", update.releaseToken)) }
                fields.append(("action", Names.action(update.action)))
                if update.decidedBy != nil { fields.append(("decided_by", Names.identity(update.decidedBy))) }
                if !update.comment.isEmpty { fields.append(("comment", update.comment)) }
                fields.append(("decided_at_unix_ms", update.decidedAtUnixMs))
                if !json {
                    if !first { print("") }
                    if update.status == .released {
                        fields.append(("next", "run the action, then `handoff executed \(update.releaseToken) --idempotency-key KEY`"))
                    }
                }
                first = false
                try emit(fields, json: json)
                fflush(nil)
            }
        } catch let error as RPCError {
            await client.close()
            if error.code == .deadlineExceeded {
                let left = pendingActions.filter(waiting.contains)
                throw CommandFailure(
                    "no decision within \(connection.timeout ?? 0) s for \(left.joined(separator: ", ")); "
                        + "run `handoff wait` again (a decision is kept until it is read)")
            }
            throw CommandFailure(Advice.explain(error, call: Decisions.waitForDecision.fullName))
        }
        await client.close()
        if !waiting.isEmpty {
            throw CommandFailure(
                "the wait ended before \(pendingActions.filter(waiting.contains).joined(separator: ", ")) was decided; run `handoff wait` again")
        }
    }
}

struct ExecutedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "executed",
        abstract: "Report that a released action ran (once: the same token and key again is a duplicate, nothing new is written).")
    @OptionGroup var connection: ConnectionOptions
    // Not --token and --key: those are the bearer token and client key of ConnectionOptions.
    @Argument(help: "The release token from `handoff wait`, `handoff answer` or `handoff code verify`.") var releaseToken: String
    @Option(help: "Your key for retries (required): the same token and key again returns the first report.")
    var idempotencyKey: String
    @Option(help: "The tool's result, JSON.") var result = ""
    @Option(help: "Why the action failed, when it did (the release is used up all the same).") var error = ""
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        if !result.isEmpty, (try? JSONSerialization.jsonObject(with: Data(result.utf8), options: [.fragmentsAllowed])) == nil {
            throw ValidationError("--result must be JSON, for example '{\"booking\": \"BK-4471\"}'")
        }
    }

    func run() async throws {
        let client = try connection.makeClient(for: .agent)
        let r = try await perform(
            client, Decisions.reportExecution,
            ReportExecutionRequest(
                releaseToken: releaseToken, resultJSON: result, idempotencyKey: idempotencyKey, errorMessage: error))
        await client.close()
        try emit(
            [
                ("pending_action_id", r.pendingActionID), ("recorded", r.recorded), ("duplicate", r.duplicate),
                ("executed_at_unix_ms", r.executedAtUnixMs), ("result_json", r.resultJSON),
            ], json: json)
    }
}
