// Handoff — the per-session hash chain of events. Every store hashes the same
// way, so an audit can recompute the chain from any of them.

import Crypto

public enum EventChain {
    /// The previous hash of a session's first event.
    public static let genesis = [UInt8](repeating: 0, count: 32)

    /// SHA-256 over the event's fields, each as a 4-byte big-endian length and
    /// its UTF-8 bytes (integers as 8-byte big-endian), ending with the
    /// previous event's hash. Changing any field, the order, or a link breaks it.
    public static func hash(
        tenant: TenantID, sessionID: String, sequence: Int64, event: NewEvent, previousHash: [UInt8]
    ) -> [UInt8] {
        var hasher = SHA256()
        func text(_ s: String) {
            let bytes = Array(s.utf8)
            integer32(UInt32(bytes.count))
            hasher.update(data: bytes)
        }
        func integer32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { hasher.update(bufferPointer: $0) } }
        func integer64(_ v: Int64) { withUnsafeBytes(of: v.bigEndian) { hasher.update(bufferPointer: $0) } }
        text("handoff.event.v1")
        text(tenant.rawValue)
        text(sessionID)
        integer64(sequence)
        text(event.action)
        text(event.actor)
        text(event.reasoning)
        text(event.detailsJSON)
        integer64(event.occurredAtMs)
        hasher.update(data: previousHash)
        return Array(hasher.finalize())
    }

    /// Where a chain breaks, if it does.
    public struct Break: Sendable, Hashable, CustomStringConvertible {
        public var sequence: Int64
        public var reason: String
        public var description: String { "event \(sequence): \(reason)" }
    }

    /// Recomputes a session's chain (events oldest first) and names the first broken link.
    public static func verify(_ events: [EventRecord]) -> Break? {
        var previous = genesis
        for (index, record) in events.enumerated() {
            let expectedSequence = Int64(index + 1)
            if record.sequence != expectedSequence {
                return Break(sequence: record.sequence, reason: "sequence \(record.sequence) where \(expectedSequence) was expected")
            }
            if record.previousHash != previous {
                return Break(sequence: record.sequence, reason: "previous hash does not match event \(record.sequence - 1)")
            }
            let recomputed = hash(
                tenant: record.tenant, sessionID: record.sessionID, sequence: record.sequence, event: record.event,
                previousHash: record.previousHash)
            if recomputed != record.hash {
                return Break(sequence: record.sequence, reason: "content does not match its hash")
            }
            previous = record.hash
        }
        return nil
    }
}
