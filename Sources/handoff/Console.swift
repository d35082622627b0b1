// Handoff — `handoff console`: a full-screen view of the desks for operators
// and approvers. The queue and the approvals waiting for you, live from
// Operators/Watch; the selected ticket's conversation; keys to claim, reply,
// resolve, approve and reject. It redraws on resize and every second (ages,
// SLA clocks), and when the connection drops it says so and carries on from
// the last event it saw once the server is back.

import ArgumentParser
import Foundation
import HandoffClient
import HandoffProto
import HandoffRPC

struct ConsoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Full-screen desk for operators and approvers: live queue, conversation, claim/reply/resolve/approve/reject.",
        discussion: """
            Keys: up/down or j/k select, tab switches between tickets and approvals (admin), c claim, r reply,
            s resolve (then r resolved and release, j resolved and reject, h handed back, d dismissed),
            a approve, x reject (then a comment and enter), g refresh, q quit.
            """)

    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let client = try connection.makeClient()
        let terminal = try Terminal()
        var console = Console(client: client, role: connection.role, server: connection.server)
        await console.run()
        terminal.restore()
        await client.close()
    }
}

/// What wakes the console up.
enum ConsoleInput: Sendable {
    case key(Key)
    case resized
    case tick
    case desk(DeskEvent)
    case watchFailed(String)
}

struct Console {
    enum Pane { case tickets, approvals }

    enum Prompt {
        case reply(ticketID: String, text: String)
        case resolve(ticketID: String)
        case rejectComment(approvalID: String, text: String)
    }

    let client: HandoffClient
    let server: String
    let roleName: String
    let panes: [Pane]
    var pane: Pane
    var tickets: [Ticket] = []
    var approvals: [Approval] = []
    var selected = 0
    var detail: GetTicketResponse?
    var prompt: Prompt?
    var status = "connecting…"
    var connected = false
    var lastRefresh: Int64 = 0
    /// Desk events arrived since the last refresh, which waits for the spacing.
    var stale = false
    /// The least time between two reads of the queue caused by desk events.
    static let refreshSpacingMs: Int64 = 250
    var events = 0

    init(client: HandoffClient, role: String, server: String) {
        self.client = client
        self.server = server
        roleName = role
        // The role's suffix decides what the console shows (a file name like acme.operator works too).
        if role.hasSuffix("approver") {
            panes = [.approvals]
        } else if role.hasSuffix("admin") {
            panes = [.tickets, .approvals]
        } else {
            panes = [.tickets]
        }
        pane = panes[0]
    }

    mutating func run() async {
        let (inputs, continuation) = AsyncStream<ConsoleInput>.makeStream()
        let keyTask = Task {
            for await key in Terminal.keys() { continuation.yield(.key(key)) }
        }
        let (resizes, resizeSource) = Terminal.resizes()
        let resizeTask = Task {
            for await _ in resizes { continuation.yield(.resized) }
        }
        let tickTask = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Self.refreshSpacingMs))
                continuation.yield(.tick)
            }
        }
        let watchTask = Task { [client] in await Self.watch(client, continuation) }
        await refresh()
        draw()
        loop: for await input in inputs {
            switch input {
            case .key(let key):
                if await handle(key) == false { break loop }
            case .resized:
                break
            case .tick:
                if stale || SessionClock.now() - lastRefresh > 5000 { await refresh() }
            case .desk:
                events += 1
                // A busy desk sends many events a second: read the queue again at
                // most every refreshSpacingMs, not once per event per console.
                if SessionClock.now() - lastRefresh >= Self.refreshSpacingMs { await refresh() } else { stale = true }
            case .watchFailed(let reason):
                connected = false
                status = "connection lost (\(reason)); reconnecting…"
            }
            draw()
        }
        for task in [keyTask, resizeTask, tickTask, watchTask] as [Task<Void, Never>] { task.cancel() }
        resizeSource.cancel()
        continuation.finish()
    }

    /// Watches the desk for ever, resuming after the last event seen when the stream ends or fails.
    static func watch(_ client: HandoffClient, _ out: AsyncStream<ConsoleInput>.Continuation) async {
        var cursor = ""
        while !Task.isCancelled {
            do {
                let stream = try await client.stream(Operators.watch, WatchRequest(resumeCursor: cursor), options: CallOptions(timeout: nil))
                for try await event in stream {
                    if !event.cursor.isEmpty { cursor = event.cursor }
                    out.yield(.desk(event))
                }
            } catch let error as RPCError {
                out.yield(.watchFailed("\(error.code)"))
            } catch {
                out.yield(.watchFailed("\(error)"))
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Reads the queue and the approvals again.
    mutating func refresh() async {
        lastRefresh = SessionClock.now()
        stale = false
        do {
            if panes.contains(.tickets) {
                tickets = try await client.call(Escalations.listQueue, ListQueueRequest(pageSize: 200)).tickets
            }
            if panes.contains(.approvals) {
                approvals = try await client.call(Approvals.listPendingApprovals, ListPendingApprovalsRequest(pageSize: 200)).approvals
            }
            if !connected { status = "connected" }
            connected = true
        } catch {
            connected = false
            status = "connection lost (\(error.code)); reconnecting…"
        }
        let count = pane == .tickets ? tickets.count : approvals.count
        selected = min(selected, max(0, count - 1))
        await loadDetail()
    }

    mutating func loadDetail() async {
        guard pane == .tickets, selected < tickets.count else {
            detail = nil
            return
        }
        detail = try? await client.call(Escalations.getTicket, GetTicketRequest(ticketID: tickets[selected].id))
    }

    /// Acts on a key; false ends the console.
    mutating func handle(_ key: Key) async -> Bool {
        if let prompt { return await answer(prompt, key) }
        switch key {
        case .char("q"):
            return false
        case .up, .char("k"):
            selected = max(0, selected - 1)
            await loadDetail()
        case .down, .char("j"):
            selected = min(max(0, (pane == .tickets ? tickets.count : approvals.count) - 1), selected + 1)
            await loadDetail()
        case .tab:
            if panes.count > 1 {
                pane = pane == .tickets ? .approvals : .tickets
                selected = 0
                await loadDetail()
            }
        case .char("g"), .enter:
            await refresh()
        case .char("c"):
            guard let ticket = currentTicket else { break }
            await perform("claimed \(ticket.id)") { (c) throws(RPCError) in try await c.call(Escalations.claim, ClaimRequest(ticketID: ticket.id)) }
        case .char("r"):
            guard let ticket = currentTicket else { break }
            prompt = .reply(ticketID: ticket.id, text: "")
        case .char("s"):
            guard let ticket = currentTicket else { break }
            prompt = .resolve(ticketID: ticket.id)
        case .char("a"):
            guard let approval = currentApproval else { break }
            await decide(approval, verdict: .approve, comment: "")
        case .char("x"):
            guard let approval = currentApproval else { break }
            prompt = .rejectComment(approvalID: approval.id, text: "")
        default:
            break
        }
        return true
    }

    var currentTicket: Ticket? { pane == .tickets && selected < tickets.count ? tickets[selected] : nil }
    var currentApproval: Approval? { pane == .approvals && selected < approvals.count ? approvals[selected] : nil }

    mutating func answer(_ current: Prompt, _ key: Key) async -> Bool {
        func edit(_ text: String) -> String? {
            switch key {
            case .char(let c): return text + String(c)
            case .backspace: return String(text.dropLast())
            default: return nil
            }
        }
        if key == .escape {
            prompt = nil
            status = "cancelled"
            return true
        }
        switch current {
        case .reply(let id, let text):
            if key == .enter {
                prompt = nil
                guard !text.isEmpty else { break }
                await perform("replied on \(id)") { (c) throws(RPCError) in try await c.call(Escalations.reply, ReplyRequest(ticketID: id, text: text)) }
            } else if let next = edit(text) {
                prompt = .reply(ticketID: id, text: next)
            }
        case .resolve(let id):
            let choice: (TicketOutcome, PendingActionDecision)? = switch key {
            case .char("r"): (.resolved, .release)
            case .char("j"): (.resolved, .reject)
            case .char("h"): (.handedBack, .unspecified)
            case .char("d"): (.dismissed, .unspecified)
            default: nil
            }
            guard let choice else { break }
            prompt = nil
            let hasAction = detail?.pendingAction?.status == .pending
            await perform("resolved \(id)") { (c) throws(RPCError) in
                try await c.call(Escalations.resolve, ResolveRequest(
                    ticketID: id, outcome: choice.0, pendingActionDecision: hasAction ? choice.1 : .unspecified))
            }
        case .rejectComment(let id, let text):
            if key == .enter {
                prompt = nil
                if let approval = approvals.first(where: { $0.id == id }) { await decide(approval, verdict: .reject, comment: text) }
            } else if let next = edit(text) {
                prompt = .rejectComment(approvalID: id, text: next)
            }
        }
        return true
    }

    mutating func decide(_ approval: Approval, verdict: ApprovalVerdict, comment: String) async {
        do {
            let result = try await client.call(Approvals.decideApproval, DecideApprovalRequest(decisions: [
                ApprovalDecision(approvalID: approval.id, verdict: verdict, comment: comment, expectedLevel: approval.currentLevel),
            ])).results.first
            switch result?.result {
            case .approval(let decided)?: status = "\(approval.id): \(Names.approvalStatus(decided.status))"
            case .error(let error)?: status = "\(approval.id) refused: \(error.message)"
            case nil: status = "\(approval.id): no answer"
            }
        } catch {
            status = "\(approval.id) not decided: \(error.code): \(error.message)"
        }
        await refresh()
    }

    mutating func perform<T>(_ done: String, _ call: (HandoffClient) async throws(RPCError) -> T) async {
        do {
            _ = try await call(client)
            status = done
        } catch {
            status = "refused: \(error.code): \(error.message)"
        }
        await refresh()
    }

    // MARK: Drawing

    func draw() {
        let (rows, columns) = Terminal.size()
        var lines: [String] = []
        let clock = DateFormatter.localizedString(from: Date(), dateStyle: .none, timeStyle: .medium)
        lines.append("Handoff console — \(roleName) @ \(server) — \(connected ? "connected" : "DISCONNECTED") — \(clock)")
        let now = SessionClock.now()
        if panes.contains(.tickets) {
            lines.append("")
            lines.append("\(pane == .tickets ? "▶" : " ") Queue (\(tickets.count) tickets)")
            lines.append("  PRIORITY  AGE      SLA          STATUS    TICKET                                   REASON")
            if tickets.isEmpty { lines.append("  (the queue is empty)") }
            for (i, t) in tickets.enumerated() {
                let mark = pane == .tickets && i == selected ? ">" : " "
                let sla = t.slaBreached ? "BREACHED" : "\(Self.duration(max(0, t.slaDeadlineUnixMs - now))) left"
                let who = t.assignedTo.map { " (\($0.name))" } ?? ""
                lines.append("\(mark) \(Self.pad(Names.priority(t.priority).uppercased(), 9)) \(Self.pad(Self.duration(now - t.createdAtUnixMs), 8)) "
                    + "\(Self.pad(sla, 12)) \(Self.pad(Names.ticketStatus(t.status) + who, 9)) \(Self.pad(t.id, 40)) \(t.reason)")
            }
        }
        if panes.contains(.approvals) {
            lines.append("")
            lines.append("\(pane == .approvals ? "▶" : " ") Approvals waiting for you (\(approvals.count))")
            lines.append("  LEVEL  AMOUNT          EXPIRES IN  APPROVAL                                  REASON")
            if approvals.isEmpty { lines.append("  (nothing waits for you)") }
            for (i, a) in approvals.enumerated() {
                let mark = pane == .approvals && i == selected ? ">" : " "
                let expiry = a.steps.first { $0.level == a.currentLevel }?.expiresAtUnixMs ?? 0
                let left = expiry == 0 ? "never" : Self.duration(max(0, expiry - now))
                lines.append("\(mark) \(Self.pad("\(a.currentLevel)/\(a.steps.count)", 6)) \(Self.pad("\(a.amount) \(a.currency)", 15)) "
                    + "\(Self.pad(left, 11)) \(Self.pad(a.id, 41)) \(a.reason)")
            }
        }
        lines.append(String(repeating: "─", count: columns))
        if let ticket = currentTicket {
            lines.append("Ticket \(ticket.id) — session \(ticket.sessionID) — \(Names.ticketStatus(ticket.status)) — \(ticket.reason)")
            if let pending = detail?.pendingAction {
                let what = pending.action.map { $0.description.isEmpty ? $0.toolName : $0.description } ?? ""
                lines.append("Pending action \(pending.id): \(what) — \(Names.pendingStatus(pending.status))")
            }
            for turn in detail?.liveContext?.turns ?? [] {
                if !turn.input.isEmpty { lines.append("  user: \(turn.input)") }
                if !turn.output.isEmpty {
                    let who = turn.source == .operator ? "operator" : turn.source == .system ? "system" : "agent"
                    lines.append("  \(who): \(turn.output)")
                }
            }
        } else if let approval = currentApproval {
            let action = approval.editedAction ?? approval.action
            lines.append("Approval \(approval.id) — session \(approval.sessionID) — level \(approval.currentLevel) of \(approval.steps.count)")
            lines.append("  action: \(action?.toolName ?? "") \(action?.description ?? "") \(approval.amount) \(approval.currency)")
            lines.append("  requested by \(Names.identity(approval.requester)): \(approval.reason)")
            for step in approval.steps {
                lines.append("  level \(step.level): \(step.approvers.joined(separator: ", ")) — \(Names.approvalStatus(step.status))"
                    + (step.decidedBy.map { " by \($0.name)" } ?? ""))
            }
        }
        // The foot: keys, then the prompt or the status, on the last rows.
        var foot: [String] = []
        switch prompt {
        case .reply(_, let text)?: foot.append("Reply (enter sends, esc cancels): \(text)▏")
        case .resolve?: foot.append("Resolve: r resolved + release action, j resolved + reject action, h handed back, d dismissed, esc cancel")
        case .rejectComment(_, let text)?: foot.append("Reject — comment (enter rejects, esc cancels): \(text)▏")
        case nil:
            foot.append(panes == [.approvals]
                ? "keys: ↑↓ select  a approve  x reject  g refresh  q quit"
                : "keys: ↑↓ select  c claim  r reply  s resolve  \(panes.count > 1 ? "tab approvals  a approve  x reject  " : "")g refresh  q quit")
        }
        foot.append("status: \(status)")
        let body = lines.prefix(max(0, rows - foot.count))
        var screen = "\u{1B}[H"
        for line in body + Array(repeating: "", count: max(0, rows - foot.count - body.count)) + foot {
            screen += Self.fit(line, columns) + "\u{1B}[K\r\n"
        }
        screen.removeLast(2)
        Terminal.write(screen)
    }

    static func fit(_ line: String, _ width: Int) -> String { line.count > width ? String(line.prefix(width)) : line }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? String(text.prefix(width)) : text + String(repeating: " ", count: width - text.count)
    }

    static func duration(_ ms: Int64) -> String {
        let seconds = ms / 1000
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m\(String(format: "%02d", seconds % 60))s" }
        return "\(seconds / 3600)h\(String(format: "%02d", (seconds % 3600) / 60))m"
    }
}

enum SessionClock {
    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
