// Handoff — the SQLite store: internals: event chain heads and appends, and mapping rows to records.

import Foundation
import GRDB
import HandoffCore

extension SQLiteStore {

    static func requireSession(_ db: Database, tenant: TenantID, id: String) throws {
        if try !sessionExists(db, tenant: tenant, id: id) { throw StoreError.notFound(id) }
    }

    static func sessionExists(_ db: Database, tenant: TenantID, id: String) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT 1 FROM sessions WHERE tenant_id = ? AND id = ?"),
            arguments: [tenant.rawValue, id]) ?? false
    }

    static func nextSequence(_ db: Database, table: String, tenant: TenantID, sessionID: String) throws -> Int64 {
        // `table` is one of two literals of this file, never caller input.
        (try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT COALESCE(MAX(seq), 0) + 1 FROM \(table) WHERE tenant_id = ? AND session_id = ?"),
            arguments: [tenant.rawValue, sessionID]) ?? 1)
    }

    /// A read of committed rows. It does not wait for detached writes
    /// (`queueAssessment`): those only append events and move their
    /// session's chain head, which no read but `readEvents` looks at.
    func read<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T {
        try await pool.read(body)
    }

    /// A read of events (or chain heads) that sees every write queued before
    /// it, detached ones included: it waits for those to commit first, so a
    /// ListEvents or audit verify after an automated assessment's answer
    /// sees its event. Every other read uses `read` and does not wait.
    func readEvents<T: Sendable>(_ body: @Sendable (Database) throws -> T) async throws -> T {
        await writer.settle()
        return try await pool.read(body)
    }

    /// Runs a write in the next group commit, passing StoreErrors through and naming others.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(StoreError) -> T {
        do {
            let result = try await writer.submit(body)
            writeHealth.succeeded()
            return result
        } catch {
            let failure = Self.storeError(error)
            writeHealth.record(failure)
            throw failure
        }
    }

    /// A write's error as the domain sees it: the store's own refusals as
    /// they are, a full volume as `.full`, anything else as `.failure`.
    static func storeError(_ error: any Error) -> StoreError {
        if let error = error as? StoreError { return error }
        if let error = error as? DatabaseError, error.resultCode == .SQLITE_FULL { return .full(error.message ?? "database or disk is full") }
        return .failure("\(error)")
    }

    /// Where a session's chain ends: its last event's sequence number, hash
    /// and position (0, genesis and nil before its first event).
    struct Head {
        var sequence: Int64
        var hash: [UInt8]
        var position: Int64?
    }

    /// The head of the session's chain and the version of its state; NOT_FOUND for no such session.
    static func head(_ db: Database, tenant: TenantID, sessionID: String) throws -> (Head, version: Int64) {
        let read = try HotStatement(db, Lookup.sessionHead)
        try read.bind(1, tenant.rawValue)
        try read.bind(2, sessionID)
        guard try read.step() else { throw StoreError.notFound(sessionID) }
        defer { read.reset() }
        return (Head(sequence: read.int64(0), hash: read.bytes(1) ?? EventChain.genesis, position: read.optionalInt64(2)), read.int64(3))
    }

    /// Appends one event to a session's chain, inside the caller's transaction,
    /// and moves the session's head to it.
    static func append(_ db: Database, tenant: TenantID, sessionID: String, event: NewEvent) throws -> EventRecord {
        try appendAll(db, tenant: tenant, sessionID: sessionID, events: [event])[0]
    }

    /// Appends events to a session's chain in order, each linked to the one
    /// before, and moves the head once, to the last: one read and one write
    /// of the session's row however many there are (a refund handed to
    /// approvers appends two).
    static func appendAll(_ db: Database, tenant: TenantID, sessionID: String, events: [NewEvent]) throws -> [EventRecord] {
        guard !events.isEmpty else { return [] }
        let (read, _) = try head(db, tenant: tenant, sessionID: sessionID)
        var head = read
        var appended: [EventRecord] = []
        appended.reserveCapacity(events.count)
        for event in events {
            let (record, position) = try insertEvent(db, tenant: tenant, sessionID: sessionID, event: event, after: head)
            appended.append(record)
            head = Head(sequence: record.sequence, hash: record.hash, position: position)
        }
        try moveHead(db, tenant: tenant, sessionID: sessionID, from: read, to: appended[appended.count - 1], at: head.position ?? 0)
        return appended
    }

    /// Moves the session's head from `head` (the seq it was read at) to
    /// `record`, at `position`; with `state`, writes the new state in the
    /// same statement (UpdateState: one write of the row).
    static func moveHead(
        _ db: Database, tenant: TenantID, sessionID: String, from head: Head, to record: EventRecord, at position: Int64,
        state: (version: Int64, json: String, updatedAtMs: Int64)? = nil
    ) throws {
        let move = try HotStatement(
            db,
            state == nil
                ? """
                UPDATE sessions SET last_seq = ?, last_hash = ?, last_position = ? WHERE tenant_id = ? AND id = ? AND last_seq = ?
                """
                : """
                UPDATE sessions SET last_seq = ?, last_hash = ?, last_position = ?, version = ?, state_json = ?, updated_at_ms = ?
                WHERE tenant_id = ? AND id = ? AND last_seq = ?
                """)
        try move.bind(1, record.sequence)
        try move.bind(2, record.hash)
        try move.bind(3, position)
        var next: Int32 = 4
        if let state {
            try move.bind(4, state.version)
            try move.bind(5, state.json)
            try move.bind(6, state.updatedAtMs)
            next = 7
        }
        try move.bind(next, tenant.rawValue)
        try move.bind(next + 1, sessionID)
        try move.bind(next + 2, head.sequence)
        try move.run()
        try requireHeadMoved(db, sessionID: sessionID)
    }

    /// Inserts the event that follows `head`; the caller moves the head.
    static func insertEvent(
        _ db: Database, tenant: TenantID, sessionID: String, event: NewEvent, after head: Head
    ) throws -> (EventRecord, position: Int64) {
        let sequence = head.sequence + 1
        let hash = EventChain.hash(tenant: tenant, sessionID: sessionID, sequence: sequence, event: event, previousHash: head.hash)
        let insert = try HotStatement(
            db,
            """
            INSERT INTO events (tenant_id, session_id, seq, action, actor, reasoning, details_json, occurred_at_ms, prev_hash, hash,
                prev_position, traceparent)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        try insert.bind(1, tenant.rawValue)
        try insert.bind(2, sessionID)
        try insert.bind(3, sequence)
        try insert.bind(4, event.action)
        try insert.bind(5, event.actor)
        try insert.bind(6, event.reasoning)
        try insert.bind(7, event.detailsJSON)
        try insert.bind(8, event.occurredAtMs)
        try insert.bind(9, head.hash)
        try insert.bind(10, hash)
        try insert.bind(11, head.position)
        try insert.bind(12, event.traceparent)
        try insert.run()
        let position = db.lastInsertedRowID
        let record = EventRecord(
            tenant: tenant, sessionID: sessionID, sequence: sequence, event: event, previousHash: head.hash, hash: hash,
            feedPosition: position)
        return (record, position)
    }

    /// After moving a head from the seq it was read at: that seq must still
    /// have been the head. With one writer reading the head in the same
    /// transaction this holds by construction; the check states the rule a
    /// store with several writers (PostgreSQL) must keep: no two events
    /// follow the same one.
    static func requireHeadMoved(_ db: Database, sessionID: String) throws {
        if db.changesCount != 1 {
            throw StoreError.failure("the event chain of \(sessionID) moved while an event was appended")
        }
    }

    static func fetchSession(_ db: Database, tenant: TenantID, id: String) throws -> SessionRecord? {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT version, state_json, status, labels_json, created_at_ms, updated_at_ms
                        FROM sessions WHERE tenant_id = ? AND id = ?
                        """),
                arguments: [tenant.rawValue, id])
        else { return nil }
        return SessionRecord(
            tenant: tenant, id: id, version: row[0], stateJSON: row[1], status: try status(row, 2, of: "session"), labels: decodeLabels(row[3]),
            createdAtMs: row[4], updatedAtMs: row[5])
    }

    static func event(from row: Row) -> EventRecord {
        EventRecord(
            tenant: TenantID(row["tenant_id"]), sessionID: row["session_id"], sequence: row["seq"],
            event: NewEvent(
                action: row["action"], actor: row["actor"], reasoning: row["reasoning"], detailsJSON: row["details_json"],
                occurredAtMs: row["occurred_at_ms"], traceparent: row["traceparent"]),
            previousHash: [UInt8](row["prev_hash"] as Data), hash: [UInt8](row["hash"] as Data), feedPosition: row["position"])
    }

    static func encodeLabels(_ labels: [String: String]) -> String {
        JSONValue.object(labels.mapValues(JSONValue.string)).serialized
    }

    static func decodeLabels(_ json: String) -> [String: String] {
        guard let members = (try? JSONValue(parsing: json))?.objectValue else { return [:] }
        return members.compactMapValues { if case .string(let text) = $0 { text } else { nil } }
    }
}
