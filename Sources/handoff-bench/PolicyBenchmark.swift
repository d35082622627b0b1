// Handoff — handoff-bench policy: how long the shipped policy takes to assess
// typical actions (the issue's target: under 10 µs each).

import ArgumentParser
import Foundation
import HandoffCore
import HandoffPolicy

struct PolicyBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Assessment time of the shipped policy, in ns per action.")

    @Option(help: "Assessments per measurement.")
    var iterations = 200_000

    @Option(help: "Measurements; the best (least disturbed) one is reported.")
    var repeats = 5

    func run() throws {
        let policy = Policy.standard
        let actions: [(String, ProposedAction)] = [
            (
                "get_weather",
                ProposedAction(
                    toolName: "get_weather", parameters: try JSONValue(parsing: #"{"city":"Paris"}"#),
                    description: "What's the weather in Paris today?", confidence: 0.93)
            ),
            (
                "issue_refund",
                ProposedAction(
                    toolName: "issue_refund", parameters: try JSONValue(parsing: #"{"order_id":"A-1842","reason":"damaged in transit"}"#),
                    description: "Refund my order of 250 dollars to the card on file", amount: Decimal(250), currency: "USD",
                    confidence: 0.88)
            ),
            (
                "save_profile",
                ProposedAction(
                    toolName: "save_profile",
                    parameters: try JSONValue(parsing: #"{"user":{"name":"Ann Lee","ssn":"078-05-1120","address":{"city":"Lyon"}}}"#),
                    description: "Update the customer's profile with the details they gave")
            ),
        ]
        for (name, action) in actions {
            var best = Double.infinity
            var sink = 0
            for _ in 0..<repeats {
                let start = ContinuousClock.now
                for _ in 0..<iterations { sink &+= policy.assess(action, tenant: "acme").matched.count }
                let elapsed = ContinuousClock.now - start
                best = min(best, Double(elapsed / .nanoseconds(1)) / Double(iterations))
            }
            let result = policy.assess(action, tenant: "acme")
            print(
                "assess \(name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(Int(best.rounded())) ns/action "
                    + "(\(result.strategy), \(result.matched.count) rules matched; checksum \(sink % 10))")
        }
    }
}
