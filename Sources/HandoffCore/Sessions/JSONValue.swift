// Handoff — a JSON value, as session state, turn metadata and event details
// are held by the domain.

import Foundation

/// A JSON document as a value. Objects are dictionaries: encoding sorts
/// their keys, so equal values always encode to the same bytes (what the
/// event hash chain and version checks need).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// Whole numbers within Int64 keep every digit.
    case integer(Int64)
    /// Other numbers, as IEEE doubles (JSON gives no more precision than that
    /// to most readers either).
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses JSON text.
    /// - Throws: `JSONValue.ParseError` naming the problem.
    public init(parsing text: String) throws(ParseError) {
        do {
            self = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        } catch let error as DecodingError {
            switch error {
            case .dataCorrupted(let context):
                let detail = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
                throw ParseError(message: "not valid JSON: \(detail ?? context.debugDescription)")
            default:
                throw ParseError(message: "not valid JSON: \(error)")
            }
        } catch {
            throw ParseError(message: "not valid JSON: \(error)")
        }
    }

    /// Compact JSON with sorted keys.
    public var serialized: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a JSONValue cannot fail: every case maps to a JSON value.
        let data = (try? encoder.encode(self)) ?? Data("null".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The object's members, or nil when this is not an object.
    public var objectValue: [String: JSONValue]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// JSON text that does not parse.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
