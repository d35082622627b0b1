// Handoff — what a call leaves for operators: its trace context on the
// events it writes (sent by the Swift client), and one observation per call.

import Foundation
import HandoffClient
import HandoffCore
import HandoffProto
import HandoffRPC
import HandoffSQLite
import HandoffServer
import Logging
import Synchronization
import Testing

@Suite("Call telemetry")
struct CallTelemetryTests {
    @Test("a traceparent sent by the Swift client is kept on the events its call writes; a malformed one is ignored")
    func traceparentOnEvents() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let store = try SQLiteStore(path: fixtures.path("handoff.sqlite"))
        var registry = MethodRegistry()
        registry.registerSessions(SessionService(store: store))
        let seen = Mutex<[CallOutcome]>([])
        registry.callObserver = { outcome in seen.withLock { $0.append(outcome) } }
        CallTelemetry(methodNames: registry.methodNames, logger: Logger(label: "test")).install(into: &registry, observe: false)
        #expect(registry.callObserver != nil, "observe: false leaves another observer alone")
        let running = try await RunningServer(.init(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS()), registry: registry)
        let client = try running.client(fixtures.clientTLS(role: "agent"))
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        var traced = CallOptions(timeout: .seconds(10))
        traced.traceparent = traceparent
        #expect(traced.traceparent == traceparent)
        _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "t", reasoning: "r"), options: traced)
        var malformed = CallOptions(timeout: .seconds(10))
        malformed.traceparent = "00-XYZ"
        _ = try await client.call(
            Sessions.updateState, UpdateStateRequest(sessionID: "t", reasoning: "r", change: .mergePatchJSON(#"{"a":1}"#)), options: malformed)
        _ = try await client.call(Sessions.updateState, UpdateStateRequest(sessionID: "t", reasoning: "r", change: .mergePatchJSON(#"{"b":1}"#)))
        let events = try await client.call(Sessions.listEvents, ListEventsRequest(sessionID: "t")).events
        #expect(events.map(\.traceparent) == [traceparent, "", ""])
        let verified = try await client.call(Admin.verifyAuditChain, VerifyAuditChainRequest(sessionID: "t"))
        #expect(verified.ok && verified.eventsChecked == 3, "the traceparent is part of the chained hash")
        await client.close()
        await running.stop()
        let outcomes = seen.withLock { $0 }
        #expect(outcomes.count == 5 && outcomes.allSatisfy { $0.code == .ok && $0.registered })
        #expect(
            outcomes.map(\.method) == [
                "handoff.v1.Sessions/CreateSession", "handoff.v1.Sessions/UpdateState", "handoff.v1.Sessions/UpdateState",
                "handoff.v1.Sessions/ListEvents", "handoff.v1.Admin/VerifyAuditChain",
            ])
    }
}
