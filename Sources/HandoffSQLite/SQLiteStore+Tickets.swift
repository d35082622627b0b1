// Handoff — the SQLite store: escalation tickets: the queue, opening, updates, and the lookups by index.

import Foundation
import GRDB
public import HandoffCore

extension SQLiteStore {
    public func openTicket(
        _ ticket: TicketRecord, turn: TurnRecord, event: NewEvent
    ) async throws(StoreError) -> (ticket: TicketRecord, created: Bool, sessionStatus: SessionRecord.Status, events: [EventRecord]) {
        try await write { db in
            try Self.requireSession(db, tenant: ticket.tenant, id: ticket.sessionID)
            return try Self.placeTicket(db, ticket, turn: turn, event: event)
        }
    }

    /// `openTicket` inside a transaction (AssessAction's calls it too).
    static func placeTicket(
        _ db: Database, _ ticket: TicketRecord, turn: TurnRecord, event: NewEvent
    ) throws -> (ticket: TicketRecord, created: Bool, sessionStatus: SessionRecord.Status, events: [EventRecord]) {
        let tenant = ticket.tenant.rawValue
        func sessionStatus() throws -> SessionRecord.Status {
            try SessionRecord.Status.fetchOne(
                db.cachedStatement(sql: "SELECT status FROM sessions WHERE tenant_id = ? AND id = ?"),
                arguments: [tenant, ticket.sessionID]) ?? .escalated
        }
        let sameAction =
            ticket.pendingActionID.isEmpty
            ? nil
            : try Row.fetchOne(
                db.cachedStatement(sql: Lookup.unresolvedTicketOfAction),
                arguments: [tenant, ticket.sessionID, ticket.pendingActionID]
            ).map { try Self.ticket($0, tenant: ticket.tenant) }
        let active = try Row.fetchOne(
            db.cachedStatement(sql: Lookup.activeTicketOfSession), arguments: [tenant, ticket.sessionID]
        ).map { try Self.ticket($0, tenant: ticket.tenant) }
        switch StoreRules.place(ticket, event: event, sameAction: sameAction, active: active) {
        case .existing(let found):
            return (found, false, try sessionStatus(), [])
        case .open(let opened, let event):
            try Self.insertTicket(db, opened)
            try Self.insertTurn(db, tenant: ticket.tenant, turn)
            let appended = try Self.append(db, tenant: ticket.tenant, sessionID: ticket.sessionID, event: event)
            return (opened, true, try Self.refreshSessionStatus(db, tenant: ticket.tenant, sessionID: ticket.sessionID), [appended])
        case .attach(let attached, let event):
            try db.cachedStatement(
                sql: """
                    UPDATE tickets SET pending_action_id = ?, revision = ? WHERE tenant_id = ? AND id = ?
                    """
            ).execute(arguments: [attached.pendingActionID, attached.revision, tenant, attached.id])
            let appended = try Self.append(db, tenant: ticket.tenant, sessionID: ticket.sessionID, event: event)
            return (attached, false, try sessionStatus(), [appended])
        case .wait(let waiting, let event):
            try Self.insertTicket(db, waiting)
            let appended = try Self.append(db, tenant: ticket.tenant, sessionID: ticket.sessionID, event: event)
            return (waiting, true, try sessionStatus(), [appended])
        }
    }

    /// When a session has no open or claimed ticket left, opens its oldest
    /// waiting one (keeping its creation time and SLA deadline: the customer
    /// has waited since then) and appends `ticket.opened`.
    static func openNextWaiting(
        _ db: Database, tenant: TenantID, sessionID: String, after resolved: TicketRecord, at now: Int64
    ) throws -> EventRecord? {
        let active =
            try Bool.fetchOne(
                db.cachedStatement(
                    sql: "SELECT EXISTS (SELECT 1 FROM tickets WHERE tenant_id = ? AND session_id = ? AND status IN ('open', 'claimed'))"),
                arguments: [tenant.rawValue, sessionID]) ?? false
        guard !active,
            let row = try Row.fetchOne(
                db.cachedStatement(sql: Lookup.nextWaitingTicket),
                arguments: [tenant.rawValue, sessionID])
        else { return nil }
        let (opened, event) = StoreRules.opening(try ticket(row, tenant: tenant), after: resolved, at: now)
        try db.cachedStatement(
            sql: """
                UPDATE tickets SET status = ?, revision = ?, queue_breached = sla_breach_recorded WHERE tenant_id = ? AND id = ?
                """
        ).execute(arguments: [opened.status, opened.revision, tenant.rawValue, opened.id])
        return try append(db, tenant: tenant, sessionID: sessionID, event: event)
    }

    public func ticket(tenant: TenantID, id: String) async throws(StoreError) -> TicketRecord? {
        do {
            return try await read { db in
                try Row.fetchOne(
                    db.cachedStatement(sql: "\(Self.ticketColumns) WHERE tenant_id = ? AND id = ?"), arguments: [tenant.rawValue, id]
                ).map { try Self.ticket($0, tenant: tenant) }
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func escalationWindow(
        tenant: TenantID, since: Int64, until: Int64
    ) async throws(StoreError) -> (tickets: [TicketRecord], sessions: Int64) {
        do {
            return try await read { db in
                let tickets = try Row.fetchAll(
                    db.cachedStatement(sql: "\(Self.ticketColumns) WHERE tenant_id = ? AND created_at_ms >= ? AND created_at_ms < ?"),
                    arguments: [tenant.rawValue, since, until]
                ).map { try Self.ticket($0, tenant: tenant) }
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

    public func tickets(tenant: TenantID, query: TicketQuery) async throws(StoreError) -> [TicketRecord] {
        var clauses = ["tenant_id = ?"]
        var arguments: [any DatabaseValueConvertible] = [tenant.rawValue]
        if !query.statuses.isEmpty {
            clauses.append("status IN \(Self.placeholders(query.statuses.count))")
            arguments.append(contentsOf: query.statuses)
            // Lets SQLite use the queue's order index (partial: unresolved tickets).
            if !query.statuses.contains(.resolved) { clauses.append("status != 'resolved'") }
        }
        if !query.priorities.isEmpty {
            clauses.append("priority IN \(Self.placeholders(query.priorities.count))")
            arguments.append(contentsOf: query.priorities)
        }
        if let assignee = query.assignedTo {
            clauses.append("assigned_to = ?")
            arguments.append(assignee)
        }
        let sql = """
            \(Self.ticketColumns) WHERE \(clauses.joined(separator: " AND "))
            ORDER BY queue_breached DESC, priority DESC, created_at_ms ASC, id ASC
            LIMIT ? OFFSET ?
            """
        arguments.append(contentsOf: [query.limit, query.offset] as [any DatabaseValueConvertible])
        let bound = StatementArguments(arguments.map { Optional($0) })
        do {
            return try await read { db in try Row.fetchAll(db, sql: sql, arguments: bound).map { try Self.ticket($0, tenant: tenant) } }
        } catch {
            throw Self.storeError(error)
        }
    }

    public func updateTicket(
        _ ticket: TicketRecord, turn: TurnRecord?, events: [NewEvent]
    ) async throws(StoreError) -> (ticket: TicketRecord, turn: TurnRecord?, sessionStatus: SessionRecord.Status, events: [EventRecord]) {
        try await write { db in
            var stored = ticket
            stored.revision = ticket.revision + 1
            try db.cachedStatement(
                sql: """
                    UPDATE tickets SET status = ?, assigned_to = ?, claimed_at_ms = ?, resolved_at_ms = ?, outcome = ?,
                        resolution_note = ?, revision = ?, sla_breach_recorded = ?, queue_breached = ?
                    WHERE tenant_id = ? AND id = ? AND revision = ?
                    """
            ).execute(arguments: [
                stored.status, stored.assignedTo, stored.claimedAtMs, stored.resolvedAtMs, stored.outcome, stored.resolutionNote,
                stored.revision, stored.slaBreachRecorded, stored.status == .open && stored.slaBreachRecorded, ticket.tenant.rawValue, ticket.id,
                ticket.revision,
            ])
            if db.changesCount == 0 {
                try Self.refuseStaleRevision(db, table: "tickets", tenant: ticket.tenant, id: ticket.id, read: ticket.revision)
            }
            var written: TurnRecord?
            if let turn {
                written = try Self.insertTurn(db, tenant: ticket.tenant, turn)
            }
            var appended = try Self.appendAll(db, tenant: ticket.tenant, sessionID: ticket.sessionID, events: events)
            if stored.status == .resolved,
                let opened = try Self.openNextWaiting(
                    db, tenant: ticket.tenant, sessionID: ticket.sessionID, after: stored, at: events.last?.occurredAtMs ?? stored.resolvedAtMs)
            {
                appended.append(opened)
            }
            return (stored, written, try Self.refreshSessionStatus(db, tenant: ticket.tenant, sessionID: ticket.sessionID), appended)
        }
    }

    /// Lookups by a column other than the primary key, each naming its index:
    /// without ANALYZE statistics the planner walked the whole tenant instead
    /// (docs/STORAGE.md). A test checks each plan (SQLiteStoreTests.lookupsUseTheirIndexes).
    enum Lookup {
        static let sessionHasUnresolvedTicket = """
            SELECT EXISTS (SELECT 1 FROM tickets INDEXED BY tickets_unresolved
            WHERE tenant_id = ? AND session_id = ? AND status != 'resolved')
            """
        /// The condition of a pending action that waits for its user (a
        /// confirmation or a code): the partial index's (migration v20) word
        /// for word, or SQLite cannot use the index.
        static let awaitingUser = "WHERE status = 'pending' AND (awaiting_confirmation = 1 OR mfa_code_hash IS NOT NULL)"
        static let sessionAwaitsUser = """
            SELECT EXISTS (SELECT 1 FROM pending_actions INDEXED BY pending_actions_awaiting_user
            \(awaitingUser) AND tenant_id = ? AND session_id = ?)
            """
        static let unresolvedTicketOfAction = """
            \(ticketColumns) INDEXED BY tickets_unresolved
            WHERE tenant_id = ? AND session_id = ? AND pending_action_id = ? AND status != 'resolved'
            """
        static let activeTicketOfSession = """
            \(ticketColumns) INDEXED BY tickets_one_active WHERE tenant_id = ? AND session_id = ? AND status IN ('open', 'claimed')
            """
        static let nextWaitingTicket = """
            \(ticketColumns) INDEXED BY tickets_waiting
            WHERE tenant_id = ? AND session_id = ? AND status = 'waiting' ORDER BY created_at_ms, id LIMIT 1
            """
        static let pendingActionByReleaseToken = """
            \(pendingActionColumns) INDEXED BY pending_actions_by_release_token WHERE tenant_id = ? AND release_token_hash = ?
            """
        static let all = [
            sessionHasUnresolvedTicket, sessionAwaitsUser, unresolvedTicketOfAction, activeTicketOfSession, nextWaitingTicket,
            pendingActionByReleaseToken,
        ]
        /// By the primary key (not in `all`, which checks secondary indexes).
        static let sessionHead = "SELECT last_seq, last_hash, last_position, version FROM sessions WHERE tenant_id = ? AND id = ?"
        /// The positions of a session's events, newest first: its chain
        /// walked back from the head, one rowid lookup per event. The walk
        /// takes at most as many steps as the head's seq, so links edited
        /// into a cycle end it (and fail verification) instead of looping.
        static let sessionChain = """
            WITH RECURSIVE chain(position, steps_left) AS (
                SELECT last_position, last_seq FROM sessions WHERE tenant_id = ? AND id = ? AND last_position IS NOT NULL
                UNION ALL
                SELECT e.prev_position, c.steps_left - 1 FROM events e JOIN chain c ON e.position = c.position
                WHERE e.prev_position IS NOT NULL AND c.steps_left > 1
            )
            """
        static let eventsOfSession = """
            \(sessionChain) SELECT events.* FROM chain CROSS JOIN events ON events.position = chain.position ORDER BY events.seq
            """
    }

    /// `(?, ?, …)` with `count` placeholders.
    static func placeholders(_ count: Int) -> String {
        "(" + Array(repeating: "?", count: count).joined(separator: ", ") + ")"
    }

    static let ticketColumns = """
        SELECT id, session_id, pending_action_id, reason, priority, status, created_by, assigned_to, created_at_ms, claimed_at_ms,
            resolved_at_ms, sla_deadline_ms, outcome, resolution_note, snapshot_json, revision, sla_breach_recorded, tenant_id
        FROM tickets
        """
    /// Where `ticketColumns` puts the tenant (for queries across tenants).
    static let ticketTenantColumn = 17

    /// After an update over a revision matched no row: NOT_FOUND, or the
    /// version conflict with the revision now stored. `table` is one of this
    /// module's literals, never caller input.
    static func refuseStaleRevision(_ db: Database, table: String, tenant: TenantID, id: String, read: Int64) throws -> Never {
        let current = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT revision FROM \(table) WHERE tenant_id = ? AND id = ?"), arguments: [tenant.rawValue, id])
        guard let current else { throw StoreError.missing(kind: table == "tickets" ? "ticket" : "approval", id: id) }
        throw StoreError.versionConflict(expected: read, current: current)
    }

    static func ticket(_ row: Row, tenant: TenantID) throws -> TicketRecord {
        var record = TicketRecord(
            tenant: tenant, id: row[0], sessionID: row[1], pendingActionID: row[2], reason: row[3], priority: row[4],
            status: try status(row, 5, of: "ticket"),
            createdBy: row[6], assignedTo: row[7], createdAtMs: row[8], slaDeadlineMs: row[11], snapshotJSON: row[14])
        record.claimedAtMs = row[9]
        record.resolvedAtMs = row[10]
        record.outcome = row[12]
        record.resolutionNote = row[13]
        record.revision = row[15]
        record.slaBreachRecorded = row[16]
        return record
    }

    static func insertTicket(_ db: Database, _ t: TicketRecord) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO tickets (tenant_id, id, session_id, pending_action_id, reason, priority, status, created_by, assigned_to,
                    created_at_ms, claimed_at_ms, resolved_at_ms, sla_deadline_ms, outcome, resolution_note, snapshot_json, revision,
                    sla_breach_recorded, queue_breached)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            t.tenant.rawValue, t.id, t.sessionID, t.pendingActionID, t.reason, t.priority, t.status, t.createdBy, t.assignedTo,
            t.createdAtMs, t.claimedAtMs, t.resolvedAtMs, t.slaDeadlineMs, t.outcome, t.resolutionNote, t.snapshotJSON, t.revision,
            t.slaBreachRecorded, t.status == .open && t.slaBreachRecorded,
        ])
    }

    /// Inserts a turn numbered after the session's last one.
    @discardableResult
    static func insertTurn(_ db: Database, tenant: TenantID, _ turn: TurnRecord) throws -> TurnRecord {
        var stored = turn
        stored.sequence = try nextSequence(db, table: "turns", tenant: tenant, sessionID: turn.sessionID)
        try db.cachedStatement(
            sql: """
                INSERT INTO turns (tenant_id, session_id, seq, input, output, metadata_json, reasoning, author, created_at_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            tenant.rawValue, stored.sessionID, stored.sequence, stored.input, stored.output, stored.metadataJSON,
            stored.reasoning, stored.author, stored.createdAtMs,
        ])
        return stored
    }
}
