// Handoff — TLS configuration: what a TLSContext is built from.
//
// Plain values only; files are read, and OpenSSL is touched, when a
// `TLSContext` is created from this configuration.
public import NIOCore

/// Everything needed to build a ``TLSContext`` for one side of a connection.
///
/// Paths name PEM files. Nothing is read until ``TLSContext/init(configuration:)``,
/// which reports a bad, missing or mismatched file as a ``TLSError`` with code
/// ``TLSError/Code/configuration``.
public struct TLSConfiguration: Sendable {
    /// Which end of the handshake this side plays.
    public enum Role: Sendable, Hashable {
        case server
        case client
    }

    /// How the peer's certificate is checked.
    ///
    /// On a server this is about client certificates (mutual TLS):
    /// `.none` does not ask for one, `.optional` asks and verifies one if sent,
    /// `.required` refuses a client without a valid certificate.
    /// A client always verifies the server unless this is `.none`
    /// (`.optional` and `.required` behave the same on a client).
    public enum PeerVerification: Sendable, Hashable {
        case none
        case optional
        case required
    }

    /// The lowest TLS version accepted. TLS 1.1 and below are always refused.
    public enum ProtocolVersion: Sendable, Hashable, Comparable {
        case tls12
        case tls13
    }

    public var role: Role
    /// PEM certificate chain (leaf first). Required for a server; optional for a
    /// client, where it enables mutual TLS.
    public var certificateChainPath: String?
    /// PEM private key matching the leaf of ``certificateChainPath``.
    public var privateKeyPath: String?
    /// PEM CA bundle used to verify the peer. A client without one uses the
    /// system's default trust store; a verifying server must have one.
    public var trustRootsPath: String?
    public var peerVerification: PeerVerification
    /// Client only: sent as SNI (unless it is an IP literal) and checked against
    /// the server certificate's DNS or IP subject alternative names.
    public var serverHostname: String?
    /// ALPN protocols in preference order. A server refuses a client that offers
    /// none of these, or no ALPN at all, with a `no_application_protocol` alert;
    /// a client refuses a server that does not pick one. An empty list turns
    /// ALPN off on both sides.
    public var applicationProtocols: [String]
    public var minimumVersion: ProtocolVersion
    /// Time allowed from the start of the handshake (channel active) to its end.
    /// It also bounds an orderly close: if our close_notify cannot be written
    /// within this time (the peer stopped reading), the channel is closed anyway.
    public var handshakeTimeout: TimeAmount
    /// Optional PEM file of CRLs; a peer certificate revoked by one of them
    /// fails verification. Every certificate of the peer's chain is checked
    /// against its issuer's CRL, so the file must hold one from each CA that
    /// issues (the root's own included); a CRL past its next update fails every check.
    public var crlPath: String?

    /// Certificates between the peer's and a trusted root, at most.
    public static let maximumVerifyDepth: Int32 = 4

    /// The ALPN protocol Handoff speaks.
    public static let handoffApplicationProtocol = "handoff/1"

    public init(
        role: Role,
        certificateChainPath: String? = nil,
        privateKeyPath: String? = nil,
        trustRootsPath: String? = nil,
        peerVerification: PeerVerification,
        serverHostname: String? = nil,
        applicationProtocols: [String] = [TLSConfiguration.handoffApplicationProtocol],
        minimumVersion: ProtocolVersion = .tls12,
        handshakeTimeout: TimeAmount = .seconds(10),
        crlPath: String? = nil
    ) {
        self.role = role
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
        self.trustRootsPath = trustRootsPath
        self.peerVerification = peerVerification
        self.serverHostname = serverHostname
        self.applicationProtocols = applicationProtocols
        self.minimumVersion = minimumVersion
        self.handshakeTimeout = handshakeTimeout
        self.crlPath = crlPath
    }

    /// A server configuration.
    ///
    /// - Parameters:
    ///   - certificateChainPath: PEM chain presented to clients.
    ///   - privateKeyPath: PEM key for the chain's leaf.
    ///   - clientCertificateTrustRootsPath: PEM CA bundle for client certificates;
    ///     required unless `clientCertificates` is `.none`.
    ///   - clientCertificates: whether clients must present a certificate.
    ///   - crlPath: optional PEM CRL file checked against client certificates.
    public static func server(
        certificateChainPath: String,
        privateKeyPath: String,
        clientCertificateTrustRootsPath: String? = nil,
        clientCertificates: PeerVerification = .none,
        crlPath: String? = nil,
        applicationProtocols: [String] = [TLSConfiguration.handoffApplicationProtocol],
        minimumVersion: ProtocolVersion = .tls12,
        handshakeTimeout: TimeAmount = .seconds(10)
    ) -> TLSConfiguration {
        TLSConfiguration(
            role: .server,
            certificateChainPath: certificateChainPath,
            privateKeyPath: privateKeyPath,
            trustRootsPath: clientCertificateTrustRootsPath,
            peerVerification: clientCertificates,
            applicationProtocols: applicationProtocols,
            minimumVersion: minimumVersion,
            handshakeTimeout: handshakeTimeout,
            crlPath: crlPath
        )
    }

    /// A client configuration that verifies the server.
    ///
    /// - Parameters:
    ///   - trustRootsPath: PEM CA bundle for the server certificate; `nil` uses
    ///     the system's default trust store.
    ///   - serverHostname: host name or IP literal the server certificate must
    ///     match (also sent as SNI when it is a name).
    ///   - certificateChainPath: optional client certificate for mutual TLS.
    ///   - privateKeyPath: its key.
    ///   - peerVerification: `.none` turns server verification off (tests only).
    public static func client(
        trustRootsPath: String? = nil,
        serverHostname: String? = nil,
        certificateChainPath: String? = nil,
        privateKeyPath: String? = nil,
        peerVerification: PeerVerification = .required,
        crlPath: String? = nil,
        applicationProtocols: [String] = [TLSConfiguration.handoffApplicationProtocol],
        minimumVersion: ProtocolVersion = .tls12,
        handshakeTimeout: TimeAmount = .seconds(10)
    ) -> TLSConfiguration {
        TLSConfiguration(
            role: .client,
            certificateChainPath: certificateChainPath,
            privateKeyPath: privateKeyPath,
            trustRootsPath: trustRootsPath,
            peerVerification: peerVerification,
            serverHostname: serverHostname,
            applicationProtocols: applicationProtocols,
            minimumVersion: minimumVersion,
            handshakeTimeout: handshakeTimeout,
            crlPath: crlPath
        )
    }
}
