// Handoff — `handoff session …` and `handoff audit verify`.

import ArgumentParser
import Foundation
import HandoffClient
import HandoffCore
import HandoffProto
import HandoffRPC

/// Prints a message as JSON (`--json`) or as `key: value` lines.
func emit(_ fields: [(String, Any)], json: Bool) throws {
    if json {
        let object = Dictionary(fields, uniquingKeysWith: { first, _ in first })
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    } else {
        for (key, value) in fields { print("\(key): \(plain(value))") }
    }
}

/// A value as one line: nested lists and objects as compact JSON, not Swift literals.
func plain(_ value: Any) -> String {
    guard value is [Any] || value is [String: Any],
        let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])
    else { return "\(value)" }
    return String(decoding: data, as: UTF8.self)
}

/// Makes one call, turning an RPCError into a one-line failure with its status.
func perform<Request, Response>(
    _ client: HandoffClient, _ method: UnaryMethod<Request, Response>, _ request: Request
) async throws -> Response {
    do {
        return try await client.call(method, request)
    } catch {
        throw CommandFailure(Advice.explain(error, call: method.fullName))
    }
}

func sessionFields(_ session: Session?) -> [(String, Any)] {
    guard let s = session else { return [] }
    return [
        ("session_id", s.id), ("tenant_id", s.tenantID), ("version", s.version), ("state_json", s.stateJSON),
        ("labels", s.labels), ("created_at_unix_ms", s.createdAtUnixMs), ("updated_at_unix_ms", s.updatedAtUnixMs),
    ]
}

struct SessionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session", abstract: "Sessions: create, get and update their state.",
        subcommands: [Create.self, Get.self, Update.self, AddTurn.self, AddMemory.self, Context.self, Events.self])

    struct AddTurn: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "turn", abstract: "Add a turn of the conversation.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Session id.") var id: String
        @Option(help: "What the user said.") var input = ""
        @Option(help: "What the agent answered.") var output = ""
        @Option(help: "Metadata, a JSON object.") var metadata = ""
        @Option(help: "Why the turn is recorded.") var reasoning = ""
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try connection.makeClient()
            let response = try await perform(
                client, Sessions.addTurn,
                AddTurnRequest(sessionID: id, input: input, output: output, metadataJSON: metadata, reasoning: reasoning))
            await client.close()
            try emit([("session_id", id), ("sequence", response.turn?.sequence ?? 0)], json: json)
        }
    }

    struct AddMemory: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "memory", abstract: "Add a memory to a session.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Session id.") var id: String
        @Option(help: "What to remember.") var content: String
        @Option(help: "Metadata, a JSON object.") var metadata = ""
        @Option(help: "Why it is remembered.") var reasoning = ""
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try connection.makeClient()
            let response = try await perform(
                client, Sessions.addMemory,
                AddMemoryRequest(sessionID: id, content: content, metadataJSON: metadata, reasoning: reasoning))
            await client.close()
            try emit([("session_id", id), ("sequence", response.memory?.sequence ?? 0)], json: json)
        }
    }

    struct Context: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the recent turns, the state and the memories.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Session id.") var id: String
        @Option(help: "How many recent turns (0: the server's default, 50).") var turnLimit: Int32 = 0
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try connection.makeClient()
            let response = try await perform(client, Sessions.getContext, GetContextRequest(sessionID: id, turnLimit: turnLimit))
            await client.close()
            let turns = response.turns.map { ["sequence": $0.sequence, "input": $0.input, "output": $0.output] as [String: Any] }
            let memories = response.memories.map(\.content)
            try emit(sessionFields(response.session) + [("total_turns", response.totalTurns), ("turns", turns), ("memories", memories)], json: json)
        }
    }

    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List events, oldest first unless --newest-first.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Only this session's events.") var session: String?
        @Option(help: "Only this action (repeatable).") var action: [String] = []
        @Option(help: "At or after this time, ms since 1970.") var since: Int64 = 0
        @Option(help: "Before this time, ms since 1970.") var until: Int64 = 0
        @Flag(help: "Newest first.") var newestFirst = false
        @Option(help: "Events per page.") var pageSize: Int32 = 50
        @Option(help: "The next_page_token of the previous page.") var pageToken = ""
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try connection.makeClient()
            let response = try await perform(
                client, Sessions.listEvents,
                ListEventsRequest(
                    sessionID: session ?? "", actions: action, sinceUnixMs: since, untilUnixMs: until,
                    order: newestFirst ? .newestFirst : .oldestFirst, pageSize: pageSize, pageToken: pageToken))
            await client.close()
            let events = response.events.map {
                [
                    "session_id": $0.sessionID, "sequence": $0.sequence, "action": $0.action, "actor": $0.actor?.name ?? "",
                    "reasoning": $0.reasoning, "details_json": $0.detailsJSON, "occurred_at_unix_ms": $0.occurredAtUnixMs,
                ] as [String: Any]
            }
            try emit([("events", events), ("next_page_token", response.nextPageToken)], json: json)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a session.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Session id (default: the server picks one).") var id: String?
        @Option(help: "Initial state, a JSON object.") var state = "{}"
        @Option(help: "A label KEY=VALUE (repeatable).") var label: [String] = []
        @Option(help: "Why the session is created.") var reasoning = ""
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            var labels: [String: String] = [:]
            for pair in label {
                guard let eq = pair.firstIndex(of: "=") else { throw ValidationError("--label \(pair) is not KEY=VALUE") }
                labels[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
            }
            let client = try connection.makeClient()
            let response = try await perform(
                client, Sessions.createSession,
                CreateSessionRequest(sessionID: id ?? "", stateJSON: state, labels: labels, reasoning: reasoning))
            await client.close()
            try emit(sessionFields(response.session), json: json)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a session.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Session id.") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try connection.makeClient()
            let response = try await perform(client, Sessions.getSession, GetSessionRequest(sessionID: id))
            await client.close()
            try emit(sessionFields(response.session), json: json)
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a session's state by merge patch or replacement.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Session id.") var id: String
        @Option(help: "An RFC 7386 JSON merge patch.") var patch: String?
        @Option(help: "The whole new state, a JSON object.") var replace: String?
        @Option(help: "Why the state changes (required).") var reasoning: String
        @Option(help: "Refuse the change unless the session is at this version.") var expectVersion: Int64?
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard (patch == nil) != (replace == nil) else { throw ValidationError("give exactly one of --patch and --replace") }
        }

        func run() async throws {
            let change: UpdateStateRequest.Change = patch.map { .mergePatchJSON($0) } ?? .replacementJSON(replace ?? "{}")
            let client = try connection.makeClient()
            let response = try await perform(
                client, Sessions.updateState,
                UpdateStateRequest(sessionID: id, reasoning: reasoning, expectedVersion: expectVersion, change: change))
            await client.close()
            try emit([("session_id", id), ("version", response.version), ("state_json", response.stateJSON)], json: json)
        }
    }
}

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Audit trails.", subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recompute a session's event hash chain; exits 1 and names the first broken link if any.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Session id.") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let client = try connection.makeClient(for: .operator)
            let response = try await perform(client, Admin.verifyAuditChain, VerifyAuditChainRequest(sessionID: id))
            await client.close()
            var fields: [(String, Any)] = [
                ("session_id", id), ("ok", response.ok), ("events_checked", response.eventsChecked),
                ("head_hash", response.headHash.hexString),
            ]
            if !response.ok {
                fields += [("first_broken_sequence", response.firstBrokenSequence), ("reason", response.reason)]
            }
            try emit(fields, json: json)
            if !response.ok { throw ExitCode.failure }
        }
    }
}
