// Handoff — the deadlines of a connection's calls on one timer, set at the
// earliest deadline in flight, instead of one scheduled task per call: NIO's
// scheduled-task heap cost 13% of a Ping client's CPU at 64 calls in flight
// (perf), for deadlines that almost never fire. Client and server use it.

import NIOCore

struct ConnectionDeadlines {
    private var timer: Scheduled<Void>?
    private var at: NIODeadline?

    /// Makes sure `fire` runs on `loop` no later than `deadline`.
    mutating func arm(at deadline: NIODeadline, on loop: any EventLoop, _ fire: @escaping @Sendable () -> Void) {
        if let at, at <= deadline { return }
        timer?.cancel()
        at = deadline
        timer = loop.scheduleTask(deadline: deadline, fire)
    }

    /// The timer fired (or is no longer wanted): the next `arm` schedules anew.
    mutating func cancel() {
        timer?.cancel()
        timer = nil
        at = nil
    }

    /// Which calls are past their deadline at `now` (in call-id order) and
    /// the earliest deadline still ahead, for the next `arm`.
    static func due(_ calls: some Sequence<(UInt64, NIODeadline?)>, now: NIODeadline) -> (expired: [UInt64], next: NIODeadline?) {
        var expired: [UInt64] = []
        var next: NIODeadline?
        for (id, deadline) in calls {
            guard let deadline else { continue }
            if deadline <= now {
                expired.append(id)
            } else if next.map({ deadline < $0 }) ?? true {
                next = deadline
            }
        }
        return (expired.sorted(), next)
    }
}
