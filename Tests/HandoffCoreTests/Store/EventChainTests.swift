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
}
