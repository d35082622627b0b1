// Handoff — the async Swift client.

public import HandoffProto
public import HandoffRPC
public import HandoffTLS
public import NIOCore
import NIOPosix
import Synchronization

/// A client of a Handoff server: one TLS connection shared by every concurrent
/// caller, opened on first use and again after it closes.
///
/// ```swift
/// let client = try HandoffClient(configuration: .init(
///     host: "127.0.0.1", port: 7443,
///     tls: .client(trustRootsPath: "certs/ca.pem", serverHostname: "127.0.0.1",
///                  certificateChainPath: "certs/agent.pem", privateKeyPath: "certs/agent.key")))
/// let pong = try await client.call(Health.ping, PingRequest())
/// ```
///
/// ## Calls
/// Every RPC has a typed descriptor in `HandoffProto` (`Sessions.updateState`,
/// `Policy.assessAction`, `Decisions.waitForDecision`, …). ``call(_:_:options:)``
/// makes a unary call; ``stream(_:_:options:)`` starts a server stream and
/// returns an `AsyncThrowingStream` of its messages. Calls from many tasks run
/// at once over the one connection, matched by call id.
///
/// ## Deadlines and metadata
/// A call waits at most ``Configuration/defaultTimeout`` (30 s) unless its
/// `CallOptions` say otherwise; the server is told the deadline and stops too.
/// Streams have no deadline unless given one. ``Configuration/metadata`` is sent
/// with every call (a bearer token, for example: `authorization: Bearer …`).
///
/// ## Errors
/// Every failure is an `RPCError` with a gRPC status code and a message naming
/// the problem: the server's own (`NOT_FOUND`, `ABORTED` for a stale version,
/// `PERMISSION_DENIED` naming the rule, …), `UNAVAILABLE` when the server cannot
/// be reached (with the TLS or network reason), `DEADLINE_EXCEEDED`, `CANCELLED`.
///
/// ## Reconnecting
/// When the connection drops, the calls on it fail with `UNAVAILABLE` and the
/// next call opens a new one; a caller that retries needs nothing else. A
/// `WaitForDecision` stream that failed is simply started again: decisions are
/// durable before they are streamed.
public final class HandoffClient: Sendable {
    /// Where the server is and how to reach it.
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var tls: TLSConfiguration
        /// The deadline of a call that sets none.
        public var defaultTimeout: Duration? = .seconds(30)
        /// How long to wait for TCP and TLS to connect.
        public var connectTimeout: TimeAmount = .seconds(10)
        /// A PING every interval keeps the connection alive and finds a dead one.
        public var keepaliveInterval: TimeAmount? = .seconds(30)
        /// Metadata sent with every call (for example an authorization token).
        public var metadata: [MetadataEntry] = []
        public var maximumFrameSize = 4 << 20

        public init(host: String, port: Int, tls: TLSConfiguration) {
            self.host = host
            self.port = port
            self.tls = tls
        }
    }

    private enum State {
        case idle
        case connecting(EventLoopFuture<RPCClientConnection>)
        case connected(RPCClientConnection)
        case closed
    }

    public let configuration: Configuration
    private let tlsContext: TLSContext
    private let group: any EventLoopGroup
    private let state = Mutex<State>(.idle)

    /// - Throws: `TLSError` when the CA, certificate or key files cannot be used.
    public init(configuration: Configuration, eventLoopGroup: (any EventLoopGroup)? = nil) throws(TLSError) {
        self.configuration = configuration
        self.tlsContext = try TLSContext(configuration: configuration.tls)
        self.group = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
    }

    /// Makes a unary call.
    /// - Parameters:
    ///   - method: the RPC, for example `Sessions.updateState`.
    ///   - request: its request message.
    ///   - options: deadline and metadata for this call; nil: the configuration's.
    /// - Returns: the response message.
    /// - Throws: `RPCError`: the server's status, UNAVAILABLE when it cannot be
    ///   reached (with the TLS or network reason), DEADLINE_EXCEEDED, CANCELLED.
    public func call<Request, Response>(
        _ method: UnaryMethod<Request, Response>, _ request: Request, options: CallOptions? = nil
    ) async throws(RPCError) -> Response {
        let connection = try await connection()
        return try await connection.call(method, request, options: effective(options))
    }

    /// Starts a server-streaming call (`Operators.watch`, `Decisions.waitForDecision`).
    /// - Parameters:
    ///   - method: the streaming RPC.
    ///   - request: its request message.
    ///   - options: deadline and metadata; nil: no deadline, the configuration's metadata.
    /// - Returns: the messages as they arrive; iterating ends with the server's
    ///   END, or throws its error status. Leaving the loop cancels the call.
    public func stream<Request, Response>(
        _ method: ServerStreamingMethod<Request, Response>, _ request: Request, options: CallOptions? = nil
    ) async throws(RPCError) -> AsyncThrowingStream<Response, any Error> {
        var resolved = effective(options)
        if options == nil {
            resolved.timeout = nil  // a stream lives as long as its reader wants, unless asked otherwise
        }
        return try await connection().stream(method, request, options: resolved)
    }

    private func effective(_ options: CallOptions?) -> CallOptions {
        var options = options ?? CallOptions(timeout: configuration.defaultTimeout)
        options.metadata = configuration.metadata + options.metadata
        return options
    }

    /// The current connection, opened (or reopened) if needed.
    public func connection() async throws(RPCError) -> RPCClientConnection {
        let pending: EventLoopFuture<RPCClientConnection> = try state.withLock { state throws(RPCError) in
            switch state {
            case .connected(let connection) where connection.isUsable:
                return connection.channel.eventLoop.makeSucceededFuture(connection)
            case .connecting(let future):
                return future
            case .closed:
                throw RPCError(code: .unavailable, message: "the client is closed")
            case .idle, .connected:
                let future = connect()
                state = .connecting(future)
                return future
            }
        }
        do {
            let connection = try await pending.get()
            state.withLock { state in
                if case .connecting = state { state = .connected(connection) }
            }
            return connection
        } catch {
            state.withLock { state in
                if case .connecting = state { state = .idle }
            }
            if let error = error as? RPCError { throw error }
            throw RPCError(
                code: .unavailable,
                message: "cannot connect to \(configuration.host):\(configuration.port): \(error)", cause: error)
        }
    }

    private func connect() -> EventLoopFuture<RPCClientConnection> {
        let tlsContext = self.tlsContext
        let configuration = self.configuration
        let loop = group.next()
        let handshake = loop.makePromise(of: Void.self)
        return ClientBootstrap(group: loop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TLSHandler(context: tlsContext))
                    try channel.pipeline.syncOperations.addHandler(HandshakeWaiter(promise: handshake))
                }
            }
            .connect(host: configuration.host, port: configuration.port)
            .flatMap { channel in
                handshake.futureResult.flatMapThrowing {
                    try RPCClientConnection.install(
                        on: channel, maximumFrameSize: configuration.maximumFrameSize,
                        keepaliveInterval: configuration.keepaliveInterval)
                }.flatMapErrorThrowing { error in
                    channel.close(promise: nil)
                    throw error
                }
            }
            .flatMapErrorThrowing { error in
                handshake.fail(error)
                throw error
            }
    }

    /// Closes the connection; calls in flight fail with UNAVAILABLE and later calls are refused.
    public func close() async {
        let current: RPCClientConnection? = state.withLock { state in
            defer { state = .closed }
            if case .connected(let connection) = state { return connection }
            return nil
        }
        await current?.close()
    }
}

/// Completes a promise when TLS is up, or fails it with the reason it is not.
final class HandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private var promise: EventLoopPromise<Void>?

    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            promise?.succeed()
            promise = nil
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise?.fail(RPCError(code: .unavailable, message: "TLS handshake failed: \(error)", cause: error))
        promise = nil
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise?.fail(RPCError(code: .unavailable, message: "the server closed the connection during the TLS handshake"))
        promise = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension HandshakeWaiter: Sendable {}
