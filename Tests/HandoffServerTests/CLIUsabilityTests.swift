// Handoff — the first ten minutes (issue 26): the `handoff` CLI and its
// console against a real handoffd, as a new user meets them — roles chosen
// for them, errors that say what to do, the console's keys and screens
// (driven by `handoff console --script`, no terminal), resolve that does not
// leave an action hanging, and handoffd's bind error.

import Foundation
import HandoffClient
import HandoffProto
import HandoffRPC
import HandoffTestSupport
import Testing

/// Runs `handoff` with no HANDOFF_* variable but `environment`, in `directory`
/// (a fresh temporary one by default); returns its status and merged output.
func runCLI(
    _ arguments: [String], environment: [String: String] = [:], in directory: String? = nil, binary: String = "handoff"
) async throws -> (status: Int32, output: String) {
    var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HANDOFF_") }
    env.merge(environment) { _, new in new }
    let cwd = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("handoff-cwd-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: cwd, withIntermediateDirectories: true)
    defer { if directory == nil { try? FileManager.default.removeItem(atPath: cwd) } }
    return try await runProcess(Binaries.path(binary), arguments, environment: env, directory: cwd)
}

/// The non-empty lines of a command's output.
func outputLines(_ output: String) -> [String] { output.split(separator: "\n").map(String.init).filter { !$0.isEmpty } }

/// A ticket on session `session` holding an undecided pending action (a
/// booking awaiting the user's confirmation, escalated with it).
func ticketWithUndecidedAction(_ agent: HandoffClient, session: String) async throws -> (ticket: String, action: String) {
    _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: session, reasoning: "test"))
    _ = try await agent.call(Sessions.addTurn, AddTurnRequest(sessionID: session, input: "Book me a flight", output: "Let me check"))
    let assessed = try await agent.call(
        HandoffProto.Policy.assessAction,
        AssessActionRequest(sessionID: session, action: Action(toolName: "book_flight", description: "Book a flight to NYC")))
    let pending = try #require(assessed.pendingAction)
    let opened = try await agent.call(
        Escalations.escalate,
        EscalateRequest(
            sessionID: session, reason: "wants a person", pendingActionID: pending.id))
    return (try #require(opened.ticket).id, pending.id)
}

@Suite("CLI usability", .serialized)
struct CLIUsabilityTests {
    @Test("desk commands and the console default to operator, approvals to approver; HANDOFF_ROLE wins; --help lists the environment")
    func rolesDefault() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (server, agent) = try await startWithFixtures(fixtures)
        defer { server.stop() }
        let common = ["--server", "127.0.0.1:\(server.port)", "--certs", fixtures.directory]
        let (ticket, _) = try await ticketWithUndecidedAction(agent, session: "roles")
        await agent.close()

        let queue = try await runCLI(["queue"] + common)
        #expect(queue.status == 0 && queue.output.contains(ticket), "queue without --role: \(queue.output)")
        let show = try await runCLI(["ticket", ticket] + common)
        #expect(show.status == 0, "ticket without --role: \(show.output)")
        let approvals = try await runCLI(["approvals", "list"] + common)
        #expect(approvals.status == 0 && approvals.output.contains("nothing waits for you"), "approvals without --role: \(approvals.output)")
        let console = try await runCLI(["console", "--script", "q"] + common)
        #expect(console.status == 0 && console.output.contains("operator @") && console.output.contains(ticket), "\(console.output)")
        // The agent's commands keep the agent.
        let context = try await runCLI(["session", "context", "roles"] + common)
        #expect(context.status == 0, "\(context.output)")

        // A role chosen by HANDOFF_ROLE wins; the refusal names the role needed, in one line.
        let asAgent = try await runCLI(["queue"] + common, environment: ["HANDOFF_ROLE": "agent"])
        #expect(asAgent.status != 0)
        #expect(asAgent.output.contains("PERMISSION_DENIED") && asAgent.output.contains("--role operator"), "\(asAgent.output)")
        #expect(outputLines(asAgent.output).count == 1, "\(asAgent.output)")
        let approveAsAgent = try await runCLI(["approvals", "list", "--role", "agent"] + common)
        #expect(approveAsAgent.output.contains("--role approver"), "\(approveAsAgent.output)")

        let help = try await runCLI(["--help"])
        for variable in ["HANDOFF_SERVER", "HANDOFF_CERTS", "HANDOFF_ROLE", "HANDOFF_TOKEN", "HANDOFF_TENANT"] {
            #expect(help.output.contains(variable), "handoff --help does not name \(variable): \(help.output)")
        }
        let queueHelp = try await runCLI(["queue", "--help"])
        #expect(queueHelp.output.contains("HANDOFF_ROLE") && queueHelp.output.contains("HANDOFF_SERVER"), "\(queueHelp.output)")
    }

    @Test("the console shows a refusal as a refusal naming the role, never as a lost connection")
    func consoleRefusal() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (server, agent) = try await startWithFixtures(fixtures)
        defer { server.stop() }
        await agent.close()
        let result = try await runCLI(
            ["console", "--server", "127.0.0.1:\(server.port)", "--certs", fixtures.directory, "--script", "g"],
            environment: ["HANDOFF_ROLE": "agent"])
        #expect(result.output.contains("REFUSED"), "\(result.output)")
        #expect(result.output.contains("--role operator"), "\(result.output)")
        #expect(!result.output.contains("connection lost") && !result.output.contains("DISCONNECTED"), "\(result.output)")
    }

    @Test("errors read as advice in one line: a missing certificate, no server, a wrong CA; --verbose adds the detail")
    func errorsForPeople() async throws {
        // No certificates where the default looks.
        let missing = try await runCLI(["ping"])
        #expect(missing.status != 0)
        #expect(missing.output.contains(".handoff/certs/agent.pem"), "\(missing.output)")
        #expect(missing.output.contains("handoff certs init .handoff/certs"), "\(missing.output)")
        #expect(!missing.output.contains("fopen") && outputLines(missing.output).count == 1, "\(missing.output)")
        let verbose = try await runCLI(["ping", "--verbose"])
        #expect(verbose.output.contains("fopen"), "--verbose hides the library's detail: \(verbose.output)")

        // Certificates, but nothing listening (port 1 is refused on loopback).
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let refused = try await runCLI(["ping", "--server", "127.0.0.1:1", "--certs", fixtures.directory])
        #expect(refused.status != 0)
        #expect(
            refused.output.contains("127.0.0.1:1") && refused.output.contains("make run") && refused.output.contains("--server"),
            "\(refused.output)")
        #expect(!refused.output.contains("SingleConnectionFailure") && outputLines(refused.output).count == 1, "\(refused.output)")

        // A server whose certificate another CA signed.
        let other = try Fixtures()
        defer { other.remove() }
        let (server, agent) = try await startWithFixtures(fixtures)
        defer { server.stop() }
        await agent.close()
        let wrongCA = try await runCLI(["ping", "--server", "127.0.0.1:\(server.port)", "--certs", other.directory])
        #expect(wrongCA.status != 0)
        #expect(wrongCA.output.contains(other.path("ca.pem")) && wrongCA.output.contains("--ca"), "\(wrongCA.output)")
        #expect(outputLines(wrongCA.output).count == 1, "\(wrongCA.output)")
    }

    @Test("handoffd on a port already taken says so in one line and how to choose another")
    func bindError() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (server, agent) = try await startWithFixtures(fixtures)
        defer { server.stop() }
        await agent.close()
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("handoff-bind-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: data) }
        let second = try await runCLI(
            serverArguments(fixtures, data: data) + ["--listen", "127.0.0.1:\(server.port)"], binary: "handoffd")
        #expect(second.status != 0)
        #expect(second.output.contains("127.0.0.1:\(server.port): the address is in use"), "\(second.output)")
        #expect(second.output.contains("--listen") && second.output.contains("make run LISTEN="), "\(second.output)")
        #expect(!second.output.contains("bind(descriptor"), "\(second.output)")
    }

    @Test("handoffd without its certificates says which file and how to make or name one, in one line")
    func handoffdWithoutCertificates() async throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("handoff-nocerts-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: data) }
        let result = try await runCLI(["--data", data, "--listen", "127.0.0.1:0"], binary: "handoffd")
        #expect(result.status != 0)
        #expect(result.output.contains("cannot read the server certificate \(data)/certs/server.pem: there is no such file"), "\(result.output)")
        #expect(result.output.contains("handoff certs init \(data)/certs") && result.output.contains("--tls-cert"), "\(result.output)")
        #expect(!result.output.contains("fopen"), "\(result.output)")
    }

    @Test("make run takes LISTEN= and DATA=")
    func makeRunVariables() async throws {
        let result = try await runProcess(
            "/usr/bin/env", ["make", "-n", "run", "LISTEN=127.0.0.1:7444", "DATA=/tmp/handoff-elsewhere"], directory: Binaries.root.path)
        #expect(result.0 == 0, "\(result.1)")
        #expect(result.1.contains(#"handoffd --data "/tmp/handoff-elsewhere" --listen "127.0.0.1:7444""#), "\(result.1)")
        #expect(result.1.contains(#"certs init "/tmp/handoff-elsewhere/certs""#), "\(result.1)")
    }

    @Test("resolve refuses to leave an undecided action pending unless told: --release, --reject or --leave-pending")
    func resolveUndecided() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (server, agent) = try await startWithFixtures(fixtures)
        defer { server.stop() }
        let common = ["--server", "127.0.0.1:\(server.port)", "--certs", fixtures.directory, "--role", "operator"]
        let (ticket, action) = try await ticketWithUndecidedAction(agent, session: "resolve")
        #expect(try await runCLI(["claim", ticket] + common).status == 0)

        let silent = try await runCLI(["resolve", ticket, "--outcome", "resolved"] + common)
        #expect(silent.status != 0, "resolved leaving the action pending without a word: \(silent.output)")
        for option in ["--release", "--reject", "--leave-pending"] { #expect(silent.output.contains(option), "\(silent.output)") }
        #expect(silent.output.contains(action), "\(silent.output)")
        var operatorConfiguration = HandoffClient.Configuration(host: "127.0.0.1", port: server.port, tls: fixtures.clientTLS(role: "operator"))
        operatorConfiguration.defaultTimeout = .seconds(10)
        let operatorClient = try HandoffClient(configuration: operatorConfiguration)
        defer { Task { await operatorClient.close() } }
        #expect(try await operatorClient.call(Escalations.getTicket, GetTicketRequest(ticketID: ticket)).ticket?.status == .claimed)

        let both = try await runCLI(["resolve", ticket, "--outcome", "resolved", "--release", "--leave-pending"] + common)
        #expect(both.status != 0)
        let left = try await runCLI(["resolve", ticket, "--outcome", "resolved", "--leave-pending", "--note", "over to billing"] + common)
        #expect(left.status == 0, "\(left.output)")
        let view = try await operatorClient.call(Escalations.getTicket, GetTicketRequest(ticketID: ticket))
        #expect(view.ticket?.status == .resolved)
        #expect(view.pendingAction?.status == .pending, "--leave-pending decided the action")
        await agent.close()
    }

    @Test("console: claim, resolve releasing the action with a note; one ticket, the status column whole, keys that do not clash")
    func consoleOperator() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (server, agent) = try await startWithFixtures(fixtures)
        defer { server.stop() }
        let (ticket, action) = try await ticketWithUndecidedAction(agent, session: "console-op")
        let common = ["--server", "127.0.0.1:\(server.port)", "--certs", fixtures.directory]

        // Claim, open the resolve prompt, press j (moves elsewhere, decides nothing here), then cancel.
        let first = try await runCLI(["console", "--script", "c", "s", "j", "<esc>"] + common)
        #expect(first.status == 0, "\(first.output)")
        #expect(first.output.contains("Queue (1 ticket)") && !first.output.contains("1 tickets"), "\(first.output)")
        #expect(first.output.contains("claimed (operator)"), "the status column is cut: \(first.output)")
        #expect(first.output.contains("action \(action) is undecided"), "\(first.output)")
        #expect(first.output.contains("status: cancelled"), "\(first.output)")
        let keysLine = try #require(outputLines(first.output).first { $0.hasPrefix("keys:") })
        #expect(keysLine.contains("k j select") && keysLine.contains("s resolve"), "\(keysLine)")
        var view = try await agent.call(Sessions.getSession, GetSessionRequest(sessionID: "console-op"))
        #expect(view.session?.status == .escalated, "j or esc resolved the ticket")

        // Resolve releasing the action, with a note, confirmed by enter.
        let second = try await runCLI(["console", "--script", "s", "a", "checked with the user", "<enter>"] + common)
        #expect(second.output.contains("Resolve \(ticket) as resolved, releasing its action? note"), "\(second.output)")
        #expect(second.output.contains("status: resolved \(ticket)"), "\(second.output)")
        var operatorConfiguration = HandoffClient.Configuration(host: "127.0.0.1", port: server.port, tls: fixtures.clientTLS(role: "operator"))
        operatorConfiguration.defaultTimeout = .seconds(10)
        let operatorClient = try HandoffClient(configuration: operatorConfiguration)
        let resolved = try await operatorClient.call(Escalations.getTicket, GetTicketRequest(ticketID: ticket))
        await operatorClient.close()
        #expect(resolved.ticket?.status == .resolved)
        #expect(resolved.pendingAction?.status == .released)
        view = try await agent.call(Sessions.getSession, GetSessionRequest(sessionID: "console-op"))
        let context = try await agent.call(Sessions.getContext, GetContextRequest(sessionID: "console-op"))
        #expect(context.turns.last?.output.contains("checked with the user") == true, "the note is not in the conversation")
        await agent.close()
    }

    @Test("console: approve asks for confirmation and a comment; esc decides nothing; every drawn line clears to its end")
    func consoleApprover() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (server, agent) = try await startWithFixtures(fixtures)
        defer { server.stop() }
        _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: "refunds", reasoning: "test"))
        let assessed = try await agent.call(
            HandoffProto.Policy.assessAction,
            AssessActionRequest(
                sessionID: "refunds",
                action: Action(
                    toolName: "issue_refund", description: "Refund my order", amount: "250", currency: "USD")))
        let approval = assessed.approvalID
        #expect(!approval.isEmpty)
        let common = ["--server", "127.0.0.1:\(server.port)", "--certs", fixtures.directory, "--role", "approver"]
        var approverConfiguration = HandoffClient.Configuration(host: "127.0.0.1", port: server.port, tls: fixtures.clientTLS(role: "approver"))
        approverConfiguration.defaultTimeout = .seconds(10)
        let approver = try HandoffClient(configuration: approverConfiguration)

        // a opens the confirmation; esc leaves the approval pending.
        let cancelled = try await runCLI(["console", "--script", "a", "<esc>", "--raw"] + common)
        #expect(cancelled.output.contains("Approve \(approval) (250 USD, level 1/"), "\(cancelled.output)")
        #expect(
            try await approver.call(Approvals.getApproval, GetApprovalRequest(approvalID: approval)).approval?.status == .pending,
            "one keystroke decided the approval")
        // Every line of every drawn screen ends by clearing the rest of the row, the status line included.
        for frame in cancelled.output.components(separatedBy: "--- after ") {
            let rows = frame.components(separatedBy: "\r\n")
            let last = try #require(rows.last).trimmingCharacters(in: .newlines)
            #expect(last.hasSuffix("\u{1B}[K"), "the status line does not clear old characters: \(last.debugDescription)")
            #expect(rows.dropLast().allSatisfy { $0.hasSuffix("\u{1B}[K") })
        }

        let approved = try await runCLI(["console", "--script", "a", "receipt checked", "<enter>"] + common)
        #expect(approved.output.contains("\(approval): approved"), "\(approved.output)")
        let decided = try await approver.call(Approvals.getApproval, GetApprovalRequest(approvalID: approval)).approval
        #expect(decided?.status == .approved)
        #expect(decided?.steps.first?.comment == "receipt checked", "the comment was not recorded")
        await approver.close()
        await agent.close()
    }
}
