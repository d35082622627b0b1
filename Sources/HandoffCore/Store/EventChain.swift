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
        // One buffer, one hash call: per-field arrays and updates took about
        // a seventh of the group-commit writer's time (perf, handoff-bench store).
        var bytes: [UInt8] = []
        bytes.reserveCapacity(
            96 + tenant.rawValue.utf8.count + sessionID.utf8.count + event.action.utf8.count + event.actor.utf8.count
                + event.reasoning.utf8.count + event.detailsJSON.utf8.count + event.traceparent.utf8.count + previousHash.count)
        func integer32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
        func integer64(_ v: Int64) { withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) } }
        func text(_ s: String) {
            integer32(UInt32(s.utf8.count))
            bytes.append(contentsOf: s.utf8)
        }
        text("handoff.event.v1")
        text(tenant.rawValue)
        text(sessionID)
        integer64(sequence)
        text(event.action)
        text(event.actor)
        text(event.reasoning)
        text(event.detailsJSON)
        integer64(event.occurredAtMs)
        // Only when present, so chains written before traces hash as they did.
        if !event.traceparent.isEmpty {
            text("traceparent")
            text(event.traceparent)
        }
        bytes.append(contentsOf: previousHash)
        return SHA256.hash(data: bytes).withUnsafeBytes { Array($0) }
    }

    /// Where a chain breaks, if it does.
    public struct Break: Sendable, Hashable, CustomStringConvertible {
        public var sequence: Int64
        public var reason: String
        public var description: String { "event \(sequence): \(reason)" }
    }

    /// Recomputes a session's chain (events oldest first) and names the first broken link.
    public static func verify(_ events: [EventRecord]) -> Break? {
        guard let first = events.first else { return nil }
        var verifier = Verifier(tenant: first.tenant, sessionID: first.sessionID)
        for record in events where verifier.check(record) != nil { break }
        return verifier.firstBreak
    }

    /// Checks one session's chain an event at a time, oldest first, so that
    /// a chain of any length is checked in constant memory.
    public struct Verifier: Sendable {
        public let tenant: TenantID
        public let sessionID: String
        /// Events checked, up to and including the first broken one.
        public private(set) var checked = 0
        /// The stored hash of the last event checked (the genesis before any):
        /// what the next event must link to, while none broke.
        public private(set) var lastHash = EventChain.genesis
        public private(set) var firstBreak: Break?

        public init(tenant: TenantID, sessionID: String) {
            self.tenant = tenant
            self.sessionID = sessionID
        }

        /// Checks the next event; returns the first break once there is one
        /// (events after it are not looked at).
        @discardableResult
        public mutating func check(_ record: EventRecord) -> Break? {
            if let firstBreak { return firstBreak }
            checked += 1
            defer { lastHash = record.hash }
            let expectedSequence = Int64(checked)
            if record.tenant != tenant || record.sessionID != sessionID {
                // A link edited to point into another chain: its events hash
                // to themselves, so only their owner tells.
                firstBreak = Break(
                    sequence: record.sequence,
                    reason: "the chain reaches an event of session \(record.sessionID) in tenant \(record.tenant.rawValue)")
            } else if record.sequence != expectedSequence {
                firstBreak = Break(sequence: record.sequence, reason: "sequence \(record.sequence) where \(expectedSequence) was expected")
            } else if record.previousHash != lastHash {
                firstBreak = Break(sequence: record.sequence, reason: "previous hash does not match event \(record.sequence - 1)")
            } else if hash(
                tenant: record.tenant, sessionID: record.sessionID, sequence: record.sequence, event: record.event,
                previousHash: record.previousHash) != record.hash
            {
                firstBreak = Break(sequence: record.sequence, reason: "content does not match its hash")
            }
            return firstBreak
        }

        /// After the last event: the chain must end where the session's row
        /// says its head is (the seq and hash of its last event).
        public mutating func finish(headSequence: Int64, headHash: [UInt8]?) -> Break? {
            if let firstBreak { return firstBreak }
            if Int64(checked) != headSequence {
                firstBreak =
                    checked == 0
                    ? Break(sequence: headSequence, reason: "the session's head is event \(headSequence), which is missing")
                    : Break(sequence: Int64(checked), reason: "the chain ends at event \(checked), but the session's head is event \(headSequence)")
            } else if headSequence > 0, headHash != lastHash {
                firstBreak = Break(sequence: headSequence, reason: "the session's head hash does not match event \(headSequence)")
            }
            return firstBreak
        }
    }
}
