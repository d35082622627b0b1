// Handoff — the trace context of the call being served, so the events it
// writes can be joined to the agent's own trace.

/// The W3C Trace Context (`traceparent`) of the current call, bound by the
/// server for the call's task when the caller sent a valid one.
public enum CallTrace {
    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, or empty.
    @TaskLocal public static var traceparent = ""

    /// `value` if it is a well-formed `traceparent` (W3C Trace Context, level
    /// 1: lower-case hex, trace and parent ids not all zero), else nil. Version
    /// 00 has exactly four fields; a later version (not ff) is read as the
    /// recommendation says, by its first four, and kept as those 55 characters.
    /// A malformed one is ignored, as the recommendation says, never an error.
    public static func validated(_ value: String) -> String? {
        var value = value
        if value.utf8.count > 55, !value.hasPrefix("00-"), value.utf8.count <= 512,
            value.utf8[value.utf8.index(value.utf8.startIndex, offsetBy: 55)] == UInt8(ascii: "-")
        {
            value = String(value.utf8.prefix(55))!
        }
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] != "ff",
            isHex(parts[0], 2), isHex(parts[1], 32), isHex(parts[2], 16), isHex(parts[3], 2),
            parts[1].contains(where: { $0 != "0" }), parts[2].contains(where: { $0 != "0" })
        else { return nil }
        return value
    }

    private static func isHex(_ text: Substring, _ count: Int) -> Bool {
        text.utf8.count == count && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}
