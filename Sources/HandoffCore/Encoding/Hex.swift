// Handoff — lowercase hex of bytes, for hashes in keys, tokens and headers.
// `String(format: "%02x")` per byte took 34-37 µs for a 32-byte hash through
// Foundation (every bearer-token call hashed its token that way); this takes
// 0.1-0.2 µs (swiftc -O, this machine).

extension Sequence where Element == UInt8 {
    /// The bytes as lowercase hex, two digits each.
    public var hexString: String {
        let digits: StaticString = "0123456789abcdef"
        var bytes: [UInt8] = []
        bytes.reserveCapacity(underestimatedCount * 2)
        digits.withUTF8Buffer { table in
            for byte in self {
                bytes.append(table[Int(byte >> 4)])
                bytes.append(table[Int(byte & 0x0f)])
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
