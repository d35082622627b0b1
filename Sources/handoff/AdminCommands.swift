// Handoff — `handoff admin`: what a global admin does to a running server.

import ArgumentParser
import Crypto
import Foundation
import HandoffClient
import HandoffProto
import HandoffRPC

struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin", abstract: "A global admin's operations on a running server.", subcommands: [Backup.self])

    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy the whole store while handoffd serves (an online, consistent copy).",
            discussion: """
                Needs a global admin's certificate: `handoff certs issue --role admin --global --name ops` writes \
                global.admin.ops.pem and .key; pass them with --cert and --key. The copy is written to FILE.partial, \
                checked against the size and SHA-256 the server sends last, then renamed to FILE. Restoring it is in \
                docs/OPERATIONS.md.
                """)
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Where to write the copy (refused if it exists).") var out: String

        func run() async throws {
            guard !FileManager.default.fileExists(atPath: out) else {
                throw CommandFailure("\(out) exists; choose another --out (a backup never overwrites a file)")
            }
            let partial = out + ".partial"
            // O_EXCL: two backups to one --out never write into each other's copy.
            let descriptor = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else {
                let reason = String(cString: strerror(errno))
                throw CommandFailure(
                    errno == EEXIST
                        ? "\(partial) exists: another backup to \(out) is running, or one was cut short (remove it and run again)"
                        : "cannot create \(partial): \(reason); check the directory exists and is writable")
            }
            let file = FileHandle(fileDescriptor: descriptor, closeOnDealloc: false)
            var finished = false
            defer {
                try? file.close()
                if !finished { unlink(partial) }
            }
            let client = try connection.makeClient(for: .agent)
            var hasher = SHA256()
            var received: Int64 = 0
            var last: BackupChunk?
            do {
                // A large store takes a while: no deadline unless --timeout asks for one.
                let options =
                    connection.timeout.map { CallOptions(timeout: .milliseconds(Int64($0 * 1000))) }
                    ?? CallOptions(timeout: nil)
                for try await chunk in try await client.stream(Admin.backup, BackupRequest(), options: options) {
                    if chunk.data.isEmpty {
                        last = chunk
                        continue
                    }
                    hasher.update(data: chunk.data)
                    received += Int64(chunk.data.count)
                    try file.write(contentsOf: Data(chunk.data))
                }
            } catch let error as RPCError {
                await client.close()
                throw CommandFailure(Advice.explain(error, call: Admin.backup.fullName))
            }
            await client.close()
            guard let last, last.totalBytes == received, last.sha256 == Array(hasher.finalize()) else {
                throw CommandFailure(
                    "the copy arrived incomplete (\(received) bytes, no matching size and SHA-256 from the server); nothing was kept, run it again")
            }
            try file.synchronize()
            try file.close()
            // link(2) refuses an existing target, where rename(2) would replace a file made meanwhile.
            guard link(partial, out) == 0 else {
                finished = true  // keep the copy: it is whole
                throw CommandFailure("cannot write \(out): \(String(cString: strerror(errno))) (the copy is left in \(partial))")
            }
            finished = true
            unlink(partial)
            print("backup written: \(out) (\(received) bytes, \(last.format), sha256 \(last.sha256.map { String(format: "%02x", $0) }.joined()))")
        }
    }
}
