// Handoff — the embedded default store: one SQLite file in WAL mode with
// synchronous=FULL, through GRDB. A write returns only after its transaction
// committed (a queued assessment says so in its completion, and reads of
// events wait for it first); the version check and the event append share
// that transaction.

import Foundation
import GRDB
public import HandoffCore

/// Sessions and their event chains in a SQLite file.
public final class SQLiteStore: Store {
    let pool: DatabasePool
    let writer: GroupCommitWriter

    /// Opens (creating if needed) the database at `path` and brings its schema
    /// up to date.
    /// - Parameter cacheMiB: SQLite's page cache for the writer connection;
    ///   each reader gets a quarter (at least 2 MiB). SQLite's default of
    ///   2 MiB made every page past it a pread from the kernel: with 64 the
    ///   store alone wrote 10% faster at 1 in flight and 5% more per second
    ///   at 64 (handoff-bench store). The cache fills only as pages are read.
    /// - Parameter checkpointPages: the writer copies the WAL back into the
    ///   database once it holds this many pages (SQLite's wal_autocheckpoint,
    ///   1,000 by default). A checkpoint writes each page changed since the
    ///   last one once, however often it changed, so rarer checkpoints write
    ///   less per write: at 10,000 a group commit took 1.1-1.3 ms where it
    ///   took 1.6-1.9 ms at 1,000 (UpdateState over RPC, 64 in flight). The
    ///   WAL file grows to about that many pages (4 KiB each) between them.
    public init(path: String, cacheMiB: Int = defaultCacheMiB, checkpointPages: Int = defaultCheckpointPages) throws(StoreError) {
        var configuration = Configuration()
        // A lock held for a moment by another connection (the last one of a
        // closing pool checkpoints and removes the WAL under an exclusive
        // lock; a backup or sqlite3 reading the file) is waited for, up to
        // 5 s, instead of failing at once with "database is locked".
        configuration.busyMode = .timeout(5)
        let writerKiB = max(2, cacheMiB) * 1024, readerKiB = max(2, cacheMiB / 4) * 1024
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA cache_size = -\(db.configuration.readonly ? readerKiB : writerKiB)")
        }
        do {
            let pool = try DatabasePool(path: path, configuration: configuration)
            // DatabasePool sets the writer to synchronous=NORMAL after
            // prepareDatabase ran (GRDB's WAL setup), which fsyncs only at
            // checkpoints: a commit could be lost to a power cut. Set FULL
            // again on the writer, the one connection whose commits matter.
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                try db.execute(sql: "PRAGMA wal_autocheckpoint = \(max(1, checkpointPages))")
            }
            try Self.migrator.migrate(pool)
            self.pool = pool
            self.writer = GroupCommitWriter(pool: pool)
        } catch {
            throw StoreError.failure("cannot open \(path): \(error)")
        }
    }

    public static let defaultCacheMiB = 64
    public static let defaultCheckpointPages = 10_000

    /// The writer connection's `PRAGMA wal_autocheckpoint`; for tests.
    public var _testOnly_checkpointPages: Int {
        get throws { try pool.write { db in try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint") ?? -1 } }
    }

    /// The writer connection's `PRAGMA synchronous` (2 is FULL); for tests.
    public var _testOnly_writerSynchronous: Int {
        get throws { try pool.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 } }
    }

    /// Group-commit transactions so far; for tests, not for monitoring.
    public var _testOnly_commitCount: Int { writer.commits }

    /// Writes waiting for the next group commit; for tests.
    public var _testOnly_waitingWrites: Int { writer.waiting }
    public var _testOnly_settlingReads: Int { writer.settling }

    /// Versioned schema migrations; a new version is a new registered step.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: sessions and events") { db in
            try db.execute(sql: """
                CREATE TABLE sessions (
                    tenant_id TEXT NOT NULL,
                    id TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    state_json TEXT NOT NULL,
                    status TEXT NOT NULL,
                    labels_json TEXT NOT NULL,
                    created_at_ms INTEGER NOT NULL,
                    updated_at_ms INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, id)
                ) WITHOUT ROWID;
                CREATE TABLE events (
                    tenant_id TEXT NOT NULL,
                    session_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    action TEXT NOT NULL,
                    actor TEXT NOT NULL,
                    reasoning TEXT NOT NULL,
                    details_json TEXT NOT NULL,
                    occurred_at_ms INTEGER NOT NULL,
                    prev_hash BLOB NOT NULL,
                    hash BLOB NOT NULL,
                    PRIMARY KEY (tenant_id, session_id, seq)
                ) WITHOUT ROWID;
                CREATE INDEX events_by_action ON events (tenant_id, action, occurred_at_ms);
                """)
        }
        migrator.registerMigration("v2: turns and memories") { db in
            try db.execute(sql: """
                CREATE TABLE turns (
                    tenant_id TEXT NOT NULL,
                    session_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    input TEXT NOT NULL,
                    output TEXT NOT NULL,
                    metadata_json TEXT NOT NULL,
                    reasoning TEXT NOT NULL,
                    author TEXT NOT NULL,
                    created_at_ms INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, session_id, seq)
                ) WITHOUT ROWID;
                CREATE TABLE memories (
                    tenant_id TEXT NOT NULL,
                    session_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    content TEXT NOT NULL,
                    metadata_json TEXT NOT NULL,
                    created_at_ms INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, session_id, seq)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v3: events by time") { db in
            try db.execute(sql: "CREATE INDEX events_by_time ON events (tenant_id, occurred_at_ms, session_id, seq)")
        }
        migrator.registerMigration("v4: pending actions and assessments") { db in
            try db.execute(sql: """
                CREATE TABLE pending_actions (
                    tenant_id TEXT NOT NULL,
                    id TEXT NOT NULL,
                    session_id TEXT NOT NULL,
                    status TEXT NOT NULL,
                    action_json TEXT NOT NULL,
                    risk INTEGER NOT NULL,
                    decision_type TEXT NOT NULL,
                    strategy INTEGER NOT NULL,
                    created_at_ms INTEGER NOT NULL,
                    updated_at_ms INTEGER NOT NULL,
                    expires_at_ms INTEGER NOT NULL,
                    idempotency_key TEXT NOT NULL,
                    action_hash BLOB NOT NULL,
                    assessed_version INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, id)
                ) WITHOUT ROWID;
                CREATE INDEX pending_actions_by_session ON pending_actions (tenant_id, session_id, status);
                CREATE TABLE assessments (
                    tenant_id TEXT NOT NULL,
                    session_id TEXT NOT NULL,
                    idempotency_key TEXT NOT NULL,
                    request_hash BLOB NOT NULL,
                    assessment_json TEXT NOT NULL,
                    pending_action_id TEXT,
                    created_at_ms INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, session_id, idempotency_key)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v5: confirmations") { db in
            try db.execute(sql: """
                ALTER TABLE pending_actions ADD COLUMN awaiting_confirmation INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE pending_actions ADD COLUMN prompt TEXT NOT NULL DEFAULT '';
                ALTER TABLE pending_actions ADD COLUMN reprompt_count INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE pending_actions ADD COLUMN confirmation_expires_at_ms INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE pending_actions ADD COLUMN release_token_hash BLOB;
                ALTER TABLE pending_actions ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
                """)
        }
        migrator.registerMigration("v6: multi-factor codes") { db in
            try db.execute(sql: """
                ALTER TABLE pending_actions ADD COLUMN mfa_code_hash BLOB;
                ALTER TABLE pending_actions ADD COLUMN mfa_expires_at_ms INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE pending_actions ADD COLUMN mfa_attempts_left INTEGER NOT NULL DEFAULT 0;
                """)
        }
        migrator.registerMigration("v7: executions") { db in
            try db.execute(sql: """
                ALTER TABLE pending_actions ADD COLUMN executed_at_ms INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE pending_actions ADD COLUMN execution_key TEXT;
                ALTER TABLE pending_actions ADD COLUMN result_json TEXT;
                ALTER TABLE pending_actions ADD COLUMN execution_error TEXT;
                CREATE INDEX pending_actions_by_release_token ON pending_actions (tenant_id, release_token_hash)
                    WHERE release_token_hash IS NOT NULL;
                """)
        }
        migrator.registerMigration("v8: escalation tickets") { db in
            try db.execute(sql: """
                CREATE TABLE tickets (
                    tenant_id TEXT NOT NULL,
                    id TEXT NOT NULL,
                    session_id TEXT NOT NULL,
                    pending_action_id TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    priority INTEGER NOT NULL,
                    status TEXT NOT NULL,
                    created_by TEXT NOT NULL,
                    assigned_to TEXT NOT NULL,
                    created_at_ms INTEGER NOT NULL,
                    claimed_at_ms INTEGER NOT NULL,
                    resolved_at_ms INTEGER NOT NULL,
                    sla_deadline_ms INTEGER NOT NULL,
                    outcome INTEGER NOT NULL,
                    resolution_note TEXT NOT NULL,
                    snapshot_json TEXT NOT NULL,
                    revision INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, id)
                ) WITHOUT ROWID;
                CREATE INDEX tickets_queue ON tickets (tenant_id, status, priority, created_at_ms);
                CREATE UNIQUE INDEX tickets_one_unresolved ON tickets (tenant_id, session_id) WHERE status != 'resolved';
                """)
        }
        migrator.registerMigration("v9: approval chains and recorded SLA breaches") { db in
            try db.execute(sql: """
                CREATE TABLE approvals (
                    tenant_id TEXT NOT NULL,
                    id TEXT NOT NULL,
                    session_id TEXT NOT NULL,
                    pending_action_id TEXT NOT NULL,
                    action_json TEXT NOT NULL,
                    edited_action_json TEXT,
                    amount TEXT NOT NULL,
                    currency TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    requester TEXT NOT NULL,
                    status TEXT NOT NULL,
                    steps_json TEXT NOT NULL,
                    current_level INTEGER NOT NULL,
                    due_at_ms INTEGER NOT NULL,
                    created_at_ms INTEGER NOT NULL,
                    decided_at_ms INTEGER NOT NULL,
                    revision INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, id)
                ) WITHOUT ROWID;
                CREATE UNIQUE INDEX approvals_one_pending ON approvals (tenant_id, pending_action_id) WHERE status = 'pending';
                CREATE INDEX approvals_pending ON approvals (tenant_id, status, due_at_ms, created_at_ms);
                CREATE INDEX approvals_due ON approvals (due_at_ms) WHERE status = 'pending' AND due_at_ms > 0;
                ALTER TABLE tickets ADD COLUMN sla_breach_recorded INTEGER NOT NULL DEFAULT 0;
                CREATE INDEX tickets_sla ON tickets (sla_deadline_ms) WHERE status = 'open' AND sla_breach_recorded = 0;
                """)
        }
        migrator.registerMigration("v10: who settled a pending action") { db in
            try db.execute(sql: """
                ALTER TABLE pending_actions ADD COLUMN decided_by TEXT NOT NULL DEFAULT '';
                ALTER TABLE pending_actions ADD COLUMN decision_comment TEXT NOT NULL DEFAULT '';
                """)
        }
        migrator.registerMigration("v11: the queue's order in an index") { db in
            // ListQueue's first page must not sort the whole queue: its order
            // (recorded SLA breach of an open ticket, priority, age) is an index.
            try db.execute(sql: """
                ALTER TABLE tickets ADD COLUMN queue_breached INTEGER NOT NULL DEFAULT 0;
                UPDATE tickets SET queue_breached = (status = 'open' AND sla_breach_recorded = 1);
                CREATE INDEX tickets_queue_order ON tickets (tenant_id, queue_breached DESC, priority DESC, created_at_ms, id)
                    WHERE status != 'resolved';
                """)
        }
        migrator.registerMigration("v12: windows of sessions and tickets by creation time") { db in
            // EscalationStats and the escalation-rate alert count these per window.
            try db.execute(sql: """
                CREATE INDEX sessions_by_creation ON sessions (tenant_id, created_at_ms);
                CREATE INDEX tickets_by_creation ON tickets (tenant_id, created_at_ms);
                """)
        }
        migrator.registerMigration("v13: one open or claimed ticket per session; more wait") { db in
            // A second escalated action of a session waits for the ticket in
            // hand instead of being folded into it (where nobody decided it).
            // `tickets_unresolved` keeps the lookups by session that say
            // `status != 'resolved'` off a scan of every ticket.
            try db.execute(sql: """
                DROP INDEX tickets_one_unresolved;
                CREATE UNIQUE INDEX tickets_one_active ON tickets (tenant_id, session_id) WHERE status IN ('open', 'claimed');
                CREATE INDEX tickets_waiting ON tickets (tenant_id, session_id, created_at_ms) WHERE status = 'waiting';
                CREATE INDEX tickets_unresolved ON tickets (tenant_id, session_id) WHERE status != 'resolved';
                """)
        }
        migrator.registerMigration("v14: events in the order they were written") { db in
            // Clustered by (tenant, session, seq), every event went into a
            // random page of the largest table: with 10,000 sessions a group
            // commit of 32 writes dirtied some 32 pages of events alone, and
            // the checkpoint wrote each back. Kept in append order (rowid), a
            // batch's events share the table's last pages; only the small
            // entries of `events_by_session` land on random pages. A bare C
            // run of this machine's SQLite (a session update and an event
            // per write, 32 per commit) went from about 12,000 to about
            // 20,000 writes/s. `events_by_action` now names the listing's
            // whole order: a WITHOUT ROWID table's index entries carried
            // (session_id, seq) implicitly, a rowid table's do not, and the
            // planner then walked every event of the tenant for one action.
            try db.execute(sql: """
                CREATE TABLE events_appended (
                    position INTEGER PRIMARY KEY,
                    tenant_id TEXT NOT NULL,
                    session_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    action TEXT NOT NULL,
                    actor TEXT NOT NULL,
                    reasoning TEXT NOT NULL,
                    details_json TEXT NOT NULL,
                    occurred_at_ms INTEGER NOT NULL,
                    prev_hash BLOB NOT NULL,
                    hash BLOB NOT NULL
                );
                INSERT INTO events_appended (tenant_id, session_id, seq, action, actor, reasoning, details_json, occurred_at_ms, prev_hash, hash)
                    SELECT tenant_id, session_id, seq, action, actor, reasoning, details_json, occurred_at_ms, prev_hash, hash
                    FROM events ORDER BY occurred_at_ms, tenant_id, session_id, seq;
                DROP TABLE events;
                ALTER TABLE events_appended RENAME TO events;
                CREATE UNIQUE INDEX events_by_session ON events (tenant_id, session_id, seq);
                CREATE INDEX events_by_action ON events (tenant_id, action, occurred_at_ms, session_id, seq);
                CREATE INDEX events_by_time ON events (tenant_id, occurred_at_ms, session_id, seq);
                """)
        }
        migrator.registerMigration("v15: each session's head in its row; events chained by position") { db in
            // After v14 a write still dirtied two random pages: its session's
            // row and its entry in `events_by_session`. The session row now
            // holds the head of its chain (last seq, hash and position) and
            // each event the position of the session's previous one, so the
            // row is the only random page a write touches; a session's events
            // are read by walking the chain back from the head. A bare C run
            // of this machine's SQLite (an UpdateState per write, 28 per
            // commit, 10,000 sessions) went from about 25,000 to about 39,000
            // writes/s. Appending stays checked: the head moves only from the
            // seq it was read at.
            try db.execute(sql: """
                ALTER TABLE sessions ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE sessions ADD COLUMN last_hash BLOB;
                ALTER TABLE sessions ADD COLUMN last_position INTEGER;
                ALTER TABLE events ADD COLUMN prev_position INTEGER;
                UPDATE events SET prev_position = (
                    SELECT p.position FROM events p INDEXED BY events_by_session
                    WHERE p.tenant_id = events.tenant_id AND p.session_id = events.session_id AND p.seq = events.seq - 1)
                WHERE seq > 1;
                UPDATE sessions SET (last_seq, last_hash, last_position) = (
                    SELECT e.seq, e.hash, e.position FROM events e INDEXED BY events_by_session
                    WHERE e.tenant_id = sessions.tenant_id AND e.session_id = sessions.id ORDER BY e.seq DESC LIMIT 1)
                WHERE EXISTS (SELECT 1 FROM events e INDEXED BY events_by_session WHERE e.tenant_id = sessions.tenant_id AND e.session_id = sessions.id);
                DROP INDEX events_by_session;
                """)
        }
        migrator.registerMigration("v16: the current step's approvers in a column") { db in
            // ListPendingApprovals filters by routing in SQL instead of reading
            // every pending approval of the tenant.
            try db.execute(sql: "ALTER TABLE approvals ADD COLUMN current_approvers TEXT NOT NULL DEFAULT ''")
            let rows = try Row.fetchAll(db, sql: "\(Self.approvalColumns) WHERE status = 'pending'")
            for row in rows {
                let approval = try Self.approval(row, tenant: TenantID(row[Self.approvalTenantColumn]))
                try db.execute(
                    sql: "UPDATE approvals SET current_approvers = ? WHERE tenant_id = ? AND id = ?",
                    arguments: [Self.currentApprovers(approval), approval.tenant.rawValue, approval.id])
            }
        }
        migrator.registerMigration("v17: the change feed's index") { db in
            // A tenant's events of one action in position (commit) order: the
            // desk feed reads its few actions after a cursor without walking
            // the state updates between.
            try db.execute(sql: "CREATE INDEX events_feed ON events (tenant_id, action, position)")
        }
        return migrator
    }

    public func createSession(_ session: SessionRecord, event: NewEvent) async throws(StoreError) -> EventRecord {
        try await write { db in
            if try Self.sessionExists(db, tenant: session.tenant, id: session.id) {
                throw StoreError.alreadyExists(session.id)
            }
            // The first event goes in first, so the row is written once, head and all.
            let (record, position) = try Self.insertEvent(
                db, tenant: session.tenant, sessionID: session.id, event: event,
                after: Head(sequence: 0, hash: EventChain.genesis, position: nil))
            try db.cachedStatement(sql: """
                INSERT INTO sessions (tenant_id, id, version, state_json, status, labels_json, created_at_ms, updated_at_ms,
                    last_seq, last_hash, last_position)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [
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
            throw StoreError.failure("\(error)")
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
            throw StoreError.failure("\(error)")
        }
    }

    public func verifyChain(tenant: TenantID, sessionID: String) async throws(StoreError) -> EventChain.Verifier? {
        do {
            // One read: the head and the walk see the same snapshot.
            return try await readEvents { db -> EventChain.Verifier? in
                guard let head = try Row.fetchOne(
                    db.cachedStatement(sql: Lookup.sessionHead), arguments: [tenant.rawValue, sessionID])
                else { return nil }
                var verifier = EventChain.Verifier(tenant: tenant, sessionID: sessionID)
                let rows = try Row.fetchCursor(db, sql: Lookup.eventsOfSession, arguments: [tenant.rawValue, sessionID])
                while let row = try rows.next(), verifier.check(Self.event(from: row)) == nil {}
                _ = verifier.finish(headSequence: head[0], headHash: (head[1] as Data?).map { [UInt8]($0) })
                return verifier
            }
        } catch {
            throw StoreError.failure("\(error)")
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
                db.cachedStatement(sql: """
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
                    "the memories of session \(memory.sessionID) hold \(bytes) bytes; this one (\(adding) bytes) would pass the limit of \(limit.bytes)")
            }
            var stored = memory
            stored.sequence = try Self.nextSequence(db, table: "memories", tenant: tenant, sessionID: memory.sessionID)
            try db.cachedStatement(sql: """
                INSERT INTO memories (tenant_id, session_id, seq, content, metadata_json, created_at_ms)
                VALUES (?, ?, ?, ?, ?, ?)
                """).execute(arguments: [tenant.rawValue, stored.sessionID, stored.sequence, stored.content, stored.metadataJSON, stored.createdAtMs])
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
            throw StoreError.failure("\(error)")
        }
    }

    public func feedHead(tenant: TenantID) async throws(StoreError) -> Int64 {
        do {
            return try await readEvents { db in
                // The last position of any tenant: nothing of this tenant can commit below it later, and it is one seek.
                try Int64.fetchOne(db, sql: "SELECT max(position) FROM events") ?? 0
            }
        } catch {
            throw StoreError.failure("\(error)")
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
                    if row["cut"] as Bool? ?? false { page.walkedTo = event }
                }
                return page
            }
        } catch {
            throw StoreError.failure("\(error)")
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
    private static func eventFilters(
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
            if let after = query.after, let resume = after.storePosition {
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
            arguments += step.arguments + [query.limit, query.walkBudget ?? Int.max]
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
            arguments += page.arguments + [query.walkBudget ?? Int.max, query.limit, query.limit]
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
                    db.cachedStatement(sql: """
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
                    db.cachedStatement(sql: """
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
            throw StoreError.failure("\(error)")
        }
    }

    public func recordAssessment(
        tenant: TenantID, assessment: AssessmentRecord, pending: PendingActionRecord?, approval: ApprovalRecord?, events: [NewEvent]
    ) async throws(StoreError) -> RecordedAssessment {
        try await write { db in
            try Self.recordAssessment(db, tenant: tenant, assessment: assessment, pending: pending, approval: approval, events: events)
        }
    }

    /// Detached writes (queued assessments) waiting at most; see `GroupCommitWriter.submitDetached`.
    public static let maximumQueuedAssessments = 512

    public func queueAssessment(
        tenant: TenantID, assessment: AssessmentRecord, events: [NewEvent],
        completion: @escaping @Sendable (Result<RecordedAssessment, StoreError>) -> Void
    ) -> Bool {
        writer.submitDetached(limit: Self.maximumQueuedAssessments, { db in
            try Self.recordAssessment(db, tenant: tenant, assessment: assessment, pending: nil, approval: nil, events: events)
        }, completion: { result in
            completion(result.mapError { $0 as? StoreError ?? StoreError.failure("\($0)") })
        })
    }

    public func settle() async {
        await writer.settle()
    }

    private static func recordAssessment(
        _ db: Database, tenant: TenantID, assessment: AssessmentRecord, pending: PendingActionRecord?, approval: ApprovalRecord?,
        events: [NewEvent]
    ) throws -> RecordedAssessment {
        try Self.requireSession(db, tenant: tenant, id: assessment.sessionID)
        if !assessment.idempotencyKey.isEmpty, let row = try Row.fetchOne(
            db.cachedStatement(sql: """
                SELECT request_hash, assessment_json, pending_action_id FROM assessments
                WHERE tenant_id = ? AND session_id = ? AND idempotency_key = ?
                """),
            arguments: [tenant.rawValue, assessment.sessionID, assessment.idempotencyKey]) {
            guard [UInt8](row[0] as Data) == assessment.requestHash else {
                throw StoreError.keyReused(assessment.idempotencyKey)
            }
            let pendingID: String? = row[2]
            let earlier = try pendingID.flatMap { try Self.fetchPendingAction(db, tenant: tenant, id: $0) }
            return RecordedAssessment(assessmentJSON: row[1], pending: earlier, replayed: true)
        }
        if let pending {
            try db.cachedStatement(sql: """
                INSERT INTO pending_actions (tenant_id, id, session_id, status, action_json, risk, decision_type, strategy,
                    created_at_ms, updated_at_ms, expires_at_ms, idempotency_key, action_hash, assessed_version)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [
                    tenant.rawValue, pending.id, pending.sessionID, pending.status, pending.actionJSON, pending.risk,
                    pending.decisionType, pending.strategy, pending.createdAtMs, pending.updatedAtMs, pending.expiresAtMs,
                    pending.idempotencyKey, Data(pending.actionHash), pending.assessedVersion,
                ])
        }
        if !assessment.idempotencyKey.isEmpty {
            try db.cachedStatement(sql: """
                INSERT INTO assessments (tenant_id, session_id, idempotency_key, request_hash, assessment_json,
                    pending_action_id, created_at_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [
                    tenant.rawValue, assessment.sessionID, assessment.idempotencyKey, Data(assessment.requestHash),
                    assessment.assessmentJSON, assessment.pendingActionID, assessment.createdAtMs,
                ])
        }
        if let approval { try Self.insertApproval(db, approval) }
        let appended = try events.map { try Self.append(db, tenant: tenant, sessionID: assessment.sessionID, event: $0) }
        return RecordedAssessment(
            assessmentJSON: assessment.assessmentJSON, pending: pending, replayed: false, approval: approval, events: appended)
    }

    public func pendingAction(tenant: TenantID, id: String) async throws(StoreError) -> PendingActionRecord? {
        do {
            return try await read { db in try Self.fetchPendingAction(db, tenant: tenant, id: id) }
        } catch {
            throw StoreError.failure("\(error)")
        }
    }

    static func fetchPendingAction(_ db: Database, tenant: TenantID, id: String) throws -> PendingActionRecord? {
        guard let row = try Row.fetchOne(
            db.cachedStatement(sql: "\(pendingActionColumns) WHERE tenant_id = ? AND id = ?"),
            arguments: [tenant.rawValue, id])
        else { return nil }
        return pendingAction(row, tenant: tenant)
    }

    public func pendingAction(tenant: TenantID, releaseTokenHash: [UInt8]) async throws(StoreError) -> PendingActionRecord? {
        do {
            return try await read { db in
                try Row.fetchOne(
                    db.cachedStatement(sql: Lookup.pendingActionByReleaseToken),
                    arguments: [tenant.rawValue, Data(releaseTokenHash)]
                ).map { Self.pendingAction($0, tenant: tenant) }
            }
        } catch {
            throw StoreError.failure("\(error)")
        }
    }

    /// The columns `pendingAction(_:tenant:)` reads, in its order.
    private static let pendingActionColumns = """
        SELECT session_id, status, action_json, risk, decision_type, strategy, created_at_ms, updated_at_ms,
            expires_at_ms, idempotency_key, action_hash, assessed_version, awaiting_confirmation, prompt,
            reprompt_count, confirmation_expires_at_ms, release_token_hash, revision, mfa_code_hash,
            mfa_expires_at_ms, mfa_attempts_left, executed_at_ms, execution_key, result_json, execution_error, id,
            decided_by, decision_comment
        FROM pending_actions
        """

    private static func pendingAction(_ row: Row, tenant: TenantID) -> PendingActionRecord {
        var record = PendingActionRecord(
            tenant: tenant, id: row[25], sessionID: row[0], status: row[1], actionJSON: row[2], risk: row[3], decisionType: row[4],
            strategy: row[5], createdAtMs: row[6], updatedAtMs: row[7], expiresAtMs: row[8], idempotencyKey: row[9],
            actionHash: [UInt8](row[10] as Data), assessedVersion: row[11])
        record.awaitingConfirmation = row[12]
        record.prompt = row[13]
        record.repromptCount = row[14]
        record.confirmationExpiresAtMs = row[15]
        record.releaseTokenHash = (row[16] as Data?).map { [UInt8]($0) }
        record.revision = row[17]
        record.mfaCodeHash = (row[18] as Data?).map { [UInt8]($0) }
        record.mfaExpiresAtMs = row[19]
        record.mfaAttemptsLeft = row[20]
        record.executedAtMs = row[21]
        record.executionKey = row[22]
        record.resultJSON = row[23]
        record.executionError = row[24]
        record.decidedBy = row[26]
        record.decisionComment = row[27]
        return record
    }

    public func updatePendingAction(
        _ action: PendingActionRecord, events: [NewEvent]
    ) async throws(StoreError) -> (PendingActionRecord, String) {
        try await write { db in
            let stored = try Self.writePendingAction(db, action)
            for event in events {
                _ = try Self.append(db, tenant: action.tenant, sessionID: action.sessionID, event: event)
            }
            try Self.cancelApprovals(db, of: stored, actor: events.first?.actor ?? "", at: stored.updatedAtMs)
            return (stored, try Self.refreshSessionStatus(db, tenant: action.tenant, sessionID: action.sessionID))
        }
    }

    /// Writes `action` over the revision it was read at, returning it with its revision bumped.
    static func writePendingAction(_ db: Database, _ action: PendingActionRecord) throws -> PendingActionRecord {
        var stored = action
        stored.revision = action.revision + 1
        try db.cachedStatement(sql: """
            UPDATE pending_actions SET status = ?, action_json = ?, updated_at_ms = ?, expires_at_ms = ?,
                awaiting_confirmation = ?, prompt = ?, reprompt_count = ?, confirmation_expires_at_ms = ?,
                release_token_hash = ?, revision = ?, mfa_code_hash = ?, mfa_expires_at_ms = ?, mfa_attempts_left = ?,
                executed_at_ms = ?, execution_key = ?, result_json = ?, execution_error = ?, action_hash = ?,
                decided_by = ?, decision_comment = ?
            WHERE tenant_id = ? AND id = ? AND revision = ?
            """).execute(arguments: [
                stored.status, stored.actionJSON, stored.updatedAtMs, stored.expiresAtMs, stored.awaitingConfirmation,
                stored.prompt, stored.repromptCount, stored.confirmationExpiresAtMs, stored.releaseTokenHash.map { Data($0) },
                stored.revision, stored.mfaCodeHash.map { Data($0) }, stored.mfaExpiresAtMs, stored.mfaAttemptsLeft,
                stored.executedAtMs, stored.executionKey, stored.resultJSON, stored.executionError, Data(stored.actionHash),
                stored.decidedBy, stored.decisionComment, action.tenant.rawValue, action.id, action.revision,
            ])
        if db.changesCount == 0 {
            guard let current = try Self.fetchPendingAction(db, tenant: action.tenant, id: action.id) else {
                throw StoreError.missing(kind: "pending action", id: action.id)
            }
            throw StoreError.versionConflict(expected: action.revision, current: current.revision)
        }
        return stored
    }

    /// Sets and returns the session's status: escalated while a ticket is
    /// not resolved, else awaiting confirmation while a pending action waits
    /// for the user's answer or code, else active.
    static func refreshSessionStatus(_ db: Database, tenant: TenantID, sessionID: String) throws -> String {
        let escalated = try Bool.fetchOne(
            db.cachedStatement(sql: Lookup.sessionHasUnresolvedTicket), arguments: [tenant.rawValue, sessionID]) ?? false
        let awaiting = try Bool.fetchOne(
            db.cachedStatement(sql: Lookup.sessionAwaitsUser), arguments: [tenant.rawValue, sessionID]) ?? false
        let status = StoreRules.sessionStatus(hasUnresolvedTicket: escalated, awaitsUser: awaiting)
        try db.cachedStatement(sql: "UPDATE sessions SET status = ? WHERE tenant_id = ? AND id = ?")
            .execute(arguments: [status, tenant.rawValue, sessionID])
        return status
    }

    public func openTicket(
        _ ticket: TicketRecord, turn: TurnRecord, event: NewEvent
    ) async throws(StoreError) -> (ticket: TicketRecord, created: Bool, sessionStatus: String, events: [EventRecord]) {
        try await write { db in
            try Self.requireSession(db, tenant: ticket.tenant, id: ticket.sessionID)
            let tenant = ticket.tenant.rawValue
            func sessionStatus() throws -> String {
                try String.fetchOne(
                    db.cachedStatement(sql: "SELECT status FROM sessions WHERE tenant_id = ? AND id = ?"),
                    arguments: [tenant, ticket.sessionID]) ?? "escalated"
            }
            let sameAction = ticket.pendingActionID.isEmpty ? nil : try Row.fetchOne(
                db.cachedStatement(sql: Lookup.unresolvedTicketOfAction),
                arguments: [tenant, ticket.sessionID, ticket.pendingActionID]
            ).map { Self.ticket($0, tenant: ticket.tenant) }
            let active = try Row.fetchOne(
                db.cachedStatement(sql: Lookup.activeTicketOfSession), arguments: [tenant, ticket.sessionID]
            ).map { Self.ticket($0, tenant: ticket.tenant) }
            switch StoreRules.place(ticket, event: event, sameAction: sameAction, active: active) {
            case .existing(let found):
                return (found, false, try sessionStatus(), [])
            case .open(let opened, let event):
                try Self.insertTicket(db, opened)
                try Self.insertTurn(db, tenant: ticket.tenant, turn)
                let appended = try Self.append(db, tenant: ticket.tenant, sessionID: ticket.sessionID, event: event)
                return (opened, true, try Self.refreshSessionStatus(db, tenant: ticket.tenant, sessionID: ticket.sessionID), [appended])
            case .attach(let attached, let event):
                try db.cachedStatement(sql: """
                    UPDATE tickets SET pending_action_id = ?, revision = ? WHERE tenant_id = ? AND id = ?
                    """).execute(arguments: [attached.pendingActionID, attached.revision, tenant, attached.id])
                let appended = try Self.append(db, tenant: ticket.tenant, sessionID: ticket.sessionID, event: event)
                return (attached, false, try sessionStatus(), [appended])
            case .wait(let waiting, let event):
                try Self.insertTicket(db, waiting)
                let appended = try Self.append(db, tenant: ticket.tenant, sessionID: ticket.sessionID, event: event)
                return (waiting, true, try sessionStatus(), [appended])
            }
        }
    }

    /// When a session has no open or claimed ticket left, opens its oldest
    /// waiting one (keeping its creation time and SLA deadline: the customer
    /// has waited since then) and appends `ticket.opened`.
    static func openNextWaiting(_ db: Database, tenant: TenantID, sessionID: String, after resolved: TicketRecord, at now: Int64) throws -> EventRecord? {
        let active = try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM tickets WHERE tenant_id = ? AND session_id = ? AND status IN ('open', 'claimed'))"),
            arguments: [tenant.rawValue, sessionID]) ?? false
        guard !active, let row = try Row.fetchOne(
            db.cachedStatement(sql: Lookup.nextWaitingTicket),
            arguments: [tenant.rawValue, sessionID])
        else { return nil }
        let (opened, event) = StoreRules.opening(ticket(row, tenant: tenant), after: resolved, at: now)
        try db.cachedStatement(sql: """
            UPDATE tickets SET status = ?, revision = ?, queue_breached = sla_breach_recorded WHERE tenant_id = ? AND id = ?
            """).execute(arguments: [opened.status, opened.revision, tenant.rawValue, opened.id])
        return try append(db, tenant: tenant, sessionID: sessionID, event: event)
    }

    public func ticket(tenant: TenantID, id: String) async throws(StoreError) -> TicketRecord? {
        do {
            return try await read { db in
                try Row.fetchOne(
                    db.cachedStatement(sql: "\(Self.ticketColumns) WHERE tenant_id = ? AND id = ?"), arguments: [tenant.rawValue, id]
                ).map { Self.ticket($0, tenant: tenant) }
            }
        } catch {
            throw StoreError.failure("\(error)")
        }
    }

    public func escalationWindow(
        tenant: TenantID, since: Int64, until: Int64
    ) async throws(StoreError) -> (tickets: [TicketRecord], sessions: Int64) {
        do {
            return try await read { db in
                let tickets = try Row.fetchAll(
                    db.cachedStatement(sql: "\(Self.ticketColumns) WHERE tenant_id = ? AND created_at_ms >= ? AND created_at_ms < ?"),
                    arguments: [tenant.rawValue, since, until]
                ).map { Self.ticket($0, tenant: tenant) }
                let sessions = try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT count(*) FROM sessions WHERE tenant_id = ? AND created_at_ms >= ? AND created_at_ms < ?"),
                    arguments: [tenant.rawValue, since, until]) ?? 0
                return (tickets, sessions)
            }
        } catch {
            throw StoreError.failure("\(error)")
        }
    }

    public func tickets(tenant: TenantID, query: TicketQuery) async throws(StoreError) -> [TicketRecord] {
        var clauses = ["tenant_id = ?"]
        var arguments: [any DatabaseValueConvertible] = [tenant.rawValue]
        if !query.statuses.isEmpty {
            clauses.append("status IN \(Self.placeholders(query.statuses.count))")
            arguments.append(contentsOf: query.statuses)
            // Lets SQLite use the queue's order index (partial: unresolved tickets).
            if !query.statuses.contains("resolved") { clauses.append("status != 'resolved'") }
        }
        if !query.priorities.isEmpty {
            clauses.append("priority IN \(Self.placeholders(query.priorities.count))")
            arguments.append(contentsOf: query.priorities)
        }
        if let assignee = query.assignedTo {
            clauses.append("assigned_to = ?")
            arguments.append(assignee)
        }
        let sql = """
            \(Self.ticketColumns) WHERE \(clauses.joined(separator: " AND "))
            ORDER BY queue_breached DESC, priority DESC, created_at_ms ASC, id ASC
            LIMIT ? OFFSET ?
            """
        arguments.append(contentsOf: [query.limit, query.offset] as [any DatabaseValueConvertible])
        let bound = StatementArguments(arguments.map { Optional($0) })
        do {
            return try await read { db in try Row.fetchAll(db, sql: sql, arguments: bound).map { Self.ticket($0, tenant: tenant) } }
        } catch {
            throw StoreError.failure("\(error)")
        }
    }

    public func updateTicket(
        _ ticket: TicketRecord, turn: TurnRecord?, events: [NewEvent]
    ) async throws(StoreError) -> (ticket: TicketRecord, turn: TurnRecord?, sessionStatus: String, events: [EventRecord]) {
        try await write { db in
            var stored = ticket
            stored.revision = ticket.revision + 1
            try db.cachedStatement(sql: """
                UPDATE tickets SET status = ?, assigned_to = ?, claimed_at_ms = ?, resolved_at_ms = ?, outcome = ?,
                    resolution_note = ?, revision = ?, sla_breach_recorded = ?, queue_breached = ?
                WHERE tenant_id = ? AND id = ? AND revision = ?
                """).execute(arguments: [
                    stored.status, stored.assignedTo, stored.claimedAtMs, stored.resolvedAtMs, stored.outcome, stored.resolutionNote,
                    stored.revision, stored.slaBreachRecorded, stored.status == "open" && stored.slaBreachRecorded, ticket.tenant.rawValue, ticket.id, ticket.revision,
                ])
            if db.changesCount == 0 {
                try Self.refuseStaleRevision(db, table: "tickets", tenant: ticket.tenant, id: ticket.id, read: ticket.revision)
            }
            var written: TurnRecord?
            if let turn {
                written = try Self.insertTurn(db, tenant: ticket.tenant, turn)
            }
            var appended = try events.map { event in try Self.append(db, tenant: ticket.tenant, sessionID: ticket.sessionID, event: event) }
            if stored.status == "resolved", let opened = try Self.openNextWaiting(
                db, tenant: ticket.tenant, sessionID: ticket.sessionID, after: stored, at: events.last?.occurredAtMs ?? stored.resolvedAtMs) {
                appended.append(opened)
            }
            return (stored, written, try Self.refreshSessionStatus(db, tenant: ticket.tenant, sessionID: ticket.sessionID), appended)
        }
    }

    /// Lookups by a column other than the primary key, each naming its index.
    /// Without ANALYZE statistics SQLite's planner took `tenant_id = ?` on the
    /// primary key over a two-column secondary index, that is, a walk through
    /// every record of the tenant: preparing 100,000 tickets took 325 s, and
    /// each assessment walked all pending actions of its tenant. A test checks
    /// each plan (SQLiteStoreTests.lookupsUseTheirIndexes).
    enum Lookup {
        static let sessionHasUnresolvedTicket = """
            SELECT EXISTS (SELECT 1 FROM tickets INDEXED BY tickets_unresolved
            WHERE tenant_id = ? AND session_id = ? AND status != 'resolved')
            """
        static let sessionAwaitsUser = """
            SELECT EXISTS (SELECT 1 FROM pending_actions INDEXED BY pending_actions_by_session
            WHERE tenant_id = ? AND session_id = ? AND status = 'pending' AND (awaiting_confirmation = 1 OR mfa_code_hash IS NOT NULL))
            """
        static let unresolvedTicketOfAction = """
            \(ticketColumns) INDEXED BY tickets_unresolved
            WHERE tenant_id = ? AND session_id = ? AND pending_action_id = ? AND status != 'resolved'
            """
        static let activeTicketOfSession = """
            \(ticketColumns) INDEXED BY tickets_one_active WHERE tenant_id = ? AND session_id = ? AND status IN ('open', 'claimed')
            """
        static let nextWaitingTicket = """
            \(ticketColumns) INDEXED BY tickets_waiting
            WHERE tenant_id = ? AND session_id = ? AND status = 'waiting' ORDER BY created_at_ms, id LIMIT 1
            """
        static let pendingActionByReleaseToken = """
            \(pendingActionColumns) INDEXED BY pending_actions_by_release_token WHERE tenant_id = ? AND release_token_hash = ?
            """
        static let all = [
            sessionHasUnresolvedTicket, sessionAwaitsUser, unresolvedTicketOfAction, activeTicketOfSession, nextWaitingTicket,
            pendingActionByReleaseToken,
        ]
        /// By the primary key (not in `all`, which checks secondary indexes).
        static let sessionHead = "SELECT last_seq, last_hash, last_position, version FROM sessions WHERE tenant_id = ? AND id = ?"
        /// The positions of a session's events, newest first: its chain
        /// walked back from the head, one rowid lookup per event. The walk
        /// takes at most as many steps as the head's seq, so links edited
        /// into a cycle end it (and fail verification) instead of looping.
        static let sessionChain = """
            WITH RECURSIVE chain(position, steps_left) AS (
                SELECT last_position, last_seq FROM sessions WHERE tenant_id = ? AND id = ? AND last_position IS NOT NULL
                UNION ALL
                SELECT e.prev_position, c.steps_left - 1 FROM events e JOIN chain c ON e.position = c.position
                WHERE e.prev_position IS NOT NULL AND c.steps_left > 1
            )
            """
        static let eventsOfSession = """
            \(sessionChain) SELECT events.* FROM chain CROSS JOIN events ON events.position = chain.position ORDER BY events.seq
            """
    }

    /// `(?, ?, …)` with `count` placeholders.
    static func placeholders(_ count: Int) -> String {
        "(" + Array(repeating: "?", count: count).joined(separator: ", ") + ")"
    }

    static let ticketColumns = """
        SELECT id, session_id, pending_action_id, reason, priority, status, created_by, assigned_to, created_at_ms, claimed_at_ms,
            resolved_at_ms, sla_deadline_ms, outcome, resolution_note, snapshot_json, revision, sla_breach_recorded, tenant_id
        FROM tickets
        """
    /// Where `ticketColumns` puts the tenant (for queries across tenants).
    static let ticketTenantColumn = 17

    /// After an update over a revision matched no row: NOT_FOUND, or the
    /// version conflict with the revision now stored. `table` is one of this
    /// module's literals, never caller input.
    static func refuseStaleRevision(_ db: Database, table: String, tenant: TenantID, id: String, read: Int64) throws -> Never {
        let current = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT revision FROM \(table) WHERE tenant_id = ? AND id = ?"), arguments: [tenant.rawValue, id])
        guard let current else { throw StoreError.missing(kind: table == "tickets" ? "ticket" : "approval", id: id) }
        throw StoreError.versionConflict(expected: read, current: current)
    }

    static func ticket(_ row: Row, tenant: TenantID) -> TicketRecord {
        var record = TicketRecord(
            tenant: tenant, id: row[0], sessionID: row[1], pendingActionID: row[2], reason: row[3], priority: row[4], status: row[5],
            createdBy: row[6], assignedTo: row[7], createdAtMs: row[8], slaDeadlineMs: row[11], snapshotJSON: row[14])
        record.claimedAtMs = row[9]
        record.resolvedAtMs = row[10]
        record.outcome = row[12]
        record.resolutionNote = row[13]
        record.revision = row[15]
        record.slaBreachRecorded = row[16]
        return record
    }

    private static func insertTicket(_ db: Database, _ t: TicketRecord) throws {
        try db.cachedStatement(sql: """
            INSERT INTO tickets (tenant_id, id, session_id, pending_action_id, reason, priority, status, created_by, assigned_to,
                created_at_ms, claimed_at_ms, resolved_at_ms, sla_deadline_ms, outcome, resolution_note, snapshot_json, revision,
                sla_breach_recorded, queue_breached)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [
                t.tenant.rawValue, t.id, t.sessionID, t.pendingActionID, t.reason, t.priority, t.status, t.createdBy, t.assignedTo,
                t.createdAtMs, t.claimedAtMs, t.resolvedAtMs, t.slaDeadlineMs, t.outcome, t.resolutionNote, t.snapshotJSON, t.revision,
                t.slaBreachRecorded, t.status == "open" && t.slaBreachRecorded,
            ])
    }

    /// Inserts a turn numbered after the session's last one.
    @discardableResult
    private static func insertTurn(_ db: Database, tenant: TenantID, _ turn: TurnRecord) throws -> TurnRecord {
        var stored = turn
        stored.sequence = try nextSequence(db, table: "turns", tenant: tenant, sessionID: turn.sessionID)
        try db.cachedStatement(sql: """
            INSERT INTO turns (tenant_id, session_id, seq, input, output, metadata_json, reasoning, author, created_at_ms)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [
                tenant.rawValue, stored.sessionID, stored.sequence, stored.input, stored.output, stored.metadataJSON,
                stored.reasoning, stored.author, stored.createdAtMs,
            ])
        return stored
    }

    // MARK: Internals

    static func requireSession(_ db: Database, tenant: TenantID, id: String) throws {
        if try !sessionExists(db, tenant: tenant, id: id) { throw StoreError.notFound(id) }
    }

    private static func sessionExists(_ db: Database, tenant: TenantID, id: String) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT 1 FROM sessions WHERE tenant_id = ? AND id = ?"),
            arguments: [tenant.rawValue, id]) ?? false
    }

    private static func nextSequence(_ db: Database, table: String, tenant: TenantID, sessionID: String) throws -> Int64 {
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
            return try await writer.submit(body)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.failure("\(error)")
        }
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
        let (head, _) = try head(db, tenant: tenant, sessionID: sessionID)
        let (record, position) = try insertEvent(db, tenant: tenant, sessionID: sessionID, event: event, after: head)
        try moveHead(db, tenant: tenant, sessionID: sessionID, from: head, to: record, at: position)
        return record
    }

    /// Moves the session's head from `head` (the seq it was read at) to
    /// `record`, at `position`; with `state`, writes the new state in the
    /// same statement (UpdateState: one write of the row).
    static func moveHead(
        _ db: Database, tenant: TenantID, sessionID: String, from head: Head, to record: EventRecord, at position: Int64,
        state: (version: Int64, json: String, updatedAtMs: Int64)? = nil
    ) throws {
        let move = try HotStatement(db, state == nil ? """
            UPDATE sessions SET last_seq = ?, last_hash = ?, last_position = ? WHERE tenant_id = ? AND id = ? AND last_seq = ?
            """ : """
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
        let insert = try HotStatement(db, """
            INSERT INTO events (tenant_id, session_id, seq, action, actor, reasoning, details_json, occurred_at_ms, prev_hash, hash,
                prev_position)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
        try insert.run()
        let position = db.lastInsertedRowID
        let record = EventRecord(
            tenant: tenant, sessionID: sessionID, sequence: sequence, event: event, previousHash: head.hash, hash: hash,
            storePosition: position)
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

    private static func fetchSession(_ db: Database, tenant: TenantID, id: String) throws -> SessionRecord? {
        guard let row = try Row.fetchOne(
            db.cachedStatement(sql: """
                SELECT version, state_json, status, labels_json, created_at_ms, updated_at_ms
                FROM sessions WHERE tenant_id = ? AND id = ?
                """),
            arguments: [tenant.rawValue, id])
        else { return nil }
        return SessionRecord(
            tenant: tenant, id: id, version: row[0], stateJSON: row[1], status: row[2], labels: decodeLabels(row[3]),
            createdAtMs: row[4], updatedAtMs: row[5])
    }

    private static func event(from row: Row) -> EventRecord {
        EventRecord(
            tenant: TenantID(row["tenant_id"]), sessionID: row["session_id"], sequence: row["seq"],
            event: NewEvent(
                action: row["action"], actor: row["actor"], reasoning: row["reasoning"], detailsJSON: row["details_json"],
                occurredAtMs: row["occurred_at_ms"]),
            previousHash: [UInt8](row["prev_hash"] as Data), hash: [UInt8](row["hash"] as Data), storePosition: row["position"])
    }

    private static func encodeLabels(_ labels: [String: String]) -> String {
        JSONValue.object(labels.mapValues(JSONValue.string)).serialized
    }

    private static func decodeLabels(_ json: String) -> [String: String] {
        guard let members = (try? JSONValue(parsing: json))?.objectValue else { return [:] }
        return members.compactMapValues { if case .string(let text) = $0 { text } else { nil } }
    }
}
