// Handoff — TLSHandler over real sockets on 127.0.0.1: the good path, every
// refusal the transport promises, and interop with `openssl s_client`.
import HandoffTLS
import NIOCore
import NIOPosix
import Testing

@Suite("TLS over sockets")
struct TLSSocketTests {
    let pki = TestPKI.shared

    @Test("good handshake, identities, echo, orderly close")
    func goodHandshake() async throws {
        try await withEventLoopGroup { group in
            let server = try await TLSTestServer.start(context: try self.pki.serverContext(), group: group)
            let client = try await TestClient.connect(port: server.port, context: try self.pki.clientContext(), group: group)
            try await client.log.wait(for: "client handshake") { !$0.handshakes.isEmpty }
            try await client.send("ping")
            try await client.log.wait(for: "echo") { $0.plaintext == "ping" }

            let serverInfo = try #require(server.log.handshakes.first)
            #expect(serverInfo.protocolVersion == "TLSv1.3")
            #expect(serverInfo.applicationProtocol == "handoff/1")
            #expect(serverInfo.peer?.subjectCommonName == "alice")
            #expect(serverInfo.peer?.uris == [TestPKI.aliceURI])
            let clientInfo = try #require(client.log.handshakes.first)
            #expect(clientInfo.peer?.dnsNames == ["localhost"])

            await client.close()
            try await server.log.wait(for: "server sees the close") { $0.sawInactive }
            #expect(server.log.errors.isEmpty, "server errors: \(server.log.errors)")
            #expect(client.log.errors.isEmpty, "client errors: \(client.log.errors)")
            await server.stop()
        }
    }

    @Test("client verifies an IP literal against the certificate's IP SAN")
    func ipAddressHostname() async throws {
        try await withEventLoopGroup { group in
            let server = try await TLSTestServer.start(context: try self.pki.serverContext(), group: group)
            let client = try await TestClient.connect(
                port: server.port,
                context: try self.pki.clientContext(hostname: "127.0.0.1"),
                group: group
            )
            try await client.log.wait(for: "handshake") { !$0.handshakes.isEmpty || !$0.errors.isEmpty }
            #expect(client.log.errors.isEmpty)
            await client.close()

            // A name the certificate does not carry is refused.
            let wrong = try await TestClient.connect(
                port: server.port,
                context: try self.pki.clientContext(hostname: "example.com"),
                group: group
            )
            try await wrong.log.wait(for: "refusal") { !$0.errors.isEmpty }
            #expect(wrong.log.errors.first?.message.contains("hostname mismatch") == true)
            await server.stop()
        }
    }

    @Test("a server certificate from an unknown CA is refused")
    func unknownCA() async throws {
        try await self.expectClientRefused(
            serverContext: try self.pki.serverContext(
                certificate: self.pki.otherServerCertificate,
                key: self.pki.otherServerKey
            ),
            clientMessage: "certificate verify failed: unable to get local issuer certificate"
        )
    }

    @Test("an expired server certificate is refused")
    func expiredServerCertificate() async throws {
        try await self.expectClientRefused(
            serverContext: try self.pki.serverContext(
                certificate: self.pki.expiredServerCertificate,
                key: self.pki.expiredServerKey
            ),
            clientMessage: "certificate verify failed: certificate has expired"
        )
    }

    @Test("a missing client certificate is refused when required")
    func missingClientCertificate() async throws {
        try await self.expectServerRefuses(
            client: .none,
            serverMessage: "peer did not return a certificate"
        )
    }

    @Test("a revoked client certificate is refused (CRL)")
    func revokedClientCertificate() async throws {
        try await self.expectServerRefuses(
            client: .bob,
            crl: self.pki.crl,
            serverMessage: "certificate verify failed: certificate revoked"
        )
        // The same CRL lets alice in.
        try await withEventLoopGroup { group in
            let server = try await TLSTestServer.start(
                context: try self.pki.serverContext(crl: self.pki.crl),
                group: group
            )
            let client = try await TestClient.connect(port: server.port, context: try self.pki.clientContext(), group: group)
            try await client.send("still welcome")
            try await client.log.wait(for: "echo") { $0.plaintext == "still welcome" }
            await client.close()
            await server.stop()
        }
    }

    /// CRLs are checked along the whole chain: a leaf check alone would let the revoked intermediate's client in.
    @Test(
        "a client certificate from an intermediate CA the root revoked is refused; from one in good standing, let in",
        .enabled(if: ChildProcess.hasOpenSSL))
    func revokedIntermediate() async throws {
        let cas = try await IntermediateCAs.make(count: 1)
        let client = try cas.client(from: 1)
        let clientContext = try self.pki.clientContext(identity: .chain(client.chain, key: client.key))
        let revoked = try self.pki.serverContext(clientCA: cas.root, crl: try cas.revocationLists(revokingFirstIntermediate: true))
        let refusal = try await self.serverRefusal(server: revoked, client: clientContext)
        #expect(refusal?.message.contains("certificate verify failed: certificate revoked") == true, "\(String(describing: refusal))")

        let current = try self.pki.serverContext(clientCA: cas.root, crl: try cas.revocationLists(revokingFirstIntermediate: false))
        #expect(try await self.serverRefusal(server: current, client: clientContext) == nil)
    }

    /// The verify depth bounds the chain: maximumVerifyDepth intermediates pass, one more is refused.
    @Test("a client chain with more intermediates than the verify depth is refused", .enabled(if: ChildProcess.hasOpenSSL))
    func chainTooLong() async throws {
        let depth = Int(TLSConfiguration.maximumVerifyDepth)
        let cas = try await IntermediateCAs.make(count: depth + 1)
        let server = try self.pki.serverContext(clientCA: cas.root)
        let atLimit = try cas.client(from: depth)
        let atLimitContext = try self.pki.clientContext(identity: .chain(atLimit.chain, key: atLimit.key))
        #expect(try await self.serverRefusal(server: server, client: atLimitContext) == nil)

        let tooLong = try cas.client(from: depth + 1)
        let tooLongContext = try self.pki.clientContext(identity: .chain(tooLong.chain, key: tooLong.key))
        let refusal = try await self.serverRefusal(server: server, client: tooLongContext)
        #expect(refusal?.message.contains("certificate chain too long") == true, "\(String(describing: refusal))")
    }

    @Test("a client certificate from an unknown CA is refused")
    func clientFromUnknownCA() async throws {
        try await self.expectServerRefuses(
            client: .fromOtherCA,
            serverMessage: "certificate verify failed"
        )
    }

    @Test("a client offering the wrong ALPN protocol is refused")
    func wrongALPN() async throws {
        try await self.expectServerRefuses(
            applicationProtocols: ["h2"],
            serverMessage: "no application protocol"
        )
    }

    @Test("garbage bytes close the connection with an error, and the server carries on")
    func garbage() async throws {
        try await withEventLoopGroup { group in
            let server = try await TLSTestServer.start(context: try self.pki.serverContext(), group: group)
            let raw = try await TestClient.connect(port: server.port, context: nil, group: group)
            try await raw.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" + String(repeating: "\u{7}", count: 1000))
            try await raw.log.wait(for: "server to hang up") { $0.sawInactive }
            try await server.log.wait(for: "server error") { !$0.errors.isEmpty }
            #expect(server.log.errors.first?.code == .handshakeFailed)
            #expect(server.log.handshakes.isEmpty)

            let client = try await TestClient.connect(port: server.port, context: try self.pki.clientContext(), group: group)
            try await client.send("after garbage")
            try await client.log.wait(for: "echo") { $0.plaintext == "after garbage" }
            await client.close()
            await server.stop()
        }
    }

    @Test("handshake timeout closes a client that sends nothing")
    func handshakeTimeout() async throws {
        try await withEventLoopGroup { group in
            let server = try await TLSTestServer.start(
                context: try self.pki.serverContext(handshakeTimeout: 0.3),
                group: group
            )
            let start = ContinuousClock.now
            let raw = try await TestClient.connect(port: server.port, context: nil, group: group)
            try await raw.log.wait(for: "server to hang up", timeout: .seconds(5)) { $0.sawInactive }
            #expect(ContinuousClock.now - start >= .milliseconds(250))
            try await server.log.wait(for: "timeout error") { !$0.errors.isEmpty }
            #expect(server.log.errors.map(\.code) == [.handshakeTimeout])
            await server.stop()
        }
    }

    @Test("openssl s_client negotiates TLS 1.3 and ALPN handoff/1", .enabled(if: ChildProcess.hasOpenSSL))
    func opensslClient() async throws {
        try await withEventLoopGroup { group in
            let server = try await TLSTestServer.start(context: try self.pki.serverContext(), group: group)
            let sClient = try ChildProcess(
                ChildProcess.opensslPath,
                [
                    "s_client", "-connect", "127.0.0.1:\(server.port)", "-servername", "localhost",
                    "-alpn", "handoff/1", "-CAfile", self.pki.caCertificate,
                    "-cert", self.pki.aliceCertificate, "-key", self.pki.aliceKey,
                    "-verify_return_error", "-verify_hostname", "localhost",
                ]
            )
            sClient.write("hello from s_client\n")
            try await server.log.wait(for: "s_client's line") { $0.plaintext == "hello from s_client\n" }
            let deadline = ContinuousClock.now.advanced(by: .seconds(10))
            while !sClient.output.contains("hello from s_client"), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            sClient.closeInput()  // s_client sends close_notify and exits
            try await sClient.wait()
            let output = sClient.output
            #expect(output.contains("New, TLSv1.3"), "\(output)")
            #expect(output.contains("ALPN protocol: handoff/1"), "\(output)")
            #expect(output.contains("Verify return code: 0 (ok)"), "\(output)")
            #expect(server.log.handshakes.first?.peer?.subjectCommonName == "alice")
            try await server.log.wait(for: "server sees the close") { $0.sawInactive }
            #expect(server.log.errors.isEmpty, "server errors: \(server.log.errors)")
            await server.stop()
        }
    }

    @Test("a TLS 1.1 client is refused", .enabled(if: ChildProcess.hasOpenSSL))
    func tls11Refused() async throws {
        try await withEventLoopGroup { group in
            let server = try await TLSTestServer.start(context: try self.pki.serverContext(), group: group)
            // SECLEVEL=0 so Debian's OpenSSL is willing to offer TLS 1.1 at all:
            // the refusal must come from our server, not from the client.
            let sClient = try ChildProcess(
                ChildProcess.opensslPath,
                [
                    "s_client", "-connect", "127.0.0.1:\(server.port)", "-tls1_1",
                    "-cipher", "DEFAULT@SECLEVEL=0", "-alpn", "handoff/1",
                    "-CAfile", self.pki.caCertificate,
                    "-cert", self.pki.aliceCertificate, "-key", self.pki.aliceKey,
                ]
            )
            sClient.closeInput()
            let status = try await sClient.wait()
            try await server.log.wait(for: "server refusal") { !$0.errors.isEmpty }
            #expect(status != 0)
            #expect(server.log.handshakes.isEmpty)
            let error = try #require(server.log.errors.first)
            #expect(error.code == .handshakeFailed)
            #expect(error.message.contains("unsupported protocol"), "\(error)")
            #expect(sClient.output.contains("Cipher is (NONE)"), "\(sClient.output)")
            await server.stop()
        }
    }

    @Test("TLS 1.2 is accepted by default and refused with minimumVersion .tls13", .enabled(if: ChildProcess.hasOpenSSL))
    func tls12() async throws {
        let arguments = { (port: Int) in
            [
                "s_client", "-connect", "127.0.0.1:\(port)", "-tls1_2", "-alpn", "handoff/1",
                "-CAfile", self.pki.caCertificate, "-cert", self.pki.aliceCertificate, "-key", self.pki.aliceKey,
                "-verify_return_error",
            ]
        }
        try await withEventLoopGroup { group in
            let server = try await TLSTestServer.start(context: try self.pki.serverContext(), group: group)
            let sClient = try ChildProcess(ChildProcess.opensslPath, arguments(server.port))
            sClient.write("over TLS 1.2\n")
            try await server.log.wait(for: "s_client's line") { $0.plaintext == "over TLS 1.2\n" }
            sClient.closeInput()
            try await sClient.wait()
            #expect(sClient.output.contains("New, TLSv1.2"), "\(sClient.output)")
            #expect(sClient.output.contains("ALPN protocol: handoff/1"), "\(sClient.output)")
            let info = try #require(server.log.handshakes.first)
            #expect(info.protocolVersion == "TLSv1.2")
            #expect(info.cipher.hasPrefix("ECDHE-ECDSA-"))
            #expect(info.peer?.subjectCommonName == "alice")
            await server.stop()
        }
        try await withEventLoopGroup { group in
            let context = try TLSContext(
                configuration: .server(
                    certificateChainPath: self.pki.serverCertificate,
                    privateKeyPath: self.pki.serverKey,
                    minimumVersion: .tls13
                )
            )
            let server = try await TLSTestServer.start(context: context, group: group)
            let sClient = try ChildProcess(ChildProcess.opensslPath, arguments(server.port))
            sClient.closeInput()
            try await sClient.wait()
            try await server.log.wait(for: "server refusal") { !$0.errors.isEmpty }
            #expect(server.log.handshakes.isEmpty)
            #expect(server.log.errors.first?.message.contains("unsupported protocol") == true)
            await server.stop()
        }
    }

    // MARK: Helpers

    /// The client must fail its handshake with `clientMessage` in its error.
    private func expectClientRefused(serverContext: TLSContext, clientMessage: String) async throws {
        try await withEventLoopGroup { group in
            let server = try await TLSTestServer.start(context: serverContext, group: group)
            let client = try await TestClient.connect(port: server.port, context: try self.pki.clientContext(), group: group)
            try await client.log.wait(for: "client refusal") { !$0.errors.isEmpty }
            try await client.log.wait(for: "client closed") { $0.sawInactive }
            let error = try #require(client.log.errors.first)
            #expect(error.code == .handshakeFailed)
            #expect(error.message.contains(clientMessage), "\(error)")
            #expect(client.log.handshakes.isEmpty)
            // The server learns of it through the client's alert.
            try await server.log.wait(for: "server error") { !$0.errors.isEmpty }
            #expect(server.log.handshakes.isEmpty)
            await server.stop()
        }
    }

    /// Connects a client to a fresh server: nil once an echo came back,
    /// otherwise the server's handshake error.
    private func serverRefusal(server serverContext: TLSContext, client clientContext: TLSContext) async throws -> TLSError? {
        try await withEventLoopGroup { group in
            let server = try await TLSTestServer.start(context: serverContext, group: group)
            let client = try await TestClient.connect(port: server.port, context: clientContext, group: group)
            _ = try? await client.send("hello")
            try await server.log.wait(for: "echo or refusal") { !$0.errors.isEmpty || client.log.plaintext == "hello" }
            await client.close()
            await server.stop()
            return server.log.errors.first
        }
    }

    /// The server must refuse the client with `serverMessage` in its error,
    /// and the client must not get an echo through.
    private func expectServerRefuses(
        client identity: TestPKI.ClientIdentity = .alice,
        applicationProtocols: [String] = ["handoff/1"],
        crl: String? = nil,
        serverMessage: String
    ) async throws {
        try await withEventLoopGroup { group in
            let server = try await TLSTestServer.start(context: try self.pki.serverContext(crl: crl), group: group)
            let client = try await TestClient.connect(
                port: server.port,
                context: try self.pki.clientContext(identity: identity, applicationProtocols: applicationProtocols),
                group: group
            )
            _ = try? await client.send("let me in")
            try await server.log.wait(for: "server refusal") { !$0.errors.isEmpty }
            let error = try #require(server.log.errors.first)
            #expect(error.code == .handshakeFailed)
            #expect(error.message.contains(serverMessage), "\(error)")
            #expect(server.log.handshakes.isEmpty)
            #expect(server.log.plaintext.isEmpty)
            try await client.log.wait(for: "client closed") { $0.sawInactive }
            #expect(!client.log.errors.isEmpty)
            #expect(client.log.plaintext.isEmpty)
            await server.stop()
        }
    }
}
