// Handoff — the domain's rules that a store applies inside its transaction,
// as it applies `EventChain.hash`: what the transaction read goes in, what to
// write comes out. A store keeps only how to read and write; every store
// (SQLite, PostgreSQL) calls these, so they agree by construction, and the
// conformance suite checks that they are called where they must be.

/// The rules a store applies while it writes.
public enum StoreRules {
    // MARK: Session status

    /// A session's status from what its transaction read: `escalated` while
    /// it has a ticket not yet resolved (open, claimed or waiting),
    /// `awaiting_confirmation` while one of its pending actions awaits the
    /// end user (a confirmation asked or a code issued), else `active`.
    public static func sessionStatus(hasUnresolvedTicket: Bool, awaitsUser: Bool) -> SessionRecord.Status {
        hasUnresolvedTicket ? .escalated : awaitsUser ? .awaitingConfirmation : .active
    }

    // MARK: The ticket queue

    /// Where a new escalation goes.
    public enum TicketPlacement: Sendable, Hashable {
        /// Write nothing; answer with this ticket (a retried escalation of the
        /// same action, or one without an action while a person already has the session).
        case existing(TicketRecord)
        /// No ticket in hand: insert this one, with its turn and event.
        case open(TicketRecord, NewEvent)
        /// The ticket in hand decides no action yet: it now decides this one
        /// (write the ticket and the event; no new ticket).
        case attach(TicketRecord, NewEvent)
        /// The ticket in hand decides another action: insert this one as
        /// `waiting`; it opens when the one in hand is resolved.
        case wait(TicketRecord, NewEvent)
    }

    /// Places an escalation: `sameAction` is the session's unresolved ticket
    /// holding the same pending action, if any; `active` its open or claimed ticket, if any.
    public static func place(_ ticket: TicketRecord, event: NewEvent, sameAction: TicketRecord?, active: TicketRecord?) -> TicketPlacement {
        if !ticket.pendingActionID.isEmpty, let sameAction { return .existing(sameAction) }
        guard var active else { return .open(ticket, event) }
        if ticket.pendingActionID.isEmpty { return .existing(active) }
        if active.pendingActionID.isEmpty {
            active.pendingActionID = ticket.pendingActionID
            active.revision += 1
            return .attach(
                active,
                annotated(
                    event,
                    [
                        "ticket_id": .string(active.id), "status": .string(active.status.rawValue), "attached": .bool(true),
                        "ticket_state": active.deskSnapshot,
                    ]))
        }
        var waiting = ticket
        waiting.status = .waiting
        return .wait(
            waiting,
            annotated(
                event,
                [
                    "status": .string(TicketRecord.Status.waiting.rawValue), "waiting_for": .string(active.id), "ticket_state": waiting.deskSnapshot,
                ]))
    }

    /// When `resolved` left its session with no open or claimed ticket: the
    /// session's oldest waiting ticket (`next`) opens, keeping its creation
    /// time and SLA deadline (the customer has waited since then), with a
    /// `ticket.opened` event. The store writes both.
    public static func opening(_ next: TicketRecord, after resolved: TicketRecord, at now: Int64) -> (ticket: TicketRecord, event: NewEvent) {
        var opened = next
        opened.status = .open
        opened.revision += 1
        let event = NewEvent(
            action: .ticketOpened, actor: resolved.assignedTo.isEmpty ? next.createdBy : resolved.assignedTo, reasoning: next.reason,
            detailsJSON: JSONValue.object([
                "ticket_id": .string(next.id), "status": .string(TicketRecord.Status.open.rawValue), "priority": .integer(Int64(next.priority)),
                "pending_action_id": next.pendingActionID.isEmpty ? .null : .string(next.pendingActionID),
                "after": .string(resolved.id), "ticket_state": opened.deskSnapshot,
            ]).serialized,
            occurredAtMs: now)
        return (opened, event)
    }

    // MARK: Approvals

    /// The pending approval of an action that was settled some other way (an
    /// operator's decision, an expiry, a code), withdrawn, and its
    /// `approval.cancelled` event; nil when the action is still undecided
    /// (the approval stands).
    public static func cancellation(
        of approval: ApprovalRecord, settled action: PendingActionRecord, actor: String, at now: Int64
    ) -> (approval: ApprovalRecord, event: NewEvent)? {
        guard !action.isUndecided, approval.status == .pending else { return nil }
        var cancelled = approval
        cancelled.finish(.cancelled, at: now)
        cancelled.revision += 1
        let details = JSONValue.object([
            "approval_id": .string(approval.id), "pending_action_id": .string(action.id), "status": .string(ApprovalRecord.Status.cancelled.rawValue),
            "pending_action_status": .string(action.status.rawValue),
        ])
        return (
            cancelled,
            NewEvent(
                action: .approvalCancelled, actor: actor, reasoning: "the pending action was settled otherwise",
                detailsJSON: details.serialized, occurredAtMs: now)
        )
    }

    // MARK: Events

    /// `event` with `members` set in its details object (what the store
    /// learned in the transaction, such as the ticket an escalation joined).
    public static func annotated(_ event: NewEvent, _ members: [String: JSONValue]) -> NewEvent {
        var details = (try? JSONValue(parsing: event.detailsJSON))?.objectValue ?? [:]
        details.merge(members) { _, new in new }
        var annotated = event
        annotated.detailsJSON = JSONValue.object(details).serialized
        return annotated
    }
}
