// Handoff — the event hash is a stored format: every store's chains were
// hashed this way, so a change to how it is computed must not change a bit.

import HandoffCore
import Testing

@Suite("Event chain")
struct EventChainTests {
    @Test("the hash of a known event is the one the documented format gives (computed independently, with Python's hashlib)")
    func knownAnswer() {
        let event = NewEvent(
            action: "session.state_updated", actor: "agent:é", reasoning: "why", detailsJSON: #"{"a":1}"#, occurredAtMs: 1_700_000_000_123)
        let hash = EventChain.hash(
            tenant: TenantID("t1"), sessionID: "s1", sequence: 7, event: event, previousHash: [UInt8](repeating: 0xAB, count: 32))
        let hex = hash.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        #expect(hex == "2881a39f5d5baf04fdf0873a6985950d8a8f93417d15c99244e2dca7c503a611")
    }

    @Test("a traceparent joins the hash after the time, as two more texts; without one the hash is as before")
    func knownAnswerWithTrace() {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let event = NewEvent(
            action: "session.state_updated", actor: "agent:é", reasoning: "why", detailsJSON: #"{"a":1}"#, occurredAtMs: 1_700_000_000_123,
            traceparent: traceparent)
        let hash = EventChain.hash(
            tenant: TenantID("t1"), sessionID: "s1", sequence: 7, event: event, previousHash: [UInt8](repeating: 0xAB, count: 32))
        #expect(hash.hexString == "f66c1e2c4b5ba83c5698393de4e6131d2b8c1b50a2a672c23b350a7b2109f41c")
    }

    @Test("an event takes the calling task's trace context unless given one")
    func traceFromTask() async {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let outside = NewEvent(action: "a", actor: "b", reasoning: "", detailsJSON: "{}", occurredAtMs: 1)
        #expect(outside.traceparent == "")
        CallTrace.$traceparent.withValue(traceparent) {
            #expect(NewEvent(action: "a", actor: "b", reasoning: "", detailsJSON: "{}", occurredAtMs: 1).traceparent == traceparent)
            #expect(NewEvent(action: "a", actor: "b", reasoning: "", detailsJSON: "{}", occurredAtMs: 1, traceparent: "").traceparent == "")
        }
    }

    @Test(
        "only well-formed version-00 traceparents are taken",
        arguments: [
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", false),  // zero trace id
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false),  // zero parent id
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false),  // upper case
            ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true),  // a later version, read by its first four fields
            ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-later", true),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false),  // version ff is invalid
            ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", false),  // short
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false),
            ("", false), ("00--00f067aa0ba902b7-01", false), ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba9\u{0}2b7-01", false),
        ])
    func validation(value: String, valid: Bool) {
        #expect((CallTrace.validated(value) != nil) == valid)
        if valid { #expect(CallTrace.validated(value)?.utf8.count == 55) }
    }
}
