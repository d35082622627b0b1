// Handoff — ids of new records (sessions, pending actions, approvals,
// tickets): UUIDs of version 7 (RFC 9562), whose first 48 bits are the time
// in milliseconds. Ids made later sort later, so a store's primary keys and
// the indexes keyed by them grow at their right edge: a group commit of 64
// refunds dirtied about four random pages per refund with random (version 4)
// ids, in tables that outgrow the page cache (docs/BENCHMARKS.md, issue 28).
// The 74 random bits keep them unguessable; nothing secret is in an id.

public import Foundation

public enum RecordID {
    /// A new id: `prefix` and a lowercase version 7 UUID.
    public static func make(_ prefix: String = "", now: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        return prefix + uuid7(milliseconds: UInt64(max(0, now.timeIntervalSince1970 * 1000)), using: &generator).uuidString.lowercased()
    }

    /// A version 7 UUID for `milliseconds` since 1970, its other bits from `generator`.
    public static func uuid7<G: RandomNumberGenerator>(milliseconds: UInt64, using generator: inout G) -> UUID {
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: milliseconds >> (8 * (5 - UInt64(i)))) }
        for i in 6..<8 { bytes[i] = UInt8(truncatingIfNeeded: high >> (8 * UInt64(i))) }
        for i in 8..<16 { bytes[i] = UInt8(truncatingIfNeeded: low >> (8 * UInt64(i - 8))) }
        bytes[6] = 0x70 | (bytes[6] & 0x0F)  // version 7
        bytes[8] = 0x80 | (bytes[8] & 0x3F)  // the RFC 9562 variant
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10], bytes[11],
                bytes[12], bytes[13], bytes[14], bytes[15]
            ))
    }
}
