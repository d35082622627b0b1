// Handoff — a TaskExecutor that runs jobs on one SwiftNIO event loop.
//
// On these machines a wake-up across CPUs costs about 20 µs each way, so a
// call that hops from the event loop to the global executor and back pays
// that twice. Tasks started with this executor as their preference (the
// server's handlers, a client caller that opts in) keep running on the
// connection's own loop thread.

public import NIOCore

/// Runs the jobs of tasks that prefer it on `eventLoop`'s thread.
public final class EventLoopTaskExecutor: TaskExecutor {
    /// The loop every job runs on.
    public let eventLoop: any EventLoop

    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
