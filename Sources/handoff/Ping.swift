// Handoff — `handoff ping`: round trips to the server.

import ArgumentParser
import Foundation
import HandoffClient
import HandoffProto

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure round trips to the server (handoff.v1.Health/Ping).")

    @OptionGroup var connection: ConnectionOptions

    @Option(name: .shortAndLong, help: "How many pings.")
    var count = 3

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let client = try connection.makeClient()
        defer { Task { await client.close() } }
        var times: [Double] = []
        var version = ""
        let clock = ContinuousClock()
        for i in 0..<max(1, count) {
            let start = clock.now
            let response: PingResponse
            do {
                response = try await client.call(Health.ping, PingRequest(payload: [UInt8](repeating: 0, count: 32)))
            } catch {
                throw CommandFailure(Advice.explain(error, call: "ping \(connection.server)"))
            }
            let elapsed = clock.now - start
            let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            times.append(ms)
            version = response.serverVersion
            if !json {
                let label = i == 0 ? " (includes connecting)" : ""
                print("pong from \(connection.server) (handoffd \(response.serverVersion)): time=\(String(format: "%.3f", ms)) ms\(label)")
            }
        }
        let steady = times.count > 1 ? Array(times.dropFirst()) : times
        let average = steady.reduce(0, +) / Double(steady.count)
        if json {
            let object: [String: Any] = [
                "server": connection.server, "server_version": version, "count": times.count,
                "times_ms": times, "min_ms": steady.min() ?? 0, "avg_ms": average, "max_ms": steady.max() ?? 0,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "round trip min/avg/max = %.3f/%.3f/%.3f ms", steady.min() ?? 0, average, steady.max() ?? 0))
        }
    }
}
