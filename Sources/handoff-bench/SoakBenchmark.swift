// Handoff — handoff-bench soak: the seed's mix at a set rate for a set time,
// against a running handoffd, counting every call as answered (by status) or
// hung (no answer by its deadline plus one second), with the server's memory,
// descriptors and sockets each interval, and at the end every audit chain
// verified and every ticket counted at every watcher.

import ArgumentParser
import Foundation
import HandoffClient
import HandoffProto
import HandoffRPC
import HandoffTLS
import Histogram
import NIOPosix
import Synchronization

struct SoakBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Run the seed's mix at a set rate; fail on a hung call, an error, growing memory or descriptors, or a lost event.",
        discussion: """
            Each story is one session: state updates, a turn, a weather lookup (automated), a booking (confirmed), a \
            deletion (a code, read from <data>/mfa-codes.jsonl; at most 8 a minute, the limit being 10 per identity), a \
            refund (approved by the approver), a medical question (claimed, answered and resolved by the operator), \
            each decision awaited with WaitForDecision, and the context read back. Two operators watch the desk for \
            the whole run. Exit status 1 names what failed.
            """)

    @Option(help: "Server address HOST:PORT.") var server = "127.0.0.1:7443"
    @Option(help: "Directory made by `handoff certs init` (agent, operator and approver certificates).") var certs = ".handoff/certs"
    @Option(help: "The server's data directory (for the codes its development file channel writes).") var data = ".handoff"
    @Option(help: "The server's process id, for its memory and descriptors (0: not sampled).") var pid: Int32 = 0
    @Option(help: "Calls a second in all; 0 runs as fast as the workers go (to measure the rate to soak at).") var rate = 32.0
    @Option(help: "Seconds to run.") var seconds = 60.0
    @Option(help: "Seconds per report line.") var interval = 60.0
    @Option(help: "Stories running at once.") var workers = 8
    @Option(help: "Seconds of warm-up: memory and descriptors are compared from its end to the run's end.") var warmup: Double?
    @Flag(help: "Only measure: print the rate reached and exit 0 (no checks).") var measure = false
    @Option(help: "Deletions released by a code a minute at most (the server allows 10 code starts a minute per identity; 0: none).")
    var codesPerMinute = 8

    func run() async throws {
        guard let address = HostAndPort(server), address.port > 0 else { throw ValidationError("--server \(server) is not HOST:PORT") }
        guard workers > 0, seconds > 0, interval > 0, rate >= 0 else {
            throw ValidationError("--workers, --seconds and --interval must be positive, --rate at least 0")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        func client(_ role: String) throws -> HandoffClient {
            var configuration = HandoffClient.Configuration(
                host: address.host, port: address.port,
                tls: .client(
                    trustRootsPath: "\(certs)/ca.pem", serverHostname: address.host,
                    certificateChainPath: "\(certs)/\(role).pem", privateKeyPath: "\(certs)/\(role).key"))
            configuration.defaultTimeout = Soak.deadline
            return try HandoffClient(configuration: configuration, eventLoopGroup: group)
        }
        let soak = Soak(
            agent: try client("agent"), operator: try client("operator"), approver: try client("approver"),
            codes: "\(data)/mfa-codes.jsonl", codesPerMinute: codesPerMinute, pacer: Pacer(rate: rate))
        let watchers = try (0..<2).map { _ in try client("operator") }
        let watching = watchers.map { watcher in Task { await soak.watch(watcher) } }
        try await Task.sleep(for: .milliseconds(300))  // the watches are open before the first ticket

        let run = "soak-\(UInt32.random(in: 0...UInt32.max))"
        let started = ContinuousClock.now
        let end = started + .milliseconds(Int64(seconds * 1000))
        let warmupEnd = started + .milliseconds(Int64((warmup ?? min(60, seconds / 4)) * 1000))
        var samples: [(at: ContinuousClock.Instant, resources: Resources?)] = [(started, Resources(pid: pid))]
        let stories = (0..<workers).map { worker in
            Task {
                var n = 0
                while ContinuousClock.now < end {
                    n += 1
                    await soak.story("\(run)-\(worker)-\(n)")
                }
            }
        }
        var reported = 0
        var nextReport = started + .milliseconds(Int64(interval * 1000))
        var warmupSample: Resources?
        while ContinuousClock.now < end {
            try await Task.sleep(until: min(nextReport, end), clock: .continuous)
            if warmupSample == nil, ContinuousClock.now >= warmupEnd { warmupSample = Resources(pid: pid) }
            if ContinuousClock.now >= nextReport || ContinuousClock.now >= end {
                reported += 1
                let resources = Resources(pid: pid)
                samples.append((.now, resources))
                emit(soak.stats.report(index: reported, elapsed: ContinuousClock.now - started, resources: resources))
                nextReport = nextReport + .milliseconds(Int64(interval * 1000))
            }
        }
        for story in stories { await story.value }
        let elapsed = ContinuousClock.now - started
        let total = soak.stats.total
        let callsPerSecond = Double(total.calls) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        emit(
            String(
                format: "soak calls=%d per_second=%.1f hung=%d failed=%d stories=%d", total.calls, callsPerSecond, total.hung, total.failed,
                total.stories))
        if measure {
            for watch in watching { watch.cancel() }
            await closeAll(soak, watchers, group)
            return
        }

        // Every ticket the soak opened reaches every watcher (the feed is polled every 2 s at most).
        var problems: [String] = []
        let opened = soak.openedTickets
        var caughtUp = false
        for _ in 0..<50 where !caughtUp {
            caughtUp = soak.watcherSets.allSatisfy { opened.isSubset(of: $0) }
            if !caughtUp { try await Task.sleep(for: .milliseconds(100)) }
        }
        for watch in watching { watch.cancel() }
        for (index, seen) in soak.watcherSets.enumerated() where !opened.isSubset(of: seen) {
            problems.append(
                "watcher \(index + 1) missed \(opened.subtracting(seen).count) of \(opened.count) tickets opened (e.g. \(opened.subtracting(seen).sorted().prefix(3).joined(separator: ", ")))"
            )
        }
        // Every chain verifies.
        var broken = 0
        for session in soak.sessions {
            let verified = try? await soak.operator.call(Admin.verifyAuditChain, VerifyAuditChainRequest(sessionID: session))
            if verified?.ok != true { broken += 1 }
        }
        emit(
            "soak chains_verified=\(soak.sessions.count - broken)/\(soak.sessions.count) tickets_opened=\(opened.count) watchers=\(soak.watcherSets.map(\.count))"
        )
        if broken > 0 { problems.append("\(broken) audit chains did not verify") }
        if total.hung > 0 { problems.append("\(total.hung) calls hung (no answer by their deadline plus 1 s): \(soak.stats.hungMethods)") }
        if total.failed > 0 { problems.append("\(total.failed) calls failed: \(soak.stats.failures)") }
        if total.stories == 0 { problems.append("no story completed") }
        problems += Self.drift(samples: samples, warmup: warmupSample, stats: soak.stats)
        await closeAll(soak, watchers, group)
        if problems.isEmpty {
            emit("soak PASS")
        } else {
            for problem in problems { emit("soak FAIL: \(problem)") }
            throw ExitCode.failure
        }
    }

    private func closeAll(_ soak: Soak, _ watchers: [HandoffClient], _ group: MultiThreadedEventLoopGroup) async {
        for client in [soak.agent, soak.operator, soak.approver] + watchers { await client.close() }
        try? await group.shutdownGracefully()
    }

    /// Memory and descriptors flat after warm-up; p99 without drift.
    static func drift(samples: [(at: ContinuousClock.Instant, resources: Resources?)], warmup: Resources?, stats: SoakStats) -> [String] {
        var problems: [String] = []
        if let warmup, let last = samples.last?.resources {
            // Flat: within 10% or 8 MiB of the warm-up's end, whichever is larger.
            let allowed = max(warmup.rssKiB / 10, 8 * 1024)
            if last.rssKiB - warmup.rssKiB > allowed {
                problems.append("resident memory grew from \(warmup.rssKiB / 1024) MiB after warm-up to \(last.rssKiB / 1024) MiB")
            }
            if last.descriptors - warmup.descriptors > 16 {
                problems.append("open descriptors grew from \(warmup.descriptors) after warm-up to \(last.descriptors)")
            }
        }
        problems += stats.p99Drift()
        return problems
    }
}

/// Writes a line at once (print buffers when the output is a pipe).
private func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// The server process's resident memory, descriptors and sockets, from /proc.
struct Resources {
    /// Resident memory in all, and its anonymous part (the heap and stacks:
    /// what a leak grows; the rest is mapped files, such as SQLite's -shm).
    var rssKiB: Int
    var anonymousKiB: Int
    var descriptors: Int
    var sockets: Int

    init?(pid: Int32) {
        guard pid > 0, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func kib(_ key: String) -> Int? {
            status.split(separator: "\n").first(where: { $0.hasPrefix(key) })
                .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") }
        }
        guard let rss = kib("VmRSS:") else { return nil }
        rssKiB = rss
        anonymousKiB = kib("RssAnon:") ?? rss
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        descriptors = fds.count
        sockets =
            fds.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) ?? "").hasPrefix("socket:") }.count
    }
}

/// Hands out call slots at `rate` a second (0: at once).
final class Pacer: Sendable {
    private let gap: Duration?
    private let next = Mutex<ContinuousClock.Instant>(.now)

    init(rate: Double) {
        gap = rate > 0 ? .nanoseconds(Int64(1e9 / rate)) : nil
    }

    func slot() async {
        guard let gap else { return }
        let at = next.withLock { next -> ContinuousClock.Instant in
            let now = ContinuousClock.now
            // A slot missed long ago is not owed: no burst after a stall.
            let at = max(next, now - gap * 4)
            next = at + gap
            return at
        }
        try? await Task.sleep(until: at, clock: .continuous)
    }
}

/// Calls by method and status, latency by method, per interval and in all.
final class SoakStats: Sendable {
    struct Totals {
        var calls = 0, hung = 0, failed = 0, stories = 0
    }

    private struct State {
        var total = Totals()
        var failures: [String: Int] = [:]
        var hung: [String: Int] = [:]
        var interval: [String: (statuses: [String: Int], latency: Histogram<UInt64>)] = [:]
        /// p99 (µs) by method of each interval, for drift.
        var p99s: [String: [UInt64]] = [:]
    }

    private let state = Mutex(State())

    var total: Totals { state.withLock { $0.total } }
    var failures: String { state.withLock { $0.failures.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: "; ") } }
    var hungMethods: String { state.withLock { $0.hung.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ") } }

    func storyDone() { state.withLock { $0.total.stories += 1 } }

    func record(_ method: String, status: String, latency: Duration?) {
        state.withLock { state in
            state.total.calls += 1
            var entry = state.interval[method] ?? ([:], Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .two))
            entry.statuses[status, default: 0] += 1
            if let latency {
                _ = entry.latency.record(UInt64(max(0, latency.components.seconds * 1_000_000 + latency.components.attoseconds / 1_000_000_000_000)))
            }
            state.interval[method] = entry
            if status == "HUNG" {
                state.total.hung += 1
                state.hung[method, default: 0] += 1
            } else if status != "OK" {
                state.total.failed += 1
                state.failures["\(method) \(status)", default: 0] += 1
            }
        }
    }

    func recordFailure(_ what: String) {
        state.withLock { state in
            state.total.failed += 1
            state.failures[what, default: 0] += 1
        }
    }

    /// One interval's line; starts the next interval.
    func report(index: Int, elapsed: Duration, resources: Resources?) -> String {
        state.withLock { state in
            var statuses: [String: Int] = [:]
            var calls = 0
            var methods: [String] = []
            for (method, entry) in state.interval.sorted(by: { $0.key < $1.key }) {
                for (status, count) in entry.statuses {
                    statuses[status, default: 0] += count
                    calls += count
                }
                let p50 = entry.latency.valueAtPercentile(50)
                let p99 = entry.latency.valueAtPercentile(99)
                if entry.latency.totalCount >= 50 { state.p99s[method, default: []].append(p99) }
                methods.append(String(format: "%@=%.2f/%.2f", method, Double(p50) / 1000, Double(p99) / 1000))
            }
            state.interval = [:]
            let statusText = statuses.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
            let seconds = Double(elapsed.components.seconds)
            let resourceText =
                resources.map {
                    String(
                        format: "rss_mib=%.1f anon_mib=%.1f fds=%d sockets=%d", Double($0.rssKiB) / 1024, Double($0.anonymousKiB) / 1024,
                        $0.descriptors, $0.sockets)
                } ?? "rss_mib=? fds=? sockets=?"
            return
                "soak interval=\(index) t=\(Int(seconds))s calls=\(calls) statuses=\(statusText) \(resourceText) p50/p99_ms \(methods.joined(separator: " "))"
        }
    }

    /// A method whose p99 in the last interval is over 4× (and 5 ms over) its first interval's after warm-up.
    func p99Drift() -> [String] {
        state.withLock { state in
            state.p99s.compactMap { method, values in
                guard values.count >= 3, let last = values.last else { return nil }
                let baseline = values[1]  // the first interval is warm-up
                return last > baseline * 4 && last - baseline > 5_000
                    ? "\(method) p99 drifted from \(Double(baseline) / 1000) ms to \(Double(last) / 1000) ms" : nil
            }.sorted()
        }
    }
}

/// The mix, one story per session.
final class Soak: Sendable {
    static let deadline: Duration = .seconds(10)
    /// A decision can wait for a person (here the soak's own operator or approver).
    static let waitDeadline: Duration = .seconds(30)

    let agent: HandoffClient
    let `operator`: HandoffClient
    let approver: HandoffClient
    let codes: String
    let codesPerMinute: Int
    let pacer: Pacer
    let stats = SoakStats()
    private let state = Mutex<(sessions: [String], opened: Set<String>, seen: [Int: Set<String>], codeStarts: [ContinuousClock.Instant])>(
        ([], [], [:], []))
    private let watcherIDs = Atomic<Int>(0)

    init(agent: HandoffClient, operator: HandoffClient, approver: HandoffClient, codes: String, codesPerMinute: Int, pacer: Pacer) {
        self.codesPerMinute = codesPerMinute
        self.agent = agent
        self.operator = `operator`
        self.approver = approver
        self.codes = codes
        self.pacer = pacer
    }

    var sessions: [String] { state.withLock { $0.sessions } }
    var openedTickets: Set<String> { state.withLock { $0.opened } }
    var watcherSets: [Set<String>] { state.withLock { state in state.seen.keys.sorted().map { state.seen[$0] ?? [] } } }

    /// One call, timed, its status recorded; nil when it failed or hung.
    func call<T: Sendable>(
        _ method: String, deadline: Duration = Soak.deadline, _ body: @escaping @Sendable () async throws -> T
    ) async -> T? {
        await pacer.slot()
        let started = ContinuousClock.now
        // Raced against a watchdog: a hung call must not hang the soak.
        let answered = Mutex(false)
        let outcome: Result<T, any Error>? = await withCheckedContinuation { continuation in
            let finish: @Sendable (Result<T, any Error>?) -> Void = { value in
                if answered.withLock({ done in
                    defer { done = true }
                    return !done
                }) {
                    continuation.resume(returning: value)
                }
            }
            let work = Task { do { finish(.success(try await body())) } catch { finish(.failure(error)) } }
            Task {
                try? await Task.sleep(for: deadline + .seconds(1))
                finish(nil)
                work.cancel()
            }
        }
        let latency = ContinuousClock.now - started
        switch outcome {
        case .success(let value)?:
            stats.record(method, status: "OK", latency: latency)
            return value
        case .failure(let error)?:
            stats.record(method, status: (error as? RPCError).map { "\($0.code): \($0.message)" } ?? "\(error)", latency: latency)
            return nil
        case nil:
            stats.record(method, status: "HUNG", latency: nil)
            return nil
        }
    }

    func story(_ session: String) async {
        let agent = self.agent
        guard
            await call(
                "CreateSession",
                {
                    try await agent.call(
                        Sessions.createSession, CreateSessionRequest(sessionID: session, stateJSON: #"{"cart":0}"#, reasoning: "soak"))
                }) != nil
        else { return }
        state.withLock { $0.sessions.append(session) }
        for i in 1...2 {
            _ = await call("UpdateState") {
                try await agent.call(
                    Sessions.updateState, UpdateStateRequest(sessionID: session, reasoning: "soak", change: .mergePatchJSON(#"{"cart":\#(i)}"#)))
            }
        }
        _ = await call("AddTurn") {
            try await agent.call(Sessions.addTurn, AddTurnRequest(sessionID: session, input: "hi", output: "hello", reasoning: "soak"))
        }
        // A weather lookup: automated.
        _ = await assess(session, Action(toolName: "get_weather", parametersJSON: #"{"city":"Paris"}"#, description: "weather", confidence: 0.95))
        // A booking: confirmed by the user, then run.
        if let booking = await assess(
            session, Action(toolName: "book_flight", parametersJSON: #"{"to":"NYC"}"#, description: "book", confidence: 0.9)),
            let id = booking.pendingAction?.id
        {
            _ = await call("RequestConfirmation") {
                try await agent.call(Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: id))
            }
            if let answer = await call(
                "RespondToConfirmation",
                { try await agent.call(Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: id, text: "Yes")) }),
                let token = answer.pendingAction?.releaseToken, !token.isEmpty
            {
                await report(token, session)
            } else {
                stats.recordFailure("booking not released by its confirmation")
            }
        }
        // A deletion: released by a one-time code (within the per-identity limit of code starts).
        if takeCodeSlot(),
            let deletion = await assess(
                session, Action(toolName: "delete_account", parametersJSON: #"{"scope":"all"}"#, description: "delete", confidence: 0.9)),
            let id = deletion.pendingAction?.id
        {
            if await call("StartMultiFactor", { try await agent.call(Confirmations.startMultiFactor, StartMultiFactorRequest(pendingActionID: id)) })
                != nil
            {
                if let code = readCode(id) {
                    if let verified = await call(
                        "VerifyMultiFactor",
                        { try await agent.call(Confirmations.verifyMultiFactor, VerifyMultiFactorRequest(pendingActionID: id, code: code)) }),
                        let token = verified.pendingAction?.releaseToken, !token.isEmpty
                    {
                        await report(token, session)
                    } else {
                        stats.recordFailure("deletion not released by its code")
                    }
                } else {
                    stats.recordFailure("no code delivered to \(codes)")
                }
            }
        }
        // A refund: the approver approves it; the agent waits for the decision.
        if let refund = await assess(
            session,
            Action(
                toolName: "issue_refund", parametersJSON: #"{"order":"A-1"}"#, description: "refund", amount: "250", currency: "USD", confidence: 0.9)
        ),
            let id = refund.pendingAction?.id
        {
            if refund.approvalID.isEmpty {
                stats.recordFailure("a refund was not handed to approvers")
            } else {
                let waiting = Task { await self.waitForDecision(id) }
                await approve(refund.approvalID)
                if let decision = await waiting.value, decision.status == .released {
                    await report(decision.releaseToken, session)
                } else {
                    stats.recordFailure("refund not released after its approval")
                }
            }
        }
        // A medical question: the operator claims it, answers and resolves, rejecting the action.
        if let medical = await assess(
            session, Action(toolName: "answer_question", description: "Can I double my blood pressure medication?", confidence: 0.4)),
            let id = medical.pendingAction?.id
        {
            if medical.ticketID.isEmpty {
                stats.recordFailure("a medical question did not open a ticket")
            } else {
                let ticket = medical.ticketID
                state.withLock { _ = $0.opened.insert(ticket) }
                let waiting = Task { await self.waitForDecision(id) }
                let op = self.operator
                _ = await call("Claim") { try await op.call(Escalations.claim, ClaimRequest(ticketID: ticket)) }
                _ = await call("Reply") { try await op.call(Escalations.reply, ReplyRequest(ticketID: ticket, text: "Please ask your doctor.")) }
                _ = await call("Resolve") {
                    try await op.call(
                        Escalations.resolve, ResolveRequest(ticketID: ticket, outcome: .resolved, note: "answered", pendingActionDecision: .reject))
                }
                if let decision = await waiting.value, decision.status != .rejected {
                    stats.recordFailure("medical action \(decision.status) after the operator rejected it")
                } else if await waiting.value == nil {
                    stats.recordFailure("no decision for a medical action after its ticket was resolved")
                }
            }
        }
        _ = await call("GetContext") { try await agent.call(Sessions.getContext, GetContextRequest(sessionID: session, turnLimit: 20)) }
        stats.storyDone()
    }

    private func assess(_ session: String, _ action: Action) async -> AssessActionResponse? {
        let agent = self.agent
        return await call("AssessAction") { try await agent.call(Policy.assessAction, AssessActionRequest(sessionID: session, action: action)) }
    }

    private func report(_ token: String, _ session: String) async {
        let agent = self.agent
        _ = await call("ReportExecution") {
            try await agent.call(
                Decisions.reportExecution,
                ReportExecutionRequest(releaseToken: token, resultJSON: #"{"ok":true}"#, idempotencyKey: "exec-\(token.suffix(16))"))
        }
    }

    /// The approver approves each level until the approval is decided.
    private func approve(_ approvalID: String) async {
        let approver = self.approver
        for _ in 0..<3 {
            guard
                let result = await call(
                    "DecideApproval",
                    {
                        try await approver.call(
                            Approvals.decideApproval,
                            DecideApprovalRequest(decisions: [ApprovalDecision(approvalID: approvalID, verdict: .approve, comment: "soak")]))
                    })?.results.first
            else { return }
            guard case .approval(let approval)? = result.result else {
                stats.recordFailure("DecideApproval refused an item")
                return
            }
            if approval.status != .pending { return }
        }
    }

    private func waitForDecision(_ id: String) async -> DecisionUpdate? {
        let agent = self.agent
        return await call("WaitForDecision", deadline: Soak.waitDeadline) { () async throws -> DecisionUpdate? in
            for try await update in try await agent.stream(
                Decisions.waitForDecision, WaitForDecisionRequest(pendingActionIDs: [id]), options: CallOptions(timeout: Soak.waitDeadline))
            {
                return update
            }
            return nil
        } ?? nil
    }

    /// At most `codesPerMinute` code starts a minute (the server allows 10 per identity).
    private func takeCodeSlot() -> Bool {
        state.withLock { state in
            let now = ContinuousClock.now
            state.codeStarts.removeAll { now - $0 > .seconds(61) }
            guard state.codeStarts.count < codesPerMinute else { return false }
            state.codeStarts.append(now)
            return true
        }
    }

    /// The code the development file channel wrote for `pendingActionID`.
    private func readCode(_ pendingActionID: String) -> String? {
        for _ in 0..<50 {
            if let text = try? String(contentsOfFile: codes, encoding: .utf8) {
                for line in text.split(separator: "\n").reversed() where line.contains(pendingActionID) {
                    if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let code = object["code"] as? String {
                        return code
                    }
                }
            }
            usleep(20_000)
        }
        return nil
    }

    /// Counts every ticket.opened event of this run at one watcher, for the whole run.
    func watch(_ client: HandoffClient) async {
        let index = watcherIDs.add(1, ordering: .relaxed).newValue
        state.withLock { $0.seen[index] = [] }
        var cursor = ""
        while !Task.isCancelled {
            do {
                for try await event in try await client.stream(Operators.watch, WatchRequest(kinds: [.ticketOpened], resumeCursor: cursor)) {
                    if !event.cursor.isEmpty { cursor = event.cursor }
                    if case .ticket(let ticket)? = event.subject {
                        state.withLock { _ = $0.seen[index]?.insert(ticket.id) }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                stats.recordFailure("a Watch stream ended: \(error)")
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}
