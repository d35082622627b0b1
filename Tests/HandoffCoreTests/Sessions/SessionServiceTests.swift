// Handoff — the session service over the real SQLite store: changes to one
// session apply in order, stale versions are refused, memory stays bounded.

import Foundation
import HandoffCore
import HandoffSQLite
import Testing

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

    @Test("an expected version that is stale is ABORTED and changes nothing")
    func staleVersion() async throws {
        let (sessions, _, path) = try service()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await sessions.create(id: "s", stateJSON: #"{"a":1}"#, labels: [:], reasoning: "start", caller: caller)
        _ = try await sessions.updateState(id: "s", change: .mergePatch(.object(["a": .integer(2)])), reasoning: "r", expectedVersion: 1, caller: caller)
        await #expect(throws: SessionError.aborted("stale version: expected 1, the session is at 2")) {
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
        #expect(await sessions.residentCount <= 8)
        // An evicted session still answers, from the store.
        #expect(try await sessions.get(id: "s0", caller: caller).id == "s0")
    }

    @Test("reasoning is required", arguments: ["", "   \n"])
    func reasoningRequired(_ reasoning: String) async throws {
        let (sessions, _, path) = try service()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await sessions.create(id: "s", stateJSON: "{}", labels: [:], reasoning: "start", caller: caller)
        await #expect(throws: SessionError.invalidArgument("reasoning is required: say why the state changes")) {
            _ = try await sessions.updateState(id: "s", change: .replacement(.object([:])), reasoning: reasoning, expectedVersion: nil, caller: caller)
        }
    }
}
