// Handoff — the escalate strategy acted on at once: an action the policy
// says must go to people is handed to them when it is assessed, to the
// approval desk when its decision type is routed there and a chain covers its
// amount, else to the operator desk with the conversation. The handover is
// written in the assessment's own transaction (`AssessmentService.assess`).

import HandoffCore
import HandoffPolicy

public struct AutomaticEscalation: Sendable {
    let approvals: ApprovalService
    let escalations: EscalationService

    public init(approvals: ApprovalService, escalations: EscalationService) {
        self.approvals = approvals
        self.escalations = escalations
    }

    /// What the approvers or the operator read as the reason: the policy's
    /// decision and the rules that matched, cut to what an escalation takes.
    static func reason(_ assessment: Assessment, _ action: ProposedAction) -> String {
        let why = assessment.matched.map(\.explanation).joined(separator: "; ")
        let reason = "policy: \(assessment.decisionType) action \(action.toolName) needs a person" + (why.isEmpty ? "" : " (\(why))")
        guard reason.utf8.count > EscalationService.reasonBytes else { return reason }
        var cut = ""
        var bytes = 0
        for character in reason {
            bytes += character.utf8.count
            guard bytes <= EscalationService.reasonBytes - 3 else { break }
            cut.append(character)
        }
        return cut + "…"
    }

    /// A handover for a new pending action, decided once with the policy it
    /// was assessed with: its approval (and the pending action as the chain
    /// then holds it, and the approval's event), or its ticket. Nil when the
    /// strategy is not escalate.
    func handover(
        _ pending: PendingActionRecord, action: ProposedAction, assessment: Assessment, caller: Caller, now: Int64, policy: Policy
    ) async throws(HandoffError) -> (handover: Handover, pending: PendingActionRecord, event: NewEvent?)? {
        guard assessment.strategy == .escalate else { return nil }
        if let opened = approvals.automaticOpening(pending, action: action, assessment: assessment, caller: caller, now: now, policy: policy) {
            return (.approval(opened.approval), opened.pending, opened.event)
        }
        let opening = try await escalations.ticket(
            sessionID: pending.sessionID, reason: Self.reason(assessment, action), pendingActionID: pending.id,
            minimumPriority: Self.priorityFloor(assessment), caller: caller, escalation: policy.escalation, now: now)
        return (.ticket(opening.ticket, turn: opening.turn, event: opening.event), pending, nil)
    }

    /// After the handover committed: watchers, the first step's approvers,
    /// or the operators' alert are told.
    func announce(_ recorded: RecordedAssessment, action: ProposedAction, caller: Caller) async {
        if let approval = recorded.approval {
            await approvals.announce(approval, events: recorded.events, action: action)
        } else if let ticket = recorded.ticket {
            await escalations.announce(ticket, events: recorded.events, caller: caller)
        }
    }

    /// On a replay: the approval or ticket still deciding its pending action
    /// (none once it is decided). An undecided action that nobody decides
    /// (its ticket resolved leaving it pending, or assessed before handovers
    /// were written with the assessment) is handed over again, by the policy
    /// in force now.
    func deciding(
        _ pending: PendingActionRecord, action: ProposedAction, assessment: Assessment, caller: Caller, policy: Policy
    ) async throws(HandoffError) -> (ticketID: String, approvalID: String) {
        guard pending.isUndecided else { return ("", "") }
        if let approvalID = try await approvals.pendingApprovalID(of: pending, caller: caller) { return ("", approvalID) }
        if let ticketID = try await escalations.unresolvedTicketID(of: pending, caller: caller) { return (ticketID, "") }
        let reason = Self.reason(assessment, action)
        let settings = policy.approvals
        if settings.routeDecisionTypes.contains(assessment.decisionType), let amount = action.amount, settings.chain(for: amount) != nil {
            let requested = try await approvals.request(
                sessionID: pending.sessionID, pendingActionID: pending.id, action: nil, amount: "", currency: "", reason: reason, caller: caller)
            return ("", requested.approval.id)
        }
        let opened = try await escalations.escalate(
            sessionID: pending.sessionID, reason: reason, pendingActionID: pending.id, minimumPriority: Self.priorityFloor(assessment),
            caller: caller)
        return (opened.ticket.id, "")
    }

    /// A critical action is urgent and a high-risk one high, whatever the reason's words say.
    static func priorityFloor(_ assessment: Assessment) -> Int {
        assessment.risk == .critical ? 3 : assessment.risk == .high ? 2 : 1
    }
}
