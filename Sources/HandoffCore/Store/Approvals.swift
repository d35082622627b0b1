// Handoff — approval chains as stored: a request for human approval of a
// pending action, decided level by level by the approvers policy routed it to.

/// One level of an approval chain.
public struct ApprovalStepRecord: Sendable, Hashable {
    /// 1 for the first step.
    public var level: Int
    /// Identities, or `group:<name>` / `role:<role>` entries, that may decide it.
    public var approvers: [String]
    public var status: Status
    public var decidedBy = ""
    public var comment = ""
    /// The action as the decider edited it when approving (canonical JSON).
    public var editedActionJSON: String?
    public var activatedAtMs: Int64 = 0
    /// 0: never expires (or not reached yet).
    public var expiresAtMs: Int64 = 0
    public var decidedAtMs: Int64 = 0

    public init(level: Int, approvers: [String], status: Status) {
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
    public var status: Status
    public var steps: [ApprovalStepRecord]
    /// Level of the step waiting for a decision; 0 once final.
    public var currentLevel: Int
    public var createdAtMs: Int64
    public var decidedAtMs: Int64 = 0
    public var revision: Int64 = 0

    public init(
        tenant: TenantID, id: String, sessionID: String, pendingActionID: String, actionJSON: String, amount: String,
        currency: String, reason: String, requester: String, status: Status, steps: [ApprovalStepRecord], currentLevel: Int,
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
        guard status == .pending, currentLevel >= 1, currentLevel <= steps.count else { return nil }
        return steps[currentLevel - 1]
    }

    /// When the current step expires if undecided; 0: never, or not pending.
    public var dueAtMs: Int64 { currentStep?.expiresAtMs ?? 0 }

    /// Ends a pending approval as `status`, marking the undecided steps so.
    public mutating func finish(_ status: Status, at now: Int64) {
        self.status = status
        decidedAtMs = now
        currentLevel = 0
        for i in steps.indices where steps[i].status == .pending || steps[i].status == .waiting {
            steps[i].status = steps[i].status == .pending && status == .expired ? .expired : .cancelled
            steps[i].expiresAtMs = 0
        }
    }
}

/// Which approvals a listing returns: pending ones of a tenant whose
/// current step is still due, soonest due first (never-expiring last), then
/// oldest, then by id.
public struct ApprovalQuery: Sendable, Hashable {
    /// nil: every session.
    public var sessionID: String?
    public var limit = 1000
    /// Only approvals after this one in the listing's order (a keyset cursor); nil: from the first.
    public var after: ApprovalCursor?
    /// Only approvals whose current step lists at least one of these approver
    /// entries (as written in `ApprovalStepRecord.approvers`); nil: any.
    /// The domain works out which entries route to a caller; the store only matches them.
    public var currentApprovers: [String]?
    /// Leaves out approvals requested by this identity.
    public var notRequestedBy: String?
    /// Leaves out approvals whose current step expired by this time (not yet swept).
    public var dueAfterMs: Int64?
    public init() {}
}

/// Where a listing of pending approvals stopped: the last approval's place in
/// the listing's order. Any store can resume after it, whatever changed meanwhile.
public struct ApprovalCursor: Sendable, Hashable {
    /// The approval's `dueAtMs` (0: never expires, listed last).
    public var dueAtMs: Int64
    public var createdAtMs: Int64
    public var id: String

    public init(dueAtMs: Int64, createdAtMs: Int64, id: String) {
        self.dueAtMs = dueAtMs
        self.createdAtMs = createdAtMs
        self.id = id
    }

    public init(_ approval: ApprovalRecord) {
        self.init(dueAtMs: approval.dueAtMs, createdAtMs: approval.createdAtMs, id: approval.id)
    }
}

// How every store keeps a chain's steps and its current approvers.
extension ApprovalRecord {
    /// The steps as stored: a JSON list.
    public static func encodeSteps(_ steps: [ApprovalStepRecord]) -> String {
        JSONValue.array(steps.map(\.json)).serialized
    }

    /// The steps from what `encodeSteps` stored; a failure names what is wrong.
    public static func decodeSteps(_ json: String) throws -> [ApprovalStepRecord] {
        guard case .array(let items) = try JSONValue(parsing: json) else { throw StoreError.failure("approval steps are not a list") }
        let steps = try items.map { item in
            guard let step = ApprovalStepRecord(json: item) else { throw StoreError.failure("an approval step is malformed: \(item.serialized)") }
            return step
        }
        guard steps.enumerated().allSatisfy({ $0.offset + 1 == $0.element.level }), !steps.isEmpty, steps.count <= 100 else {
            throw StoreError.failure("approval steps are not levels 1…n in order")
        }
        return steps
    }

    /// The current step's approver entries as one column, each between unit
    /// separators, so that a listing matches an entry by substring.
    public var currentApproversKey: String {
        currentStep.map { $0.approvers.map(Self.approverKey).joined() } ?? ""
    }

    /// One approver entry as `currentApproversKey` holds it.
    public static func approverKey(_ entry: String) -> String { "\u{1F}\(entry)\u{1F}" }
}
