// Handoff — test utility: a TLS client and server on two EmbeddedChannels
// sharing one EmbeddedEventLoop, with bytes shuttled between them until both
// are quiet (after swift-nio-ssl's BackToBackEmbeddedChannel).
import HandoffTLS
import NIOCore
import NIOEmbedded

struct ShuttleDidNotSettle: Error {}

final class BackToBackEmbeddedChannel {
    let loop = EmbeddedEventLoop()
    let client: EmbeddedChannel
    let server: EmbeddedChannel
    let clientLog = EventLog()
    let serverLog = EventLog()
    /// Every ciphertext buffer each side sent, in order (for inspecting records).
    private(set) var clientSent: [ByteBuffer] = []
    private(set) var serverSent: [ByteBuffer] = []

    init(clientContext: TLSContext, serverContext: TLSContext, serverEchoes: Bool = false) throws {
        self.client = EmbeddedChannel(loop: self.loop)
        self.server = EmbeddedChannel(loop: self.loop)
        try self.client.pipeline.syncOperations.addHandlers([
            TLSHandler(context: clientContext), RecordingHandler(log: self.clientLog),
        ])
        try self.server.pipeline.syncOperations.addHandlers([
            TLSHandler(context: serverContext), RecordingHandler(log: self.serverLog, echo: serverEchoes),
        ])
    }

    /// Makes both channels active (the client sends its ClientHello).
    func activate() throws {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 4433)
        _ = self.server.connect(to: address)
        _ = self.client.connect(to: address)
        self.loop.run()
    }

    /// Moves ciphertext between the two until neither has anything to send.
    ///
    /// - Parameter chunkSize: deliver in slices of this many bytes (1: byte
    ///   at a time); `nil` delivers each buffer whole.
    func interact(chunkSize: Int? = nil, maxRounds: Int = 100_000) throws {
        var rounds = 0
        while true {
            self.loop.run()
            var moved = false
            if let bytes = try self.client.readOutbound(as: ByteBuffer.self) {
                self.clientSent.append(bytes)
                try self.deliver(bytes, to: self.server, chunkSize: chunkSize)
                moved = true
            }
            if let bytes = try self.server.readOutbound(as: ByteBuffer.self) {
                self.serverSent.append(bytes)
                try self.deliver(bytes, to: self.client, chunkSize: chunkSize)
                moved = true
            }
            if !moved { return }
            rounds += 1
            if rounds > maxRounds { throw ShuttleDidNotSettle() }
        }
    }

    private func deliver(_ bytes: ByteBuffer, to channel: EmbeddedChannel, chunkSize: Int?) throws {
        guard channel.isActive else { return }  // a closed peer drops what arrives
        guard let chunkSize else {
            try channel.writeInbound(bytes)
            return
        }
        var bytes = bytes
        while let slice = bytes.readSlice(length: min(chunkSize, bytes.readableBytes)), slice.readableBytes > 0 {
            guard channel.isActive else { return }
            try channel.writeInbound(slice)
        }
    }

    /// Writes and flushes `text` on `channel`, returning the write's future.
    @discardableResult
    func send(_ text: String, on channel: EmbeddedChannel) -> EventLoopFuture<Void> {
        channel.writeAndFlush(ByteBuffer(string: text))
    }

    func finish() {
        _ = try? self.client.finish(acceptAlreadyClosed: true)
        _ = try? self.server.finish(acceptAlreadyClosed: true)
    }
}

@available(*, unavailable)
extension BackToBackEmbeddedChannel: Sendable {}
