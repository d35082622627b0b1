// Handoff — TLSError: the one error type of the TLS layer.

/// An error from the TLS layer: configuration, handshake, or the connection.
///
/// `message` carries OpenSSL's reason text where OpenSSL produced the error,
/// for example `certificate verify failed: unable to get local issuer certificate`.
/// It names files and protocol conditions, never key material, so it is safe
/// to log; whether to show it to a remote peer is the caller's decision.
public struct TLSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is. A struct of static constants rather than
    /// an enum, so codes can be added without breaking anyone's `switch`.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Wrapped: Sendable, Hashable {
            case configuration
            case handshakeFailed
            case handshakeTimeout
            case unexpectedEOF
            case protocolError
            case closed
            case certificateCreation
        }

        private let wrapped: Wrapped
        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

        /// A certificate, key, CA bundle or CRL file is missing, unreadable,
        /// malformed or does not match; or the configuration is inconsistent.
        public static let configuration = Code(.configuration)
        /// The handshake failed: verification, version, ALPN, or malformed bytes.
        public static let handshakeFailed = Code(.handshakeFailed)
        /// The handshake did not finish within the configured timeout.
        public static let handshakeTimeout = Code(.handshakeTimeout)
        /// The connection ended without a TLS close_notify (possible truncation).
        public static let unexpectedEOF = Code(.unexpectedEOF)
        /// A TLS failure after the handshake: bad record, alert from the peer, …
        public static let protocolError = Code(.protocolError)
        /// A write was attempted on a connection that is closing or closed.
        public static let closed = Code(.closed)
        /// ``DevelopmentPKI`` could not create or write a key, certificate or CRL.
        public static let certificateCreation = Code(.certificateCreation)

        public var description: String {
            switch self.wrapped {
            case .configuration: "configuration"
            case .handshakeFailed: "handshakeFailed"
            case .handshakeTimeout: "handshakeTimeout"
            case .unexpectedEOF: "unexpectedEOF"
            case .protocolError: "protocolError"
            case .closed: "closed"
            case .certificateCreation: "certificateCreation"
            }
        }
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String {
        "TLSError.\(self.code): \(self.message)"
    }
}
