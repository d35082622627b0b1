// Handoff — protobuf value types.
//
// The public face of HandoffProto: every generated message conforms to
// `ProtoMessage`, and every failure to encode or decode is a `ProtoError`.
// No C type appears here; the bridge to protobuf-c lives in
// ProtoMessage+CBridge.swift.

/// A protobuf message of the Handoff API, as a Sendable value type.
///
/// Encoding and decoding go through protobuf-c (the `CHandoffProto` target), so
/// the bytes are the standard protobuf wire format any implementation reads.
public protocol ProtoMessage: Sendable, Hashable {
    /// The fully qualified protobuf name, for example `handoff.v1.Envelope`.
    static var protoName: String { get }

    /// Decodes a message from its protobuf encoding.
    /// - Throws: `ProtoError` naming the problem for truncated, malformed or
    ///   otherwise invalid input; never crashes on hostile bytes.
    init(serializedBytes bytes: UnsafeRawBufferPointer) throws(ProtoError)

    /// Encodes the message in the protobuf wire format.
    /// - Throws: `ProtoError` when a string field holds U+0000, which the C
    ///   representation cannot carry (it would silently cut the string).
    func serializedBytes() throws(ProtoError) -> [UInt8]
}

extension ProtoMessage {
    /// Decodes a message from its protobuf encoding held in an array.
    public init(serializedBytes bytes: [UInt8]) throws(ProtoError) {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(ProtoError) -> Self in try Self(serializedBytes: raw) }
        }
        self = try result.get()
    }
}

/// Why a message could not be encoded or decoded. `description` is safe to
/// show to a caller: it names the message or field, never its contents.
public struct ProtoError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure, as an extensible set of constants.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// The bytes are not a valid protobuf encoding of the message
        /// (truncated, a wrong wire type, a length past the end, …).
        public static let malformed = Code(name: "malformed")
        /// A string field holds bytes that are not UTF-8.
        public static let invalidUTF8 = Code(name: "invalid UTF-8")
        /// A string field holds U+0000, which protobuf-c's C strings cannot carry.
        public static let embeddedNUL = Code(name: "embedded NUL")
        public var description: String { name }
    }

    /// What went wrong.
    public var code: Code
    /// A message naming the problem, for example
    /// `string field "reasoning" is not valid UTF-8`.
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// One RPC method of the API, as `ProtoRegistry.methods` lists them.
public struct ProtoMethod: Sendable, CustomStringConvertible {
    /// The fully qualified service, for example `handoff.v1.Sessions`.
    public let service: String
    /// The method's own name, for example `UpdateState`.
    public let name: String
    /// The request message type.
    public let requestType: any ProtoMessage.Type
    /// The response message type (of each streamed message, for a stream).
    public let responseType: any ProtoMessage.Type
    /// Whether the server answers with a stream of responses.
    public let serverStreaming: Bool

    /// The wire name, `handoff.v1.Sessions/UpdateState`.
    public var fullName: String { "\(service)/\(name)" }
    public var description: String { fullName }
}

/// A unary method: one request, one response. Generated per RPC, for example
/// `Health.ping`, so callers and servers name methods by value, not by string.
public struct UnaryMethod<Request: ProtoMessage, Response: ProtoMessage>: Sendable, CustomStringConvertible {
    /// The wire name, `handoff.v1.Health/Ping`.
    public let fullName: String
    public init(fullName: String) { self.fullName = fullName }
    public var description: String { fullName }
}

/// A server-streaming method: one request, a stream of responses.
public struct ServerStreamingMethod<Request: ProtoMessage, Response: ProtoMessage>: Sendable, CustomStringConvertible {
    /// The wire name, `handoff.v1.Operators/Watch`.
    public let fullName: String
    public init(fullName: String) { self.fullName = fullName }
    public var description: String { fullName }
}
