// Handoff — failures as people read them: one line saying what happened and
// what to do next; the library's own text only with --verbose.

import Foundation
import HandoffRPC
import HandoffTLS
import Synchronization

enum Advice {
    /// What the command was connecting with (set by ConnectionOptions.makeClient;
    /// one command per process).
    struct Context: Sendable {
        var server = "127.0.0.1:7443"
        var certs = ".handoff/certs"
        var role = "agent"
        var command = CommandRole.agent
        var ca: String?
        var cert: String?
        var key: String?
        /// Per option (--ca, --cert, --key): whether its file is the --certs directory's.
        var fromCerts: [String: Bool] = [:]
        /// Whether --role or HANDOFF_ROLE chose the role.
        var explicitRole = false
        var verbose = false
    }

    private static let current = Mutex(Context())

    static var context: Context {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }

    /// The command that makes development certificates.
    static func certsInitCommand(_ directory: String) -> String { ".build/release/handoff certs init \(directory)" }

    /// A failure to set up TLS before connecting: which file, and how to make or choose one.
    static func explain(_ error: TLSError) -> String {
        let c = context
        let files: [(String, String?, String)] = [
            ("client certificate", c.cert, "--cert"), ("client key", c.key, "--key"), ("CA bundle", c.ca, "--ca"),
        ]
        var line: String
        if let (what, path, option) = files.first(where: { $0.1.map { !FileManager.default.fileExists(atPath: $0) } ?? false }),
            let path
        {
            line = "no \(what) \(path)"
            if c.fromCerts[option] == true {
                line +=
                    " (role \(c.role)): make the development certificates with `\(certsInitCommand(c.certs))`"
                    + " (make run does it), or choose others with --certs DIR, --role ROLE or \(option) FILE"
            } else {
                line += ": pass an existing file with \(option) FILE"
            }
        } else {
            line =
                "cannot use the TLS files (\(c.cert ?? "no certificate"), \(c.key ?? "no key"), CA \(c.ca ?? "none")): "
                + shortReason(error.message)
        }
        return withDetail(line, "\(error)")
    }

    /// A failure of a call: the server's refusal, or why it could not be reached.
    static func explain(_ error: RPCError, call: String) -> String {
        let c = context
        let text = "\(error.message) \(error.cause.map { "\($0)" } ?? "")"
        let line: String
        switch error.code {
        case .unavailable where text.contains("Connection refused"):
            line =
                "no server is listening on \(c.server) (connection refused): start one with `make run`, "
                + "or pass --server HOST:PORT (or HANDOFF_SERVER) for another"
        case .unavailable where text.contains("certificate verify failed"):
            line =
                "the server at \(c.server) has a certificate the CA \(c.ca ?? "?") did not sign (certificate verify failed): "
                + "pass the CA that signed it with --ca FILE, or the server's certificates directory with --certs DIR"
        case .unavailable
        where text.contains("alert unknown ca") || text.contains("alert bad certificate")
            || text.contains("certificate required"):
            line =
                "the server at \(c.server) refused the client certificate \(c.cert ?? "(none)"): use one its CA signed, "
                + "with --certs DIR (the directory `make run` made, .handoff/certs) or --cert/--key"
        case .unavailable where text.contains("timed out") || text.contains("connectTimeout"):
            line = "no answer from \(c.server) (connection timed out): check the address, or pass --server HOST:PORT"
        case .unavailable:
            line = "cannot reach the server at \(c.server): \(shortReason(error.message))"
        case .permissionDenied:
            var hint = ""
            if c.command != .agent, c.role != c.command.rawValue {
                hint =
                    "; this command is for the \(c.command.rawValue) role: pass --role \(c.command.rawValue) (or HANDOFF_ROLE=\(c.command.rawValue))"
            } else if c.command == .agent, !c.explicitRole {
                hint = "; choose the role allowed to with --role (or HANDOFF_ROLE)"
            }
            line = "\(call): PERMISSION_DENIED: \(error.message)\(hint)"
        default:
            line = "\(call): \(error.code): \(error.message)"
        }
        return withDetail(line, "\(call): \(error.code): \(error.message)\(error.cause.map { " (\($0))" } ?? "")")
    }

    /// The first clause of a library's message, without the OpenSSL error stack.
    static func shortReason(_ message: String) -> String {
        var text = message
        for marker in [" (calling ", "; system lib", " error:"] {
            if let range = text.range(of: marker) { text = String(text[..<range.lowerBound]) }
        }
        return text
    }

    private static func withDetail(_ line: String, _ detail: String) -> String {
        context.verbose ? "\(line)\n  detail: \(detail)" : line
    }
}
