// Handoff — where each record stands, as enums: stored by their raw values
// (the words the events and the protocol's JSON details carry), compared
// and switched on by case everywhere else.

extension SessionRecord {
    /// Derived by `StoreRules.sessionStatus` in each write's transaction.
    public enum Status: String, Sendable, Hashable, CaseIterable {
        case active
        /// One of its pending actions awaits the end user (a confirmation or a code).
        case awaitingConfirmation = "awaiting_confirmation"
        /// It has a ticket not resolved yet.
        case escalated
    }
}

extension PendingActionRecord {
    public enum Status: String, Sendable, Hashable, CaseIterable {
        case pending, confirmed, declined, expired, approved, rejected, released, executed, cancelled
    }
}

extension TicketRecord {
    public enum Status: String, Sendable, Hashable, CaseIterable {
        /// Queued behind the session's ticket in hand; opens when that one is resolved.
        case waiting
        case open, claimed, resolved
    }
}

extension ApprovalRecord {
    public enum Status: String, Sendable, Hashable, CaseIterable {
        case pending, approved, rejected, expired, cancelled
    }
}

extension ApprovalStepRecord {
    public enum Status: String, Sendable, Hashable, CaseIterable {
        /// Not reached yet.
        case waiting
        /// The step being decided.
        case pending
        case approved, rejected, expired
        /// The approval ended before this step was decided.
        case cancelled
    }
}
