// Handoff — the SQLite store on a real temporary file: versions checked in
// the store, events chained in the same transaction, tenants apart, data
// still there after reopening, concurrent writers.

import Foundation
import GRDB
import GRDBSQLite
import HandoffCore
import HandoffTestSupport
import Synchronization
import Testing

@testable import HandoffSQLite

/// The rows of `sql` and how many virtual-machine steps SQLite took for
/// them: how far a listing walked, whatever the clock says.
private func rowsAndSteps(_ store: SQLiteStore, _ listing: (sql: String, arguments: StatementArguments)) async throws -> ([Int64], Int32) {
    try await store.pool.read { db in
        let statement = try db.makeStatement(sql: listing.sql)
        let rows = try Row.fetchAll(statement, arguments: listing.arguments).map { $0["seq"] as Int64 }
        return (rows, sqlite3_stmt_status(statement.sqliteStatement, SQLITE_STMTSTATUS_VM_STEP, 0))
    }
}

/// SQLite's plan for `sql`, its steps joined by "; ".
private func queryPlan(_ store: SQLiteStore, _ sql: String, _ arguments: StatementArguments) async throws -> String {
    try await store.pool.read { db in
        try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] as String }.joined(separator: "; ")
    }
}

private func temporaryDatabase() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("handoff-\(UUID().uuidString).sqlite").path
}

/// An assessment the policy automated, without an idempotency key: what `queueAssessment` takes.
private func automatedAssessment(of sessionID: String) -> AssessmentRecord {
    AssessmentRecord(
        sessionID: sessionID, idempotencyKey: "", requestHash: [], assessmentJSON: "{}", pendingActionID: nil, createdAtMs: 2000)
}

/// Holds the store's writer inside a transaction (after `setUp` ran in it),
/// so that the writes queued meanwhile share the next transaction, in the
/// order they were queued.
private struct HeldWriter {
    let store: SQLiteStore
    private let gate = DispatchSemaphore(value: 0)
    private var holding: Task<Void, any Error>?
    private var calls: [Task<String, any Error>] = []

    init(_ store: SQLiteStore, setUp: @escaping @Sendable (Database) throws -> Void = { _ in }) async throws {
        self.store = store
        let held = Mutex(false)
        let gate = gate
        holding = Task {
            try await store.write { db in
                try setUp(db)
                held.withLock { $0 = true }
                gate.wait()
            }
        }
        while !held.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
    }

    /// Starts `call` and returns once its write waits in the queue.
    mutating func enqueue(_ call: @escaping @Sendable () async throws -> String) async throws {
        let queued = store._testOnly_waitingWrites
        calls.append(Task(operation: call))
        while store._testOnly_waitingWrites == queued { try await Task.sleep(for: .milliseconds(2)) }
    }

    /// Lets the writer go; what each call returned, in queue order.
    func release() async throws -> [String] {
        gate.signal()
        try await holding?.value
        var outcomes: [String] = []
        for call in calls { outcomes.append(try await call.value) }
        return outcomes
    }
}

private func session(_ id: String, tenant: TenantID = .default, state: String = "{}") -> SessionRecord {
    SessionRecord(
        tenant: tenant, id: id, version: 1, stateJSON: state, status: .active, labels: ["channel": "web"],
        createdAtMs: 1000, updatedAtMs: 1000)
}

private func event(_ action: String, _ reasoning: String = "because", at ms: Int64 = 1000) -> NewEvent {
    NewEvent(action: action, actor: "handoff://tenant/default/agent/bot", reasoning: reasoning, detailsJSON: "{}", occurredAtMs: ms)
}

@Suite("SQLite store")
struct SQLiteStoreTests {
    @Test("commits are synchronous=FULL on the writer, in WAL mode (GRDB's pool would leave NORMAL)")
    func durableSettings() throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        #expect(try store._testOnly_writerSynchronous == 2)
        // Reopening an existing file sets it again.
        let again = try SQLiteStore(path: path)
        #expect(try again._testOnly_writerSynchronous == 2)
    }

    @Test("create, read back, and refuse a duplicate id")
    func createAndGet() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        let first = try await store.createSession(session("s-1", state: #"{"a":1}"#), event: event("session.created"))
        #expect(first.sequence == 1)
        #expect(first.previousHash == EventChain.genesis)
        let loaded = try await store.session(tenant: .default, id: "s-1")
        #expect(loaded?.stateJSON == #"{"a":1}"#)
        #expect(loaded?.labels == ["channel": "web"])
        await #expect(throws: StoreError.alreadyExists("s-1")) {
            _ = try await store.createSession(session("s-1"), event: event("session.created"))
        }
        #expect(try await store.session(tenant: .default, id: "nope") == nil)
    }

    @Test("a stale version is refused and changes nothing; the right one bumps it")
    func versions() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        _ = try await store.createSession(session("s"), event: event("session.created"))
        let record = try await store.updateState(
            tenant: .default, id: "s", expectedVersion: 1, stateJSON: #"{"b":2}"#, updatedAtMs: 2000,
            event: event("session.state_updated", at: 2000))
        #expect(try await store.session(tenant: .default, id: "s")?.version == 2)
        #expect(record.sequence == 2)
        await #expect(throws: StoreError.versionConflict(expected: 1, current: 2)) {
            _ = try await store.updateState(
                tenant: .default, id: "s", expectedVersion: 1, stateJSON: #"{"c":3}"#, updatedAtMs: 3000,
                event: event("session.state_updated"))
        }
        let after = try await store.session(tenant: .default, id: "s")
        #expect(after?.stateJSON == #"{"b":2}"#)
        #expect(after?.version == 2)
        #expect(try await store.events(tenant: .default, sessionID: "s").count == 2, "a refused write appended an event")
        await #expect(throws: StoreError.notFound("ghost")) {
            _ = try await store.updateState(
                tenant: .default, id: "ghost", expectedVersion: 1, stateJSON: "{}", updatedAtMs: 1, event: event("x"))
        }
    }

    @Test("a status word this version does not know (a newer version's, a hand edit) is a store failure naming it, not a trap")
    func unknownStatus() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        _ = try await store.createSession(session("s"), event: event("session.created"))
        _ = try await store.openTicket(
            TicketRecord(
                tenant: .default, id: "t-1", sessionID: "s", pendingActionID: "", reason: "r", priority: 1, status: .open,
                createdBy: "a", assignedTo: "", createdAtMs: 1, slaDeadlineMs: 2, snapshotJSON: "{}"),
            turn: TurnRecord(
                sessionID: "s", sequence: 0, input: "", output: "o", metadataJSON: "{}", reasoning: "r", author: "a", createdAtMs: 1),
            event: event("session.escalated"))
        try await DatabaseQueue(path: path).write { db in
            try db.execute(sql: "UPDATE sessions SET status = 'frozen'")
            try db.execute(sql: "UPDATE tickets SET status = 'parked'")
        }
        let fresh = try SQLiteStore(path: path)
        await #expect(throws: StoreError.failure("a stored session has status 'frozen', which this version of handoffd does not know")) {
            _ = try await fresh.session(tenant: .default, id: "s")
        }
        await #expect(throws: StoreError.failure("a stored ticket has status 'parked', which this version of handoffd does not know")) {
            _ = try await fresh.ticket(tenant: .default, id: "t-1")
        }
    }

    @Test("events form a hash chain that verifies, and tampering is found at the right event")
    func chain() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        _ = try await store.createSession(session("s"), event: event("session.created"))
        for version in Int64(1)...4 {
            _ = try await store.updateState(
                tenant: .default, id: "s", expectedVersion: version, stateJSON: #"{"v":\#(version)}"#,
                updatedAtMs: 1000 + version, event: event("session.state_updated", "step \(version)"))
        }
        let events = try await store.events(tenant: .default, sessionID: "s")
        #expect(events.map(\.sequence) == [1, 2, 3, 4, 5])
        #expect(EventChain.verify(events) == nil)

        // Rewrite the reasoning of event 3 behind the store's back.
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try db.execute(sql: "UPDATE events SET reasoning = 'edited' WHERE session_id = 's' AND seq = 3")
        }
        let tampered = try await store.events(tenant: .default, sessionID: "s")
        let broken = EventChain.verify(tampered)
        #expect(broken?.sequence == 3)
        #expect(broken?.reason == "content does not match its hash")
    }

    @Test(
        "audit verify streams the chain and holds it to the session's head: a head moved to another chain, a missing head event, a head seq or hash that disagrees"
    )
    func auditHoldsTheChainToItsHead() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        for id in ["a", "b", "c", "d", "e"] {
            _ = try await store.createSession(session(id), event: event("session.created"))
            for version in Int64(1)...2 {
                _ = try await store.updateState(
                    tenant: .default, id: id, expectedVersion: version, stateJSON: "{}", updatedAtMs: 1000 + version,
                    event: event("session.state_updated", "step \(version)"))
            }
        }
        let intact = try #require(try await store.verifyChain(tenant: .default, sessionID: "a"))
        #expect(intact.firstBreak == nil && intact.checked == 3)
        #expect(intact.lastHash == (try await store.events(tenant: .default, sessionID: "a")).last?.hash)
        #expect(try await store.verifyChain(tenant: .default, sessionID: "nobody") == nil)

        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            // a: its head points at b's chain, seq and hash included, so every
            // event it reaches hashes right; only their owner is wrong.
            try db.execute(
                sql: """
                    UPDATE sessions SET (last_seq, last_hash, last_position) =
                        (SELECT last_seq, last_hash, last_position FROM sessions WHERE id = 'b') WHERE id = 'a'
                    """)
            // c: the event its head names is gone.
            try db.execute(sql: "DELETE FROM events WHERE position = (SELECT last_position FROM sessions WHERE id = 'c')")
            // d: the head claims one event more than the chain holds.
            try db.execute(sql: "UPDATE sessions SET last_seq = last_seq + 1 WHERE id = 'd'")
            // e: the head's hash is not its last event's.
            try db.execute(sql: "UPDATE sessions SET last_hash = zeroblob(32) WHERE id = 'e'")
        }
        let moved = try #require(try await store.verifyChain(tenant: .default, sessionID: "a"))
        #expect(moved.firstBreak?.sequence == 1)
        #expect(moved.firstBreak?.reason == "the chain reaches an event of session b in tenant default")
        let missing = try #require(try await store.verifyChain(tenant: .default, sessionID: "c"))
        #expect(missing.firstBreak?.sequence == 3)
        #expect(missing.firstBreak?.reason == "the session's head is event 3, which is missing")
        #expect(missing.checked == 0)
        let longer = try #require(try await store.verifyChain(tenant: .default, sessionID: "d"))
        #expect(longer.firstBreak?.sequence == 3)
        #expect(longer.firstBreak?.reason == "the chain ends at event 3, but the session's head is event 4")
        let rehashed = try #require(try await store.verifyChain(tenant: .default, sessionID: "e"))
        #expect(rehashed.firstBreak?.sequence == 3)
        #expect(rehashed.firstBreak?.reason == "the session's head hash does not match event 3")
        // b itself still verifies.
        #expect(try await store.verifyChain(tenant: .default, sessionID: "b")?.firstBreak == nil)
        // What audit verify (the admin RPC, the CLI) answers: a break, not an
        // intact chain (a) or "not found" (c).
        let service = SessionService(store: store)
        let admin = Caller(tenant: .default, identity: "handoff://tenant/default/admin/root")
        #expect(try await service.verifyAuditChain(id: "a", caller: admin).firstBreak?.sequence == 1)
        #expect(try await service.verifyAuditChain(id: "c", caller: admin).firstBreak?.sequence == 3)
    }

    @Test("a record other than a session that is not there is named as what it is")
    func missingRecordsNamed() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        _ = try await store.createSession(session("s"), event: event("session.created"))
        let ghost = PendingActionRecord(
            tenant: .default, id: "pa-ghost", sessionID: "s", status: .pending, actionJSON: "{}", risk: 1, decisionType: "none",
            strategy: 0, createdAtMs: 1, updatedAtMs: 1, expiresAtMs: 0, idempotencyKey: "", actionHash: [], assessedVersion: 1)
        await #expect(throws: StoreError.missing(kind: "pending action", id: "pa-ghost")) {
            _ = try await store.updatePendingAction(ghost, events: [])
        }
        #expect(StoreError.missing(kind: "pending action", id: "pa-ghost").description == "pending action pa-ghost not found")
        #expect(HandoffError(StoreError.missing(kind: "ticket", id: "t-1")) == .notFound("ticket t-1 not found"))
    }

    @Test("tenants are apart: the same id in two tenants are two sessions")
    func tenants() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        let acme = TenantID("acme")
        let globex = TenantID("globex")
        _ = try await store.createSession(session("s", tenant: acme, state: #"{"who":"acme"}"#), event: event("session.created"))
        _ = try await store.createSession(session("s", tenant: globex, state: #"{"who":"globex"}"#), event: event("session.created"))
        #expect(try await store.session(tenant: acme, id: "s")?.stateJSON == #"{"who":"acme"}"#)
        #expect(try await store.session(tenant: globex, id: "s")?.stateJSON == #"{"who":"globex"}"#)
        #expect(try await store.session(tenant: .default, id: "s") == nil)
    }

    @Test("what was committed is there after reopening the file")
    func reopen() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let store = try SQLiteStore(path: path)
            _ = try await store.createSession(session("kept"), event: event("session.created"))
            _ = try await store.updateState(
                tenant: .default, id: "kept", expectedVersion: 1, stateJSON: #"{"x":1}"#, updatedAtMs: 2, event: event("u"))
        }
        let reopened = try SQLiteStore(path: path)
        #expect(try await reopened.session(tenant: .default, id: "kept")?.version == 2)
        #expect(EventChain.verify(try await reopened.events(tenant: .default, sessionID: "kept")) == nil)
    }

    @Test("concurrent writers on many sessions all land, each chain intact")
    func concurrentWriters() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        let sessions = 20
        let updates = 10
        for s in 0..<sessions { _ = try await store.createSession(session("s\(s)"), event: event("session.created")) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for s in 0..<sessions {
                group.addTask {
                    for u in 1...updates {
                        _ = try await store.updateState(
                            tenant: .default, id: "s\(s)", expectedVersion: Int64(u), stateJSON: #"{"u":\#(u)}"#,
                            updatedAtMs: Int64(u), event: event("session.state_updated"))
                    }
                }
            }
            try await group.waitForAll()
        }
        for s in 0..<sessions {
            #expect(try await store.session(tenant: .default, id: "s\(s)")?.version == Int64(updates + 1))
            let events = try await store.events(tenant: .default, sessionID: "s\(s)")
            #expect(events.count == updates + 1)
            #expect(EventChain.verify(events) == nil)
        }
    }

    @Test("concurrent writes share commits; a refused write in a batch rolls back alone")
    func groupCommit() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        for s in 0..<20 { _ = try await store.createSession(session("g\(s)"), event: event("session.created")) }
        let before = store._testOnly_commitCount
        let refused = try await withThrowingTaskGroup(of: Bool.self) { group in
            for s in 0..<20 {
                for u in 1...10 {
                    group.addTask {
                        // Half of these race for the same version: exactly one per (session, version) lands.
                        do {
                            _ = try await store.updateState(
                                tenant: .default, id: "g\(s)", expectedVersion: Int64((u + 1) / 2), stateJSON: #"{"u":\#(u)}"#,
                                updatedAtMs: Int64(u), event: event("session.state_updated"))
                            return false
                        } catch StoreError.versionConflict {
                            return true
                        }
                    }
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        let commits = store._testOnly_commitCount - before
        #expect(commits < 200, "200 concurrent writes took \(commits) commits: no group commit")
        for s in 0..<20 {
            let events = try await store.events(tenant: .default, sessionID: "g\(s)")
            let version = try await store.session(tenant: .default, id: "g\(s)")?.version ?? 0
            #expect(Int64(events.count) == version, "g\(s): \(events.count) events at version \(version)")
            #expect(EventChain.verify(events) == nil)
        }
        #expect(refused > 0, "no write was refused: the race did not happen")
    }

    @Test(
        "a queued assessment returns before its commit, commits once before the writes queued after it (an undone batch too), a read of events waits for it, and the queue is bounded"
    )
    func queuedAssessment() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        _ = try await store.createSession(session("q"), event: event("session.created"))
        let record = automatedAssessment(of: "q")
        var held = try await HeldWriter(store)
        let outcomes = Mutex<[String]>([])
        let queued = store.queueAssessment(tenant: .default, assessment: record, events: [event("action.assessed", at: 2000)]) { result in
            outcomes.withLock { $0.append((try? result.get().events.map(\.sequence)).map { "committed \($0)" } ?? "failed") }
        }
        #expect(queued)
        #expect(store._testOnly_waitingWrites == 1, "queueAssessment did not return until its write ran")
        #expect(outcomes.withLock { $0 }.isEmpty)
        // Behind it: a write that changes rows and then throws (its batch is
        // undone and run again), a write, and a read started meanwhile.
        try await held.enqueue {
            do {
                _ = try await store.write { db -> Int in
                    try db.execute(sql: "UPDATE sessions SET state_json = '{\"half\":true}' WHERE id = 'q'")
                    throw StoreError.failure("refused after writing")
                }
                return "written"
            } catch StoreError.failure {
                return "refused"
            }
        }
        try await held.enqueue {
            _ = try await store.updateState(
                tenant: .default, id: "q", expectedVersion: 1, stateJSON: "{}", updatedAtMs: 3000, event: event("session.state_updated"))
            return "updated"
        }
        var query = EventQuery()
        query.sessionID = "q"
        let reader = Task { [query] in try await store.listEvents(tenant: .default, query: query).events }
        while store._testOnly_settlingReads == 0 { try await Task.sleep(for: .milliseconds(2)) }
        #expect(try await held.release() == ["refused", "updated"])
        let listed = try await reader.value
        #expect(listed.map(\.event.action).sorted() == ["action.assessed", "session.created", "session.state_updated"])
        #expect(outcomes.withLock { $0 } == ["committed [2]"], "the queued write was not answered exactly once, committed")
        let chain = try await store.events(tenant: .default, sessionID: "q")
        #expect(chain.map(\.event.action) == ["session.created", "action.assessed", "session.state_updated"])
        #expect(EventChain.verify(chain) == nil)
        #expect(store._testOnly_settlingReads == 0)

        // One for a session that does not exist fails in its completion; settle waits for it.
        let missing = automatedAssessment(of: "nope")
        #expect(
            store.queueAssessment(tenant: .default, assessment: missing, events: [event("action.assessed")]) { result in
                if case .failure(.notFound(let id)) = result { outcomes.withLock { $0.append("not found \(id)") } }
            })
        await store.settle()
        #expect(outcomes.withLock { $0 } == ["committed [2]", "not found nope"])

        // Past the limit of queued writes, nothing more is queued: the caller waits for its commit instead.
        let full = try await HeldWriter(store)
        for _ in 0..<SQLiteStore.maximumQueuedAssessments {
            #expect(store.queueAssessment(tenant: .default, assessment: record, events: [event("action.assessed")]) { _ in })
        }
        #expect(!store.queueAssessment(tenant: .default, assessment: record, events: [event("action.assessed")]) { _ in })
        #expect(store._testOnly_waitingWrites == SQLiteStore.maximumQueuedAssessments)
        _ = try await full.release()
        await store.settle()
        #expect(store.queueAssessment(tenant: .default, assessment: record, events: [event("action.assessed")]) { _ in })
        await store.settle()
        #expect(try await store.events(tenant: .default, sessionID: "q").count == 3 + SQLiteStore.maximumQueuedAssessments + 1)
    }

    @Test(
        "a queued assessment only appends events: reads of anything else (sessions, pending actions, tickets, approvals) do not wait for its commit")
    func otherReadsDoNotWaitForQueuedAssessments() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        _ = try await store.createSession(session("q"), event: event("session.created"))
        let record = automatedAssessment(of: "q")
        let held = try await HeldWriter(store)
        #expect(store.queueAssessment(tenant: .default, assessment: record, events: [event("action.assessed", at: 2000)]) { _ in })
        let done = Mutex(false)
        let reads = Task { () async throws -> String? in
            defer { done.withLock { $0 = true } }
            let found = try await store.session(tenant: .default, id: "q")
            _ = try await store.pendingAction(tenant: .default, id: "none")
            _ = try await store.tickets(tenant: .default, query: TicketQuery())
            _ = try await store.pendingApprovals(tenant: .default, query: ApprovalQuery())
            _ = try await store.context(tenant: .default, sessionID: "q", turnLimit: 10)
            _ = try await store.pendingAction(tenant: .default, releaseTokenHash: [1, 2, 3])
            _ = try await store.ticket(tenant: .default, id: "none")
            _ = try await store.approval(tenant: .default, id: "none")
            _ = try await store.pendingApprovalID(tenant: .default, pendingActionID: "none")
            _ = try await store.dueApprovals(now: 5000, limit: 10)
            _ = try await store.escalationCounts(tenant: .default, since: 0, until: 5000)
            _ = try await store.escalationWindow(tenant: .default, since: 0, until: 5000)
            _ = try await store.unresolvedTicketID(tenant: .default, sessionID: "q")
            _ = try await store.unrecordedSLABreaches(now: 5000, limit: 10)
            return found?.id
        }
        // Either the reads finish while the writer is held, or one of them
        // waits for the queued write (the failure); then let the writer go.
        while !done.withLock({ $0 }) && store._testOnly_settlingReads == 0 {
            try await Task.sleep(for: .milliseconds(2))
        }
        #expect(done.withLock { $0 }, "a read that sees no events waited for the queued assessment's commit")
        #expect(store._testOnly_waitingWrites == 1, "the queued assessment committed before the reads returned")
        _ = try await held.release()
        #expect(try await reads.value == "q")
        // A read of events still waits for it, and sees it.
        #expect(try await store.events(tenant: .default, sessionID: "q").map(\.event.action) == ["session.created", "action.assessed"])
    }

    @Test("a write that changed rows and then threw leaves none of them; the rest of its batch commits, in at most two passes")
    func refusedWriteLeavesNothing() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        for s in 0..<16 { _ = try await store.createSession(session("p\(s)"), event: event("session.created")) }
        // The writes below share one transaction, in this order.
        var batch = try await HeldWriter(store)
        let before = store._testOnly_commitCount
        @Sendable func update(_ s: Int) async throws -> String {
            _ = try await store.updateState(
                tenant: .default, id: "p\(s)", expectedVersion: 1, stateJSON: #"{"done":true}"#, updatedAtMs: 2,
                event: event("session.state_updated"))
            return "updated"
        }
        @Sendable func failAfterWriting(_ s: Int) async throws -> String {
            do {
                _ = try await store.write { db -> Int in
                    try db.execute(sql: "UPDATE sessions SET state_json = '{\"half\":true}', version = 99 WHERE id = 'p\(s)'")
                    _ = try SQLiteStore.append(db, tenant: .default, sessionID: "p\(s)", event: event("session.state_updated"))
                    throw StoreError.failure("refused after writing")
                }
                return "p\(s) written"
            } catch StoreError.failure {
                return "p\(s) refused"
            }
        }
        let runs = Mutex(0)
        // Counts its runs: each pass of the batch runs it again.
        try await batch.enqueue {
            _ = try await store.write { db in
                runs.withLock { $0 += 1 }
                try db.execute(sql: "UPDATE sessions SET status = 'escalated' WHERE id = 'p12'")
            }
            return "counted"
        }
        for s in 0..<7 { try await batch.enqueue { try await update(s) } }
        try await batch.enqueue { try await failAfterWriting(7) }
        // Refused before it changed anything: no undo needed for it.
        try await batch.enqueue {
            do {
                _ = try await store.updateState(
                    tenant: .default, id: "p3", expectedVersion: 9, stateJSON: #"{"stale":true}"#, updatedAtMs: 2,
                    event: event("session.state_updated"))
                return "stale written"
            } catch StoreError.versionConflict {
                return "stale refused"
            }
        }
        for s in 8..<11 { try await batch.enqueue { try await update(s) } }
        try await batch.enqueue { try await failAfterWriting(11) }
        for s in 13..<16 { try await batch.enqueue { try await update(s) } }
        let outcomes = try await batch.release()
        #expect(
            outcomes == ["counted"] + Array(repeating: "updated", count: 7) + ["p7 refused", "stale refused"]
                + Array(repeating: "updated", count: 3) + ["p11 refused"] + Array(repeating: "updated", count: 3))
        #expect(store._testOnly_commitCount - before == 2, "the hold's transaction, then one for the writes that succeeded")
        #expect(runs.withLock { $0 } == 2, "a write before two that failed after writing ran \(runs.withLock { $0 }) times, not twice")
        for s in [7, 11] {
            let refused = try #require(try await store.session(tenant: .default, id: "p\(s)"))
            #expect(
                refused.version == 1 && !refused.stateJSON.contains("half"),
                "the refused write left \(refused.stateJSON) at version \(refused.version)")
            #expect(try await store.events(tenant: .default, sessionID: "p\(s)").count == 1)
        }
        #expect(try await store.session(tenant: .default, id: "p12")?.status == .escalated)
        for s in Array(0..<7) + Array(8..<11) + Array(13..<16) {
            let record = try #require(try await store.session(tenant: .default, id: "p\(s)"))
            #expect(record.version == 2 && record.stateJSON.contains("done"))
            #expect(EventChain.verify(try await store.events(tenant: .default, sessionID: "p\(s)")) == nil)
        }
    }

    @Test(
        "a write SQLite rolls the whole transaction back for (an interrupt) is refused; the writes after it commit in a new transaction, none by itself"
    )
    func transactionEndedBySQLite() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        for s in 0..<3 { _ = try await store.createSession(session("i\(s)"), event: event("session.created")) }
        var batch = try await HeldWriter(store) { db in
            // Interrupts the statement that calls it: SQLite then rolls the whole transaction back.
            db.add(
                function: DatabaseFunction("handoff_test_interrupt", argumentCount: 0, pure: false) { _ in
                    store.pool.interrupt()
                    return 1
                })
        }
        @Sendable func update(_ s: Int) async throws -> String {
            _ = try await store.updateState(
                tenant: .default, id: "i\(s)", expectedVersion: 1, stateJSON: #"{"done":true}"#, updatedAtMs: 2,
                event: event("session.state_updated"))
            return "updated"
        }
        try await batch.enqueue { try await update(0) }
        try await batch.enqueue {
            do {
                _ = try await store.write { db in
                    try db.execute(sql: "UPDATE sessions SET status = 'x' WHERE id = 'i1' AND handoff_test_interrupt() = 1")
                }
                return "interrupted write committed"
            } catch let error as StoreError {
                return error.description.contains("interrupt") ? "interrupted" : "\(error)"
            }
        }
        try await batch.enqueue { try await update(2) }
        #expect(try await batch.release() == ["updated", "interrupted", "updated"])
        for s in [0, 2] {
            let record = try #require(try await store.session(tenant: .default, id: "i\(s)"))
            #expect(record.version == 2)
            let events = try await store.events(tenant: .default, sessionID: "i\(s)")
            #expect(events.map(\.event.action) == ["session.created", "session.state_updated"] && EventChain.verify(events) == nil)
        }
        #expect(try await store.session(tenant: .default, id: "i1")?.status == .active)
    }

    @Test("links edited into a cycle end the chain walk: audit verify reports a break instead of looping", .timeLimit(.minutes(1)))
    func chainCycleEnds() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        _ = try await store.createSession(session("c"), event: event("session.created"))
        for i in 2...5 {
            _ = try await store.updateState(
                tenant: .default, id: "c", expectedVersion: Int64(i - 1), stateJSON: "{}", updatedAtMs: 2, event: event("session.state_updated"))
        }
        try await store.pool.write { db in
            try db.execute(
                sql: """
                    UPDATE events SET prev_position = (SELECT position FROM events WHERE session_id = 'c' AND seq = 5)
                    WHERE session_id = 'c' AND seq = 3
                    """)
        }
        let events = try await store.events(tenant: .default, sessionID: "c")
        #expect(events.count == 5)
        #expect(EventChain.verify(events) != nil)
        var query = EventQuery()
        query.sessionID = "c"
        #expect(try await store.listEvents(tenant: .default, query: query).events.count == 5)
    }

    @Test("every lookup by something other than the primary key uses its index, not a walk through the tenant")
    func lookupsUseTheirIndexes() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        for sql in SQLiteStore.Lookup.all + [
            // Chosen by the planner unaided today; checked so that a new index or column does not change that.
            "SELECT count(*) FROM tickets WHERE tenant_id = ? AND created_at_ms >= ? AND created_at_ms < ?",
            "SELECT id FROM approvals WHERE tenant_id = ? AND pending_action_id = ? AND status = 'pending'",
        ] {
            let plan = try await queryPlan(store, sql, StatementArguments(Array(repeating: "x", count: sql.filter { $0 == "?" }.count)))
            #expect(
                plan.contains("INDEX") && !plan.contains("PRIMARY KEY") && !plan.contains("SCAN tickets") && !plan.contains("SCAN pending_actions")
                    && !plan.contains("SCAN approvals") && !plan.contains("SCAN events"), "\(sql)\n→ \(plan)")
        }
    }

    @Test("ListPendingApprovals reads in its index's order, with and without a cursor and routing: no sort of the tenant's approvals")
    func pendingApprovalsInIndexOrder() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        var query = ApprovalQuery()
        query.limit = 51
        query.dueAfterMs = 1
        for routed in [false, true] {
            query.currentApprovers = routed ? ["role:approver", "group:managers"] : nil
            query.notRequestedBy = routed ? "handoff://tenant/acme/approver/a" : nil
            for after in [nil, ApprovalCursor(dueAtMs: 0, createdAtMs: 5, id: "ap-x")] {
                query.after = after
                let (sql, arguments) = try #require(SQLiteStore.pendingApprovalListing(tenant: TenantID("acme"), query: query))
                let plan = try await queryPlan(store, sql, arguments)
                #expect(plan.contains("approvals_listing") && !plan.contains("TEMP B-TREE"), "\(plan)")
            }
        }
    }

    @Test("one session's events (ListEvents of it, audit verify) come from walking its chain: rowid lookups, never a walk through the tenant")
    func sessionEventListingsWalkTheChain() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        var queries: [EventQuery] = []
        for newestFirst in [false, true] {
            var query = EventQuery()
            query.sessionID = "s1"
            query.newestFirst = newestFirst
            queries.append(query)
            query.actions = ["session.state_updated", "session.turn_added"]
            queries.append(query)
            query.since = 1
            query.until = 2
            query.after = EventPosition(occurredAtMs: 1, sessionID: "s1", sequence: 3)
            queries.append(query)
            query.after?.feedPosition = 1  // where the walk resumes (newest first)
            queries.append(query)
        }
        var statements = queries.map { SQLiteStore.eventListing(tenant: .default, query: $0) }
        statements.append((SQLiteStore.Lookup.eventsOfSession, ["default", "s1"]))
        for (sql, arguments) in statements {
            let plan = try await queryPlan(store, sql, arguments)
            #expect(
                plan.contains("SEARCH sessions USING PRIMARY KEY (tenant_id=? AND id=?)")
                    && plan.contains("SEARCH e USING INTEGER PRIMARY KEY (rowid=?)")
                    && plan.contains("SEARCH events USING INTEGER PRIMARY KEY (rowid=?)")
                    && !plan.contains("SCAN events") && !plan.contains("SCAN e ") && !plan.contains("INDEX events_"), "\(sql)\n→ \(plan)")
        }
    }

    @Test("one session's events list in chain order (seq), also where its times go back; newest first, a page walks only as far as it needs")
    func sessionListingFollowsTheChain() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        _ = try await store.createSession(session("long"), event: event("session.created", at: 5000))
        // 400 events; every tenth one's time is set back (a clock stepped back).
        for version in 1..<400 {
            let at: Int64 = version % 10 == 0 ? 1000 : 5000 + Int64(version)
            _ = try await store.updateState(
                tenant: .default, id: "long", expectedVersion: Int64(version), stateJSON: "{}", updatedAtMs: at,
                event: event(version % 3 == 0 ? "session.turn_added" : "session.state_updated", at: at))
        }
        // Paging with the tokens' seq (and the store's position of the event, or
        // not), in both orders, with and without a filter: every event once, in seq order.
        for (newestFirst, resume) in [(false, false), (true, false), (true, true)] {
            for actions in [[], ["session.turn_added"]] {
                var query = EventQuery()
                query.sessionID = "long"
                query.newestFirst = newestFirst
                query.actions = actions
                query.limit = 7
                var seen: [Int64] = []
                while true {
                    let page = try await store.listEvents(tenant: .default, query: query).events
                    seen += page.map(\.sequence)
                    guard page.count == query.limit, let last = page.last else { break }
                    query.after = EventPosition(
                        occurredAtMs: last.event.occurredAtMs, sessionID: "long", sequence: last.sequence,
                        feedPosition: resume ? last.feedPosition : nil)
                }
                var expected = Array(Int64(1)...400).filter { actions.isEmpty || ($0 - 1) % 3 == 0 && $0 > 1 }
                if newestFirst { expected.reverse() }
                #expect(seen == expected, "newestFirst \(newestFirst), resume \(resume), actions \(actions)")
            }
        }
        // The walk: the latest 5 cost about 5 events' steps, not 400; the page after the token at 200 walks from the head to it.
        var latest = EventQuery()
        latest.sessionID = "long"
        latest.newestFirst = true
        latest.limit = 5
        let (newest, newestSteps) = try await rowsAndSteps(store, SQLiteStore.eventListing(tenant: .default, query: latest))
        #expect(newest == [400, 399, 398, 397, 396])
        var oldest = latest
        oldest.newestFirst = false
        let (first, wholeWalkSteps) = try await rowsAndSteps(store, SQLiteStore.eventListing(tenant: .default, query: oldest))
        #expect(first == [1, 2, 3, 4, 5])
        #expect(newestSteps * 20 < wholeWalkSteps, "the latest 5 took \(newestSteps) steps, the whole chain \(wholeWalkSteps)")
        // Newest first after the event at seq 100: from the head, the walk passes 300 events;
        // resumed at that event's position, it takes a page's steps. A position that is not
        // that event's (stale, made up) is ignored: the walk starts at the head again.
        let hundredth = try #require(try await store.events(tenant: .default, sessionID: "long").first { $0.sequence == 100 })
        var deep = latest
        deep.after = EventPosition(occurredAtMs: hundredth.event.occurredAtMs, sessionID: "long", sequence: 100)
        let (fromHead, fromHeadSteps) = try await rowsAndSteps(store, SQLiteStore.eventListing(tenant: .default, query: deep))
        deep.after?.feedPosition = hundredth.feedPosition
        let (resumed, resumedSteps) = try await rowsAndSteps(store, SQLiteStore.eventListing(tenant: .default, query: deep))
        #expect(fromHead == [99, 98, 97, 96, 95] && resumed == fromHead)
        #expect(resumedSteps * 20 < fromHeadSteps, "resumed at seq 100: \(resumedSteps) steps, from the head \(fromHeadSteps)")
        // Another session's event with the same seq is no place to resume either.
        _ = try await store.createSession(session("other"), event: event("session.created"))
        for version in 1..<100 {
            _ = try await store.updateState(
                tenant: .default, id: "other", expectedVersion: Int64(version), stateJSON: "{}", updatedAtMs: 1, event: event("session.state_updated")
            )
        }
        let othersHundredth = try #require(try await store.events(tenant: .default, sessionID: "other").first { $0.sequence == 100 })
        let wrongPlaces: [Int64] = [try #require(hundredth.feedPosition) + 1, -7, try #require(othersHundredth.feedPosition)]
        for wrong in wrongPlaces {
            deep.after?.feedPosition = wrong
            #expect(try await rowsAndSteps(store, SQLiteStore.eventListing(tenant: .default, query: deep)).0 == fromHead)
        }
        oldest.after = EventPosition(occurredAtMs: 0, sessionID: "long", sequence: 390)
        let (tail, tailSteps) = try await rowsAndSteps(store, SQLiteStore.eventListing(tenant: .default, query: oldest))
        #expect(tail == [391, 392, 393, 394, 395])
        #expect(tailSteps * 10 < wholeWalkSteps, "the page after 390 took \(tailSteps) steps, the whole chain \(wholeWalkSteps)")
    }

    @Test("ListEvents of one action reads events_by_action in the listing's order: no walk through the tenant, no sort")
    func actionListingUsesTheActionIndex() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        for newestFirst in [false, true] {
            var query = EventQuery()
            query.actions = ["action.sampled_for_review"]
            query.newestFirst = newestFirst
            for after in [nil, EventPosition(occurredAtMs: 1, sessionID: "s1", sequence: 3)] {
                query.after = after
                let (sql, arguments) = SQLiteStore.eventListing(tenant: .default, query: query)
                let plan = try await queryPlan(store, sql, arguments)
                #expect(
                    plan.contains("USING INDEX events_by_action (tenant_id=? AND action=?") && !plan.contains("TEMP B-TREE"), "\(query)\n→ \(plan)")
            }
        }
    }

    @Test("v14 moves a store's events into append order and v15 chains them by position: every chain still verifies and goes on where it stopped")
    func eventsMigrateToAppendOrder() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // A store as v13 left it, with interleaved chains of two sessions.
        do {
            let pool = try DatabasePool(path: path)
            try SQLiteStore.migrator.migrate(pool, upTo: "v13: one open or claimed ticket per session; more wait")
            try await pool.write { db in
                var previous: [String: [UInt8]] = [:]
                for i in 1...10 {
                    let id = i % 2 == 0 ? "even" : "odd"
                    if previous[id] == nil {
                        try db.execute(
                            sql: "INSERT INTO sessions VALUES ('default', ?, 1, '{}', 'active', '{}', 0, 0)", arguments: [id])
                    }
                    let sequence = Int64((i + 1) / 2)
                    let event = NewEvent(
                        action: "session.turn_added", actor: "a", reasoning: "r\(i)", detailsJSON: "{}", occurredAtMs: Int64(100 - i))
                    let prev = previous[id] ?? EventChain.genesis
                    let hash = EventChain.hash(tenant: .default, sessionID: id, sequence: sequence, event: event, previousHash: prev)
                    try db.execute(
                        sql: "INSERT INTO events VALUES ('default', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        arguments: [
                            id, sequence, event.action, event.actor, event.reasoning, event.detailsJSON, event.occurredAtMs, Data(prev), Data(hash),
                        ])
                    previous[id] = hash
                }
                // Another tenant's session of the same id, and a session with no event.
                try db.execute(sql: "INSERT INTO sessions VALUES ('other', 'odd', 1, '{}', 'active', '{}', 0, 0)")
                let event = NewEvent(action: "session.created", actor: "a", reasoning: "other", detailsJSON: "{}", occurredAtMs: 50)
                let hash = EventChain.hash(tenant: TenantID("other"), sessionID: "odd", sequence: 1, event: event, previousHash: EventChain.genesis)
                try db.execute(
                    sql: "INSERT INTO events VALUES ('other', 'odd', 1, ?, ?, ?, ?, ?, ?, ?)",
                    arguments: [
                        event.action, event.actor, event.reasoning, event.detailsJSON, event.occurredAtMs, Data(EventChain.genesis), Data(hash),
                    ])
                try db.execute(sql: "INSERT INTO sessions VALUES ('default', 'empty', 1, '{}', 'active', '{}', 0, 0)")
            }
        }
        let store = try SQLiteStore(path: path)
        let other = try await store.events(tenant: TenantID("other"), sessionID: "odd")
        #expect(other.map(\.event.reasoning) == ["other"] && EventChain.verify(other) == nil)
        #expect(try await store.events(tenant: .default, sessionID: "empty").isEmpty)
        let first = try await store.addMemory(
            tenant: .default, memory: MemoryRecord(sessionID: "empty", sequence: 0, content: "m", metadataJSON: "{}", createdAtMs: 200),
            event: NewEvent(action: "session.memory_added", actor: "a", reasoning: "first", detailsJSON: "{}", occurredAtMs: 200),
            limit: (count: 1_000, bytes: 1 << 20))
        let empty = try await store.events(tenant: .default, sessionID: "empty")
        #expect(empty.map(\.sequence) == [1] && empty[0].previousHash == EventChain.genesis && EventChain.verify(empty) == nil)
        _ = first
        for id in ["odd", "even"] {
            let events = try await store.events(tenant: .default, sessionID: id)
            #expect(events.map(\.sequence) == [1, 2, 3, 4, 5])
            #expect(EventChain.verify(events) == nil)
            _ = try await store.addMemory(
                tenant: .default, memory: MemoryRecord(sessionID: id, sequence: 0, content: "m", metadataJSON: "{}", createdAtMs: 200),
                event: NewEvent(action: "session.memory_added", actor: "a", reasoning: "after", detailsJSON: "{}", occurredAtMs: 200),
                limit: (count: 1_000, bytes: 1 << 20))
            let after = try await store.events(tenant: .default, sessionID: id)
            #expect(after.map(\.sequence) == [1, 2, 3, 4, 5, 6] && after[5].previousHash == events[4].hash)
            #expect(EventChain.verify(after) == nil)
        }
        let columns = try await store.pool.read { db in try Row.fetchAll(db, sql: "PRAGMA table_info(events)").map { $0["name"] as String } }
        #expect(columns.first == "position")
    }

    @Test("a caller that finds the queue of assessments full waits for room, until a queued write is answered, and then queues")
    func queueRoom() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path)
        _ = try await store.createSession(session("q"), event: event("session.created"))
        let record = automatedAssessment(of: "q")
        let full = try await HeldWriter(store)
        for _ in 0..<SQLiteStore.maximumQueuedAssessments {
            #expect(store.queueAssessment(tenant: .default, assessment: record, events: [event("action.assessed")]) { _ in })
        }
        #expect(!store.queueAssessment(tenant: .default, assessment: record, events: [event("action.assessed")]) { _ in })
        let waiter = Task { await store.waitForQueueRoom() }
        try await until(seconds: 20) { store._testOnly_waitingForRoom > 0 }
        #expect(store._testOnly_waitingForRoom == 1, "the caller did not wait for room while the queue was full")
        _ = try await full.release()
        #expect(await waiter.value)
        #expect(store._testOnly_waitingForRoom == 0)
        #expect(store.queueAssessment(tenant: .default, assessment: record, events: [event("action.assessed")]) { _ in })
        await store.settle()
        #expect(try await store.events(tenant: .default, sessionID: "q").count == 1 + SQLiteStore.maximumQueuedAssessments + 1)
    }

    @Test("the page cache: the writer gets cacheMiB, each reader a quarter")
    func pageCache() async throws {
        let path = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteStore(path: path, cacheMiB: 8)
        #expect(try await store.pool.write { try Int.fetchOne($0, sql: "PRAGMA cache_size") } == -8192)
        #expect(try await store.pool.read { try Int.fetchOne($0, sql: "PRAGMA cache_size") } == -2048)
        #expect(try store._testOnly_checkpointPages == 10_000)
        let path2 = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: path2) }
        #expect(try SQLiteStore(path: path2, checkpointPages: 500)._testOnly_checkpointPages == 500)
    }
}
