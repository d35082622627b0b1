// Handoff — handoff-bench desk: the operator desk's two targets, against a
// running handoffd. (1) From an Escalate call's reply to the ticket-opened
// event arriving on an operator's Watch stream; (2) ListQueue's first page
// with a large queue. `--prepare DIR` first fills DIR's store with open
// tickets directly through the SQLite store (RPCs would take minutes), so a
// handoffd started on DIR serves a queue of that size.

import ArgumentParser
import Foundation
import HandoffClient
import HandoffCore
import HandoffProto
import HandoffRPC
import HandoffSQLite
import HandoffTLS
import Histogram
import NIOPosix
import Synchronization

struct DeskBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "desk",
        abstract: "Escalate→Watch latency and ListQueue latency with a large queue, against a running handoffd.",
        discussion: """
            handoff-bench desk --prepare DIR --tickets 100000   fills DIR/handoff.sqlite with open tickets (tenant of --tenant)
            handoff-bench desk --server HOST:PORT --certs DIR    measures, printing anchor= lines
            """)

    @Option(help: "Fill this data directory's store with --tickets open tickets, then exit.") var prepare: String?
    @Option(help: "Open tickets to prepare.") var tickets = 100_000
    @Option(help: "Tenant of the prepared tickets (the certificates' tenant).") var tenant = "default"
    @Option(help: "Server address HOST:PORT.") var server = "127.0.0.1:7443"
    @Option(
        help:
            "The watcher's server, HOST:PORT: another node on the same PostgreSQL database times Escalate on one node to the event on the other (default: --server)."
    )
    var watchServer: String?
    @Option(help: "Directory made by `handoff certs init` (agent and operator certificates).") var certs = ".handoff/certs"
    @Option(help: "Escalations timed from reply to Watch event.") var escalations = 300
    @Option(help: "ListQueue calls measured (first page of 50).") var queueCalls = 2000

    func run() async throws {
        if let prepare {
            try await fill(prepare)
            return
        }
        guard let address = HostAndPort(server), address.port > 0 else { throw ValidationError("--server \(server) is not HOST:PORT") }
        guard let watchAddress = HostAndPort(watchServer ?? server), watchAddress.port > 0 else {
            throw ValidationError("--watch-server \(watchServer ?? "") is not HOST:PORT")
        }
        func client(_ role: String, at address: HostAndPort) throws -> HandoffClient {
            let dir = URL(fileURLWithPath: certs)
            var configuration = HandoffClient.Configuration(
                host: address.host, port: address.port,
                tls: .client(
                    trustRootsPath: dir.appendingPathComponent("ca.pem").path, serverHostname: address.host,
                    certificateChainPath: dir.appendingPathComponent("\(role).pem").path,
                    privateKeyPath: dir.appendingPathComponent("\(role).key").path))
            configuration.keepaliveInterval = nil
            return try HandoffClient(configuration: configuration)
        }
        let agent = try client("agent", at: address)
        let desk = try client("operator", at: address)
        let watcher = try client("operator", at: watchAddress)

        // ListQueue, first page, one call at a time.
        let queued = try await desk.call(Escalations.listQueue, ListQueueRequest(pageSize: 50)).tickets.count
        var queue = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        let clock = ContinuousClock()
        for i in 0..<(queueCalls + 100) {
            let start = clock.now
            _ = try await desk.call(Escalations.listQueue, ListQueueRequest(pageSize: 50))
            if i >= 100 { _ = queue.record(Self.ns(clock.now - start)) }
        }
        print(Self.line("handoff_list_queue_first_page", queue, extra: "page=\(queued)"))

        // Escalate → Watch: both instants per ticket; the event may even come first.
        let seen = Mutex<[String: (reply: ContinuousClock.Instant?, event: ContinuousClock.Instant?)]>([:])
        let stream = try await watcher.stream(Operators.watch, WatchRequest(kinds: [.ticketOpened]), options: CallOptions(timeout: nil))
        let total = escalations
        let watch = Task {
            var count = 0
            for try await event in stream {
                guard case .ticket(let ticket)? = event.subject else { continue }
                let now = ContinuousClock.now
                seen.withLock { $0[ticket.id, default: (nil, nil)].event = now }
                count += 1
                if count == total { break }
            }
        }
        try await Task.sleep(for: .milliseconds(300))  // the watch is open
        let prefix = "desk-\(UUID().uuidString.prefix(8))"
        for i in 0..<total {
            _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: "\(prefix)-\(i)", reasoning: "bench"))
            let opened = try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "\(prefix)-\(i)", reason: "bench"))
            let now = ContinuousClock.now
            if let id = opened.ticket?.id { seen.withLock { $0[id, default: (nil, nil)].reply = now } }
        }
        let waited = Task {
            try await Task.sleep(for: .seconds(30))
            watch.cancel()
        }
        _ = try? await watch.value
        waited.cancel()
        var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        var early = 0
        var missing = 0
        for (_, pair) in seen.withLock({ $0 }) {
            guard let reply = pair.reply, let event = pair.event else {
                missing += 1
                continue
            }
            if event < reply { early += 1 }
            _ = latency.record(event < reply ? 0 : Self.ns(event - reply))
        }
        print(
            Self.line(
                "handoff_escalate_reply_to_watch_event", latency,
                extra: "n=\(total) watch_node=\(watchServer == nil ? "same" : "other") event_before_reply=\(early) missing=\(missing)"))
        for c in [agent, desk, watcher] { await c.close() }
    }

    /// Open tickets straight into the store: a session, its ticket, turn and event each.
    private func fill(_ directory: String) async throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: (directory as NSString).appendingPathComponent("handoff.sqlite"))
        let tenant = TenantID(self.tenant)
        let count = tickets
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let started = Date()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<64 {
                group.addTask {
                    var i = worker
                    while i < count {
                        let id = "queued-\(i)"
                        _ = try await store.createSession(
                            SessionRecord(
                                tenant: tenant, id: id, version: 1, stateJSON: "{}", status: .active, labels: [:],
                                createdAtMs: now - Int64(count - i), updatedAtMs: now),
                            event: NewEvent(action: "session.created", actor: "bench", reasoning: "bench", detailsJSON: "{}", occurredAtMs: now))
                        let ticket = TicketRecord(
                            tenant: tenant, id: "t-\(id)", sessionID: id, pendingActionID: "", reason: "queued", priority: 1 + i % 3,
                            status: .open, createdBy: "bench", assignedTo: "", createdAtMs: now - Int64(count - i),
                            slaDeadlineMs: now + 86_400_000, snapshotJSON: "{}")
                        _ = try await store.openTicket(
                            ticket,
                            turn: TurnRecord(
                                sessionID: id, sequence: 0, input: "", output: "queued", metadataJSON: "{}", reasoning: "",
                                author: "bench", createdAtMs: now),
                            event: NewEvent(
                                action: "session.escalated", actor: "bench", reasoning: "queued",
                                detailsJSON: #"{"ticket_id":"t-\#(id)"}"#, occurredAtMs: now))
                        i += 64
                    }
                }
            }
            try await group.waitForAll()
        }
        // As handoffd makes its own (it refuses a store others can read).
        chmod(directory, 0o700)
        for file in ["handoff.sqlite", "handoff.sqlite-wal", "handoff.sqlite-shm"] {
            chmod((directory as NSString).appendingPathComponent(file), 0o600)
        }
        print("prepared \(count) open tickets in \(directory) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }

    static func ns(_ d: Duration) -> UInt64 {
        let (s, a) = d.components
        return UInt64(max(0, s * 1_000_000_000 + a / 1_000_000_000))
    }

    static func line(_ anchor: String, _ h: Histogram<UInt64>, extra: String) -> String {
        func us(_ p: Double) -> String { String(format: "%.1f", Double(h.valueAtPercentile(p)) / 1000) }
        return "anchor=\(anchor) conc=1 p50_us=\(us(50)) p99_us=\(us(99)) p999_us=\(us(99.9)) \(extra)"
    }
}
