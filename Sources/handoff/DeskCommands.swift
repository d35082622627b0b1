// Handoff — the operator and approval desks from the command line:
// `handoff queue|ticket|claim|reply|resolve`, `handoff approvals`, `handoff approve|reject` and `handoff watch`.

import ArgumentParser
import Foundation
import HandoffClient
import HandoffProto
import HandoffRPC

/// Names of protocol enums as people type and read them.
enum Names {
    static func priority(_ p: Priority) -> String {
        switch p {
        case .urgent: "urgent"
        case .high: "high"
        case .normal: "normal"
        default: "unspecified"
        }
    }

    static func ticketStatus(_ s: TicketStatus) -> String {
        switch s {
        case .open: "open"
        case .claimed: "claimed"
        case .resolved: "resolved"
        case .waiting: "waiting"
        default: "unspecified"
        }
    }

    static func approvalStatus(_ s: ApprovalStatus) -> String {
        switch s {
        case .pending: "pending"
        case .waiting: "waiting"
        case .approved: "approved"
        case .rejected: "rejected"
        case .expired: "expired"
        case .cancelled: "cancelled"
        default: "unspecified"
        }
    }

    static func pendingStatus(_ s: PendingActionStatus) -> String {
        switch s {
        case .pending: "pending"
        case .confirmed: "confirmed"
        case .declined: "declined"
        case .expired: "expired"
        case .approved: "approved"
        case .rejected: "rejected"
        case .released: "released"
        case .executed: "executed"
        case .cancelled: "cancelled"
        default: "unspecified"
        }
    }

    static func deskKind(_ k: DeskEventKind) -> String {
        switch k {
        case .ticketOpened: "ticket_opened"
        case .ticketClaimed: "ticket_claimed"
        case .ticketResolved: "ticket_resolved"
        case .ticketSlaBreached: "ticket_sla_breached"
        case .approvalRequested: "approval_requested"
        case .approvalDecided: "approval_decided"
        case .approvalExpired: "approval_expired"
        case .watcherLagged: "watcher_lagged"
        default: "unspecified"
        }
    }

    static func identity(_ i: Identity?) -> String {
        guard let i else { return "" }
        return i.tenantID.isEmpty ? i.name : "\(i.tenantID)/\(i.name)"
    }

    static func action(_ a: Action?) -> [String: Any] {
        guard let a else { return [:] }
        var fields: [String: Any] = ["tool_name": a.toolName, "description": a.description, "parameters_json": a.parametersJSON]
        if !a.amount.isEmpty {
            fields["amount"] = a.amount
            fields["currency"] = a.currency
        }
        if let confidence = a.confidence { fields["confidence"] = confidence }
        return fields
    }
}

extension Ticket {
    func fields(now: Int64) -> [(String, Any)] {
        [
            ("ticket_id", id), ("session_id", sessionID), ("status", Names.ticketStatus(status)), ("priority", Names.priority(priority)),
            ("reason", reason), ("pending_action_id", pendingActionID), ("assigned_to", Names.identity(assignedTo)),
            ("age_seconds", max(0, (now - createdAtUnixMs) / 1000)), ("sla_breached", slaBreached),
            ("sla_deadline_unix_ms", slaDeadlineUnixMs),
        ]
    }
}

extension Approval {
    var fields: [(String, Any)] {
        [
            ("approval_id", id), ("session_id", sessionID), ("status", Names.approvalStatus(status)), ("current_level", currentLevel),
            ("amount", amount), ("currency", currency), ("reason", reason), ("requester", Names.identity(requester)),
            ("pending_action_id", pendingActionID), ("action", Names.action(editedAction ?? action)),
            (
                "steps",
                steps.map { step in
                    [
                        "level": step.level, "approvers": step.approvers, "status": Names.approvalStatus(step.status),
                        "decided_by": Names.identity(step.decidedBy), "comment": step.comment, "expires_at_unix_ms": step.expiresAtUnixMs,
                    ] as [String: Any]
                }
            ),
        ]
    }
}

/// Prints a list as one JSON array (`--json`) or as blocks of `key: value` lines.
func emitList(_ items: [[(String, Any)]], json: Bool, empty: String) throws {
    if json {
        let objects = items.map { Dictionary($0, uniquingKeysWith: { first, _ in first }) }
        let data = try JSONSerialization.data(withJSONObject: objects, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    } else if items.isEmpty {
        print(empty)
    } else {
        for (i, item) in items.enumerated() {
            if i > 0 { print("") }
            try emit(item, json: false)
        }
    }
}

func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

/// A ticket status as typed on the command line.
enum TicketStatusName: String, ExpressibleByArgument, CaseIterable {
    case open, claimed, waiting, resolved

    var proto: TicketStatus {
        switch self {
        case .open: .open
        case .claimed: .claimed
        case .waiting: .waiting
        case .resolved: .resolved
        }
    }
}

/// The operator desk's commands, each under one top-level name (`handoff
/// queue`, `handoff ticket`, `handoff claim`, `handoff reply`, `handoff resolve`).
enum DeskCommand {

    struct Queue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List open and claimed tickets, breached SLAs and urgent first.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Page size (1 to 500).") var limit: Int32 = 50
        @Option(help: "Only tickets in this status: open, claimed, waiting or resolved (repeatable; default open and claimed).")
        var status: [TicketStatusName] = []
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try connection.makeClient(for: .operator)
            let response = try await perform(
                client, Escalations.listQueue, ListQueueRequest(statuses: status.map(\.proto), pageSize: limit))
            await client.close()
            let now = nowMs()
            try emitList(response.tickets.map { $0.fields(now: now) }, json: json, empty: "the queue is empty")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ticket", abstract: "Show a ticket with the session's conversation as it is now.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Ticket id.") var ticket: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try connection.makeClient(for: .operator)
            let view = try await perform(client, Escalations.getTicket, GetTicketRequest(ticketID: ticket))
            await client.close()
            var fields = view.ticket?.fields(now: nowMs()) ?? []
            let context = view.liveContext ?? view.snapshot
            fields.append(("state_json", context?.stateJSON ?? ""))
            fields.append(
                (
                    "turns",
                    (context?.turns ?? []).map { turn in
                        ["sequence": turn.sequence, "input": turn.input, "output": turn.output, "author": Names.identity(turn.author)]
                            as [String: Any]
                    }
                ))
            if let pending = view.pendingAction {
                fields.append(
                    (
                        "pending_action",
                        [
                            "id": pending.id, "status": Names.pendingStatus(pending.status), "action": Names.action(pending.action),
                        ] as [String: Any]
                    ))
            }
            if json {
                try emit(fields, json: true)
                return
            }
            for (key, value) in fields where key != "turns" { print("\(key): \(plain(value))") }
            print("conversation:")
            for turn in context?.turns ?? [] {
                if !turn.input.isEmpty { print("  user: \(turn.input)") }
                if !turn.output.isEmpty {
                    print("  \(turn.source == .operator ? "operator" : turn.source == .system ? "system" : "agent"): \(turn.output)")
                }
            }
        }
    }

    struct Claim: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Claim a ticket (an admin may --reassign it).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Ticket id.") var ticket: String
        @Flag(help: "Reassign a ticket claimed by someone else (admin).") var reassign = false
        @Option(help: "Claim for this identity instead of yourself (admin).") var assignee = ""
        @Flag(help: "Print the ticket as JSON.") var json = false

        func run() async throws {
            let client = try connection.makeClient(for: .operator)
            let response = try await perform(
                client, Escalations.claim, ClaimRequest(ticketID: ticket, reassign: reassign, assignee: assignee))
            await client.close()
            if json { return try emit(response.ticket?.fields(now: nowMs()) ?? [], json: true) }
            print("claimed \(ticket) for \(Names.identity(response.ticket?.assignedTo))")
        }
    }

    struct Reply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reply into the conversation of a ticket you claimed.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Ticket id.") var ticket: String
        @Argument(help: "What to tell the user.") var text: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try connection.makeClient(for: .operator)
            let response = try await perform(client, Escalations.reply, ReplyRequest(ticketID: ticket, text: text))
            await client.close()
            if json { return try emit([("ticket_id", ticket), ("turn_sequence", response.turn?.sequence ?? 0)], json: true) }
            print("replied on \(ticket) as turn \(response.turn?.sequence ?? 0)")
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resolve a ticket you claimed, releasing or rejecting its action.")
        enum Outcome: String, ExpressibleByArgument, CaseIterable {
            case resolved, handedBack = "handed-back", dismissed
        }

        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Ticket id.") var ticket: String
        @Option(help: "How it ends: resolved, handed-back or dismissed.") var outcome: Outcome
        @Option(help: "A note for the agent and the record.") var note = ""
        @Flag(help: "Release the ticket's pending action (it runs).") var release = false
        @Flag(help: "Reject the ticket's pending action (it does not run).") var reject = false
        @Flag(help: "Leave the ticket's undecided pending action pending, for another desk or its expiry.")
        var leavePending = false
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            if [release, reject, leavePending].filter({ $0 }).count > 1 {
                throw ValidationError("give one of --release, --reject or --leave-pending")
            }
        }

        func run() async throws {
            let client = try connection.makeClient(for: .operator)
            let outcome: TicketOutcome =
                switch self.outcome {
                case .resolved: .resolved
                case .handedBack: .handedBack
                case .dismissed: .dismissed
                }
            // An undecided action would wait, and its agent with it, until it
            // expires: the operator says what becomes of it.
            if !release, !reject, !leavePending {
                let view = try await perform(client, Escalations.getTicket, GetTicketRequest(ticketID: ticket))
                if let pending = view.pendingAction, pending.status == .pending {
                    await client.close()
                    let what = pending.action.map { $0.description.isEmpty ? $0.toolName : "\($0.toolName): \($0.description)" } ?? ""
                    let amount = pending.action.map { $0.amount.isEmpty ? "" : " \($0.amount) \($0.currency)" } ?? ""
                    throw CommandFailure(
                        "ticket \(ticket) holds the undecided action \(pending.id) (\(what)\(amount)): "
                            + "add --release to let it run, --reject to refuse it, or --leave-pending to leave it pending")
                }
            }
            let response = try await perform(
                client, Escalations.resolve,
                ResolveRequest(
                    ticketID: ticket, outcome: outcome, note: note,
                    pendingActionDecision: release ? .release : reject ? .reject : leavePending ? .leavePending : .unspecified))
            await client.close()
            if json {
                var fields = response.ticket?.fields(now: nowMs()) ?? []
                if let pending = response.pendingAction {
                    fields += [("pending_action_status", Names.pendingStatus(pending.status)), ("release_token", pending.releaseToken)]
                }
                return try emit(fields, json: true)
            }
            var line = "resolved \(ticket)"
            if let pending = response.pendingAction { line += "; pending action \(pending.id) is \(Names.pendingStatus(pending.status))" }
            print(line)
        }
    }
}

struct ApprovalsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approvals", abstract: "The approval desk: what waits for you (`handoff approve` and `handoff reject` decide).",
        subcommands: [List.self, Show.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the approvals whose current step you may decide.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Only approvals of this session.") var session = ""
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try connection.makeClient(for: .approver)
            let response = try await perform(
                client, Approvals.listPendingApprovals, ListPendingApprovalsRequest(sessionID: session, pageSize: 500))
            await client.close()
            try emitList(response.approvals.map(\.fields), json: json, empty: "nothing waits for you")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an approval with its chain.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Approval id.") var approval: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try connection.makeClient(for: .approver)
            let response = try await perform(client, Approvals.getApproval, GetApprovalRequest(approvalID: approval))
            await client.close()
            try emit(response.approval?.fields ?? [], json: json)
        }
    }

    /// Decides approvals in one batch call; prints one line per approval and
    /// fails (exit 1) when any was refused.
    static func decide(_ connection: ConnectionOptions, _ decisions: [ApprovalDecision], json: Bool) async throws {
        let client = try connection.makeClient(for: .approver)
        let response = try await perform(client, Approvals.decideApproval, DecideApprovalRequest(decisions: decisions))
        await client.close()
        if json {
            try emitList(
                response.results.map { result in
                    switch result.result {
                    case .approval(let approval)?: approval.fields
                    case .error(let error)?: [("approval_id", result.approvalID), ("error_code", error.code), ("error", error.message)]
                    case nil: [("approval_id", result.approvalID)]
                    }
                }, json: true, empty: "")
            if response.results.contains(where: { if case .approval? = $0.result { false } else { true } }) { throw ExitCode.failure }
            return
        }
        var refused = 0
        for result in response.results {
            switch result.result {
            case .approval(let approval)?:
                let step = approval.status == .pending ? "; now at level \(approval.currentLevel)" : ""
                print("\(result.approvalID): \(Names.approvalStatus(approval.status))\(step)")
            case .error(let error)?:
                refused += 1
                print("\(result.approvalID): refused: \(RPCError.Code(rawValue: error.code)): \(error.message)")
            case nil:
                refused += 1
                print("\(result.approvalID): no result")
            }
        }
        if refused > 0 { throw ExitCode.failure }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approve the current step of one or more approvals.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Approval ids.") var approvals: [String]
        @Option(help: "Your comment.") var comment = ""
        @Option(help: "Decide only if this level is still the current one.") var level: Int32 = 0
        @Option(help: "Approve a lower amount instead (the action is released with it).") var amount = ""
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            var decisions: [ApprovalDecision] = []
            for id in approvals {
                var decision = ApprovalDecision(approvalID: id, verdict: .approve, comment: comment, expectedLevel: level)
                if !amount.isEmpty {
                    // The edit keeps the action and changes its amount: read it first.
                    let client = try connection.makeClient(for: .approver)
                    let current = try await perform(client, Approvals.getApproval, GetApprovalRequest(approvalID: id)).approval
                    await client.close()
                    var edited = current?.editedAction ?? current?.action ?? Action()
                    edited.amount = amount
                    // The tool's arguments carry the amount too (the server
                    // rewrites the argument the policy names for the tool).
                    if var arguments = (try? JSONSerialization.jsonObject(with: Data(edited.parametersJSON.utf8))) as? [String: Any],
                        let before = arguments["amount"]
                    {
                        arguments["amount"] = before is String ? amount : (Decimal(string: amount).map(NSDecimalNumber.init(decimal:)) ?? amount)
                        if let data = try? JSONSerialization.data(withJSONObject: arguments, options: [.sortedKeys]) {
                            edited.parametersJSON = String(decoding: data, as: UTF8.self)
                        }
                    }
                    decision.editedAction = edited
                }
                decisions.append(decision)
            }
            try await ApprovalsCommand.decide(connection, decisions, json: json)
        }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reject one or more approvals (their actions are rejected).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Approval ids.") var approvals: [String]
        @Option(help: "Your comment.") var comment = ""
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await ApprovalsCommand.decide(
                connection, approvals.map { ApprovalDecision(approvalID: $0, verdict: .reject, comment: comment) }, json: json)
        }
    }
}

struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch", abstract: "Print desk events as they happen (tickets and approvals), one line each.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Stop after this many events (0: until interrupted).") var count = 0
    @Option(help: "Resume after this cursor (from an earlier event).") var resume = ""
    @Flag(help: "Print JSON lines.") var json = false

    func run() async throws {
        let client = try connection.makeClient(for: .operator)
        var seen = 0
        do {
            let stream = try await client.stream(
                Operators.watch, WatchRequest(resumeCursor: resume), options: CallOptions(timeout: nil))
            for try await event in stream {
                var fields: [(String, Any)] = [
                    ("kind", Names.deskKind(event.kind)), ("cursor", event.cursor), ("actor", Names.identity(event.actor)),
                ]
                switch event.subject {
                case .ticket(let ticket)?:
                    fields += [("ticket_id", ticket.id), ("priority", Names.priority(ticket.priority)), ("reason", ticket.reason)]
                case .approval(let approval)?:
                    fields += [
                        ("approval_id", approval.id), ("level", approval.currentLevel), ("amount", approval.amount), ("reason", approval.reason),
                    ]
                case nil: break
                }
                if json {
                    try emit(fields, json: true)
                } else {
                    print(fields.filter { $0.0 != "cursor" }.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
                }
                fflush(nil)  // every stream: a pipe reader sees each event at once
                seen += 1
                if count > 0, seen >= count { break }
            }
        } catch let error as RPCError {
            await client.close()
            throw CommandFailure(Advice.explain(error, call: "handoff.v1.Operators/Watch"))
        }
        await client.close()
    }
}

struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Escalation analytics: rate, top reasons, priorities, claim and resolve times, and the alert.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "The window: this many hours ending now (default: the policy's alert window).") var hours: Double?
    @Option(help: "How many top reasons to show.") var top: Int32 = 10
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let client = try connection.makeClient(for: .operator)
        var request = EscalationStatsRequest(topReasonsLimit: top)
        if let hours { request.window = .durationMs(Int64(hours * 3_600_000)) }
        let s = try await perform(client, Analytics.escalationStats, request)
        await client.close()
        try emit(
            [
                ("since_unix_ms", s.sinceUnixMs), ("until_unix_ms", s.untilUnixMs), ("sessions", s.sessionsInWindow),
                ("escalations", s.escalations), ("escalation_rate", (s.escalationRate * 10_000).rounded() / 10_000),
                ("top_reasons", s.topReasons.map { ["reason": $0.reason, "count": $0.count] as [String: Any] }),
                ("by_priority", Dictionary(s.byPriority.map { (Names.priority($0.priority), $0.count) }, uniquingKeysWith: +)),
                ("tickets_claimed", s.ticketsClaimed), ("tickets_resolved", s.ticketsResolved),
                ("median_time_to_claim_ms", s.medianTimeToClaimMs), ("p90_time_to_claim_ms", s.p90TimeToClaimMs),
                ("median_time_to_resolve_ms", s.medianTimeToResolveMs), ("p90_time_to_resolve_ms", s.p90TimeToResolveMs),
                ("alert_threshold", s.alertThreshold), ("alert_active", s.alertActive),
            ], json: json)
    }
}

struct ReviewsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reviews",
        abstract: "Automated actions the policy's sampling rate picked for review after the fact, newest first.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Only the last this many hours.") var hours: Double?
    @Option(help: "How many to show.") var limit: Int32 = 50
    @Option(help: "The next_page_token of the previous page.") var pageToken = ""
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let client = try connection.makeClient()
        let since = hours.map { nowMs() - Int64($0 * 3_600_000) } ?? 0
        let response = try await perform(
            client, Sessions.listEvents,
            ListEventsRequest(
                actions: ["action.sampled_for_review"], sinceUnixMs: since, order: .newestFirst, pageSize: limit, pageToken: pageToken))
        await client.close()
        let items: [[(String, Any)]] = response.events.map { event in
            [
                ("session_id", event.sessionID), ("sequence", event.sequence), ("agent", Names.identity(event.actor)),
                ("what", event.reasoning), ("details_json", event.detailsJSON), ("occurred_at_unix_ms", event.occurredAtUnixMs),
            ]
        }
        try emitList(items, json: json, empty: "nothing was sampled for review")
        if !json, !response.nextPageToken.isEmpty { print("\nmore: --page-token \(response.nextPageToken)") }
    }
}
