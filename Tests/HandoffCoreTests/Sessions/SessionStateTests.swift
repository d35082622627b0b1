// Handoff — RFC 7386 merge patches (every example of the RFC's Appendix A)
// and the rules a session state keeps.

import HandoffCore
import Testing

@Suite("Session state")
struct SessionStateTests {
    /// RFC 7386 Appendix A: original, patch, result.
    static let rfcExamples: [(String, String, String)] = [
        (#"{"a":"b"}"#, #"{"a":"c"}"#, #"{"a":"c"}"#),
        (#"{"a":"b"}"#, #"{"b":"c"}"#, #"{"a":"b","b":"c"}"#),
        (#"{"a":"b"}"#, #"{"a":null}"#, #"{}"#),
        (#"{"a":"b","b":"c"}"#, #"{"a":null}"#, #"{"b":"c"}"#),
        (#"{"a":["b"]}"#, #"{"a":"c"}"#, #"{"a":"c"}"#),
        (#"{"a":"c"}"#, #"{"a":["b"]}"#, #"{"a":["b"]}"#),
        (#"{"a":{"b":"c"}}"#, #"{"a":{"b":"d","c":null}}"#, #"{"a":{"b":"d"}}"#),
        (#"{"a":[{"b":"c"}]}"#, #"{"a":[1]}"#, #"{"a":[1]}"#),
        (#"["a","b"]"#, #"["c","d"]"#, #"["c","d"]"#),
        (#"{"a":"b"}"#, #"["c"]"#, #"["c"]"#),
        (#"{"a":"foo"}"#, #"null"#, #"null"#),
        (#"{"a":"foo"}"#, #""bar""#, #""bar""#),
        (#"{"e":null}"#, #"{"a":1}"#, #"{"a":1,"e":null}"#),
        (#"[1,2]"#, #"{"a":"b","c":null}"#, #"{"a":"b"}"#),
        (#"{}"#, #"{"a":{"bb":{"ccc":null}}}"#, #"{"a":{"bb":{}}}"#),
    ]

    @Test("every example of RFC 7386 Appendix A", arguments: rfcExamples.indices)
    func rfcAppendix(_ index: Int) throws {
        let (original, patch, expected) = Self.rfcExamples[index]
        let result = SessionState.mergePatch(try JSONValue(parsing: original), try JSONValue(parsing: patch))
        #expect(result == (try JSONValue(parsing: expected)), "example \(index + 1)")
        #expect(result.serialized == (try JSONValue(parsing: expected)).serialized)
    }

    @Test("a merge patch keeps what it does not name, and the result is canonical JSON")
    func applyPatch() throws {
        let current = try JSONValue(parsing: #"{"user":{"id":"u-1","tier":"gold"},"step":"cart","n":3}"#)
        let (_, json) = try SessionState.apply(
            .mergePatch(try JSONValue(parsing: #"{"user":{"tier":null},"step":"checkout","total":"129.90"}"#)), to: current)
        #expect(json == #"{"n":3,"step":"checkout","total":"129.90","user":{"id":"u-1"}}"#)
    }

    @Test(
        "the state must stay an object",
        arguments: [
            (StateChange.replacement(.array([])), "must be a JSON object, not an array"),
            (StateChange.replacement(.string("x")), "must be a JSON object, not a string"),
            (StateChange.mergePatch(.null), "a merge patch must be a JSON object"),
            (StateChange.mergePatch(.integer(1)), "a merge patch must be a JSON object"),
        ])
    func mustBeObject(_ change: StateChange, _ expected: String) {
        let error = #expect(throws: StateError.self) { _ = try SessionState.apply(change, to: .object([:])) }
        #expect(error?.message.contains(expected) == true, "\(String(describing: error))")
    }

    @Test("a state over the size limit is refused with its size and the limit")
    func sizeLimit() throws {
        let big = JSONValue.object(["blob": .string(String(repeating: "x", count: 300))])
        let error = #expect(throws: StateError.self) { _ = try SessionState.apply(.replacement(big), to: .object([:]), sizeLimit: 256) }
        #expect(error?.message == "the state would be 311 bytes; the limit is 256 bytes")
        #expect(try SessionState.apply(.replacement(big), to: .object([:]), sizeLimit: 311).json.utf8.count == 311)
    }

    @Test("numbers, booleans, null, unicode and escapes survive parsing and encoding")
    func values() throws {
        let text = #"{"b":true,"f":1.5,"i":-9223372036854775808,"n":null,"s":"é🙂\n\"q\"","z":0}"#
        let value = try JSONValue(parsing: text)
        #expect(value.objectValue?["i"] == .integer(Int64.min))
        #expect(value.objectValue?["b"] == .bool(true))
        #expect(value.objectValue?["z"] == .integer(0), "0 is a number, not false")
        #expect(try JSONValue(parsing: value.serialized) == value)
    }

    @Test("text that is not JSON is refused, saying so", arguments: ["{", "{\"a\":}", "nul", "{'a':1}", ""])
    func notJSON(_ text: String) {
        let error = #expect(throws: JSONValue.ParseError.self) { _ = try JSONValue(parsing: text) }
        #expect(error?.message.hasPrefix("not valid JSON") == true)
    }
}
