// Handoff — how many call handlers run at once across every connection of
// a server. A call answered early (cancelled, past its deadline) counts
// until its handler returns, and so does one whose connection closed: the
// per-connection limit alone forgets those once the connection is gone, so
// a client that reconnected could leave handlers that ignore cancellation
// running without bound.

import Synchronization

public final class HandlerBudget: Sendable {
    /// Handlers running at once, at most.
    public let limit: Int
    private let running = Atomic<Int>(0)

    public init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Handlers running now.
    public var current: Int { running.load(ordering: .relaxed) }

    /// Takes a place for one handler; false when `limit` run already.
    func acquire() -> Bool {
        var seen = running.load(ordering: .relaxed)
        while seen < limit {
            let (exchanged, original) = running.compareExchange(
                expected: seen, desired: seen + 1, successOrdering: .relaxed, failureOrdering: .relaxed)
            if exchanged { return true }
            seen = original
        }
        return false
    }

    /// Gives back the place of a handler that returned.
    func release() {
        running.subtract(1, ordering: .relaxed)
    }
}
