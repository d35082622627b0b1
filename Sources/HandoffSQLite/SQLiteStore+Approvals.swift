// Handoff — approval chains and SLA breaches in the SQLite store. An approval
// and the pending action it decides are written in one transaction; a chain's
// steps are kept as JSON beside the columns the desk queries by.

import Foundation
import GRDB
public import HandoffCore

extension SQLiteStore {
    public func escalationCounts(tenant: TenantID, since: Int64, until: Int64) async throws(StoreError) -> (tickets: Int64, sessions: Int64) {
        do {
            return try await read { db in
                let tickets =
                    try Int64.fetchOne(
                        db.cachedStatement(sql: "SELECT count(*) FROM tickets WHERE tenant_id = ? AND created_at_ms >= ? AND created_at_ms < ?"),
                        arguments: [tenant.rawValue, since, until]) ?? 0
                let sessions =
                    try Int64.fetchOne(
                        db.cachedStatement(sql: "SELECT count(*) FROM sessions WHERE tenant_id = ? AND created_at_ms >= ? AND created_at_ms < ?"),
                        arguments: [tenant.rawValue, since, until]) ?? 0
                return (tickets, sessions)
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func unresolvedTicketID(tenant: TenantID, sessionID: String) async throws(StoreError) -> String? {
        do {
            return try await read { db in
                try String.fetchOne(
                    db.cachedStatement(sql: "SELECT id FROM tickets WHERE tenant_id = ? AND session_id = ? AND status IN ('open', 'claimed')"),
                    arguments: [tenant.rawValue, sessionID])
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func unresolvedTicketID(tenant: TenantID, sessionID: String, pendingActionID: String) async throws(StoreError) -> String? {
        do {
            return try await read { db in
                try Row.fetchOne(
                    db.cachedStatement(sql: Lookup.unresolvedTicketOfAction), arguments: [tenant.rawValue, sessionID, pendingActionID]
                ).map { try Self.ticket($0, tenant: tenant).id }
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func unrecordedSLABreaches(now: Int64, limit: Int) async throws(StoreError) -> [TicketRecord] {
        do {
            return try await read { db in
                try Row.fetchAll(
                    db.cachedStatement(
                        sql: """
                            \(Self.ticketColumns)
                            WHERE status = 'open' AND sla_breach_recorded = 0 AND sla_deadline_ms <= ?
                            ORDER BY sla_deadline_ms LIMIT ?
                            """),
                    arguments: [now, limit]
                ).map { try Self.ticket($0, tenant: TenantID($0[Self.ticketTenantColumn])) }
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func openApproval(
        _ approval: ApprovalRecord, action: PendingActionRecord, events: [NewEvent]
    ) async throws(StoreError) -> (approval: ApprovalRecord, created: Bool, events: [EventRecord]) {
        try await write { db in
            if let row = try Row.fetchOne(
                db.cachedStatement(sql: "\(Self.approvalColumns) WHERE tenant_id = ? AND pending_action_id = ? AND status = 'pending'"),
                arguments: [approval.tenant.rawValue, approval.pendingActionID])
            {
                return (try Self.approval(row, tenant: approval.tenant), false, [])
            }
            _ = try Self.writePendingAction(db, action)
            try Self.insertApproval(db, approval)
            let appended = try Self.appendAll(db, tenant: approval.tenant, sessionID: approval.sessionID, events: events)
            return (approval, true, appended)
        }
    }

    static func insertApproval(_ db: Database, _ approval: ApprovalRecord) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO approvals (tenant_id, id, session_id, pending_action_id, action_json, edited_action_json, amount, currency,
                    reason, requester, status, steps_json, current_level, due_at_ms, created_at_ms, decided_at_ms, revision, current_approvers)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            approval.tenant.rawValue, approval.id, approval.sessionID, approval.pendingActionID, approval.actionJSON,
            approval.editedActionJSON, approval.amount, approval.currency, approval.reason, approval.requester, approval.status,
            ApprovalRecord.encodeSteps(approval.steps), approval.currentLevel, approval.dueAtMs, approval.createdAtMs, approval.decidedAtMs,
            approval.revision, approval.currentApproversKey,
        ])
    }

    public func approval(tenant: TenantID, id: String) async throws(StoreError) -> ApprovalRecord? {
        do {
            return try await read { db in
                try Row.fetchOne(
                    db.cachedStatement(sql: "\(Self.approvalColumns) WHERE tenant_id = ? AND id = ?"), arguments: [tenant.rawValue, id]
                ).map { try Self.approval($0, tenant: tenant) }
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func pendingApprovalID(tenant: TenantID, pendingActionID: String) async throws(StoreError) -> String? {
        do {
            return try await read { db in
                try String.fetchOne(
                    db.cachedStatement(sql: "SELECT id FROM approvals WHERE tenant_id = ? AND pending_action_id = ? AND status = 'pending'"),
                    arguments: [tenant.rawValue, pendingActionID])
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func pendingApprovals(tenant: TenantID, query: ApprovalQuery) async throws(StoreError) -> [ApprovalRecord] {
        guard let (text, bound) = Self.pendingApprovalListing(tenant: tenant, query: query) else { return [] }
        do {
            return try await read { db in try Row.fetchAll(db, sql: text, arguments: bound).map { try Self.approval($0, tenant: tenant) } }
        } catch {
            throw Self.storeError(error)
        }
    }

    /// ListPendingApprovals' statement: in approvals_listing's order (soonest
    /// due first, never-expiring last), so a page reads rows in index order up
    /// to its limit instead of sorting the tenant's pending approvals. nil
    /// when nothing can match (no approver entry routes to the caller).
    static func pendingApprovalListing(tenant: TenantID, query: ApprovalQuery) -> (sql: String, arguments: StatementArguments)? {
        var sql = "\(Self.approvalColumns) INDEXED BY approvals_listing WHERE tenant_id = ? AND status = 'pending'"
        var arguments: StatementArguments = [tenant.rawValue]
        if let session = query.sessionID {
            sql += " AND session_id = ?"
            arguments += [session]
        }
        if let due = query.dueAfterMs {
            sql += " AND (due_at_ms = 0 OR due_at_ms > ?)"
            arguments += [due]
        }
        if let requester = query.notRequestedBy {
            sql += " AND requester != ?"
            arguments += [requester]
        }
        if let entries = query.currentApprovers {
            guard !entries.isEmpty else { return nil }
            sql += " AND (" + entries.map { _ in "instr(current_approvers, ?) > 0" }.joined(separator: " OR ") + ")"
            for entry in entries { arguments += [ApprovalRecord.approverKey(entry)] }
        }
        if let after = query.after {
            sql += " AND (\(Self.dueKey), created_at_ms, id) > (?, ?, ?)"
            arguments += [after.dueAtMs == 0 ? Int64.max : after.dueAtMs, after.createdAtMs, after.id]
        }
        sql += " ORDER BY \(Self.dueKey), created_at_ms, id LIMIT ?"
        arguments += [query.limit]
        return (sql, arguments)
    }

    /// When an approval's current step expires, with never last: the listing's first key.
    static let dueKey = "(CASE WHEN due_at_ms = 0 THEN 9223372036854775807 ELSE due_at_ms END)"

    public func dueApprovals(now: Int64, limit: Int) async throws(StoreError) -> [ApprovalRecord] {
        do {
            return try await read { db in
                try Row.fetchAll(
                    db.cachedStatement(
                        sql: """
                            \(Self.approvalColumns) WHERE status = 'pending' AND due_at_ms > 0 AND due_at_ms <= ?
                            ORDER BY due_at_ms LIMIT ?
                            """),
                    arguments: [now, limit]
                    // A row that does not decode is skipped, not allowed to stop every tenant's sweep.
                ).compactMap { try? Self.approval($0, tenant: TenantID($0[Self.approvalTenantColumn])) }
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func updateApproval(
        _ approval: ApprovalRecord, action: PendingActionRecord?, events: [NewEvent]
    ) async throws(StoreError) -> (approval: ApprovalRecord, action: PendingActionRecord?, sessionStatus: SessionRecord.Status, events: [EventRecord])
    {
        try await write { db in
            // The approval's revision first: a concurrent decision is then
            // refused before anything changed (no batch to undo).
            var stored = approval
            stored.revision = approval.revision + 1
            try db.cachedStatement(
                sql: """
                    UPDATE approvals SET edited_action_json = ?, status = ?, steps_json = ?, current_level = ?, due_at_ms = ?,
                        decided_at_ms = ?, revision = ?, current_approvers = ?
                    WHERE tenant_id = ? AND id = ? AND revision = ?
                    """
            ).execute(arguments: [
                stored.editedActionJSON, stored.status, ApprovalRecord.encodeSteps(stored.steps), stored.currentLevel, stored.dueAtMs,
                stored.decidedAtMs, stored.revision, stored.currentApproversKey, approval.tenant.rawValue, approval.id, approval.revision,
            ])
            if db.changesCount == 0 {
                try Self.refuseStaleRevision(db, table: "approvals", tenant: approval.tenant, id: approval.id, read: approval.revision)
            }
            let writtenAction = try action.map { try Self.writePendingAction(db, $0) }
            let appended = try Self.appendAll(db, tenant: approval.tenant, sessionID: approval.sessionID, events: events)
            return (stored, writtenAction, try Self.refreshSessionStatus(db, tenant: approval.tenant, sessionID: approval.sessionID), appended)
        }
    }

    /// Withdraws the pending approval of an action settled some other way
    /// (an operator's decision, an expiry), with an `approval.cancelled` event.
    static func cancelApprovals(_ db: Database, of action: PendingActionRecord, actor: String, at now: Int64) throws {
        guard !action.isUndecided,
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "\(approvalColumns) WHERE tenant_id = ? AND pending_action_id = ? AND status = 'pending'"),
                arguments: [action.tenant.rawValue, action.id])
        else { return }
        guard
            let (approval, event) = StoreRules.cancellation(
                of: try Self.approval(row, tenant: action.tenant), settled: action, actor: actor, at: now)
        else { return }
        try db.cachedStatement(
            sql: """
                UPDATE approvals SET status = ?, steps_json = ?, current_level = ?, due_at_ms = 0, decided_at_ms = ?, revision = ?,
                    current_approvers = ''
                WHERE tenant_id = ? AND id = ?
                """
        ).execute(arguments: [
            approval.status, ApprovalRecord.encodeSteps(approval.steps), approval.currentLevel, approval.decidedAtMs, approval.revision,
            action.tenant.rawValue, approval.id,
        ])
        _ = try append(db, tenant: action.tenant, sessionID: action.sessionID, event: event)
    }

    static let approvalColumns = """
        SELECT id, session_id, pending_action_id, action_json, edited_action_json, amount, currency, reason, requester, status,
            steps_json, current_level, created_at_ms, decided_at_ms, revision, tenant_id
        FROM approvals
        """
    /// Where `approvalColumns` puts the tenant (for queries across tenants).
    static let approvalTenantColumn = 15

    static func approval(_ row: Row, tenant: TenantID) throws -> ApprovalRecord {
        var record = ApprovalRecord(
            tenant: tenant, id: row[0], sessionID: row[1], pendingActionID: row[2], actionJSON: row[3], amount: row[5],
            currency: row[6], reason: row[7], requester: row[8], status: try status(row, 9, of: "approval"),
            steps: try ApprovalRecord.decodeSteps(row[10]),
            currentLevel: row[11], createdAtMs: row[12])
        record.editedActionJSON = row[4]
        record.decidedAtMs = row[13]
        record.revision = row[14]
        return record
    }
}
