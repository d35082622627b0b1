// Handoff — the session service over the real SQLite store: changes to one
// session apply in order, stale versions are refused, memory stays bounded.

import Foundation
import HandoffCore
import Synchronization
import Testing

@testable import HandoffSQLite

@Suite("Session service")
struct SessionServiceTests {
    private let caller = Caller(tenant: .default, identity: "handoff://tenant/default/agent/bot")

    private func service(ceiling: Int = 10_000) throws -> (SessionService, SQLiteStore, String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("handoff-\(UUID().uuidString).sqlite").path
        let store = try SQLiteStore(path: path)
        var configuration = SessionService.Configuration()
        configuration.residentCeiling = ceiling
        return (SessionService(store: store, configuration: configuration), store, path)
    }

    @Test("50 concurrent patches to one session all apply, in some order, each once")
    func concurrentPatchesApplyInOrder() async throws {
        let (sessions, store, path) = try service()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await sessions.create(id: "s", stateJSON: "{}", labels: [:], reasoning: "start", caller: caller)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<50 {
                group.addTask {
                    _ = try await sessions.updateState(
                        id: "s", change: .mergePatch(.object(["k\(i)": .integer(Int64(i))])), reasoning: "add k\(i)",
                        expectedVersion: nil, caller: caller)
                }
            }
            try await group.waitForAll()
        }
        let record = try await sessions.get(id: "s", caller: caller)
        #expect(record.version == 51)
        #expect(try JSONValue(parsing: record.stateJSON).objectValue?.count == 50)
        let events = try await store.events(tenant: .default, sessionID: "s")
        #expect(events.count == 51)
        #expect(EventChain.verify(events) == nil)
        #expect(events.last?.event.actor == caller.identity)
    }

    /// An update of session "s" that keeps the session's turn, with the
    /// store's writer held, until `release` lets its write commit.
    private func firstUpdateHoldingTheTurn(
        _ sessions: SessionService, _ store: SQLiteStore
    ) async throws -> (first: Task<SessionRecord, any Error>, release: @Sendable () async throws -> Void) {
        let gate = DispatchSemaphore(value: 0)
        let held = Mutex(false)
        let holding = Task {
            try await store.write { _ in
                held.withLock { $0 = true }
                gate.wait()
            }
        }
        while !held.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        let caller = caller
        let first = Task {
            try await sessions.updateState(
                id: "s", change: .mergePatch(.object(["a": .integer(1)])), reasoning: "first", expectedVersion: nil, caller: caller)
        }
        while store._testOnly_waitingWrites < 1 { try await Task.sleep(for: .milliseconds(5)) }
        return (
            first,
            {
                gate.signal()
                try await holding.value
            }
        )
    }

    @Test("a change whose call ended (cancelled, past its deadline) while it waited for the session's turn changes nothing")
    func cancelledWhileWaitingForTheTurn() async throws {
        let (sessions, store, path) = try service()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await sessions.create(id: "s", stateJSON: "{}", labels: [:], reasoning: "start", caller: caller)
        // The store's writer held: the first update keeps the session's turn until it commits.
        let (first, release) = try await firstUpdateHoldingTheTurn(sessions, store)
        // The second waits for the turn (or has not reached it yet); its call ends.
        let second = Task {
            try await sessions.updateState(
                id: "s", change: .mergePatch(.object(["b": .integer(2)])), reasoning: "second", expectedVersion: nil, caller: caller)
        }
        second.cancel()
        try await release()
        #expect(try await first.value.version == 2)
        let refused = await second.result
        guard case .failure(let error as HandoffError) = refused, case .callEnded = error else {
            Issue.record("expected HandoffError.callEnded, got \(refused)")
            return
        }
        let record = try await sessions.get(id: "s", caller: caller)
        #expect(record.version == 2)
        #expect(record.stateJSON == #"{"a":1}"#)
        #expect(try await store.events(tenant: .default, sessionID: "s").count == 2)
        // The session goes on: the next change takes the turn.
        _ = try await sessions.updateState(
            id: "s", change: .mergePatch(.object(["c": .integer(3)])), reasoning: "third", expectedVersion: 2, caller: caller)
    }

    @Test("GetContext leaves out the oldest turns asked for that do not fit its answer's bytes; state, memories and the total stay")
    func contextFitsItsAnswer() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("handoff-\(UUID().uuidString).sqlite").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var configuration = SessionService.Configuration()
        configuration.contextResponseBytes = 10_000
        let sessions = SessionService(store: try SQLiteStore(path: path), configuration: configuration)
        _ = try await sessions.create(id: "s", stateJSON: #"{"a":1}"#, labels: [:], reasoning: "start", caller: caller)
        _ = try await sessions.addMemory(id: "s", content: "likes tea", metadataJSON: "", reasoning: "r", caller: caller)
        for i in 1...10 {
            _ = try await sessions.addTurn(
                id: "s", input: "q\(i)", output: String(repeating: "o", count: 3_000), metadataJSON: "", reasoning: "r", caller: caller)
        }
        // Three turns of some 3 KB fit in 10,000 bytes beside the rest; the latest three, oldest first.
        let context = try await sessions.context(id: "s", turnLimit: 10, caller: caller)
        #expect(context.turns.map(\.input) == ["q8", "q9", "q10"])
        #expect(context.totalTurns == 10)
        #expect(context.memories.map(\.content) == ["likes tea"])
        #expect(context.session.stateJSON == #"{"a":1}"#)
        // What fits is not touched.
        #expect(try await sessions.context(id: "s", turnLimit: 2, caller: caller).turns.map(\.input) == ["q9", "q10"])
    }

    @Test("a session holds at most 1,000 memories: the next is RESOURCE_EXHAUSTED and changes nothing")
    func memoryCount() async throws {
        let (sessions, store, path) = try service()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await sessions.create(id: "s", stateJSON: "{}", labels: [:], reasoning: "start", caller: caller)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<50 {
                group.addTask {
                    for i in 0..<20 {
                        _ = try await sessions.addMemory(id: "s", content: "m\(worker)-\(i)", metadataJSON: "", reasoning: "r", caller: caller)
                    }
                }
            }
            try await group.waitForAll()
        }
        await #expect(throws: HandoffError.limitReached("session s holds 1000 memories, the most it may")) {
            _ = try await sessions.addMemory(id: "s", content: "one more", metadataJSON: "", reasoning: "r", caller: caller)
        }
        #expect(try await sessions.context(id: "s", turnLimit: 1, caller: caller).memories.count == 1_000)
        #expect(try await store.events(tenant: .default, sessionID: "s").count == 1_001)
    }

    @Test("a change beside the session (a ticket, an approval) still runs when its call ended while it waited: it may complete one already committed")
    func changeBesideIgnoresCancellation() async throws {
        let (sessions, store, path) = try service()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await sessions.create(id: "s", stateJSON: "{}", labels: [:], reasoning: "start", caller: caller)
        let (first, release) = try await firstUpdateHoldingTheTurn(sessions, store)
        let ran = Mutex(false)
        let beside = Task {
            try await sessions.changeBeside(id: "s", caller: caller) { () throws(HandoffError) -> (Bool, status: SessionRecord.Status?) in
                ran.withLock { $0 = true }
                return (true, status: nil)
            }
        }
        beside.cancel()
        try await release()
        _ = try await first.value
        #expect(try await beside.value)
        #expect(ran.withLock { $0 })
    }

    @Test("one session's events newest first: a page walks at most 10,000 events; one that ran out says where to go on, even empty")
    func listingWalkBudget() async throws {
        let (sessions, store, path) = try service()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await sessions.create(id: "s", stateJSON: "{}", labels: [:], reasoning: "start", caller: caller)
        // 12,000 events more; the rare action at seq 100 and 11,000.
        try await store.write { db in
            for seq in Int64(2)...12_001 {
                let action = seq == 100 || seq == 11_000 ? "rare.thing" : "session.state_updated"
                _ = try SQLiteStore.append(
                    db, tenant: .default, sessionID: "s",
                    event: NewEvent(action: action, actor: "a", reasoning: "r", detailsJSON: "{}", occurredAtMs: 1000 + seq))
            }
        }
        var query = EventQuery()
        query.sessionID = "s"
        query.newestFirst = true
        query.actions = ["rare.thing"]
        // From the head (12,001) the first page walks down to 2,002: one match, and a token.
        let first = try await sessions.listEvents(query: query, caller: caller)
        #expect(first.events.map(\.sequence) == [11_000])
        #expect(first.next?.sequence == 2_002)
        query.after = first.next
        let second = try await sessions.listEvents(query: query, caller: caller)
        #expect(second.events.map(\.sequence) == [100])
        #expect(second.next == nil)
        // Nothing matches: an empty page that goes on, then the end.
        query.actions = ["never.happens"]
        query.after = nil
        let empty = try await sessions.listEvents(query: query, caller: caller)
        #expect(empty.events.isEmpty && empty.next?.sequence == 2_002)
        query.after = empty.next
        let end = try await sessions.listEvents(query: query, caller: caller)
        #expect(end.events.isEmpty && end.next == nil)
        // Without a filter a page fills long before the budget.
        query.actions = []
        query.after = nil
        query.limit = 3
        let latest = try await sessions.listEvents(query: query, caller: caller)
        #expect(latest.events.map(\.sequence) == [12_001, 12_000, 11_999] && latest.next?.sequence == 11_999)
    }

    @Test("an expected version that is stale is ABORTED and changes nothing")
    func staleVersion() async throws {
        let (sessions, _, path) = try service()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await sessions.create(id: "s", stateJSON: #"{"a":1}"#, labels: [:], reasoning: "start", caller: caller)
        _ = try await sessions.updateState(
            id: "s", change: .mergePatch(.object(["a": .integer(2)])), reasoning: "r", expectedVersion: 1, caller: caller)
        await #expect(throws: HandoffError.staleVersion("stale version: expected 1, the session is at 2")) {
            _ = try await sessions.updateState(
                id: "s", change: .mergePatch(.object(["a": .integer(3)])), reasoning: "r", expectedVersion: 1, caller: caller)
        }
        #expect(try await sessions.get(id: "s", caller: caller).stateJSON == #"{"a":2}"#)
    }

    @Test("resident actors stay under the ceiling however many sessions are touched")
    func ceiling() async throws {
        let (sessions, _, path) = try service(ceiling: 8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        for i in 0..<40 {
            _ = try await sessions.create(id: "s\(i)", stateJSON: "{}", labels: [:], reasoning: "r", caller: caller)
            _ = try await sessions.get(id: "s\(i)", caller: caller)
        }
        #expect(sessions.residentCount <= 8)
        // An evicted session still answers, from the store.
        #expect(try await sessions.get(id: "s0", caller: caller).id == "s0")
    }

    @Test("reasoning is required", arguments: ["", "   \n"])
    func reasoningRequired(_ reasoning: String) async throws {
        let (sessions, _, path) = try service()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await sessions.create(id: "s", stateJSON: "{}", labels: [:], reasoning: "start", caller: caller)
        await #expect(throws: HandoffError.invalid("reasoning is required: say why the state changes")) {
            _ = try await sessions.updateState(
                id: "s", change: .replacement(.object([:])), reasoning: reasoning, expectedVersion: nil, caller: caller)
        }
    }
}

@Suite("Session context from the resident actor")
struct SessionContextCacheTests {
    private let caller = Caller(tenant: .default, identity: "handoff://tenant/default/agent/bot")

    private func service(cacheBytes: Int = 32 * 1024, ceiling: Int = 10_000) throws -> (SessionService, SQLiteStore, String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("handoff-\(UUID().uuidString).sqlite").path
        let store = try SQLiteStore(path: path)
        var configuration = SessionService.Configuration()
        configuration.contextCacheBytes = cacheBytes
        configuration.residentCeiling = ceiling
        return (SessionService(store: store, configuration: configuration), store, path)
    }

    /// The context as the store alone has it: what every answer must equal.
    private func fromStore(_ store: SQLiteStore, _ id: String, _ limit: Int) async throws -> SessionContext {
        try #require(try await store.context(tenant: .default, sessionID: id, turnLimit: limit))
    }

    @Test(
        "every answer equals the store's, whatever the cache budget, as turns and memories arrive",
        arguments: [0, 600, 32 * 1024])
    func matchesStore(_ cacheBytes: Int) async throws {
        let (sessions, store, path) = try service(cacheBytes: cacheBytes)
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await sessions.create(id: "s", stateJSON: #"{"n":0}"#, labels: [:], reasoning: "start", caller: caller)
        for step in 1...60 {
            _ = try await sessions.addTurn(
                id: "s", input: "question \(step)", output: String(repeating: "a", count: step), metadataJSON: "",
                reasoning: "r", caller: caller)
            if step % 7 == 0 {
                _ = try await sessions.addMemory(id: "s", content: "fact \(step)", metadataJSON: "", reasoning: "r", caller: caller)
                _ = try await sessions.updateState(
                    id: "s", change: .mergePatch(.object(["n": .integer(Int64(step))])), reasoning: "r", expectedVersion: nil,
                    caller: caller)
            }
            for limit in [1, 5, 50, 60, 100] where step % 10 == 0 || limit == 5 {
                let answer = try await sessions.context(id: "s", turnLimit: limit, caller: caller)
                let expected = try await fromStore(store, "s", limit)
                #expect(answer == expected, "step \(step), limit \(limit)")
            }
        }
        let last = try await sessions.context(id: "s", turnLimit: 0, caller: caller)
        #expect(last.turns.count == 50)
        #expect(last.turns.last?.output == String(repeating: "a", count: 60))
        #expect(last.totalTurns == 60)
        #expect(last.memories.count == 8)
        #expect(last.session.stateJSON == #"{"n":56}"#)
    }

    @Test("an unknown id leaves no resident actor behind")
    func unknownLeavesNothing() async throws {
        let (sessions, _, path) = try service()
        defer { try? FileManager.default.removeItem(atPath: path) }
        for i in 0..<20 {
            await #expect(throws: HandoffError.notFound("session ghost\(i) not found")) {
                _ = try await sessions.context(id: "ghost\(i)", turnLimit: 0, caller: caller)
            }
        }
        #expect(sessions.residentCount == 0)
        // Created after a miss, the session is found at once.
        _ = try await sessions.create(id: "ghost0", stateJSON: "{}", labels: [:], reasoning: "r", caller: caller)
        #expect(try await sessions.get(id: "ghost0", caller: caller).version == 1)
    }

    @Test("eviction under concurrent writes loses nothing: every turn is in the context afterwards")
    func evictionUnderLoad() async throws {
        let (sessions, store, path) = try service(ceiling: 4)
        defer { try? FileManager.default.removeItem(atPath: path) }
        for i in 0..<16 {
            _ = try await sessions.create(id: "s\(i)", stateJSON: "{}", labels: [:], reasoning: "r", caller: caller)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<16 {
                group.addTask {
                    for step in 0..<10 {
                        let id = "s\((worker + step) % 16)"
                        _ = try await sessions.addTurn(
                            id: id, input: "w\(worker) s\(step)", output: "", metadataJSON: "", reasoning: "r", caller: caller)
                        _ = try await sessions.context(id: id, turnLimit: 0, caller: caller)
                    }
                }
            }
            try await group.waitForAll()
        }
        var total: Int64 = 0
        for i in 0..<16 {
            let answer = try await sessions.context(id: "s\(i)", turnLimit: 500, caller: caller)
            #expect(answer == (try await fromStore(store, "s\(i)", 500)))
            total += answer.totalTurns
        }
        #expect(total == 160)
        #expect(sessions.residentCount <= 4)
    }
}
