// Handoff — a plaintext loopback server and clients for the RPC core's tests
// (TLS is tested in HandoffTLSTests and end to end in HandoffServerTests).

import HandoffProto
import HandoffRPC
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A server on 127.0.0.1 with a given method registry, and a way to connect.
final class Loopback: Sendable {
    let group: MultiThreadedEventLoopGroup
    let server: any Channel
    /// Every connection the server accepted.
    let children = ChannelList()

    final class ChannelList: Sendable {
        private let channels = Mutex<[any Channel]>([])
        func append(_ channel: any Channel) { channels.withLock { $0.append(channel) } }
        var all: [any Channel] { channels.withLock { $0 } }
    }

    init(
        registry: MethodRegistry,
        configuration: RPCServerConnectionHandler.Configuration = .init(),
        idleTimeout: TimeAmount? = nil,
        threads: Int = 1
    ) async throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let logger = Logger(label: "test")
        let children = self.children
        var withIdle = configuration
        withIdle.idleTimeout = idleTimeout
        let connectionConfiguration = withIdle
        server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                children.append(channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        RPCServerConnectionHandler(registry: registry, configuration: connectionConfiguration, logger: logger))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var port: Int { server.localAddress!.port! }

    /// Begins a graceful close of every accepted connection; returns how many.
    func drainAll() -> Int {
        let all = children.all
        for child in all {
            child.pipeline.fireUserInboundEventTriggered(RPCServerConnectionHandler.DrainEvent())
        }
        return all.count
    }

    func connect(keepalive: TimeAmount? = nil, keepaliveTimeout: TimeAmount? = nil) async throws -> RPCClientConnection {
        let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
        return try await channel.eventLoop.submit {
            try RPCClientConnection.install(on: channel, keepaliveInterval: keepalive, keepaliveTimeout: keepaliveTimeout)
        }.get()
    }

    /// A connection that speaks frames directly, to misbehave on purpose.
    func connectRaw(autoRead: Bool = true) async throws -> RawConnection {
        try await RawConnection(group: group, port: port, autoRead: autoRead)
    }

    func shutdown() async throws {
        try? await server.close()
        try await group.shutdownGracefully()
    }
}

/// Writes raw bytes and collects the frames the server sends back.
final class RawConnection: Sendable {
    let channel: any Channel
    let frames: AsyncStream<Envelope>

    init(group: MultiThreadedEventLoopGroup, port: Int, autoRead: Bool) async throws {
        let (stream, continuation) = AsyncStream<Envelope>.makeStream()
        frames = stream
        channel = try await ClientBootstrap(group: group)
            .channelOption(.autoRead, value: autoRead)
            .channelOption(.socketOption(.so_rcvbuf), value: 16_384)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(FrameDecoder(maximumFrameSize: 64 << 20)))
                    try channel.pipeline.syncOperations.addHandler(Collector(continuation: continuation))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    func send(_ envelope: Envelope) async throws {
        var buffer = channel.allocator.buffer(capacity: 64)
        try buffer.writeFrame(envelope)
        try await channel.writeAndFlush(buffer)
    }

    func sendBytes(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes))
    }

    /// The next frame, or nil when the connection closed first.
    func next() async -> Envelope? {
        var iterator = frames.makeAsyncIterator()
        return await iterator.next()
    }

    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = Envelope
        let continuation: AsyncStream<Envelope>.Continuation
        init(continuation: AsyncStream<Envelope>.Continuation) { self.continuation = continuation }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            continuation.yield(unwrapInboundIn(data))
        }
        func channelInactive(context: ChannelHandlerContext) {
            continuation.finish()
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}

/// A flag a handler sets and a test waits for, with a time limit.
/// Holds whoever calls `pass()` until `open()`, cancelled or not: a
/// handler that does not stop when its call ends.
final class Gate: Sendable {
    private let waiting = Mutex<[CheckedContinuation<Void, Never>]?>([])
    private let arrivals = Mutex(0)

    /// How many called `pass()` so far.
    var entered: Int { arrivals.withLock { $0 } }

    func pass() async {
        arrivals.withLock { $0 += 1 }
        await withCheckedContinuation { continuation in
            let open = waiting.withLock { waiting -> Bool in
                guard waiting != nil else { return true }
                waiting!.append(continuation)
                return false
            }
            if open { continuation.resume() }
        }
    }

    func open() {
        let held = waiting.withLock { waiting -> [CheckedContinuation<Void, Never>] in
            defer { waiting = nil }
            return waiting ?? []
        }
        for continuation in held { continuation.resume() }
    }
}

final class Signal: Sendable {
    private let state = Mutex<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func fire() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.fired = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var fired: Bool { state.withLock { $0.fired } }

    /// True when fired within `timeout`.
    func wait(timeout: Duration = .seconds(30)) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let already = self.state.withLock { state -> Bool in
                        if state.fired { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if already { continuation.resume() }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next()!
            if !first { self.fire() }  // release the waiter task
            group.cancelAll()
            return first && self.fired
        }
    }
}
