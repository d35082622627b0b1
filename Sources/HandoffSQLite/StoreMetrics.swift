// Handoff — the SQLite store's metrics: how long its group commits take,
// how many writes share one, and the commits that failed.

import CoreMetrics
import GRDB

enum StoreMetrics {
    /// Made once (after handoffd bootstrapped metrics): the writer's thread
    /// records each commit without the factory's lock.
    private static let commitLatency = CoreMetrics.Timer(label: "handoff_store_commit_duration_seconds")
    private static let batchSize = Recorder(label: "handoff_store_writes_per_commit", aggregate: true)

    static func committed(writes: Int, took: Duration) {
        let (seconds, attoseconds) = took.components
        commitLatency.recordNanoseconds(seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000)
        batchSize.record(writes)
    }

    /// A commit that failed, by cause: `full` (no space), `busy`, `io` or `other`.
    static func failed(_ error: any Error) {
        let cause: String
        switch (error as? DatabaseError)?.resultCode {
        case .SQLITE_FULL?: cause = "full"
        case .SQLITE_BUSY?, .SQLITE_LOCKED?: cause = "busy"
        case .SQLITE_IOERR?: cause = "io"
        default: cause = "other"
        }
        Counter(label: "handoff_store_errors_total", dimensions: [("cause", cause)]).increment()
    }
}
