// Handoff — cross-language vectors: bytes written by Google's Python protobuf
// decode in Swift to the expected values and Swift encodes those values to the
// same bytes; Swift's encodings decode in Python to equal messages.

import Foundation
import HandoffProto
import HandoffTestSupport
import Testing

@Suite("Cross-language vectors")
struct VectorTests {
    @Test("Python-written vectors decode to the expected values, and Swift encodes them byte for byte")
    func pythonVectorsDecodeInSwift() throws {
        for (name, expected) in VectorFixtures.all {
            try checkVector(expected, name: name)
        }
    }

    /// Vectors whose bytes may legitimately differ: both encodings decode to
    /// the same value on both sides, which the other checks prove.
    private static let encodingsMayDiffer: Set<String> = [
        // Python writes a map entry's empty value ("z": "") explicitly;
        // protobuf-c treats the entry as proto3 and omits it.
        "session"
    ]

    private func checkVector<M: ProtoMessage>(_ expected: M, name: String) throws {
        let bytes = try [UInt8](Data(contentsOf: VectorFixtures.directory.appendingPathComponent("\(name).bin")))
        let decoded = try M(serializedBytes: bytes)
        #expect(decoded == expected, "vector \(name) decodes to another value")
        if !Self.encodingsMayDiffer.contains(name) {
            #expect(try expected.serializedBytes() == bytes, "vector \(name): Swift's encoding differs from Python's")
        }
    }

    @Test("every message type with every field set survives Swift's decode and re-encode unchanged")
    func everyMessageRoundTrips() throws {
        var checked = 0
        for type in ProtoRegistry.messageTypes {
            for variant in ["a", "b"] {
                let url = VectorFixtures.directory.appendingPathComponent("AllMessages/\(type.protoName).\(variant).bin")
                let bytes = try [UInt8](Data(contentsOf: url))
                try checkFullVector(type, bytes, name: "\(type.protoName).\(variant)")
                checked += 1
            }
        }
        #expect(checked == ProtoRegistry.messageTypes.count * 2)
    }

    private func checkFullVector<M: ProtoMessage>(_: M.Type, _ bytes: [UInt8], name: String) throws {
        let decoded = try M(serializedBytes: bytes)
        let reencoded = try decoded.serializedBytes()
        #expect(reencoded == bytes, "\(name): a field was lost or changed between protobuf-c and Swift")
        #expect(!bytes.isEmpty)
    }

    @Test("Swift's encodings decode in Python (google.protobuf) to equal messages")
    func swiftEncodingsDecodeInPython() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("handoff-vectors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, message) in VectorFixtures.all {
            try Data(message.serializedBytes()).write(to: dir.appendingPathComponent("\(name).bin"))
        }
        let script = VectorFixtures.repositoryRoot.appendingPathComponent("scripts/vectors.py").path
        let path = dir.path
        let (status, text) = try await runProcess("/usr/bin/env", ["python3", script, "--check", path])
        #expect(status == 0, "python3 scripts/vectors.py --check failed:\n\(text)")
        #expect(text.contains("checked \(VectorFixtures.all.count) Swift encodings, 0 mismatched"), "\(text)")
    }
}
