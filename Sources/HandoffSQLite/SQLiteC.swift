// Handoff — the durable write's hot statements, bound and stepped with
// SQLite's C API on statements GRDB prepared and keeps in its cache. This is
// the one file of HandoffSQLite that calls SQLite directly; everything else
// goes through GRDB.
//
// Why: the group-commit writer's thread bounds durable writes, and perf put
// about a quarter of a write's time on it in GRDB's argument handling
// (StatementArguments built from `DatabaseValueConvertible` existentials,
// converted again to DatabaseValues, and a Row per fetch) for the three
// statements every UpdateState runs. Here each value is bound as what it is.
//
// These statements bypass GRDB's statement hooks: a TransactionObserver or
// ValueObservation would not see them (Handoff registers none).

import GRDB
import GRDBSQLite

/// One of GRDB's cached statements, used directly: bind every parameter,
/// `step()` or `run()`, read columns while on a row. It is reset when
/// stepping ends (done or failed) and before it is bound again.
struct HotStatement {
    private let statement: Statement
    private let connection: OpaquePointer?

    /// SQLite copies a bound text or blob at once (SQLITE_TRANSIENT).
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ db: Database, _ sql: String) throws {
        // GRDB checks this before each of its statements. SQLite ends a
        // transaction on its own after some errors (an I/O error, a full
        // disk, an interrupt); a statement run after that would commit by
        // itself, outside the batch.
        guard db.isInsideTransaction else {
            throw DatabaseError(resultCode: .SQLITE_ABORT, message: "the transaction was rolled back", sql: sql)
        }
        statement = try db.cachedStatement(sql: sql)
        connection = db.sqliteConnection
        sqlite3_reset(statement.sqliteStatement)
    }

    private var handle: OpaquePointer { statement.sqliteStatement }

    /// As a C string, exactly as GRDB binds text, so that both paths store
    /// the same thing. Text never holds U+0000 here: protobuf-c's strings are
    /// C strings, and the server's decoder keeps what comes before the first
    /// (docs/PROTOCOL.md, "No U+0000").
    func bind(_ index: Int32, _ value: String) throws {
        try check(sqlite3_bind_text(handle, index, value, -1, Self.transient))
    }

    func bind(_ index: Int32, _ value: Int64) throws {
        try check(sqlite3_bind_int64(handle, index, value))
    }

    func bind(_ index: Int32, _ value: Int64?) throws {
        try check(value.map { sqlite3_bind_int64(handle, index, $0) } ?? sqlite3_bind_null(handle, index))
    }

    func bind(_ index: Int32, _ bytes: [UInt8]) throws {
        try check(
            bytes.withUnsafeBytes { buffer in
                if let base = buffer.baseAddress {
                    sqlite3_bind_blob(handle, index, base, Int32(buffer.count), Self.transient)
                } else {
                    sqlite3_bind_zeroblob(handle, index, 0)
                }
            })
    }

    /// A bind that failed (a wrong index, no memory, too big) is an error, not a NULL.
    private func check(_ code: Int32) throws {
        guard code != SQLITE_OK else { return }
        throw error(code)
    }

    /// The connection's message for `code`; read before a reset clears it.
    private func error(_ code: Int32) -> DatabaseError {
        let message = connection.map { String(cString: sqlite3_errmsg($0)) }
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
    }

    /// Steps once: true on a row (read it, then step again or `reset()`),
    /// false when done (the statement is reset).
    func step() throws -> Bool {
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW:
            return true
        case SQLITE_DONE:
            sqlite3_reset(handle)
            return false
        default:
            let failure = error(code)
            sqlite3_reset(handle)
            throw failure
        }
    }

    /// Steps to the end of a statement that returns no rows.
    func run() throws {
        while try step() {}
    }

    func reset() {
        sqlite3_reset(handle)
    }

    func int64(_ column: Int32) -> Int64 {
        sqlite3_column_int64(handle, column)
    }

    /// nil for NULL.
    func optionalInt64(_ column: Int32) -> Int64? {
        sqlite3_column_type(handle, column) == SQLITE_NULL ? nil : sqlite3_column_int64(handle, column)
    }

    /// nil for NULL.
    func bytes(_ column: Int32) -> [UInt8]? {
        guard sqlite3_column_type(handle, column) != SQLITE_NULL else { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let base = sqlite3_column_blob(handle, column) else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: base, count: count))
    }
}
