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
public import HandoffCore
public import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// Sessions, desks and their event chains in a PostgreSQL database.
public final class PostgresStore: Store {
    let client: PostgresClient
    let logger: Logger
    let settings: PostgresSettings
    private let runner: Task<Void, Never>
    /// Added to transaction ids in feed positions (see `feedBaseAtStart`).
    let feedBase: Int64
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
        // The first connection, made on its own (not the pool's), answers
        // for the server at once and runs the migrations; the pool starts after.
        let first = try await Self.connect(settings, logger: logger)
        do {
            feedBase = try await Self.migrate(first, settings: settings, logger: logger)
        } catch {
            try? await first.close()
            throw error
        }
        try? await first.close()
        // The pool logs every failed connection attempt (once a second while
        // the server is down): only its errors reach handoffd's log; the
        // store's own failure and recovery are logged once (WriteHealth).
        var poolLogger = logger
        poolLogger.logLevel = max(logger.logLevel, .error)
        let client = PostgresClient(configuration: try settings.clientConfiguration(), backgroundLogger: poolLogger)
        self.client = client
        self.runner = Task { await client.run() }
    }

    /// Closes the pool's connections (after the last call).
    public func shutdown() async {
        listener.withLock { $0 }?.cancel()
        runner.cancel()
        // The pool closes its connections; a server that does not answer
        // (stopped meanwhile) must not hold handoffd's exit: 5 s at most.
        let runner = self.runner
        await withTaskGroup(of: Void.self) { group in
            group.addTask { _ = await runner.value }
            group.addTask { try? await Task.sleep(for: .seconds(5)) }
            await group.next()
            group.cancelAll()
        }
    }

    deinit {
        listener.withLock { $0 }?.cancel()
        runner.cancel()
    }

    /// Listens, on a connection of its own (not one of the pool's), for
    /// other nodes' commits of `settings.notifyActions`, and calls `wake`
    /// with each one's tenant. A notification carries the tenant only (never
    /// data): the woken reader reads the change feed after its cursor. The
    /// connection is checked every 30 s (a query that must answer within
    /// 10 s), so a silently dropped one is noticed; when it is lost, it
    /// listens again a second later and then calls `relistened` (the readers
    /// re-read: what committed meanwhile was told to nobody). The readers' own
    /// polling covers the gap, and a proxy that drops notifications.
    public func listenForFeed(wake: @escaping @Sendable (TenantID) -> Void, relistened: @escaping @Sendable () -> Void) {
        let task = Task { [settings, logger] in
            var lost = false
            while !Task.isCancelled {
                do {
                    let connection = try await PostgresConnection.connect(
                        configuration: try settings.connectionConfiguration(), id: 1, logger: logger)
                    defer { Task { try? await connection.close() } }
                    try await connection.listen(on: Self.feedChannel) { notifications in
                        if lost {
                            logger.notice("listening for PostgreSQL notifications again")
                            lost = false
                        }
                        relistened()
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask {
                                for try await notification in notifications { wake(TenantID(notification.payload)) }
                                throw StoreError.failure("the notification stream ended")
                            }
                            group.addTask {
                                while true {
                                    try await Task.sleep(for: .seconds(30))
                                    try await Self.withTimeout(.seconds(10)) {
                                        _ = try await connection.query("SELECT 1", logger: logger).collect()
                                    }
                                }
                            }
                            try await group.next()
                            group.cancelAll()
                        }
                    }
                } catch {
                    if Task.isCancelled { break }
                    if !lost {
                        logger.warning(
                            "the PostgreSQL notification connection was lost; trying again every second (watchers poll meanwhile)",
                            metadata: ["cause": "\(Self.reason(error))"])
                        lost = true
                    }
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        listener.withLock { $0 = task }
    }

    /// Runs `body`, throwing if it takes longer than `limit`.
    static func withTimeout(_ limit: Duration, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await body()
                return true
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return false
            }
            let finished = try await group.next() ?? false
            group.cancelAll()
            if !finished { throw StoreError.failure("no answer within \(limit)") }
        }
    }

    /// One connection, so that a wrong address, password or database is one
    /// clear line at start, not a pool retrying in the background.
    private static func connect(_ settings: PostgresSettings, logger: Logger) async throws(StoreError) -> PostgresConnection {
        do {
            return try await PostgresConnection.connect(configuration: try settings.connectionConfiguration(), id: 0, logger: logger)
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

    /// Runs the migrations not applied yet and returns the feed base, under
    /// the advisory lock.
    private static func migrate(_ connection: PostgresConnection, settings: PostgresSettings, logger: Logger) async throws(StoreError) -> Int64 {
        do {
            return try await { () async throws -> Int64 in
                _ = try await connection.query("SELECT pg_advisory_lock(\(Self.migrationLock))", logger: logger).collect()
                do {
                    _ = try await connection.query(
                        """
                        CREATE TABLE IF NOT EXISTS schema_migrations (
                            version bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
                        """, logger: logger
                    ).collect()
                    var applied: Set<Int64> = []
                    for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger)
                        .decode(Int64.self)
                    { applied.insert(version) }
                    for migration in Self.migrations where !applied.contains(Int64(migration.version)) {
                        _ = try await connection.query("BEGIN", logger: logger).collect()
                        do {
                            for statement in migration.sql {
                                _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger).collect()
                            }
                            _ = try await connection.query(
                                "INSERT INTO schema_migrations (version, name) VALUES (\(Int64(migration.version)), \(migration.name))",
                                logger: logger
                            ).collect()
                            _ = try await connection.query("COMMIT", logger: logger).collect()
                        } catch {
                            _ = try? await connection.query("ROLLBACK", logger: logger).collect()
                            throw error
                        }
                        logger.info("PostgreSQL schema migrated", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                    }
                    let base = try await feedBaseAtStart(connection, logger: logger)
                    _ = try await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger).collect()
                    return base
                } catch {
                    _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger).collect()
                    throw error
                }
            }()
        } catch {
            throw StoreError.failure("cannot migrate the PostgreSQL schema at \(settings.displayName): \(Self.reason(error))")
        }
    }

    /// The feed base: added to transaction ids in feed positions, so that
    /// positions keep growing when the database moves to a cluster whose
    /// transaction ids start lower (a pg_dump restored, logical
    /// replication): kept in `feed_base`, and raised at start, under the
    /// migration lock, past the highest position stored when the cluster's
    /// next transaction id (plus the base) is below it. Otherwise Watch
    /// cursors saved before the move would point past every new event, and
    /// new positions would collide with old ones.
    private static func feedBaseAtStart(_ connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        _ = try await connection.query("INSERT INTO feed_base (id, base) VALUES (1, 0) ON CONFLICT (id) DO NOTHING", logger: logger).collect()
        var base: Int64 = 0
        var highest: Int64 = 0
        var next: Int64 = 0
        for try await (stored, top, nextID) in try await connection.query(
            """
            SELECT (SELECT base FROM feed_base WHERE id = 1), COALESCE((SELECT max(position) >> 20 FROM events), 0),
                pg_snapshot_xmax(pg_current_snapshot())::text::bigint
            """, logger: logger
        ).decode((Int64, Int64, Int64).self) { (base, highest, next) = (stored, top, nextID) }
        guard next + base <= highest else { return base }
        let raised = highest - next + 1_000_000
        _ = try await connection.query("UPDATE feed_base SET base = \(raised) WHERE id = 1", logger: logger).collect()
        logger.notice(
            "the feed's positions were ahead of this cluster's transaction ids (a restored or moved database): feed base raised",
            metadata: [
                "from": "\(base)", "to": "\(raised)",
            ])
        return raised
    }

    // MARK: Reads and writes

    /// How long a call waits for a connection of the pool: when PostgreSQL
    /// is down (or every connection stays busy) the call fails UNAVAILABLE,
    /// naming the server, instead of waiting for its deadline.
    static let leaseTimeout: Duration = .seconds(3)

    /// Whether a lease came in time (set by the operation, read by its watchdog).
    private final class LeaseFlag: Sendable {
        let leased = Atomic<Bool>(false)
    }

    /// Runs `body` on a connection of the pool, failing when none is had
    /// within `leaseTimeout` (once it has one, the operation runs to its end).
    func withLease<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let flag = LeaseFlag()
        let client = self.client
        let name = settings.displayName
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await client.withConnection { connection in
                    flag.leased.store(true, ordering: .releasing)
                    return try await body(connection)
                }
            }
            group.addTask {
                try await Task.sleep(for: Self.leaseTimeout)
                guard flag.leased.load(ordering: .acquiring) else {
                    throw StoreError.failure(
                        "no connection to PostgreSQL at \(name) within \(Self.leaseTimeout): the server is down or unreachable, or every connection of the pool stayed busy"
                    )
                }
                return nil
            }
            while let next = try await group.next() {
                if let value = next {
                    group.cancelAll()
                    return value
                }
            }
            throw StoreError.failure("the PostgreSQL operation ended without a result")
        }
    }

    /// A read outside any transaction (each statement sees what committed before it).
    func read<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws(StoreError) -> T {
        do {
            return try await withLease { connection in try await body(connection) }
        } catch {
            throw Self.storeError(error)
        }
    }

    /// A read of several statements that must see one snapshot.
    func snapshotRead<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws(StoreError) -> T {
        do {
            return try await withLease { [logger] connection in
                _ = try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger).collect()
                do {
                    let result = try await body(connection)
                    _ = try await connection.query("COMMIT", logger: logger).collect()
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
    /// which undid it whole. Store refusals pass through as they are; a call
    /// that ended meanwhile is `.cancelled` (rolled back, and not a failure
    /// of the store). When the connection is lost while COMMIT was on its
    /// way, the transaction's fate is asked of the server
    /// (`pg_xact_status`), so a committed write is answered as one.
    func write<T: Sendable>(_ body: @escaping @Sendable (Transaction) async throws -> T) async throws(StoreError) -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let result = try await withLease { [self] connection in
                    let transaction = Transaction(
                        connection: connection, logger: logger, notifyActions: settings.notifyActions, feedBase: feedBase)
                    _ = try await connection.query("BEGIN ISOLATION LEVEL READ COMMITTED", logger: logger).collect()
                    let result: T
                    do {
                        result = try await body(transaction)
                        try await transaction.notifyWatchers()
                    } catch {
                        _ = try? await connection.query("ROLLBACK", logger: logger).collect()
                        throw error
                    }
                    do {
                        _ = try await connection.query("COMMIT", logger: logger).collect()
                    } catch {
                        // A refusal by the server: rolled back. Anything else: ask.
                        guard Self.sqlState(error) == nil, let xid = transaction.transactionID else { throw error }
                        guard try await committed(xid) else { throw error }
                    }
                    return result
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

    /// Whether transaction `xid` committed, asked on another connection (up
    /// to 10 s while the server still sees it in progress).
    private func committed(_ xid: Int64) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            var status = ""
            let query: PostgresQuery = "SELECT pg_xact_status(\(String(xid))::xid8)"
            for value in try await withLease({ [logger] connection in
                let rows = try await connection.query(query, logger: logger)
                var found: [String?] = []
                for try await value in rows.decode(String?.self) { found.append(value) }
                return found
            }) {
                status = value ?? ""
            }
            if status == "committed" { return true }
            if status != "in progress" || ContinuousClock.now >= deadline { return false }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// An error as the domain sees it: the store's refusals as they are, a
    /// full volume as `.full`, anything else as `.failure` with its cause.
    static func storeError(_ error: any Error) -> StoreError {
        if let error = error as? StoreError { return error }
        if Task.isCancelled || error is CancellationError || "\(error)".contains("requestCancelled")
            || (error as? PSQLError)?.code == .queryCancelled
        {
            return .cancelled
        }
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
        if let error = error as? PSQLError, error.code == .sslUnsupported {
            return "the server does not offer TLS: turn ssl on in its postgresql.conf, or choose sslmode=disable on a trusted network"
        }
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
        try await read { [self] connection in
            var counts = DeskCounts()
            let rows = try await connection.query(
                """
                SELECT status, priority, count(*), min(created_at_ms) FROM tickets WHERE status <> 'resolved' GROUP BY status, priority
                """, logger: logger)
            for try await (status, priority, count, created) in rows.decode((TicketRecord.Status, Int64, Int64, Int64).self) {
                counts.tickets.append(.init(status: status, priority: Int(priority), count: count))
                if status == .open { counts.oldestOpenTicketCreatedAtMs = min(counts.oldestOpenTicketCreatedAtMs ?? created, created) }
            }
            for try await count in try await connection.query(
                "SELECT count(*) FROM approvals WHERE status = 'pending'", logger: logger
            ).decode(Int64.self) { counts.pendingApprovals = count }
            for try await count in try await connection.query(
                "SELECT count(*) FROM pending_actions WHERE status = 'pending'", logger: logger
            ).decode(Int64.self) { counts.undecidedActions = count }
            return counts
        }
    }

    /// Admin/Backup copies an SQLite store; a PostgreSQL database is backed
    /// up with its own tools, which a file beside the server cannot replace.
    public func backupCopy() async throws(StoreError) -> (path: String, format: String) {
        throw StoreError.unsupported(
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
    let feedBase: Int64
    /// The next event's index in this transaction (its feed position's low bits).
    private(set) var eventIndex: Int64 = 0
    /// The transaction's id, once its first event gave it away (for `PostgresStore.committed`).
    private(set) var transactionID: Int64?
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

    init(connection: PostgresConnection, logger: Logger, notifyActions: Set<String>, feedBase: Int64) {
        self.connection = connection
        self.logger = logger
        self.notifyActions = notifyActions
        self.feedBase = feedBase
    }

    /// Events one transaction may append: an index takes 20 bits of a position.
    static let maximumEvents: Int64 = 1 << 20

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
        var found: (Int64, ByteBuffer?, Int64)?
        for try await row in try await connection.execute(LockSessionStatement(tenant: tenant.rawValue, id: id), logger: logger) {
            found = row
        }
        guard let (sequence, hash, version) = found else { return nil }
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

    /// Appends one event to a locked session's chain and moves its head,
    /// in one statement (with `state`, the new state and version too): the
    /// event's feed position is this transaction's id, then its index here.
    func append(
        tenant: TenantID, sessionID: String, event: NewEvent, state: (version: Int64, json: String, updatedAtMs: Int64)? = nil
    ) async throws -> EventRecord {
        let head = try await requireSession(tenant: tenant, id: sessionID)
        let sequence = head.sequence + 1
        let hash = EventChain.hash(tenant: tenant, sessionID: sessionID, sequence: sequence, event: event, previousHash: head.hash)
        let index = eventIndex
        guard index < Self.maximumEvents else { throw StoreError.limitReached("a write may append at most \(Self.maximumEvents) events") }
        eventIndex += 1
        let statement = AppendEventStatement(
            tenant: tenant.rawValue, sessionID: sessionID, sequence: sequence, feedBase: feedBase, index: index,
            event: .init(
                action: event.action, actor: event.actor, reasoning: event.reasoning, detailsJSON: event.detailsJSON,
                traceparent: event.traceparent, occurredAtMs: event.occurredAtMs),
            previousHash: head.hash, hash: hash, state: state)
        var appended: Int64?
        for try await position in try await connection.execute(statement, logger: logger) { appended = position }
        guard let position = appended else { throw StoreError.failure("an event insert returned no position") }
        if notifyActions.contains(event.action) { wake.insert(tenant.rawValue) }
        transactionID = (position >> 20) - feedBase
        heads[SessionKey(tenant: tenant.rawValue, id: sessionID)] = Head(sequence: sequence, hash: hash, version: state?.version ?? head.version)
        return EventRecord(
            tenant: tenant, sessionID: sessionID, sequence: sequence, event: event, previousHash: head.hash, hash: hash,
            feedPosition: position)
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
