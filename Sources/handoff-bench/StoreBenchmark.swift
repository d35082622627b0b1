// Handoff — handoff-bench store: the SQLite store alone, without RPC or TLS,
// so a slow UpdateState can be split into what the store costs and the rest.

import ArgumentParser
import Foundation
import HandoffCore
import HandoffSQLite
import Histogram

struct StoreBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Durable UpdateState writes straight into a SQLite store: latency at 1 in flight, throughput at N."
    )

    @Option(help: "Directory for the database (a temporary one if not given).")
    var data: String?

    @Option(help: "Sessions the writes spread over.")
    var sessions = 10_000

    @Option(help: "Writes measured one at a time.")
    var n = 5_000

    @Option(help: "Writes in flight for the throughput run.")
    var concurrency = 64

    @Option(help: "Length of the throughput run, in seconds.")
    var seconds = 5.0

    func run() async throws {
        let directory = data ?? FileManager.default.temporaryDirectory.appendingPathComponent("handoff-store-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { if data == nil { try? FileManager.default.removeItem(atPath: directory) } }
        let store = try SQLiteStore(path: (directory as NSString).appendingPathComponent("handoff.sqlite"))
        let service = SessionService(store: store)
        let caller = Caller(tenant: .default, identity: "bench")
        let ids = (0..<sessions).map { "store-bench-\($0)" }
        for id in ids {
            _ = try await service.create(
                id: id, stateJSON: #"{"cart":{"items":[]},"step":"start"}"#, labels: [:], reasoning: "bench", caller: caller)
        }
        let patch = try JSONValue(
            parsing:
                #"{"cart":{"items":[{"sku":"A-17","qty":2}],"total":"129.90"},"step":"checkout","note":"\#(String(repeating: "x", count: 100))"}"#)
        let write: @Sendable () async throws -> Void = {
            _ = try await service.updateState(
                id: ids.randomElement()!, change: .mergePatch(patch), reasoning: "user confirmed the shipping address ok",
                expectedVersion: nil, caller: caller)
        }
        let clock = ContinuousClock()
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        let begin = clock.now
        for _ in 0..<n {
            let start = clock.now
            try await write()
            _ = histogram.record(UInt64((clock.now - start) / .nanoseconds(1)))
        }
        report("store_update_state", 1, histogram, Double(n) / ((clock.now - begin) / .seconds(1)))

        let commitsBefore = store._testOnly_commitCount
        let deadline = clock.now + .milliseconds(Int64(seconds * 1000))
        let started = clock.now
        let total = try await withThrowingTaskGroup(of: Histogram<UInt64>.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
                    while clock.now < deadline {
                        let start = clock.now
                        try await write()
                        _ = histogram.record(UInt64((clock.now - start) / .nanoseconds(1)))
                    }
                    return histogram
                }
            }
            var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
            for try await part in group { merged.add(part) }
            return merged
        }
        let elapsed = (clock.now - started) / .seconds(1)
        let commits = store._testOnly_commitCount - commitsBefore
        report(
            "store_update_state", concurrency, total, Double(total.totalCount) / elapsed,
            extra: " writes_per_commit=\(String(format: "%.1f", Double(total.totalCount) / Double(max(1, commits))))")
    }

    private func report(_ anchor: String, _ concurrency: Int, _ histogram: Histogram<UInt64>, _ rps: Double, extra: String = "") {
        func us(_ percentile: Double) -> String { String(format: "%.1f", Double(histogram.valueAtPercentile(percentile)) / 1000) }
        print("anchor=\(anchor) conc=\(concurrency) p50_us=\(us(50)) p99_us=\(us(99)) p999_us=\(us(99.9)) rps=\(Int(rps))\(extra)")
    }
}
