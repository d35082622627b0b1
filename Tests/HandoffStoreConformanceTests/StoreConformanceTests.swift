// Handoff — the store contract, as cases any store must pass. Each case takes
// a fresh store from `StoreKind.make()`; SQLite runs them in `make test`, and a
// new store (PostgreSQL) joins by adding its kind. The cases pin what the
// `Store` protocol's documentation promises, through the protocol alone.

import Foundation
import HandoffCore
import HandoffPostgres
import HandoffSQLite
import HandoffTestSupport
import Testing

/// The stores under test: SQLite in a temporary file, PostgreSQL in a
/// database of its own on a real server (`PostgresCluster`).
enum StoreKind: String, CaseIterable, CustomStringConvertible {
    case sqlite
    case postgres

    var description: String { rawValue }

    /// A fresh, empty store of this kind, and how to remove it.
    func make() async throws -> (store: any Store, remove: @Sendable () async -> Void) {
        switch self {
        case .sqlite:
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("conformance-\(UUID().uuidString).sqlite").path
            return (
                try SQLiteStore(path: path),
                {
                    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
                }
            )
        case .postgres:
            let (url, drop) = try await PostgresCluster.freshDatabase()
            var settings = try PostgresSettings.parse(url)
            settings.poolSize = 4
            let store = try await PostgresStore(settings: settings)
            return (
                store,
                {
                    await store.shutdown()
                    await drop()
                }
            )
        }
    }
}

private let acme = TenantID("acme")
private let globex = TenantID("globex")

private func event(_ action: String, at ms: Int64 = 1_000, details: String = "{}") -> NewEvent {
    NewEvent(action: action, actor: "handoff://tenant/acme/agent/a", reasoning: "because", detailsJSON: details, occurredAtMs: ms)
}

private func newSession(_ store: any Store, _ id: String, tenant: TenantID = acme) async throws {
    _ = try await store.createSession(
        SessionRecord(tenant: tenant, id: id, version: 1, stateJSON: "{}", status: .active, labels: [:], createdAtMs: 1_000, updatedAtMs: 1_000),
        event: event("session.created"))
}

private func pendingAction(_ id: String, session: String, tenant: TenantID = acme) -> PendingActionRecord {
    PendingActionRecord(
        tenant: tenant, id: id, sessionID: session, status: .pending, actionJSON: #"{"tool_name":"t"}"#, risk: 3,
        decisionType: "transactional", strategy: 3, createdAtMs: 1_000, updatedAtMs: 1_000, expiresAtMs: 0, idempotencyKey: "",
        actionHash: Array(repeating: 1, count: 32), assessedVersion: 1)
}

/// Records `action` as an assessment's pending action; returns it as stored.
@discardableResult
private func assess(
    _ store: any Store, _ action: PendingActionRecord, key: String = "", request: UInt8 = 1, handover: Handover? = nil
) async throws -> RecordedAssessment {
    try await store.recordAssessment(
        tenant: action.tenant,
        assessment: AssessmentRecord(
            sessionID: action.sessionID, idempotencyKey: key, requestHash: Array(repeating: request, count: 32),
            assessmentJSON: #"{"strategy":3}"#, pendingActionID: action.id, createdAtMs: 1_000),
        pending: action, handover: handover, events: [event("action.assessed")])
}

private func ticket(_ id: String, session: String, action: String = "", tenant: TenantID = acme) -> TicketRecord {
    TicketRecord(
        tenant: tenant, id: id, sessionID: session, pendingActionID: action, reason: "help", priority: 1, status: .open,
        createdBy: "handoff://tenant/acme/agent/a", assignedTo: "", createdAtMs: 1_000, slaDeadlineMs: 301_000, snapshotJSON: "{}")
}

private func escalation(_ session: String) -> (TurnRecord, NewEvent) {
    (
        TurnRecord(
            sessionID: session, sequence: 0, input: "", output: "escalated", metadataJSON: "{}", reasoning: "r", author: "system", createdAtMs: 1_000),
        event("session.escalated")
    )
}

@Suite("Store conformance")
struct StoreConformanceTests {
    @Test("versions: an update over a stale version is a conflict naming both and changes nothing", arguments: StoreKind.allCases)
    func versions(_ kind: StoreKind) async throws {
        let (store, remove) = try await kind.make()
        defer { Task { await remove() } }
        try await newSession(store, "s")
        _ = try await store.updateState(
            tenant: acme, id: "s", expectedVersion: 1, stateJSON: #"{"a":1}"#, updatedAtMs: 2_000, event: event("session.state_updated"))
        do {
            _ = try await store.updateState(
                tenant: acme, id: "s", expectedVersion: 1, stateJSON: #"{"a":2}"#, updatedAtMs: 3_000, event: event("session.state_updated"))
            Issue.record("a stale write was accepted")
        } catch {
            #expect(error == .versionConflict(expected: 1, current: 2))
        }
        let stored = try #require(try await store.session(tenant: acme, id: "s"))
        #expect(stored.version == 2 && stored.stateJSON == #"{"a":1}"#)
        await #expect(throws: StoreError.alreadyExists("s")) { try await newSession(store, "s") }
        await #expect(throws: StoreError.notFound("nope")) {
            _ = try await store.updateState(tenant: acme, id: "nope", expectedVersion: 1, stateJSON: "{}", updatedAtMs: 1, event: event("x"))
        }
    }

    @Test(
        "chains: every change appends an event whose hash chains to the last, and the chain verifies to the session's head",
        arguments: StoreKind.allCases)
    func chains(_ kind: StoreKind) async throws {
        let (store, remove) = try await kind.make()
        defer { Task { await remove() } }
        try await newSession(store, "s")
        for version in 1...5 {
            _ = try await store.updateState(
                tenant: acme, id: "s", expectedVersion: Int64(version), stateJSON: "{\"v\":\(version)}", updatedAtMs: 2_000,
                event: event("session.state_updated"))
        }
        let events = try await store.events(tenant: acme, sessionID: "s")
        #expect(events.map(\.sequence) == Array(1...6))
        #expect(EventChain.verify(events) == nil)
        for (earlier, later) in zip(events, events.dropFirst()) { #expect(later.previousHash == earlier.hash) }
        let verifier = try #require(try await store.verifyChain(tenant: acme, sessionID: "s"))
        #expect(verifier.checked == 6 && verifier.firstBreak == nil)
        #expect(try await store.verifyChain(tenant: acme, sessionID: "none") == nil)
    }

    @Test(
        "tenants: another tenant's session, pending action, ticket and approval are not found, and the same id is another record",
        arguments: StoreKind.allCases)
    func tenants(_ kind: StoreKind) async throws {
        let (store, remove) = try await kind.make()
        defer { Task { await remove() } }
        try await newSession(store, "s")
        try await assess(store, pendingAction("pa-1", session: "s"))
        let (turn, opened) = escalation("s")
        _ = try await store.openTicket(ticket("tk-1", session: "s"), turn: turn, event: opened)
        #expect(try await store.session(tenant: globex, id: "s") == nil)
        #expect(try await store.pendingAction(tenant: globex, id: "pa-1") == nil)
        #expect(try await store.ticket(tenant: globex, id: "tk-1") == nil)
        #expect(try await store.context(tenant: globex, sessionID: "s", turnLimit: 10) == nil)
        #expect(try await store.listEvents(tenant: globex, query: EventQuery()).events.isEmpty)
        #expect(try await store.changes(tenant: globex, after: 0, actions: nil, limit: 100).isEmpty)
        try await newSession(store, "s", tenant: globex)
        #expect(try await store.session(tenant: globex, id: "s")?.tenant == globex)
        #expect(try await store.events(tenant: acme, sessionID: "s").count == 3, "acme's chain is its own")
    }

    @Test(
        "idempotency: a key used again for the same request returns what was stored and writes nothing; for another request it is refused",
        arguments: StoreKind.allCases)
    func idempotency(_ kind: StoreKind) async throws {
        let (store, remove) = try await kind.make()
        defer { Task { await remove() } }
        try await newSession(store, "s")
        let first = try await assess(store, pendingAction("pa-1", session: "s"), key: "k")
        #expect(!first.replayed && first.pending?.id == "pa-1")
        let again = try await assess(store, pendingAction("pa-2", session: "s"), key: "k")
        #expect(again.replayed && again.pending?.id == "pa-1" && again.events.isEmpty)
        #expect(try await store.pendingAction(tenant: acme, id: "pa-2") == nil)
        await #expect(throws: StoreError.keyReused("k")) { try await assess(store, pendingAction("pa-3", session: "s"), key: "k", request: 2) }
        #expect(try await store.events(tenant: acme, sessionID: "s").count == 2)
    }

    @Test(
        "pending actions: written only over the revision read; the session awaits the user while one awaits an answer; a release token finds its action",
        arguments: StoreKind.allCases)
    func pendingActions(_ kind: StoreKind) async throws {
        let (store, remove) = try await kind.make()
        defer { Task { await remove() } }
        try await newSession(store, "s")
        var action = try #require(try await assess(store, pendingAction("pa-1", session: "s")).pending)
        action.awaitingConfirmation = true
        let (asked, status) = try await store.updatePendingAction(action, events: [event("confirmation.requested")])
        #expect(status == .awaitingConfirmation && asked.revision == action.revision + 1)
        #expect(try await store.session(tenant: acme, id: "s")?.status == .awaitingConfirmation)
        await #expect(throws: StoreError.self) { _ = try await store.updatePendingAction(action, events: [event("x")]) }
        var released = asked
        released.status = .released
        released.awaitingConfirmation = false
        released.releaseTokenHash = Array(repeating: 7, count: 32)
        let (_, after) = try await store.updatePendingAction(released, events: [event("action.released")])
        #expect(after == .active)
        #expect(try await store.pendingAction(tenant: acme, releaseTokenHash: Array(repeating: 7, count: 32))?.id == "pa-1")
        #expect(try await store.pendingAction(tenant: globex, releaseTokenHash: Array(repeating: 7, count: 32)) == nil)
    }

    @Test(
        "the ticket queue: one ticket in hand per session; a second action waits and opens, with ticket.opened, when the first is resolved",
        arguments: StoreKind.allCases)
    func ticketQueue(_ kind: StoreKind) async throws {
        let (store, remove) = try await kind.make()
        defer { Task { await remove() } }
        try await newSession(store, "s")
        try await assess(store, pendingAction("pa-1", session: "s"))
        try await assess(store, pendingAction("pa-2", session: "s"))
        let (turn, opened) = escalation("s")
        let first = try await store.openTicket(ticket("tk-1", session: "s", action: "pa-1"), turn: turn, event: opened)
        #expect(first.created && first.ticket.status == .open && first.sessionStatus == .escalated)
        let retried = try await store.openTicket(ticket("tk-x", session: "s", action: "pa-1"), turn: turn, event: opened)
        #expect(!retried.created && retried.ticket.id == "tk-1" && retried.events.isEmpty, "a retried escalation finds its ticket")
        let second = try await store.openTicket(ticket("tk-2", session: "s", action: "pa-2"), turn: turn, event: opened)
        #expect(second.created && second.ticket.status == .waiting)
        var resolved = first.ticket
        resolved.status = .resolved
        resolved.resolvedAtMs = 5_000
        resolved.assignedTo = "handoff://tenant/acme/operator/o"
        let done = try await store.updateTicket(resolved, turn: nil, events: [event("ticket.resolved", at: 5_000)])
        #expect(done.events.map(\.event.action) == ["ticket.resolved", "ticket.opened"])
        #expect(try await store.ticket(tenant: acme, id: "tk-2")?.status == .open)
        #expect(done.sessionStatus == .escalated, "the opened ticket holds the session")
        await #expect(throws: StoreError.self) { _ = try await store.updateTicket(first.ticket, turn: nil, events: []) }
    }

    @Test(
        "an assessment with a ticket: both in one transaction, placed like any escalation (a second action waits); a replay writes nothing",
        arguments: StoreKind.allCases)
    func assessmentWithTicket(_ kind: StoreKind) async throws {
        let (store, remove) = try await kind.make()
        defer { Task { await remove() } }
        try await newSession(store, "s")
        let (turn, escalated) = escalation("s")
        let first = try await assess(
            store, pendingAction("pa-1", session: "s"), key: "k1",
            handover: .ticket(ticket("tk-1", session: "s", action: "pa-1"), turn: turn, event: escalated))
        #expect(first.ticket == PlacedTicket(record: try #require(try await store.ticket(tenant: acme, id: "tk-1")), created: true))
        #expect(first.sessionStatus == .escalated && first.events.map(\.event.action) == ["action.assessed", "session.escalated"])
        let second = try await assess(
            store, pendingAction("pa-2", session: "s"),
            handover: .ticket(ticket("tk-2", session: "s", action: "pa-2"), turn: turn, event: escalated))
        #expect(second.ticket?.record.status == .waiting && second.ticket?.created == true)
        let replay = try await assess(
            store, pendingAction("pa-3", session: "s"), key: "k1",
            handover: .ticket(ticket("tk-3", session: "s", action: "pa-3"), turn: turn, event: escalated))
        #expect(replay.replayed && replay.ticket == nil && replay.events.isEmpty && replay.pending?.id == "pa-1")
        #expect(try await store.ticket(tenant: acme, id: "tk-3") == nil)
        #expect(try await store.pendingAction(tenant: acme, id: "pa-3") == nil)
        #expect(try await store.unresolvedTicketID(tenant: acme, sessionID: "s", pendingActionID: "pa-1") == "tk-1")
        #expect(try await store.unresolvedTicketID(tenant: acme, sessionID: "s", pendingActionID: "pa-2") == "tk-2")
        #expect(try await store.unresolvedTicketID(tenant: globex, sessionID: "s", pendingActionID: "pa-1") == nil)
        #expect(try await store.context(tenant: acme, sessionID: "s", turnLimit: 10)?.turns.count == 1, "the opened ticket's turn only")
    }

    @Test(
        "approvals: the pending approval of an action settled another way is cancelled in the same transaction, with approval.cancelled",
        arguments: StoreKind.allCases)
    func approvalCancellation(_ kind: StoreKind) async throws {
        let (store, remove) = try await kind.make()
        defer { Task { await remove() } }
        try await newSession(store, "s")
        let action = try #require(try await assess(store, pendingAction("pa-1", session: "s")).pending)
        let approval = ApprovalRecord(
            tenant: acme, id: "ap-1", sessionID: "s", pendingActionID: "pa-1", actionJSON: action.actionJSON, amount: "250", currency: "USD",
            reason: "r", requester: "handoff://tenant/acme/agent/a", status: .pending,
            steps: [ApprovalStepRecord(level: 1, approvers: ["role:approver"], status: .pending)], currentLevel: 1, createdAtMs: 1_000)
        let opened = try await store.openApproval(approval, action: action, events: [event("approval.requested")])
        #expect(opened.created)
        #expect(try await store.pendingApprovalID(tenant: acme, pendingActionID: "pa-1") == "ap-1")
        var settled = try #require(try await store.pendingAction(tenant: acme, id: "pa-1"))
        settled.status = .rejected
        _ = try await store.updatePendingAction(settled, events: [event("action.rejected", at: 2_000)])
        let cancelled = try #require(try await store.approval(tenant: acme, id: "ap-1"))
        #expect(cancelled.status == .cancelled && cancelled.steps[0].status == .cancelled)
        #expect(try await store.events(tenant: acme, sessionID: "s").last?.event.action == "approval.cancelled")
        #expect(try await store.pendingApprovals(tenant: acme, query: ApprovalQuery()).isEmpty)
    }

    @Test("listing: pages in both orders cover every event once", arguments: StoreKind.allCases)
    func paging(_ kind: StoreKind) async throws {
        let (store, remove) = try await kind.make()
        defer { Task { await remove() } }
        for id in ["a", "b", "c"] { try await newSession(store, id) }
        for i in 0..<9 {
            let id = ["a", "b", "c"][i % 3]
            let version = try #require(try await store.session(tenant: acme, id: id)).version
            _ = try await store.updateState(
                tenant: acme, id: id, expectedVersion: version, stateJSON: "{}", updatedAtMs: 2_000,
                event: event("session.state_updated", at: 2_000 + Int64(i)))
        }
        for newestFirst in [false, true] {
            var query = EventQuery()
            query.newestFirst = newestFirst
            query.limit = 4
            var seen: [String] = []
            while true {
                let page = try await store.listEvents(tenant: acme, query: query).events
                seen += page.map { "\($0.sessionID)/\($0.sequence)" }
                guard page.count == query.limit, let last = page.last else { break }
                query.after = EventPosition(occurredAtMs: last.event.occurredAtMs, sessionID: last.sessionID, sequence: last.sequence)
            }
            #expect(seen.count == 12 && Set(seen).count == 12, "\(newestFirst): \(seen)")
        }
    }

    @Test("memories: a session holds at most the count and bytes it is given", arguments: StoreKind.allCases)
    func memoryLimits(_ kind: StoreKind) async throws {
        let (store, remove) = try await kind.make()
        defer { Task { await remove() } }
        try await newSession(store, "s")
        func add(_ content: String) async throws -> MemoryRecord {
            try await store.addMemory(
                tenant: acme, memory: MemoryRecord(sessionID: "s", sequence: 0, content: content, metadataJSON: "{}", createdAtMs: 1),
                event: event("memory.added"), limit: (count: 2, bytes: 100))
        }
        #expect(try await add("one").sequence == 1)
        #expect(try await add("two").sequence == 2)
        await #expect(throws: StoreError.self) { _ = try await add("three") }
        let context = try #require(try await store.context(tenant: acme, sessionID: "s", turnLimit: 10))
        #expect(context.memories.map(\.content) == ["one", "two"])
    }

    @Test(
        "the change feed: every committed event of the tenant after a cursor, in commit order, resumable, filtered by action",
        arguments: StoreKind.allCases)
    func changeFeed(_ kind: StoreKind) async throws {
        let (store, remove) = try await kind.make()
        defer { Task { await remove() } }
        let head = try await store.feedHead(tenant: acme)
        // Writers on many sessions at once, with times that go back: the feed's order is the commit order.
        for i in 0..<8 { try await newSession(store, "s\(i)") }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 {
                group.addTask {
                    for version in 1...5 {
                        _ = try await store.updateState(
                            tenant: acme, id: "s\(i)", expectedVersion: Int64(version), stateJSON: "{}", updatedAtMs: 1,
                            event: event(version == 5 ? "ticket.claimed" : "session.state_updated", at: 10_000 - Int64(i * 10 + version)))
                    }
                }
            }
            try await group.waitForAll()
        }
        try await newSession(store, "other", tenant: globex)
        var feed: [EventRecord] = []
        var cursor = head
        while true {
            let page = try await store.changes(tenant: acme, after: cursor, actions: nil, limit: 7)
            feed += page
            guard let last = page.last?.feedPosition else { break }
            cursor = last
        }
        #expect(feed.count == 48, "8 sessions created, 40 updates")
        #expect(feed.allSatisfy { $0.tenant == acme })
        let positions = feed.compactMap(\.feedPosition)
        #expect(positions.count == 48 && positions == positions.sorted() && Set(positions).count == 48)
        // Each session's own events keep their chain order in the feed.
        for i in 0..<8 { #expect(feed.filter { $0.sessionID == "s\(i)" }.map(\.sequence) == Array(1...6)) }
        let claims = try await store.changes(tenant: acme, after: head, actions: ["ticket.claimed"], limit: 100)
        #expect(claims.count == 8 && claims.allSatisfy { $0.event.action == "ticket.claimed" })
        let resumed = try await store.changes(tenant: acme, after: positions[40], actions: nil, limit: 100)
        #expect(resumed.map(\.feedPosition) == Array(positions[41...]).map(Optional.some))
        #expect(try await store.feedHead(tenant: acme) >= positions.last!)
        #expect(try await store.changes(tenant: acme, after: try await store.feedHead(tenant: acme), actions: nil, limit: 10).isEmpty)
    }
}
