// Handoff — the status of a call: gRPC's canonical codes with a message.

/// The error every failed call ends with: a canonical status code and a
/// message naming the problem. `description` is safe to show to a caller.
public struct RPCError: Error, Sendable, CustomStringConvertible {
    /// gRPC's canonical status codes, as an extensible set of constants.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The number on the wire (`Envelope.status_code`).
        public let rawValue: UInt32

        public init(rawValue: UInt32) { self.rawValue = rawValue }

        public static let ok = Code(rawValue: 0)
        public static let cancelled = Code(rawValue: 1)
        public static let unknown = Code(rawValue: 2)
        public static let invalidArgument = Code(rawValue: 3)
        public static let deadlineExceeded = Code(rawValue: 4)
        public static let notFound = Code(rawValue: 5)
        public static let alreadyExists = Code(rawValue: 6)
        public static let permissionDenied = Code(rawValue: 7)
        public static let resourceExhausted = Code(rawValue: 8)
        public static let failedPrecondition = Code(rawValue: 9)
        public static let aborted = Code(rawValue: 10)
        public static let outOfRange = Code(rawValue: 11)
        public static let unimplemented = Code(rawValue: 12)
        public static let internalError = Code(rawValue: 13)
        public static let unavailable = Code(rawValue: 14)
        public static let dataLoss = Code(rawValue: 15)
        public static let unauthenticated = Code(rawValue: 16)

        private static let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
            "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
            "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
        ]

        /// The canonical name, `INVALID_ARGUMENT`; `CODE_<n>` for a number gRPC does not define.
        public var description: String {
            rawValue < Self.names.count ? Self.names[Int(rawValue)] : "CODE_\(rawValue)"
        }

        /// Looks a code up by its canonical name (`NOT_FOUND`), for command lines and configuration.
        public init?(name: String) {
            guard let index = Self.names.firstIndex(of: name.uppercased()) else { return nil }
            self.rawValue = UInt32(index)
        }
    }

    /// The status code.
    public var code: Code
    /// What went wrong, naming the problem, for the caller to read.
    public var message: String
    /// The underlying error, for logs only; never sent to the peer.
    public var cause: (any Error)?

    public init(code: Code, message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String { "\(code): \(message)" }
}

/// A domain error that knows which status it should end a call with.
/// Errors that do not conform end the call with INTERNAL and a generic message.
public protocol RPCErrorConvertible: Error {
    var rpcError: RPCError { get }
}

extension RPCError: RPCErrorConvertible {
    public var rpcError: RPCError { self }
}
