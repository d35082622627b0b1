// Handoff — what a finished handshake tells the layers above: version,
// cipher, ALPN and the verified peer certificate.

/// The parts of a verified peer certificate that identify the caller.
public struct PeerCertificate: Sendable, Hashable {
    /// The subject as an RFC 2253 string, e.g. `CN=alice,O=acme`.
    public var subject: String
    /// The subject's common name (the first CN), if any.
    public var subjectCommonName: String?
    /// Subject alternative name URIs, e.g. `handoff://tenant/acme/operator/alice`.
    public var uris: [String]
    /// Subject alternative name DNS names.
    public var dnsNames: [String]
    /// Start of validity, in seconds since 1970-01-01T00:00:00Z.
    public var notBefore: Int64
    /// End of validity, in seconds since 1970-01-01T00:00:00Z.
    public var notAfter: Int64
    /// SHA-256 over the certificate's DER encoding, 64 lowercase hex digits.
    public var sha256Fingerprint: String

    public init(
        subject: String,
        subjectCommonName: String?,
        uris: [String],
        dnsNames: [String],
        notBefore: Int64,
        notAfter: Int64,
        sha256Fingerprint: String
    ) {
        self.subject = subject
        self.subjectCommonName = subjectCommonName
        self.uris = uris
        self.dnsNames = dnsNames
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.sha256Fingerprint = sha256Fingerprint
    }
}

/// The outcome of a successful handshake.
public struct TLSSessionInfo: Sendable, Hashable {
    /// OpenSSL's name for the version, `"TLSv1.3"` or `"TLSv1.2"`.
    public var protocolVersion: String
    /// OpenSSL's cipher suite name, e.g. `"TLS_AES_256_GCM_SHA384"`.
    public var cipher: String
    /// The ALPN protocol both sides agreed on, e.g. `"handoff/1"`.
    public var applicationProtocol: String?
    /// The peer's leaf certificate, present only when the peer sent one
    /// **and** it was verified against the configured trust roots (and CRL).
    /// On a server this is the caller's mutual-TLS identity.
    public var peer: PeerCertificate?

    public init(protocolVersion: String, cipher: String, applicationProtocol: String?, peer: PeerCertificate?) {
        self.protocolVersion = protocolVersion
        self.cipher = cipher
        self.applicationProtocol = applicationProtocol
        self.peer = peer
    }
}

/// Events ``TLSHandler`` sends inbound with `fireUserInboundEventTriggered`.
public enum TLSUserEvent: Sendable, Hashable {
    /// Fired once, right after the handshake completes and before any
    /// plaintext is passed on.
    case handshakeCompleted(TLSSessionInfo)
}
