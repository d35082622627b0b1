// Handoff — confirmations: the end user is asked about a pending action and
// answers in words. A yes-word releases the action with a single-use token, a
// no-word declines it, anything else keeps it pending with a re-prompt; an
// unanswered one expires and releases nothing. Every step is an event, written
// in the same transaction as the change.

import Crypto
import Foundation
public import HandoffCore
public import HandoffPolicy

/// What RequestConfirmation and RespondToConfirmation answer.
public struct ConfirmationOutcome: Sendable, Hashable {
    /// nil for RequestConfirmation.
    public var answer: ConfirmationAnswer?
    /// The question to show the user (RequestConfirmation), or the re-prompt (ambiguous).
    public var prompt: String
    public var action: PendingActionRecord
    /// The release token, only in the reply that released the action.
    public var releaseToken: String?
}

public final class ConfirmationService: Sendable {
    let store: any Store
    private let sessions: SessionService
    private let policy: PolicyHolder
    let clock: @Sendable () -> Int64
    let multiFactor: MultiFactorSettings
    public let decisions: DecisionHub
    /// How often WaitForDecision reads its actions from the store, for
    /// decisions committed by another process (this one's wake it at once).
    let decisionPollInterval: Duration = .seconds(2)

    public init(
        store: any Store, sessions: SessionService, policy: PolicyHolder, multiFactor: MultiFactorSettings,
        decisions: DecisionHub = DecisionHub(), clock: @escaping @Sendable () -> Int64 = SessionService.wallClockMs
    ) {
        self.store = store
        self.sessions = sessions
        self.policy = policy
        self.multiFactor = multiFactor
        self.decisions = decisions
        self.clock = clock
    }

    /// Asks the end user to confirm a pending action of strategy confirm or explicit confirm.
    public func request(pendingActionID: String, prompt: String, caller: Caller) async throws(HandoffError) -> ConfirmationOutcome {
        let settings = policy.current.policy.confirmation
        return try await decide(pendingActionID, caller: caller) { (found, now) throws(HandoffError) in
            var action = found
            guard action.isUndecided else {
                throw .conflict("pending action \(action.id) is \(action.status), not pending")
            }
            let strategy = Strategy(rawValue: action.strategy)
            guard strategy == .confirm || strategy == .explicitConfirm else {
                throw .conflict(
                    "pending action \(action.id) needs \(strategy.map { "\($0)" } ?? "another decision"), not a confirmation")
            }
            let question =
                prompt.isEmpty || strategy == .explicitConfirm
                ? Self.prompt(for: action, explicit: strategy == .explicitConfirm, agentPrompt: prompt) : prompt
            action.awaitingConfirmation = true
            action.prompt = question
            action.updatedAtMs = now
            action.confirmationExpiresAtMs = settings.timeoutSeconds.map { now + Int64($0) * 1000 } ?? 0
            let (stored, status) = try await self.write(
                action,
                events: [
                    self.event(
                        .confirmationRequested, action, caller, now,
                        [
                            "prompt": .string(question),
                            "expires_at_unix_ms": .integer(action.confirmationExpiresAtMs),
                        ])
                ])
            return (ConfirmationOutcome(answer: nil, prompt: question, action: stored, releaseToken: nil), status)
        }
    }

    /// Refuses an agent answering for the end user unless the policy makes the agent the user's channel.
    func requireUserChannel(_ caller: Caller) throws(HandoffError) {
        if caller.role == .agent, !policy.current.policy.confirmation.agentRelaysUser {
            throw .forbidden("the policy does not let an agent answer for the end user (confirmation.agent_relays_user is false)")
        }
    }

    /// Reads the end user's answer.
    public func respond(pendingActionID: String, text: String, caller: Caller) async throws(HandoffError) -> ConfirmationOutcome {
        try requireUserChannel(caller)
        guard text.utf8.count <= 4096 else { throw .invalid("text is longer than 4096 bytes") }
        let settings = policy.current.policy.confirmation
        return try await decide(pendingActionID, caller: caller) { (found, now) throws(HandoffError) in
            var action = found
            guard action.isUndecided, action.awaitingConfirmation else {
                throw .conflict(
                    action.isUndecided
                        ? "pending action \(action.id) awaits no confirmation: call RequestConfirmation first"
                        : "pending action \(action.id) is \(action.status), not pending")
            }
            let answer = settings.classify(text)
            action.updatedAtMs = now
            var releaseToken: String?
            var events = [
                self.event(
                    .confirmationAnswered, action, caller, now,
                    [
                        "text": .string(text), "outcome": .string(answer.rawValue),
                    ])
            ]
            switch answer {
            case .confirmed:
                // Confirmed and released in one transaction; the token is
                // returned once and only its hash is kept.
                let token = self.releaseToken(for: action)
                releaseToken = token
                action.status = .released
                action.awaitingConfirmation = false
                action.releaseTokenHash = Array(SHA256.hash(data: Data(token.utf8)))
                events.append(self.event(.actionReleased, action, caller, now, ["by": .string("confirmation")]))
            case .declined:
                action.status = .declined
                action.awaitingConfirmation = false
                events.append(self.event(.actionDeclined, action, caller, now, [:]))
            case .ambiguous:
                action.repromptCount += 1
            }
            let (stored, status) = try await self.write(action, events: events)
            let reprompt = answer == .ambiguous ? "\(settings.reprompt) \(stored.prompt)" : ""
            return (ConfirmationOutcome(answer: answer, prompt: reprompt, action: stored, releaseToken: releaseToken), status)
        }
    }

    /// Runs `body` on the pending action as stored, in its session's turn,
    /// after marking it expired (and refusing the call) if its time is up.
    /// An action an approval chain is deciding is refused (FAILED_PRECONDITION
    /// naming the approval) unless `whileApproving`: only the approvers settle it.
    func decide<T: Sendable>(
        _ id: String, caller: Caller, whileApproving: Bool = false,
        _ body: @escaping @Sendable (PendingActionRecord, Int64) async throws(HandoffError) -> (T, status: SessionRecord.Status?)
    ) async throws(HandoffError) -> T {
        let found = try await load(id, caller: caller)
        return try await sessions.changeBeside(id: found.sessionID, caller: caller) {
            () throws(HandoffError) -> (Result<T, HandoffError>, status: SessionRecord.Status?) in
            var action = try await self.load(id, caller: caller)
            let now = self.clock()
            if let expired = try await self.expire(&action, now: now, caller: caller) { return (.failure(expired.error), expired.status) }
            if !whileApproving, action.isUndecided {
                let approval: String?
                do throws(StoreError) {
                    approval = try await self.store.pendingApprovalID(tenant: caller.tenant, pendingActionID: action.id)
                } catch {
                    throw HandoffError(error)
                }
                if let approval {
                    throw .conflict("pending action \(action.id) awaits approval \(approval); its approvers decide it")
                }
            }
            let (outcome, status) = try await body(action, now)
            return (.success(outcome), status)
        }.get()
    }

    func load(_ id: String, caller: Caller) async throws(HandoffError) -> PendingActionRecord {
        guard !id.isEmpty else { throw .invalid("pending_action_id is required") }
        let found: PendingActionRecord?
        do {
            found = try await store.pendingAction(tenant: caller.tenant, id: id)
        } catch {
            throw HandoffError(error)
        }
        guard let found else { throw .notFound("pending action \(id) not found") }
        return found
    }

    /// An undecided action past its expiry is marked expired (an event says
    /// so), and the call is to be refused: nothing is released after the deadline.
    private func expire(
        _ action: inout PendingActionRecord, now: Int64, caller: Caller
    ) async throws(HandoffError) -> (error: HandoffError, status: SessionRecord.Status)? {
        guard action.hasExpired(at: now) else { return nil }
        action.status = .expired
        action.awaitingConfirmation = false
        action.updatedAtMs = now
        action.decidedBy = Caller.systemIdentity
        // The server expired it; the caller only happened to look at it then.
        let (_, status) = try await write(action, events: [event(.actionExpired, action, .system(caller.tenant), now, [:])])
        return (.conflict("pending action \(action.id) expired unanswered; nothing was released"), status)
    }

    func write(_ action: PendingActionRecord, events: [NewEvent]) async throws(HandoffError) -> (PendingActionRecord, SessionRecord.Status) {
        var action = action
        // The decider of a settlement is the actor of its first event, unless named already.
        if action.isSettled, action.status != .executed, action.decidedBy.isEmpty { action.decidedBy = events.first?.actor ?? "" }
        do {
            let written = try await store.updatePendingAction(action, events: events)
            decisions.publish(written.0)  // after the commit: durable before anyone hears of it
            return written
        } catch {
            if case .versionConflict = error {
                throw .staleVersion("pending action \(action.id) changed meanwhile; read it again and retry")
            }
            throw HandoffError(error)
        }
    }

    func event(
        _ name: EventAction, _ action: PendingActionRecord, _ caller: Caller, _ now: Int64, _ extra: [String: JSONValue]
    ) -> NewEvent {
        var details = extra
        details["pending_action_id"] = .string(action.id)
        details["status"] = .string(action.status.rawValue)
        details["reprompt_count"] = .integer(Int64(action.repromptCount))
        return NewEvent(action: name, actor: caller.identity, reasoning: "", detailsJSON: JSONValue.object(details).serialized, occurredAtMs: now)
    }

    /// The question, worded from the action; explicit confirmations spell out
    /// the tool, its parameters and the amount.
    static func prompt(for action: PendingActionRecord, explicit: Bool, agentPrompt: String) -> String {
        let proposed = (try? JSONValue(parsing: action.actionJSON)).flatMap { ProposedAction(canonicalJSON: $0) }
        let what = proposed.map { $0.description.isEmpty ? $0.toolName : $0.description } ?? "this action"
        guard explicit, let proposed else { return "Shall I go ahead: \(what)? Please answer yes or no." }
        var lines = [agentPrompt.isEmpty ? "Please confirm exactly this action:" : agentPrompt]
        lines.append("- what: \(what)")
        lines.append("- tool: \(proposed.toolName)")
        if case .object(let members) = proposed.parameters, !members.isEmpty {
            lines.append("- details: \(proposed.parameters.serialized)")
        }
        if let amount = proposed.amount {
            lines.append("- amount: \(amount) \(proposed.currency)".trimmingCharacters(in: .whitespaces))
        }
        lines.append("Answer yes to go ahead or no to cancel.")
        return lines.joined(separator: "\n")
    }
}
