// Handoff — the frame decoder, fed byte by byte and in batches.

import HandoffProto
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@testable import HandoffRPC

@Suite("Frame decoder")
struct FrameDecoderTests {
    private func frame(_ envelope: Envelope) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        try buffer.writeFrame(envelope)
        return buffer
    }

    @Test("frames decode whether fed byte by byte or in batches")
    func verifier() throws {
        let envelopes = [
            Envelope(kind: .request, callID: 1, method: "handoff.v1.Health/Ping", payload: [1, 2, 3]),
            Envelope(kind: .ping),
            Envelope(kind: .end, callID: 3, payload: [UInt8](repeating: 7, count: 10_000), statusCode: 0),
        ]
        let pairs = try envelopes.map { (try frame($0), [$0]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: pairs,
            decoderFactory: { FrameDecoder(maximumFrameSize: 1 << 20) })
    }

    @Test("an oversized length is refused before the body arrives")
    func oversize() throws {
        var decoder = FrameDecoder(maximumFrameSize: 1024)
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(1025))  // no body at all: the prefix alone is enough to refuse
        #expect(throws: FrameError.self) { try decoder.decode(buffer: &buffer) }
        var exact = ByteBuffer()
        exact.writeInteger(UInt32(1024))
        #expect(try decoder.decode(buffer: &exact) == nil, "at the limit: waits for the body")
    }

    @Test("an undecodable body is an error naming the problem")
    func undecodable() throws {
        var decoder = FrameDecoder(maximumFrameSize: 1024)
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(3))
        buffer.writeBytes([0x32, 0x05, 0x01])  // payload length 5, 1 byte present
        let error = #expect(throws: FrameError.self) { try decoder.decode(buffer: &buffer) }
        #expect(error?.message.contains("undecodable frame") == true)
        #expect(error?.code == .invalidArgument)
    }
}
