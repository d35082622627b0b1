// Handoff — the SQLite store: sessions, their events (chains, listings and the change feed), turns, memories and context.

import Foundation
import GRDB
public import HandoffCore

extension SQLiteStore {
    public func createSession(_ session: SessionRecord, event: NewEvent) async throws(StoreError) -> EventRecord {
        try await write { db in
            if try Self.sessionExists(db, tenant: session.tenant, id: session.id) {
                throw StoreError.alreadyExists(session.id)
            }
            // The first event goes in first, so the row is written once, head and all.
            let (record, position) = try Self.insertEvent(
                db, tenant: session.tenant, sessionID: session.id, event: event,
                after: Head(sequence: 0, hash: EventChain.genesis, position: nil))
            try db.cachedStatement(
                sql: """
                    INSERT INTO sessions (tenant_id, id, version, state_json, status, labels_json, created_at_ms, updated_at_ms,
                        last_seq, last_hash, last_position)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                session.tenant.rawValue, session.id, session.version, session.stateJSON, session.status,
                Self.encodeLabels(session.labels), session.createdAtMs, session.updatedAtMs,
                record.sequence, Data(record.hash), position,
            ])
            return record
        }
    }

    public func session(tenant: TenantID, id: String) async throws(StoreError) -> SessionRecord? {
        do {
            return try await read { db in try Self.fetchSession(db, tenant: tenant, id: id) }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func updateState(
        tenant: TenantID, id: String, expectedVersion: Int64, stateJSON: String, updatedAtMs: Int64, event: NewEvent
    ) async throws(StoreError) -> EventRecord {
        try await write { db in
            // One read of the row (version and head), one event, one write of the row.
            let (head, current) = try Self.head(db, tenant: tenant, sessionID: id)
            guard current == expectedVersion else { throw StoreError.versionConflict(expected: expectedVersion, current: current) }
            let (record, position) = try Self.insertEvent(db, tenant: tenant, sessionID: id, event: event, after: head)
            try Self.moveHead(
                db, tenant: tenant, sessionID: id, from: head, to: record, at: position,
                state: (version: expectedVersion + 1, json: stateJSON, updatedAtMs: updatedAtMs))
            return record
        }
    }

    public func events(tenant: TenantID, sessionID: String) async throws(StoreError) -> [EventRecord] {
        do {
            return try await readEvents { db in
                try Row.fetchAll(
                    db,
                    sql: Lookup.eventsOfSession,
                    arguments: [tenant.rawValue, sessionID]
                ).map(Self.event(from:))
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func verifyChain(tenant: TenantID, sessionID: String) async throws(StoreError) -> EventChain.Verifier? {
        do {
            // One read: the head and the walk see the same snapshot.
            return try await readEvents { db -> EventChain.Verifier? in
                guard
                    let head = try Row.fetchOne(
                        db.cachedStatement(sql: Lookup.sessionHead), arguments: [tenant.rawValue, sessionID])
                else { return nil }
                var verifier = EventChain.Verifier(tenant: tenant, sessionID: sessionID)
                let rows = try Row.fetchCursor(db, sql: Lookup.eventsOfSession, arguments: [tenant.rawValue, sessionID])
                while let row = try rows.next(), verifier.check(Self.event(from: row)) == nil {}
                _ = verifier.finish(headSequence: head[0], headHash: (head[1] as Data?).map { [UInt8]($0) })
                return verifier
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func addTurn(tenant: TenantID, turn: TurnRecord, event: NewEvent) async throws(StoreError) -> TurnRecord {
        try await write { db in
            try Self.requireSession(db, tenant: tenant, id: turn.sessionID)
            let stored = try Self.insertTurn(db, tenant: tenant, turn)
            _ = try Self.append(db, tenant: tenant, sessionID: turn.sessionID, event: event)
            return stored
        }
    }

    public func addMemory(
        tenant: TenantID, memory: MemoryRecord, event: NewEvent, limit: (count: Int, bytes: Int)
    ) async throws(StoreError) -> MemoryRecord {
        try await write { db in
            try Self.requireSession(db, tenant: tenant, id: memory.sessionID)
            // The count bounds this scan (the writer's thread waits for it).
            let held = try Row.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT count(*), coalesce(sum(length(CAST(content AS BLOB)) + length(CAST(metadata_json AS BLOB))), 0)
                        FROM memories WHERE tenant_id = ? AND session_id = ?
                        """),
                arguments: [tenant.rawValue, memory.sessionID])
            let (count, bytes): (Int, Int) = (held?[0] ?? 0, held?[1] ?? 0)
            let adding = memory.content.utf8.count + memory.metadataJSON.utf8.count
            guard count < limit.count else {
                throw StoreError.limitReached("session \(memory.sessionID) holds \(count) memories, the most it may")
            }
            guard bytes + adding <= limit.bytes else {
                throw StoreError.limitReached(
                    "the memories of session \(memory.sessionID) hold \(bytes) bytes; this one (\(adding) bytes) would pass the limit of \(limit.bytes)"
                )
            }
            var stored = memory
            stored.sequence = try Self.nextSequence(db, table: "memories", tenant: tenant, sessionID: memory.sessionID)
            try db.cachedStatement(
                sql: """
                    INSERT INTO memories (tenant_id, session_id, seq, content, metadata_json, created_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [tenant.rawValue, stored.sessionID, stored.sequence, stored.content, stored.metadataJSON, stored.createdAtMs])
            _ = try Self.append(db, tenant: tenant, sessionID: memory.sessionID, event: event)
            return stored
        }
    }

    public func changes(tenant: TenantID, after: Int64, actions: [String]?, limit: Int) async throws(StoreError) -> [EventRecord] {
        // A row's position is its rowid: one writer appends, so rowids grow in commit order.
        var sql = "SELECT * FROM events WHERE tenant_id = ? AND position > ?"
        var arguments: StatementArguments = [tenant.rawValue, after]
        if let actions {
            guard !actions.isEmpty else { return [] }
            sql += " AND action IN (\(Array(repeating: "?", count: actions.count).joined(separator: ", ")))"
            for action in actions { arguments += [action] }
        }
        sql += " ORDER BY position LIMIT ?"
        arguments += [limit]
        let text = sql
        let bound = arguments
        do {
            return try await readEvents { db in try Row.fetchAll(db, sql: text, arguments: bound).map(Self.event(from:)) }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func feedHead(tenant: TenantID) async throws(StoreError) -> Int64 {
        do {
            return try await readEvents { db in
                // The last position of any tenant: nothing of this tenant can commit below it later, and it is one seek.
                try Int64.fetchOne(db, sql: "SELECT max(position) FROM events") ?? 0
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func listEvents(tenant: TenantID, query: EventQuery) async throws(StoreError) -> EventPage {
        let (sql, arguments) = Self.eventListing(tenant: tenant, query: query)
        do {
            return try await readEvents { db in
                var page = EventPage(events: [])
                for row in try Row.fetchAll(db, sql: sql, arguments: arguments) {
                    // Only one session's newest-first walk marks its rows (see sessionEventListing).
                    let event = Self.event(from: row)
                    if row["matched"] as Bool? ?? true { page.events.append(event) }
                    if row["cut"] as Bool? ?? false { page.resumeAfter = event }
                }
                return page
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    /// ListEvents' statement. Across sessions: by time, then session, then
    /// seq, from the indexes. One session's events: from walking its chain
    /// (`sessionEventListing`), in chain order.
    static func eventListing(tenant: TenantID, query: EventQuery) -> (sql: String, arguments: StatementArguments) {
        if let sessionID = query.sessionID {
            return sessionEventListing(tenant: tenant, sessionID: sessionID, query: query)
        }
        let filters = eventFilters(query, of: "events")
        var clauses = ["tenant_id = ?"] + filters.clauses
        var arguments: [any DatabaseValueConvertible] = [tenant.rawValue] + filters.arguments
        if let after = query.after {
            clauses.append("(occurred_at_ms, session_id, seq) \(query.newestFirst ? "<" : ">") (?, ?, ?)")
            arguments.append(contentsOf: [after.occurredAtMs, after.sessionID, after.sequence] as [any DatabaseValueConvertible])
        }
        let direction = query.newestFirst ? "DESC" : "ASC"
        let sql = """
            SELECT events.* FROM events WHERE \(clauses.joined(separator: " AND "))
            ORDER BY occurred_at_ms \(direction), session_id \(direction), seq \(direction) LIMIT ?
            """
        arguments.append(query.limit)
        return (sql, StatementArguments(arguments.map { Optional($0) }))
    }

    /// The action and time filters of `query`, over the event table or alias `table`.
    static func eventFilters(
        _ query: EventQuery, of table: String
    ) -> (clauses: [String], arguments: [any DatabaseValueConvertible]) {
        var clauses: [String] = []
        var arguments: [any DatabaseValueConvertible] = []
        if !query.actions.isEmpty {
            clauses.append("\(table).action IN \(Self.placeholders(query.actions.count))")
            arguments.append(contentsOf: query.actions)
        }
        if let since = query.since {
            clauses.append("\(table).occurred_at_ms >= ?")
            arguments.append(since)
        }
        if let until = query.until {
            clauses.append("\(table).occurred_at_ms < ?")
            arguments.append(until)
        }
        return (clauses, arguments)
    }

    /// One session's page of events, in chain order: by seq, which is the
    /// order they were appended in (a session's times follow it but for a
    /// clock set back, or a write that waited in the queue behind a later
    /// one). The chain is walked back from the head, one rowid lookup per
    /// event, and only as far as the page needs: newest first, the walk
    /// ends once it found `limit` matching events, and a later page starts
    /// just past its token's event when the token says where that is (a page
    /// costs its own length, not the session's); oldest first, it
    /// ends at the page token's seq (the first page walks the whole chain,
    /// since the links point back). Every walk takes at most as many steps
    /// as the head's seq, so links edited into a cycle end it.
    static func sessionEventListing(
        tenant: TenantID, sessionID: String, query: EventQuery
    ) -> (sql: String, arguments: StatementArguments) {
        // Whether the event `alias` belongs in the page.
        func matching(_ alias: String) -> (sql: String, arguments: [any DatabaseValueConvertible]) {
            let filters = eventFilters(query, of: alias)
            var clauses = ["\(alias).tenant_id = ?", "\(alias).session_id = ?"] + filters.clauses
            var arguments: [any DatabaseValueConvertible] = [tenant.rawValue, sessionID] + filters.arguments
            if let after = query.after {
                clauses.append("\(alias).seq \(query.newestFirst ? "<" : ">") ?")
                arguments.append(after.sequence)
            }
            return (clauses.joined(separator: " AND "), arguments)
        }
        // The session's head: where a walk starts, the seq of that event, and no matches yet.
        let head = "SELECT last_position, last_seq, 0 FROM sessions WHERE tenant_id = ? AND id = ? AND last_position IS NOT NULL"
        var arguments: [any DatabaseValueConvertible] = [tenant.rawValue, sessionID]
        let walk: String
        if query.newestFirst {
            // `found`: matching events newer than the row's; the walk ends one
            // event after the `limit`-th match. It starts at the head, or just
            // past the page token's event when the token says where that is
            // (and it is that event of this session: a stale or made-up
            // position falls back to the head).
            var start = head
            if let after = query.after, let resume = after.feedPosition {
                start = """
                    SELECT start_position, steps_left, 0 FROM (
                        SELECT prev_position AS start_position, seq - 1 AS steps_left, 0 AS preference FROM events
                        WHERE position = ? AND tenant_id = ? AND session_id = ? AND seq = ?
                        UNION ALL
                        SELECT last_position, last_seq, 1 FROM (\(head))
                        ORDER BY preference LIMIT 1)
                    """
                arguments = [resume, tenant.rawValue, sessionID, after.sequence] + arguments
            }
            // `walked`: events walked up to the row's, at most the budget.
            let step = matching("e")
            walk = """
                WITH RECURSIVE chain(position, steps_left, found, walked) AS (
                    SELECT *, 1 FROM (\(start))
                    UNION ALL
                    SELECT e.prev_position, c.steps_left - 1, c.found + (\(step.sql)), c.walked + 1
                    FROM events e JOIN chain c ON e.position = c.position
                    WHERE e.prev_position IS NOT NULL AND c.steps_left > 1 AND c.found < ? AND c.walked < ?
                )
                """
            arguments += step.arguments + [query.limit, query.scanLimit ?? Int.max]
        } else {
            // `steps_left` is the seq of the event at `position`: stop above the token's.
            walk = """
                WITH RECURSIVE chain(position, steps_left, found) AS (
                    \(head)
                    UNION ALL
                    SELECT e.prev_position, c.steps_left - 1, 0 FROM events e JOIN chain c ON e.position = c.position
                    WHERE e.prev_position IS NOT NULL AND c.steps_left > ?
                )
                """
            // Clamped: the token's seq comes from the caller (Int64.max must not overflow).
            arguments.append(max(0, min(query.after?.sequence ?? 0, Int64.max - 1)) + 1)
        }
        let page = matching("events")
        if query.newestFirst {
            // The last row walked is returned too, marked `cut`, when the
            // budget ended the walk before the page filled and the chain
            // goes on: the next page resumes after it.
            arguments += page.arguments + [query.scanLimit ?? Int.max, query.limit, query.limit]
            let sql = """
                \(walk) SELECT * FROM (
                    SELECT events.*, (\(page.sql)) AS matched,
                        (chain.walked >= ? AND chain.found < ? AND events.prev_position IS NOT NULL AND chain.steps_left > 1) AS cut
                    FROM chain CROSS JOIN events ON events.position = chain.position)
                WHERE matched OR cut ORDER BY seq DESC LIMIT ?
                """
            return (sql, StatementArguments(arguments.map { Optional($0) }))
        }
        arguments += page.arguments + [query.limit]
        let sql = """
            \(walk) SELECT events.* FROM chain CROSS JOIN events ON events.position = chain.position
            WHERE \(page.sql) ORDER BY events.seq \(query.newestFirst ? "DESC" : "ASC") LIMIT ?
            """
        return (sql, StatementArguments(arguments.map { Optional($0) }))
    }

    public func context(tenant: TenantID, sessionID: String, turnLimit: Int) async throws(StoreError) -> SessionContext? {
        do {
            return try await read { db in
                guard let session = try Self.fetchSession(db, tenant: tenant, id: sessionID) else { return nil }
                // The latest `turnLimit` turns by the primary key, then oldest first.
                let turns = try Row.fetchAll(
                    db.cachedStatement(
                        sql: """
                            SELECT seq, input, output, metadata_json, reasoning, author, created_at_ms
                            FROM turns WHERE tenant_id = ? AND session_id = ? ORDER BY seq DESC LIMIT ?
                            """),
                    arguments: [tenant.rawValue, sessionID, turnLimit]
                ).reversed().map { row in
                    TurnRecord(
                        sessionID: sessionID, sequence: row[0], input: row[1], output: row[2], metadataJSON: row[3],
                        reasoning: row[4], author: row[5], createdAtMs: row[6])
                }
                let memories = try Row.fetchAll(
                    db.cachedStatement(
                        sql: """
                            SELECT seq, content, metadata_json, created_at_ms
                            FROM memories WHERE tenant_id = ? AND session_id = ? ORDER BY seq
                            """),
                    arguments: [tenant.rawValue, sessionID]
                ).map { row in
                    MemoryRecord(sessionID: sessionID, sequence: row[0], content: row[1], metadataJSON: row[2], createdAtMs: row[3])
                }
                // The newest turn's number is how many there are (turns are numbered 1, 2, 3, …).
                let total = turns.last?.sequence ?? 0
                return SessionContext(session: session, turns: Array(turns), memories: memories, totalTurns: total)
            }
        } catch {
            throw Self.storeError(error)
        }
    }
}
