// Handoff — handoff-bench, the load generator and micro-benchmarks.
// Always run from a release build: `swift build -c release --product handoff-bench`.

import ArgumentParser

@main
struct HandoffBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handoff-bench",
        abstract: "Benchmarks for Handoff (release builds only).",
        subcommands: [RPCBenchmark.self, StoreBenchmark.self, CodecBenchmark.self, PolicyBenchmark.self, DeskBenchmark.self, SoakBenchmark.self]
    )
}
