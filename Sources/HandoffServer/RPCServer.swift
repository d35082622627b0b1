// Handoff — the listening server: TLS, then calls, on every accepted
// connection; graceful shutdown as a Service.

import Dispatch
public import HandoffRPC
public import HandoffTLS
public import Logging
public import NIOCore
import NIOPosix
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    /// glibc's `malloc_trim` (in <malloc.h>, which the Glibc module does not
    /// export): returns free heap pages to the kernel. Takes and returns plain integers.
    @_silgen_name("malloc_trim")
    private func glibcMallocTrim(_ pad: Int) -> Int32
#endif

/// Serves a method registry over TLS on one address until graceful shutdown:
/// then it stops accepting, sends GOAWAY on every connection, lets the calls in
/// flight finish within the grace period, and closes what is left.
public final class RPCServer: Service {
    /// Where and how to listen.
    public struct Configuration: Sendable {
        public var host: String
        /// 0 picks a free port; `localAddress` tells which.
        public var port: Int
        /// nil: plaintext TCP, for development only (handoffd allows it only with --insecure-dev).
        public var tls: TLSConfiguration?
        public var connection = RPCServerConnectionHandler.Configuration()
        /// How long calls in flight may run on after shutdown begins.
        public var shutdownGracePeriod: Duration = .seconds(10)
        /// Event loop threads; the default is one per core.
        public var threads = System.coreCount
        /// Open connections at most: one accepted past it is closed at once.
        public var maximumConnections = 10_000
        /// TLS handshakes in progress at most: when full, the connection that has
        /// been handshaking longest is closed to make room (idle or slow handshakes
        /// hold memory until their deadline, and must not shut real clients out).
        public var maximumHandshakes = 512

        public init(host: String, port: Int, tls: TLSConfiguration?) {
            self.host = host
            self.port = port
            self.tls = tls
        }
    }

    private let configuration: Configuration
    private let registry: MethodRegistry
    private let logger: Logger
    private let tlsContext: TLSContext?
    private let group: MultiThreadedEventLoopGroup
    private let connections = ConnectionSet()
    private let bound = Mutex<(any Channel)?>(nil)
    private let ready = Mutex<[CheckedContinuation<SocketAddress, any Error>]>([])

    /// - Throws: `TLSError` when the certificate, key or CA files cannot be used.
    public init(configuration: Configuration, registry: MethodRegistry, logger: Logger) throws(TLSError) {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
        if let tls = configuration.tls {
            self.tlsContext = try TLSContext(configuration: tls)
        } else {
            self.tlsContext = nil
        }
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
    }

    /// Connections open now, and among them those still in their TLS handshake (for metrics).
    public var openConnections: (open: Int, handshaking: Int) { (connections.count, connections.handshakes) }

    /// The address the server listens on, once it does.
    public var localAddress: SocketAddress? {
        bound.withLock { $0?.localAddress }
    }

    /// Waits until the server listens, and returns its address.
    public func waitUntilListening() async throws -> SocketAddress {
        if let address = localAddress { return address }
        return try await withCheckedThrowingContinuation { continuation in
            let address: SocketAddress? = ready.withLock { waiters in
                if let address = self.localAddress { return address }
                waiters.append(continuation)
                return nil
            }
            if let address { continuation.resume(returning: address) }
        }
    }

    public func run() async throws {
        let channel: any Channel
        do {
            channel = try await bootstrap().bind(host: configuration.host, port: configuration.port).get()
        } catch {
            let failure = ServerStartError(message: "cannot listen on \(configuration.host):\(configuration.port): \(error)")
            for waiter in ready.withLock({ w in
                defer { w.removeAll() }
                return w
            }) { waiter.resume(throwing: failure) }
            try? await group.shutdownGracefully()
            throw failure
        }
        bound.withLock { $0 = channel }
        let address = channel.localAddress!
        logger.info("listening on \(Self.describe(address))")
        for waiter in ready.withLock({ w in
            defer { w.removeAll() }
            return w
        }) { waiter.resume(returning: address) }

        // Serve until graceful shutdown (SIGTERM/SIGINT through the ServiceGroup) or cancellation.
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    channel.closeFuture.whenComplete { _ in continuation.resume() }
                }
            } onGracefulShutdown: {
                channel.close(promise: nil)
            }
        } onCancel: {
            channel.close(promise: nil)
        }
        await drain()
        try? await group.shutdownGracefully()
        logger.info("server stopped")
    }

    /// GOAWAY on every connection, then wait for them to close, up to the grace period.
    private func drain() async {
        let open = connections.all
        if Task.isCancelled {
            // Cancelled rather than asked to shut down: no grace period.
            for connection in open { try? await connection.close() }
            return
        }
        logger.info("shutting down", metadata: ["connections": "\(open.count)"])
        for connection in open {
            connection.pipeline.fireUserInboundEventTriggered(RPCServerConnectionHandler.DrainEvent())
        }
        // Whichever comes first: every connection closed, or the grace period
        // over. (Not a task group: awaiting a close future cannot be cancelled,
        // so a group would wait for a stream that never ends, such as a Watch.)
        let loop = group.next()
        let (seconds, attoseconds) = configuration.shutdownGracePeriod.components
        let grace = TimeAmount.nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        let closedInTime = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let answered = Mutex(false)
            let answer: @Sendable (Bool) -> Void = { value in
                if answered.withLock({ done in
                    defer { done = true }
                    return !done
                }) {
                    continuation.resume(returning: value)
                }
            }
            let timer = loop.scheduleTask(in: grace) { answer(false) }
            EventLoopFuture.andAllComplete(open.map(\.closeFuture), on: loop).whenComplete { _ in
                timer.cancel()
                answer(true)
            }
        }
        if !closedInTime {
            let left = connections.all
            logger.warning("grace period over; closing connections with calls still in flight", metadata: ["connections": "\(left.count)"])
            for connection in left { try? await connection.close() }
        }
    }

    private func bootstrap() -> ServerBootstrap {
        let tlsContext = self.tlsContext
        let registry = self.registry
        let configuration = self.configuration
        let logger = self.logger
        let connections = self.connections
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                // Past max_connections: closed as accepted, before TLS or calls spend memory on it.
                guard connections.count < configuration.maximumConnections else {
                    connections.refused()
                    return channel.close()
                }
                // Handshake slots full: the oldest handshake goes, not the newcomer, so idle
                // sockets held open cannot shut real clients out (theirs complete in milliseconds).
                if tlsContext != nil, connections.handshakes >= configuration.maximumHandshakes {
                    connections.oldestHandshake()?.close(promise: nil)
                }
                connections.insert(channel)
                channel.closeFuture.whenComplete { _ in connections.remove(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tlsContext {
                        try pipeline.addHandler(TLSHandler(context: tlsContext))
                        try pipeline.addHandler(TLSIdentityHandler(connections: connections))
                    } else {
                        try pipeline.addHandler(PlaintextIdentityHandler())
                    }
                    try pipeline.addHandler(
                        RPCServerConnectionHandler(registry: registry, configuration: configuration.connection, logger: logger))
                }
            }
    }

    /// `127.0.0.1:7443`, or `[::1]:7443` for IPv6.
    static func describe(_ address: SocketAddress) -> String { HostAndPort(address).description }
}

/// The server could not start.
public struct ServerStartError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The open connections, so shutdown can reach them, and the handshakes in
/// progress among them, so a flood of slow handshakes is bounded.
final class ConnectionSet: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        /// Channels whose TLS handshake has not completed.
        var handshaking: Set<ObjectIdentifier> = []
        var refused = 0
        var closedSinceTrim = 0
        var trimming = false
        var lastTrim: ContinuousClock.Instant?
        /// When each channel still handshaking was accepted: the oldest goes first when the slots are full.
        var handshakeOrder: [ObjectIdentifier: ContinuousClock.Instant] = [:]
    }

    private let state = Mutex(State())

    func insert(_ channel: any Channel) { state.withLock { $0.channels[ObjectIdentifier(channel)] = channel } }

    func remove(_ channel: any Channel) {
        let trim = state.withLock { state -> Bool in
            state.channels.removeValue(forKey: ObjectIdentifier(channel))
            state.handshaking.remove(ObjectIdentifier(channel))
            state.handshakeOrder[ObjectIdentifier(channel)] = nil
            state.closedSinceTrim += 1
            // After a wave of connections has gone, give the allocator's free
            // pages back (glibc keeps them otherwise: a flood's memory stayed).
            // At most one at a time, and once a minute: it walks every arena under its lock.
            let now = ContinuousClock.now
            guard state.closedSinceTrim >= 1_000, state.channels.count < 100, !state.trimming,
                state.lastTrim.map({ now - $0 >= .seconds(60) }) ?? true
            else { return false }
            state.closedSinceTrim = 0
            state.trimming = true
            state.lastTrim = now
            return true
        }
        #if canImport(Glibc)
            if trim {
                DispatchQueue.global(qos: .utility).async { [weak self] in
                    _ = glibcMallocTrim(0)
                    self?.state.withLock { $0.trimming = false }
                }
            }
        #endif
    }

    var all: [any Channel] { state.withLock { Array($0.channels.values) } }
    var count: Int { state.withLock { $0.channels.count } }
    var handshakes: Int { state.withLock { $0.handshaking.count } }
    /// Connections closed as accepted because a limit was reached.
    var refusedCount: Int { state.withLock { $0.refused } }

    func refused() {
        state.withLock { $0.refused += 1 }
        ServerMetrics.rateLimited("connections")
    }

    /// Whether `channel` is still handshaking.
    func isHandshaking(_ channel: any Channel) -> Bool {
        state.withLock { $0.handshaking.contains(ObjectIdentifier(channel)) }
    }

    func handshaking(_ channel: any Channel) {
        state.withLock {
            $0.handshaking.insert(ObjectIdentifier(channel))
            $0.handshakeOrder[ObjectIdentifier(channel)] = .now
        }
    }

    func handshakeEnded(_ channel: any Channel) {
        state.withLock {
            $0.handshaking.remove(ObjectIdentifier(channel))
            $0.handshakeOrder[ObjectIdentifier(channel)] = nil
        }
    }

    /// The channel that has been handshaking longest, which makes room for a new one.
    func oldestHandshake() -> (any Channel)? {
        state.withLock { state in
            guard let oldest = state.handshakeOrder.min(by: { $0.value < $1.value })?.key else { return nil }
            state.handshaking.remove(oldest)
            state.handshakeOrder[oldest] = nil
            state.refused += 1
            ServerMetrics.rateLimited("handshakes")
            ServerMetrics.handshakeFailed("evicted")
            return state.channels[oldest]
        }
    }
}

/// A plaintext connection (--insecure-dev): no certificate, so callers are
/// known by bearer token only; tells the call handler the peer's address.
final class PlaintextIdentityHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { announce(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        announce(context)
        context.fireChannelActive()
    }

    private func announce(_ context: ChannelHandlerContext) {
        context.fireUserInboundEventTriggered(
            RPCServerConnectionHandler.ConnectionInfoEvent(
                ConnectionInfo(
                    remoteAddress: context.channel.remoteAddress.map(RPCServer.describe), tlsVersion: "", peer: nil)))
    }
}

/// Turns the TLS handshake's outcome into the connection's identity for the
/// call handler above it.
final class TLSIdentityHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let connections: ConnectionSet

    init(connections: ConnectionSet) {
        self.connections = connections
    }

    func handlerAdded(context: ChannelHandlerContext) {
        connections.handshaking(context.channel)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted(let session) = event {
            connections.handshakeEnded(context.channel)
            let peer = session.peer.map {
                PeerIdentity(commonName: $0.subjectCommonName, uris: $0.uris, fingerprint: $0.sha256Fingerprint)
            }
            context.fireUserInboundEventTriggered(
                RPCServerConnectionHandler.ConnectionInfoEvent(
                    ConnectionInfo(
                        remoteAddress: context.channel.remoteAddress.map(RPCServer.describe),
                        tlsVersion: session.protocolVersion, peer: peer)))
            context.fireUserInboundEventTriggered(event)
            // Its work is done: leave the per-message path one hop shorter.
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// A handshake that fails is counted by its reason (the metric
    /// handoff_tls_handshake_failures_total); the error goes on up.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if connections.isHandshaking(context.channel) {
            connections.handshakeEnded(context.channel)
            ServerMetrics.handshakeFailed(Self.reason(error))
        }
        context.fireErrorCaught(error)
    }

    /// A reason with few values: never the library's free text.
    static func reason(_ error: any Error) -> String {
        guard let error = error as? TLSError else { return "other" }
        switch error.code {
        case .handshakeTimeout: return "timeout"
        case .unexpectedEOF: return "eof"
        case .handshakeFailed:
            let text = error.message.lowercased()
            if text.contains("certificate") || text.contains("verify") { return "certificate" }
            if text.contains("version") || text.contains("protocol") || text.contains("cipher") { return "version" }
            return "handshake"
        default: return "other"
        }
    }
}

@available(*, unavailable)
extension TLSIdentityHandler: Sendable {}
