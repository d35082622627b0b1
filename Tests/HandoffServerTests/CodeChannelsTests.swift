// Handoff — the code and notice channels on their own: what a webhook URL may
// be, what goes on the wire, and the development file's safety.

import Foundation
import HandoffCore
import HandoffTLS
import NIOPosix
import Testing

@testable import HandoffDesks
@testable import HandoffPolicy
@testable import HandoffServer

@Suite("Code channels")
struct CodeChannelsTests {
    private let secret = Array("webhook-shared-secret-for-tests".utf8)
    private let delivery = CodeDelivery(
        tenant: .default, sessionID: "s", pendingActionID: "pa-1", summary: "Delete all my data", code: "123456", expiresAtMs: 1)

    @Test(
        "http:// is refused to any host but loopback: codes would cross the network in clear",
        arguments: [
            "http://example.com/codes", "http://10.0.0.5:8080/x", "http://127.0.0.1.example.com/x", "http://user:pw@127.0.0.1/x",
        ])
    func clearTextRefused(_ url: String) {
        #expect(throws: CodeChannelError.self) {
            _ = try WebhookCodeChannel(url: url, secret: secret, group: MultiThreadedEventLoopGroup.singleton)
        }
        let message = (try? WebhookCodeChannel(url: url, secret: secret, group: MultiThreadedEventLoopGroup.singleton)).map { _ in "" }
        #expect(message == nil)
    }

    @Test(
        "http:// to loopback and https:// to any host are accepted",
        arguments: [
            "http://127.0.0.1:9/x", "http://[::1]:9/x", "http://localhost/x", "https://example.com/codes",
        ])
    func accepted(_ url: String) throws {
        _ = try WebhookCodeChannel(url: url, secret: secret, group: MultiThreadedEventLoopGroup.singleton)
    }

    @Test("the request keeps the URL's path as written (escapes and query string) and a bracketed IPv6 Host")
    func requestLine() async throws {
        let receiver = try await WebhookReceiver(secret: secret, host: "::1")
        defer { Task { await receiver.close() } }
        let channel = try WebhookCodeChannel(
            url: "http://[::1]:\(receiver.port)/hooks/a%2Fb?key=abc&x=1", secret: secret, timeout: .seconds(30),
            group: MultiThreadedEventLoopGroup.singleton)
        try await channel.deliver(delivery)
        let seen = try #require(receiver.deliveries.first)
        #expect(seen.path == "/hooks/a%2Fb?key=abc&x=1")
        #expect(seen.host == "[::1]:\(receiver.port)")
        #expect(seen.signatureValid)
        await receiver.close()
    }

    /// Over https the receiver's name must match the URL's host: a certificate chaining to ca_file is not enough.
    @Test("https: a receiver whose certificate chains to ca_file but names another host is refused; one named for the URL's host gets the delivery")
    func httpsReceiverName() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        try DevelopmentPKI.issueCertificate(
            certificatePath: fixtures.path("elsewhere.pem"), keyPath: fixtures.path("elsewhere.key"),
            issuerCertificatePath: fixtures.path("ca.pem"), issuerKeyPath: fixtures.path("ca.key"),
            commonName: "elsewhere.example", subjectAlternativeNames: ["elsewhere.example"], usage: .server)
        /// An https receiver presenting `<name>.pem`, and a channel to https://localhost:<its port>.
        func receiver(_ name: String) async throws -> (WebhookReceiver, WebhookCodeChannel) {
            let tls = try TLSContext(
                configuration: .server(
                    certificateChainPath: fixtures.path("\(name).pem"), privateKeyPath: fixtures.path("\(name).key"), applicationProtocols: []))
            let receiver = try await WebhookReceiver(secret: secret, tls: tls)
            let channel = try WebhookCodeChannel(
                url: "https://localhost:\(receiver.port)/codes", secret: secret, caFile: fixtures.path("ca.pem"),
                timeout: .seconds(30), group: MultiThreadedEventLoopGroup.singleton)
            return (receiver, channel)
        }

        let (impostor, refused) = try await receiver("elsewhere")
        let error = await #expect(throws: (any Error).self) { try await refused.deliver(delivery) }
        #expect(String(describing: error).contains("hostname mismatch"), "\(String(describing: error))")
        #expect(impostor.deliveries.isEmpty)
        await impostor.close()

        let (named, accepted) = try await receiver("server")  // DNS:localhost
        try await accepted.deliver(delivery)
        #expect(named.deliveries.first?.signatureValid == true)
        #expect(named.deliveries.first?.body["code"] == "123456")
        await named.close()
    }

    @Test("the development file: a symbolic link at its path is refused; a file others could read is made 0600 before a code goes in")
    func fileChannel() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("codes-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let target = (directory as NSString).appendingPathComponent("elsewhere")
        try "".write(toFile: target, atomically: true, encoding: .utf8)
        let link = (directory as NSString).appendingPathComponent("codes.jsonl")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        let linked = FileCodeChannel(path: link)
        do {
            try linked.append(delivery.json)
            Issue.record("a code was written through a symbolic link")
        } catch {
            #expect("\(error)".contains("symbolic link"), "\(error)")
        }
        #expect(try String(contentsOfFile: target, encoding: .utf8).isEmpty)

        let open = (directory as NSString).appendingPathComponent("open.jsonl")
        try "".write(toFile: open, atomically: true, encoding: .utf8)
        chmod(open, 0o644)
        try FileCodeChannel(path: open).append(delivery.json)
        let mode = try FileManager.default.attributesOfItem(atPath: open)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try String(contentsOfFile: open, encoding: .utf8).contains("123456"))
    }

    @Test("the development file stays open between lines, and is opened again when removed, rotated, or replaced by a link (refused)")
    func fileChannelFollowsThePath() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("codes-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = (directory as NSString).appendingPathComponent("codes.jsonl")
        let channel = FileCodeChannel(path: path)
        func lines(_ file: String) throws -> Int { try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").count }
        try channel.append(delivery.json)
        try channel.append(delivery.json)
        #expect(try lines(path) == 2)
        // Made readable by others while open: private again before the next code goes in.
        chmod(path, 0o644)
        try channel.append(delivery.json)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
        #expect(try lines(path) == 3)
        // Rotated: the next line goes to a new file at the path, not to the old one.
        let rotated = path + ".1"
        try FileManager.default.moveItem(atPath: path, toPath: rotated)
        try channel.append(delivery.json)
        #expect(try lines(rotated) == 3 && lines(path) == 1)
        // Removed: made again, 0600.
        try FileManager.default.removeItem(atPath: path)
        try channel.append(delivery.json)
        #expect(try lines(path) == 1)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
        // Replaced by a link: refused, nothing written through it.
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: rotated)
        #expect(throws: (any Error).self) { try channel.append(delivery.json) }
        #expect(try lines(rotated) == 3)
    }
}
