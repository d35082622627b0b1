// Handoff — the frame decoder: a 4-byte big-endian length, then that many
// bytes of one Envelope. The length is checked before the body is buffered.

public import HandoffProto
public import NIOCore

/// A framing failure; it ends the connection with a GOAWAY naming the reason.
public struct FrameError: Error, Sendable, CustomStringConvertible {
    /// The status the GOAWAY carries.
    public var code: RPCError.Code
    public var message: String
    public var description: String { message }

    static func tooLarge(_ length: UInt32, limit: Int) -> FrameError {
        FrameError(code: .resourceExhausted, message: "frame of \(length) bytes exceeds the limit of \(limit) bytes")
    }
}

/// Decodes length-prefixed Envelope frames.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Envelope

    /// The largest envelope accepted, in bytes (the 4-byte prefix excluded).
    public let maximumFrameSize: Int

    public init(maximumFrameSize: Int) {
        self.maximumFrameSize = maximumFrameSize
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Envelope? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length <= maximumFrameSize else { throw FrameError.tooLarge(length, limit: maximumFrameSize) }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return try buffer.readWithUnsafeReadableBytes { raw -> (Int, Envelope) in
            let body = UnsafeRawBufferPointer(rebasing: raw[..<Int(length)])
            do {
                return (Int(length), try Envelope(serializedBytes: body))
            } catch {
                throw FrameError(code: .invalidArgument, message: "undecodable frame: \((error as? ProtoError)?.message ?? "\(error)")")
            }
        }
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Envelope? {
        try decode(buffer: &buffer)
    }
}

extension ByteBuffer {
    /// Appends one frame: the envelope's length, then its encoding.
    public mutating func writeFrame(_ envelope: Envelope) throws(ProtoError) {
        let bytes = try envelope.serializedBytes()
        writeInteger(UInt32(bytes.count))
        writeBytes(bytes)
    }
}

extension Envelope {
    /// The END frame of a call with `status`, carrying `payload` when it succeeded.
    static func end(callID: UInt64, status: RPCError.Code, message: String, payload: [UInt8] = []) -> Envelope {
        Envelope(kind: .end, callID: callID, payload: payload, statusCode: status.rawValue, statusMessage: message)
    }
}
