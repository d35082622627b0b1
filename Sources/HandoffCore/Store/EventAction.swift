// Handoff — the events the domain writes, by name. Stored, hashed into the
// chain and sent on the wire as their raw values (docs/PROTOCOL.md lists
// each with its details); the domain names them by case.

public enum EventAction: String, Sendable, Hashable, CaseIterable {
    case sessionCreated = "session.created"
    case sessionStateUpdated = "session.state_updated"
    case sessionTurnAdded = "session.turn_added"
    case sessionMemoryAdded = "session.memory_added"
    case sessionEscalated = "session.escalated"

    case actionAssessed = "action.assessed"
    case actionSampledForReview = "action.sampled_for_review"
    case actionReleased = "action.released"
    case actionRejected = "action.rejected"
    case actionDeclined = "action.declined"
    case actionExpired = "action.expired"
    case actionCancelled = "action.cancelled"
    case actionExecuted = "action.executed"

    case confirmationRequested = "confirmation.requested"
    case confirmationAnswered = "confirmation.answered"
    case mfaStarted = "mfa.started"
    case mfaVerified = "mfa.verified"
    case mfaFailed = "mfa.failed"

    case ticketOpened = "ticket.opened"
    case ticketClaimed = "ticket.claimed"
    case ticketReplied = "ticket.replied"
    case ticketResolved = "ticket.resolved"
    case ticketSLABreached = "ticket.sla_breached"

    case approvalRequested = "approval.requested"
    case approvalDecided = "approval.decided"
    case approvalApproved = "approval.approved"
    case approvalRejected = "approval.rejected"
    case approvalExpired = "approval.expired"
    case approvalCancelled = "approval.cancelled"
}

extension NewEvent {
    /// An event the domain writes, named by its action.
    public init(
        action: EventAction, actor: String, reasoning: String, detailsJSON: String, occurredAtMs: Int64,
        traceparent: String = CallTrace.traceparent
    ) {
        self.init(
            action: action.rawValue, actor: actor, reasoning: reasoning, detailsJSON: detailsJSON, occurredAtMs: occurredAtMs,
            traceparent: traceparent)
    }

    /// Its action as the domain names it; nil for a name this version does not write.
    public var kind: EventAction? { EventAction(rawValue: action) }
}
