// Handoff — what `handoff console` shows and how keys change it, without a
// terminal or a server: keys become effects (a claim, a decision, …) that
// Console runs; render gives the screen's lines for a size.
//
// Keys never both move and decide: k/j and the arrows only move, and every
// decision (approve, reject, resolve releasing or rejecting an action) first
// asks for an optional comment or note, confirmed with enter.

import Foundation
import HandoffProto
import HandoffRPC

struct ConsoleState {
    enum Pane { case tickets, approvals }

    /// How a ticket is resolved, chosen in the resolve prompt.
    struct Resolution: Equatable {
        var outcome: TicketOutcome
        var decision: PendingActionDecision
        /// Said in the note prompt: "as resolved, releasing its action".
        var label: String
    }

    enum Prompt: Equatable {
        case reply(ticketID: String, text: String)
        /// Choose how; `actionID` is the ticket's undecided pending action, if any.
        case resolve(ticketID: String, actionID: String?)
        case resolveNote(ticketID: String, Resolution, text: String)
        case decide(approvalID: String, level: Int32, verdict: ApprovalVerdict, text: String)
    }

    /// What Console does for a key.
    enum Effect: Equatable {
        case quit, refresh, loadDetail
        case claim(ticketID: String)
        case reply(ticketID: String, text: String)
        case resolve(ticketID: String, outcome: TicketOutcome, decision: PendingActionDecision, note: String)
        case decide(approvalID: String, level: Int32, verdict: ApprovalVerdict, comment: String)
    }

    enum Link: Equatable {
        case connecting, connected
        case disconnected
        /// The server refuses this identity (the wrong role): retrying will not help.
        case refused
    }

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
    var link = Link.connecting

    init(role: String, server: String) {
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

    /// The role the console's desk needs, for the refusal's advice.
    var neededRole: String { panes == [.approvals] ? "approver" : "operator" }

    var currentTicket: Ticket? { pane == .tickets && selected < tickets.count ? tickets[selected] : nil }
    var currentApproval: Approval? { pane == .approvals && selected < approvals.count ? approvals[selected] : nil }

    /// The selected ticket's pending action when it is still undecided.
    func undecidedAction(of ticketID: String) -> PendingAction? {
        guard detail?.ticket?.id == ticketID, let pending = detail?.pendingAction, pending.status == .pending else { return nil }
        return pending
    }

    // MARK: Events

    /// The queue and the approvals as read (nil: not read, the pane is not shown).
    mutating func loaded(tickets: [Ticket]?, approvals: [Approval]?) {
        if let tickets { self.tickets = tickets }
        if let approvals { self.approvals = approvals }
        if link != .connected { status = "connected" }
        link = .connected
        let count = pane == .tickets ? self.tickets.count : self.approvals.count
        selected = min(selected, max(0, count - 1))
    }

    /// A read or the watch failed: a refusal says which role is needed and
    /// is not a lost connection; anything else is, and is retried.
    mutating func failed(_ code: RPCError.Code, _ message: String) {
        if code == .permissionDenied || code == .unauthenticated {
            link = .refused
            status = "refused: this desk needs --role \(neededRole) (or HANDOFF_ROLE=\(neededRole)); q quits — \(code): \(message)"
        } else if link != .refused {
            link = .disconnected
            status = "connection lost (\(code)); reconnecting…"
        }
    }

    /// An action the server refused or could not do.
    mutating func refused(_ code: RPCError.Code, _ message: String, doing: String) {
        if code == .unavailable {
            failed(code, message)
        } else {
            status = "\(doing): \(code): \(message)"
        }
    }

    // MARK: Keys

    /// Acts on a key; returns what Console must do, if anything.
    mutating func handle(_ key: Key) -> Effect? {
        if let prompt { return answer(prompt, key) }
        switch key {
        case .char("q"):
            return .quit
        case .up, .char("k"):
            selected = max(0, selected - 1)
            return .loadDetail
        case .down, .char("j"):
            selected = min(max(0, (pane == .tickets ? tickets.count : approvals.count) - 1), selected + 1)
            return .loadDetail
        case .tab:
            guard panes.count > 1 else { return nil }
            pane = pane == .tickets ? .approvals : .tickets
            selected = 0
            return .loadDetail
        case .char("g"), .enter:
            return .refresh
        case .char("c"):
            guard let ticket = currentTicket else { return nil }
            return .claim(ticketID: ticket.id)
        case .char("r"):
            guard let ticket = currentTicket else { return nil }
            prompt = .reply(ticketID: ticket.id, text: "")
        case .char("s"):
            guard let ticket = currentTicket else { return nil }
            prompt = .resolve(ticketID: ticket.id, actionID: undecidedAction(of: ticket.id)?.id)
        case .char("a"):
            guard let approval = currentApproval else { return nil }
            prompt = .decide(approvalID: approval.id, level: approval.currentLevel, verdict: .approve, text: "")
        case .char("x"):
            guard let approval = currentApproval else { return nil }
            prompt = .decide(approvalID: approval.id, level: approval.currentLevel, verdict: .reject, text: "")
        default:
            break
        }
        return nil
    }

    private mutating func answer(_ current: Prompt, _ key: Key) -> Effect? {
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
            return nil
        }
        switch current {
        case .reply(let id, let text):
            if key == .enter {
                prompt = nil
                return text.isEmpty ? nil : .reply(ticketID: id, text: text)
            } else if let next = edit(text) {
                prompt = .reply(ticketID: id, text: next)
            }
        case .resolve(let id, let actionID):
            let leave = actionID == nil ? "" : " (its action stays pending)"
            let choice: Resolution? =
                switch (key, actionID) {
                case (.char("r"), nil): Resolution(outcome: .resolved, decision: .unspecified, label: "resolved")
                case (.char("a"), _?): Resolution(outcome: .resolved, decision: .release, label: "resolved, releasing its action")
                case (.char("x"), _?): Resolution(outcome: .resolved, decision: .reject, label: "resolved, rejecting its action")
                case (.char("l"), _?): Resolution(outcome: .resolved, decision: .leavePending, label: "resolved, leaving its action pending")
                case (.char("h"), _):
                    Resolution(outcome: .handedBack, decision: actionID == nil ? .unspecified : .leavePending, label: "handed back" + leave)
                case (.char("d"), _):
                    Resolution(outcome: .dismissed, decision: actionID == nil ? .unspecified : .leavePending, label: "dismissed" + leave)
                default: nil
                }
            if let choice { prompt = .resolveNote(ticketID: id, choice, text: "") }
        case .resolveNote(let id, let choice, let text):
            if key == .enter {
                prompt = nil
                return .resolve(ticketID: id, outcome: choice.outcome, decision: choice.decision, note: text)
            } else if let next = edit(text) {
                prompt = .resolveNote(ticketID: id, choice, text: next)
            }
        case .decide(let id, let level, let verdict, let text):
            if key == .enter {
                prompt = nil
                return .decide(approvalID: id, level: level, verdict: verdict, comment: text)
            } else if let next = edit(text) {
                prompt = .decide(approvalID: id, level: level, verdict: verdict, text: next)
            }
        }
        return nil
    }

    /// Keys from `--script` words: <up> <down> <tab> <enter> <esc> <bs> name a
    /// key, anything else is typed character by character.
    static func keys(fromScript words: [String]) -> [Key] {
        words.flatMap { word -> [Key] in
            switch word {
            case "<up>": [.up]
            case "<down>": [.down]
            case "<tab>": [.tab]
            case "<enter>": [.enter]
            case "<esc>": [.escape]
            case "<bs>": [.backspace]
            default: word.map { .char($0) }
            }
        }
    }

    // MARK: Drawing

    /// The help line when no prompt is open.
    var keysLine: String {
        let tickets = "c claim  r reply  s resolve"
        let approvals = "a approve  x reject"
        let what = panes == [.approvals] ? approvals : panes.count > 1 ? "\(tickets)  tab switch  \(approvals)" : tickets
        return "keys: ↑↓/k j select  \(what)  g refresh  q quit"
    }

    /// The prompt's line, or nil when none is open.
    var promptLine: String? {
        switch prompt {
        case .reply(_, let text)?:
            return "Reply (enter sends, esc cancels): \(text)▏"
        case .resolve(_, let actionID?)?:
            return "Resolve — action \(actionID) is undecided: a resolved + release it, x resolved + reject it, "
                + "l resolved + leave it pending, h handed back, d dismissed, esc cancel"
        case .resolve(_, nil)?:
            return "Resolve: r resolved, h handed back, d dismissed, esc cancel"
        case .resolveNote(let id, let choice, let text)?:
            return "Resolve \(id) as \(choice.label)? note (optional; enter confirms, esc cancels): \(text)▏"
        case .decide(let id, _, let verdict, let text)?:
            let approval = approvals.first { $0.id == id }
            let what = approval.map { " (\($0.amount) \($0.currency), level \($0.currentLevel)/\($0.steps.count))" } ?? ""
            let (word, done) = verdict == .approve ? ("Approve", "approves") : ("Reject", "rejects")
            return "\(word) \(id)\(what)? comment (optional; enter \(done), esc cancels): \(text)▏"
        case nil:
            return nil
        }
    }

    static func plural(_ count: Int, _ word: String) -> String { "\(count) \(word)\(count == 1 ? "" : "s")" }

    /// The screen's lines, exactly `rows` of them, none wider than `columns`.
    func render(rows: Int, columns: Int, now: Int64, clock: String? = nil) -> [String] {
        var lines: [String] = []
        let clock = clock ?? DateFormatter.localizedString(from: Date(), dateStyle: .none, timeStyle: .medium)
        let linkText =
            switch link {
            case .connecting: "connecting"
            case .connected: "connected"
            case .disconnected: "DISCONNECTED"
            case .refused: "REFUSED"
            }
        lines.append("Handoff console — \(roleName) @ \(server) — \(linkText) — \(clock)")
        if panes.contains(.tickets) {
            lines.append("")
            lines.append("\(pane == .tickets ? "▶" : " ") Queue (\(Self.plural(tickets.count, "ticket")))")
            let statuses = tickets.map { t in Names.ticketStatus(t.status) + (t.assignedTo.map { " (\($0.name))" } ?? "") }
            let width = max(8, statuses.map(\.count).max() ?? 0)
            lines.append("  PRIORITY  AGE      SLA          \(Self.pad("STATUS", width)) TICKET                                   REASON")
            if tickets.isEmpty { lines.append("  (the queue is empty)") }
            for (i, t) in tickets.enumerated() {
                let mark = pane == .tickets && i == selected ? ">" : " "
                let sla = t.slaBreached ? "BREACHED" : "\(Self.duration(max(0, t.slaDeadlineUnixMs - now))) left"
                lines.append(
                    "\(mark) \(Self.pad(Names.priority(t.priority).uppercased(), 9)) \(Self.pad(Self.duration(now - t.createdAtUnixMs), 8)) "
                        + "\(Self.pad(sla, 12)) \(Self.pad(statuses[i], width)) \(Self.pad(t.id, 40)) \(t.reason)")
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
                lines.append(
                    "\(mark) \(Self.pad("\(a.currentLevel)/\(a.steps.count)", 6)) \(Self.pad("\(a.amount) \(a.currency)", 15)) "
                        + "\(Self.pad(left, 11)) \(Self.pad(a.id, 41)) \(a.reason)")
            }
        }
        lines.append(String(repeating: "─", count: columns))
        if let ticket = currentTicket {
            lines.append("Ticket \(ticket.id) — session \(ticket.sessionID) — \(Names.ticketStatus(ticket.status)) — \(ticket.reason)")
            if let pending = detail?.pendingAction, detail?.ticket?.id == ticket.id {
                let what = pending.action.map { $0.description.isEmpty ? $0.toolName : $0.description } ?? ""
                lines.append("Pending action \(pending.id): \(what) — \(Names.pendingStatus(pending.status))")
            }
            for turn in detail?.ticket?.id == ticket.id ? detail?.liveContext?.turns ?? [] : [] {
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
                lines.append(
                    "  level \(step.level): \(step.approvers.joined(separator: ", ")) — \(Names.approvalStatus(step.status))"
                        + (step.decidedBy.map { " by \($0.name)" } ?? ""))
            }
        }
        // The foot: keys or the prompt, then the status, on the last rows.
        let foot = [promptLine ?? keysLine, "status: \(status)"]
        let body = lines.prefix(max(0, rows - foot.count))
        let all = Array(body) + Array(repeating: "", count: max(0, rows - foot.count - body.count)) + foot
        return all.map { Self.fit($0, columns) }
    }

    /// The escape codes that draw `lines` from the top left, each line
    /// clearing what an earlier, longer one left to its right.
    static func screen(_ lines: [String]) -> String {
        "\u{1B}[H" + lines.map { $0 + "\u{1B}[K" }.joined(separator: "\r\n")
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
