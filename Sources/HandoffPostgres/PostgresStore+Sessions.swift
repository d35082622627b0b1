// Handoff — the PostgreSQL store: sessions, their events (chains, listings
// and the change feed), turns, memories and context.

import Foundation
public import HandoffCore
import PostgresNIO

extension PostgresStore {
    /// The NOTIFY channel that wakes other nodes' watchers (payload: a tenant).
    static let feedChannel = "handoff_feed"

    public func createSession(_ session: SessionRecord, event: NewEvent) async throws(StoreError) -> EventRecord {
        try await write { transaction in
            let created = try await transaction.rows(
                """
                INSERT INTO sessions (tenant_id, id, version, state_json, status, labels_json, created_at_ms, updated_at_ms)
                VALUES (\(session.tenant.rawValue), \(session.id), \(session.version), \(session.stateJSON), \(session.status),
                    \(Self.encodeLabels(session.labels)), \(session.createdAtMs), \(session.updatedAtMs))
                ON CONFLICT (tenant_id, id) DO NOTHING RETURNING 1
                """)
            guard !created.isEmpty else { throw StoreError.alreadyExists(session.id) }
            return try await transaction.append(tenant: session.tenant, sessionID: session.id, event: event)
        }
    }

    public func session(tenant: TenantID, id: String) async throws(StoreError) -> SessionRecord? {
        try await read { [self] connection in try await Self.fetchSession(connection, logger: logger, tenant: tenant, id: id) }
    }

    static func fetchSession(_ connection: PostgresConnection, logger: Logger, tenant: TenantID, id: String) async throws -> SessionRecord? {
        let rows = try await connection.query(
            """
            SELECT version, state_json, status, labels_json, created_at_ms, updated_at_ms
            FROM sessions WHERE tenant_id = \(tenant.rawValue) AND id = \(id)
            """, logger: logger)
        for try await (version, state, status, labels, created, updated) in rows.decode(
            (Int64, String, SessionRecord.Status, String, Int64, Int64).self)
        {
            return SessionRecord(
                tenant: tenant, id: id, version: version, stateJSON: state, status: status, labels: decodeLabels(labels),
                createdAtMs: created, updatedAtMs: updated)
        }
        return nil
    }

    public func updateState(
        tenant: TenantID, id: String, expectedVersion: Int64, stateJSON: String, updatedAtMs: Int64, event: NewEvent
    ) async throws(StoreError) -> EventRecord {
        try await write { transaction in
            let head = try await transaction.requireSession(tenant: tenant, id: id)
            guard head.version == expectedVersion else {
                throw StoreError.versionConflict(expected: expectedVersion, current: head.version)
            }
            return try await transaction.append(
                tenant: tenant, sessionID: id, event: event, state: (expectedVersion + 1, stateJSON, updatedAtMs))
        }
    }

    /// The columns `event(_:)` decodes, in its order.
    static let eventColumns = """
        tenant_id, session_id, seq, position, action, actor, reasoning, details_json, occurred_at_ms, prev_hash, hash, traceparent
        """

    static func event(_ row: PostgresRow) throws -> EventRecord {
        let (tenant, session, seq, position, action, actor, reasoning, details, occurred, previous, hash, traceparent) = try row.decode(
            (String, String, Int64, Int64, String, String, String, String, Int64, ByteBuffer, ByteBuffer, String).self)
        return EventRecord(
            tenant: TenantID(tenant), sessionID: session, sequence: seq,
            event: NewEvent(
                action: action, actor: actor, reasoning: reasoning, detailsJSON: details, occurredAtMs: occurred, traceparent: traceparent),
            previousHash: Array(previous.readableBytesView), hash: Array(hash.readableBytesView), feedPosition: position)
    }

    public func events(tenant: TenantID, sessionID: String) async throws(StoreError) -> [EventRecord] {
        try await read { [self] connection in
            try await connection.query(
                """
                SELECT \(unescaped: Self.eventColumns) FROM events WHERE tenant_id = \(tenant.rawValue) AND session_id = \(sessionID)
                ORDER BY seq
                """, logger: logger
            ).collect().map(Self.event)
        }
    }

    public func verifyChain(tenant: TenantID, sessionID: String) async throws(StoreError) -> EventChain.Verifier? {
        // One snapshot: the head and the walk agree.
        try await snapshotRead { [self] connection -> EventChain.Verifier? in
            var head: (Int64, ByteBuffer?)?
            for try await row in try await connection.query(
                "SELECT last_seq, last_hash FROM sessions WHERE tenant_id = \(tenant.rawValue) AND id = \(sessionID)", logger: logger
            ).decode((Int64, ByteBuffer?).self) { head = row }
            guard let head else { return nil }
            var verifier = EventChain.Verifier(tenant: tenant, sessionID: sessionID)
            var broken = false
            for try await row in try await connection.query(
                """
                SELECT \(unescaped: Self.eventColumns) FROM events WHERE tenant_id = \(tenant.rawValue) AND session_id = \(sessionID)
                ORDER BY seq
                """, logger: logger) where !broken
            {
                broken = verifier.check(try Self.event(row)) != nil
            }
            _ = verifier.finish(headSequence: head.0, headHash: head.1.map { Array($0.readableBytesView) })
            return verifier
        }
    }

    public func addTurn(tenant: TenantID, turn: TurnRecord, event: NewEvent) async throws(StoreError) -> TurnRecord {
        try await write { transaction in
            try await transaction.requireSession(tenant: tenant, id: turn.sessionID)
            let stored = try await Self.insertTurn(transaction, tenant: tenant, turn)
            _ = try await transaction.append(tenant: tenant, sessionID: turn.sessionID, event: event)
            return stored
        }
    }

    /// Inserts a turn numbered after the session's last one (the session's row is locked).
    static func insertTurn(_ transaction: Transaction, tenant: TenantID, _ turn: TurnRecord) async throws -> TurnRecord {
        var stored = turn
        let row = try await transaction.rows(
            """
            INSERT INTO turns (tenant_id, session_id, seq, input, output, metadata_json, reasoning, author, created_at_ms)
            SELECT \(tenant.rawValue), \(turn.sessionID), COALESCE(MAX(seq), 0) + 1, \(turn.input), \(turn.output),
                \(turn.metadataJSON), \(turn.reasoning), \(turn.author), \(turn.createdAtMs)
            FROM turns WHERE tenant_id = \(tenant.rawValue) AND session_id = \(turn.sessionID)
            RETURNING seq
            """)
        stored.sequence = try row.first?.decode(Int64.self) ?? 1
        return stored
    }

    public func addMemory(
        tenant: TenantID, memory: MemoryRecord, event: NewEvent, limit: (count: Int, bytes: Int)
    ) async throws(StoreError) -> MemoryRecord {
        try await write { transaction in
            try await transaction.requireSession(tenant: tenant, id: memory.sessionID)
            let held = try await transaction.rows(
                """
                SELECT count(*), COALESCE(sum(octet_length(content) + octet_length(metadata_json)), 0)::bigint, COALESCE(MAX(seq), 0)
                FROM memories WHERE tenant_id = \(tenant.rawValue) AND session_id = \(memory.sessionID)
                """)
            guard let first = held.first else { throw StoreError.failure("the memories' count returned no row") }
            let (count, bytes, last) = try first.decode((Int64, Int64, Int64).self)
            let adding = memory.content.utf8.count + memory.metadataJSON.utf8.count
            guard count < limit.count else {
                throw StoreError.limitReached("session \(memory.sessionID) holds \(count) memories, the most it may")
            }
            guard Int(bytes) + adding <= limit.bytes else {
                throw StoreError.limitReached(
                    "the memories of session \(memory.sessionID) hold \(bytes) bytes; this one (\(adding) bytes) would pass the limit of \(limit.bytes)"
                )
            }
            var stored = memory
            stored.sequence = last + 1
            try await transaction.rows(
                """
                INSERT INTO memories (tenant_id, session_id, seq, content, metadata_json, created_at_ms)
                VALUES (\(tenant.rawValue), \(stored.sessionID), \(stored.sequence), \(stored.content), \(stored.metadataJSON),
                    \(stored.createdAtMs))
                """)
            _ = try await transaction.append(tenant: tenant, sessionID: memory.sessionID, event: event)
            return stored
        }
    }

    // MARK: The change feed

    /// Below this position every transaction has ended: `pg_snapshot_xmin`
    /// of the statement's snapshot, in positions (an event's position is
    /// its transaction's id plus the feed base, shifted left by 20 bits,
    /// plus its index), so no event can commit later below it.
    var settledBound: String { "((pg_snapshot_xmin(pg_current_snapshot())::text::bigint + \(feedBase)) << 20)" }

    /// The same bound, held back only by transactions of this database: a
    /// transaction of another database of the cluster (a `CREATE DATABASE`,
    /// another application's batch) can never write an event here, so the
    /// oldest running transaction whose backend is connected elsewhere is
    /// skipped. A running transaction whose backend cannot be told (a
    /// prepared one, or one caught between taking its id and its lock) still
    /// holds the bound: never a lost event, at worst the wait.
    var databaseSettledBound: String {
        """
        ((COALESCE(
            (SELECT min(x::text::bigint) FROM pg_snapshot_xip(s.snap) AS x
             WHERE NOT EXISTS (
                SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock'
                  AND l.transactionid::text::bigint = x::text::bigint % 4294967296
                  AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))),
            pg_snapshot_xmax(s.snap)::text::bigint) + \(feedBase)) << 20)
        FROM (SELECT pg_current_snapshot() AS snap) AS s
        """
    }

    /// How long a feed read waits for transactions older than events that
    /// already committed (see `settled(tenant:after:actions:)`).
    static let feedSettleWait: Duration = .seconds(1)

    /// The bound below which the feed may be read, and the highest position
    /// of a matching event committed when the read began (0: none). A
    /// transaction still running holds the bound back, so an event that
    /// committed after a transaction that began before it (on any node, or
    /// in another database of the cluster) may be above it: the read then
    /// waits, a few milliseconds at a time and at most `feedSettleWait`, until
    /// the bound of this database's transactions (`databaseSettledBound`) passes what had committed when it began (only the
    /// transactions open then can hold it), so that what was answered before
    /// the read began is in it. Past the wait, the read returns what is
    /// settled; the rest comes with a later read (latency, never a lost or
    /// reordered event). Each poll takes a pooled connection for one
    /// statement, and gives it back.
    func settled(tenant: TenantID, after: Int64, actions: [String]?) async throws -> (bound: Int64, target: Int64) {
        let target: PostgresQuery =
            actions.map { actions in
                "SELECT COALESCE(max(position), 0), \(unescaped: settledBound) FROM events WHERE tenant_id = \(tenant.rawValue) AND action = ANY(\(actions)) AND position > \(after)"
            }
            ?? "SELECT COALESCE(max(position), 0), \(unescaped: settledBound) FROM events WHERE tenant_id = \(tenant.rawValue) AND position > \(after)"
        var highest: Int64 = 0
        var bound: Int64 = 0
        for (top, settled) in try await withLease({ [logger] connection in
            let rows = try await connection.query(target, logger: logger)
            var found: [(Int64, Int64)] = []
            for try await row in rows.decode((Int64, Int64).self) { found.append(row) }
            return found
        }) {
            (highest, bound) = (top, settled)
        }
        let deadline = ContinuousClock.now + Self.feedSettleWait
        while bound <= highest, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(3))
            let query: PostgresQuery = "SELECT \(unescaped: databaseSettledBound)"
            for settled in try await withLease({ [logger] connection in
                let rows = try await connection.query(query, logger: logger)
                var found: [Int64] = []
                for try await value in rows.decode(Int64.self) { found.append(value) }
                return found
            }) {
                bound = settled
            }
        }
        return (bound, highest)
    }

    public func changes(tenant: TenantID, after: Int64, actions: [String]?, limit: Int) async throws(StoreError) -> [EventRecord] {
        if let actions, actions.isEmpty { return [] }
        do {
            let bound = try await settled(tenant: tenant, after: after, actions: actions).bound
            return try await read { [self] connection in
                let rows: PostgresRowSequence
                if let actions {
                    rows = try await connection.query(
                        """
                        SELECT \(unescaped: Self.eventColumns) FROM events
                        WHERE tenant_id = \(tenant.rawValue) AND action = ANY(\(actions)) AND position > \(after) AND position < \(bound)
                        ORDER BY position LIMIT \(Int64(limit))
                        """, logger: logger)
                } else {
                    rows = try await connection.query(
                        """
                        SELECT \(unescaped: Self.eventColumns) FROM events
                        WHERE tenant_id = \(tenant.rawValue) AND position > \(after) AND position < \(bound)
                        ORDER BY position LIMIT \(Int64(limit))
                        """, logger: logger)
                }
                return try await rows.collect().map(Self.event)
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    /// The position of the tenant's last committed event (0 when none),
    /// once nothing can commit below it; if older transactions are still
    /// running past the settle wait, the bound below them, which may
    /// deliver a few events committed just before to a reader that starts
    /// here (never lose one).
    public func feedHead(tenant: TenantID) async throws(StoreError) -> Int64 {
        do {
            let (bound, highest) = try await settled(tenant: tenant, after: -1, actions: nil)
            return bound > highest ? highest : bound - 1
        } catch {
            throw Self.storeError(error)
        }
    }

    // MARK: Listings

    public func listEvents(tenant: TenantID, query: EventQuery) async throws(StoreError) -> EventPage {
        var builder = QueryBuilder()
        let tenantBind = builder.bind(tenant.rawValue)
        var clauses = ["tenant_id = \(tenantBind)"]
        if !query.actions.isEmpty { clauses.append("action = ANY(\(builder.bind(query.actions)))") }
        if let since = query.since { clauses.append("occurred_at_ms >= \(builder.bind(since))") }
        if let until = query.until { clauses.append("occurred_at_ms < \(builder.bind(until))") }
        let direction = query.newestFirst ? "DESC" : "ASC"
        let comparison = query.newestFirst ? "<" : ">"
        guard let sessionID = query.sessionID else {
            if let after = query.after {
                clauses.append(
                    "(occurred_at_ms, session_id, seq) \(comparison) (\(builder.bind(after.occurredAtMs)), \(builder.bind(after.sessionID)), \(builder.bind(after.sequence)))"
                )
            }
            builder.sql = """
                SELECT \(Self.eventColumns) FROM events WHERE \(clauses.joined(separator: " AND "))
                ORDER BY occurred_at_ms \(direction), session_id \(direction), seq \(direction) LIMIT \(builder.bind(Int64(query.limit)))
                """
            let built = builder.query
            return try await read { [self] connection in
                EventPage(events: try await connection.query(built, logger: logger).collect().map(Self.event))
            }
        }
        // One session's events in chain order (seq), the filters applied in
        // the statement, so only the page crosses the wire. Newest first, at
        // most `scanLimit` events are examined: when those end the page before
        // it is full and older events remain, the last one examined is where
        // the next page resumes.
        var window = ["tenant_id = \(tenantBind)", "session_id = \(builder.bind(sessionID))"]
        if let after = query.after { window.append("seq \(comparison) \(builder.bind(after.sequence))") }
        let filters = Array(clauses.dropFirst())
        let scan = query.newestFirst ? query.scanLimit.map { Int64($0) } : nil
        let windowSQL = window.joined(separator: " AND ")
        let scanBind = scan.map { builder.bind($0) }
        builder.sql = """
            SELECT \(Self.eventColumns) FROM (
                SELECT * FROM events WHERE \(windowSQL) ORDER BY seq \(direction)\(scanBind.map { " LIMIT \($0)" } ?? "")) examined
            \(filters.isEmpty ? "" : "WHERE " + filters.joined(separator: " AND "))
            ORDER BY seq \(direction) LIMIT \(builder.bind(Int64(query.limit)))
            """
        let page = builder.query
        // The last event the scan examined, when it examined all it may.
        builder.sql = """
            SELECT \(Self.eventColumns) FROM events WHERE \(windowSQL) ORDER BY seq \(direction) OFFSET (\(scanBind ?? "1") - 1) LIMIT 1
            """
        let lastExamined = builder.query
        let limit = query.limit
        return try await read { [self] connection in
            var result = EventPage(events: try await connection.query(page, logger: logger).collect().map(Self.event))
            if result.events.count < limit, scan != nil,
                let last = try await connection.query(lastExamined, logger: logger).collect().first.map(Self.event), last.sequence > 1
            {
                result.resumeAfter = last
            }
            return result
        }
    }

    public func context(tenant: TenantID, sessionID: String, turnLimit: Int) async throws(StoreError) -> SessionContext? {
        try await snapshotRead { [self] connection -> SessionContext? in
            guard let session = try await Self.fetchSession(connection, logger: logger, tenant: tenant, id: sessionID) else { return nil }
            var turns: [TurnRecord] = []
            for try await (seq, input, output, metadata, reasoning, author, created) in try await connection.query(
                """
                SELECT seq, input, output, metadata_json, reasoning, author, created_at_ms FROM turns
                WHERE tenant_id = \(tenant.rawValue) AND session_id = \(sessionID) ORDER BY seq DESC LIMIT \(Int64(turnLimit))
                """, logger: logger
            ).decode((Int64, String, String, String, String, String, Int64).self) {
                turns.append(
                    TurnRecord(
                        sessionID: sessionID, sequence: seq, input: input, output: output, metadataJSON: metadata, reasoning: reasoning,
                        author: author, createdAtMs: created))
            }
            turns.reverse()
            var memories: [MemoryRecord] = []
            for try await (seq, content, metadata, created) in try await connection.query(
                """
                SELECT seq, content, metadata_json, created_at_ms FROM memories
                WHERE tenant_id = \(tenant.rawValue) AND session_id = \(sessionID) ORDER BY seq
                """, logger: logger
            ).decode((Int64, String, String, Int64).self) {
                memories.append(MemoryRecord(sessionID: sessionID, sequence: seq, content: content, metadataJSON: metadata, createdAtMs: created))
            }
            return SessionContext(session: session, turns: turns, memories: memories, totalTurns: turns.last?.sequence ?? 0)
        }
    }

    static func encodeLabels(_ labels: [String: String]) -> String {
        JSONValue.object(labels.mapValues(JSONValue.string)).serialized
    }

    static func decodeLabels(_ json: String) -> [String: String] {
        guard let members = (try? JSONValue(parsing: json))?.objectValue else { return [:] }
        return members.compactMapValues { if case .string(let text) = $0 { text } else { nil } }
    }
}

extension PostgresRandomAccessRow {
    /// The column `name`, decoded (records are read by column name: a
    /// pending action has 29 columns).
    func value<T: PostgresDecodable>(_ name: String, _: T.Type = T.self) throws -> T { try self[name].decode(T.self) }

    /// A `bytea` column as bytes, nil for NULL.
    func bytes(_ name: String) throws -> [UInt8]? { try value(name, ByteBuffer?.self).map { Array($0.readableBytesView) } }
}

/// A statement put together from parts, each value bound (`$1`, `$2`, …).
struct QueryBuilder {
    var sql = ""
    private var binds = PostgresBindings()

    /// Binds `value` and returns its placeholder.
    mutating func bind<Value: PostgresNonThrowingEncodable>(_ value: Value) -> String {
        binds.append(value)
        return "$\(binds.count)"
    }

    var query: PostgresQuery { PostgresQuery(unsafeSQL: sql, binds: binds) }
}
