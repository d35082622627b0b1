// Handoff — the operators' HTTP listener: /metrics for Prometheus, /healthz
// and /readyz for load balancers. Its own address (metrics.listen), plain
// HTTP/1.1 through SwiftNIO's HTTP handlers, GET only, no request body.

import HandoffRPC
public import Logging
public import NIOCore
import NIOHTTP1
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// What the listener answers; each closure is asked on every request.
public struct OperationsEndpoints: Sendable {
    /// The Prometheus text exposition of every metric (after refreshing the
    /// gauges read from the store).
    public var metrics: @Sendable () async -> [UInt8]
    /// nil when ready; otherwise why not, for the 503's body.
    public var notReady: @Sendable () async -> String?

    public init(metrics: @escaping @Sendable () async -> [UInt8], notReady: @escaping @Sendable () async -> String?) {
        self.metrics = metrics
        self.notReady = notReady
    }
}

/// Serves `OperationsEndpoints` over HTTP until graceful shutdown. In
/// handoffd's service group it comes first, so it stops last: /readyz keeps
/// answering 503 while the RPC server drains.
public final class OperationsServer: Service {
    private let host: String
    private let port: Int
    private let endpoints: OperationsEndpoints
    private let logger: Logger
    private let bound = Mutex<(any Channel)?>(nil)

    public init(host: String, port: Int, endpoints: OperationsEndpoints, logger: Logger) {
        self.host = host
        self.port = port
        self.endpoints = endpoints
        self.logger = logger
    }

    /// The address it listens on, once it does.
    public var localAddress: SocketAddress? { bound.withLock { $0?.localAddress } }

    /// Connections open at once at most: a scraper and a few probes need a handful.
    public static let maximumConnections = 64
    /// A connection that sends no complete request for this long is closed.
    public static let idleTimeout = TimeAmount.seconds(10)

    public func run() async throws {
        let endpoints = self.endpoints
        let open = Atomic<Int>(0)
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 64)
                // A client that sends its request and shuts its side (nc -N) still gets the answer.
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { channel in
                    // Past the cap, closed as accepted: the RPC port's descriptors stay free.
                    guard open.wrappingAdd(1, ordering: .relaxed).newValue <= Self.maximumConnections else {
                        open.wrappingSubtract(1, ordering: .relaxed)
                        return channel.close()
                    }
                    channel.closeFuture.whenComplete { _ in open.wrappingSubtract(1, ordering: .relaxed) }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: Self.idleTimeout))
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(OperationsHTTPHandler(endpoints: endpoints))
                    }
                }
                .bind(host: host, port: port).get()
        } catch {
            throw OperationsServerError(
                message:
                    "cannot listen for metrics and health checks on \(host):\(port): \(error); choose another address with --metrics-listen HOST:PORT or metrics.listen"
            )
        }
        bound.withLock { $0 = channel }
        if let address = channel.localAddress {
            logger.info("metrics and health checks on http://\(HostAndPort(address))/metrics, /healthz, /readyz")
        }
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
    }

}

/// The operations listener could not start.
public struct OperationsServerError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// One request at a time per connection (HTTP/1.1 without pipelining of
/// answers: the next request is read after the answer is written).
final class OperationsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let endpoints: OperationsEndpoints
    private var request: HTTPRequestHead?
    /// An answer is being made (its endpoint is asked asynchronously).
    private var answering = false
    private var inputClosed = false

    init(endpoints: OperationsEndpoints) {
        self.endpoints = endpoints
    }

    /// Idle (no request for `OperationsServer.idleTimeout`), or half-closed
    /// with nothing left to answer: close.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            context.close(promise: nil)
            return
        }
        if let input = event as? ChannelEvent, input == .inputClosed {
            inputClosed = true
            if request == nil, !answering {
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// A malformed request (the error handler answered 400): close.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let head = request else { return }
            request = nil
            answer(head, context: context)
        }
    }

    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let keepAlive = head.isKeepAlive
        let version = head.version
        let endpoints = self.endpoints
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        guard head.method == .GET || head.method == .HEAD else {
            respond(
                .methodNotAllowed, "only GET is served here\n", type: "text/plain; charset=utf-8", keepAlive: keepAlive,
                version: version, head: head.method == .HEAD, context: context, extra: [("Allow", "GET, HEAD")])
            return
        }
        let isHead = head.method == .HEAD
        answering = true
        Task {
            let status: HTTPResponseStatus
            let body: [UInt8]
            let type = path == "/metrics" ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8"
            switch path {
            case "/metrics":
                status = .ok
                body = await endpoints.metrics()
            case "/healthz":
                status = .ok
                body = Array("ok\n".utf8)
            case "/readyz":
                if let reason = await endpoints.notReady() {
                    status = .serviceUnavailable
                    body = Array("not ready: \(reason)\n".utf8)
                } else {
                    status = .ok
                    body = Array("ready\n".utf8)
                }
            default:
                status = .notFound
                body = Array("not found; served here: /metrics, /healthz, /readyz\n".utf8)
            }
            loop.execute {
                let (handler, context) = bound.value
                handler.answering = false
                // Half-closed by the client: answer, then close.
                handler.respond(
                    status, body, type: type, keepAlive: keepAlive && !handler.inputClosed, version: version, head: isHead, context: context)
            }
        }
    }

    private func respond(
        _ status: HTTPResponseStatus, _ text: String, type: String, keepAlive: Bool, version: HTTPVersion, head: Bool,
        context: ChannelHandlerContext, extra: [(String, String)] = []
    ) {
        respond(status, Array(text.utf8), type: type, keepAlive: keepAlive, version: version, head: head, context: context, extra: extra)
    }

    private func respond(
        _ status: HTTPResponseStatus, _ body: [UInt8], type: String, keepAlive: Bool, version: HTTPVersion, head: Bool,
        context: ChannelHandlerContext, extra: [(String, String)] = []
    ) {
        var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", "\(body.count)"), ("Cache-Control", "no-store")])
        for (name, value) in extra { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        if !head {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension OperationsHTTPHandler: Sendable {}
