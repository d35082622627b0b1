// Handoff — `handoff tokens new`: a bearer token for callers without client
// certificates. The token is printed once; the server keeps only its SHA-256.

import ArgumentParser
import Crypto
import Foundation
import HandoffCore

struct Tokens: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bearer tokens for callers without a client certificate.", subcommands: [New.self])

    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a token: prints it once, and the line for handoffd's tokens: setting (which holds only its hash).")

        @Option(help: "Whose token: handoff://tenant/<tenant>/<role>/<name>, or handoff://global/admin/<name> for a global admin.")
        var identity: String

        @Option(help: "Days until it expires (0: never).")
        var days = 90

        func run() throws {
            // Read as handoffd reads its tokens: setting.
            guard Principal(uri: identity) != nil else {
                throw ValidationError(
                    "--identity must be handoff://tenant/<tenant>/<agent|operator|approver|admin>/<name> or handoff://global/admin/<name>")
            }
            var generator = SystemRandomNumberGenerator()
            let token = "hot_" + (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }.hexString
            let hash = SHA256.hash(data: Data(token.utf8)).hexString
            var line = "  - {identity: \"\(identity)\", sha256: \"\(hash)\""
            if days > 0 {
                let expires = Date().addingTimeInterval(Double(days) * 86_400)
                line += ", expires: \"\(ISO8601DateFormatter().string(from: expires))\""
            }
            print("token (shown once; give it to the caller, e.g. HANDOFF_TOKEN): \(token)")
            print("for handoffd's config file, under tokens:")
            print(line + "}")
        }
    }
}
