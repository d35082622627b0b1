// Handoff — what the domain needs from storage. The embedded SQLite store
// and (later) PostgreSQL implement it; versions are checked by the store, in
// the same transaction as the write, never only in memory.

/// A tenant: every record belongs to exactly one.
public struct TenantID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    /// The tenant of every record until identities scope callers (issue 7).
    public static let `default` = TenantID("default")
    public var description: String { rawValue }
}

/// A session as stored.
public struct SessionRecord: Sendable, Hashable {
    public var tenant: TenantID
    public var id: String
    /// 1 at creation, one more with every state change.
    public var version: Int64
    /// Canonical JSON of the state object.
    public var stateJSON: String
    public var status: Status
    public var labels: [String: String]
    public var createdAtMs: Int64
    public var updatedAtMs: Int64

    public init(
        tenant: TenantID, id: String, version: Int64, stateJSON: String, status: Status,
        labels: [String: String], createdAtMs: Int64, updatedAtMs: Int64
    ) {
        self.tenant = tenant
        self.id = id
        self.version = version
        self.stateJSON = stateJSON
        self.status = status
        self.labels = labels
        self.createdAtMs = createdAtMs
        self.updatedAtMs = updatedAtMs
    }
}

/// An event to append; the store gives it its sequence number and hashes.
public struct NewEvent: Sendable, Hashable {
    public var action: String
    /// Who did it, for example `handoff://tenant/acme/agent/bot`.
    public var actor: String
    public var reasoning: String
    public var detailsJSON: String
    public var occurredAtMs: Int64
    /// The W3C `traceparent` of the call that caused it (`CallTrace`), or
    /// empty: joins an agent's trace to the audit trail.
    public var traceparent: String

    /// `traceparent` defaults to the calling task's `CallTrace.traceparent`,
    /// so every event a traced call writes carries it.
    public init(
        action: String, actor: String, reasoning: String, detailsJSON: String, occurredAtMs: Int64,
        traceparent: String = CallTrace.traceparent
    ) {
        self.action = action
        self.actor = actor
        self.reasoning = reasoning
        self.detailsJSON = detailsJSON
        self.occurredAtMs = occurredAtMs
        self.traceparent = traceparent
    }
}

/// An event as stored: its place in the session's chain and its hashes.
public struct EventRecord: Sendable, Hashable {
    public var tenant: TenantID
    public var sessionID: String
    /// 1, 2, 3, … per session.
    public var sequence: Int64
    public var event: NewEvent
    /// The previous event's hash; 32 zero bytes for the first.
    public var previousHash: [UInt8]
    /// `EventChain.hash` of this event.
    public var hash: [UInt8]
    /// Its position in the change feed (`Store.changes`): commit order,
    /// never reused; nil when the store did not say. A page token may carry
    /// it (sealed) as a hint where the next page resumes.
    public var feedPosition: Int64?

    public init(
        tenant: TenantID, sessionID: String, sequence: Int64, event: NewEvent, previousHash: [UInt8], hash: [UInt8],
        feedPosition: Int64? = nil
    ) {
        self.tenant = tenant
        self.sessionID = sessionID
        self.sequence = sequence
        self.event = event
        self.previousHash = previousHash
        self.hash = hash
        self.feedPosition = feedPosition
    }
}

/// A turn of the conversation as stored.
public struct TurnRecord: Sendable, Hashable {
    public var sessionID: String
    /// 1, 2, 3, … per session.
    public var sequence: Int64
    public var input: String
    public var output: String
    public var metadataJSON: String
    public var reasoning: String
    /// Who added it (the caller's identity).
    public var author: String
    public var createdAtMs: Int64

    public init(
        sessionID: String, sequence: Int64, input: String, output: String, metadataJSON: String, reasoning: String,
        author: String, createdAtMs: Int64
    ) {
        self.sessionID = sessionID
        self.sequence = sequence
        self.input = input
        self.output = output
        self.metadataJSON = metadataJSON
        self.reasoning = reasoning
        self.author = author
        self.createdAtMs = createdAtMs
    }
}

/// A memory of a session as stored.
public struct MemoryRecord: Sendable, Hashable {
    public var sessionID: String
    public var sequence: Int64
    public var content: String
    public var metadataJSON: String
    public var createdAtMs: Int64

    public init(sessionID: String, sequence: Int64, content: String, metadataJSON: String, createdAtMs: Int64) {
        self.sessionID = sessionID
        self.sequence = sequence
        self.content = content
        self.metadataJSON = metadataJSON
        self.createdAtMs = createdAtMs
    }
}

/// What an agent needs to continue: the session, its latest turns (oldest
/// first), its memories, and how many turns there are in all.
public struct SessionContext: Sendable, Hashable {
    public var session: SessionRecord
    public var turns: [TurnRecord]
    public var memories: [MemoryRecord]
    public var totalTurns: Int64

    public init(session: SessionRecord, turns: [TurnRecord], memories: [MemoryRecord], totalTurns: Int64) {
        self.session = session
        self.turns = turns
        self.memories = memories
        self.totalTurns = totalTurns
    }
}

/// Which events to list, and from where.
public struct EventQuery: Sendable, Hashable {
    /// One session's events, or every session's of the tenant.
    public var sessionID: String?
    /// Only these actions; empty means every action.
    public var actions: [String] = []
    /// At or after this time (ms since 1970), if set.
    public var since: Int64?
    /// Before this time, if set.
    public var until: Int64?
    /// Across sessions, by time (then session id and seq); of one session,
    /// by seq (its chain order). Oldest first unless set.
    public var newestFirst = false
    public var limit = 50
    /// Continue after this event (the last of the previous page).
    public var after: EventPosition?
    /// At most this many events are examined for the page (a filter that
    /// matches little must not read a whole session): a page the limit cut
    /// short says where the next one resumes (`EventPage.resumeAfter`).
    /// nil: no limit. A store may examine fewer.
    public var scanLimit: Int?

    public init() {}
}

/// A page of events, and where a listing cut short by its scan limit resumes.
public struct EventPage: Sendable, Hashable {
    public var events: [EventRecord]
    /// The last event examined, when the scan limit ended the page before it
    /// was full: the next page resumes after it.
    public var resumeAfter: EventRecord?

    public init(events: [EventRecord], resumeAfter: EventRecord? = nil) {
        self.events = events
        self.resumeAfter = resumeAfter
    }
}

/// An event's place in a listing: time, then session, then sequence (one
/// session's listing, in chain order, continues after the sequence alone).
public struct EventPosition: Sendable, Hashable {
    public var occurredAtMs: Int64
    public var sessionID: String
    public var sequence: Int64
    /// The event's `EventRecord.feedPosition`, a hint where the store may
    /// resume (checked against the rest; a stale or made-up one is ignored).
    public var feedPosition: Int64?

    public init(occurredAtMs: Int64, sessionID: String, sequence: Int64, feedPosition: Int64? = nil) {
        self.occurredAtMs = occurredAtMs
        self.sessionID = sessionID
        self.sequence = sequence
        self.feedPosition = feedPosition
    }
}

/// A storage failure the domain turns into a status.
public enum StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A session with that id exists in the tenant.
    case alreadyExists(String)
    /// No session with that id in the tenant.
    case notFound(String)
    /// No record of that kind (a pending action, a ticket, an approval) with that id in the tenant.
    case missing(kind: String, id: String)
    /// The session's version is not the one the write expected.
    case versionConflict(expected: Int64, current: Int64)
    /// An idempotency key already used for a different request.
    case keyReused(String)
    /// The write would take a record past a limit it was given; the text says which.
    case limitReached(String)
    /// The data volume is full: the write was not made (nothing of it is
    /// kept); reads go on, and writes succeed again once space is freed.
    case full(String)
    /// The calling task was cancelled (its call ended) before the write
    /// committed: nothing of it was kept, and the store is fine.
    case cancelled
    /// This store does not do that (the text says what to do instead).
    case unsupported(String)
    /// The store itself failed (disk, corruption, …); the text is for logs.
    case failure(String)

    public var description: String {
        switch self {
        case .alreadyExists(let id): "session \(id) already exists"
        case .notFound(let id): "session \(id) not found"
        case .missing(let kind, let id): "\(kind) \(id) not found"
        case .versionConflict(let expected, let current): "stale version: expected \(expected), the session is at \(current)"
        case .keyReused(let key): "idempotency key \(key) was already used for a different action"
        case .limitReached(let text): text
        case .full(let text): "no space left on the data volume: \(text)"
        case .cancelled: "the call ended before its write committed; nothing was changed"
        case .unsupported(let text): text
        case .failure(let text): "store failure: \(text)"
        }
    }
}

/// Durable storage. Every method returns only after its transaction
/// committed, but `queueAssessment`, which says when in its completion.
public protocol Store: Sendable {
    /// Creates a session and its `session.created` event.
    func createSession(_ session: SessionRecord, event: NewEvent) async throws(StoreError) -> EventRecord
    /// The session, or nil.
    func session(tenant: TenantID, id: String) async throws(StoreError) -> SessionRecord?
    /// Replaces the state if the stored version is `expectedVersion`, bumping
    /// it to `expectedVersion + 1`, and appends `event` in the same transaction.
    /// - Throws: `.versionConflict` (nothing changed) or `.notFound`.
    func updateState(
        tenant: TenantID, id: String, expectedVersion: Int64, stateJSON: String, updatedAtMs: Int64, event: NewEvent
    ) async throws(StoreError) -> EventRecord
    /// The session's events, oldest first.
    func events(tenant: TenantID, sessionID: String) async throws(StoreError) -> [EventRecord]
    /// Checks the session's chain (audit verify): every event, oldest first,
    /// through a `EventChain.Verifier`, without holding them all, and then
    /// against the head the session's row records (`finish`). Nil when there
    /// is no such session.
    func verifyChain(tenant: TenantID, sessionID: String) async throws(StoreError) -> EventChain.Verifier?
    /// Appends a turn (numbered in the store) and its event in one transaction.
    func addTurn(tenant: TenantID, turn: TurnRecord, event: NewEvent) async throws(StoreError) -> TurnRecord
    /// Appends a memory (numbered in the store) and its event in one
    /// transaction, unless the session's memories would then pass
    /// `limit`: more than `count` of them, or more than `bytes` of content
    /// and metadata (`limitReached`).
    func addMemory(
        tenant: TenantID, memory: MemoryRecord, event: NewEvent, limit: (count: Int, bytes: Int)
    ) async throws(StoreError) -> MemoryRecord
    /// Events matching `query`, at most `query.limit`, in the asked order.
    func listEvents(tenant: TenantID, query: EventQuery) async throws(StoreError) -> EventPage

    // MARK: The change feed

    /// The change feed: the tenant's events committed after feed position
    /// `after`, in commit order, at most `limit`, only those whose action is
    /// in `actions` when it is given. Each record's `feedPosition` is its
    /// feed position, the cursor to read after next.
    ///
    /// Feed positions grow in commit order and are never reused: once a read
    /// returned position P, no event with a position at or below P can
    /// commit later. So a reader that reads after its last position again
    /// and again sees every committed event once, in order, however many
    /// writers commit concurrently; a wake-up that is lost or late costs
    /// only latency.
    func changes(tenant: TenantID, after: Int64, actions: [String]?, limit: Int) async throws(StoreError) -> [EventRecord]
    /// The feed position of the tenant's last committed event (0 when none):
    /// where a reader that wants only what comes next starts.
    func feedHead(tenant: TenantID) async throws(StoreError) -> Int64
    /// The session with its `turnLimit` latest turns and its memories, or nil.
    func context(tenant: TenantID, sessionID: String, turnLimit: Int) async throws(StoreError) -> SessionContext?
    /// Records an assessment in one transaction: its pending action (if any),
    /// its idempotency record (if it has a key) and its event. When the key was
    /// used before for the same request, returns what was stored then and
    /// writes nothing.
    /// - Throws: `.notFound` (no such session), `.keyReused` (same key, other request).
    ///
    /// With a `handover` (the escalate strategy), the approval is opened, or
    /// the ticket placed as `openTicket` places one, in the same transaction,
    /// after `events`: an assessed action never exists without the people
    /// who decide it.
    func recordAssessment(
        tenant: TenantID, assessment: AssessmentRecord, pending: PendingActionRecord?, handover: Handover?, events: [NewEvent]
    ) async throws(StoreError) -> RecordedAssessment
    /// `recordAssessment` for an automated action without an idempotency key
    /// (no pending action, no approval), returning as soon as the write is
    /// queued: it commits with the next group commit, before any write
    /// queued after it, and `events` and `listEvents` wait for it first
    /// (nothing else it writes is read elsewhere, so no other read waits). `completion` is
    /// told the outcome once it committed or failed. Returns false, queueing
    /// nothing, when too many such writes wait already (use `recordAssessment`).
    func queueAssessment(
        tenant: TenantID, assessment: AssessmentRecord, events: [NewEvent],
        completion: @escaping @Sendable (Result<RecordedAssessment, StoreError>) -> Void
    ) -> Bool
    /// After `queueAssessment` declined for a full queue: returns once a
    /// queued write was answered (room, unless others took it first), true;
    /// false at once for a store that queues nothing. Waiting for room
    /// rather than for the call's own commit behind the whole queue keeps
    /// the answers of a full queue about one group commit late, not three.
    func waitForQueueRoom() async -> Bool
    /// Returns once every write queued by `queueAssessment` so far committed
    /// or failed (for an orderly shutdown, after the last call). Other writes
    /// are awaited by their callers, so after the last call none is left;
    /// this does not wait for writes queued concurrently with it.
    func settle() async
    /// A pending action, or nil.
    func pendingAction(tenant: TenantID, id: String) async throws(StoreError) -> PendingActionRecord?
    /// The pending action whose release token hashes to `releaseTokenHash`, or nil.
    func pendingAction(tenant: TenantID, releaseTokenHash: [UInt8]) async throws(StoreError) -> PendingActionRecord?
    /// Writes `action` (its revision bumped) if the stored one is still at
    /// `action.revision`, appends `events` to its session, and brings the
    /// session's status up to date (awaiting confirmation while any of its
    /// pending actions awaits one), in one transaction.
    /// - Returns: the stored action and the session's status.
    /// - Throws: `.versionConflict` when another change came first (nothing written).
    func updatePendingAction(
        _ action: PendingActionRecord, events: [NewEvent]
    ) async throws(StoreError) -> (PendingActionRecord, SessionRecord.Status)

    /// Opens `ticket` with its escalation turn and event in one transaction and
    /// marks the session escalated. A session has at most one open or claimed
    /// ticket, and each ticket decides at most one pending action:
    /// - a ticket not resolved that holds the same pending action is returned
    ///   and nothing is written (`created` false): a retried escalation;
    /// - with an open or claimed ticket already there, an escalation without a
    ///   pending action returns it; one with a pending action is attached to
    ///   it when it holds none (`created` false, the event written), else
    ///   stored as a `waiting` ticket that opens when the one in hand is
    ///   resolved (`updateTicket` does that, appending `ticket.opened`).
    func openTicket(
        _ ticket: TicketRecord, turn: TurnRecord, event: NewEvent
    ) async throws(StoreError) -> (ticket: TicketRecord, created: Bool, sessionStatus: SessionRecord.Status, events: [EventRecord])
    /// A ticket, or nil.
    func ticket(tenant: TenantID, id: String) async throws(StoreError) -> TicketRecord?
    /// How many tickets were opened and sessions created in `since..<until`
    /// (index counts: cheap enough to run on every escalation).
    func escalationCounts(tenant: TenantID, since: Int64, until: Int64) async throws(StoreError) -> (tickets: Int64, sessions: Int64)
    /// Tickets opened in `since..<until`, and how many sessions were created then.
    func escalationWindow(tenant: TenantID, since: Int64, until: Int64) async throws(StoreError) -> (tickets: [TicketRecord], sessions: Int64)
    /// Tickets by recorded SLA breach of an open ticket (the desk sweeper
    /// records them), then priority (highest first), then age (oldest first),
    /// in index order: the first page costs the same however long the queue.
    func tickets(tenant: TenantID, query: TicketQuery) async throws(StoreError) -> [TicketRecord]
    /// Writes `ticket` over the revision it was read at, with an optional turn
    /// (an operator's reply) and events, and brings the session's status up to date.
    /// - Throws: `.versionConflict` when another change came first.
    func updateTicket(
        _ ticket: TicketRecord, turn: TurnRecord?, events: [NewEvent]
    ) async throws(StoreError) -> (ticket: TicketRecord, turn: TurnRecord?, sessionStatus: SessionRecord.Status, events: [EventRecord])
    /// The id of the session's open or claimed ticket, or nil.
    func unresolvedTicketID(tenant: TenantID, sessionID: String) async throws(StoreError) -> String?
    /// The id of the session's ticket, not resolved yet (waiting, open or
    /// claimed), that decides pending action `pendingActionID`, or nil.
    func unresolvedTicketID(tenant: TenantID, sessionID: String, pendingActionID: String) async throws(StoreError) -> String?
    /// Open tickets of every tenant whose claim SLA ran out by `now` and whose
    /// breach is not recorded yet, oldest deadline first, at most `limit`.
    func unrecordedSLABreaches(now: Int64, limit: Int) async throws(StoreError) -> [TicketRecord]

    /// Opens `approval` for its pending action in one transaction with
    /// `action` (written over the revision it was read at) and `events`; if
    /// the action already has a pending approval, returns that one and writes
    /// nothing (`created` false).
    /// - Throws: `.versionConflict` when the action changed meanwhile.
    func openApproval(
        _ approval: ApprovalRecord, action: PendingActionRecord, events: [NewEvent]
    ) async throws(StoreError) -> (approval: ApprovalRecord, created: Bool, events: [EventRecord])
    /// An approval, or nil.
    func approval(tenant: TenantID, id: String) async throws(StoreError) -> ApprovalRecord?
    /// The id of the pending approval deciding a pending action, or nil.
    func pendingApprovalID(tenant: TenantID, pendingActionID: String) async throws(StoreError) -> String?
    /// Pending approvals of a tenant, the soonest-expiring current step first
    /// (never-expiring last), then oldest.
    func pendingApprovals(tenant: TenantID, query: ApprovalQuery) async throws(StoreError) -> [ApprovalRecord]
    /// Pending approvals of every tenant whose current step expired by `now`, at most `limit`.
    func dueApprovals(now: Int64, limit: Int) async throws(StoreError) -> [ApprovalRecord]
    /// Writes `approval` over the revision it was read at, and `action` (if
    /// given) over its own, with `events`, in one transaction.
    /// - Throws: `.versionConflict` when either changed meanwhile (nothing written).
    func updateApproval(
        _ approval: ApprovalRecord, action: PendingActionRecord?, events: [NewEvent]
    ) async throws(StoreError) -> (approval: ApprovalRecord, action: PendingActionRecord?, sessionStatus: SessionRecord.Status, events: [EventRecord])

    /// What the desks of every tenant hold now, for the operators' metrics
    /// (read on each scrape: index counts only).
    func deskCounts() async throws(StoreError) -> DeskCounts
    /// Makes an online, consistent copy of the whole store while writes go
    /// on: a new file beside the store (same volume, same permissions),
    /// which the caller reads and then removes; with the copy's format (`sqlite3`).
    func backupCopy() async throws(StoreError) -> (path: String, format: String)
    /// Whether other server processes write to this store too (PostgreSQL
    /// behind several nodes): then what a process keeps in memory of a
    /// session may be stale after another's write, and a resident session
    /// reads the store on every call instead of its copy. False by default.
    var isShared: Bool { get }
}

extension Store {
    public var isShared: Bool { false }
    public func waitForQueueRoom() async -> Bool { false }
}

/// What the desks hold now, across tenants.
public struct DeskCounts: Sendable, Hashable {
    /// Tickets not resolved, by status (`open`, `claimed`, `waiting`) and priority.
    public var tickets: [TicketCount] = []
    /// When the oldest open (unclaimed) ticket was opened; nil when none is open.
    public var oldestOpenTicketCreatedAtMs: Int64?
    /// Approvals waiting for a decision.
    public var pendingApprovals: Int64 = 0
    /// Pending actions not decided yet.
    public var undecidedActions: Int64 = 0

    public struct TicketCount: Sendable, Hashable {
        public var status: TicketRecord.Status
        public var priority: Int
        public var count: Int64
        public init(status: TicketRecord.Status, priority: Int, count: Int64) {
            self.status = status
            self.priority = priority
            self.count = count
        }
    }

    public init() {}
}
