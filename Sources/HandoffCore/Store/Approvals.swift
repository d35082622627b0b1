// Handoff — approval chains as stored: a request for human approval of a
// pending action, decided level by level by the approvers policy routed it to.

/// One level of an approval chain.
public struct ApprovalStepRecord: Sendable, Hashable {
    /// 1 for the first step.
    public var level: Int
    /// Identities, or `group:<name>` / `role:<role>` entries, that may decide it.
    public var approvers: [String]
    /// `waiting` (not reached), `pending` (current), `approved`, `rejected`,
    /// `expired` or `cancelled` (the approval ended before it was decided).
    public var status: String
    public var decidedBy = ""
    public var comment = ""
    /// The action as the decider edited it when approving (canonical JSON).
    public var editedActionJSON: String?
    public var activatedAtMs: Int64 = 0
    /// 0: never expires (or not reached yet).
    public var expiresAtMs: Int64 = 0
    public var decidedAtMs: Int64 = 0

    public init(level: Int, approvers: [String], status: String) {
        self.level = level
        self.approvers = approvers
        self.status = status
    }
}

/// A request for human approval of a pending action, with its chain.
public struct ApprovalRecord: Sendable, Hashable {
    public var tenant: TenantID
    public var id: String
    public var sessionID: String
    public var pendingActionID: String
    /// The action as requested (canonical JSON).
    public var actionJSON: String
    /// The action as last edited by an approver, which a full approval releases.
    public var editedActionJSON: String?
    /// Decimal text.
    public var amount: String
    public var currency: String
    public var reason: String
    /// Who asked; that identity never decides a step of it.
    public var requester: String
    /// `pending`, `approved`, `rejected`, `expired` or `cancelled`.
    public var status: String
    public var steps: [ApprovalStepRecord]
    /// Level of the step waiting for a decision; 0 once final.
    public var currentLevel: Int
    public var createdAtMs: Int64
    public var decidedAtMs: Int64 = 0
    public var revision: Int64 = 0

    public init(
        tenant: TenantID, id: String, sessionID: String, pendingActionID: String, actionJSON: String, amount: String,
        currency: String, reason: String, requester: String, status: String, steps: [ApprovalStepRecord], currentLevel: Int,
        createdAtMs: Int64
    ) {
        self.tenant = tenant
        self.id = id
        self.sessionID = sessionID
        self.pendingActionID = pendingActionID
        self.actionJSON = actionJSON
        self.amount = amount
        self.currency = currency
        self.reason = reason
        self.requester = requester
        self.status = status
        self.steps = steps
        self.currentLevel = currentLevel
        self.createdAtMs = createdAtMs
    }

    /// The step waiting for a decision, if the approval is pending.
    public var currentStep: ApprovalStepRecord? {
        guard status == "pending", currentLevel >= 1, currentLevel <= steps.count else { return nil }
        return steps[currentLevel - 1]
    }

    /// When the current step expires if undecided; 0: never, or not pending.
    public var dueAtMs: Int64 { currentStep?.expiresAtMs ?? 0 }

    /// Ends a pending approval as `status`, marking the undecided steps so.
    public mutating func finish(_ status: String, at now: Int64) {
        self.status = status
        decidedAtMs = now
        currentLevel = 0
        for i in steps.indices where steps[i].status == "pending" || steps[i].status == "waiting" {
            steps[i].status = steps[i].status == "pending" && status == "expired" ? "expired" : "cancelled"
            steps[i].expiresAtMs = 0
        }
    }
}

/// Which approvals a listing returns: pending ones of a tenant, soonest due first.
public struct ApprovalQuery: Sendable, Hashable {
    /// nil: every session.
    public var sessionID: String?
    public var limit = 1000
    /// Rows to skip (the store's page; routing is filtered above it).
    public var offset = 0
    public init() {}
}
