// Handoff — test fixture: one development PKI per test run, in a fresh
// temporary directory, with the odd certificates the failure tests need.
import Foundation
import HandoffTLS
import NIOCore

/// Paths of every certificate and key the TLS tests use, made once per test
/// process by `DevelopmentPKI` in a new temporary directory.
struct TestPKI: Sendable {
    let directory: String

    var caCertificate: String { self.path("ca.pem") }
    var caKey: String { self.path("ca.key") }
    var serverCertificate: String { self.path("server.pem") }
    var serverKey: String { self.path("server.key") }
    /// Good client: CN alice, SAN URI `handoff://tenant/acme/operator/alice`.
    var aliceCertificate: String { self.path("alice.pem") }
    var aliceKey: String { self.path("alice.key") }
    /// Client whose certificate `crl.pem` revokes.
    var bobCertificate: String { self.path("bob.pem") }
    var bobKey: String { self.path("bob.key") }
    var crl: String { self.path("crl.pem") }
    /// Server certificate from `ca.pem`, expired yesterday.
    var expiredServerCertificate: String { self.path("expired-server.pem") }
    var expiredServerKey: String { self.path("expired-server.key") }
    /// A second CA nobody trusts, and a server and a client certificate from it.
    var otherCACertificate: String { self.path("other-ca.pem") }
    var otherServerCertificate: String { self.path("other-server.pem") }
    var otherServerKey: String { self.path("other-server.key") }
    var otherClientCertificate: String { self.path("other-client.pem") }
    var otherClientKey: String { self.path("other-client.key") }

    static let aliceURI = "handoff://tenant/acme/operator/alice"

    func path(_ name: String) -> String { self.directory + "/" + name }

    /// Made on first use; removed when the test process exits.
    static let shared: TestPKI = {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("handoff-tls-tests-\(UUID().uuidString)").path
        let pki = TestPKI(directory: directory)
        do {
            try pki.make()
        } catch {
            fatalError("cannot create the test PKI in \(directory): \(error)")
        }
        atexit {
            try? FileManager.default.removeItem(atPath: TestPKI.shared.directory)
        }
        return pki
    }()

    private func make() throws(TLSError) {
        try DevelopmentPKI.create(
            directory: self.directory,
            clients: [
                (name: "alice", uri: Self.aliceURI),
                (name: "bob", uri: "handoff://tenant/acme/agent/bob"),
            ]
        )
        try DevelopmentPKI.createRevocationList(
            path: self.crl,
            issuerCertificatePath: self.caCertificate,
            issuerKeyPath: self.caKey,
            revokedCertificatePaths: [self.bobCertificate]
        )
        try DevelopmentPKI.issueCertificate(
            certificatePath: self.expiredServerCertificate,
            keyPath: self.expiredServerKey,
            issuerCertificatePath: self.caCertificate,
            issuerKeyPath: self.caKey,
            commonName: "localhost",
            subjectAlternativeNames: ["localhost", "127.0.0.1"],
            usage: .server,
            notBeforeDays: -30,
            notAfterDays: -1
        )
        try DevelopmentPKI.createAuthority(
            certificatePath: self.otherCACertificate,
            keyPath: self.path("other-ca.key"),
            commonName: "Somebody Else's CA"
        )
        try DevelopmentPKI.issueCertificate(
            certificatePath: self.otherServerCertificate,
            keyPath: self.otherServerKey,
            issuerCertificatePath: self.otherCACertificate,
            issuerKeyPath: self.path("other-ca.key"),
            commonName: "localhost",
            subjectAlternativeNames: ["localhost", "127.0.0.1"],
            usage: .server
        )
        try DevelopmentPKI.issueCertificate(
            certificatePath: self.otherClientCertificate,
            keyPath: self.otherClientKey,
            issuerCertificatePath: self.otherCACertificate,
            issuerKeyPath: self.path("other-ca.key"),
            commonName: "mallory",
            uris: ["handoff://tenant/acme/admin/mallory"],
            usage: .client
        )
    }

    // MARK: Contexts

    /// A server that requires client certificates from `ca.pem` (by default).
    func serverContext(
        certificate: String? = nil,
        key: String? = nil,
        clientCA: String? = nil,
        clientCertificates: TLSConfiguration.PeerVerification = .required,
        crl: String? = nil,
        handshakeTimeout: TimeAmountSeconds = 10
    ) throws -> TLSContext {
        try TLSContext(
            configuration: .server(
                certificateChainPath: certificate ?? self.serverCertificate,
                privateKeyPath: key ?? self.serverKey,
                clientCertificateTrustRootsPath: clientCA ?? self.caCertificate,
                clientCertificates: clientCertificates,
                crlPath: crl,
                handshakeTimeout: .milliseconds(Int64(handshakeTimeout * 1000))
            )
        )
    }

    /// Which certificate a test client presents.
    enum ClientIdentity: Sendable {
        case none
        case alice
        case bob
        case fromOtherCA
        /// A PEM chain (leaf first) and its leaf's key.
        case chain(String, key: String)
    }

    /// A client of `hostname` trusting `ca.pem`.
    func clientContext(
        identity: ClientIdentity = .alice,
        hostname: String = "localhost",
        applicationProtocols: [String] = ["handoff/1"],
        handshakeTimeout: TimeAmountSeconds = 10
    ) throws -> TLSContext {
        let pair: (String, String)? =
            switch identity {
            case .none: nil
            case .alice: (self.aliceCertificate, self.aliceKey)
            case .bob: (self.bobCertificate, self.bobKey)
            case .fromOtherCA: (self.otherClientCertificate, self.otherClientKey)
            case .chain(let chain, let key): (chain, key)
            }
        return try TLSContext(
            configuration: .client(
                trustRootsPath: self.caCertificate,
                serverHostname: hostname,
                certificateChainPath: pair?.0,
                privateKeyPath: pair?.1,
                applicationProtocols: applicationProtocols,
                handshakeTimeout: .milliseconds(Int64(handshakeTimeout * 1000))
            )
        )
    }
}

typealias TimeAmountSeconds = Double
