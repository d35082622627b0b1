// Handoff — new records' ids are version 7 UUIDs: they sort in the order they
// were made (so primary keys grow at their right edge), carry their time, and
// keep 74 random bits.

import Foundation
import HandoffCore
import Testing

@Suite("Record ids")
struct RecordIDTests {
    @Test("ids made later sort later, across milliseconds, and carry the version and variant bits")
    func timeOrdered() {
        var generator = SystemRandomNumberGenerator()
        let ids = (0..<2_000).map { "pa-" + RecordID.uuid7(milliseconds: 1_765_000_000_000 + UInt64($0), using: &generator).uuidString.lowercased() }
        #expect(ids == ids.sorted(), "ids of later milliseconds sorted before earlier ones")
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(50) {
            let uuid = String(id.dropFirst(3))
            #expect(UUID(uuidString: uuid) != nil && uuid == uuid.lowercased())
            let hex = Array(uuid.replacingOccurrences(of: "-", with: ""))
            #expect(hex[12] == "7", "version nibble of \(uuid)")
            #expect("89ab".contains(hex[16]), "variant bits of \(uuid)")
        }
        // The first 48 bits are the milliseconds.
        let first = String(ids[0].dropFirst(3)).replacingOccurrences(of: "-", with: "")
        #expect(UInt64(first.prefix(12), radix: 16) == 1_765_000_000_000)
    }

    @Test("ids made in one millisecond differ in their random bits")
    func randomWithinAMillisecond() {
        let now = Date()
        let ids = (0..<10_000).map { _ in RecordID.make(now: now) }
        #expect(Set(ids).count == ids.count)
        #expect(Set(ids.map { $0.prefix(13) }).count == 1, "one millisecond, one time prefix")
    }
}
