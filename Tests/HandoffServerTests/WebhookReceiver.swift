// Handoff — a real HTTP listener on 127.0.0.1 for the webhook channel's tests
// (HTTPS when given a TLS context): it checks each delivery's signature like a
// real receiver would and keeps what arrived.

import Foundation
import HandoffServer
import HandoffTLS
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

final class WebhookReceiver: Sendable {
    struct Delivery: Sendable {
        let path: String
        /// The Host header as it arrived.
        let host: String
        let body: [String: String]
        let signatureValid: Bool
    }

    let secret: [UInt8]
    let port: Int
    private let channel: any Channel
    private let received = Mutex<[Delivery]>([])
    /// Answer with this status (500 to test a failing receiver).
    let status = Mutex<HTTPResponseStatus>(.ok)
    /// Answers for the next deliveries, in order, before `status` applies again.
    let script = Mutex<[HTTPResponseStatus]>([])

    /// `tls`: serve HTTPS with this server context (its ALPN list empty, as the webhook offers none).
    init(secret: [UInt8], host: String = "127.0.0.1", tls: TLSContext? = nil) async throws {
        self.secret = secret
        let box = Mutex<WebhookReceiver?>(nil)
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(TLSHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(receiver: { box.withLock { $0 } }))
                }
            }
            .bind(host: host, port: 0).get()
        port = channel.localAddress!.port!
        box.withLock { $0 = self }
    }

    var deliveries: [Delivery] { received.withLock { $0 } }

    func close() async {
        try? await channel.close()
    }

    fileprivate func accept(head: HTTPRequestHead, body: [UInt8]) -> HTTPResponseStatus {
        let timestamp = head.headers["X-Handoff-Timestamp"].first ?? ""
        let signature = head.headers["X-Handoff-Signature"].first ?? ""
        let valid = signature == WebhookCodeChannel.signature(secret: secret, timestamp: timestamp, body: body)
        let json = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
        received.withLock {
            $0.append(
                Delivery(
                    path: head.uri, host: head.headers["Host"].first ?? "", body: json.mapValues { "\($0)" }, signatureValid: valid))
        }
        if let scripted = script.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return scripted }
        return status.withLock { $0 }
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let receiver: @Sendable () -> WebhookReceiver?
        var head: HTTPRequestHead?
        var body: [UInt8] = []

        init(receiver: @escaping @Sendable () -> WebhookReceiver?) {
            self.receiver = receiver
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): self.head = head
            case .body(var buffer): body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                let status = head.flatMap { receiver()?.accept(head: $0, body: body) } ?? .internalServerError
                var headers = HTTPHeaders()
                headers.add(name: "Content-Length", value: "0")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                head = nil
                body = []
            }
        }
    }
}
