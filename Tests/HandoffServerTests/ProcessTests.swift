// Handoff — the real binaries: handoffd started as a process, driven by the
// `handoff` CLI, stopped by SIGTERM.

import Crypto
import Foundation
import HandoffClient
import HandoffCore
import HandoffDesks
import HandoffPolicy
import HandoffProto
import HandoffRPC
import HandoffSQLite
import HandoffTestSupport
import Synchronization
import Testing

/// A flag one task raises and another reads.
private final class Flag: Sendable {
    let raised = Atomic(false)
}

/// A handoffd process listening on a free port.
final class ServerProcess: @unchecked Sendable {
    // @unchecked: created and terminated by one test, on one thread at a time
    // (offPool); Process itself is not Sendable.
    let process = Process()
    let port: Int
    /// The metrics listener's port, when the arguments ask for one (`--metrics-listen 127.0.0.1:0` picks a free one).
    let metricsPort: Int?
    private let errors: Pipe
    /// What handoffd wrote to stderr before it reported listening.
    private(set) var startupOutput = ""

    init(arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: Binaries.path("handoffd"))
        process.arguments = ["--listen", "127.0.0.1:0"] + arguments
        errors = closeOnExecPipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // The one line scripts and tests read: "listening on HOST:PORT" (and
        // the metrics listener's, in either order, when there is one).
        let wantsMetrics = arguments.contains("--metrics-listen")
        var seen = ""
        let deadline = Date().addingTimeInterval(20)
        var found: Int?
        var metrics: Int?
        func listening(after pattern: String) -> Int? {
            guard let range = seen.range(of: pattern + #"127\.0\.0\.1:(\d+)"#, options: .regularExpression) else { return nil }
            return Int(seen[range].split(separator: ":").last!)
        }
        while found == nil || (wantsMetrics && metrics == nil), Date() < deadline, process.isRunning {
            let chunk = errors.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
            found = listening(after: "listening on ")
            metrics = listening(after: "health checks on http://")
        }
        guard let found, !wantsMetrics || metrics != nil else {
            process.terminate()
            throw CommandError(output: "handoffd did not report listening:\n\(seen)")
        }
        port = found
        metricsPort = metrics
        startupOutput = seen
    }

    /// Sends SIGTERM and returns at once: for a test's `defer`, which cannot
    /// await and must not block a thread of the cooperative pool (with two
    /// cores, two such waits stall every other test of the process).
    func stop() {
        process.terminate()
    }

    /// Sends SIGTERM and returns the exit status (blocks: call it in `offPool`).
    func terminate() -> Int32 {
        process.terminate()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Everything handoffd wrote to stderr; call after it exited.
    func allOutput() -> String {
        startupOutput + String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }
}

struct CommandError: Error, CustomStringConvertible {
    let output: String
    var description: String { output }
}

/// Runs one of the package's binaries to completion; returns its status and combined output.
func run(_ binary: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
    try await runProcess(Binaries.path(binary), arguments)
}

/// handoffd's arguments for `fixtures`' certificates and the data directory `data`.
func serverArguments(_ fixtures: Fixtures, data: String) -> [String] {
    ["--data", data, "--tls-cert", fixtures.path("server.pem"), "--tls-key", fixtures.path("server.key"), "--client-ca", fixtures.path("ca.pem")]
}

/// handoffd on `fixtures`' data directory and certificates (plus `extra`
/// arguments), and an agent client of it with a 10 s default timeout.
func startWithFixtures(_ fixtures: Fixtures, _ extra: [String] = []) async throws -> (ServerProcess, HandoffClient) {
    let server = try await offPool {
        try ServerProcess(arguments: serverArguments(fixtures, data: fixtures.directory) + extra)
    }
    var configuration = HandoffClient.Configuration(host: "127.0.0.1", port: server.port, tls: fixtures.clientTLS(role: "agent"))
    configuration.defaultTimeout = .seconds(10)
    return (server, try HandoffClient(configuration: configuration))
}

@Suite("Binaries", .serialized)
struct ProcessTests {
    @Test("certs init, handoffd, handoff ping over mutual TLS, SIGTERM exits 0")
    func endToEnd() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("handoff-e2e-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let certs = (dir as NSString).appendingPathComponent("certs")
        let made = try await run("handoff", ["certs", "init", certs])
        #expect(made.status == 0, "\(made.output)")
        for key in ["ca.key", "server.key", "agent.key", "operator.key", "approver.key", "admin.key"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: (certs as NSString).appendingPathComponent(key))
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(key) is not mode 0600")
        }
        let again = try await run("handoff", ["certs", "init", certs])
        #expect(again.status != 0 && again.output.contains("already exists"), "a second init replaced the CA: \(again.output)")

        let server = try await offPool { try ServerProcess(arguments: ["--data", dir, "--require-client-cert"]) }
        let ping = try await run("handoff", ["ping", "--server", "127.0.0.1:\(server.port)", "--certs", certs, "-c", "3", "--json"])
        #expect(ping.status == 0, "\(ping.output)")
        let json = try JSONSerialization.jsonObject(with: Data(ping.output.utf8)) as? [String: Any]
        #expect(json?["count"] as? Int == 3)
        #expect(
            (json?["server_version"] as? String)?.hasPrefix("0.1.0+") == true,
            "the release and, after +, the commit it was built from: \(ping.output)")

        let wrongRole = try await run("handoff", ["ping", "--server", "127.0.0.1:\(server.port)", "--certs", certs, "--role", "nobody"])
        #expect(wrongRole.status != 0)
        #expect(wrongRole.output.contains("nobody.pem"), "the error does not name the missing file: \(wrongRole.output)")

        let status = try await offPool { server.terminate() }
        #expect(status == 0, "handoffd did not exit cleanly on SIGTERM")
    }

    @Test("handoff session and audit commands against a real handoffd and its SQLite file")
    func sessionCommands() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("handoff-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let certs = (dir as NSString).appendingPathComponent("certs")
        #expect(try await run("handoff", ["certs", "init", certs]).status == 0)
        let server = try await offPool { try ServerProcess(arguments: ["--data", dir]) }
        let common = ["--server", "127.0.0.1:\(server.port)", "--certs", certs]

        let created = try await run(
            "handoff",
            ["session", "create"] + common + ["--id", "s-cli", "--state", #"{"a":1}"#, "--label", "channel=cli", "--reasoning", "test", "--json"])
        #expect(created.status == 0, "\(created.output)")
        let patched = try await run(
            "handoff", ["session", "update", "s-cli"] + common + ["--patch", #"{"b":2}"#, "--reasoning", "add b", "--expect-version", "1", "--json"])
        #expect(patched.output.contains(#""version":2"#), "\(patched.output)")
        let stale = try await run(
            "handoff", ["session", "update", "s-cli"] + common + ["--patch", "{}", "--reasoning", "r", "--expect-version", "1"])
        #expect(stale.status != 0)
        #expect(stale.output.contains("ABORTED"), "\(stale.output)")
        let got = try await run("handoff", ["session", "get", "s-cli"] + common + ["--json"])
        let object = try JSONSerialization.jsonObject(with: Data(got.output.utf8)) as? [String: Any]
        #expect(object?["state_json"] as? String == #"{"a":1,"b":2}"#)
        #expect((object?["labels"] as? [String: String]) == ["channel": "cli"])

        #expect(
            try await run("handoff", ["session", "turn", "s-cli"] + common + ["--input", "hi", "--output", "hello", "--reasoning", "r"]).status == 0)
        #expect(try await run("handoff", ["session", "memory", "s-cli"] + common + ["--content", "likes tea", "--reasoning", "r"]).status == 0)
        let context = try await run("handoff", ["session", "context", "s-cli"] + common + ["--json"])
        #expect(context.output.contains(#""total_turns":1"#) && context.output.contains("likes tea"), "\(context.output)")
        let events = try await run("handoff", ["session", "events"] + common + ["--session", "s-cli", "--json"])
        for action in ["session.created", "session.state_updated", "session.turn_added", "session.memory_added"] {
            #expect(events.output.contains(action), "\(events.output)")
        }

        let verified = try await run("handoff", ["audit", "verify", "s-cli"] + common + ["--role", "admin", "--json"])
        #expect(verified.status == 0, "\(verified.output)")
        #expect(verified.output.contains(#""events_checked":4"#) && verified.output.contains(#""ok":true"#), "\(verified.output)")

        // Rewrite history behind the server's back: the audit must name event 1.
        let database = (dir as NSString).appendingPathComponent("handoff.sqlite")
        let edit = try await runProcess("/usr/bin/sqlite3", [database, "UPDATE events SET reasoning = 'forged' WHERE seq = 1;"])
        #expect(edit.status == 0, "\(edit.output)")
        let broken = try await run("handoff", ["audit", "verify", "s-cli"] + common + ["--role", "admin"])
        #expect(broken.status != 0)
        #expect(broken.output.contains("first_broken_sequence: 1"), "\(broken.output)")
        #expect(broken.output.contains("content does not match its hash"), "\(broken.output)")
        let status = try await offPool { server.terminate() }
        #expect(status == 0)
    }

    @Test("handoffd refuses to start with a missing certificate, naming it")
    func missingCertificate() async throws {
        let result = try await run("handoffd", ["--listen", "127.0.0.1:0", "--data", "/nonexistent/handoff"])
        #expect(result.status != 0)
        #expect(result.output.contains("/nonexistent/handoff/certs/server.pem"), "\(result.output)")
    }

    @Test("handoffd refuses a bad config file with the key at fault")
    func badConfig() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).yaml").path
        try "limits:\n  idle_timeout_second: 5\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try await run("handoffd", ["--config", file])
        #expect(result.status != 0)
        #expect(result.output.contains("idle_timeout_second"), "\(result.output)")
    }

    @Test("handoff policy check accepts the shipped policy and refuses a bad file with line and reason")
    func policyCheck() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("policy-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let shipped = try await run("handoff", ["policy", "default"])
        #expect(shipped.status == 0)
        let good = (directory as NSString).appendingPathComponent("policy.yaml")
        try shipped.output.write(toFile: good, atomically: true, encoding: .utf8)
        let ok = try await run("handoff", ["policy", "check", good])
        #expect(ok.status == 0)
        #expect(ok.output.contains("ok (version handoff-standard-1; 3 tool rules, 6 word rules"), "\(ok.output)")

        let bad = (directory as NSString).appendingPathComponent("bad.yaml")
        try "version: x\namount: {id: a, threshold: 100, risk: severe}\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try await run("handoff", ["policy", "check", bad])
        #expect(refused.status != 0)
        #expect(refused.output.contains("bad.yaml:2: amount.risk: unknown risk \"severe\""), "\(refused.output)")
    }

    @Test("handoff policy explain names the rules that matched and why, without a server")
    func policyExplain() async throws {
        let result = try await run(
            "handoff",
            [
                "policy", "explain", "--tool", "issue_refund", "--description", "Refund my order of 250 dollars",
                "--amount", "250", "--currency", "USD", "--json",
            ])
        #expect(result.status == 0, "\(result.output)")
        let object = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
        #expect(object?["strategy"] as? String == "escalate")
        #expect(object?["risk"] as? String == "high")
        #expect((object?["matched_rules"] as? [String])?.contains("amount.high (amount): amount 250 USD > 100") == true)
        let refused = try await run("handoff", ["policy", "explain", "--tool", "x", "--confidence", "1.5"])
        #expect(refused.status != 0)
        #expect(refused.output.contains("--confidence 1.5 is not within 0...1"), "\(refused.output)")
    }

    @Test("handoffd --policy: SIGHUP reloads the file; a bad file is logged and the old policy stays")
    func sighupReload() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let file = fixtures.path("policy.yaml")
        try Policy.standardYAML.write(toFile: file, atomically: true, encoding: .utf8)
        let (server, client) = try await startWithFixtures(fixtures, ["--policy", file])
        _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "s", reasoning: "r"))
        let weather = AssessActionRequest(sessionID: "s", action: Action(toolName: "get_weather"))
        #expect(try await client.call(HandoffProto.Policy.assessAction, weather).policyVersion == "handoff-standard-1")

        func reloaded(to version: String) async throws -> Bool {
            kill(server.process.processIdentifier, SIGHUP)
            for _ in 0..<100 {
                if try await client.call(HandoffProto.Policy.assessAction, weather).policyVersion == version { return true }
                try await Task.sleep(for: .milliseconds(50))
            }
            return false
        }
        try Policy.standardYAML.replacingOccurrences(of: "handoff-standard-1", with: "after-hup")
            .write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try await reloaded(to: "after-hup"))
        try "version: [unclosed\n".write(toFile: file, atomically: true, encoding: .utf8)
        kill(server.process.processIdentifier, SIGHUP)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await client.call(HandoffProto.Policy.assessAction, weather).policyVersion == "after-hup")
        await client.close()
        let status = try await offPool { server.terminate() }
        #expect(status == 0)
    }

    @Test("handoffd refuses to start with a bad policy file, naming the line")
    func badPolicyAtStart() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("policy-\(UUID().uuidString).yaml").path
        try "version: x\nsampling_rate: 2\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let result = try await run(
            "handoffd",
            [
                "--listen", "127.0.0.1:0", "--data", fixtures.directory, "--tls-cert", fixtures.path("server.pem"),
                "--tls-key", fixtures.path("server.key"), "--policy", file,
            ])
        #expect(result.status != 0)
        #expect(result.output.contains(":2: sampling_rate: 2.0 is not within 0...1"), "\(result.output)")
    }

    @Test("a multi-factor code and release tokens appear in no log line (trace level) and not in the SQLite file or its WAL")
    func codeNotLogged() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (server, client) = try await startWithFixtures(fixtures, ["--log-level", "trace"])
        _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "s", reasoning: "r"))
        let pending = try #require(
            try await client.call(
                HandoffProto.Policy.assessAction,
                AssessActionRequest(sessionID: "s", action: Action(toolName: "delete_user_data", description: "Delete all my data"))
            ).pendingAction)
        let started = try await client.call(Confirmations.startMultiFactor, StartMultiFactorRequest(pendingActionID: pending.id))
        #expect(started.channels == ["file"], "the default channel is the development file")
        let line = try String(contentsOfFile: fixtures.path("mfa-codes.jsonl"), encoding: .utf8)
        let code = try #require((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["code"] as? String)
        _ = try await client.call(Confirmations.verifyMultiFactor, VerifyMultiFactorRequest(pendingActionID: pending.id, code: "12345678"))
        let ok = try await client.call(Confirmations.verifyMultiFactor, VerifyMultiFactorRequest(pendingActionID: pending.id, code: code))
        #expect(ok.verified)
        // A release token too, from a confirmation, and one report under it.
        let booking = try #require(
            try await client.call(
                HandoffProto.Policy.assessAction, AssessActionRequest(sessionID: "s", action: Action(toolName: "book_flight", description: "Book"))
            ).pendingAction)
        _ = try await client.call(Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: booking.id))
        let yes = try await client.call(Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: booking.id, text: "yes"))
        let tokens = [try #require(ok.pendingAction?.releaseToken), try #require(yes.pendingAction?.releaseToken)]
        #expect(tokens.allSatisfy { $0.count == 64 })
        _ = try await client.call(Decisions.reportExecution, ReportExecutionRequest(releaseToken: tokens[1], resultJSON: "{}", idempotencyKey: "k"))
        let secrets = [code] + tokens
        func searchStore(_ when: String) {
            for file in ["handoff.sqlite", "handoff.sqlite-wal"] {
                let bytes = (try? Data(contentsOf: URL(fileURLWithPath: fixtures.path(file)))) ?? Data()
                for secret in secrets { #expect(bytes.range(of: Data(secret.utf8)) == nil, "a code or token is in \(file) (\(when))") }
            }
        }
        searchStore("while serving")
        await client.close()
        #expect(try await offPool { server.terminate() } == 0)
        let log = server.allOutput()
        #expect(log.contains("listening on"), "the log was not captured")
        for secret in secrets { #expect(!log.contains(secret), "a code or token is in the server log") }
        searchStore("after the stop")
        let key = try FileManager.default.attributesOfItem(atPath: fixtures.path("mfa.key"))[.posixPermissions] as? Int
        #expect(key == 0o600, "the server key is not mode 0600")
    }

    @Test("automated assessments answered before their commit are all in the SQLite file after SIGTERM")
    func queuedAssessmentsSurviveStop() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (server, client) = try await startWithFixtures(fixtures)
        _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "s", reasoning: "r"))
        let weather = AssessActionRequest(sessionID: "s", action: Action(toolName: "get_weather", description: "Weather in Lisbon?"))
        // 64 callers, as fast as the answers come; the stop follows the last answer at once.
        let answered = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<64 {
                group.addTask { () async throws -> Int in
                    for _ in 0..<25 {
                        let reply = try await client.call(HandoffProto.Policy.assessAction, weather)
                        #expect(reply.strategy == .automate)
                    }
                    return 25
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(try await offPool { server.terminate() } == 0)
        await client.close()
        let store = try SQLiteStore(path: fixtures.path("handoff.sqlite"))
        let events = try await store.events(tenant: TenantID("acme"), sessionID: "s")
        #expect(events.filter { $0.event.action == "action.assessed" }.count == answered, "answered assessments lost on a graceful stop")
        #expect(EventChain.verify(events) == nil)
    }

    @Test("handoffd refuses a private key others can read; handoff tokens new makes a token handoffd accepts from its config")
    func keyModesAndTokens() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        chmod(fixtures.path("server.key"), 0o644)
        let open = try await run(
            "handoffd",
            [
                "--listen", "127.0.0.1:0", "--data", fixtures.directory, "--tls-cert", fixtures.path("server.pem"),
                "--tls-key", fixtures.path("server.key"),
            ])
        #expect(open.status != 0)
        #expect(open.output.contains("server.key is readable by others (mode 644)"), "\(open.output)")
        chmod(fixtures.path("server.key"), 0o600)

        let made = try await run("handoff", ["tokens", "new", "--identity", "handoff://tenant/acme/agent/bot", "--days", "1"])
        #expect(made.status == 0, "\(made.output)")
        let token = try #require(made.output.split(separator: "\n").first?.split(separator: " ").last.map(String.init))
        let line = try #require(made.output.split(separator: "\n").last.map(String.init))
        #expect(!line.contains(token), "the config line holds the token itself")
        let config = fixtures.path("handoffd.yaml")
        try "tokens:\n\(line)\n".write(toFile: config, atomically: true, encoding: .utf8)
        let server = try await offPool {
            try ServerProcess(arguments: [
                "--config", config, "--data", fixtures.directory, "--tls-cert", fixtures.path("server.pem"),
                "--tls-key", fixtures.path("server.key"), "--client-ca", fixtures.path("ca.pem"),
            ])
        }
        let common = ["--server", "127.0.0.1:\(server.port)", "--ca", fixtures.path("ca.pem")]
        let created = try await run("handoff", ["session", "create", "--id", "tok", "--reasoning", "r", "--token", token, "--json"] + common)
        #expect(created.status == 0, "\(created.output)")
        #expect(created.output.contains(#""tenant_id":"acme""#), "\(created.output)")
        let refused = try await run("handoff", ["session", "get", "tok", "--token", "hot_wrong"] + common)
        #expect(refused.status != 0)
        #expect(refused.output.contains("UNAUTHENTICATED"), "\(refused.output)")
        #expect(try await offPool { server.terminate() } == 0)
        #expect(!server.allOutput().contains(token), "the token is in the server log")
    }

    @Test("handoffd makes its data directory 0700 and its store 0600, and refuses to start on a store others can read")
    func dataFileModes() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let data = fixtures.path("data")
        let common = serverArguments(fixtures, data: data)
        let server = try await offPool { try ServerProcess(arguments: common) }
        var configuration = HandoffClient.Configuration(host: "127.0.0.1", port: server.port, tls: fixtures.clientTLS(role: "agent"))
        configuration.defaultTimeout = .seconds(10)
        let client = try HandoffClient(configuration: configuration)
        _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "m", stateJSON: #"{"secret":1}"#, reasoning: "r"))
        func mode(_ path: String) throws -> Int {
            try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int ?? -1
        }
        #expect(try mode(data) == 0o700)
        for file in ["handoff.sqlite", "handoff.sqlite-wal", "handoff.sqlite-shm", "mfa.key"] {
            #expect(try mode((data as NSString).appendingPathComponent(file)) == 0o600, "\(file)")
        }
        await client.close()
        #expect(try await offPool { server.terminate() } == 0)

        let store = (data as NSString).appendingPathComponent("handoff.sqlite")
        chmod(store, 0o644)
        let refused = try await run("handoffd", ["--listen", "127.0.0.1:0"] + common)
        #expect(refused.status != 0)
        #expect(refused.output.contains("handoff.sqlite is readable by others (mode 644); run chmod 600"), "\(refused.output)")
    }

    @Test("a bearer token past its expires time in the config file is UNAUTHENTICATED, end to end, and one still valid is served")
    func tokenExpiryFromConfig() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        func hash(_ token: String) -> String { SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined() }
        let config = fixtures.path("handoffd.yaml")
        try """
        tokens:
          - {identity: "handoff://tenant/acme/agent/old", sha256: "\(hash("expired-token"))", expires: "2020-01-01T00:00:00Z"}
          - {identity: "handoff://tenant/acme/agent/new", sha256: "\(hash("current-token"))", expires: "2099-01-01T00:00:00Z"}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let server = try await offPool {
            try ServerProcess(arguments: [
                "--config", config, "--data", fixtures.directory, "--tls-cert", fixtures.path("server.pem"),
                "--tls-key", fixtures.path("server.key"), "--client-ca", fixtures.path("ca.pem"),
            ])
        }
        let common = ["--server", "127.0.0.1:\(server.port)", "--ca", fixtures.path("ca.pem")]
        let expired = try await run("handoff", ["session", "create", "--id", "e", "--reasoning", "r", "--token", "expired-token"] + common)
        #expect(expired.status != 0)
        #expect(expired.output.contains("UNAUTHENTICATED") && expired.output.contains("has expired"), "\(expired.output)")
        let current = try await run("handoff", ["session", "create", "--id", "c", "--reasoning", "r", "--token", "current-token"] + common)
        #expect(current.status == 0, "\(current.output)")
        #expect(try await offPool { server.terminate() } == 0)
    }

    @Test("a Watch resumed with a cursor from before a restart of handoffd gets exactly what came after it")
    func watchResumeAcrossRestart() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        func operatorClient(_ server: ServerProcess) throws -> HandoffClient {
            var configuration = HandoffClient.Configuration(host: "127.0.0.1", port: server.port, tls: fixtures.clientTLS(role: "operator"))
            configuration.defaultTimeout = .seconds(10)
            return try HandoffClient(configuration: configuration)
        }
        /// The first `count` desk events after `cursor`, with their cursors;
        /// warm-up tickets (sessions `warm-…`) only raise `warm`.
        let warm = Flag()
        func watch(_ client: HandoffClient, after cursor: String, count: Int) async throws -> [(String, String)] {
            var seen: [(String, String)] = []
            for try await event in try await client.stream(
                Operators.watch, WatchRequest(kinds: [.ticketOpened], resumeCursor: cursor), options: CallOptions(timeout: .seconds(60)))
            {
                guard case .ticket(let ticket)? = event.subject else { continue }
                if ticket.sessionID.hasPrefix("warm-") {
                    warm.raised.store(true, ordering: .relaxed)
                    continue
                }
                seen.append((ticket.sessionID, event.cursor))
                if seen.count == count { break }
            }
            return seen
        }
        var (server, agent) = try await startWithFixtures(fixtures)
        var op = try operatorClient(server)
        let live = Task { [op] in try await watch(op, after: "", count: 2) }
        // The watch is open once it sees a warm-up ticket (a fixed pause can be outlasted by a busy machine).
        for round in 0..<100 where !warm.raised.load(ordering: .relaxed) {
            _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: "warm-\(round)", reasoning: "r"))
            _ = try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "warm-\(round)", reason: "warm-up"))
            try await Task.sleep(for: .milliseconds(200))
        }
        let watching = warm.raised.load(ordering: .relaxed)
        try #require(watching, "the watch saw no warm-up ticket")
        for id in ["r1", "r2"] {
            _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: id, reasoning: "r"))
            _ = try await agent.call(Escalations.escalate, EscalateRequest(sessionID: id, reason: "help \(id)"))
        }
        let seenLive = try await live.value
        #expect(seenLive.map(\.0) == ["r1", "r2"])
        let before = seenLive.map(\.1)
        try #require(before.count == 2)
        #expect(try await watch(op, after: before[0], count: 1).map(\.0) == ["r2"], "a resume on the same process")
        await agent.close()
        await op.close()
        let stopping = server
        #expect(try await offPool { stopping.terminate() } == 0)

        (server, agent) = try await startWithFixtures(fixtures)
        op = try operatorClient(server)
        for id in ["r3", "r4"] {
            _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: id, reasoning: "r"))
            _ = try await agent.call(Escalations.escalate, EscalateRequest(sessionID: id, reason: "help \(id)"))
        }
        let resumed = try await watch(op, after: before[0], count: 3)
        #expect(resumed.map(\.0) == ["r2", "r3", "r4"], "after the restart the old cursor resumes where it was")
        let fromSecond = try await watch(op, after: before[1], count: 2)
        #expect(fromSecond.map(\.0) == ["r3", "r4"])
        await agent.close()
        await op.close()
        let restarted = server
        #expect(try await offPool { restarted.terminate() } == 0)
    }

    @Test("one handoffd per data directory: a second is refused naming the directory and the process; after a kill -9 the lock is gone")
    func oneServerPerDataDirectory() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let data = fixtures.path("data")
        let common = serverArguments(fixtures, data: data)
        let first = try await offPool { try ServerProcess(arguments: common) }
        let second = try await run("handoffd", ["--listen", "127.0.0.1:0"] + common)
        #expect(second.status != 0)
        #expect(
            second.output.contains("the data directory \(data) is in use by another handoffd (process \(first.process.processIdentifier))"),
            "\(second.output)")
        kill(first.process.processIdentifier, SIGKILL)
        _ = try await offPool { first.process.waitUntilExit() }
        let third = try await offPool { try ServerProcess(arguments: common) }
        #expect(try await offPool { third.terminate() } == 0, "a kill -9 left a stale lock")
    }

    @Test(
        "a full data volume: writes are RESOURCE_EXHAUSTED naming it, reads go on, the failure and the recovery are logged once each, nothing acknowledged is lost",
        .timeLimit(.minutes(2)))
    func fullDisk() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let data = fixtures.path("small-volume")
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        // A 6 MiB file system of the test's own (root, as make test runs), with a 2 MiB filler to free later.
        let mounted = try await runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=6m", "tmpfs", data])
        try #require(mounted.status == 0, "cannot mount a small tmpfs for the test: \(mounted.output)")
        defer { _ = try? Process.run(URL(fileURLWithPath: "/bin/umount"), arguments: ["-l", data]).waitUntilExit() }
        let filler = (data as NSString).appendingPathComponent("filler")
        FileManager.default.createFile(atPath: filler, contents: Data(repeating: 7, count: 2 << 20))
        let server = try await offPool {
            try ServerProcess(arguments: serverArguments(fixtures, data: data) + ["--metrics-listen", "127.0.0.1:0"])
        }
        let metrics = try #require(server.metricsPort)
        var configuration = HandoffClient.Configuration(host: "127.0.0.1", port: server.port, tls: fixtures.clientTLS(role: "agent"))
        configuration.defaultTimeout = .seconds(20)
        let client = try HandoffClient(configuration: configuration)
        #expect(try await readyz(metrics).status == 200)
        _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "big", reasoning: "r"))
        let blob = String(repeating: "x", count: 200_000)
        var acknowledged: Int64 = 1
        var refusal: RPCError?
        for i in 0..<100 {
            do {
                let reply = try await client.call(
                    Sessions.updateState,
                    UpdateStateRequest(
                        sessionID: "big", reasoning: "fill \(i)", change: .replacementJSON(#"{"blob":"\#(blob)","i":\#(i)}"#)))
                acknowledged = reply.version
            } catch {
                refusal = error
                break
            }
        }
        let full = try #require(refusal, "the volume never filled")
        #expect(full.code == .resourceExhausted && full.message.contains("no space left on the data volume"), "\(full)")
        // Reads go on; a second failing write is refused the same way.
        #expect(try await client.call(Sessions.getSession, GetSessionRequest(sessionID: "big")).session?.version == acknowledged)
        let again = await refusalOf(
            client, Sessions.updateState,
            UpdateStateRequest(
                sessionID: "big", reasoning: "again", change: .mergePatchJSON(#"{"blob":"\#(blob.prefix(100_000))"}"#)))
        #expect(again?.code == .resourceExhausted)
        let notReady = try await readyz(metrics)
        #expect(notReady.status == 503 && notReady.body.contains("no space left on the data volume"), "\(notReady)")
        // Space freed: writes resume.
        try FileManager.default.removeItem(atPath: filler)
        let resumed = try await client.call(
            Sessions.updateState,
            UpdateStateRequest(
                sessionID: "big", reasoning: "small", change: .replacementJSON(#"{"small":true}"#)))
        #expect(resumed.version == acknowledged + 1, "every acknowledged write is there, and the refused ones are not")
        #expect(try await readyz(metrics).status == 200, "ready again once a write succeeded")
        await client.close()
        #expect(try await offPool { server.terminate() } == 0)
        let log = server.allOutput()
        let failures = log.components(separatedBy: "the store cannot write: no space left on the data volume").count - 1
        #expect(failures == 1, "the failure is logged once, not per write:\n\(log)")
        #expect(log.contains("the store writes again after"), "the recovery is logged:\n\(log)")
        // Reopened, the chain verifies and holds exactly the acknowledged versions.
        let store = try SQLiteStore(path: (data as NSString).appendingPathComponent("handoff.sqlite"))
        let verifier = try #require(try await store.verifyChain(tenant: TenantID("acme"), sessionID: "big"))
        #expect(verifier.firstBreak == nil)
        #expect(try await store.session(tenant: TenantID("acme"), id: "big")?.version == acknowledged + 1)
    }
}

/// A TCP port free now on 127.0.0.1 (for a listener a child process opens).
/// GET /readyz on 127.0.0.1:`port` (with Python's urllib, as a probe would).
private func readyz(_ port: Int) async throws -> (status: Int, body: String) {
    let script = """
        import sys, urllib.request, urllib.error
        try:
            r = urllib.request.urlopen("http://127.0.0.1:\(port)/readyz", timeout=10); print(r.status); print(r.read().decode())
        except urllib.error.HTTPError as e:
            print(e.code); print(e.read().decode())
        """
    let ran = try await runProcess("/usr/bin/env", ["python3", "-c", script])
    let lines = ran.output.split(separator: "\n", maxSplits: 1)
    return (Int(lines.first ?? "") ?? 0, lines.count > 1 ? String(lines[1]) : ran.output)
}
