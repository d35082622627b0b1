// Handoff — how a server-streaming handler sends its responses.

public import HandoffProto
import NIOCore

/// Sends the responses of one server-streaming call. `write` waits while the
/// connection cannot take more (the client reads slowly), so a stream never
/// buffers without bound, and throws once the call is cancelled or closed.
public struct ResponseWriter<Message: ProtoMessage>: Sendable {
    let raw: RawResponseWriter

    /// Sends one response message.
    public func write(_ message: Message) async throws {
        try await raw.write(encodeResponse(message))
    }
}

/// The untyped writer the connection handler gives a streaming call.
struct RawResponseWriter: Sendable {
    let callID: UInt64
    let handler: NIOLoopBound<RPCServerConnectionHandler>

    func write(_ bytes: [UInt8]) async throws {
        let loop = handler.eventLoop
        let future: EventLoopFuture<Void>
        if loop.inEventLoop {
            future = handler.value.writeStreamMessage(callID: callID, payload: bytes, on: loop)
        } else {
            let handler = self.handler
            let callID = self.callID
            future = loop.flatSubmit { handler.value.writeStreamMessage(callID: callID, payload: bytes, on: loop) }
        }
        try await future.get()
    }
}
