// Handoff — one flush at the end of the event-loop tick, however many writes
// asked for one during it: frames that complete together share one TLS
// record and one write(2). The server's responses and the client's requests
// both go out this way (on Ping at 64 in flight, a flush per request cost
// the client half its throughput; see docs/BENCHMARKS.md).

import NIOCore

/// A channel handler that coalesces its flushes to the end of the loop tick.
protocol EndOfTickFlushing: AnyObject, SendableMetatype {
    /// A flush is scheduled for the end of this tick.
    var flushScheduled: Bool { get set }
    /// The handler's context while it is in a pipeline.
    var context: ChannelHandlerContext? { get }
}

extension EndOfTickFlushing {
    /// Flushes at the end of this tick of `loop`, once for all the requests made in it.
    func flushAtEndOfTick(on loop: any EventLoop) {
        guard !flushScheduled else { return }
        flushScheduled = true
        let bound = NIOLoopBound(self, eventLoop: loop)
        loop.execute {
            let handler = bound.value
            handler.flushScheduled = false
            handler.context?.flush()
        }
    }
}
