// Handoff — handoff.v1.Escalations (the operator desk) wired to the domain.

import Foundation
public import HandoffCore
public import HandoffDesks
import HandoffPolicy
import HandoffProto
public import HandoffRPC

extension TicketRecord {
    func proto(now: Int64) -> Ticket {
        let status: TicketStatus =
            switch self.status {
            case .open: .open
            case .claimed: .claimed
            case .resolved: .resolved
            case .waiting: .waiting
            }
        return Ticket(
            id: id, tenantID: tenant.rawValue, sessionID: sessionID, pendingActionID: pendingActionID, reason: reason,
            priority: Priority(rawValue: Int32(priority)), status: status,
            createdBy: Identity(actor: createdBy),
            assignedTo: assignedTo.isEmpty ? nil : Identity(actor: assignedTo),
            createdAtUnixMs: createdAtMs, claimedAtUnixMs: claimedAtMs, resolvedAtUnixMs: resolvedAtMs,
            slaDeadlineUnixMs: slaDeadlineMs, slaBreached: slaBreachRecorded || (claimedAtMs > slaDeadlineMs),
            outcome: TicketOutcome(rawValue: Int32(outcome)), resolutionNote: resolutionNote)
    }
}

extension SessionContext {
    func snapshot(takenAt: Int64) -> ContextSnapshot {
        ContextSnapshot(
            sessionID: session.id, sessionVersion: session.version, stateJSON: session.stateJSON,
            turns: turns.map { $0.proto(tenant: session.tenant) }, memories: memories.map(\.proto), totalTurns: totalTurns,
            takenAtUnixMs: takenAt)
    }
}

extension MethodRegistry {
    /// Registers Escalations: Escalate, GetTicket, ListQueue, Claim, Reply and Resolve.
    public mutating func registerEscalations(_ desk: EscalationService, clock: @escaping @Sendable () -> Int64 = SessionService.wallClockMs) {
        register(Escalations.escalate) { request, context in
            guard !request.sessionID.isEmpty else { throw RPCError(code: .invalidArgument, message: "session_id is required") }
            let (ticket, created) = try await desk.escalate(
                sessionID: request.sessionID, reason: request.reason, pendingActionID: request.pendingActionID, caller: context.caller)
            return EscalateResponse(ticket: ticket.proto(now: clock()), created: created)
        }
        register(Escalations.getTicket) { request, context in
            let view = try await desk.view(ticketID: request.ticketID, caller: context.caller)
            return GetTicketResponse(
                ticket: view.ticket.proto(now: clock()), snapshot: view.snapshot?.snapshot(takenAt: view.ticket.createdAtMs),
                liveContext: view.live?.snapshot(takenAt: clock()), pendingAction: view.pending?.proto)
        }
        register(Escalations.listQueue) { request, context in
            var query = TicketQuery()
            if !request.statuses.isEmpty {
                query.statuses = try Array(Set(request.statuses)).map { status throws(RPCError) in
                    switch status {
                    case .open: TicketRecord.Status.open
                    case .claimed: .claimed
                    case .resolved: .resolved
                    case .waiting: .waiting
                    default: throw RPCError(code: .invalidArgument, message: "statuses holds an unknown ticket status")
                    }
                }
            }
            // Each known value once: a list of a million unknown ones would
            // otherwise become a million SQL parameters (a store failure).
            query.priorities = try Set(request.priorities).sorted { $0.rawValue < $1.rawValue }.map { priority throws(RPCError) in
                switch priority {
                case .normal, .high, .urgent: Int(priority.rawValue)
                default: throw RPCError(code: .invalidArgument, message: "priorities holds a priority that is not normal, high or urgent")
                }
            }
            // A name is the operator of that name in the caller's tenant; a full identity is taken as it is.
            query.assignedTo =
                request.assignedTo.isEmpty
                ? nil
                : request.assignedTo.hasPrefix("handoff://")
                    ? request.assignedTo
                    : Principal(tenant: context.caller.tenant, role: .operator, name: request.assignedTo).uri

            query.limit = try pageLimit(request.pageSize)
            query.offset = request.pageToken.isEmpty ? 0 : try QueuePageToken.decode(request.pageToken)
            var probe = query
            probe.limit += 1
            let found = try await desk.queue(probe, caller: context.caller)
            let now = clock()
            return ListQueueResponse(
                tickets: found.prefix(query.limit).map { $0.proto(now: now) },
                nextPageToken: found.count > query.limit && query.offset + query.limit <= QueuePageToken.maximumOffset
                    ? QueuePageToken.encode(query.offset + query.limit) : "")
        }
        register(Escalations.claim) { request, context in
            let ticket = try await desk.claim(
                ticketID: request.ticketID, reassign: request.reassign, assignee: request.assignee, caller: context.caller)
            return ClaimResponse(ticket: ticket.proto(now: clock()))
        }
        register(Escalations.reply) { request, context in
            let turn = try await desk.reply(ticketID: request.ticketID, text: request.text, caller: context.caller)
            var proto = turn.proto(tenant: context.caller.tenant)
            proto.source = .operator
            return ReplyResponse(turn: proto)
        }
        register(Escalations.resolve) { request, context in
            let decision: String? =
                switch request.pendingActionDecision {
                case .release: "release"
                case .reject: "reject"
                case .leavePending: "leave"
                default: nil
                }
            let result = try await desk.resolve(
                ticketID: request.ticketID, outcome: Int(request.outcome.rawValue), note: request.note, decision: decision,
                caller: context.caller)
            var pending = result.pending?.proto
            pending?.releaseToken = result.releaseToken ?? ""
            return ResolveResponse(ticket: result.ticket.proto(now: clock()), pendingAction: pending)
        }
    }
}

extension MethodRegistry {
    /// Registers Operators/Watch: the desk feed of the caller's tenant. An
    /// approver sees only approvals with a step routed to them (by `policy`).
    mutating func registerWatch(
        _ feed: DeskFeed, policy: PolicyHolder, cursors: FeedCursorToken, clock: @escaping @Sendable () -> Int64 = SessionService.wallClockMs
    ) {
        register(Operators.watch, endsOnDrain: true) { request, context, writer in
            var kinds: Set<DeskItem.Kind> = []
            for kind in request.kinds {
                switch kind {
                case .ticketOpened: kinds.insert(.ticketOpened)
                case .ticketClaimed: kinds.insert(.ticketClaimed)
                case .ticketResolved: kinds.insert(.ticketResolved)
                case .ticketSlaBreached: kinds.insert(.ticketSLABreached)
                case .approvalRequested: kinds.insert(.approvalRequested)
                case .approvalDecided: kinds.insert(.approvalDecided)
                case .approvalExpired: kinds.insert(.approvalExpired)
                case .watcherLagged: break  // always sent
                case .unspecified, .unrecognized:
                    throw RPCError(code: .invalidArgument, message: "kinds holds an unspecified or unknown desk event kind")
                }
            }
            let priorities = Set(request.priorities.map { Int($0.rawValue) })
            let resume = request.resumeCursor.isEmpty ? nil : try cursors.decode(request.resumeCursor, tenant: context.caller.tenant)
            let filterKinds = request.kinds.isEmpty ? nil : kinds
            let caller = context.caller
            let items = try await feed.watch(after: resume, caller: caller) { kind, ticket, approval in
                if let filterKinds, !filterKinds.contains(kind) { return false }
                if !priorities.isEmpty, let ticket, !priorities.contains(ticket.priority) { return false }
                if caller.role == .approver {
                    guard let approval else { return false }
                    let settings = policy.current.policy.approvals
                    return approval.steps.contains { settings.routes($0.approvers, to: caller) }
                }
                return true
            }
            for try await item in items {
                let kind: DeskEventKind =
                    switch item.kind {
                    case .ticketOpened: .ticketOpened
                    case .ticketClaimed: .ticketClaimed
                    case .ticketResolved: .ticketResolved
                    case .ticketSLABreached: .ticketSlaBreached
                    case .approvalRequested: .approvalRequested
                    case .approvalDecided: .approvalDecided
                    case .approvalExpired: .approvalExpired
                    case .watcherLagged: .watcherLagged
                    }
                try await writer.write(
                    DeskEvent(
                        cursor: cursors.encode(item.position, tenant: caller.tenant), kind: kind,
                        actor: item.actor.isEmpty ? nil : Identity(actor: item.actor),
                        occurredAtUnixMs: item.occurredAtMs,
                        subject: item.ticket.map { .ticket($0.proto(now: clock())) } ?? item.approval.map { .approval($0.proto) }))
            }
        }
    }
}

extension MethodRegistry {
    /// Registers Analytics/EscalationStats.
    public mutating func registerAnalytics(_ desk: EscalationService) {
        register(Analytics.escalationStats) { request, context in
            guard (0...100).contains(request.topReasonsLimit) else {
                throw RPCError(code: .invalidArgument, message: "top_reasons_limit must be from 0 to 100, not \(request.topReasonsLimit)")
            }
            var since: Int64?
            var until: Int64?
            switch request.window {
            case .range(let range)?:
                guard range.sinceUnixMs > 0 else { throw RPCError(code: .invalidArgument, message: "range.since_unix_ms is required") }
                since = range.sinceUnixMs
                until = range.untilUnixMs == 0 ? nil : range.untilUnixMs
            case .durationMs(let duration)?:
                guard duration > 0 else { throw RPCError(code: .invalidArgument, message: "duration_ms must be positive") }
                until = SessionService.wallClockMs()
                since = until! - duration
            case nil:
                break
            }
            let stats = try await desk.stats(
                since: since, until: until, topReasons: request.topReasonsLimit == 0 ? 10 : Int(request.topReasonsLimit),
                caller: context.caller)
            return EscalationStatsResponse(
                sinceUnixMs: stats.since, untilUnixMs: stats.until, sessionsInWindow: stats.sessions, escalations: stats.escalations,
                escalationRate: stats.rate, topReasons: stats.topReasons.map { ReasonCount(reason: $0.reason, count: $0.count) },
                byPriority: stats.byPriority.map { PriorityCount(priority: Priority(rawValue: Int32($0.priority)), count: $0.count) },
                ticketsClaimed: stats.claimed, ticketsResolved: stats.resolved, medianTimeToClaimMs: stats.medianToClaim,
                p90TimeToClaimMs: stats.p90ToClaim, medianTimeToResolveMs: stats.medianToResolve, p90TimeToResolveMs: stats.p90ToResolve,
                alertThreshold: stats.threshold, alertActive: stats.alert)
        }
    }
}
