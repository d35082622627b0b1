// Handoff — the PostgreSQL store: escalation tickets and approval chains.
// Placement and cancellation are StoreRules' (shared with SQLite); this file
// only reads and writes, each write with its session's row locked first.

import Foundation
public import HandoffCore
import PostgresNIO

extension PostgresStore {
    // MARK: Tickets

    static let ticketColumns = """
        tenant_id, id, session_id, pending_action_id, reason, priority, status, created_by, assigned_to, created_at_ms,
        claimed_at_ms, resolved_at_ms, sla_deadline_ms, outcome, resolution_note, snapshot_json, revision, sla_breach_recorded
        """

    static func ticket(_ row: PostgresRow) throws -> TicketRecord {
        let r = row.makeRandomAccess()
        var record = TicketRecord(
            tenant: TenantID(try r.value("tenant_id")), id: try r.value("id"), sessionID: try r.value("session_id"),
            pendingActionID: try r.value("pending_action_id"), reason: try r.value("reason"), priority: Int(try r.value("priority", Int64.self)),
            status: try r.value("status"), createdBy: try r.value("created_by"), assignedTo: try r.value("assigned_to"),
            createdAtMs: try r.value("created_at_ms"), slaDeadlineMs: try r.value("sla_deadline_ms"), snapshotJSON: try r.value("snapshot_json"))
        record.claimedAtMs = try r.value("claimed_at_ms")
        record.resolvedAtMs = try r.value("resolved_at_ms")
        record.outcome = Int(try r.value("outcome", Int64.self))
        record.resolutionNote = try r.value("resolution_note")
        record.revision = try r.value("revision")
        record.slaBreachRecorded = try r.value("sla_breach_recorded")
        return record
    }

    public func openTicket(
        _ ticket: TicketRecord, turn: TurnRecord, event: NewEvent
    ) async throws(StoreError) -> (ticket: TicketRecord, created: Bool, sessionStatus: SessionRecord.Status, events: [EventRecord]) {
        try await write { transaction in
            try await transaction.requireSession(tenant: ticket.tenant, id: ticket.sessionID)
            return try await Self.placeTicket(transaction, ticket, turn: turn, event: event)
        }
    }

    /// `openTicket` inside a transaction whose session row is locked (AssessAction's calls it too).
    static func placeTicket(
        _ transaction: Transaction, _ ticket: TicketRecord, turn: TurnRecord, event: NewEvent
    ) async throws -> (ticket: TicketRecord, created: Bool, sessionStatus: SessionRecord.Status, events: [EventRecord]) {
        let tenant = ticket.tenant
        var sameAction: TicketRecord?
        if !ticket.pendingActionID.isEmpty {
            sameAction = try await transaction.rows(
                """
                SELECT \(unescaped: Self.ticketColumns) FROM tickets WHERE tenant_id = \(tenant.rawValue)
                    AND session_id = \(ticket.sessionID) AND pending_action_id = \(ticket.pendingActionID) AND status <> 'resolved'
                """
            ).first.map(Self.ticket)
        }
        let active = try await transaction.rows(
            """
            SELECT \(unescaped: Self.ticketColumns) FROM tickets WHERE tenant_id = \(tenant.rawValue)
                AND session_id = \(ticket.sessionID) AND status IN ('open', 'claimed')
            """
        ).first.map(Self.ticket)
        switch StoreRules.place(ticket, event: event, sameAction: sameAction, active: active) {
        case .existing(let found):
            return (found, false, try await Self.sessionStatus(transaction, tenant: tenant, sessionID: ticket.sessionID), [])
        case .open(let opened, let event):
            try await Self.insertTicket(transaction, opened)
            _ = try await Self.insertTurn(transaction, tenant: tenant, turn)
            let appended = try await transaction.append(tenant: tenant, sessionID: ticket.sessionID, event: event)
            return (opened, true, try await Self.refreshSessionStatus(transaction, tenant: tenant, sessionID: ticket.sessionID), [appended])
        case .attach(let attached, let event):
            try await transaction.rows(
                """
                UPDATE tickets SET pending_action_id = \(attached.pendingActionID), revision = \(attached.revision)
                WHERE tenant_id = \(tenant.rawValue) AND id = \(attached.id)
                """)
            let appended = try await transaction.append(tenant: tenant, sessionID: ticket.sessionID, event: event)
            return (attached, false, try await Self.sessionStatus(transaction, tenant: tenant, sessionID: ticket.sessionID), [appended])
        case .wait(let waiting, let event):
            try await Self.insertTicket(transaction, waiting)
            let appended = try await transaction.append(tenant: tenant, sessionID: ticket.sessionID, event: event)
            return (waiting, true, try await Self.sessionStatus(transaction, tenant: tenant, sessionID: ticket.sessionID), [appended])
        }
    }

    static func insertTicket(_ transaction: Transaction, _ t: TicketRecord) async throws {
        try await transaction.rows(
            """
            INSERT INTO tickets (tenant_id, id, session_id, pending_action_id, reason, priority, status, created_by, assigned_to,
                created_at_ms, claimed_at_ms, resolved_at_ms, sla_deadline_ms, outcome, resolution_note, snapshot_json, revision,
                sla_breach_recorded, queue_breached)
            VALUES (\(t.tenant.rawValue), \(t.id), \(t.sessionID), \(t.pendingActionID), \(t.reason), \(Int64(t.priority)), \(t.status),
                \(t.createdBy), \(t.assignedTo), \(t.createdAtMs), \(t.claimedAtMs), \(t.resolvedAtMs), \(t.slaDeadlineMs),
                \(Int64(t.outcome)), \(t.resolutionNote), \(t.snapshotJSON), \(t.revision), \(t.slaBreachRecorded),
                \(t.status == .open && t.slaBreachRecorded))
            """)
    }

    public func ticket(tenant: TenantID, id: String) async throws(StoreError) -> TicketRecord? {
        try await read { [self] connection in
            try await connection.query(
                "SELECT \(unescaped: Self.ticketColumns) FROM tickets WHERE tenant_id = \(tenant.rawValue) AND id = \(id)", logger: logger
            ).collect().first.map(Self.ticket)
        }
    }

    public func escalationCounts(tenant: TenantID, since: Int64, until: Int64) async throws(StoreError) -> (tickets: Int64, sessions: Int64) {
        try await read { [self] connection in
            let row = try await connection.query(
                """
                SELECT (SELECT count(*) FROM tickets WHERE tenant_id = \(tenant.rawValue) AND created_at_ms >= \(since) AND created_at_ms < \(until)),
                    (SELECT count(*) FROM sessions WHERE tenant_id = \(tenant.rawValue) AND created_at_ms >= \(since) AND created_at_ms < \(until))
                """, logger: logger
            ).collect()
            guard let first = row.first else { return (0, 0) }
            let (tickets, sessions) = try first.decode((Int64, Int64).self)
            return (tickets, sessions)
        }
    }

    public func escalationWindow(tenant: TenantID, since: Int64, until: Int64) async throws(StoreError) -> (tickets: [TicketRecord], sessions: Int64)
    {
        let tickets = try await read { [self] connection in
            try await connection.query(
                """
                SELECT \(unescaped: Self.ticketColumns) FROM tickets
                WHERE tenant_id = \(tenant.rawValue) AND created_at_ms >= \(since) AND created_at_ms < \(until)
                """, logger: logger
            ).collect().map(Self.ticket)
        }
        return (tickets, try await escalationCounts(tenant: tenant, since: since, until: until).sessions)
    }

    public func tickets(tenant: TenantID, query: TicketQuery) async throws(StoreError) -> [TicketRecord] {
        var builder = QueryBuilder()
        var clauses = ["tenant_id = \(builder.bind(tenant.rawValue))"]
        if !query.statuses.isEmpty { clauses.append("status = ANY(\(builder.bind(query.statuses.map(\.rawValue))))") }
        if !query.priorities.isEmpty { clauses.append("priority = ANY(\(builder.bind(query.priorities.map { Int64($0) })))") }
        if let assignee = query.assignedTo { clauses.append("assigned_to = \(builder.bind(assignee))") }
        builder.sql = """
            SELECT \(Self.ticketColumns) FROM tickets WHERE \(clauses.joined(separator: " AND "))
            ORDER BY queue_breached DESC, priority DESC, created_at_ms ASC, id ASC
            LIMIT \(builder.bind(Int64(query.limit))) OFFSET \(builder.bind(Int64(query.offset)))
            """
        let built = builder.query
        return try await read { [self] connection in try await connection.query(built, logger: logger).collect().map(Self.ticket) }
    }

    public func updateTicket(
        _ ticket: TicketRecord, turn: TurnRecord?, events: [NewEvent]
    ) async throws(StoreError) -> (ticket: TicketRecord, turn: TurnRecord?, sessionStatus: SessionRecord.Status, events: [EventRecord]) {
        try await write { transaction in
            let tenant = ticket.tenant
            try await transaction.requireSession(tenant: tenant, id: ticket.sessionID)
            var s = ticket
            s.revision = ticket.revision + 1
            let written = try await transaction.rows(
                """
                UPDATE tickets SET status = \(s.status), assigned_to = \(s.assignedTo), claimed_at_ms = \(s.claimedAtMs),
                    resolved_at_ms = \(s.resolvedAtMs), outcome = \(Int64(s.outcome)), resolution_note = \(s.resolutionNote),
                    revision = \(s.revision), sla_breach_recorded = \(s.slaBreachRecorded),
                    queue_breached = \(s.status == .open && s.slaBreachRecorded)
                WHERE tenant_id = \(tenant.rawValue) AND id = \(ticket.id) AND revision = \(ticket.revision)
                RETURNING 1
                """)
            if written.isEmpty {
                try await Self.refuseStaleRevision(transaction, table: "tickets", tenant: tenant, id: ticket.id, read: ticket.revision)
            }
            var writtenTurn: TurnRecord?
            if let turn { writtenTurn = try await Self.insertTurn(transaction, tenant: tenant, turn) }
            var appended: [EventRecord] = []
            for event in events { appended.append(try await transaction.append(tenant: tenant, sessionID: ticket.sessionID, event: event)) }
            if s.status == .resolved,
                let opened = try await Self.openNextWaiting(
                    transaction, tenant: tenant, sessionID: ticket.sessionID, after: s, at: events.last?.occurredAtMs ?? s.resolvedAtMs)
            {
                appended.append(opened)
            }
            return (s, writtenTurn, try await Self.refreshSessionStatus(transaction, tenant: tenant, sessionID: ticket.sessionID), appended)
        }
    }

    /// When a session has no open or claimed ticket left, opens its oldest
    /// waiting one (`StoreRules.opening`) and appends `ticket.opened`.
    static func openNextWaiting(
        _ transaction: Transaction, tenant: TenantID, sessionID: String, after resolved: TicketRecord, at now: Int64
    ) async throws -> EventRecord? {
        let active = try await transaction.rows(
            """
            SELECT 1 FROM tickets WHERE tenant_id = \(tenant.rawValue) AND session_id = \(sessionID) AND status IN ('open', 'claimed')
            """)
        guard active.isEmpty,
            let next = try await transaction.rows(
                """
                SELECT \(unescaped: ticketColumns) FROM tickets WHERE tenant_id = \(tenant.rawValue) AND session_id = \(sessionID)
                    AND status = 'waiting' ORDER BY created_at_ms, id LIMIT 1
                """
            ).first.map(ticket)
        else { return nil }
        let (opened, event) = StoreRules.opening(next, after: resolved, at: now)
        try await transaction.rows(
            """
            UPDATE tickets SET status = \(opened.status), revision = \(opened.revision), queue_breached = sla_breach_recorded
            WHERE tenant_id = \(tenant.rawValue) AND id = \(opened.id)
            """)
        return try await transaction.append(tenant: tenant, sessionID: sessionID, event: event)
    }

    /// After an update over a revision matched no row: NOT_FOUND, or the version conflict with the revision now stored.
    static func refuseStaleRevision(_ transaction: Transaction, table: String, tenant: TenantID, id: String, read: Int64) async throws -> Never {
        // `table` is one of this module's literals, never caller input.
        let current = try await transaction.rows(
            "SELECT revision FROM \(unescaped: table) WHERE tenant_id = \(tenant.rawValue) AND id = \(id)"
        ).first?.decode(Int64.self)
        guard let current else { throw StoreError.missing(kind: table == "tickets" ? "ticket" : "approval", id: id) }
        throw StoreError.versionConflict(expected: read, current: current)
    }

    public func unresolvedTicketID(tenant: TenantID, sessionID: String) async throws(StoreError) -> String? {
        try await read { [self] connection in
            try await connection.query(
                """
                SELECT id FROM tickets WHERE tenant_id = \(tenant.rawValue) AND session_id = \(sessionID) AND status IN ('open', 'claimed')
                """, logger: logger
            ).collect().first?.decode(String.self)
        }
    }

    public func unresolvedTicketID(tenant: TenantID, sessionID: String, pendingActionID: String) async throws(StoreError) -> String? {
        try await read { [self] connection in
            try await connection.query(
                """
                SELECT id FROM tickets WHERE tenant_id = \(tenant.rawValue) AND session_id = \(sessionID)
                    AND pending_action_id = \(pendingActionID) AND status <> 'resolved'
                """, logger: logger
            ).collect().first?.decode(String.self)
        }
    }

    public func unrecordedSLABreaches(now: Int64, limit: Int) async throws(StoreError) -> [TicketRecord] {
        try await read { [self] connection in
            try await connection.query(
                """
                SELECT \(unescaped: Self.ticketColumns) FROM tickets
                WHERE status = 'open' AND NOT sla_breach_recorded AND sla_deadline_ms <= \(now)
                ORDER BY sla_deadline_ms LIMIT \(Int64(limit))
                """, logger: logger
            ).collect().map(Self.ticket)
        }
    }

    // MARK: Approvals

    static let approvalColumns = """
        tenant_id, id, session_id, pending_action_id, action_json, edited_action_json, amount, currency, reason, requester, status,
        steps_json, current_level, created_at_ms, decided_at_ms, revision
        """

    static func approval(_ row: PostgresRow) throws -> ApprovalRecord {
        let r = row.makeRandomAccess()
        var record = ApprovalRecord(
            tenant: TenantID(try r.value("tenant_id")), id: try r.value("id"), sessionID: try r.value("session_id"),
            pendingActionID: try r.value("pending_action_id"), actionJSON: try r.value("action_json"), amount: try r.value("amount"),
            currency: try r.value("currency"), reason: try r.value("reason"), requester: try r.value("requester"), status: try r.value("status"),
            steps: try ApprovalRecord.decodeSteps(try r.value("steps_json")), currentLevel: Int(try r.value("current_level", Int64.self)),
            createdAtMs: try r.value("created_at_ms"))
        record.editedActionJSON = try r.value("edited_action_json")
        record.decidedAtMs = try r.value("decided_at_ms")
        record.revision = try r.value("revision")
        return record
    }

    public func openApproval(
        _ approval: ApprovalRecord, action: PendingActionRecord, events: [NewEvent]
    ) async throws(StoreError) -> (approval: ApprovalRecord, created: Bool, events: [EventRecord]) {
        try await write { transaction in
            try await transaction.requireSession(tenant: approval.tenant, id: approval.sessionID)
            if let existing = try await transaction.rows(
                """
                SELECT \(unescaped: Self.approvalColumns) FROM approvals WHERE tenant_id = \(approval.tenant.rawValue)
                    AND pending_action_id = \(approval.pendingActionID) AND status = 'pending'
                """
            ).first {
                return (try Self.approval(existing), false, [])
            }
            _ = try await Self.writePendingAction(transaction, action)
            try await Self.insertApproval(transaction, approval)
            var appended: [EventRecord] = []
            for event in events {
                appended.append(try await transaction.append(tenant: approval.tenant, sessionID: approval.sessionID, event: event))
            }
            return (approval, true, appended)
        }
    }

    static func insertApproval(_ transaction: Transaction, _ a: ApprovalRecord) async throws {
        try await transaction.rows(
            """
            INSERT INTO approvals (tenant_id, id, session_id, pending_action_id, action_json, edited_action_json, amount, currency,
                reason, requester, status, steps_json, current_level, due_at_ms, created_at_ms, decided_at_ms, revision, current_approvers)
            VALUES (\(a.tenant.rawValue), \(a.id), \(a.sessionID), \(a.pendingActionID), \(a.actionJSON), \(a.editedActionJSON),
                \(a.amount), \(a.currency), \(a.reason), \(a.requester), \(a.status), \(ApprovalRecord.encodeSteps(a.steps)),
                \(Int64(a.currentLevel)), \(a.dueAtMs), \(a.createdAtMs), \(a.decidedAtMs), \(a.revision), \(a.currentApproversKey))
            """)
    }

    public func approval(tenant: TenantID, id: String) async throws(StoreError) -> ApprovalRecord? {
        try await read { [self] connection in
            try await connection.query(
                "SELECT \(unescaped: Self.approvalColumns) FROM approvals WHERE tenant_id = \(tenant.rawValue) AND id = \(id)", logger: logger
            ).collect().first.map(Self.approval)
        }
    }

    public func pendingApprovalID(tenant: TenantID, pendingActionID: String) async throws(StoreError) -> String? {
        try await read { [self] connection in
            try await connection.query(
                """
                SELECT id FROM approvals WHERE tenant_id = \(tenant.rawValue) AND pending_action_id = \(pendingActionID) AND status = 'pending'
                """, logger: logger
            ).collect().first?.decode(String.self)
        }
    }

    /// When an approval's current step expires, with never last: the listing's first key.
    static let dueKey = "(CASE WHEN due_at_ms = 0 THEN 9223372036854775807 ELSE due_at_ms END)"

    public func pendingApprovals(tenant: TenantID, query: ApprovalQuery) async throws(StoreError) -> [ApprovalRecord] {
        var builder = QueryBuilder()
        var clauses = ["tenant_id = \(builder.bind(tenant.rawValue))", "status = 'pending'"]
        if let session = query.sessionID { clauses.append("session_id = \(builder.bind(session))") }
        if let due = query.dueAfterMs { clauses.append("(due_at_ms = 0 OR due_at_ms > \(builder.bind(due)))") }
        if let requester = query.notRequestedBy { clauses.append("requester <> \(builder.bind(requester))") }
        if let entries = query.currentApprovers {
            guard !entries.isEmpty else { return [] }
            clauses.append(
                "("
                    + entries.map { "strpos(current_approvers, \(builder.bind(ApprovalRecord.approverKey($0)))) > 0" }
                    .joined(separator: " OR ") + ")")
        }
        if let after = query.after {
            clauses.append(
                """
                (\(Self.dueKey), created_at_ms, id) > (\(builder.bind(after.dueAtMs == 0 ? Int64.max : after.dueAtMs)), \
                \(builder.bind(after.createdAtMs)), \(builder.bind(after.id)))
                """)
        }
        builder.sql = """
            SELECT \(Self.approvalColumns) FROM approvals WHERE \(clauses.joined(separator: " AND "))
            ORDER BY \(Self.dueKey), created_at_ms, id LIMIT \(builder.bind(Int64(query.limit)))
            """
        let built = builder.query
        return try await read { [self] connection in try await connection.query(built, logger: logger).collect().map(Self.approval) }
    }

    public func dueApprovals(now: Int64, limit: Int) async throws(StoreError) -> [ApprovalRecord] {
        try await read { [self] connection in
            // A row that does not decode is skipped, not allowed to stop every tenant's sweep.
            try await connection.query(
                """
                SELECT \(unescaped: Self.approvalColumns) FROM approvals
                WHERE status = 'pending' AND due_at_ms > 0 AND due_at_ms <= \(now) ORDER BY due_at_ms LIMIT \(Int64(limit))
                """, logger: logger
            ).collect().compactMap { try? Self.approval($0) }
        }
    }

    public func updateApproval(
        _ approval: ApprovalRecord, action: PendingActionRecord?, events: [NewEvent]
    ) async throws(StoreError) -> (approval: ApprovalRecord, action: PendingActionRecord?, sessionStatus: SessionRecord.Status, events: [EventRecord])
    {
        try await write { transaction in
            let tenant = approval.tenant
            try await transaction.requireSession(tenant: tenant, id: approval.sessionID)
            var s = approval
            s.revision = approval.revision + 1
            let written = try await transaction.rows(
                """
                UPDATE approvals SET edited_action_json = \(s.editedActionJSON), status = \(s.status),
                    steps_json = \(ApprovalRecord.encodeSteps(s.steps)), current_level = \(Int64(s.currentLevel)), due_at_ms = \(s.dueAtMs),
                    decided_at_ms = \(s.decidedAtMs), revision = \(s.revision), current_approvers = \(s.currentApproversKey)
                WHERE tenant_id = \(tenant.rawValue) AND id = \(approval.id) AND revision = \(approval.revision)
                RETURNING 1
                """)
            if written.isEmpty {
                try await Self.refuseStaleRevision(transaction, table: "approvals", tenant: tenant, id: approval.id, read: approval.revision)
            }
            var writtenAction: PendingActionRecord?
            if let action { writtenAction = try await Self.writePendingAction(transaction, action) }
            var appended: [EventRecord] = []
            for event in events { appended.append(try await transaction.append(tenant: tenant, sessionID: approval.sessionID, event: event)) }
            return (s, writtenAction, try await Self.refreshSessionStatus(transaction, tenant: tenant, sessionID: approval.sessionID), appended)
        }
    }

    /// Withdraws the pending approval of an action settled some other way (`StoreRules.cancellation`).
    static func cancelApprovals(_ transaction: Transaction, of action: PendingActionRecord, actor: String, at now: Int64) async throws {
        guard !action.isUndecided,
            let row = try await transaction.rows(
                """
                SELECT \(unescaped: approvalColumns) FROM approvals WHERE tenant_id = \(action.tenant.rawValue)
                    AND pending_action_id = \(action.id) AND status = 'pending'
                """
            ).first
        else { return }
        guard let (approval, event) = StoreRules.cancellation(of: try Self.approval(row), settled: action, actor: actor, at: now) else { return }
        try await transaction.rows(
            """
            UPDATE approvals SET status = \(approval.status), steps_json = \(ApprovalRecord.encodeSteps(approval.steps)),
                current_level = \(Int64(approval.currentLevel)), due_at_ms = 0, decided_at_ms = \(approval.decidedAtMs),
                revision = \(approval.revision), current_approvers = ''
            WHERE tenant_id = \(action.tenant.rawValue) AND id = \(approval.id)
            """)
        _ = try await transaction.append(tenant: action.tenant, sessionID: action.sessionID, event: event)
    }
}
