// Handoff — TLSHandler without sockets: a client and a server handler on two
// EmbeddedChannels sharing one loop, bytes shuttled between them.
import HandoffTLS
import NIOCore
import NIOEmbedded
import Testing

@Suite("TLSHandler back to back")
struct TLSHandlerEmbeddedTests {
    let pki = TestPKI.shared

    private func pair(
        client: TestPKI.ClientIdentity = .alice,
        clientProtocols: [String] = ["handoff/1"],
        clientCertificates: TLSConfiguration.PeerVerification = .required,
        serverEchoes: Bool = false,
        serverHandshakeTimeout: Double = 10
    ) throws -> BackToBackEmbeddedChannel {
        try BackToBackEmbeddedChannel(
            clientContext: self.pki.clientContext(identity: client, applicationProtocols: clientProtocols),
            serverContext: self.pki.serverContext(
                clientCertificates: clientCertificates,
                handshakeTimeout: serverHandshakeTimeout
            ),
            serverEchoes: serverEchoes
        )
    }

    @Test("handshake: TLS 1.3, ALPN handoff/1, identities on both sides", arguments: [nil, 1, 7] as [Int?])
    func handshake(chunkSize: Int?) throws {
        let b2b = try self.pair()
        defer { b2b.finish() }
        try b2b.activate()
        try b2b.interact(chunkSize: chunkSize)

        #expect(b2b.clientLog.errors.isEmpty)
        #expect(b2b.serverLog.errors.isEmpty)
        let server = try #require(b2b.serverLog.handshakes.first)
        let client = try #require(b2b.clientLog.handshakes.first)
        #expect(b2b.serverLog.handshakes.count == 1)
        #expect(b2b.clientLog.handshakes.count == 1)
        #expect(server.protocolVersion == "TLSv1.3")
        #expect(client.protocolVersion == "TLSv1.3")
        #expect(server.applicationProtocol == "handoff/1")
        #expect(client.applicationProtocol == "handoff/1")
        #expect(server.cipher.hasPrefix("TLS_"))
        // The server sees who the client is.
        let peer = try #require(server.peer)
        #expect(peer.subjectCommonName == "alice")
        #expect(peer.uris == [TestPKI.aliceURI])
        #expect(peer.sha256Fingerprint == (try DevelopmentPKI.readCertificate(path: self.pki.aliceCertificate)).sha256Fingerprint)
        #expect(peer.sha256Fingerprint.count == 64)
        // The client sees the server's names.
        let serverPeer = try #require(client.peer)
        #expect(serverPeer.dnsNames == ["localhost"])
        #expect(serverPeer.subjectCommonName == "localhost")
    }

    @Test("plaintext both ways, whole and byte at a time", arguments: [nil, 1, 3] as [Int?])
    func plaintextBothWays(chunkSize: Int?) throws {
        let b2b = try self.pair()
        defer { b2b.finish() }
        try b2b.activate()
        try b2b.interact(chunkSize: chunkSize)

        let toServer = b2b.send("hello from the client", on: b2b.client)
        let toClient = b2b.send("hello from the server", on: b2b.server)
        try b2b.interact(chunkSize: chunkSize)
        #expect(b2b.serverLog.plaintext == "hello from the client")
        #expect(b2b.clientLog.plaintext == "hello from the server")
        try toServer.wait()
        try toClient.wait()

        // A larger message spans several records and several reads.
        let big = String(repeating: "0123456789abcdef", count: 5000)  // 80 KB
        b2b.send(big, on: b2b.client)
        try b2b.interact(chunkSize: chunkSize.map { $0 * 1000 })
        #expect(b2b.serverLog.plaintext == "hello from the client" + big)
        #expect(b2b.clientLog.errors.isEmpty && b2b.serverLog.errors.isEmpty)
    }

    @Test("writes before the handshake are buffered and sent after it, with their promises")
    func writesBeforeHandshake() throws {
        let b2b = try self.pair()
        defer { b2b.finish() }
        let early = b2b.client.write(ByteBuffer(string: "early "))
        let flushed = b2b.client.writeAndFlush(ByteBuffer(string: "bird"))
        try b2b.activate()
        b2b.loop.run()
        // Nothing is encrypted yet: only the ClientHello goes out.
        let earlyDone = CompletionFlag(early)
        let flushedDone = CompletionFlag(flushed)
        #expect(!earlyDone.isDone && !flushedDone.isDone)
        try b2b.interact()
        #expect(b2b.serverLog.plaintext == "early bird")
        try early.wait()
        try flushed.wait()
        // The handshake event comes before the data.
        #expect(b2b.serverLog.all.firstIndex(where: { if case .handshake = $0 { true } else { false } })! == 0)
    }

    @Test("unflushed writes wait for a flush; coalesced writes arrive in order")
    func flushSemantics() throws {
        let b2b = try self.pair()
        defer { b2b.finish() }
        try b2b.activate()
        try b2b.interact()
        var promises: [EventLoopFuture<Void>] = []
        for index in 0..<50 {
            promises.append(b2b.client.write(ByteBuffer(string: "\(index),")))
        }
        try b2b.interact()
        #expect(b2b.serverLog.plaintext.isEmpty)
        let flags = promises.map(CompletionFlag.init)
        #expect(flags.allSatisfy { !$0.isDone })
        b2b.client.flush()
        try b2b.interact()
        #expect(b2b.serverLog.plaintext == (0..<50).map { "\($0)," }.joined())
        for promise in promises { try promise.wait() }
    }

    @Test("echo through the server handler, byte at a time")
    func echo() throws {
        let b2b = try self.pair(serverEchoes: true)
        defer { b2b.finish() }
        try b2b.activate()
        try b2b.interact(chunkSize: 1)
        b2b.send("ping", on: b2b.client)
        try b2b.interact(chunkSize: 1)
        #expect(b2b.clientLog.plaintext == "ping")
    }

    @Test("orderly close sends close_notify; the peer answers and closes cleanly")
    func orderlyClose() throws {
        let b2b = try self.pair()
        defer { b2b.finish() }
        try b2b.activate()
        try b2b.interact()
        // Written but not flushed: close sends it ahead of close_notify.
        let lastWords = b2b.client.write(ByteBuffer(string: "last words"))
        let closed = b2b.client.close()
        b2b.loop.run()
        // The client's final flight is one buffer: the data record, then an
        // encrypted alert record (TLS 1.3 hides the content type, so check the
        // shape: two application_data records, the second holding a 2-byte alert).
        let finalFlight = try #require(try b2b.client.readOutbound(as: ByteBuffer.self))
        let records = Self.records(in: finalFlight)
        #expect(records.count == 2)
        #expect(records.last?.contentType == 23)
        #expect(records.last?.length == 2 + 1 + 16)  // alert + inner type + AEAD tag
        try b2b.server.writeInbound(finalFlight)
        try b2b.interact()
        try closed.wait()
        try lastWords.wait()
        #expect(!b2b.client.isActive)
        #expect(!b2b.server.isActive)
        #expect(b2b.serverLog.plaintext == "last words")
        #expect(b2b.serverLog.errors.isEmpty, "server errors: \(b2b.serverLog.errors)")
        #expect(b2b.clientLog.errors.isEmpty, "client errors: \(b2b.clientLog.errors)")
        #expect(b2b.serverLog.sawInactive)
        // Writing after close fails.
        #expect(throws: (any Error).self) { try b2b.client.writeAndFlush(ByteBuffer(string: "x")).wait() }
    }

    @Test("EOF without close_notify after the handshake is unexpectedEOF")
    func truncation() throws {
        let b2b = try self.pair()
        defer { b2b.finish() }
        try b2b.activate()
        try b2b.interact()
        b2b.server.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        b2b.loop.run()
        #expect(b2b.serverLog.errors.map(\.code) == [.unexpectedEOF])
        #expect(!b2b.server.isActive)
    }

    @Test(
        "garbage instead of a ClientHello fails the handshake and closes",
        arguments: [
            "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "\u{16}\u{03}\u{01}\u{00}\u{05}hello",
            String(repeating: "\u{00}", count: 300),
        ])
    func garbageHandshake(garbage: String) throws {
        let b2b = try self.pair()
        defer { b2b.finish() }
        try b2b.activate()
        try b2b.server.writeInbound(ByteBuffer(string: garbage))
        b2b.loop.run()
        let error = try #require(b2b.serverLog.errors.first)
        #expect(error.code == .handshakeFailed)
        #expect(error.message.hasPrefix("TLS handshake failed: "))
        #expect(!b2b.server.isActive)
        // More bytes after the failure are dropped without a second error.
        _ = try? b2b.server.writeInbound(ByteBuffer(string: garbage))
        #expect(b2b.serverLog.errors.count == 1)
    }

    @Test("corrupted record after the handshake is a protocol error")
    func corruptedRecord() throws {
        let b2b = try self.pair()
        defer { b2b.finish() }
        try b2b.activate()
        try b2b.interact()
        b2b.send("tamper with me", on: b2b.client)
        b2b.loop.run()
        var record = try #require(try b2b.client.readOutbound(as: ByteBuffer.self))
        let last = record.writerIndex - 1
        record.setInteger(record.getInteger(at: last, as: UInt8.self)! ^ 0x01, at: last)
        try b2b.server.writeInbound(record)
        b2b.loop.run()
        let error = try #require(b2b.serverLog.errors.first)
        #expect(error.code == .protocolError)
        #expect(error.message.contains("bad record mac") || error.message.contains("decryption failed"))
        #expect(b2b.serverLog.plaintext.isEmpty)
        #expect(!b2b.server.isActive)
    }

    @Test("handshake timeout fires when the client sends nothing")
    func handshakeTimeout() throws {
        let b2b = try self.pair(serverHandshakeTimeout: 0.5)
        defer { b2b.finish() }
        try b2b.activate()
        b2b.loop.advanceTime(by: .milliseconds(499))
        #expect(b2b.serverLog.errors.isEmpty)
        b2b.loop.advanceTime(by: .milliseconds(1))
        #expect(b2b.serverLog.errors.map(\.code) == [.handshakeTimeout])
        #expect(!b2b.server.isActive)
    }

    @Test("a completed handshake cancels the timeout")
    func timeoutCancelled() throws {
        let b2b = try self.pair(serverHandshakeTimeout: 0.5)
        defer { b2b.finish() }
        try b2b.activate()
        try b2b.interact()
        b2b.loop.advanceTime(by: .seconds(5))
        #expect(b2b.serverLog.errors.isEmpty)
        #expect(b2b.server.isActive)
    }

    @Test("a client offering another ALPN protocol is refused with no_application_protocol")
    func wrongALPN() throws {
        let b2b = try self.pair(clientProtocols: ["h2", "http/1.1"])
        defer { b2b.finish() }
        try b2b.activate()
        try b2b.interact()
        let serverError = try #require(b2b.serverLog.errors.first)
        #expect(serverError.code == .handshakeFailed)
        #expect(serverError.message.contains("no application protocol"))
        let clientError = try #require(b2b.clientLog.errors.first)
        #expect(clientError.message.contains("no application protocol"))
        #expect(b2b.serverLog.handshakes.isEmpty && b2b.clientLog.handshakes.isEmpty)
    }

    @Test("a client offering no ALPN at all is refused")
    func noALPN() throws {
        let b2b = try self.pair(clientProtocols: [])
        defer { b2b.finish() }
        try b2b.activate()
        try b2b.interact()
        let serverError = try #require(b2b.serverLog.errors.first)
        #expect(serverError.message.contains("no application protocol"))
        #expect(serverError.message.contains("client offered no ALPN protocol"))
        #expect(b2b.clientLog.errors.first?.message.contains("no application protocol") == true)
        #expect(b2b.serverLog.handshakes.isEmpty)
    }

    @Test("optional client certificates: no certificate means no peer identity")
    func optionalClientCertificate() throws {
        let b2b = try self.pair(client: .none, clientCertificates: .optional)
        defer { b2b.finish() }
        try b2b.activate()
        try b2b.interact()
        let server = try #require(b2b.serverLog.handshakes.first)
        #expect(server.peer == nil)
        #expect(b2b.serverLog.errors.isEmpty)
    }

    @Test("required client certificate missing: the server refuses")
    func missingClientCertificate() throws {
        let b2b = try self.pair(client: .none)
        defer { b2b.finish() }
        try b2b.activate()
        try b2b.interact()
        let serverError = try #require(b2b.serverLog.errors.first)
        #expect(serverError.message.contains("peer did not return a certificate"))
        #expect(b2b.serverLog.handshakes.isEmpty)
        // TLS 1.3: the client finished first, then learns of the refusal.
        #expect(b2b.clientLog.errors.first?.message.contains("certificate required") == true)
        #expect(!b2b.server.isActive && !b2b.client.isActive)
    }

    /// TLS records in a buffer: (content type, length) pairs.
    static func records(in buffer: ByteBuffer) -> [(contentType: UInt8, length: Int)] {
        var buffer = buffer
        var records: [(UInt8, Int)] = []
        while let type = buffer.readInteger(as: UInt8.self),
            buffer.readInteger(as: UInt16.self) != nil,
            let length = buffer.readInteger(as: UInt16.self),
            buffer.readSlice(length: Int(length)) != nil
        {
            records.append((type, Int(length)))
        }
        return records
    }
}
