// Handoff — test utility: a handler that records what reaches the end of a
// TLS pipeline, and a thread-safe log tests can wait on (with a deadline).
import HandoffTLS
import NIOCore
import Synchronization

/// One thing a `RecordingHandler` saw.
enum Observed: Sendable, Equatable {
    case handshake(TLSSessionInfo)
    case read(String)
    case error(TLSError)
    case otherError(String)
    case inactive
}

struct WaitTimedOut: Error, CustomStringConvertible {
    var what: String
    var seen: [Observed]
    var description: String { "timed out waiting for \(self.what); saw \(self.seen)" }
}

/// Events in arrival order, safe to read from the test while an event loop writes.
final class EventLog: Sendable {
    private let events = Mutex<[Observed]>([])

    func append(_ event: Observed) {
        self.events.withLock { $0.append(event) }
    }

    var all: [Observed] { self.events.withLock { $0 } }

    var handshakes: [TLSSessionInfo] {
        self.all.compactMap { if case .handshake(let info) = $0 { info } else { nil } }
    }

    var errors: [TLSError] {
        self.all.compactMap { if case .error(let error) = $0 { error } else { nil } }
    }

    var otherErrors: [String] {
        self.all.compactMap { if case .otherError(let error) = $0 { error } else { nil } }
    }

    /// Every plaintext read, concatenated.
    var plaintext: String {
        self.all.map { if case .read(let text) = $0 { text } else { "" } }.joined()
    }

    var sawInactive: Bool { self.all.contains(.inactive) }

    /// Polls until `condition` holds; throws `WaitTimedOut` after `timeout`.
    func wait(
        for what: String,
        timeout: Duration = .seconds(10),
        until condition: (EventLog) -> Bool
    ) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while !condition(self) {
            if ContinuousClock.now >= deadline {
                throw WaitTimedOut(what: what, seen: self.all)
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// Sits after `TLSHandler`: records plaintext, the handshake event, errors
/// and inactivity; optionally echoes plaintext back. Consumes errors so an
/// `EmbeddedChannel` does not rethrow them.
final class RecordingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let log: EventLog
    let echo: Bool

    init(log: EventLog, echo: Bool = false) {
        self.log = log
        self.echo = echo
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        self.log.append(.read(String(buffer: buffer)))
        if self.echo {
            context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted(let info) = event {
            self.log.append(.handshake(info))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? TLSError {
            self.log.append(.error(error))
        } else {
            self.log.append(.otherError(String(describing: error)))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.log.append(.inactive)
    }
}

@available(*, unavailable)
extension RecordingHandler: Sendable {}

/// Whether a future has completed, readable from the test without waiting.
final class CompletionFlag: Sendable {
    private let done = Atomic<Bool>(false)

    init(_ future: EventLoopFuture<Void>) {
        future.whenComplete { _ in self.done.store(true, ordering: .releasing) }
    }

    var isDone: Bool { self.done.load(ordering: .acquiring) }
}
