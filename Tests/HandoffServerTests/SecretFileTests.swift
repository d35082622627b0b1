// Handoff — server settings read from files: secrets exactly as written.

import Foundation
import Testing

@testable import HandoffServer

@Suite("Secret files")
struct SecretFileTests {
    @Test("a binary key is read back byte for byte, whatever its last bytes; a typed secret loses its trailing newline")
    func secrets() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("secrets-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // What a made key may end in, 1 start in 128 (\n or \r last).
        for tail: [UInt8] in [[0x0A], [0x0D], [0x0D, 0x0A], [0x00, 0x0A]] {
            let path = (directory as NSString).appendingPathComponent("key-\(tail.count)-\(tail.last!)")
            let bytes = (0..<30).map { UInt8(($0 * 37 + 200) % 256) } + tail
            FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600])
            #expect(try ServerSettings.secret(at: path, createIfMissing: false) == bytes, "\(tail)")
        }
        // One made here, read back.
        let made = (directory as NSString).appendingPathComponent("made.key")
        let first = try ServerSettings.secret(at: made, createIfMissing: true)
        #expect(try ServerSettings.secret(at: made, createIfMissing: false) == first)
        // A secret typed into a file by a person.
        let typed = (directory as NSString).appendingPathComponent("typed")
        try "a-shared-webhook-secret-of-some-length\r\n".write(toFile: typed, atomically: true, encoding: .utf8)
        #expect(try ServerSettings.secret(at: typed, createIfMissing: false) == Array("a-shared-webhook-secret-of-some-length".utf8))
    }
}
