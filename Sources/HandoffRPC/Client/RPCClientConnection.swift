// Handoff — one client connection, shared by any number of concurrent callers.

public import HandoffProto
public import NIOCore
import Synchronization

/// Per-call options.
public struct CallOptions: Sendable {
    /// How long the caller waits; the server is told and stops too. nil: no deadline.
    public var timeout: Duration?
    /// Metadata sent with the call (lower-case keys).
    public var metadata: [MetadataEntry]

    public init(timeout: Duration? = nil, metadata: [MetadataEntry] = []) {
        self.timeout = timeout
        self.metadata = metadata
    }

    /// The call's W3C trace context (`00-<trace id>-<parent id>-<flags>`),
    /// sent as `traceparent` metadata: handoffd logs it with the call and
    /// records it on the events the call writes. Setting nil removes it.
    public var traceparent: String? {
        get { metadata.first { $0.key == "traceparent" }?.value }
        set {
            metadata.removeAll { $0.key == "traceparent" }
            if let newValue { metadata.append(MetadataEntry(key: "traceparent", value: newValue)) }
        }
    }
}

/// Calls over one established connection (TLS and framing already in the
/// pipeline). Unary calls and streams from many tasks share it; responses are
/// matched by call id. A caller that prefers `taskExecutor` stays on the
/// connection's event loop for the whole call.
public final class RPCClientConnection: Sendable {
    /// Whether new calls may still be started here (a GOAWAY or a close ends that).
    final class SharedState: Sendable {
        private let usable = Atomic<Bool>(true)
        func markDraining() { usable.store(false, ordering: .releasing) }
        func markClosed() { usable.store(false, ordering: .releasing) }
        var isUsable: Bool { usable.load(ordering: .acquiring) }
    }

    /// The underlying channel.
    public let channel: any Channel
    /// Runs tasks on this connection's event loop: see `EventLoopTaskExecutor`.
    public let taskExecutor: EventLoopTaskExecutor
    private let state: SharedState

    /// Adds the call handler to `channel`'s pipeline (after TLS) and returns
    /// the connection. Must be called on the channel's event loop. A PING is
    /// sent every `keepaliveInterval` while none is unanswered; one
    /// unanswered for `keepaliveTimeout` (the interval when nil) closes the
    /// connection as dead.
    public static func install(
        on channel: any Channel, maximumFrameSize: Int = 4 << 20, keepaliveInterval: TimeAmount? = .seconds(30),
        keepaliveTimeout: TimeAmount? = nil
    ) throws -> RPCClientConnection {
        let state = SharedState()
        let handler = RPCClientConnectionHandler(
            maximumFrameSize: maximumFrameSize, keepaliveInterval: keepaliveInterval, keepaliveTimeout: keepaliveTimeout,
            state: state)
        try channel.pipeline.syncOperations.addHandler(handler)
        return RPCClientConnection(channel: channel, state: state)
    }

    private init(channel: any Channel, state: SharedState) {
        self.channel = channel
        self.state = state
        self.taskExecutor = EventLoopTaskExecutor(eventLoop: channel.eventLoop)
    }

    /// False once the server sent GOAWAY or the connection closed: open a new one.
    public var isUsable: Bool { state.isUsable && channel.isActive }

    /// Closes the connection; calls in flight fail with UNAVAILABLE.
    public func close() async {
        try? await channel.close()
    }

    /// Makes a unary call.
    /// - Throws: `RPCError` with the call's status.
    public func call<Request, Response>(
        _ method: UnaryMethod<Request, Response>, _ request: Request, options: CallOptions = .init()
    ) async throws(RPCError) -> Response {
        let payload = try encodeRequest(request)
        let promise = channel.eventLoop.makePromise(of: [UInt8].self)
        let handle = CallHandle(eventLoop: channel.eventLoop)
        let call = OutboundCall(
            handle: handle, method: method.fullName, payload: payload, timeout: options.timeout.map(TimeAmount.init),
            metadata: options.metadata, responder: .unary(promise))
        let channel = self.channel
        let bytes: [UInt8]
        do {
            bytes = try await withTaskCancellationHandler {
                // A write that never reaches the call handler (the channel closed
                // in the meantime) would leave the caller waiting for ever.
                let written = channel.eventLoop.makePromise(of: Void.self)
                written.futureResult.whenFailure { error in
                    promise.fail(RPCError(code: .unavailable, message: "the connection is closed; the call was not sent", cause: error))
                }
                channel.writeAndFlush(ClientOutbound.start(call), promise: written)
                return try await promise.futureResult.get()
            } onCancel: {
                channel.writeAndFlush(
                    ClientOutbound.cancel(handle, reason: RPCError(code: .cancelled, message: "the call was cancelled")),
                    promise: nil)
            }
        } catch let error as RPCError {
            throw error
        } catch {
            throw RPCError(code: .unavailable, message: "connection failed: \(error)", cause: error)
        }
        do {
            return try Response(serializedBytes: bytes)
        } catch {
            throw RPCError(code: .internalError, message: "the response is not a valid \(Response.protoName): \(error.message)")
        }
    }

    /// Starts a server-streaming call. The stream yields each response and
    /// finishes when the server ends the call (throwing `RPCError` unless OK);
    /// ending the iteration early cancels the call on the server.
    public func stream<Request, Response>(
        _ method: ServerStreamingMethod<Request, Response>, _ request: Request, options: CallOptions = .init()
    ) -> AsyncThrowingStream<Response, any Error> {
        let (stream, continuation) = AsyncThrowingStream<Response, any Error>.makeStream()
        let payload: [UInt8]
        do {
            payload = try encodeRequest(request)
        } catch {
            continuation.finish(throwing: error)
            return stream
        }
        let handle = CallHandle(eventLoop: channel.eventLoop)
        let call = OutboundCall(
            handle: handle, method: method.fullName, payload: payload, timeout: options.timeout.map(TimeAmount.init),
            metadata: options.metadata,
            responder: .stream(
                onMessage: { bytes in
                    do {
                        continuation.yield(try Response(serializedBytes: bytes))
                    } catch {
                        continuation.finish(
                            throwing: RPCError(
                                code: .internalError, message: "a streamed response is not a valid \(Response.protoName)"))
                    }
                },
                onEnd: { error in
                    if let error { continuation.finish(throwing: error) } else { continuation.finish() }
                }))
        let channel = self.channel
        continuation.onTermination = { termination in
            if case .cancelled = termination {
                channel.writeAndFlush(
                    ClientOutbound.cancel(handle, reason: RPCError(code: .cancelled, message: "the stream was cancelled")),
                    promise: nil)
            }
        }
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { _ in
            continuation.finish(throwing: RPCError(code: .unavailable, message: "the connection is closed; the call was not sent"))
        }
        channel.writeAndFlush(ClientOutbound.start(call), promise: written)
        return stream
    }

    private func encodeRequest<M: ProtoMessage>(_ request: M) throws(RPCError) -> [UInt8] {
        do {
            return try request.serializedBytes()
        } catch {
            throw RPCError(code: .invalidArgument, message: "the request could not be encoded: \(error.message)")
        }
    }
}

extension TimeAmount {
    /// The NIO form of a Swift Duration, rounded down to nanoseconds.
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        self =
            overflow ? .nanoseconds(seconds < 0 ? .min : .max) : .nanoseconds(whole.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue)
    }
}
