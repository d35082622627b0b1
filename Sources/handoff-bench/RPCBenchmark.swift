// Handoff — handoff-bench rpc: latency and throughput of calls against a
// running handoffd (a separate process), printed in the same form as
// scripts/floor/floor so the two can be set side by side.

import ArgumentParser
import Foundation
import HandoffClient
import HandoffProto
import HandoffRPC
import HandoffTLS
import Histogram
import NIOPosix
import Synchronization

struct RPCBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rpc",
        abstract: "Latency at 1 call in flight and throughput at many, against a running handoffd.",
        discussion: """
            Prints `anchor=handoff_<method> conc=<N> p50_us=… p99_us=… p999_us=… rps=…`. \
            Run from a release build; `make bench` starts handoffd and runs the floor beside it.
            """
    )

    @Option(help: "Server address HOST:PORT.")
    var server = "127.0.0.1:7443"

    @Option(help: "Directory made by `handoff certs init`; the agent certificate is used.")
    var certs = ".handoff/certs"

    @Option(
        help:
            "What to call: ping, update_state, get_context, assess_action (a refund that goes to approvers) or assess_action_automated (a weather lookup)."
    )
    var method = "ping"

    @Option(help: "Sessions the throughput run spreads its calls over (update_state, get_context).")
    var sessions = 1000

    @Option(help: "Session ids are PREFIX-0, PREFIX-1, …; random if not given.")
    var sessionPrefix: String?

    @Flag(help: "Use sessions an earlier run created with the same --session-prefix instead of creating them.")
    var skipCreate = false

    @Option(help: "Calls before measuring latency.")
    var warmup = 2000

    @Flag(
        inversion: .prefixedNo,
        help: """
            get_context: read each session it creates once before measuring, so that latency is that of resident sessions \
            (an agent's session between its calls). Without it, p50 falls between first reads (from the store) and later ones.
            """)
    var readSessionsFirst = true

    @Option(help: "Calls measured at 1 in flight.")
    var n = 20000

    @Option(help: "Seconds of the throughput run (0 skips it).")
    var seconds = 5.0

    @Option(help: "Connections of the throughput run.")
    var connections = 4

    @Option(help: "Calls in flight in the throughput run, spread over the connections.")
    var concurrency = 64

    @Option(help: "Payload bytes of each ping.")
    var size = 256

    func run() async throws {
        guard let address = HostAndPort(server), address.port > 0 else {
            throw ValidationError("--server \(server) is not HOST:PORT")
        }
        let (host, port) = (address.host, address.port)
        let dir = URL(fileURLWithPath: certs)
        let tls = TLSConfiguration.client(
            trustRootsPath: dir.appendingPathComponent("ca.pem").path, serverHostname: host,
            certificateChainPath: dir.appendingPathComponent("agent.pem").path,
            privateKeyPath: dir.appendingPathComponent("agent.key").path)
        var configuration = HandoffClient.Configuration(host: host, port: port, tls: tls)
        configuration.defaultTimeout = .seconds(30)
        configuration.keepaliveInterval = nil
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let setup = try HandoffClient(configuration: configuration, eventLoopGroup: group)
        let sessionIDs = try await prepareSessions(setup)
        await setup.close()
        let call = try makeCall(sessionIDs)

        // Latency: one connection, one call at a time, the caller on the connection's loop.
        let client = try HandoffClient(configuration: configuration, eventLoopGroup: group)
        let connection = try await client.connection()
        let warmup = self.warmup
        let n = self.n
        let (histogram, measured) = try await Task(executorPreference: connection.taskExecutor) {
            var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
            let clock = ContinuousClock()
            for _ in 0..<warmup { try await call(connection) }
            let begin = clock.now
            for _ in 0..<n {
                let start = clock.now
                try await call(connection)
                _ = histogram.record(nanoseconds(clock.now - start))
            }
            return (histogram, clock.now - begin)
        }.value
        let latencyRPS = Double(n) / (Double(nanoseconds(measured)) / 1e9)
        print(line(concurrency: 1, histogram, rps: latencyRPS))
        await client.close()

        guard seconds > 0 else {
            try? await group.shutdownGracefully()
            return
        }
        // Throughput: `connections` connections, `concurrency` calls in flight in all.
        var clients: [RPCClientConnection] = []
        var owners: [HandoffClient] = []
        for _ in 0..<max(1, connections) {
            let owner = try HandoffClient(configuration: configuration, eventLoopGroup: group)
            owners.append(owner)
            clients.append(try await owner.connection())
        }
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        let started = ContinuousClock.now
        let total = try await withThrowingTaskGroup(of: Histogram<UInt64>.self) { tasks in
            for worker in 0..<max(1, concurrency) {
                let connection = clients[worker % clients.count]
                tasks.addTask(executorPreference: connection.taskExecutor) {
                    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
                    let clock = ContinuousClock()
                    while clock.now < deadline {
                        let start = clock.now
                        try await call(connection)
                        _ = histogram.record(nanoseconds(clock.now - start))
                    }
                    return histogram
                }
            }
            var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
            for try await part in tasks { merged.add(part) }
            return merged
        }
        let elapsed = ContinuousClock.now - started
        let rps = Double(total.totalCount) / (Double(nanoseconds(elapsed)) / 1e9)
        print(line(concurrency: concurrency, total, rps: rps))
        for owner in owners { await owner.close() }
        try? await group.shutdownGracefully()
    }

    /// Creates the sessions the stateful methods work on (none for ping).
    private func prepareSessions(_ client: HandoffClient) async throws -> [String] {
        guard method != "ping" else { return [] }
        let prefix = sessionPrefix ?? "bench-\(UInt32.random(in: 0...UInt32.max))"
        let ids = (0..<max(1, sessions)).map { "\(prefix)-\($0)" }
        if skipCreate { return ids }
        let step = max(1, ids.count / 64)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for chunk in stride(from: 0, to: ids.count, by: step) {
                let slice = ids[chunk..<min(ids.count, chunk + step)]
                group.addTask {
                    for id in slice {
                        _ = try await client.call(
                            Sessions.createSession,
                            CreateSessionRequest(sessionID: id, stateJSON: #"{"cart":{"items":[]},"step":"start"}"#, reasoning: "bench"))
                        if method == "get_context" {
                            _ = try await client.call(
                                Sessions.addTurn, AddTurnRequest(sessionID: id, input: "hello", output: "hi", reasoning: "bench"))
                            if readSessionsFirst {
                                _ = try await client.call(Sessions.getContext, GetContextRequest(sessionID: id, turnLimit: 50))
                            }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        return ids
    }

    private func makeCall(_ ids: [String]) throws -> @Sendable (RPCClientConnection) async throws -> Void {
        // A call that never returns fails the run instead of hanging it.
        let deadline = CallOptions(timeout: .seconds(10))
        // Sessions are picked without a getrandom(2) call each: the system
        // generator's syscall showed in the load generator's profile.
        let picker = SessionPicker()
        switch method {
        case "ping":
            let request = PingRequest(payload: [UInt8](repeating: 0x5A, count: size))
            return { connection in _ = try await connection.call(Health.ping, request, options: deadline) }
        case "update_state":
            // A 200-byte state change with 40 bytes of reasoning, on a random session.
            let patch =
                #"{"cart":{"items":[{"sku":"A-17","qty":2}],"total":"129.90"},"step":"checkout","note":"#
                + "\"" + String(repeating: "x", count: 100) + "\"}"
            return { connection in
                _ = try await connection.call(
                    Sessions.updateState,
                    UpdateStateRequest(
                        sessionID: ids[picker.next(below: ids.count)], reasoning: "user confirmed the shipping address ok",
                        change: .mergePatchJSON(patch)), options: deadline)
            }
        case "assess_action":
            // A refund of 250: four rules match, a pending action and an event are written.
            let action = Action(
                toolName: "issue_refund", parametersJSON: #"{"order_id":"A-1842","reason":"damaged in transit"}"#,
                description: "Refund my order of 250 dollars to the card on file", amount: "250", currency: "USD", confidence: 0.88)
            return { connection in
                _ = try await connection.call(
                    HandoffProto.Policy.assessAction, AssessActionRequest(sessionID: ids[picker.next(below: ids.count)], action: action),
                    options: deadline)
            }
        case "assess_action_automated":
            // A weather lookup: the policy automates it; one assessment and its event are written.
            let action = Action(
                toolName: "get_weather", parametersJSON: #"{"city":"Lisbon"}"#, description: "What is the weather in Lisbon today",
                confidence: 0.95)
            return { connection in
                _ = try await connection.call(
                    HandoffProto.Policy.assessAction, AssessActionRequest(sessionID: ids[picker.next(below: ids.count)], action: action),
                    options: deadline)
            }
        case "get_context":
            return { connection in
                _ = try await connection.call(
                    Sessions.getContext, GetContextRequest(sessionID: ids[picker.next(below: ids.count)], turnLimit: 50), options: deadline)
            }
        default:
            throw ValidationError("unknown --method \(method); known: ping, update_state, get_context, assess_action, assess_action_automated")
        }
    }

    private func line(concurrency: Int, _ h: Histogram<UInt64>, rps: Double) -> String {
        func us(_ p: Double) -> String { String(format: "%.1f", Double(h.valueAtPercentile(p)) / 1000) }
        return "anchor=handoff_\(method) conc=\(concurrency) p50_us=\(us(50)) p99_us=\(us(99)) p999_us=\(us(99.9)) rps=\(Int(rps))"
    }
}

private func nanoseconds(_ d: Duration) -> UInt64 {
    let (s, a) = d.components
    return UInt64(max(0, s * 1_000_000_000 + a / 1_000_000_000))
}

/// Uniform picks for the load generator: splitmix64 over a shared counter,
/// seeded once from the system generator. Not for anything secret.
final class SessionPicker: Sendable {
    private let counter: Atomic<UInt64>

    init() {
        counter = Atomic(UInt64.random(in: 0...UInt64.max))
    }

    func next(below bound: Int) -> Int {
        var z = counter.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Int(z % UInt64(bound))
    }
}
