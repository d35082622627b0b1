// Handoff — the client connection on its own: a call on a connection that
// closed before the call was written fails at once instead of waiting for ever.

import HandoffProto
import HandoffRPC
import NIOCore
import NIOEmbedded
import Testing

@Suite("Client connection", .timeLimit(.minutes(1)))
struct RPCClientConnectionTests {
    @Test("a call written after the channel closed fails UNAVAILABLE, and so does a stream")
    func closedBeforeWrite() async throws {
        let channel = EmbeddedChannel()
        let connection = try RPCClientConnection.install(on: channel, keepaliveInterval: nil)
        channel.close(promise: nil)
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        let error: RPCError?
        do {
            _ = try await connection.call(Health.ping, PingRequest())
            error = nil
        } catch let caught {
            error = caught
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("not sent") == true, "\(String(describing: error))")

        var streamError: (any Error)?
        do {
            for try await _ in connection.stream(Operators.watch, WatchRequest()) {}
        } catch {
            streamError = error
        }
        #expect((streamError as? RPCError)?.code == .unavailable)
    }
}
