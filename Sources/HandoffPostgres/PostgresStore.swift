// Handoff — the store on PostgreSQL, for several handoffd nodes on one
// database (SQLite stays the embedded default). A write is one transaction
// that first locks the row of the session it changes (`FOR UPDATE`): two
// nodes' writes to one session take turns, a session's chain is extended
// from the head it locked, versions and revisions are checked by the
// database in the write's own transaction, and every lock a write takes
// after its session's row belongs to that session, so writes never deadlock.
// Concurrent writes on the pool's connections share WAL flushes (PostgreSQL's
// own group commit); a write answers only after its COMMIT returned.

import Foundation
public import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
public import HandoffCore

/// Sessions, desks and their event chains in a PostgreSQL database.
public final class PostgresStore: Store {
    let client: PostgresClient
    let logger: Logger
    let settings: PostgresSettings
    private let runner: Task<Void, Never>
    private let listener = Mutex<Task<Void, Never>?>(nil)
    let writeHealth = WriteHealth()

    /// Tells `observer` when writes start failing for a reason of the store
    /// (the server unreachable, its disk full), and when one succeeds again.
    public func observeWrites(_ observer: @escaping @Sendable (WriteHealth.Change) -> Void) {
        writeHealth.observe(observer)
    }

    public var isShared: Bool { true }

    /// Connects (checking at once that the server answers, with one line
    /// that names it when not) and brings the schema up to date under an
    /// advisory lock, so nodes that start together migrate once.
    public init(settings: PostgresSettings, logger: Logger = Logger(label: "handoff.postgres")) async throws(StoreError) {
        self.settings = settings
        self.logger = logger
        try await Self.probe(settings, logger: logger)
        let client = PostgresClient(configuration: settings.clientConfiguration(), backgroundLogger: logger)
        self.client = client
        runner = Task { await client.run() }
        do {
            try await migrate()
        } catch {
            runner.cancel()
            throw error
        }
    }

    /// Closes the pool's connections (after the last call).
    public func shutdown() async {
        listener.withLock { $0 }?.cancel()
        runner.cancel()
        _ = await runner.value
    }

    deinit {
        listener.withLock { $0 }?.cancel()
        runner.cancel()
    }

    /// Listens on one connection of the pool for other nodes' commits of
    /// `settings.notifyActions` and calls `wake` with each one's tenant. A
    /// notification carries the tenant only (never data): the woken reader
    /// reads the change feed after its cursor. When the connection is lost,
    /// it listens again a second later and then calls `relistened` (the
    /// readers re-read: what committed meanwhile was told to nobody); the
    /// readers' own polling covers the gap, and a proxy that drops
    /// notifications.
    public func listenForFeed(wake: @escaping @Sendable (TenantID) -> Void, relistened: @escaping @Sendable () -> Void) {
        let task = Task { [client, logger] in
            while !Task.isCancelled {
                do {
                    try await client.withConnection { connection in
                        try await connection.listen(on: Self.feedChannel) { notifications in
                            relistened()
                            for try await notification in notifications { wake(TenantID(notification.payload)) }
                        }
                    }
                } catch {
                    if Task.isCancelled { break }
                    logger.warning(
                        "the PostgreSQL notification connection was lost; listening again in 1 s (watchers poll meanwhile)",
                        metadata: ["cause": "\(Self.reason(error))"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        listener.withLock { $0 = task }
    }

    /// One connection made and closed, so that a wrong address, password or
    /// database is one clear line at start, not a pool retrying in the background.
    private static func probe(_ settings: PostgresSettings, logger: Logger) async throws(StoreError) {
        do {
            let connection = try await PostgresConnection.connect(
                configuration: try settings.connectionConfiguration(), id: 0, logger: logger)
            try await connection.close()
        } catch let error as StoreError {
            throw error
        } catch {
            var reason = Self.reason(error)
            if reason.contains("Connection refused") {
                reason = "connection refused; is PostgreSQL running there and listening on port \(settings.port)?"
            } else if reason.contains("connectTimeout") || reason.contains("timed out") {
                reason = "no answer within 10 s; check the host, the port and any firewall between"
            }
            throw StoreError.failure(
                "cannot connect to PostgreSQL at \(settings.displayName): \(reason) (choose the store with --store or store.url)")
        }
    }

    // MARK: Migrations

    private static let migrationLock: Int64 = 0x4841_4E44_4F46_46  // "HANDOFF"

    private func migrate() async throws(StoreError) {
        do {
            try await client.withConnection { connection in
                try await connection.query("SELECT pg_advisory_lock(\(Self.migrationLock))", logger: logger).collect()
                do {
                    try await connection.query("""
                        CREATE TABLE IF NOT EXISTS schema_migrations (
                            version bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
                        """, logger: logger).collect()
                    var applied: Set<Int64> = []
                    for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger)
                        .decode(Int64.self) { applied.insert(version) }
                    for migration in Self.migrations where !applied.contains(Int64(migration.version)) {
                        try await connection.query("BEGIN", logger: logger).collect()
                        do {
                            for statement in migration.sql {
                                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger).collect()
                            }
                            try await connection.query(
                                "INSERT INTO schema_migrations (version, name) VALUES (\(Int64(migration.version)), \(migration.name))",
                                logger: logger
                            ).collect()
                            try await connection.query("COMMIT", logger: logger).collect()
                        } catch {
                            _ = try? await connection.query("ROLLBACK", logger: logger).collect()
                            throw error
                        }
                        logger.info("PostgreSQL schema migrated", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                    }
                } catch {
                    _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger).collect()
                    throw error
                }
                try await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger).collect()
            }
        } catch {
            throw StoreError.failure("cannot migrate the PostgreSQL schema at \(settings.displayName): \(Self.reason(error))")
        }
    }

    // MARK: Reads and writes

    /// A read outside any transaction (each statement sees what committed before it).
    func read<T>(_ body: (PostgresConnection) async throws -> T) async throws(StoreError) -> T {
        do {
            return try await client.withConnection { connection in try await body(connection) }
        } catch {
            throw Self.storeError(error)
        }
    }

    /// A read of several statements that must see one snapshot.
    func snapshotRead<T>(_ body: (PostgresConnection) async throws -> T) async throws(StoreError) -> T {
        do {
            return try await client.withConnection { connection in
                try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger).collect()
                do {
                    let result = try await body(connection)
                    try await connection.query("COMMIT", logger: logger).collect()
                    return result
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger).collect()
                    throw error
                }
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    /// Runs `body` in one transaction and commits it; retried (from the
    /// start) when PostgreSQL reports a serialization failure or deadlock,
    /// which undid it whole. Store refusals pass through as they are.
    func write<T>(_ body: (Transaction) async throws -> T) async throws(StoreError) -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let result = try await client.withConnection { connection in
                    let transaction = Transaction(connection: connection, logger: logger, notifyActions: settings.notifyActions)
                    try await connection.query("BEGIN", logger: logger).collect()
                    do {
                        let result = try await body(transaction)
                        try await transaction.notifyWatchers()
                        try await connection.query("COMMIT", logger: logger).collect()
                        return result
                    } catch {
                        _ = try? await connection.query("ROLLBACK", logger: logger).collect()
                        throw error
                    }
                }
                writeHealth.succeeded()
                return result
            } catch {
                if attempt < 5, let state = Self.sqlState(error), state == "40001" || state == "40P01" { continue }
                let failure = Self.storeError(error)
                writeHealth.record(failure)
                throw failure
            }
        }
    }

    /// An error as the domain sees it: the store's refusals as they are, a
    /// full volume as `.full`, anything else as `.failure` with its cause.
    static func storeError(_ error: any Error) -> StoreError {
        if let error = error as? StoreError { return error }
        if let error = error as? PostgresTransactionError, let inner = error.closureError ?? error.commitError ?? error.beginError {
            return storeError(inner)
        }
        if sqlState(error) == "53100" { return .full("the PostgreSQL server's disk is full") }
        return .failure(reason(error))
    }

    static func sqlState(_ error: any Error) -> String? {
        if let error = error as? PSQLError { return error.serverInfo?[.sqlState] }
        if let error = error as? PostgresTransactionError {
            return (error.closureError ?? error.commitError ?? error.beginError).flatMap(sqlState)
        }
        return nil
    }

    /// What went wrong, in one line, without bind values (PSQLError's own
    /// description says only "PSQLError").
    static func reason(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return "\(message) (SQLSTATE \(error.serverInfo?[.sqlState] ?? "?"))"
            }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        return "\(error)"
    }

    // MARK: Operations

    public func deskCounts() async throws(StoreError) -> DeskCounts {
        try await read { connection in
            var counts = DeskCounts()
            let rows = try await connection.query("""
                SELECT status, priority, count(*), min(created_at_ms) FROM tickets WHERE status <> 'resolved' GROUP BY status, priority
                """, logger: logger)
            for try await (status, priority, count, created) in rows.decode((String, Int64, Int64, Int64).self) {
                counts.tickets.append(.init(status: status, priority: Int(priority), count: count))
                if status == "open" { counts.oldestOpenTicketCreatedAtMs = min(counts.oldestOpenTicketCreatedAtMs ?? created, created) }
            }
            for try await count in try await connection.query(
                "SELECT count(*) FROM approvals WHERE status = 'pending'", logger: logger).decode(Int64.self) { counts.pendingApprovals = count }
            for try await count in try await connection.query(
                "SELECT count(*) FROM pending_actions WHERE status = 'pending'", logger: logger).decode(Int64.self) { counts.undecidedActions = count }
            return counts
        }
    }

    /// Admin/Backup copies an SQLite store; a PostgreSQL database is backed
    /// up with its own tools, which a file beside the server cannot replace.
    public func backupCopy() async throws(StoreError) -> (path: String, format: String) {
        throw StoreError.limitReached(
            "this server's store is PostgreSQL (\(settings.displayName)): back it up with pg_dump or the server's base backups (docs/OPERATIONS.md)")
    }

    public func settle() async {}

    /// Always false: every assessment is written before its answer (there is
    /// no group-commit queue to detach from; concurrent commits share WAL
    /// flushes in PostgreSQL itself).
    public func queueAssessment(
        tenant: TenantID, assessment: AssessmentRecord, events: [NewEvent],
        completion: @escaping @Sendable (Result<RecordedAssessment, StoreError>) -> Void
    ) -> Bool {
        false
    }
}

/// One write transaction on one connection: the sessions it locked (and
/// their chain heads as it moved them), the events it appended, and the
/// tenants whose watchers its commit should wake on other nodes.
final class Transaction {
    let connection: PostgresConnection
    let logger: Logger
    let notifyActions: Set<String>
    /// The next event's index in this transaction (its feed position's low bits).
    private(set) var eventIndex: Int64 = 0
    private var heads: [SessionKey: Head] = [:]
    private var wake: Set<String> = []

    struct SessionKey: Hashable {
        var tenant: String
        var id: String
    }

    /// A locked session's row as this transaction sees it.
    struct Head {
        var sequence: Int64
        var hash: [UInt8]
        var version: Int64
    }

    init(connection: PostgresConnection, logger: Logger, notifyActions: Set<String>) {
        self.connection = connection
        self.logger = logger
        self.notifyActions = notifyActions
    }

    /// Runs a statement and returns its rows (all read, so that an error of
    /// the statement is thrown here and never lost with an unread sequence).
    @discardableResult
    func rows(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await connection.query(query, logger: logger).collect()
    }

    /// Locks the session's row for the rest of the transaction and returns its head and version; nil when there is no such session.
    func lockSession(tenant: TenantID, id: String) async throws -> Head? {
        let key = SessionKey(tenant: tenant.rawValue, id: id)
        if let head = heads[key] { return head }
        guard let row = try await rows("""
            SELECT last_seq, last_hash, version FROM sessions WHERE tenant_id = \(tenant.rawValue) AND id = \(id) FOR UPDATE
            """).first
        else { return nil }
        let (sequence, hash, version) = try row.decode((Int64, ByteBuffer?, Int64).self)
        let head = Head(sequence: sequence, hash: hash.map { Array($0.readableBytesView) } ?? EventChain.genesis, version: version)
        heads[key] = head
        return head
    }

    /// `lockSession`, NOT_FOUND when there is none.
    @discardableResult
    func requireSession(tenant: TenantID, id: String) async throws -> Head {
        guard let head = try await lockSession(tenant: tenant, id: id) else { throw StoreError.notFound(id) }
        return head
    }

    /// Inserts the event after `head` (its feed position: this transaction's
    /// id, then its index here), without moving the session's row.
    func insertEvent(tenant: TenantID, sessionID: String, event: NewEvent, after head: Head) async throws -> EventRecord {
        let sequence = head.sequence + 1
        let hash = EventChain.hash(tenant: tenant, sessionID: sessionID, sequence: sequence, event: event, previousHash: head.hash)
        let index = eventIndex
        eventIndex += 1
        guard let row = try await rows("""
            INSERT INTO events (tenant_id, session_id, seq, position, action, actor, reasoning, details_json, occurred_at_ms,
                prev_hash, hash, traceparent)
            VALUES (\(tenant.rawValue), \(sessionID), \(sequence), (pg_current_xact_id()::text::bigint << 20) + \(index),
                \(event.action), \(event.actor), \(event.reasoning), \(event.detailsJSON), \(event.occurredAtMs),
                \(ByteBuffer(bytes: head.hash)), \(ByteBuffer(bytes: hash)), \(event.traceparent))
            RETURNING position
            """).first
        else { throw StoreError.failure("an event insert returned no position") }
        if notifyActions.contains(event.action) { wake.insert(tenant.rawValue) }
        return EventRecord(
            tenant: tenant, sessionID: sessionID, sequence: sequence, event: event, previousHash: head.hash, hash: hash,
            feedPosition: try row.decode(Int64.self))
    }

    /// Appends one event to a locked session's chain and moves its head
    /// (with `state`, writes the new state and version in the same statement).
    func append(
        tenant: TenantID, sessionID: String, event: NewEvent, state: (version: Int64, json: String, updatedAtMs: Int64)? = nil
    ) async throws -> EventRecord {
        let head = try await requireSession(tenant: tenant, id: sessionID)
        let record = try await insertEvent(tenant: tenant, sessionID: sessionID, event: event, after: head)
        if let state {
            try await rows("""
                UPDATE sessions SET last_seq = \(record.sequence), last_hash = \(ByteBuffer(bytes: record.hash)),
                    version = \(state.version), state_json = \(state.json), updated_at_ms = \(state.updatedAtMs)
                WHERE tenant_id = \(tenant.rawValue) AND id = \(sessionID)
                """)
        } else {
            try await rows("""
                UPDATE sessions SET last_seq = \(record.sequence), last_hash = \(ByteBuffer(bytes: record.hash))
                WHERE tenant_id = \(tenant.rawValue) AND id = \(sessionID)
                """)
        }
        heads[SessionKey(tenant: tenant.rawValue, id: sessionID)] = Head(
            sequence: record.sequence, hash: record.hash, version: state?.version ?? head.version)
        return record
    }

    /// Sent with the commit (PostgreSQL delivers a NOTIFY only if its
    /// transaction commits): the tenant, never data, wakes other nodes'
    /// watchers, which then read the change feed.
    func notifyWatchers() async throws {
        for tenant in wake.sorted() {
            try await rows("SELECT pg_notify(\(PostgresStore.feedChannel), \(tenant))")
        }
    }
}
