// Handoff — escalation tickets as stored: a human operator's part of a session.

/// An escalation ticket.
public struct TicketRecord: Sendable, Hashable {
    public var tenant: TenantID
    public var id: String
    public var sessionID: String
    /// The pending action it decides; empty when none.
    public var pendingActionID: String
    public var reason: String
    /// 1 normal, 2 high, 3 urgent (the protocol's numbers).
    public var priority: Int
    public var status: Status
    public var createdBy: String
    /// The operator who claimed it; empty while open.
    public var assignedTo: String
    public var createdAtMs: Int64
    public var claimedAtMs: Int64 = 0
    public var resolvedAtMs: Int64 = 0
    /// When it should have been claimed by.
    public var slaDeadlineMs: Int64
    /// The protocol's TicketOutcome number; 0 until resolved.
    public var outcome: Int = 0
    public var resolutionNote = ""
    /// The session's context when it was escalated, as JSON.
    public var snapshotJSON: String
    /// Its SLA breach was recorded (a `ticket.sla_breached` event written).
    public var slaBreachRecorded = false
    public var revision: Int64 = 0

    public init(
        tenant: TenantID, id: String, sessionID: String, pendingActionID: String, reason: String, priority: Int, status: Status,
        createdBy: String, assignedTo: String, createdAtMs: Int64, slaDeadlineMs: Int64, snapshotJSON: String
    ) {
        self.tenant = tenant
        self.id = id
        self.sessionID = sessionID
        self.pendingActionID = pendingActionID
        self.reason = reason
        self.priority = priority
        self.status = status
        self.createdBy = createdBy
        self.assignedTo = assignedTo
        self.createdAtMs = createdAtMs
        self.slaDeadlineMs = slaDeadlineMs
        self.snapshotJSON = snapshotJSON
    }

    /// Open past its deadline: it waited too long to be claimed.
    public func slaBreached(at now: Int64) -> Bool { status == .open && now >= slaDeadlineMs }
}

/// Which tickets ListQueue shows.
public struct TicketQuery: Sendable, Hashable {
    public var statuses: [TicketRecord.Status] = [.open, .claimed]
    public var priorities: [Int] = []
    public var assignedTo: String?
    public var offset = 0
    public var limit = 50
    public init() {}
}
