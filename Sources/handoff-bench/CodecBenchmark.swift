// Handoff — handoff-bench codec: encode and decode cost of a typical request.

import ArgumentParser
import Foundation
import HandoffProto

struct CodecBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec",
        abstract: "Encode/decode time of a typical UpdateState request, in ns per message."
    )

    @Option(help: "Messages per measurement.")
    var iterations = 1_000_000

    @Option(help: "Measurements; the best (least disturbed) one is reported.")
    var repeats = 5

    func run() throws {
        // A typical agent call: a 200-byte JSON state replacement and 40 bytes of reasoning.
        let state =
            #"{"user":{"id":"u-1842","tier":"gold","locale":"en-US"},"cart":{"items":[{"sku":"A-17","qty":2},{"sku":"B-3","qty":1}],"total":"129.90"},"step":"checkout","flags":["x"]}"#
        let request = UpdateStateRequest(
            sessionID: "8c4e0a52-2f0b-4b8e-9d5e-3f6a1c2b7d90",
            reasoning: "user confirmed the shipping address ok",
            expectedVersion: 41,
            change: .replacementJSON(state.padding(toLength: 200, withPad: " ", startingAt: 0)))
        let payload = try request.serializedBytes()
        let envelope = Envelope(
            kind: .request, callID: 7, method: "handoff.v1.Sessions/UpdateState", timeoutMs: 5000, payload: payload)
        let frame = try envelope.serializedBytes()
        print("UpdateStateRequest: \(payload.count) bytes; in its envelope: \(frame.count) bytes")

        report("encode UpdateStateRequest", try measure { _ = try request.serializedBytes() })
        report("decode UpdateStateRequest", try measure { _ = try UpdateStateRequest(serializedBytes: payload) })
        report(
            "encode request + envelope",
            try measure {
                var e = envelope
                e.payload = try request.serializedBytes()
                _ = try e.serializedBytes()
            })
        report(
            "decode envelope + request",
            try measure {
                let e = try Envelope(serializedBytes: frame)
                _ = try UpdateStateRequest(serializedBytes: e.payload)
            })
    }

    private func measure(_ body: () throws -> Void) rethrows -> Double {
        let clock = ContinuousClock()
        var best = Double.infinity
        for _ in 0..<repeats {
            let elapsed = try clock.measure { for _ in 0..<iterations { try body() } }
            let ns = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
            best = min(best, ns / Double(iterations))
        }
        return best
    }

    private func report(_ name: String, _ ns: Double) {
        let padded = name.padding(toLength: 28, withPad: " ", startingAt: 0)
        print("\(padded) \(String(format: "%7.0f", ns)) ns/message")
    }
}
