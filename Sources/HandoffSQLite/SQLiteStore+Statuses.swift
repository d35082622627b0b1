// Handoff — the SQLite store: records' statuses bound and read as their raw
// values (GRDB's support for String-backed enums).

public import GRDB
import HandoffCore

extension SessionRecord.Status: DatabaseValueConvertible, StatementBinding {}
extension PendingActionRecord.Status: DatabaseValueConvertible, StatementBinding {}
extension TicketRecord.Status: DatabaseValueConvertible, StatementBinding {}
extension ApprovalRecord.Status: DatabaseValueConvertible, StatementBinding {}
