// Handoff — hostile input to the decoders: every outcome is a value or a
// ProtoError naming the problem, never a crash or an unbounded allocation.

import Foundation
import HandoffProto
import Testing

/// A small deterministic generator (SplitMix64), so a failing input can be
/// reproduced from the seed the test prints.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Appends `value` as a protobuf varint.
func varint(_ value: UInt64) -> [UInt8] {
    var v = value
    var out: [UInt8] = []
    while v >= 0x80 {
        out.append(UInt8(v & 0x7F) | 0x80)
        v >>= 7
    }
    out.append(UInt8(v))
    return out
}

@Suite("Hostile input")
struct HostileInputTests {
    private func decodes<M: ProtoMessage>(_: M.Type, _ bytes: [UInt8]) -> Result<M, ProtoError> {
        Result { () throws(ProtoError) -> M in try M(serializedBytes: bytes) }
    }

    @Test("every truncation of a valid message decodes or fails cleanly; a cut inside a field fails")
    func truncations() throws {
        let full = try VectorFixtures.envelopeRequest.serializedBytes()
        var failures = 0
        for n in 0..<full.count {
            if case .failure(let error) = decodes(Envelope.self, Array(full[..<n])) {
                #expect(error.code == .malformed)
                #expect(error.message.contains("handoff.v1.Envelope"))
                failures += 1
            }
        }
        #expect(failures > full.count / 2, "most cuts fall inside the 256-byte payload and must fail")
        // Cut one byte short of the end: inside the last length-delimited field.
        #expect(throws: ProtoError.self) { try Envelope(serializedBytes: Array(full.dropLast())) }
        let context = try VectorFixtures.context.serializedBytes()
        for n in 0..<context.count { _ = decodes(GetContextResponse.self, Array(context[..<n])) }
    }

    @Test("random bytes never crash any decoder")
    func randomBytes() {
        var rng = SplitMix64(state: 0x4841_4E44_4F46_46)
        let types = ProtoRegistry.messageTypes
        var decoded = 0
        for i in 0..<20_000 {
            let count = Int(rng.next() % 300)
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if case .success = decodes(Envelope.self, bytes) { decoded += 1 }
            let type = types[i % types.count]
            _ = anyDecodes(type, bytes)
        }
        // Mostly garbage: a few short inputs happen to be valid, most are not.
        #expect(decoded < 20_000)
    }

    private func anyDecodes<M: ProtoMessage>(_: M.Type, _ bytes: [UInt8]) -> Bool {
        (try? M(serializedBytes: bytes)) != nil
    }

    @Test("a known field with the wrong wire type is an error")
    func wrongWireType() {
        // call_id (field 2) is a varint; send it length-delimited.
        let bytes: [UInt8] = [0x12, 0x01, 0x41]
        let error = #expect(throws: ProtoError.self) { try Envelope(serializedBytes: bytes) }
        #expect(error?.code == .malformed)
        // method (field 3) is a string; send it as a varint.
        #expect(throws: ProtoError.self) { try Envelope(serializedBytes: [0x18, 0x05]) }
    }

    @Test(
        "lengths past the end, overflowing lengths and over-long varints are errors",
        arguments: [
            [0x32] + varint(UInt64.max),  // payload length 2^64-1
            [0x32] + varint(1 << 40),  // payload length 1 TiB, with no body
            [0x32] + varint(UInt64(Int32.max) + 1) + [1, 2, 3],
            [0x32, 0x05, 1, 2],  // 5 announced, 2 present
            [0x10] + [UInt8](repeating: 0xFF, count: 10) + [0x01],  // an 11-byte varint
            [0x10] + [UInt8](repeating: 0x80, count: 12),  // a varint that never ends
            [0x2A] + varint(1 << 33) + [0x0A, 0x00],  // metadata entry with an impossible length
        ] as [[UInt8]])
    func badLengths(_ bytes: [UInt8]) {
        let error = #expect(throws: ProtoError.self) { try Envelope(serializedBytes: bytes) }
        #expect(error?.code == .malformed)
    }

    @Test("invalid UTF-8 in a string field is refused, naming the field")
    func invalidUTF8() {
        // method (field 3) = 0xC3 0x28 (an invalid two-byte sequence)
        let error = #expect(throws: ProtoError.self) { try Envelope(serializedBytes: [0x1A, 0x02, 0xC3, 0x28]) }
        #expect(error?.code == .invalidUTF8)
        #expect(error?.message.contains("\"method\"") == true)
    }

    @Test("10,000-deep nesting inside an unknown field decodes without recursion")
    func deepUnknownNesting() throws {
        // The schema has no recursive message (test_schema.py proves it), so the
        // only way to nest deeply is inside fields the decoder does not know.
        var inner: [UInt8] = []
        for _ in 0..<10_000 { inner = [0xCA, 0x3E] + varint(UInt64(inner.count)) + inner }  // field 999, LEN
        let bytes = [0x08, 0x01] + inner
        let envelope = try Envelope(serializedBytes: bytes)
        #expect(envelope.kind == .request)
    }

    @Test("10,000 nested group starts are refused cleanly")
    func deepGroups() {
        // field 999, wire type 3 (start group), 10,000 times
        let bytes = [UInt8]((0..<10_000).flatMap { _ in [0xCB, 0x3E] as [UInt8] })
        #expect(throws: ProtoError.self) { try Envelope(serializedBytes: bytes) }
    }

    @Test("a huge repeated field is bounded by the input, not by what it claims")
    func hugeRepeated() throws {
        // 100,000 empty metadata entries: 200 KB of input, decodes to 100,000 entries.
        let bytes = [UInt8]((0..<100_000).flatMap { _ in [0x2A, 0x00] as [UInt8] })
        let envelope = try Envelope(serializedBytes: bytes)
        #expect(envelope.metadata.count == 100_000)
    }
}
