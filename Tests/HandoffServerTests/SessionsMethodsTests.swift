// Handoff — handoff.v1.Sessions over real TLS, into a real SQLite file.

import Foundation
import HandoffClient
import HandoffCore
import HandoffProto
import HandoffRPC
import HandoffServer
import HandoffSQLite
import Testing

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
            UpdateStateRequest(sessionID: "s-1", reasoning: "added an item", expectedVersion: 1,
                               change: .mergePatchJSON(#"{"cart":{"items":2},"step":"checkout"}"#)))
        #expect(patched.version == 2)
        #expect(patched.stateJSON == #"{"cart":{"items":2},"step":"checkout"}"#)

        let replaced = try await client.call(
            Sessions.updateState, UpdateStateRequest(sessionID: "s-1", reasoning: "reset", change: .replacementJSON(#"{"fresh":true}"#)))
        #expect(replaced.version == 3)
        #expect(try await client.call(Sessions.getSession, GetSessionRequest(sessionID: "s-1")).session?.stateJSON == #"{"fresh":true}"#)

        func refusal(_ request: UpdateStateRequest) async -> RPCError? {
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
        #expect(try await client.call(Sessions.getSession, GetSessionRequest(sessionID: "s-1")).session?.version == 3,
                "a refused call changed the session")

        // The events carry the caller's certificate identity and chain intact.
        let events = try await store.events(tenant: .default, sessionID: "s-1")
        #expect(events.map(\.event.action) == ["session.created", "session.state_updated", "session.state_updated"])
        #expect(events.allSatisfy { $0.event.actor == "handoff://tenant/acme/agent/agent" })
        #expect(EventChain.verify(events) == nil)
        await client.close()
        await running.stop()
    }
}
