// Handoff — `handoff console`: a full-screen view of the desks for operators
// and approvers. The queue and the approvals waiting for you, live from
// Operators/Watch; the selected ticket's conversation; keys to claim, reply,
// resolve, approve and reject. It redraws on resize and every second (ages,
// SLA clocks), and when the connection drops it says so and carries on from
// the last event it saw once the server is back.
//
// Two parts: ConsoleState (ConsoleState.swift) holds what is shown and turns
// keys into effects without a terminal or a server; Console here runs the
// effects against the server and draws. `--script` runs the same console on
// scripted keys, printing each screen, so tests drive it without a terminal.

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
            Keys: up/down or k/j select, tab switches between tickets and approvals (admin), c claim, r reply,
            s resolve (then r resolved; with an undecided action a resolved + release it, x resolved + reject it,
            l resolved + leave it pending; h handed back, d dismissed; then an optional note and enter),
            a approve, x reject (each asks for an optional comment; enter confirms, esc cancels), g refresh, q quit.
            Without --role (or HANDOFF_ROLE) it opens the operator's desk; --role approver opens the approvals.
            """)

    @OptionGroup var connection: ConnectionOptions

    @Option(name: .customLong("script"), parsing: .upToNextOption, help: .hidden)
    var script: [String] = []

    @Option(help: .hidden)
    var size = "40x160"

    /// With --script: print each screen's escape codes as drawn, not plain lines.
    @Flag(help: .hidden)
    var raw = false

    func run() async throws {
        let client = try connection.makeClient(for: .operator)
        let state = ConsoleState(role: connection.role(for: .operator), server: connection.server)
        if !script.isEmpty {
            // Tests: scripted keys, each screen printed as plain text, no terminal.
            let parts = size.split(separator: "x").compactMap { Int($0) }
            var console = Console(client: client, state: state, size: parts.count == 2 ? (parts[0], parts[1]) : (40, 160))
            await console.runScript(ConsoleState.keys(fromScript: script), raw: raw)
            await client.close()
            return
        }
        let terminal = try Terminal()
        var console = Console(client: client, state: state, size: nil)
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
    case watchFailed(RPCError.Code, String)
}

struct Console {
    let client: HandoffClient
    var state: ConsoleState
    /// Rows and columns for scripted runs; nil: the terminal's.
    let size: (rows: Int, columns: Int)?
    var lastRefresh: Int64 = 0
    /// Desk events arrived since the last refresh, which waits for the spacing.
    var stale = false
    /// The least time between two reads of the queue caused by desk events.
    static let refreshSpacingMs: Int64 = 250

    init(client: HandoffClient, state: ConsoleState, size: (Int, Int)?) {
        self.client = client
        self.state = state
        self.size = size
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
                // A busy desk sends many events a second: read the queue again at
                // most every refreshSpacingMs, not once per event per console.
                if SessionClock.now() - lastRefresh >= Self.refreshSpacingMs { await refresh() } else { stale = true }
            case .watchFailed(let code, let message):
                state.failed(code, message)
            }
            draw()
        }
        for task in [keyTask, resizeTask, tickTask, watchTask] as [Task<Void, Never>] { task.cancel() }
        resizeSource.cancel()
        continuation.finish()
    }

    /// Scripted keys: each one handled in turn (its call finished), then the screen printed.
    mutating func runScript(_ keys: [Key], raw: Bool) async {
        func show() {
            let lines = state.render(rows: size?.rows ?? 40, columns: size?.columns ?? 160, now: SessionClock.now())
            print(raw ? ConsoleState.screen(lines) : lines.joined(separator: "\n"))
        }
        await refresh()
        show()
        for key in keys {
            let going = await handle(key)
            print("--- after \(key)")
            show()
            if !going { break }
        }
        fflush(nil)
    }

    /// Watches the desk for ever, resuming after the last event seen when the
    /// stream ends or fails; a refusal (the wrong role) ends it.
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
                out.yield(.watchFailed(error.code, error.message))
                if error.code == .permissionDenied || error.code == .unauthenticated { return }
            } catch {
                out.yield(.watchFailed(.unavailable, "\(error)"))
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Reads the queue and the approvals again.
    mutating func refresh() async {
        lastRefresh = SessionClock.now()
        stale = false
        do throws(RPCError) {
            var tickets: [Ticket]?
            var approvals: [Approval]?
            if state.panes.contains(.tickets) {
                tickets = try await client.call(Escalations.listQueue, ListQueueRequest(pageSize: 200)).tickets
            }
            if state.panes.contains(.approvals) {
                approvals = try await client.call(Approvals.listPendingApprovals, ListPendingApprovalsRequest(pageSize: 200)).approvals
            }
            state.loaded(tickets: tickets, approvals: approvals)
        } catch {
            state.failed(error.code, error.message)
        }
        await loadDetail()
    }

    mutating func loadDetail() async {
        guard let ticket = state.currentTicket else {
            state.detail = nil
            return
        }
        state.detail = try? await client.call(Escalations.getTicket, GetTicketRequest(ticketID: ticket.id))
    }

    /// Acts on a key; false ends the console.
    mutating func handle(_ key: Key) async -> Bool {
        guard let effect = state.handle(key) else { return true }
        switch effect {
        case .quit:
            return false
        case .refresh:
            await refresh()
        case .loadDetail:
            await loadDetail()
        case .claim(let id):
            await perform("claimed \(id)") { (c) throws(RPCError) in try await c.call(Escalations.claim, ClaimRequest(ticketID: id)) }
        case .reply(let id, let text):
            await perform("replied on \(id)") { (c) throws(RPCError) in try await c.call(Escalations.reply, ReplyRequest(ticketID: id, text: text)) }
        case .resolve(let id, let outcome, let decision, let note):
            await perform("resolved \(id)") { (c) throws(RPCError) in
                try await c.call(Escalations.resolve, ResolveRequest(ticketID: id, outcome: outcome, note: note, pendingActionDecision: decision))
            }
        case .decide(let id, let level, let verdict, let comment):
            await decide(id, level: level, verdict: verdict, comment: comment)
        }
        return true
    }

    mutating func decide(_ id: String, level: Int32, verdict: ApprovalVerdict, comment: String) async {
        do throws(RPCError) {
            let result = try await client.call(
                Approvals.decideApproval,
                DecideApprovalRequest(decisions: [
                    ApprovalDecision(approvalID: id, verdict: verdict, comment: comment, expectedLevel: level)
                ])
            ).results.first
            switch result?.result {
            case .approval(let decided)?: state.status = "\(id): \(Names.approvalStatus(decided.status))"
            case .error(let error)?: state.status = "\(id) refused: \(error.message)"
            case nil: state.status = "\(id): no answer"
            }
        } catch {
            state.refused(error.code, error.message, doing: "\(id) not decided")
        }
        await refresh()
    }

    mutating func perform<T>(_ done: String, _ call: (HandoffClient) async throws(RPCError) -> T) async {
        do throws(RPCError) {
            _ = try await call(client)
            state.status = done
        } catch {
            state.refused(error.code, error.message, doing: "refused")
        }
        await refresh()
    }

    func draw() {
        let (rows, columns) = size ?? Terminal.size()
        Terminal.write(ConsoleState.screen(state.render(rows: rows, columns: columns, now: SessionClock.now())))
    }
}

enum SessionClock {
    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
