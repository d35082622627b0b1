// Handoff — the operator desk: an escalation hands a session to a human with
// a snapshot of its context; operators list the queue, claim a ticket, reply
// into the conversation and resolve it, releasing or rejecting the action it
// held. One unresolved ticket per session; every step is an event written in
// the same transaction as the change.

import Crypto
import Foundation
public import HandoffCore
public import HandoffPolicy
import Synchronization

/// A ticket with what GetTicket shows beside it.
public struct TicketView: Sendable, Hashable {
    public var ticket: TicketRecord
    public var snapshot: SessionContext?
    public var live: SessionContext?
    public var pending: PendingActionRecord?
}

/// What EscalationStats answers.
public struct EscalationStats: Sendable {
    public var since: Int64
    public var until: Int64
    public var sessions: Int64
    public var escalations: Int64
    public var rate: Double
    public var topReasons: [(reason: String, count: Int64)]
    /// Urgent first.
    public var byPriority: [(priority: Int, count: Int64)]
    public var claimed: Int64
    public var resolved: Int64
    public var medianToClaim: Int64
    public var p90ToClaim: Int64
    public var medianToResolve: Int64
    public var p90ToResolve: Int64
    public var threshold: Double
    public var alert: Bool
}

public final class EscalationService: Sendable {
    private let store: any Store
    private let sessions: SessionService
    private let policy: PolicyHolder
    private let confirmations: ConfirmationService
    private let clock: @Sendable () -> Int64
    /// Told of desk events after they committed (Operators/Watch).
    public let desk: DeskHub
    private let notices: NoticeSender
    /// Per tenant: when its escalation rate was last counted (at most once a
    /// second, however many escalations) and when its alert last went out.
    private let alerts = Mutex<[TenantID: (counted: Int64, sent: Int64?)]>([:])

    public init(
        store: any Store, sessions: SessionService, policy: PolicyHolder, confirmations: ConfirmationService,
        desk: DeskHub = DeskHub(), notices: NoticeSender = NoticeSender(),
        clock: @escaping @Sendable () -> Int64 = SessionService.wallClockMs
    ) {
        self.notices = notices
        self.store = store
        self.sessions = sessions
        self.policy = policy
        self.confirmations = confirmations
        self.desk = desk
        self.clock = clock
    }

    /// Opens a ticket for the session, or returns its unresolved one (`created` false).
    public func escalate(
        sessionID: String, reason: String, pendingActionID: String, minimumPriority: Int = 1, caller: Caller
    ) async throws(HandoffError) -> (ticket: TicketRecord, created: Bool) {
        let reason = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty else { throw .invalid("reason is required: say why a human is needed") }
        guard reason.utf8.count <= Self.reasonBytes else { throw .invalid("reason is longer than \(Self.reasonBytes) bytes") }
        if !pendingActionID.isEmpty {
            let action = try await confirmations.load(pendingActionID, caller: caller)
            guard action.sessionID == sessionID else {
                throw .invalid("pending action \(pendingActionID) belongs to another session")
            }
        }
        let (ticket, turn, event) = try await self.ticket(
            sessionID: sessionID, reason: reason, pendingActionID: pendingActionID, minimumPriority: minimumPriority, caller: caller,
            escalation: policy.current.policy.escalation, now: clock())
        let store = self.store
        let opened = try await sessions.changeBeside(id: sessionID, caller: caller, addsTurns: true) { () throws(HandoffError) in
            do throws(StoreError) {
                let opened = try await store.openTicket(ticket, turn: turn, event: event)
                return ((opened.ticket, opened.created, opened.events), status: opened.sessionStatus)
            } catch {
                throw HandoffError(error)
            }
        }
        await announce(PlacedTicket(record: opened.0, created: opened.1), events: opened.2, caller: caller)
        return (opened.0, opened.1)
    }

    /// The ticket, not resolved yet, that decides `pending`, if any.
    func unresolvedTicketID(of pending: PendingActionRecord, caller: Caller) async throws(HandoffError) -> String? {
        do {
            return try await store.unresolvedTicketID(tenant: caller.tenant, sessionID: pending.sessionID, pendingActionID: pending.id)
        } catch {
            throw HandoffError(error)
        }
    }

    /// The longest reason an escalation takes, in bytes.
    static let reasonBytes = 4096

    /// A ticket for the session, ready to be written (by `escalate`, or by
    /// AssessAction in the assessment's own transaction): the session's
    /// context as it is now is its snapshot, `escalation` (the policy the
    /// call works with) sets its priority and SLA deadline.
    func ticket(
        sessionID: String, reason: String, pendingActionID: String, minimumPriority: Int, caller: Caller, escalation: Policy.Escalation, now: Int64
    ) async throws(HandoffError) -> (ticket: TicketRecord, turn: TurnRecord, event: NewEvent) {
        // The snapshot: what the operator sees as it was when escalated.
        let snapshot = try await sessions.context(id: sessionID, turnLimit: 50, caller: caller, responseBytes: Self.contextBytes)
        let priority = max(escalation.priority(for: reason), minimumPriority)
        let ticket = TicketRecord(
            tenant: caller.tenant, id: RecordID.make("t-"), sessionID: sessionID, pendingActionID: pendingActionID,
            reason: reason, priority: priority, status: .open, createdBy: caller.identity, assignedTo: "", createdAtMs: now,
            slaDeadlineMs: now + Int64(escalation.slaSeconds[priority] ?? 3600) * 1000, snapshotJSON: Self.json(snapshot).serialized)
        let turn = TurnRecord(
            sessionID: sessionID, sequence: 0, input: "", output: "Handing you over to a person; someone will reply here.",
            metadataJSON: JSONValue.object(["source": .string("system"), "ticket_id": .string(ticket.id)]).serialized,
            reasoning: reason, author: caller.identity, createdAtMs: now)
        let event = NewEvent(
            action: .sessionEscalated, actor: caller.identity, reasoning: reason,
            detailsJSON: JSONValue.object([
                "ticket_id": .string(ticket.id), "priority": .integer(Int64(priority)),
                "pending_action_id": pendingActionID.isEmpty ? .null : .string(pendingActionID),
                "ticket_state": ticket.deskSnapshot,
            ]).serialized,
            occurredAtMs: now)
        return (ticket, turn, event)
    }

    /// After a ticket's write committed: watchers are told, and operators
    /// alerted if escalations pass the policy's rate.
    func announce(_ placed: PlacedTicket, events: [EventRecord], caller: Caller) async {
        desk.publish(events)
        if placed.created { await alertIfNeeded(caller) }
    }

    /// Tells operators and admins, through the notice channels, when the
    /// escalation rate over the policy's window passes its threshold: once per
    /// window, not once per escalation.
    private func alertIfNeeded(_ caller: Caller) async {
        let settings = policy.current.policy.escalation
        let now = clock()
        let window = Int64(settings.alertWindowSeconds) * 1000
        let due = alerts.withLock { alerts -> Bool in
            let last = alerts[caller.tenant]
            if let sent = last?.sent, now - sent < window { return false }
            if let counted = last?.counted, now - counted < 1000 { return false }
            alerts[caller.tenant] = (now, last?.sent)
            return true
        }
        guard due else { return }
        // Two index counts on every escalation; the full stats only when the alert goes out.
        guard let counts = try? await store.escalationCounts(tenant: caller.tenant, since: now + 1 - window, until: now + 1),
            counts.sessions > 0, Double(counts.tickets) / Double(counts.sessions) > settings.alertThreshold,
            let stats = try? await stats(since: nil, until: nil, topReasons: 3, caller: caller), stats.alert
        else { return }
        // Claim the window before sending, so concurrent escalations send one alert.
        let first = alerts.withLock { alerts -> Bool in
            if let sent = alerts[caller.tenant]?.sent, now - sent < window { return false }
            alerts[caller.tenant] = (now, now)
            return true
        }
        guard first else { return }
        let percent = (stats.rate * 1000).rounded() / 10
        let reasons = stats.topReasons.map { "\($0.reason) (\($0.count))" }.joined(separator: ", ")
        notices.send(
            DeskNotice(
                kind: "escalation.alert", tenant: caller.tenant, approvalID: "", sessionID: "", level: 0,
                recipients: ["role:operator", "role:admin"],
                summary: "escalation rate \(percent)% (\(stats.escalations) of \(stats.sessions) sessions) over the last "
                    + "\(settings.alertWindowSeconds / 3600) h is above \(settings.alertThreshold * 100)%; top reasons: \(reasons)",
                occurredAtMs: now))
    }

    /// Bytes of a ticket's snapshot, and of its live context, at most (GetTicket carries both).
    static let contextBytes = 1_536 * 1024

    /// The ticket, its snapshot, the session's live context and its pending action.
    public func view(ticketID: String, caller: Caller) async throws(HandoffError) -> TicketView {
        let ticket = try await load(ticketID, caller: caller)
        // Snapshot and live context share one answer (GetTicket): half the room each.
        let snapshot = (try? JSONValue(parsing: ticket.snapshotJSON)).flatMap(Self.context(from:))
            .map { SessionService.fitted($0, within: Self.contextBytes) }
        let live = try? await sessions.context(id: ticket.sessionID, turnLimit: 50, caller: caller, responseBytes: Self.contextBytes)
        var pending: PendingActionRecord?
        if !ticket.pendingActionID.isEmpty { pending = try? await confirmations.load(ticket.pendingActionID, caller: caller) }
        return TicketView(ticket: ticket, snapshot: snapshot, live: live, pending: pending)
    }

    /// Open and claimed tickets (or as filtered), breached SLAs first, then priority, then age.
    public func queue(_ query: TicketQuery, caller: Caller) async throws(HandoffError) -> [TicketRecord] {
        do {
            return try await store.tickets(tenant: caller.tenant, query: query)
        } catch {
            throw HandoffError(error)
        }
    }

    /// Claims a ticket for the caller (or, for an admin reassigning, for `assignee`).
    public func claim(ticketID: String, reassign: Bool, assignee: String, caller: Caller) async throws(HandoffError) -> TicketRecord {
        let started = clock()
        let claimed = try await change(ticketID, caller: caller, addsTurns: false) { ticket, now throws(HandoffError) in
            guard ticket.status != .resolved else { throw .conflict("ticket \(ticket.id) is resolved") }
            guard ticket.status != .waiting else {
                throw .conflict(
                    "ticket \(ticket.id) is waiting: the session's ticket in hand decides another action first, and this one opens when that one is resolved"
                )
            }
            // A bare name is the operator of that name in the caller's tenant.
            let target =
                assignee.isEmpty
                ? caller.identity
                : assignee.hasPrefix("handoff://") ? assignee : Principal(tenant: caller.tenant, role: .operator, name: assignee).uri
            // Only someone of this tenant who works tickets (an operator or admin) may hold one.
            if target != caller.identity {
                guard let holder = Principal(uri: target), holder.tenant == caller.tenant, holder.role == .operator || holder.role == .admin
                else {
                    throw .invalid(
                        "assignee \(target) is not an operator or admin of tenant \(caller.tenant.rawValue) (handoff://tenant/\(caller.tenant.rawValue)/operator/<name>)"
                    )
                }
            }
            if ticket.status == .claimed, ticket.assignedTo != target {
                guard reassign, caller.role == .admin else {
                    throw .conflict("ticket \(ticket.id) is claimed by \(ticket.assignedTo); only an admin may reassign it")
                }
            }
            if target != caller.identity, caller.role != .admin {
                throw .forbidden("only an admin claims a ticket for someone else")
            }
            var claimed = ticket
            claimed.status = .claimed
            claimed.assignedTo = target
            claimed.claimedAtMs = ticket.claimedAtMs == 0 ? now : ticket.claimedAtMs
            return (claimed, nil, [Self.event(.ticketClaimed, claimed, caller, now, ["assigned_to": .string(target)])])
        }.ticket
        // Claimed for the first time by this call (a reassignment keeps the first claim's time).
        if claimed.claimedAtMs >= started { DeskMetrics.ticketClaimed(waitedMs: claimed.claimedAtMs - claimed.createdAtMs) }
        return claimed
    }

    /// Adds the operator's reply to the conversation, visible to the agent in GetContext.
    public func reply(ticketID: String, text: String, caller: Caller) async throws(HandoffError) -> TurnRecord {
        guard !text.isEmpty, text.utf8.count <= 64 * 1024 else { throw .invalid("text must be 1 byte to 64 KiB") }
        let result = try await change(ticketID, caller: caller, addsTurns: true) { ticket, now throws(HandoffError) in
            guard ticket.status == .claimed, ticket.assignedTo == caller.identity else {
                throw .conflict("reply on ticket \(ticket.id) needs it claimed by you (it is \(ticket.status))")
            }
            let turn = TurnRecord(
                sessionID: ticket.sessionID, sequence: 0, input: "", output: text,
                metadataJSON: JSONValue.object(["source": .string("operator"), "ticket_id": .string(ticket.id)]).serialized,
                reasoning: "operator reply", author: caller.identity, createdAtMs: now)
            return (ticket, turn, [Self.event(.ticketReplied, ticket, caller, now, ["text": .string(text)])])
        }
        guard let turn = result.turn else { throw .storeFailed("the reply was not stored") }
        return turn
    }

    /// Closes the ticket, hands the session back, and releases or rejects its pending action.
    /// - Parameter decision: "release", "reject", or nil to leave the action as it is.
    public func resolve(
        ticketID: String, outcome: Int, note: String, decision: String?, caller: Caller
    ) async throws(HandoffError) -> (ticket: TicketRecord, pending: PendingActionRecord?, releaseToken: String?) {
        guard (1...3).contains(outcome) else { throw .invalid("outcome is required (resolved, handed back or dismissed)") }
        let current = try await load(ticketID, caller: caller)
        if caller.role != .admin, current.assignedTo != caller.identity {
            throw .forbidden(
                "an operator resolves only tickets they claimed; \(ticketID) is claimed by \(current.assignedTo.isEmpty ? "nobody" : current.assignedTo)"
            )
        }
        if let decision, decision != "leave", current.pendingActionID.isEmpty {
            throw .invalid("ticket \(ticketID) holds no pending action to decide")
        }
        // An undecided action is never left behind silently: the agent would wait for it until it expires.
        if decision == nil, !current.pendingActionID.isEmpty, current.status != .resolved,
            try await confirmations.load(current.pendingActionID, caller: caller).isUndecided
        {
            throw .conflict(
                "ticket \(ticketID) holds undecided pending action \(current.pendingActionID): say what becomes of it (pending_action_decision RELEASE, REJECT or LEAVE_PENDING)"
            )
        }
        var decided: (PendingActionRecord, String?)?
        // An action an approval chain is deciding is refused inside settle's turn (ConfirmationService.decide).
        if let decision, decision != "leave", current.status != .resolved {
            decided = try await confirmations.settle(current.pendingActionID, release: decision == "release", note: note, caller: caller)
        }
        let ticket = try await change(ticketID, caller: caller, addsTurns: true) { ticket, now throws(HandoffError) in
            guard ticket.status != .resolved else { throw .conflict("ticket \(ticket.id) is already resolved") }
            var resolved = ticket
            resolved.status = .resolved
            resolved.outcome = outcome
            resolved.resolutionNote = note
            resolved.resolvedAtMs = now
            // The conversation says the person is done, so the agent sees it in GetContext.
            let turn = TurnRecord(
                sessionID: ticket.sessionID, sequence: 0, input: "",
                output: "The person handling this has finished" + (note.isEmpty ? "." : ": \(note)"),
                metadataJSON: JSONValue.object([
                    "source": .string("system"), "ticket_id": .string(ticket.id), "outcome": .integer(Int64(outcome)),
                ]).serialized,
                reasoning: "ticket resolved", author: caller.identity, createdAtMs: now)
            return (
                resolved, turn,
                [
                    Self.event(
                        .ticketResolved, resolved, caller, now,
                        [
                            "outcome": .integer(Int64(outcome)), "note": .string(note),
                            "pending_action_decision": decision.map { .string($0) } ?? .null,
                        ])
                ]
            )
        }.ticket
        DeskMetrics.ticketResolved(tookMs: ticket.resolvedAtMs - ticket.createdAtMs)
        return (ticket, decided?.0, decided?.1)
    }

    /// Escalation statistics over `since..<until` (nil: the policy's alert window ending now).
    public func stats(since: Int64?, until: Int64?, topReasons: Int, caller: Caller) async throws(HandoffError) -> EscalationStats {
        let settings = policy.current.policy.escalation
        let end = until ?? clock() + 1  // up to now, this millisecond included
        let start = since ?? end - Int64(settings.alertWindowSeconds) * 1000
        guard start < end else { throw .invalid("the window is empty: since must be before until") }
        let window: (tickets: [TicketRecord], sessions: Int64)
        do {
            window = try await store.escalationWindow(tenant: caller.tenant, since: start, until: end)
        } catch {
            throw HandoffError(error)
        }
        var reasons: [String: Int64] = [:]
        for ticket in window.tickets { reasons[ticket.reason.trimmingCharacters(in: .whitespacesAndNewlines).lowercased(), default: 0] += 1 }
        let top = reasons.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(topReasons)
        func rank(_ values: [Int64], _ fraction: Double) -> Int64 {
            guard !values.isEmpty else { return 0 }
            let sorted = values.sorted()
            return sorted[max(0, Int((fraction * Double(sorted.count)).rounded(.up)) - 1)]
        }
        let claimed = window.tickets.filter { $0.claimedAtMs > 0 }.map { $0.claimedAtMs - $0.createdAtMs }
        let resolved = window.tickets.filter { $0.resolvedAtMs > 0 }.map { $0.resolvedAtMs - $0.createdAtMs }
        let rate = window.sessions == 0 ? 0 : Double(window.tickets.count) / Double(window.sessions)
        return EscalationStats(
            since: start, until: end, sessions: window.sessions, escalations: Int64(window.tickets.count), rate: rate,
            topReasons: top.map { ($0.key, $0.value) },
            byPriority: [3, 2, 1].map { priority in (priority, Int64(window.tickets.filter { $0.priority == priority }.count)) },
            claimed: Int64(claimed.count), resolved: Int64(resolved.count),
            medianToClaim: rank(claimed, 0.5), p90ToClaim: rank(claimed, 0.9),
            medianToResolve: rank(resolved, 0.5), p90ToResolve: rank(resolved, 0.9),
            threshold: settings.alertThreshold, alert: rate > settings.alertThreshold)
    }

    private func load(_ id: String, caller: Caller) async throws(HandoffError) -> TicketRecord {
        guard !id.isEmpty else { throw .invalid("ticket_id is required") }
        let found: TicketRecord?
        do {
            found = try await store.ticket(tenant: caller.tenant, id: id)
        } catch {
            throw HandoffError(error)
        }
        guard let found else { throw .notFound("ticket \(id) not found") }
        return found
    }

    /// Runs `body` on the ticket as stored, in its session's turn, and writes what it returns.
    private func change(
        _ id: String, caller: Caller, addsTurns: Bool,
        _ body: @escaping @Sendable (TicketRecord, Int64) async throws(HandoffError) -> (TicketRecord, TurnRecord?, [NewEvent])
    ) async throws(HandoffError) -> (ticket: TicketRecord, turn: TurnRecord?) {
        let found = try await load(id, caller: caller)
        let store = self.store
        return try await sessions.changeBeside(id: found.sessionID, caller: caller, addsTurns: addsTurns) { () throws(HandoffError) in
            let ticket = try await self.load(id, caller: caller)
            let (next, turn, events) = try await body(ticket, self.clock())
            do throws(StoreError) {
                let written = try await store.updateTicket(next, turn: turn, events: events)
                self.desk.publish(written.events)
                return ((written.ticket, written.turn), status: written.sessionStatus)
            } catch {
                if case .versionConflict = error { throw .staleVersion("ticket \(id) changed meanwhile; read it again and retry") }
                throw HandoffError(error)
            }
        }
    }

    private static func event(
        _ name: EventAction, _ ticket: TicketRecord, _ caller: Caller, _ now: Int64, _ extra: [String: JSONValue]
    ) -> NewEvent {
        var details = extra
        details["ticket_id"] = .string(ticket.id)
        details["status"] = .string(ticket.status.rawValue)
        details["ticket_state"] = ticket.deskSnapshot
        return NewEvent(action: name, actor: caller.identity, reasoning: "", detailsJSON: JSONValue.object(details).serialized, occurredAtMs: now)
    }

    static func json(_ context: SessionContext) -> JSONValue {
        .object([
            "session_id": .string(context.session.id), "version": .integer(context.session.version),
            "state_json": .string(context.session.stateJSON), "total_turns": .integer(context.totalTurns),
            "turns": .array(
                context.turns.map { turn in
                    .object([
                        "sequence": .integer(turn.sequence), "input": .string(turn.input), "output": .string(turn.output),
                        "metadata_json": .string(turn.metadataJSON), "reasoning": .string(turn.reasoning), "author": .string(turn.author),
                        "created_at_ms": .integer(turn.createdAtMs),
                    ])
                }),
            "memories": .array(
                context.memories.map { memory in
                    .object([
                        "sequence": .integer(memory.sequence), "content": .string(memory.content),
                        "metadata_json": .string(memory.metadataJSON), "created_at_ms": .integer(memory.createdAtMs),
                    ])
                }),
            "session": .object([
                "tenant": .string(context.session.tenant.rawValue), "status": .string(context.session.status.rawValue),
                "labels": .object(context.session.labels.mapValues(JSONValue.string)),
                "created_at_ms": .integer(context.session.createdAtMs), "updated_at_ms": .integer(context.session.updatedAtMs),
            ]),
        ])
    }

    static func context(from value: JSONValue) -> SessionContext? {
        guard let m = value.objectValue, case .string(let id)? = m["session_id"], case .integer(let version)? = m["version"],
            case .string(let state)? = m["state_json"], case .integer(let total)? = m["total_turns"],
            case .array(let turns)? = m["turns"], case .array(let memories)? = m["memories"],
            let s = m["session"]?.objectValue, case .string(let tenant)? = s["tenant"], case .string(let statusName)? = s["status"],
            case .integer(let created)? = s["created_at_ms"], case .integer(let updated)? = s["updated_at_ms"]
        else { return nil }
        // A word this version does not know reads as active, as the protocol showed it before.
        let status = SessionRecord.Status(rawValue: statusName) ?? .active
        func text(_ o: [String: JSONValue], _ k: String) -> String { if case .string(let v)? = o[k] { v } else { "" } }
        func int(_ o: [String: JSONValue], _ k: String) -> Int64 { if case .integer(let v)? = o[k] { v } else { 0 } }
        let labels = (s["labels"]?.objectValue ?? [:]).compactMapValues { if case .string(let v) = $0 { v } else { nil } }
        return SessionContext(
            session: SessionRecord(
                tenant: TenantID(tenant), id: id, version: version, stateJSON: state, status: status, labels: labels,
                createdAtMs: created, updatedAtMs: updated),
            turns: turns.compactMap(\.objectValue).map { t in
                TurnRecord(
                    sessionID: id, sequence: int(t, "sequence"), input: text(t, "input"), output: text(t, "output"),
                    metadataJSON: text(t, "metadata_json"), reasoning: text(t, "reasoning"), author: text(t, "author"),
                    createdAtMs: int(t, "created_at_ms"))
            },
            memories: memories.compactMap(\.objectValue).map { m in
                MemoryRecord(
                    sessionID: id, sequence: int(m, "sequence"), content: text(m, "content"), metadataJSON: text(m, "metadata_json"),
                    createdAtMs: int(m, "created_at_ms"))
            },
            totalTurns: total)
    }
}

extension ConfirmationService {
    /// Releases or rejects an undecided pending action by a human's decision
    /// (an operator resolving its ticket). Returns it and, when released, its token.
    func settle(_ id: String, release: Bool, note: String = "", caller: Caller) async throws(HandoffError) -> (PendingActionRecord, String?) {
        try await decide(id, caller: caller) { (found, now) throws(HandoffError) in
            var action = found
            guard action.isUndecided else { throw .conflict("pending action \(action.id) is \(action.status), not pending") }
            action.updatedAtMs = now
            action.awaitingConfirmation = false
            action.mfaCodeHash = nil
            action.decidedBy = caller.identity
            action.decisionComment = note
            var token: String?
            if release {
                let released = self.releaseToken(for: action)
                token = released
                action.status = .released
                action.releaseTokenHash = Array(SHA256.hash(data: Data(released.utf8)))
            } else {
                action.status = .rejected
            }
            let (stored, status) = try await self.write(
                action,
                events: [
                    self.event(release ? .actionReleased : .actionRejected, action, caller, now, ["by": .string("operator")])
                ])
            return ((stored, token), status)
        }
    }
}
