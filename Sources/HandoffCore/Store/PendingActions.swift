// Handoff — pending actions and recorded assessments, as stored. The policy
// (HandoffPolicy) decides; these records keep what it decided, so a repeat
// with the same idempotency key gets the first answer back.

/// An action that may not run on its own, kept until it is settled.
public struct PendingActionRecord: Sendable, Hashable {
    public var tenant: TenantID
    public var id: String
    public var sessionID: String
    public var status: Status
    /// The action, canonical JSON (tool, decision type, parameters, description, amount, currency, confidence).
    public var actionJSON: String
    /// Risk level as its protocol number (1 low … 5 critical).
    public var risk: Int
    public var decisionType: String
    /// Strategy as its protocol number (2 confirm … 5 escalate).
    public var strategy: Int
    public var createdAtMs: Int64
    public var updatedAtMs: Int64
    /// 0: never expires.
    public var expiresAtMs: Int64
    public var idempotencyKey: String
    /// SHA-256 over the tool name, the canonical parameters and `assessedVersion`.
    public var actionHash: [UInt8]
    public var assessedVersion: Int64
    /// A confirmation was asked and waits for the end user's answer.
    public var awaitingConfirmation = false
    /// The question put to the end user.
    public var prompt = ""
    /// Ambiguous answers so far.
    public var repromptCount = 0
    /// When an asked confirmation expires unanswered; 0: never (or none asked).
    public var confirmationExpiresAtMs: Int64 = 0
    /// SHA-256 of the release token (the token itself is never stored).
    public var releaseTokenHash: [UInt8]?
    /// HMAC-SHA256 (server key) of the multi-factor code issued last; never the code.
    public var mfaCodeHash: [UInt8]?
    /// When that code expires; 0 when none was issued.
    public var mfaExpiresAtMs: Int64 = 0
    /// Wrong codes it still allows.
    public var mfaAttemptsLeft = 0
    /// When its execution was reported; 0 until then.
    public var executedAtMs: Int64 = 0
    /// The idempotency key of that report.
    public var executionKey: String?
    /// The result reported (JSON), if any.
    public var resultJSON: String?
    /// Why the execution failed, if it did.
    public var executionError: String?
    /// Who settled it (an identity, or `system` for expiries); empty while undecided.
    public var decidedBy = ""
    /// The decider's comment or note; empty when none.
    public var decisionComment = ""
    /// Bumped by every change; a change is written only over the revision it read.
    public var revision: Int64 = 0

    public init(
        tenant: TenantID, id: String, sessionID: String, status: Status, actionJSON: String, risk: Int, decisionType: String,
        strategy: Int, createdAtMs: Int64, updatedAtMs: Int64, expiresAtMs: Int64, idempotencyKey: String, actionHash: [UInt8],
        assessedVersion: Int64
    ) {
        self.tenant = tenant
        self.id = id
        self.sessionID = sessionID
        self.status = status
        self.actionJSON = actionJSON
        self.risk = risk
        self.decisionType = decisionType
        self.strategy = strategy
        self.createdAtMs = createdAtMs
        self.updatedAtMs = updatedAtMs
        self.expiresAtMs = expiresAtMs
        self.idempotencyKey = idempotencyKey
        self.actionHash = actionHash
        self.assessedVersion = assessedVersion
    }
}

extension PendingActionRecord {
    /// Whether it waits for a decision.
    public var isUndecided: Bool { status == .pending }

    /// Whether a decision was made (released counts: it was decided, not yet run).
    public var isSettled: Bool {
        [.released, .declined, .rejected, .expired, .cancelled, .executed].contains(status)
    }

    /// When it will expire if nobody decides, or nil.
    public var nextExpiryMs: Int64? {
        guard isUndecided else { return nil }
        let candidates = [expiresAtMs, awaitingConfirmation ? confirmationExpiresAtMs : 0, mfaCodeHash != nil ? mfaExpiresAtMs : 0]
            .filter { $0 > 0 }
        return candidates.min()
    }

    /// When it expires undecided (what `hasExpired` checks): the sooner of
    /// its own expiry and, while one is asked, the confirmation's; 0: never.
    public var expiryInForceMs: Int64 {
        let confirmation = awaitingConfirmation ? confirmationExpiresAtMs : 0
        return [expiresAtMs, confirmation].filter { $0 > 0 }.min() ?? 0
    }

    /// Whether it is undecided and past an expiry at `now`.
    public func hasExpired(at now: Int64) -> Bool {
        isUndecided
            && ((expiresAtMs > 0 && now >= expiresAtMs)
                || (awaitingConfirmation && confirmationExpiresAtMs > 0 && now >= confirmationExpiresAtMs))
    }
}

/// An assessment kept under the agent's idempotency key.
public struct AssessmentRecord: Sendable, Hashable {
    public var sessionID: String
    public var idempotencyKey: String
    /// SHA-256 of the canonical action: the same key with another action is refused.
    public var requestHash: [UInt8]
    /// The assessment as canonical JSON, replayed as is.
    public var assessmentJSON: String
    public var pendingActionID: String?
    public var createdAtMs: Int64

    public init(
        sessionID: String, idempotencyKey: String, requestHash: [UInt8], assessmentJSON: String, pendingActionID: String?,
        createdAtMs: Int64
    ) {
        self.sessionID = sessionID
        self.idempotencyKey = idempotencyKey
        self.requestHash = requestHash
        self.assessmentJSON = assessmentJSON
        self.pendingActionID = pendingActionID
        self.createdAtMs = createdAtMs
    }
}

/// The people an assessed action is handed to, written in the assessment's
/// own transaction so that an action the policy escalates never exists
/// without the ticket or approval that decides it.
public enum Handover: Sendable, Hashable {
    /// An approval chain (the pending action passed beside it is held for it).
    case approval(ApprovalRecord)
    /// The operator desk: the ticket with its escalation turn and event,
    /// placed as `Store.openTicket` places one.
    case ticket(TicketRecord, turn: TurnRecord, event: NewEvent)
}

/// What recording an assessment stored, or found under its idempotency key.
public struct RecordedAssessment: Sendable, Hashable {
    public var assessmentJSON: String
    public var pending: PendingActionRecord?
    /// True when the idempotency key had been used: nothing new was written.
    public var replayed: Bool
    /// The approval opened in the same transaction, if one was asked for.
    public var approval: ApprovalRecord?
    /// The ticket placed in the same transaction, if one was asked for, and
    /// whether it was created (false: an active ticket took the action).
    public var ticket: PlacedTicket?
    /// The session's status after the write, when a ticket changed it.
    public var sessionStatus: SessionRecord.Status?
    /// The events appended (none on a replay).
    public var events: [EventRecord]

    public init(
        assessmentJSON: String, pending: PendingActionRecord?, replayed: Bool, approval: ApprovalRecord? = nil,
        ticket: PlacedTicket? = nil, sessionStatus: SessionRecord.Status? = nil, events: [EventRecord] = []
    ) {
        self.assessmentJSON = assessmentJSON
        self.pending = pending
        self.replayed = replayed
        self.approval = approval
        self.ticket = ticket
        self.sessionStatus = sessionStatus
        self.events = events
    }
}

/// A ticket as an escalation left it: created, or an active one that took
/// the action (`created` false).
public struct PlacedTicket: Sendable, Hashable {
    public var record: TicketRecord
    public var created: Bool

    public init(record: TicketRecord, created: Bool) {
        self.record = record
        self.created = created
    }
}
