// Handoff — the escalate strategy acted on at once: an action the policy
// says must go to people is handed to them when it is assessed, to the
// approval desk when its decision type is routed there and a chain covers its
// amount, else to the operator desk with the conversation.

public import HandoffCore
public import HandoffPolicy

public struct AutomaticEscalation: Sendable {
    let approvals: ApprovalService
    let escalations: EscalationService
    let policy: PolicyHolder

    public init(approvals: ApprovalService, escalations: EscalationService, policy: PolicyHolder) {
        self.approvals = approvals
        self.escalations = escalations
        self.policy = policy
    }

    /// What the approvers or the operator read as the reason: the policy's
    /// decision and the rules that matched.
    static func reason(_ assessment: Assessment, _ action: ProposedAction) -> String {
        let why = assessment.matched.map(\.explanation).joined(separator: "; ")
        return "policy: \(assessment.decisionType) action \(action.toolName) needs a person" + (why.isEmpty ? "" : " (\(why))")
    }

    /// The approval `assess` should open with a new pending action, if the
    /// policy sends it to approvers (for `AssessmentService.assess(opening:)`).
    public func opening(caller: Caller) -> AssessmentService.Opening {
        { [approvals] pending, action, assessment, now, policy in
            approvals.automaticOpening(pending, action: action, assessment: assessment, caller: caller, now: now, policy: policy)
        }
    }

    /// Where an escalated action went: a ticket id or an approval id (one is set).
    public struct Route: Sendable, Hashable {
        public var ticketID = ""
        public var approvalID = ""
    }

    /// Hands an assessed action to people when its strategy is escalate and it
    /// is still undecided. A repeat (the same idempotency key) finds the ticket
    /// or approval opened the first time rather than opening another.
    public func route(
        _ outcome: AssessmentOutcome, sessionID: String, action: ProposedAction, caller: Caller
    ) async throws(SessionError) -> Route {
        // Opened in the assessment's own transaction (AssessmentService.assess with `opening`).
        if let approval = outcome.approval {
            await approvals.announce(approval, events: outcome.events, action: action)
            return Route(approvalID: approval.id)
        }
        guard outcome.assessment.strategy == .escalate, let pending = outcome.pending, pending.isUndecided else { return Route() }
        let reason = Self.reason(outcome.assessment, action)
        // The policy the action was assessed with (a reload since must not route it otherwise).
        let settings = (outcome.policy ?? policy.current.policy).approvals
        if settings.routeDecisionTypes.contains(outcome.assessment.decisionType), let amount = action.amount,
            settings.chain(for: amount) != nil
        {
            let requested = try await approvals.request(
                sessionID: sessionID, pendingActionID: pending.id, action: nil, amount: "", currency: "", reason: reason, caller: caller)
            return Route(approvalID: requested.approval.id)
        }
        // A critical action is urgent and a high-risk one high, whatever the reason's words say.
        let floor = outcome.assessment.risk == .critical ? 3 : outcome.assessment.risk == .high ? 2 : 1
        let opened = try await escalations.escalate(
            sessionID: sessionID, reason: reason, pendingActionID: pending.id, minimumPriority: floor, caller: caller)
        return Route(ticketID: opened.ticket.id)
    }
}
