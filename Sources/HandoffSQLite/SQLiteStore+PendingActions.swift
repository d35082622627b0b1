// Handoff — the SQLite store: assessments (recorded and queued) and pending actions, with the session status they imply.

import Foundation
import GRDB
public import HandoffCore

extension SQLiteStore {
    public func recordAssessment(
        tenant: TenantID, assessment: AssessmentRecord, pending: PendingActionRecord?, handover: Handover?, events: [NewEvent]
    ) async throws(StoreError) -> RecordedAssessment {
        try await write { db in
            try Self.recordAssessment(db, tenant: tenant, assessment: assessment, pending: pending, handover: handover, events: events)
        }
    }

    /// Detached writes (queued assessments) waiting at most; see `GroupCommitWriter.submitDetached`.
    public static let maximumQueuedAssessments = 512

    public func queueAssessment(
        tenant: TenantID, assessment: AssessmentRecord, events: [NewEvent],
        completion: @escaping @Sendable (Result<RecordedAssessment, StoreError>) -> Void
    ) -> Bool {
        writer.submitDetached(
            limit: Self.maximumQueuedAssessments,
            { db in
                try Self.recordAssessment(db, tenant: tenant, assessment: assessment, pending: nil, handover: nil, events: events)
            },
            completion: { [writeHealth] result in
                let mapped = result.mapError(Self.storeError)
                switch mapped {
                case .success: writeHealth.succeeded()
                case .failure(let error): writeHealth.record(error)
                }
                completion(mapped)
            })
    }

    public func settle() async {
        await writer.settle()
    }

    public func waitForQueueRoom() async -> Bool {
        await writer.waitForDetachedRoom(limit: Self.maximumQueuedAssessments)
        return true
    }

    static func recordAssessment(
        _ db: Database, tenant: TenantID, assessment: AssessmentRecord, pending: PendingActionRecord?, handover: Handover?,
        events: [NewEvent]
    ) throws -> RecordedAssessment {
        try Self.requireSession(db, tenant: tenant, id: assessment.sessionID)
        if !assessment.idempotencyKey.isEmpty,
            let row = try Row.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT request_hash, assessment_json, pending_action_id FROM assessments
                        WHERE tenant_id = ? AND session_id = ? AND idempotency_key = ?
                        """),
                arguments: [tenant.rawValue, assessment.sessionID, assessment.idempotencyKey])
        {
            guard [UInt8](row[0] as Data) == assessment.requestHash else {
                throw StoreError.keyReused(assessment.idempotencyKey)
            }
            let pendingID: String? = row[2]
            let earlier = try pendingID.flatMap { try Self.fetchPendingAction(db, tenant: tenant, id: $0) }
            return RecordedAssessment(assessmentJSON: row[1], pending: earlier, replayed: true)
        }
        if let pending {
            try db.cachedStatement(
                sql: """
                    INSERT INTO pending_actions (tenant_id, id, session_id, status, action_json, risk, decision_type, strategy,
                        created_at_ms, updated_at_ms, expires_at_ms, idempotency_key, action_hash, assessed_version)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                tenant.rawValue, pending.id, pending.sessionID, pending.status, pending.actionJSON, pending.risk,
                pending.decisionType, pending.strategy, pending.createdAtMs, pending.updatedAtMs, pending.expiresAtMs,
                pending.idempotencyKey, Data(pending.actionHash), pending.assessedVersion,
            ])
        }
        if !assessment.idempotencyKey.isEmpty {
            try db.cachedStatement(
                sql: """
                    INSERT INTO assessments (tenant_id, session_id, idempotency_key, request_hash, assessment_json,
                        pending_action_id, created_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                tenant.rawValue, assessment.sessionID, assessment.idempotencyKey, Data(assessment.requestHash),
                assessment.assessmentJSON, assessment.pendingActionID, assessment.createdAtMs,
            ])
        }
        var recorded = RecordedAssessment(assessmentJSON: assessment.assessmentJSON, pending: pending, replayed: false)
        if case .approval(let approval) = handover {
            try Self.insertApproval(db, approval)
            recorded.approval = approval
        }
        recorded.events = try Self.appendAll(db, tenant: tenant, sessionID: assessment.sessionID, events: events)
        if case .ticket(let ticket, let turn, let event) = handover {
            guard ticket.tenant == tenant, ticket.sessionID == assessment.sessionID else {
                throw StoreError.failure("the handover's ticket is for another session than its assessment")
            }
            let placed = try Self.placeTicket(db, ticket, turn: turn, event: event)
            recorded.ticket = PlacedTicket(record: placed.ticket, created: placed.created)
            recorded.sessionStatus = placed.sessionStatus
            recorded.events += placed.events
        }
        return recorded
    }

    public func pendingAction(tenant: TenantID, id: String) async throws(StoreError) -> PendingActionRecord? {
        do {
            return try await read { db in try Self.fetchPendingAction(db, tenant: tenant, id: id) }
        } catch {
            throw Self.storeError(error)
        }
    }

    static func fetchPendingAction(_ db: Database, tenant: TenantID, id: String) throws -> PendingActionRecord? {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "\(pendingActionColumns) WHERE tenant_id = ? AND id = ?"),
                arguments: [tenant.rawValue, id])
        else { return nil }
        return try pendingAction(row, tenant: tenant)
    }

    public func pendingAction(tenant: TenantID, releaseTokenHash: [UInt8]) async throws(StoreError) -> PendingActionRecord? {
        do {
            return try await read { db in
                try Row.fetchOne(
                    db.cachedStatement(sql: Lookup.pendingActionByReleaseToken),
                    arguments: [tenant.rawValue, Data(releaseTokenHash)]
                ).map { try Self.pendingAction($0, tenant: tenant) }
            }
        } catch {
            throw Self.storeError(error)
        }
    }

    /// The columns `pendingAction(_:tenant:)` reads, in its order.
    static let pendingActionColumns = """
        SELECT session_id, status, action_json, risk, decision_type, strategy, created_at_ms, updated_at_ms,
            expires_at_ms, idempotency_key, action_hash, assessed_version, awaiting_confirmation, prompt,
            reprompt_count, confirmation_expires_at_ms, release_token_hash, revision, mfa_code_hash,
            mfa_expires_at_ms, mfa_attempts_left, executed_at_ms, execution_key, result_json, execution_error, id,
            decided_by, decision_comment
        FROM pending_actions
        """

    static func pendingAction(_ row: Row, tenant: TenantID) throws -> PendingActionRecord {
        var record = PendingActionRecord(
            tenant: tenant, id: row[25], sessionID: row[0], status: try status(row, 1, of: "pending action"), actionJSON: row[2], risk: row[3],
            decisionType: row[4],
            strategy: row[5], createdAtMs: row[6], updatedAtMs: row[7], expiresAtMs: row[8], idempotencyKey: row[9],
            actionHash: [UInt8](row[10] as Data), assessedVersion: row[11])
        record.awaitingConfirmation = row[12]
        record.prompt = row[13]
        record.repromptCount = row[14]
        record.confirmationExpiresAtMs = row[15]
        record.releaseTokenHash = (row[16] as Data?).map { [UInt8]($0) }
        record.revision = row[17]
        record.mfaCodeHash = (row[18] as Data?).map { [UInt8]($0) }
        record.mfaExpiresAtMs = row[19]
        record.mfaAttemptsLeft = row[20]
        record.executedAtMs = row[21]
        record.executionKey = row[22]
        record.resultJSON = row[23]
        record.executionError = row[24]
        record.decidedBy = row[26]
        record.decisionComment = row[27]
        return record
    }

    public func updatePendingAction(
        _ action: PendingActionRecord, events: [NewEvent]
    ) async throws(StoreError) -> (PendingActionRecord, SessionRecord.Status) {
        try await write { db in
            let stored = try Self.writePendingAction(db, action)
            for event in events {
                _ = try Self.append(db, tenant: action.tenant, sessionID: action.sessionID, event: event)
            }
            try Self.cancelApprovals(db, of: stored, actor: events.first?.actor ?? "", at: stored.updatedAtMs)
            return (stored, try Self.refreshSessionStatus(db, tenant: action.tenant, sessionID: action.sessionID))
        }
    }

    /// Writes `action` over the revision it was read at, returning it with its revision bumped.
    static func writePendingAction(_ db: Database, _ action: PendingActionRecord) throws -> PendingActionRecord {
        var stored = action
        stored.revision = action.revision + 1
        try db.cachedStatement(
            sql: """
                UPDATE pending_actions SET status = ?, action_json = ?, updated_at_ms = ?, expires_at_ms = ?,
                    awaiting_confirmation = ?, prompt = ?, reprompt_count = ?, confirmation_expires_at_ms = ?,
                    release_token_hash = ?, revision = ?, mfa_code_hash = ?, mfa_expires_at_ms = ?, mfa_attempts_left = ?,
                    executed_at_ms = ?, execution_key = ?, result_json = ?, execution_error = ?, action_hash = ?,
                    decided_by = ?, decision_comment = ?
                WHERE tenant_id = ? AND id = ? AND revision = ?
                """
        ).execute(arguments: [
            stored.status, stored.actionJSON, stored.updatedAtMs, stored.expiresAtMs, stored.awaitingConfirmation,
            stored.prompt, stored.repromptCount, stored.confirmationExpiresAtMs, stored.releaseTokenHash.map { Data($0) },
            stored.revision, stored.mfaCodeHash.map { Data($0) }, stored.mfaExpiresAtMs, stored.mfaAttemptsLeft,
            stored.executedAtMs, stored.executionKey, stored.resultJSON, stored.executionError, Data(stored.actionHash),
            stored.decidedBy, stored.decisionComment, action.tenant.rawValue, action.id, action.revision,
        ])
        if db.changesCount == 0 {
            guard let current = try Self.fetchPendingAction(db, tenant: action.tenant, id: action.id) else {
                throw StoreError.missing(kind: "pending action", id: action.id)
            }
            throw StoreError.versionConflict(expected: action.revision, current: current.revision)
        }
        return stored
    }

    /// Sets and returns the session's status: escalated while a ticket is
    /// not resolved, else awaiting confirmation while a pending action waits
    /// for the user's answer or code, else active.
    static func refreshSessionStatus(_ db: Database, tenant: TenantID, sessionID: String) throws -> SessionRecord.Status {
        let escalated =
            try Bool.fetchOne(
                db.cachedStatement(sql: Lookup.sessionHasUnresolvedTicket), arguments: [tenant.rawValue, sessionID]) ?? false
        let awaiting =
            try Bool.fetchOne(
                db.cachedStatement(sql: Lookup.sessionAwaitsUser), arguments: [tenant.rawValue, sessionID]) ?? false
        let status = StoreRules.sessionStatus(hasUnresolvedTicket: escalated, awaitsUser: awaiting)
        try db.cachedStatement(sql: "UPDATE sessions SET status = ? WHERE tenant_id = ? AND id = ?")
            .execute(arguments: [status, tenant.rawValue, sessionID])
        return status
    }
}
