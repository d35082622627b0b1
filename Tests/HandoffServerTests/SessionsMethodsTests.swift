// Handoff — handoff.v1.Sessions over real TLS, into a real SQLite file.

import Foundation
import HandoffClient
import HandoffCore
import HandoffProto
import HandoffRPC
import HandoffServer
import Synchronization
import Testing

@testable import HandoffSQLite

/// A handoffd serving only Sessions over TLS on a store in `fixtures`, and an agent's client.
private func startSessionsServer(_ fixtures: Fixtures) async throws -> (RunningServer, HandoffClient, SQLiteStore) {
    let store = try SQLiteStore(path: fixtures.path("handoff.sqlite"))
    var registry = MethodRegistry()
    registry.registerSessions(SessionService(store: store))
    let running = try await RunningServer(.init(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS()), registry: registry)
    return (running, try running.client(fixtures.clientTLS(role: "agent")), store)
}

@Suite("Sessions over TLS")
struct SessionsMethodsTests {
    @Test("create, get, update by merge patch and by replacement; every refusal names its problem")
    func sessionsEndToEnd() async throws {
        let fixtures = try Fixtures()
        let path = (fixtures.directory as NSString).appendingPathComponent("handoff.sqlite")
        defer { fixtures.remove() }
        let store = try SQLiteStore(path: path)
        var registry = MethodRegistry()
        registry.registerSessions(SessionService(store: store))
        let running = try await RunningServer(.init(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS()), registry: registry)
        let client = try running.client(fixtures.clientTLS(role: "agent"))

        let created = try await client.call(
            Sessions.createSession,
            CreateSessionRequest(sessionID: "s-1", stateJSON: #"{"cart":{"items":1}}"#, labels: ["channel": "web"], reasoning: "new chat"))
        #expect(created.session?.version == 1)
        #expect(created.session?.labels == ["channel": "web"])

        let patched = try await client.call(
            Sessions.updateState,
            UpdateStateRequest(
                sessionID: "s-1", reasoning: "added an item", expectedVersion: 1,
                change: .mergePatchJSON(#"{"cart":{"items":2},"step":"checkout"}"#)))
        #expect(patched.version == 2)
        #expect(patched.stateJSON == #"{"cart":{"items":2},"step":"checkout"}"#)

        let replaced = try await client.call(
            Sessions.updateState, UpdateStateRequest(sessionID: "s-1", reasoning: "reset", change: .replacementJSON(#"{"fresh":true}"#)))
        #expect(replaced.version == 3)
        #expect(try await client.call(Sessions.getSession, GetSessionRequest(sessionID: "s-1")).session?.stateJSON == #"{"fresh":true}"#)

        let refusal = { (request: UpdateStateRequest) async -> RPCError? in
            do throws(RPCError) {
                _ = try await client.call(Sessions.updateState, request)
                return nil
            } catch {
                return error
            }
        }
        let stale = await refusal(UpdateStateRequest(sessionID: "s-1", reasoning: "r", expectedVersion: 1, change: .mergePatchJSON("{}")))
        #expect(stale?.code == .aborted)
        #expect(stale?.message.contains("expected 1") == true)
        let noReason = await refusal(UpdateStateRequest(sessionID: "s-1", change: .mergePatchJSON("{}")))
        #expect(noReason?.code == .invalidArgument)
        #expect(noReason?.message.contains("reasoning is required") == true)
        let notJSON = await refusal(UpdateStateRequest(sessionID: "s-1", reasoning: "r", change: .mergePatchJSON("{oops")))
        #expect(notJSON?.code == .invalidArgument)
        #expect(notJSON?.message.contains("merge_patch_json is not valid JSON") == true)
        let notObject = await refusal(UpdateStateRequest(sessionID: "s-1", reasoning: "r", change: .replacementJSON("[1]")))
        #expect(notObject?.message.contains("must be a JSON object") == true)
        let noChange = await refusal(UpdateStateRequest(sessionID: "s-1", reasoning: "r"))
        #expect(noChange?.message.contains("set merge_patch_json or replacement_json") == true)
        let missing = await refusal(UpdateStateRequest(sessionID: "nope", reasoning: "r", change: .mergePatchJSON("{}")))
        #expect(missing?.code == .notFound)

        let duplicate = await #expect(throws: RPCError.self) {
            _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "s-1", reasoning: "again"))
        }
        #expect(duplicate?.code == .alreadyExists)
        #expect(
            try await client.call(Sessions.getSession, GetSessionRequest(sessionID: "s-1")).session?.version == 3,
            "a refused call changed the session")

        // The events carry the caller's certificate identity and chain intact.
        let events = try await store.events(tenant: TenantID("acme"), sessionID: "s-1")
        #expect(events.map(\.event.action) == ["session.created", "session.state_updated", "session.state_updated"])
        #expect(events.allSatisfy { $0.event.actor == "handoff://tenant/acme/agent/agent" })
        #expect(EventChain.verify(events) == nil)
        await client.close()
        await running.stop()
    }
}

@Suite("Turns, memories and context over TLS")
struct ContextMethodsTests {
    @Test("ids keep to their alphabet, labels and every text field have limits, and a client cannot mark its turns as an operator's")
    func inputLimits() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, client, _) = try await startSessionsServer(fixtures)
        func refusal<Request, Response>(_ method: UnaryMethod<Request, Response>, _ request: Request) async -> RPCError? {
            await refusalOf(client, method, request)
        }
        let alphabet = #"session_id must be at most 128 of A-Z, a-z, 0-9, ".", "_", ":" and "-""#
        for id in ["two words", "\u{1B}[2Jcleared", "a/b", "tab\there", "\u{202E}txt", String(repeating: "x", count: 129)] {
            let refused = await refusal(Sessions.createSession, CreateSessionRequest(sessionID: id, reasoning: "r"))
            #expect(refused?.code == .invalidArgument && refused?.message == alphabet, "\(id.debugDescription)")
        }
        _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "Ok.id_1:x-Y", reasoning: "r"))

        let manyLabels = Dictionary(uniqueKeysWithValues: (0..<65).map { ("k\($0)", "v") })
        #expect(
            await refusal(Sessions.createSession, CreateSessionRequest(sessionID: "l1", labels: manyLabels, reasoning: "r"))?
                .message == "labels holds 65 labels; at most 64")
        for labels in [["": "v"], [String(repeating: "k", count: 129): "v"], ["k": String(repeating: "v", count: 1025)]] {
            let refused = await refusal(Sessions.createSession, CreateSessionRequest(sessionID: "l2", labels: labels, reasoning: "r"))
            #expect(refused?.code == .invalidArgument && refused?.message.hasPrefix("a label's key must be 1 to 128 bytes") == true)
        }

        let big = String(repeating: "r", count: 262_145)
        let bigReasoning = await refusal(Sessions.createSession, CreateSessionRequest(sessionID: "r1", reasoning: big))
        #expect(bigReasoning?.message == "reasoning is 262145 bytes; the limit is 262144")
        let bigUpdate = await refusal(
            Sessions.updateState, UpdateStateRequest(sessionID: "Ok.id_1:x-Y", reasoning: big, change: .mergePatchJSON("{}")))
        #expect(bigUpdate?.message == "reasoning is 262145 bytes; the limit is 262144")
        let bigMetadata = await refusal(
            Sessions.addMemory,
            AddMemoryRequest(sessionID: "Ok.id_1:x-Y", content: "c", metadataJSON: #"{"m":"\#(big)"}"#, reasoning: "r"))
        #expect(bigMetadata?.message == "metadata_json is 262153 bytes; the limit is 262144")
        let bigMemoryReasoning = await refusal(
            Sessions.addMemory, AddMemoryRequest(sessionID: "Ok.id_1:x-Y", content: "c", reasoning: big))
        #expect(bigMemoryReasoning?.message == "reasoning is 262145 bytes; the limit is 262144")

        // A session's memories hold 1 MiB at most (GetContext returns them all).
        let memory = String(repeating: "m", count: 200_000)
        for _ in 1...5 {
            _ = try await client.call(Sessions.addMemory, AddMemoryRequest(sessionID: "Ok.id_1:x-Y", content: memory, reasoning: "r"))
        }
        let full = await refusal(Sessions.addMemory, AddMemoryRequest(sessionID: "Ok.id_1:x-Y", content: memory, reasoning: "r"))
        #expect(full?.code == .resourceExhausted)
        #expect(full?.message == "the memories of session Ok.id_1:x-Y hold 1000010 bytes; this one (200002 bytes) would pass the limit of 1048576")
        #expect(try await client.call(Sessions.getContext, GetContextRequest(sessionID: "Ok.id_1:x-Y")).memories.count == 5)

        // A turn's source comes from who wrote it: the server's and operators' turns carry it in their metadata.
        for metadata in [#"{"source":"operator"}"#, #"{"x":{"source":"system"}}"#, #"{"a":1, "source" : "operator"}"#] {
            let spoofed = await refusal(
                Sessions.addTurn, AddTurnRequest(sessionID: "Ok.id_1:x-Y", input: "i", output: "o", metadataJSON: metadata, reasoning: "r"))
            #expect(spoofed?.code == .invalidArgument && spoofed?.message.contains("metadata_json may not hold") == true, "\(metadata)")
        }
        _ = try await client.call(
            Sessions.addTurn,
            AddTurnRequest(sessionID: "Ok.id_1:x-Y", input: "i", output: "o", metadataJSON: #"{"source":"web"}"#, reasoning: "r"))
        let context = try await client.call(Sessions.getContext, GetContextRequest(sessionID: "Ok.id_1:x-Y"))
        #expect(context.turns.map(\.source) == [.agent])
        await client.close()
        await running.stop()
    }

    @Test("a merge patch is held to the state size limit even when it changes nothing, and nothing of it is stored")
    func patchSizeLimit() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, client, _) = try await startSessionsServer(fixtures)
        _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "p", stateJSON: #"{"a":1}"#, reasoning: "r"))
        // Deleting 40,000 keys that are not there changes nothing, in about 600 KB of patch.
        let keys = (0..<40_000).map { #""k\#($0)":null"# }.joined(separator: ",")
        let patch = "{\(keys)}"
        #expect(patch.utf8.count > SessionState.defaultSizeLimit)
        let refused = await refusalOf(
            client, Sessions.updateState, UpdateStateRequest(sessionID: "p", reasoning: "r", change: .mergePatchJSON(patch)))
        #expect(refused?.code == .invalidArgument, "\(String(describing: refused))")
        #expect(refused?.message.contains("merge patch is") == true && refused?.message.contains("the state size limit") == true)
        let events = try await client.call(Sessions.listEvents, ListEventsRequest(sessionID: "p", pageSize: 10)).events
        #expect(events.map(\.action) == ["session.created"], "the refused patch reached the event log")
        let session = try await client.call(Sessions.getSession, GetSessionRequest(sessionID: "p")).session
        #expect(session?.version == 1)
        // One within the limit still goes through.
        let fine = try await client.call(
            Sessions.updateState, UpdateStateRequest(sessionID: "p", reasoning: "r", change: .mergePatchJSON(#"{"b":2}"#)))
        #expect(fine.version == 2)
        await running.stop()
    }

    @Test("GetContext of turns too big for one frame answers with the latest that fit, not RESOURCE_EXHAUSTED")
    func contextOfBigTurns() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, client, _) = try await startSessionsServer(fixtures)
        _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "big", reasoning: "start"))
        // 24 turns of 256 KiB of output each: 6 MiB, past the 4 MiB frame.
        let output = String(repeating: "o", count: 256 * 1024)
        for i in 1...24 {
            _ = try await client.call(Sessions.addTurn, AddTurnRequest(sessionID: "big", input: "q\(i)", output: output, reasoning: "r"))
        }
        let context = try await client.call(Sessions.getContext, GetContextRequest(sessionID: "big"))
        #expect(context.totalTurns == 24)
        #expect(context.turns.count >= 8 && context.turns.count < 24, "\(context.turns.count) turns")
        #expect(context.turns.last?.input == "q24")
        #expect(context.turns.map(\.sequence) == Array((25 - Int64(context.turns.count))...24))
        await client.close()
        await running.stop()
    }

    @Test("over TLS, a newest-first page of a long session that ran out of walk is short, and its token goes on")
    func scanLimitOverTLS() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, client, store) = try await startSessionsServer(fixtures)
        _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "long", reasoning: "start"))
        // 12,000 events more, in one transaction; the rare action at seq 100 and 11,000.
        try await store.write { db in
            for seq in Int64(2)...12_001 {
                _ = try SQLiteStore.append(
                    db, tenant: TenantID("acme"), sessionID: "long",
                    event: NewEvent(
                        action: seq == 100 || seq == 11_000 ? "rare.thing" : "session.state_updated", actor: "a", reasoning: "r",
                        detailsJSON: "{}", occurredAtMs: 1000 + seq))
            }
        }
        var request = ListEventsRequest(sessionID: "long", actions: ["rare.thing"], order: .newestFirst, pageSize: 10)
        var pages: [[Int64]] = []
        repeat {
            let page = try await client.call(Sessions.listEvents, request)
            pages.append(page.events.map(\.sequence))
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty && pages.count < 10
        #expect(pages == [[11_000], [100]])
        await client.close()
        await running.stop()
    }

    @Test("60 turns and 2 memories: GetContext returns the latest turns oldest first, the memories and the total")
    func context() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, client, store) = try await startSessionsServer(fixtures)
        _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "chat", reasoning: "start"))
        for i in 1...60 {
            let added = try await client.call(
                Sessions.addTurn,
                AddTurnRequest(sessionID: "chat", input: "question \(i)", output: "answer \(i)", metadataJSON: #"{"i":\#(i)}"#, reasoning: "turn"))
            #expect(added.turn?.sequence == Int64(i))
        }
        _ = try await client.call(Sessions.addMemory, AddMemoryRequest(sessionID: "chat", content: "prefers aisle seats", reasoning: "said so"))
        _ = try await client.call(Sessions.addMemory, AddMemoryRequest(sessionID: "chat", content: "vegetarian", reasoning: "said so"))

        let defaults = try await client.call(Sessions.getContext, GetContextRequest(sessionID: "chat"))
        #expect(defaults.turns.count == 50, "the default limit is 50")
        #expect(defaults.turns.first?.input == "question 11")
        #expect(defaults.turns.last?.input == "question 60")
        #expect(defaults.totalTurns == 60)
        #expect(defaults.memories.map(\.content) == ["prefers aisle seats", "vegetarian"])
        #expect(defaults.turns.last?.author == Identity(tenantID: "acme", role: .agent, name: "agent"))

        let three = try await client.call(Sessions.getContext, GetContextRequest(sessionID: "chat", turnLimit: 3))
        #expect(three.turns.map(\.sequence) == [58, 59, 60])

        // Above the maximum (500) is lowered to it, as sessions.proto says; negative is refused.
        let lowered = try await client.call(Sessions.getContext, GetContextRequest(sessionID: "chat", turnLimit: 100_000))
        #expect(lowered.turns.count == 60)
        let negative = await #expect(throws: RPCError.self) {
            _ = try await client.call(Sessions.getContext, GetContextRequest(sessionID: "chat", turnLimit: -1))
        }
        #expect(negative?.code == .invalidArgument)
        #expect(negative?.message.contains("turn_limit must not be negative, not -1") == true)
        let missing = await #expect(throws: RPCError.self) {
            _ = try await client.call(Sessions.addTurn, AddTurnRequest(sessionID: "ghost", input: "x", reasoning: "r"))
        }
        #expect(missing?.code == .notFound)
        let badMetadata = await #expect(throws: RPCError.self) {
            _ = try await client.call(Sessions.addTurn, AddTurnRequest(sessionID: "chat", metadataJSON: "[1]", reasoning: "r"))
        }
        #expect(badMetadata?.message.contains("metadata_json must be a JSON object") == true)

        let events = try await store.events(tenant: TenantID("acme"), sessionID: "chat")
        #expect(events.count == 1 + 60 + 2)
        #expect(events.filter { $0.event.action == "session.turn_added" }.count == 60)
        #expect(EventChain.verify(events) == nil)
        await client.close()
        await running.stop()
    }
}

@Suite("ListEvents over TLS")
struct ListEventsTests {
    @Test("filters by session, action and time; pages in both orders without gaps or repeats")
    func paging() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let store = try SQLiteStore(path: (fixtures.directory as NSString).appendingPathComponent("handoff.sqlite"))
        let clock = ManualClock()
        var registry = MethodRegistry()
        registry.registerSessions(SessionService(store: store, clock: { clock.tick() }))
        let running = try await RunningServer(.init(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS()), registry: registry)
        let client = try running.client(fixtures.clientTLS(role: "agent"))
        for s in ["a", "b"] {
            _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: s, reasoning: "start"))
            for v in 1...6 {
                _ = try await client.call(
                    Sessions.updateState,
                    UpdateStateRequest(sessionID: s, reasoning: "v\(v)", change: .mergePatchJSON(#"{"v":\#(v)}"#)))
            }
        }
        // 14 events: 2 created + 12 updates, at times 1...14.
        func all(_ base: ListEventsRequest) async throws -> [Event] {
            var request = base
            var out: [Event] = []
            while true {
                let page = try await client.call(Sessions.listEvents, request)
                out += page.events
                if page.nextPageToken.isEmpty { return out }
                request.pageToken = page.nextPageToken
            }
        }
        let oldest = try await all(ListEventsRequest(pageSize: 4))
        #expect(oldest.count == 14)
        #expect(oldest.map(\.occurredAtUnixMs) == Array(1...14))
        let newest = try await all(ListEventsRequest(order: .newestFirst, pageSize: 5))
        #expect(newest.map(\.occurredAtUnixMs) == Array((1...14).reversed()))
        let onlyA = try await all(ListEventsRequest(sessionID: "a", actions: ["session.state_updated"], pageSize: 2))
        #expect(onlyA.count == 6)
        #expect(onlyA.allSatisfy { $0.sessionID == "a" && $0.action == "session.state_updated" })
        let window = try await all(ListEventsRequest(sinceUnixMs: 3, untilUnixMs: 6, pageSize: 10))
        #expect(window.map(\.occurredAtUnixMs) == [3, 4, 5])
        let bad = await #expect(throws: RPCError.self) {
            _ = try await client.call(Sessions.listEvents, ListEventsRequest(pageToken: "not-a-token"))
        }
        #expect(bad?.code == .invalidArgument)
        // Above the maximum (500) is lowered to it (common.proto, "Paging"); negative is refused.
        let lowered = try await client.call(Sessions.listEvents, ListEventsRequest(pageSize: 10_000))
        #expect(!lowered.events.isEmpty && lowered.events.count <= 500)
        let negativePage = await #expect(throws: RPCError.self) {
            _ = try await client.call(Sessions.listEvents, ListEventsRequest(pageSize: -5))
        }
        #expect(negativePage?.code == .invalidArgument)
        #expect(negativePage?.message.contains("page_size must not be negative, not -5") == true)
        // Tokens are the caller's input: one this server could not have issued
        // is refused, and one past the end of a session is an empty page (its
        // sequence Int64.max once overflowed the walk and stopped the server).
        func token(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
        let negative = await #expect(throws: RPCError.self) {
            _ = try await client.call(Sessions.listEvents, ListEventsRequest(sessionID: "a", pageToken: token("0:-5:a")))
        }
        #expect(negative?.code == .invalidArgument)
        for order in [EventOrder.oldestFirst, .newestFirst] {
            let past = try await client.call(
                Sessions.listEvents, ListEventsRequest(sessionID: "a", order: order, pageSize: 3, pageToken: token("0:\(Int64.max):a")))
            #expect(past.events.map(\.sequence) == (order == .oldestFirst ? [] : [7, 6, 5]))
        }
        // One session newest first pages with tokens that say where to resume (masked);
        // listings across sessions, or oldest first, issue tokens without that.
        let newestOfA = try await all(ListEventsRequest(sessionID: "a", order: .newestFirst, pageSize: 2))
        #expect(newestOfA.map(\.sequence) == Array((1...7).reversed()))
        func issued(_ request: ListEventsRequest) async throws -> String {
            let page = try await client.call(Sessions.listEvents, request)
            return String(decoding: try #require(Data(base64Encoded: page.nextPageToken)), as: UTF8.self)
        }
        #expect(try await issued(ListEventsRequest(sessionID: "a", order: .newestFirst, pageSize: 2)).hasPrefix("p:"))
        #expect(try await !issued(ListEventsRequest(sessionID: "a", pageSize: 2)).hasPrefix("p:"))
        #expect(try await !issued(ListEventsRequest(order: .newestFirst, pageSize: 2)).hasPrefix("p:"))
        for malformed in ["p:", "p:5:", "p:x:0:4:a"] {
            let refused = await #expect(throws: RPCError.self) {
                _ = try await client.call(Sessions.listEvents, ListEventsRequest(sessionID: "a", pageToken: token(malformed)))
            }
            #expect(refused?.code == .invalidArgument, "\(malformed)")
        }
        #expect(
            try await client.call(
                Sessions.listEvents, ListEventsRequest(sessionID: "a", order: .newestFirst, pageToken: token("p:5:0:4:a:b"))
            ).events.map(\.sequence) == [3, 2, 1])
        // A token that says where its event is resumes there; a made-up place is ignored.
        let madeUp = try await client.call(
            Sessions.listEvents, ListEventsRequest(sessionID: "a", order: .newestFirst, pageSize: 3, pageToken: token("p:999999:0:4:a")))
        #expect(madeUp.events.map(\.sequence) == [3, 2, 1])
        let manyActions = await #expect(throws: RPCError.self) {
            _ = try await client.call(
                Sessions.listEvents,
                ListEventsRequest(sessionID: "a", actions: (0...SessionService.maximumListedActions).map { "a\($0)" }))
        }
        #expect(manyActions?.code == .invalidArgument)
        #expect(manyActions?.message.contains("at most 100 may be listed") == true)
        #expect(
            try await client.call(
                Sessions.listEvents,
                ListEventsRequest(sessionID: "a", actions: (1..<SessionService.maximumListedActions).map { "a\($0)" } + ["session.created"])
            ).events.map(\.action) == ["session.created"])
        await client.close()
        await running.stop()
    }
}

/// A clock that moves one millisecond per reading, so event times are known.
final class ManualClock: Sendable {
    private let now = Mutex<Int64>(0)
    func tick() -> Int64 {
        now.withLock {
            $0 += 1
            return $0
        }
    }
}

@Suite("Sessions under concurrent calls")
struct SessionsOnEventLoopsTests {
    @Test("64 callers over 4 connections updating 4 sessions: every call completes, each applied once")
    func concurrentUpdatesOnLoops() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let store = try SQLiteStore(path: fixtures.path("handoff.sqlite"))
        var registry = MethodRegistry()
        let sessions = SessionService(store: store)
        registry.registerSessions(sessions)
        let running = try await RunningServer(.init(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS()), registry: registry)
        let clients = try (0..<4).map { _ in try running.client(fixtures.clientTLS(role: "agent")) }
        let client = clients[0]
        for i in 0..<4 {
            _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "s\(i)", reasoning: "r"))
        }
        // Calls from every connection's loop meet in the same session actors
        // (a custom-executor version of them hung here now and then).
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<64 {
                group.addTask {
                    for step in 0..<16 {
                        _ = try await clients[worker % 4].call(
                            Sessions.updateState,
                            UpdateStateRequest(
                                sessionID: "s\((worker + step) % 4)", reasoning: "r",
                                change: .mergePatchJSON(#"{"w\#(worker)":\#(step)}"#)))
                    }
                }
            }
            try await group.waitForAll()
        }
        var versions: Int64 = 0
        for i in 0..<4 {
            versions += try await client.call(Sessions.getSession, GetSessionRequest(sessionID: "s\(i)")).session?.version ?? 0
        }
        #expect(versions == 4 + 64 * 16)
        await running.stop()
    }
}
