import Foundation
import HandoffCore
import Testing

@Suite("JSONValue parser and canonical encoder")
struct JSONValueTests {
    @Test("values of every kind parse to the expected cases")
    func kinds() throws {
        let value = try JSONValue(
            parsing: #" { "a" : [ 1 , -2.5e3 , true , false , null , "x" , { } , [ ] ] , "big" : 18446744073709551616 , "one" : 1.0 } "#)
        #expect(
            value
                == .object([
                    "a": .array([.integer(1), .number(-2500), .bool(true), .bool(false), .null, .string("x"), .object([:]), .array([])]),
                    "big": .number(18_446_744_073_709_551_616),
                    "one": .number(1),
                ]))
        #expect(try JSONValue(parsing: "-0") == .integer(0))
        #expect(try JSONValue(parsing: "9223372036854775807") == .integer(.max))
        #expect(try JSONValue(parsing: "9223372036854775808") == .number(9_223_372_036_854_775_808))
    }

    @Test("escapes, surrogate pairs and raw unicode decode to the same string")
    func strings() throws {
        let value = try JSONValue(parsing: #""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude42é🙂""#)
        #expect(value == .string("a\"b\\c/d\u{8}\u{c}\n\r\té🙂é🙂"))
    }

    @Test("the encoder escapes at the start, middle and end of a string and copies the runs between whole")
    func encodedStrings() {
        #expect(JSONValue.string("").serialized == #""""#)
        #expect(JSONValue.string("plain é🙂").serialized == #""plain é🙂""#)
        #expect(JSONValue.string("\"a\\b\u{8}\u{c}\n\r\t\u{1f}é\u{0}\"").serialized == #""\"a\\b\b\f\n\r\t\u001fé\u0000\"""#)
        #expect(JSONValue.string("\n\n").serialized == #""\n\n""#)
    }

    @Test("the encoder is canonical: sorted keys by bytes, no spaces, minimal escapes")
    func canonical() throws {
        let value = try JSONValue(parsing: #"{"b":1,"B":2,"a":{"z":[1,2],"é":"\u0001\n/"}}"#)
        #expect(value.serialized == #"{"B":2,"a":{"z":[1,2],"é":"\u0001\n/"},"b":1}"#)
        #expect(try JSONValue(parsing: value.serialized) == value)
    }

    @Test("the encoder agrees with Foundation's parser on random documents")
    func differential() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let value = Self.randomValue(depth: 0, using: &generator)
            let text = value.serialized
            // Foundation reads what Handoff writes…
            let foundation = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
            let again = try JSONSerialization.data(withJSONObject: foundation, options: [.fragmentsAllowed, .sortedKeys])
            // …and Handoff reads what Foundation writes back to the same value.
            #expect(try JSONValue(parsing: String(decoding: again, as: UTF8.self)).serialized == text, "\(text)")
            #expect(try JSONValue(parsing: text) == value)
        }
    }

    @Test(
        "malformed text is refused with what and where",
        arguments: [
            ("", "unexpected end of text at byte 0"),
            ("{", "expected a member name at byte 1"),
            (#"{"a":}"#, "unexpected character at byte 5"),
            ("nul", "unknown literal at byte 0"),
            ("{'a':1}", "expected a member name at byte 1"),
            ("[1,]", "unexpected character at byte 3"),
            ("[1 2]", "expected ',' or ']' at byte 3"),
            ("01", "a number must not start with 0 at byte 1"),
            ("1.", "a fraction needs digits at byte 2"),
            ("1e999", "a number out of range at byte 5"),
            (#""a"#, "unterminated string at byte 2"),
            ("\"a\u{1}\"", "unescaped control character in a string at byte 2"),
            (#""\x""#, "unknown escape at byte 2"),
            (#""\ud800""#, "a high surrogate escape without its low surrogate at byte 7"),
            (#""\udc00""#, "a lone low surrogate escape at byte 7"),
            (#""\u12""#, #"a \u escape needs four hex digits at byte 3"#),
            ("{} x", "unexpected text after the value at byte 3"),
        ])
    func malformed(_ text: String, _ expected: String) {
        let error = #expect(throws: JSONValue.ParseError.self) { _ = try JSONValue(parsing: text) }
        #expect(error?.message == "not valid JSON: \(expected)")
    }

    @Test("deep nesting is refused, not a stack overflow")
    func depth() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let error = #expect(throws: JSONValue.ParseError.self) { _ = try JSONValue(parsing: deep) }
        #expect(error?.message.contains("nesting deeper than 256 levels") == true)
        let fine = String(repeating: "[", count: 256) + String(repeating: "]", count: 256)
        #expect(throws: Never.self) { _ = try JSONValue(parsing: fine) }
    }

    @Test("a repeated member name keeps the last value")
    func repeatedName() throws {
        #expect(try JSONValue(parsing: #"{"a":1,"a":2}"#) == .object(["a": .integer(2)]))
    }

    static func randomValue(depth: Int, using generator: inout SystemRandomNumberGenerator) -> JSONValue {
        let pick = depth > 3 ? Int.random(in: 0..<5, using: &generator) : Int.random(in: 0..<7, using: &generator)
        switch pick {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &generator))
        case 2: return .integer(Int64.random(in: -1_000_000_000_000...1_000_000_000_000, using: &generator))
        case 3: return .number(Double(Int.random(in: -100_000...100_000, using: &generator)) + 1.0 / 128)  // never whole: Foundation writes 3.0 as 3
        case 4: return .string(randomString(using: &generator))
        case 5: return .array((0..<Int.random(in: 0..<4, using: &generator)).map { _ in randomValue(depth: depth + 1, using: &generator) })
        default:
            var members: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0..<4, using: &generator) {
                members[randomString(using: &generator)] = randomValue(depth: depth + 1, using: &generator)
            }
            return .object(members)
        }
    }

    static func randomString(using generator: inout SystemRandomNumberGenerator) -> String {
        let alphabet: [Character] = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{1}", "\u{1F}", "é", "🙂", "ß", "中"]
        return String((0..<Int.random(in: 0..<8, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
    }
}
