// Handoff — the embedded default store: one SQLite file in WAL mode with
// synchronous=FULL, through GRDB. A write returns only after its transaction
// committed (a queued assessment says so in its completion, and reads of
// events wait for it first); the version check and the event append share
// that transaction.

import Foundation
import GRDB
public import HandoffCore
import Synchronization

/// Sessions and their event chains in a SQLite file.
public final class SQLiteStore: Store {
    let pool: DatabasePool
    let writer: GroupCommitWriter
    let writeHealth = WriteHealth()

    /// Tells `observer` when writes start failing for a reason of the store
    /// (a full volume, an I/O error; not a refusal such as a stale version),
    /// with the first cause, and when a write succeeds again: once per
    /// episode, so a log stays readable while every write fails.
    public func observeWrites(_ observer: @escaping @Sendable (WriteHealth.Change) -> Void) {
        writeHealth.observe(observer)
    }

    /// Opens (creating if needed) the database at `path` and brings its schema
    /// up to date.
    /// - Parameter cacheMiB: SQLite's page cache for the writer connection;
    ///   each reader gets a quarter (at least 2 MiB); larger than SQLite's
    ///   default, which made every page past 2 MiB a pread (docs/STORAGE.md).
    /// - Parameter checkpointPages: the writer copies the WAL back into the
    ///   database once it holds this many pages (SQLite's wal_autocheckpoint):
    ///   rarer checkpoints write less per write (docs/STORAGE.md); the WAL
    ///   grows to about that many 4 KiB pages between them.
    public init(path: String, cacheMiB: Int = defaultCacheMiB, checkpointPages: Int = defaultCheckpointPages) throws(StoreError) {
        var configuration = Configuration()
        // A lock held for a moment by another connection (the last one of a
        // closing pool checkpoints and removes the WAL under an exclusive
        // lock; a backup or sqlite3 reading the file) is waited for, up to
        // 5 s, instead of failing at once with "database is locked".
        configuration.busyMode = .timeout(5)
        let writerKiB = max(2, cacheMiB) * 1024
        let readerKiB = max(2, cacheMiB / 4) * 1024
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA cache_size = -\(db.configuration.readonly ? readerKiB : writerKiB)")
        }
        // A backup's copy is made beside the store; one a crash cut short is of no use.
        Self.removeInterruptedBackups(beside: path)
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
    public var _testOnly_waitingForRoom: Int { writer.waitingForRoom }

}
