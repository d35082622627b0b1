// Handoff — the agent's side from the shell (issue 26, item 3): the seed
// story played with `handoff assess`, `confirm`/`answer`, `code`, `wait`,
// `executed` and `escalate` against a real handoffd, the operator and the
// approver answering with the desk commands.

import Foundation
import HandoffTestSupport
import Testing

/// A command's --json output as an object.
private func object(_ output: String) throws -> [String: Any] {
    let line = try #require(outputLines(output).last, "no output")
    return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not a JSON object: \(output)")
}

@Suite("Agent commands", .serialized)
struct AgentCommandsTests {
    @Test("the seed story from the shell: automated, confirmed, approved with a lower amount, released by a code, resolved by an operator")
    func seedStory() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (server, client) = try await startWithFixtures(fixtures)
        defer { server.stop() }
        await client.close()
        let common = ["--server", "127.0.0.1:\(server.port)", "--certs", fixtures.directory]
        func cli(_ arguments: [String]) async throws -> (status: Int32, output: String) { try await runCLI(arguments + common) }
        func ok(_ arguments: [String]) async throws -> String {
            let result = try await cli(arguments)
            #expect(result.status == 0, "handoff \(arguments.joined(separator: " ")): \(result.output)")
            return result.output
        }

        _ = try await ok(["session", "create", "--id", "story"])

        // The weather: automated, nothing to wait for.
        let weather = try await ok([
            "assess", "story", "--tool", "get_weather", "--description", "Look up the weather in Paris",
            "--params", #"{"city": "Paris"}"#,
        ])
        #expect(weather.contains("strategy: automate") && weather.contains("risk: low"), "\(weather)")
        #expect(weather.contains("  - tools.informational: tool get_weather"), "the matched rules are not listed: \(weather)")
        #expect(weather.contains("next: run the tool now") && !weather.contains("pending_action_id"), "\(weather)")

        // The booking: asked, confirmed, released; executed once, then a duplicate.
        let booking = try object(
            try await ok([
                "assess", "story", "--tool", "book_flight", "--description", "Book a flight to NYC",
                "--params", #"{"to": "NYC", "date": "2026-12-01"}"#, "--idempotency-key", "book-1", "--json",
            ]))
        #expect(booking["strategy"] as? String == "explicit_confirm", "\(booking)")
        let book = try #require(booking["pending_action_id"] as? String)
        #expect((booking["next"] as? String)?.contains("handoff confirm \(book)") == true, "\(booking)")
        let again = try object(
            try await ok([
                "assess", "story", "--tool", "book_flight", "--description", "Book a flight to NYC",
                "--params", #"{"to": "NYC", "date": "2026-12-01"}"#, "--idempotency-key", "book-1", "--json",
            ]))
        #expect(again["pending_action_id"] as? String == book, "the same key made a second pending action")
        let prompt = try await ok(["confirm", book])
        #expect(prompt.contains("book_flight") && prompt.contains("handoff answer \(book)"), "\(prompt)")
        let unclear = try await ok(["answer", book, "hmm, maybe"])
        #expect(unclear.contains("outcome: ambiguous") && unclear.contains("reprompt:") && unclear.contains("status: pending"), "\(unclear)")
        let yes = try await ok(["answer", book, "yes"])
        #expect(yes.contains("outcome: confirmed") && yes.contains("status: released"), "\(yes)")
        let bookToken = try #require(outputLines(yes).first { $0.hasPrefix("release_token: ") }?.dropFirst("release_token: ".count))
        let bookWait = try object(try await ok(["wait", book, "--json"]))
        #expect(bookWait["status"] as? String == "released" && bookWait["release_token"] as? String == String(bookToken), "\(bookWait)")
        #expect((bookWait["action"] as? [String: Any])?["tool_name"] as? String == "book_flight", "\(bookWait)")
        let executed = try await ok(["executed", String(bookToken), "--idempotency-key", "run-1", "--result", #"{"booking": "BK-4471"}"#])
        #expect(executed.contains("recorded: true") && executed.contains("duplicate: false") && executed.contains(book), "\(executed)")
        let twice = try await ok(["executed", String(bookToken), "--idempotency-key", "run-1", "--result", #"{"booking": "BK-4471"}"#])
        #expect(twice.contains("duplicate: true"), "a second report was not a duplicate: \(twice)")
        let otherKey = try await cli(["executed", String(bookToken), "--idempotency-key", "run-2"])
        #expect(otherKey.status != 0 && otherKey.output.contains("FAILED_PRECONDITION"), "\(otherKey.output)")

        // The refund of 250: to an approval; approved at 200; the agent gets the edited action.
        let refundArguments = [
            "assess", "story", "--tool", "issue_refund", "--description", "Refund order A-1042",
            "--params", #"{"order": "A-1042", "amount": 250}"#, "--amount", "250", "--currency", "USD",
        ]
        let refundText = try await ok(refundArguments + ["--idempotency-key", "refund-1"])
        #expect(refundText.contains("strategy: escalate") && refundText.contains("amount.high"), "\(refundText)")
        let refund = try object(try await ok(refundArguments + ["--idempotency-key", "refund-1", "--json"]))
        let approval = try #require(refund["approval_id"] as? String, "no approval: \(refund)")
        let refundAction = try #require(refund["pending_action_id"] as? String)
        #expect(refundText.contains("handoff approve \(approval)"), "\(refundText)")
        let approved = try await ok(["approve", approval, "--amount", "200", "--comment", "partial refund"])
        #expect(approved.contains("\(approval): approved"), "\(approved)")
        let refundWait = try object(try await ok(["wait", refundAction, "--json"]))
        #expect(refundWait["status"] as? String == "released", "\(refundWait)")
        let edited = try #require(refundWait["action"] as? [String: Any])
        #expect(edited["amount"] as? String == "200", "\(refundWait)")
        let arguments = try JSONSerialization.jsonObject(with: Data(try #require(edited["parameters_json"] as? String).utf8)) as? [String: Any]
        #expect((arguments?["amount"] as? NSNumber)?.intValue == 200, "the tool's arguments keep 250: \(edited)")
        #expect(refundWait["comment"] as? String == "partial refund" && (refundWait["decided_by"] as? String)?.hasSuffix("approver") == true)

        // The deletion: a code, a wrong one first.
        let deletion = try object(
            try await ok([
                "assess", "story", "--tool", "delete_account", "--description", "Delete all my data", "--json",
            ]))
        #expect(deletion["strategy"] as? String == "multi_factor", "\(deletion)")
        let delete = try #require(deletion["pending_action_id"] as? String)
        let started = try await ok(["code", "start", delete])
        #expect(started.contains(#"channels: ["file"]"#) && started.contains("handoff code verify \(delete)"), "\(started)")
        let sent = try String(contentsOfFile: fixtures.path("mfa-codes.jsonl"), encoding: .utf8)
        let code = try #require(try object(sent)["code"] as? String)
        let wrong = String(code.prefix(1) == "1" ? "2" : "1") + code.dropFirst()
        let missed = try await cli(["code", "verify", delete, wrong])
        #expect(missed.status != 0 && missed.output.contains("verified: false") && missed.output.contains("status: pending"), "\(missed.output)")
        let verified = try await ok(["code", "verify", delete, code])
        #expect(verified.contains("verified: true") && verified.contains("status: released") && verified.contains("release_token: "))
        let deleteWait = try await ok(["wait", delete])
        #expect(deleteWait.contains("status: released") && deleteWait.contains("delete_account") && deleteWait.contains("handoff executed "))

        // The medical question: to the operator desk; escalating it again names the same ticket.
        let medical = try object(
            try await ok([
                "assess", "story", "--tool", "answer_question", "--description", "Can I double my blood pressure medication?",
                "--confidence", "0.4", "--json",
            ]))
        #expect(medical["strategy"] as? String == "escalate" && medical["risk"] as? String == "critical", "\(medical)")
        let question = try #require(medical["pending_action_id"] as? String)
        let ticket = try #require(medical["ticket_id"] as? String, "no ticket: \(medical)")
        let escalated = try object(try await ok(["escalate", "story", "--reason", "medical question", "--action", question, "--json"]))
        #expect(escalated["ticket_id"] as? String == ticket && escalated["created"] as? Bool == false, "\(escalated)")
        let undecided = try await cli(["wait", question, "--timeout", "1"])
        #expect(
            undecided.status != 0 && undecided.output.contains("no decision within 1") && undecided.output.contains(question),
            "\(undecided.output)")
        #expect(outputLines(undecided.output).count == 1, "\(undecided.output)")
        _ = try await ok(["claim", ticket])
        _ = try await ok(["reply", ticket, "Please don't change your dose on your own; call your doctor."])
        let resolved = try await ok(["resolve", ticket, "--outcome", "resolved", "--release", "--note", "nurse answered"])
        #expect(resolved.contains("is released"), "\(resolved)")
        let questionWait = try object(try await ok(["wait", question, "--json"]))
        #expect(
            questionWait["status"] as? String == "released" && (questionWait["decided_by"] as? String)?.hasSuffix("operator") == true,
            "\(questionWait)")
        let context = try await ok(["session", "context", "story"])
        #expect(context.contains("call your doctor"), "the operator's reply is not in the conversation: \(context)")
    }

    @Test("the agent's commands refuse a bad action before calling, and --help lists them")
    func validation() async throws {
        let badParams = try await runCLI(["assess", "s", "--tool", "t", "--params", "[1]"])
        #expect(badParams.status != 0 && badParams.output.contains("--params must be a JSON object"), "\(badParams.output)")
        let noCurrency = try await runCLI(["assess", "s", "--tool", "t", "--amount", "5"])
        #expect(noCurrency.status != 0 && noCurrency.output.contains("--currency"), "\(noCurrency.output)")
        let help = try await runCLI(["--help"])
        for command in ["assess", "escalate", "confirm", "answer", "code", "wait", "executed"] {
            #expect(help.output.contains("  \(command) "), "handoff --help does not list \(command)")
        }
    }
}

/// The README tour's `handoff` lines, per section (agent, approver, operator):
/// continuation lines joined, comments dropped, words split as a shell would
/// (quotes only; the tour uses no variables).
func readmeTour() throws -> [String: [[String]]] {
    let readme = try String(contentsOf: Binaries.root.appendingPathComponent("README.md"), encoding: .utf8)
    let start = try #require(readme.range(of: "## A ten-minute tour"), "the README has no tour")
    let end = try #require(readme.range(of: "\n## ", range: start.upperBound..<readme.endIndex))
    var sections: [String: [[String]]] = [:]
    var section = ""
    var inBlock = false
    var pending = ""
    for raw in readme[start.upperBound..<end.lowerBound].components(separatedBy: "\n") {
        if raw.hasPrefix("### As an ") {
            section = String(raw.dropFirst("### As an ".count))
            continue
        }
        if raw.hasPrefix("```") {
            inBlock = raw == "```sh"
            continue
        }
        guard inBlock else { continue }
        if raw.hasSuffix("\\") {
            pending += raw.dropLast() + " "
            continue
        }
        let line = (pending + raw).trimmingCharacters(in: .whitespaces)
        pending = ""
        guard line.hasPrefix("handoff ") else { continue }
        let command = line.range(of: "  #").map { String(line[..<$0.lowerBound]) } ?? line
        sections[section, default: []].append(shellWords(command))
    }
    return sections
}

/// Splits a command line into words: whitespace separates, '…' and "…" quote.
func shellWords(_ line: String) -> [String] {
    var words: [String] = []
    var word = ""
    var quote: Character?
    var inWord = false
    for c in line {
        if let q = quote {
            if c == q { quote = nil } else { word.append(c) }
        } else if c == "'" || c == "\"" {
            quote = c
            inWord = true
        } else if c == " " || c == "\t" {
            if inWord {
                words.append(word)
                word = ""
                inWord = false
            }
        } else {
            word.append(c)
            inWord = true
        }
    }
    if inWord { words.append(word) }
    return words
}

@Suite("README tour", .serialized)
struct ReadmeTourTests {
    @Test("the README's shell tour runs as written: agent, approver and operator, ids taken from what each command printed")
    func tour() async throws {
        let sections = try readmeTour()
        let agent = try #require(sections["agent"])
        let approver = try #require(sections["approver"])
        let desk = try #require(sections["operator"])
        #expect(agent.count >= 15 && approver.count >= 3 && desk.count >= 5, "\(sections)")

        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (server, client) = try await startWithFixtures(fixtures)
        defer { server.stop() }
        await client.close()
        let environment = ["HANDOFF_SERVER": "127.0.0.1:\(server.port)", "HANDOFF_CERTS": fixtures.directory]

        func sentCode() throws -> String {
            let sent = try String(contentsOfFile: fixtures.path("mfa-codes.jsonl"), encoding: .utf8)
            let last = try #require(outputLines(sent).last, "no code was sent")
            let object = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any]
            return try #require(object?["code"] as? String)
        }
        // The latest id of each kind any command printed, for the tour's placeholders.
        var latest: [String: String] = [:]
        func substitute(_ words: [String]) throws -> [String] {
            try words.dropFirst().map { word in
                switch word {
                case "pa-…": try #require(latest["pending_action_id"], "no pending action yet")
                case "ap-…": try #require(latest["approval_id"], "no approval yet")
                case "t-…": try #require(latest["ticket_id"], "no ticket yet")
                case "TOKEN": try #require(latest["release_token"], "no release token yet")
                case "CODE": try sentCode()
                default: word
                }
            }
        }
        func play(_ words: [String]) async throws -> String {
            let arguments = try substitute(words)
            let result = try await runCLI(arguments, environment: environment)
            #expect(result.status == 0, "README: handoff \(arguments.joined(separator: " ")): \(result.output)")
            for line in outputLines(result.output) {
                for key in ["pending_action_id", "approval_id", "ticket_id", "release_token"] where line.hasPrefix("\(key): ") {
                    latest[key] = String(line.dropFirst(key.count + 2))
                }
            }
            return result.output
        }

        // The agent's lines in order. A `wait` for an action already decided
        // runs now (before `executed` uses the release up); one that waits for
        // a person runs on beside the rest, as in its own terminal.
        var waits: [(String, Task<(status: Int32, output: String), any Error>)] = []
        var previous = ""
        var released = 0
        for words in agent {
            if words.dropFirst().first == "wait", !previous.contains("status: released") {
                let arguments = try substitute(words)
                waits.append((arguments.joined(separator: " "), Task { try await runCLI(arguments, environment: environment) }))
                continue
            }
            previous = try await play(words)
            if words.dropFirst().first == "wait", previous.contains("status: released") { released += 1 }
        }
        #expect(released == 1, "the booking's wait did not show its release")
        // The interactive ones (the console, watch) are for people.
        func interactive(_ words: [String]) -> Bool { ["console", "watch"].contains(words.dropFirst().first ?? "") }
        for words in approver where !interactive(words) { _ = try await play(words) }
        for words in desk where !interactive(words) { _ = try await play(words) }

        var refundWait = ""
        for (command, task) in waits {
            let result = try await task.value
            #expect(result.status == 0, "README: handoff \(command): \(result.output)")
            if result.output.contains("status: released") { released += 1 }
            if result.output.contains("issue_refund") { refundWait = result.output }
        }
        #expect(released == waits.count + 1 && waits.count >= 2, "\(waits.map(\.0))")
        #expect(refundWait.contains(#""amount":"200""#), "the approver's amount is not in the action the agent runs: \(refundWait)")
    }

    @Test("make install builds handoff and handoffd and copies them to PREFIX/bin")
    func makeInstall() async throws {
        let result = try await runProcess("/usr/bin/env", ["make", "-n", "install", "PREFIX=/tmp/handoff-prefix"], directory: Binaries.root.path)
        #expect(result.0 == 0, "\(result.1)")
        #expect(
            result.1.contains("build -c release --product handoffd") && result.1.contains("build -c release --product handoff\n"),
            "\(result.1)")
        #expect(result.1.contains(#"install -m 0755 .build/release/handoff .build/release/handoffd "/tmp/handoff-prefix/bin/""#), "\(result.1)")
    }
}
