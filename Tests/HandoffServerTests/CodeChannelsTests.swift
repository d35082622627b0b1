// Handoff — the code and notice channels on their own: what a webhook URL may
// be, what goes on the wire, and the development file's safety.

import Foundation
import HandoffCore
@testable import HandoffPolicy
@testable import HandoffServer
import NIOPosix
import Testing

@Suite("Code channels")
struct CodeChannelsTests {
    private let secret = Array("webhook-shared-secret-for-tests".utf8)
    private let delivery = CodeDelivery(
        tenant: .default, sessionID: "s", pendingActionID: "pa-1", summary: "Delete all my data", code: "123456", expiresAtMs: 1)

    @Test("http:// is refused to any host but loopback: codes would cross the network in clear", arguments: [
        "http://example.com/codes", "http://10.0.0.5:8080/x", "http://127.0.0.1.example.com/x", "http://user:pw@127.0.0.1/x",
    ])
    func clearTextRefused(_ url: String) {
        #expect(throws: CodeChannelError.self) {
            _ = try WebhookCodeChannel(url: url, secret: secret, group: MultiThreadedEventLoopGroup.singleton)
        }
        let message = (try? WebhookCodeChannel(url: url, secret: secret, group: MultiThreadedEventLoopGroup.singleton)).map { _ in "" }
        #expect(message == nil)
    }

    @Test("http:// to loopback and https:// to any host are accepted", arguments: [
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
            url: "http://[::1]:\(receiver.port)/hooks/a%2Fb?key=abc&x=1", secret: secret, group: MultiThreadedEventLoopGroup.singleton)
        try await channel.deliver(delivery)
        let seen = try #require(receiver.deliveries.first)
        #expect(seen.path == "/hooks/a%2Fb?key=abc&x=1")
        #expect(seen.host == "[::1]:\(receiver.port)")
        #expect(seen.signatureValid)
        await receiver.close()
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
}
