// Handoff — the development CA and TLSContext's configuration errors.
import Foundation
import HandoffTLS
import Testing

@Suite("Development PKI and TLS context")
struct DevelopmentPKITests {
    let pki = TestPKI.shared

    private func freshDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("handoff-pki-\(UUID().uuidString)").path
    }

    private func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test("create writes CA, server and client files; keys are 0600")
    func createWritesFiles() throws {
        let directory = self.freshDirectory() + "/nested/certs"
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        try DevelopmentPKI.create(
            directory: directory,
            clients: [
                (name: "agent", uri: "handoff://tenant/acme/agent/agent"),
                (name: "operator", uri: "handoff://tenant/acme/operator/operator"),
            ]
        )
        for name in ["ca", "server", "agent", "operator"] {
            #expect(try self.mode("\(directory)/\(name).key") == 0o600, "\(name).key")
            #expect(try self.mode("\(directory)/\(name).pem") == 0o644, "\(name).pem")
        }
        let server = try DevelopmentPKI.readCertificate(path: "\(directory)/server.pem")
        #expect(server.subjectCommonName == "localhost")
        #expect(server.dnsNames == ["localhost"])
        #expect(server.notAfter > server.notBefore)
        let days = (server.notAfter - Int64(Date().timeIntervalSince1970)) / 86_400
        #expect((823...825).contains(days))
        let agent = try DevelopmentPKI.readCertificate(path: "\(directory)/agent.pem")
        #expect(agent.subjectCommonName == "agent")
        #expect(agent.subject == "CN=agent")
        #expect(agent.uris == ["handoff://tenant/acme/agent/agent"])
        #expect(agent.sha256Fingerprint != server.sha256Fingerprint)

        // An existing CA is not replaced by accident.
        #expect(throws: TLSError.self) {
            try DevelopmentPKI.create(directory: directory, clients: [])
        }
        try DevelopmentPKI.create(directory: directory, clients: [], overwrite: true)
    }

    @Test("openssl agrees: chains verify, extensions as promised", .enabled(if: ChildProcess.hasOpenSSL))
    func opensslVerifies() async throws {
        let verify = try ChildProcess(
            ChildProcess.opensslPath,
            ["verify", "-CAfile", self.pki.caCertificate, "-purpose", "sslserver", self.pki.serverCertificate]
        )
        #expect(try await verify.wait() == 0, "\(verify.output)")
        #expect(verify.output.contains("OK"))

        let client = try ChildProcess(
            ChildProcess.opensslPath,
            ["verify", "-CAfile", self.pki.caCertificate, "-purpose", "sslclient", self.pki.aliceCertificate]
        )
        #expect(try await client.wait() == 0, "\(client.output)")

        let revoked = try ChildProcess(
            ChildProcess.opensslPath,
            ["verify", "-crl_check", "-CAfile", self.pki.caCertificate, "-CRLfile", self.pki.crl, self.pki.bobCertificate]
        )
        #expect(try await revoked.wait() != 0)
        #expect(revoked.output.contains("certificate revoked"), "\(revoked.output)")

        let text = try ChildProcess(
            ChildProcess.opensslPath,
            ["x509", "-noout", "-text", "-in", self.pki.serverCertificate]
        )
        #expect(try await text.wait() == 0)
        #expect(text.output.contains("DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"), "\(text.output)")
        #expect(text.output.contains("TLS Web Server Authentication"))
        #expect(text.output.contains("ecdsa-with-SHA256"))
        #expect(text.output.contains("prime256v1") || text.output.contains("P-256"))

        let expired = try ChildProcess(
            ChildProcess.opensslPath,
            ["verify", "-CAfile", self.pki.caCertificate, self.pki.expiredServerCertificate]
        )
        #expect(try await expired.wait() != 0)
        #expect(expired.output.contains("certificate has expired"))
    }

    @Test("a missing certificate file names the file and OpenSSL's reason")
    func missingFile() throws {
        let missing = "/nonexistent/handoff/server.pem"
        let error = #expect(throws: TLSError.self) {
            _ = try TLSContext(
                configuration: .server(certificateChainPath: missing, privateKeyPath: self.pki.serverKey)
            )
        }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains(missing) == true)
        #expect(error?.message.contains("No such file or directory") == true, "\(String(describing: error))")
    }

    @Test("a key that does not match the certificate is refused")
    func mismatchedKey() throws {
        let error = #expect(throws: TLSError.self) {
            _ = try TLSContext(
                configuration: .server(
                    certificateChainPath: self.pki.serverCertificate,
                    privateKeyPath: self.pki.aliceKey
                )
            )
        }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("does not match") == true)
        #expect(error?.message.contains("key values mismatch") == true, "\(String(describing: error))")
    }

    @Test("a file that is not PEM is refused")
    func notPEM() throws {
        let path = self.freshDirectory() + ".pem"
        try "not a certificate".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        for configuration in [
            TLSConfiguration.server(certificateChainPath: path, privateKeyPath: self.pki.serverKey),
            .server(certificateChainPath: self.pki.serverCertificate, privateKeyPath: path),
            .client(trustRootsPath: path),
            .server(
                certificateChainPath: self.pki.serverCertificate,
                privateKeyPath: self.pki.serverKey,
                clientCertificateTrustRootsPath: self.pki.caCertificate,
                clientCertificates: .required,
                crlPath: path
            ),
        ] {
            let error = #expect(throws: TLSError.self) { _ = try TLSContext(configuration: configuration) }
            #expect(error?.code == .configuration)
            #expect(error?.message.contains(path) == true, "\(String(describing: error))")
        }
    }

    @Test("inconsistent configurations are refused before OpenSSL is asked")
    func inconsistentConfiguration() {
        let bad: [TLSConfiguration] = [
            TLSConfiguration(role: .server, peerVerification: .none),
            .server(
                certificateChainPath: self.pki.serverCertificate,
                privateKeyPath: self.pki.serverKey,
                clientCertificates: .required
            ),
            .client(certificateChainPath: self.pki.aliceCertificate),
            .client(applicationProtocols: [""]),
            .client(serverHostname: ""),
        ]
        for configuration in bad {
            #expect(throws: TLSError.self) { _ = try TLSContext(configuration: configuration) }
        }
    }

    @Test("TLSError prints its code and message")
    func errorDescription() {
        let error = TLSError(code: .handshakeTimeout, message: "TLS handshake did not complete within 10 ms")
        #expect(error.description == "TLSError.handshakeTimeout: TLS handshake did not complete within 10 ms")
        #expect(TLSError.Code.unexpectedEOF != .protocolError)
    }
}
