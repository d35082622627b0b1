// Handoff — what a desk event records of its ticket or approval: the parts
// that change, as they were right after the event. A replayed event then
// shows its record as it was (the protocol's promise), not as it is now; the
// parts that never change (reason, action, amount) come from the record.

extension TicketRecord {
    /// The ticket's changing parts, for an event's details (`ticket_state`).
    public var deskSnapshot: JSONValue {
        .object([
            "status": .string(status.rawValue), "assigned_to": .string(assignedTo), "claimed_at_ms": .integer(claimedAtMs),
            "resolved_at_ms": .integer(resolvedAtMs), "outcome": .integer(Int64(outcome)), "resolution_note": .string(resolutionNote),
            "sla_breach_recorded": .bool(slaBreachRecorded), "pending_action_id": .string(pendingActionID),
            "priority": .integer(Int64(priority)),
        ])
    }

    /// This ticket with its changing parts as `snapshot` recorded them (unchanged where it is not one).
    public func applying(deskSnapshot snapshot: JSONValue) -> TicketRecord {
        guard let m = snapshot.objectValue else { return self }
        var t = self
        if case .string(let v)? = m["status"], let status = TicketRecord.Status(rawValue: v) { t.status = status }
        if case .string(let v)? = m["assigned_to"] { t.assignedTo = v }
        if case .integer(let v)? = m["claimed_at_ms"] { t.claimedAtMs = v }
        if case .integer(let v)? = m["resolved_at_ms"] { t.resolvedAtMs = v }
        if case .integer(let v)? = m["outcome"] { t.outcome = Int(v) }
        if case .string(let v)? = m["resolution_note"] { t.resolutionNote = v }
        if case .bool(let v)? = m["sla_breach_recorded"] { t.slaBreachRecorded = v }
        if case .string(let v)? = m["pending_action_id"] { t.pendingActionID = v }
        if case .integer(let v)? = m["priority"] { t.priority = Int(v) }
        return t
    }
}

extension ApprovalStepRecord {
    /// The step as JSON (how stores keep a chain's steps, and what a snapshot holds).
    public var json: JSONValue {
        .object([
            "level": .integer(Int64(level)), "approvers": .array(approvers.map(JSONValue.string)),
            "status": .string(status.rawValue), "decided_by": .string(decidedBy), "comment": .string(comment),
            "edited_action": editedActionJSON.map(JSONValue.string) ?? .null,
            "activated_at_ms": .integer(activatedAtMs), "expires_at_ms": .integer(expiresAtMs),
            "decided_at_ms": .integer(decidedAtMs),
        ])
    }

    /// Reads `json` back; nil when it is not a step.
    public init?(json item: JSONValue) {
        guard let m = item.objectValue, case .integer(let level)? = m["level"], case .array(let approvers)? = m["approvers"],
            case .string(let name)? = m["status"], let status = Status(rawValue: name)
        else { return nil }
        func text(_ key: String) -> String { if case .string(let v)? = m[key] { v } else { "" } }
        func int(_ key: String) -> Int64 { if case .integer(let v)? = m[key] { v } else { 0 } }
        self.init(level: Int(level), approvers: approvers.compactMap { if case .string(let v) = $0 { v } else { nil } }, status: status)
        decidedBy = text("decided_by")
        comment = text("comment")
        if case .string(let edited)? = m["edited_action"] { editedActionJSON = edited }
        activatedAtMs = int("activated_at_ms")
        expiresAtMs = int("expires_at_ms")
        decidedAtMs = int("decided_at_ms")
    }
}

extension ApprovalRecord {
    /// The approval's changing parts, for an event's details (`approval_state`).
    public var deskSnapshot: JSONValue {
        .object([
            "status": .string(status.rawValue), "current_level": .integer(Int64(currentLevel)), "decided_at_ms": .integer(decidedAtMs),
            "edited_action": editedActionJSON.map(JSONValue.string) ?? .null, "steps": .array(steps.map(\.json)),
        ])
    }

    /// This approval with its changing parts as `snapshot` recorded them.
    public func applying(deskSnapshot snapshot: JSONValue) -> ApprovalRecord {
        guard let m = snapshot.objectValue else { return self }
        var a = self
        if case .string(let v)? = m["status"], let status = ApprovalRecord.Status(rawValue: v) { a.status = status }
        if case .integer(let v)? = m["current_level"] { a.currentLevel = Int(v) }
        if case .integer(let v)? = m["decided_at_ms"] { a.decidedAtMs = v }
        if let edited = m["edited_action"] { a.editedActionJSON = if case .string(let v) = edited { v } else { nil } }
        if case .array(let items)? = m["steps"] {
            let steps = items.compactMap(ApprovalStepRecord.init(json:))
            if steps.count == items.count, !steps.isEmpty { a.steps = steps }
        }
        return a
    }
}
