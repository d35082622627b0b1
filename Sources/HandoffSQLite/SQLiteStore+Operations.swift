// Handoff — the SQLite store for its operators: what the desks hold (read
// on each metrics scrape) and an online backup.

import Foundation
import GRDB
public import HandoffCore

extension SQLiteStore {
    public func deskCounts() async throws(StoreError) -> DeskCounts {
        do {
            return try await read { db in
                var counts = DeskCounts()
                // Unresolved tickets only (a partial index holds them).
                let rows = try Row.fetchAll(
                    db.cachedStatement(
                        sql: """
                            SELECT status, priority, count(*), min(created_at_ms) FROM tickets INDEXED BY tickets_unresolved
                            WHERE status != 'resolved' GROUP BY status, priority
                            """))
                for row in rows {
                    let status: TicketRecord.Status = try Self.status(row, 0, of: "ticket")
                    counts.tickets.append(.init(status: status, priority: row[1], count: row[2]))
                    if status == .open {
                        let created: Int64 = row[3]
                        counts.oldestOpenTicketCreatedAtMs = min(counts.oldestOpenTicketCreatedAtMs ?? created, created)
                    }
                }
                counts.pendingApprovals =
                    try Int64.fetchOne(
                        db.cachedStatement(sql: "SELECT count(*) FROM approvals INDEXED BY approvals_one_pending WHERE status = 'pending'")) ?? 0
                counts.undecidedActions =
                    try Int64.fetchOne(
                        db.cachedStatement(sql: "SELECT count(*) FROM pending_actions INDEXED BY pending_actions_undecided WHERE status = 'pending'"))
                    ?? 0
                return counts
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    /// Removes what a backup interrupted by a crash left beside the store at
    /// `path` (its partial copy and that copy's journal).
    static func removeInterruptedBackups(beside path: String) {
        let directory = (path as NSString).deletingLastPathComponent
        let prefix = (path as NSString).lastPathComponent + ".backup-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory)) ?? []
        where name.hasPrefix(prefix) {
            unlink((directory as NSString).appendingPathComponent(name))
        }
    }

    /// `VACUUM INTO` on a reader: one read transaction, so the copy is the
    /// store as of one commit, while the writer goes on. Writes answered
    /// before the call (queued automated assessments too) commit first.
    public func backupCopy() async throws(StoreError) -> (path: String, format: String) {
        let path = pool.path + ".backup-\(UUID().uuidString.lowercased())"
        await writer.settle()
        do {
            try await pool.unsafeRead { db in  // no transaction open: VACUUM INTO takes its own read transaction
                // The copy is written through this connection's page cache:
                // a small one for it, so a backup does not grow memory with the store.
                let cache = try Int.fetchOne(db, sql: "PRAGMA cache_size") ?? -2000
                try db.execute(sql: "PRAGMA cache_size = -2048")
                defer { try? db.execute(sql: "PRAGMA cache_size = \(cache)") }
                try db.execute(sql: "VACUUM INTO ?", arguments: [path])
            }
        } catch {
            unlink(path)
            if let error = error as? DatabaseError, error.resultCode == .SQLITE_FULL {
                throw StoreError.full("the backup did not fit")
            }
            throw StoreError.failure("backup: \(error)")
        }
        return (path, "sqlite3")
    }
}
