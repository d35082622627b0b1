// Handoff — hex encoding: every byte value, against Foundation's formatting.

import Foundation
import HandoffCore
import Testing

@Suite("Hex")
struct HexTests {
    @Test("two lowercase digits per byte, for every byte value, as String(format: \"%02x\") gives them")
    func everyByte() {
        let all = (0...255).map(UInt8.init)
        #expect(all.hexString == all.map { String(format: "%02x", $0) }.joined())
        #expect([0x00, 0x0f, 0xa5, 0xff].hexString == "000fa5ff")
        #expect([UInt8]().hexString == "")
    }
}
