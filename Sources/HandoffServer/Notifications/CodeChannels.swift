// Handoff — the channels that bring a multi-factor code to the end user, and
// approval notices to approvers and requesters: a webhook (an HTTP POST of
// JSON, signed with HMAC-SHA256 so the receiver can check it came from this
// server) and a file, for development. Neither logs the code.

import Crypto
import Foundation
import HandoffCore
public import HandoffDesks
import HandoffPolicy
import HandoffTLS
public import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Appends each code as a JSON line to a file made with mode 0600 (development:
/// the user's "phone" is `tail -f`). The file stays open between lines; it is
/// opened again when the path no longer names it (removed, rotated, replaced).
public struct FileCodeChannel: CodeChannel {
    public let name = "file"
    public let path: String
    private let file = OpenFile()

    public init(path: String) {
        self.path = path
    }

    public func deliver(_ delivery: CodeDelivery) async throws {
        try append(delivery.json)
    }

    func append(_ json: JSONValue) throws {
        let line = Array(json.serialized.utf8) + [UInt8(ascii: "\n")]
        try file.state.withLock { open in
            if let current = open {
                var info = stat()
                if lstat(path, &info) != 0 || UInt64(info.st_dev) != current.device || UInt64(info.st_ino) != current.inode {
                    // Removed, rotated or replaced: the next line goes to the file at the path.
                    close(current.descriptor)
                    open = nil
                } else if info.st_mode & 0o077 != 0, fchmod(current.descriptor, 0o600) != 0 {
                    // Made readable by others since it was opened: private again before a code goes in.
                    throw CodeChannelError("cannot make \(path) private (chmod 600): \(String(cString: strerror(errno)))")
                }
            }
            if open == nil { open = try Self.openFile(path) }
            let descriptor = open!.descriptor
            let written = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            guard written == line.count else {
                let reason = String(cString: strerror(errno))
                close(descriptor)
                open = nil
                throw CodeChannelError("cannot write \(path): \(reason)")
            }
        }
    }

    /// The open file and its identity.
    struct Opened {
        let descriptor: Int32
        let device: UInt64
        let inode: UInt64
    }

    /// The file, open between lines (closed when the channel goes).
    final class OpenFile: Sendable {
        let state = Mutex<Opened?>(nil)

        deinit {
            state.withLock { open in
                if let open { close(open.descriptor) }
            }
        }
    }

    private static func openFile(_ path: String) throws -> Opened {
        // O_NOFOLLOW: a link planted at the path cannot send codes elsewhere.
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            let reason = errno == ELOOP ? "it is a symbolic link" : String(cString: strerror(errno))
            throw CodeChannelError("cannot open \(path): \(reason)")
        }
        // A file that was there before keeps no wider mode than one made here.
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw CodeChannelError("cannot write \(path): not a regular file")
        }
        if info.st_mode & 0o077 != 0, fchmod(fd, 0o600) != 0 {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw CodeChannelError("cannot make \(path) private (chmod 600): \(reason)")
        }
        return Opened(descriptor: fd, device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }
}

/// POSTs each code as JSON to an https:// URL (http:// only to a loopback
/// host: codes must not cross a network in clear); over https the
/// receiver's certificate is verified against the system's trust store or
/// `caFile`, and its name against the URL's host. Headers: `X-Handoff-Timestamp`
/// (ms since 1970) and `X-Handoff-Signature: sha256=<hex>`, the HMAC-SHA256 with
/// the shared secret over "<timestamp>.<body>". A 2xx answer within `timeout`
/// (connection, handshake and answer together) is delivery.
public struct WebhookCodeChannel: CodeChannel {
    public let name = "webhook"
    let host: String
    let port: Int
    let path: String
    let secret: [UInt8]
    let timeout: TimeAmount
    let group: any EventLoopGroup
    /// Set for an https:// URL.
    let tls: TLSContext?

    /// - Parameter caFile: PEM bundle the receiver's certificate must chain to
    ///   (https only); nil: the system's trust store.
    /// - Throws: when `url` is not http(s)://HOST[:PORT]/PATH, or the TLS
    ///   settings do not load (the reason from OpenSSL).
    public init(url: String, secret: [UInt8], caFile: String? = nil, timeout: TimeAmount = .seconds(5), group: any EventLoopGroup) throws {
        guard let parsed = URLComponents(string: url), let scheme = parsed.scheme?.lowercased(), ["http", "https"].contains(scheme),
            let written = parsed.host, !written.isEmpty, parsed.user == nil, parsed.password == nil, !secret.isEmpty
        else {
            throw CodeChannelError("webhook url \(url) is not https://HOST[:PORT]/PATH, or its secret is empty")
        }
        // An IPv6 literal is kept without its brackets (they belong to the URL and the Host header).
        let host = written.hasPrefix("[") && written.hasSuffix("]") ? String(written.dropFirst().dropLast()) : written
        if scheme == "http" {
            guard Self.isLoopback(host) else {
                throw CodeChannelError(
                    "webhook url \(url) is http:// to a host that is not loopback; codes and notices would cross the network in clear: use https://")
            }
            if caFile != nil { throw CodeChannelError("webhook url \(url) is http://; ca_file applies to https:// only") }
        }
        if scheme == "https" {
            do {
                tls = try TLSContext(
                    configuration: .client(
                        trustRootsPath: caFile, serverHostname: host, applicationProtocols: [], handshakeTimeout: timeout))
            } catch {
                throw CodeChannelError("webhook \(url): \(error)")
            }
        } else {
            tls = nil
        }
        self.host = host
        self.port = parsed.port ?? (scheme == "https" ? 443 : 80)
        // Sent as written: percent-escapes kept, the query string too.
        let path = parsed.percentEncodedPath.isEmpty ? "/" : parsed.percentEncodedPath
        self.path = parsed.percentEncodedQuery.map { "\(path)?\($0)" } ?? path
        self.secret = secret
        self.timeout = timeout
        self.group = group
    }

    /// 127.0.0.0/8, ::1 and localhost.
    static func isLoopback(_ host: String) -> Bool {
        if host.lowercased() == "localhost" || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127"
            && octets.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.utf8.allSatisfy { (0x30...0x39).contains($0) } && UInt8($0) != nil }
    }

    /// The Host header: an IPv6 address goes in brackets (RFC 7230, 5.4).
    var hostHeader: String {
        let bracketed = host.contains(":") ? "[\(host)]" : host
        return "\(bracketed):\(port)"
    }

    /// The signature a receiver recomputes to check a delivery.
    public static func signature(secret: [UInt8], timestamp: String, body: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(timestamp.utf8) + Array(".".utf8) + body, using: SymmetricKey(data: secret))
        return "sha256=" + mac.hexString
    }

    public func deliver(_ delivery: CodeDelivery) async throws {
        try await post(delivery.json)
    }

    func post(_ json: JSONValue) async throws {
        let body = Array(json.serialized.utf8)
        let timestamp = String(Int64(Date().timeIntervalSince1970 * 1000))
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: hostHeader)
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Connection", value: "close")
        headers.add(name: "X-Handoff-Timestamp", value: timestamp)
        headers.add(name: "X-Handoff-Signature", value: Self.signature(secret: secret, timestamp: timestamp, body: body))
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: headers)

        let loop = group.next()
        // One deadline for the whole delivery, not one per stage.
        let deadline = NIODeadline.now() + timeout
        let answered = loop.makePromise(of: HTTPResponseStatus.self)
        let connecting = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { [tls] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(TLSHandler(context: tls)) }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseStatusHandler(answered: answered))
                }
            }
            .connect(host: host, port: port)
        let channel: any Channel
        do {
            channel = try await connecting.get()
        } catch {
            answered.fail(error)  // never left pending
            throw error
        }
        let timer = loop.scheduleTask(deadline: deadline) { [host, port, timeout] in
            answered.fail(CodeChannelError("webhook \(host):\(port) did not answer within \(timeout)"))
            channel.close(promise: nil)
        }
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        do {
            try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        } catch {
            _ = try await answered.futureResult.get()  // the deadline's error, when it closed the channel
            throw error
        }
        let status = try await answered.futureResult.get()
        guard (200..<300).contains(status.code) else {
            let refused = (400..<500).contains(status.code) && status.code != 408 && status.code != 429
            throw CodeChannelError("webhook \(host):\(port) answered \(status.code)", permanent: refused)
        }
    }
}

/// Completes with the response's status (or fails when the connection ends first).
private final class ResponseStatusHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    let answered: EventLoopPromise<HTTPResponseStatus>

    init(answered: EventLoopPromise<HTTPResponseStatus>) {
        self.answered = answered
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) { answered.succeed(head.status) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        answered.fail(CodeChannelError("the webhook closed the connection without answering"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        answered.fail(error)
        context.close(promise: nil)
    }
}

/// A delivery that failed; the text names the channel and why, never the code.
public struct CodeChannelError: DeliveryFailure, CustomStringConvertible {
    public let description: String
    /// The receiver refused the request itself (a 4xx but 408 and 429): sending it again would not help.
    public let isPermanent: Bool
    init(_ description: String, permanent: Bool = false) {
        self.description = description
        self.isPermanent = permanent
    }
}

// Encoded by HandoffCore's canonical JSON writer (sorted keys, no
// whitespace), not Foundation's JSONSerialization, which took 7% of the
// server's CPU on a run of refunds that each queued a notice (perf).
extension CodeDelivery {
    var json: JSONValue {
        .object([
            "tenant_id": .string(tenant.rawValue), "session_id": .string(sessionID), "pending_action_id": .string(pendingActionID),
            "summary": .string(summary), "code": .string(code), "expires_at_unix_ms": .integer(expiresAtMs),
        ])
    }
}

extension DeskNotice {
    var json: JSONValue {
        .object([
            "notice_id": .string(id), "kind": .string(kind), "tenant_id": .string(tenant.rawValue), "approval_id": .string(approvalID),
            "session_id": .string(sessionID), "level": .integer(Int64(level)), "recipients": .array(recipients.map(JSONValue.string)),
            "summary": .string(summary), "approval_revision": .integer(revision), "occurred_at_unix_ms": .integer(occurredAtMs),
        ])
    }
}

extension FileCodeChannel: NoticeChannel {
    public func notify(_ notice: DeskNotice) async throws {
        try append(notice.json)
    }
}

extension WebhookCodeChannel: NoticeChannel {
    public func notify(_ notice: DeskNotice) async throws {
        try await post(notice.json)
    }
}
