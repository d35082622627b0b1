// Handoff — the PostgreSQL store: records' statuses bound and read as their
// raw values (PostgresNIO's support for String-backed enums; an unknown
// value read back is a decoding error, not a crash).

import HandoffCore
public import PostgresNIO

extension SessionRecord.Status: PostgresCodable {}
extension PendingActionRecord.Status: PostgresCodable {}
extension TicketRecord.Status: PostgresCodable {}
extension ApprovalRecord.Status: PostgresCodable {}
