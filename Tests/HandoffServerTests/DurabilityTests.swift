// Handoff — durability: handoffd is SIGKILLed at random moments under
// concurrent writes, restarted, and every acknowledged write must be there,
// no unacknowledged write half-visible, every hash chain intact.

import Foundation
import HandoffClient
import HandoffProto
import HandoffRPC
import HandoffTLS
import HandoffTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// What a writer knows was acknowledged for its session.
struct Acknowledged: Sendable {
    var version: Int64 = 1
    var turns: Int64 = 0
}

/// The acknowledgements of every writer, shared with the writer tasks.
final class AcknowledgementLog: Sendable {
    private let entries = Mutex<[String: Acknowledged]>([:])
    func withLock<T>(_ body: (inout [String: Acknowledged]) -> T) -> T { entries.withLock { body(&$0) } }
}

@Suite("Durability", .serialized)
struct DurabilityTests {
    @Test("SIGKILL under concurrent UpdateState and AddTurn, three times: nothing acknowledged is lost, nothing partial shows")
    func killAndRestart() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("handoff-kill-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let certs = (dir as NSString).appendingPathComponent("certs")
        #expect(try await run("handoff", ["certs", "init", certs]).status == 0)
        let tls = TLSConfiguration.client(
            trustRootsPath: (certs as NSString).appendingPathComponent("ca.pem"), serverHostname: "127.0.0.1",
            certificateChainPath: (certs as NSString).appendingPathComponent("agent.pem"),
            privateKeyPath: (certs as NSString).appendingPathComponent("agent.key"))
        // The audit check is an operator's or admin's call.
        let auditor = TLSConfiguration.client(
            trustRootsPath: (certs as NSString).appendingPathComponent("ca.pem"), serverHostname: "127.0.0.1",
            certificateChainPath: (certs as NSString).appendingPathComponent("admin.pem"),
            privateKeyPath: (certs as NSString).appendingPathComponent("admin.key"))
        func client(_ port: Int, tls: TLSConfiguration = tls) throws -> HandoffClient {
            var configuration = HandoffClient.Configuration(host: "127.0.0.1", port: port, tls: tls)
            configuration.defaultTimeout = .seconds(5)
            configuration.keepaliveInterval = nil
            return try HandoffClient(configuration: configuration)
        }

        let sessions = (0..<8).map { "durable-\($0)" }
        let acknowledged = AcknowledgementLog()
        var server = try await offPool { try ServerProcess(arguments: ["--data", dir]) }
        let setup = try client(server.port)
        for id in sessions {
            _ = try await setup.call(Sessions.createSession, CreateSessionRequest(sessionID: id, stateJSON: #"{"n":1}"#, reasoning: "start"))
            acknowledged.withLock { $0[id] = Acknowledged() }
        }
        await setup.close()

        var totalAcknowledged = 0
        for round in 0..<3 {
            let writer = try client(server.port)
            let pid = server.process.processIdentifier
            let killAfter = Duration.milliseconds(Int.random(in: 300...900))
            let before = acknowledged.withLock { $0.values.reduce(0) { $0 + $1.version } }
            let killer = Task {
                // From the first acknowledged write (a loaded machine may take longer than the delay to connect).
                while acknowledged.withLock({ $0.values.reduce(0) { $0 + $1.version } }) == before {
                    try await Task.sleep(for: .milliseconds(5))
                }
                try await Task.sleep(for: killAfter)
                kill(pid, SIGKILL)
            }
            // Each session has one writer, which therefore knows its version.
            let acks = await withTaskGroup(of: Int.self) { group in
                for id in sessions {
                    group.addTask {
                        var count = 0
                        while true {
                            let known = acknowledged.withLock { $0[id]! }
                            do {
                                let next = known.version + 1
                                _ = try await writer.call(
                                    Sessions.updateState,
                                    UpdateStateRequest(
                                        sessionID: id, reasoning: "write \(next)", expectedVersion: known.version,
                                        change: .mergePatchJSON(#"{"n":\#(next)}"#)))
                                acknowledged.withLock { $0[id]!.version = next }
                                _ = try await writer.call(
                                    Sessions.addTurn, AddTurnRequest(sessionID: id, input: "after \(next)", reasoning: "turn"))
                                acknowledged.withLock { $0[id]!.turns += 1 }
                                count += 2
                            } catch {
                                return count  // the server is gone
                            }
                        }
                    }
                }
                return await group.reduce(0, +)
            }
            _ = await killer.result
            let killed = server
            _ = try await offPool { killed.process.waitUntilExit() }
            await writer.close()
            #expect(acks > 0, "round \(round): no write was acknowledged before the kill")
            totalAcknowledged += acks

            // Restart on the same data and check every session.
            server = try await offPool { try ServerProcess(arguments: ["--data", dir]) }
            let reader = try client(server.port)
            let admin = try client(server.port, tls: auditor)
            for id in sessions {
                let known = acknowledged.withLock { $0[id]! }
                let context = try await reader.call(Sessions.getContext, GetContextRequest(sessionID: id, turnLimit: 500))
                let version = context.session?.version ?? 0
                // Acknowledged means durable; one more may have committed unacknowledged.
                #expect(version == known.version || version == known.version + 1, "\(id): version \(version), acknowledged \(known.version)")
                // No partial write: the state always says the version it was written at.
                #expect(
                    context.session?.stateJSON == #"{"n":\#(version)}"#, "\(id): state \(context.session?.stateJSON ?? "-") at version \(version)")
                #expect(
                    context.totalTurns == known.turns || context.totalTurns == known.turns + 1,
                    "\(id): \(context.totalTurns) turns, acknowledged \(known.turns)")
                let audit = try await admin.call(Admin.verifyAuditChain, VerifyAuditChainRequest(sessionID: id))
                #expect(audit.ok, "\(id): chain broken at \(audit.firstBrokenSequence): \(audit.reason)")
                // Continue from what is stored: the next round's writers must match it.
                acknowledged.withLock { $0[id] = Acknowledged(version: version, turns: context.totalTurns) }
            }
            await reader.close()
            await admin.close()
        }
        #expect(totalAcknowledged > 50)
        let last = server
        let status = try await offPool { last.terminate() }
        #expect(status == 0)
    }
}
