// Handoff — the SQLite store: records' statuses bound and read as their raw
// values (GRDB's support for String-backed enums).

public import GRDB
import HandoffCore

extension SessionRecord.Status: DatabaseValueConvertible, StatementBinding {}
extension PendingActionRecord.Status: DatabaseValueConvertible, StatementBinding {}
extension TicketRecord.Status: DatabaseValueConvertible, StatementBinding {}
extension ApprovalRecord.Status: DatabaseValueConvertible, StatementBinding {}

extension SQLiteStore {
    /// A status read back from column `index`: a word this version does not
    /// know (a newer version's, or a hand edit) is a store failure naming
    /// it, not a trap (GRDB's non-optional `row[i]` traps on a value it
    /// cannot convert).
    static func status<S: RawRepresentable>(_ row: Row, _ index: Int, of record: String) throws -> S where S.RawValue == String {
        let word: String = row[index]
        guard let status = S(rawValue: word) else {
            throw StoreError.failure("a stored \(record) has status '\(word)', which this version of handoffd does not know")
        }
        return status
    }
}
