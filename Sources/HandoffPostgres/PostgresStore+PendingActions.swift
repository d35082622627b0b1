// Handoff — the PostgreSQL store: assessments and pending actions, with the
// session status they imply. Every write locks the session first.

import Foundation
public import HandoffCore
import PostgresNIO

extension PostgresStore {
    public func recordAssessment(
        tenant: TenantID, assessment: AssessmentRecord, pending: PendingActionRecord?, handover: Handover?, events: [NewEvent]
    ) async throws(StoreError) -> RecordedAssessment {
        try await write { [self] transaction in
            try await transaction.requireSession(tenant: tenant, id: assessment.sessionID)
            // The session's row is locked: a concurrent assessment with the
            // same key (on any node) waits, then finds this one's record.
            if !assessment.idempotencyKey.isEmpty,
                let row = try await transaction.rows(
                    """
                    SELECT request_hash, assessment_json, pending_action_id FROM assessments
                    WHERE tenant_id = \(tenant.rawValue) AND session_id = \(assessment.sessionID)
                        AND idempotency_key = \(assessment.idempotencyKey)
                    """
                ).first
            {
                let (hash, json, pendingID) = try row.decode((ByteBuffer, String, String?).self)
                guard Array(hash.readableBytesView) == assessment.requestHash else {
                    throw StoreError.keyReused(assessment.idempotencyKey)
                }
                var earlier: PendingActionRecord?
                if let pendingID {
                    earlier = try await Self.fetchPendingAction(transaction.connection, logger: logger, tenant: tenant, id: pendingID)
                }
                return RecordedAssessment(assessmentJSON: json, pending: earlier, replayed: true)
            }
            if let pending { try await Self.insertPendingAction(transaction, pending) }
            if !assessment.idempotencyKey.isEmpty {
                try await transaction.rows(
                    """
                    INSERT INTO assessments (tenant_id, session_id, idempotency_key, request_hash, assessment_json, pending_action_id,
                        created_at_ms)
                    VALUES (\(tenant.rawValue), \(assessment.sessionID), \(assessment.idempotencyKey),
                        \(ByteBuffer(bytes: assessment.requestHash)), \(assessment.assessmentJSON), \(assessment.pendingActionID),
                        \(assessment.createdAtMs))
                    """)
            }
            var recorded = RecordedAssessment(assessmentJSON: assessment.assessmentJSON, pending: pending, replayed: false)
            if case .approval(let approval) = handover {
                try await Self.insertApproval(transaction, approval)
                recorded.approval = approval
            }
            for event in events {
                recorded.events.append(try await transaction.append(tenant: tenant, sessionID: assessment.sessionID, event: event))
            }
            if case .ticket(let ticket, let turn, let event) = handover {
                guard ticket.tenant == tenant, ticket.sessionID == assessment.sessionID else {
                    throw StoreError.failure("the handover's ticket is for another session than its assessment")
                }
                let placed = try await Self.placeTicket(transaction, ticket, turn: turn, event: event)
                recorded.ticket = PlacedTicket(record: placed.ticket, created: placed.created)
                recorded.sessionStatus = placed.sessionStatus
                recorded.events += placed.events
            }
            return recorded
        }
    }

    static func insertPendingAction(_ transaction: Transaction, _ p: PendingActionRecord) async throws {
        try await transaction.rows(
            """
            INSERT INTO pending_actions (tenant_id, id, session_id, status, action_json, risk, decision_type, strategy,
                created_at_ms, updated_at_ms, expires_at_ms, idempotency_key, action_hash, assessed_version)
            VALUES (\(p.tenant.rawValue), \(p.id), \(p.sessionID), \(p.status), \(p.actionJSON), \(Int64(p.risk)), \(p.decisionType),
                \(Int64(p.strategy)), \(p.createdAtMs), \(p.updatedAtMs), \(p.expiresAtMs), \(p.idempotencyKey),
                \(ByteBuffer(bytes: p.actionHash)), \(p.assessedVersion))
            """)
    }

    public func pendingAction(tenant: TenantID, id: String) async throws(StoreError) -> PendingActionRecord? {
        try await read { [self] connection in try await Self.fetchPendingAction(connection, logger: logger, tenant: tenant, id: id) }
    }

    static func fetchPendingAction(
        _ connection: PostgresConnection, logger: Logger, tenant: TenantID, id: String
    ) async throws -> PendingActionRecord? {
        try await connection.query(
            "SELECT \(unescaped: pendingActionColumns) FROM pending_actions WHERE tenant_id = \(tenant.rawValue) AND id = \(id)",
            logger: logger
        ).collect().first.map(pendingAction)
    }

    public func pendingAction(tenant: TenantID, releaseTokenHash: [UInt8]) async throws(StoreError) -> PendingActionRecord? {
        try await read { [self] connection in
            try await connection.query(
                """
                SELECT \(unescaped: Self.pendingActionColumns) FROM pending_actions
                WHERE tenant_id = \(tenant.rawValue) AND release_token_hash = \(ByteBuffer(bytes: releaseTokenHash))
                """, logger: logger
            ).collect().first.map(Self.pendingAction)
        }
    }

    static let pendingActionColumns = """
        tenant_id, id, session_id, status, action_json, risk, decision_type, strategy, created_at_ms, updated_at_ms,
        expires_at_ms, idempotency_key, action_hash, assessed_version, awaiting_confirmation, prompt, reprompt_count,
        confirmation_expires_at_ms, release_token_hash, revision, mfa_code_hash, mfa_expires_at_ms, mfa_attempts_left,
        executed_at_ms, execution_key, result_json, execution_error, decided_by, decision_comment
        """

    static func pendingAction(_ row: PostgresRow) throws -> PendingActionRecord {
        let r = row.makeRandomAccess()
        var record = PendingActionRecord(
            tenant: TenantID(try r.value("tenant_id")), id: try r.value("id"), sessionID: try r.value("session_id"), status: try r.value("status"),
            actionJSON: try r.value("action_json"), risk: Int(try r.value("risk", Int64.self)), decisionType: try r.value("decision_type"),
            strategy: Int(try r.value("strategy", Int64.self)), createdAtMs: try r.value("created_at_ms"), updatedAtMs: try r.value("updated_at_ms"),
            expiresAtMs: try r.value("expires_at_ms"), idempotencyKey: try r.value("idempotency_key"), actionHash: try r.bytes("action_hash") ?? [],
            assessedVersion: try r.value("assessed_version"))
        record.awaitingConfirmation = try r.value("awaiting_confirmation")
        record.prompt = try r.value("prompt")
        record.repromptCount = Int(try r.value("reprompt_count", Int64.self))
        record.confirmationExpiresAtMs = try r.value("confirmation_expires_at_ms")
        record.releaseTokenHash = try r.bytes("release_token_hash")
        record.revision = try r.value("revision")
        record.mfaCodeHash = try r.bytes("mfa_code_hash")
        record.mfaExpiresAtMs = try r.value("mfa_expires_at_ms")
        record.mfaAttemptsLeft = Int(try r.value("mfa_attempts_left", Int64.self))
        record.executedAtMs = try r.value("executed_at_ms")
        record.executionKey = try r.value("execution_key")
        record.resultJSON = try r.value("result_json")
        record.executionError = try r.value("execution_error")
        record.decidedBy = try r.value("decided_by")
        record.decisionComment = try r.value("decision_comment")
        return record
    }

    public func updatePendingAction(
        _ action: PendingActionRecord, events: [NewEvent]
    ) async throws(StoreError) -> (PendingActionRecord, SessionRecord.Status) {
        try await write { transaction in
            try await transaction.requireSession(tenant: action.tenant, id: action.sessionID)
            let stored = try await Self.writePendingAction(transaction, action)
            for event in events {
                _ = try await transaction.append(tenant: action.tenant, sessionID: action.sessionID, event: event)
            }
            try await Self.cancelApprovals(transaction, of: stored, actor: events.first?.actor ?? "", at: stored.updatedAtMs)
            return (stored, try await Self.refreshSessionStatus(transaction, tenant: action.tenant, sessionID: action.sessionID))
        }
    }

    /// Writes `action` over the revision it was read at, returning it with its revision bumped.
    static func writePendingAction(_ transaction: Transaction, _ action: PendingActionRecord) async throws -> PendingActionRecord {
        var s = action
        s.revision = action.revision + 1
        let written = try await transaction.rows(
            """
            UPDATE pending_actions SET status = \(s.status), action_json = \(s.actionJSON), updated_at_ms = \(s.updatedAtMs),
                expires_at_ms = \(s.expiresAtMs), awaiting_confirmation = \(s.awaitingConfirmation), prompt = \(s.prompt),
                reprompt_count = \(Int64(s.repromptCount)), confirmation_expires_at_ms = \(s.confirmationExpiresAtMs),
                release_token_hash = \(s.releaseTokenHash.map { ByteBuffer(bytes: $0) }), revision = \(s.revision),
                mfa_code_hash = \(s.mfaCodeHash.map { ByteBuffer(bytes: $0) }), mfa_expires_at_ms = \(s.mfaExpiresAtMs),
                mfa_attempts_left = \(Int64(s.mfaAttemptsLeft)), executed_at_ms = \(s.executedAtMs), execution_key = \(s.executionKey),
                result_json = \(s.resultJSON), execution_error = \(s.executionError), action_hash = \(ByteBuffer(bytes: s.actionHash)),
                decided_by = \(s.decidedBy), decision_comment = \(s.decisionComment)
            WHERE tenant_id = \(action.tenant.rawValue) AND id = \(action.id) AND revision = \(action.revision)
            RETURNING 1
            """)
        if written.isEmpty {
            guard let current = try await fetchPendingAction(transaction.connection, logger: transaction.logger, tenant: action.tenant, id: action.id)
            else { throw StoreError.missing(kind: "pending action", id: action.id) }
            throw StoreError.versionConflict(expected: action.revision, current: current.revision)
        }
        return s
    }

    /// Sets and returns the session's status (`StoreRules.sessionStatus`).
    static func refreshSessionStatus(_ transaction: Transaction, tenant: TenantID, sessionID: String) async throws -> SessionRecord.Status {
        let row = try await transaction.rows(
            """
            SELECT EXISTS (SELECT 1 FROM tickets WHERE tenant_id = \(tenant.rawValue) AND session_id = \(sessionID) AND status <> 'resolved'),
                EXISTS (SELECT 1 FROM pending_actions WHERE tenant_id = \(tenant.rawValue) AND session_id = \(sessionID)
                    AND status = 'pending' AND (awaiting_confirmation OR mfa_code_hash IS NOT NULL))
            """)
        guard let first = row.first else { throw StoreError.failure("the session's status query returned no row") }
        let (escalated, awaiting) = try first.decode((Bool, Bool).self)
        let status = StoreRules.sessionStatus(hasUnresolvedTicket: escalated, awaitsUser: awaiting)
        try await transaction.rows("UPDATE sessions SET status = \(status) WHERE tenant_id = \(tenant.rawValue) AND id = \(sessionID)")
        return status
    }

    /// The session's status as stored (in the write's transaction).
    static func sessionStatus(_ transaction: Transaction, tenant: TenantID, sessionID: String) async throws -> SessionRecord.Status {
        try await transaction.rows("SELECT status FROM sessions WHERE tenant_id = \(tenant.rawValue) AND id = \(sessionID)")
            .first?.decode(SessionRecord.Status.self) ?? .escalated
    }
}
