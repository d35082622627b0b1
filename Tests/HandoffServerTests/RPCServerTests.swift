// Handoff — the server over real TLS sockets: identity, failures a client
// sees with their reason, graceful shutdown with calls in flight.

import Foundation
import HandoffClient
import HandoffProto
import HandoffRPC
import HandoffServer
import HandoffTLS
import Logging
import NIOCore
import ServiceLifecycle
import ServiceLifecycleTestKit
import Testing

@Suite("Server over TLS", .timeLimit(.minutes(1)))
struct RPCServerTests {
    private func registry(_ body: (@Sendable (PingRequest, ServerCallContext) async throws -> PingResponse)? = nil) -> MethodRegistry {
        var registry = MethodRegistry()
        registry.registerHealth()
        if let body { registry.register(Health.ping, body) }
        return registry
    }

    @Test("a client pings over mutual TLS and the handler sees the verified certificate")
    func identity() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let running = try await RunningServer(
            .init(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS()),
            registry: registry { _, context in
                let identity = "\(context.connection.tlsVersion ?? "-") \(context.connection.peer?.uris.first ?? "none")"
                return PingResponse(payload: Array(identity.utf8), serverVersion: handoffVersion)
            })
        let operatorClient = try running.client(fixtures.clientTLS(role: "operator"))
        let pong = try await operatorClient.call(Health.ping, PingRequest())
        #expect(String(decoding: pong.payload, as: UTF8.self) == "TLSv1.3 handoff://tenant/acme/operator/operator")
        let anonymous = try running.client(fixtures.clientTLS(role: nil))
        let anonymousPong = try await anonymous.call(Health.ping, PingRequest())
        #expect(String(decoding: anonymousPong.payload, as: UTF8.self) == "TLSv1.3 none")
        await operatorClient.close()
        await anonymous.close()
        await running.stop()
    }

    @Test("the health service answers with its version and clock")
    func health() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let running = try await RunningServer(.init(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS()), registry: registry())
        let client = try running.client(fixtures.clientTLS())
        let before = Int64(Date().timeIntervalSince1970 * 1000)
        let pong = try await client.call(Health.ping, PingRequest(payload: [1, 2, 3]))
        #expect(pong.payload == [1, 2, 3])
        #expect(pong.serverVersion == handoffVersion)
        #expect(abs(pong.serverTimeUnixMs - before) < 10_000)
        await client.close()
        await running.stop()
    }

    @Test("a client that does not trust the server's CA fails UNAVAILABLE with OpenSSL's reason")
    func unknownCA() async throws {
        let fixtures = try Fixtures()
        let other = try Fixtures()
        defer {
            fixtures.remove()
            other.remove()
        }
        let running = try await RunningServer(.init(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS()), registry: registry())
        let client = try running.client(fixtures.clientTLS(ca: other.path("ca.pem")))
        let error = await #expect(throws: RPCError.self) { _ = try await client.call(Health.ping, PingRequest()) }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("verify") == true, "\(String(describing: error))")
        await running.stop()
    }

    @Test("a server that requires client certificates refuses a client without one")
    func clientCertificateRequired() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let running = try await RunningServer(
            .init(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS(requireClientCertificate: true)), registry: registry())
        let anonymous = try running.client(fixtures.clientTLS(role: nil))
        let error = await #expect(throws: RPCError.self) { _ = try await anonymous.call(Health.ping, PingRequest()) }
        #expect(error?.code == .unavailable)
        let agent = try running.client(fixtures.clientTLS(role: "agent"))
        #expect(try await agent.call(Health.ping, PingRequest(payload: [5])).payload == [5])
        await agent.close()
        await running.stop()
    }

    /// A raw TCP connection that never starts TLS: it holds a handshake slot until its deadline.
    private func idleSocket(_ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw CommandError(output: "connect failed: \(errno)") }
        return fd
    }

    @Test(
        "idle handshakes past limits.max_handshakes make room for new ones (oldest first); past max_connections a connection is closed as it arrives")
    func connectionLimits() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        var configuration = RPCServer.Configuration(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS())
        configuration.maximumHandshakes = 2
        configuration.maximumConnections = 3
        let running = try await RunningServer(configuration, registry: registry())
        // Two handshakes that never happen fill the handshake slots: a real client still gets in,
        // because the oldest idle one is closed to make room.
        let idle = try [idleSocket(running.port), idleSocket(running.port)]
        try await Task.sleep(for: .milliseconds(100))  // accepted (latency only)
        let admitted = try running.client(fixtures.clientTLS(role: "agent"), timeout: .seconds(5))
        _ = try await admitted.call(Health.ping, PingRequest())
        await admitted.close()
        // One of the two (the one accepted first) was closed at once, not at its 10 s deadline.
        var fds = idle.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        #expect(poll(&fds, nfds_t(fds.count), 2_000) >= 1, "no idle handshake was closed to make room")
        for fd in idle { close(fd) }
        // Handshakes done, connections held: three are served, a fourth is closed as it arrives.
        var clients: [HandoffClient] = []
        for _ in 0..<3 {
            var served: HandoffClient?
            for _ in 0..<50 where served == nil {  // the idle sockets' slots free as the server sees them close
                let client = try running.client(fixtures.clientTLS(role: "agent"), timeout: .seconds(5))
                if (try? await client.call(Health.ping, PingRequest())) != nil {
                    served = client
                } else {
                    await client.close()
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            clients.append(try #require(served, "a client was not served after the idle sockets closed"))
        }
        let fourth = try running.client(fixtures.clientTLS(role: "agent"), timeout: .seconds(5))
        #expect(await refusalOf(fourth, Health.ping, PingRequest())?.code == .unavailable)
        await fourth.close()
        await clients[0].close()
        var again: HandoffClient?
        for _ in 0..<50 where again == nil {
            let client = try running.client(fixtures.clientTLS(role: "agent"), timeout: .seconds(5))
            if (try? await client.call(Health.ping, PingRequest())) != nil {
                again = client
            } else {
                await client.close()
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(again != nil, "a closed connection's place was not given back")
        for client in clients.dropFirst() + [again].compactMap({ $0 }) { await client.close() }
        await running.stop()
    }

    @Test("the client reconnects after the connection drops")
    func reconnect() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let running = try await RunningServer(.init(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS()), registry: registry())
        let client = try running.client(fixtures.clientTLS())
        _ = try await client.call(Health.ping, PingRequest())
        let first = try await client.connection()
        try await first.channel.close()
        #expect(try await client.call(Health.ping, PingRequest(payload: [9])).payload == [9])
        let second = try await client.connection()
        #expect(first !== second)
        await client.close()
        await running.stop()
    }

    @Test("graceful shutdown: stop accepting, GOAWAY, calls in flight finish, then the server returns")
    func gracefulShutdown() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (started, handlerStarted) = AsyncStream<Void>.makeStream()
        let server = try RPCServer(
            configuration: .init(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS()),
            registry: registry { request, _ in
                handlerStarted.yield()
                try await Task.sleep(for: .milliseconds(600))
                return PingResponse(payload: request.payload)
            },
            logger: Logger(label: "test"))
        try await testGracefulShutdown { trigger in
            let run = Task { try await server.run() }
            let port = try await server.waitUntilListening().port!
            var configuration = HandoffClient.Configuration(host: "127.0.0.1", port: port, tls: fixtures.clientTLS())
            configuration.defaultTimeout = .seconds(10)
            let client = try HandoffClient(configuration: configuration)
            _ = try await client.connection()
            let inFlight = Task { try await client.call(Health.ping, PingRequest(payload: [4, 2])) }
            // Shut down while the handler runs (a fixed sleep was too short when the suite loads both cores).
            var iterator = started.makeAsyncIterator()
            _ = await iterator.next()
            trigger.triggerGracefulShutdown()
            #expect(try await inFlight.value.payload == [4, 2], "the call in flight was not allowed to finish")
            try await run.value
            let late = try HandoffClient(configuration: configuration)
            let error = await #expect(throws: RPCError.self) { _ = try await late.call(Health.ping, PingRequest()) }
            #expect(error?.code == .unavailable, "the server still accepted connections after shutdown")
        }
    }
}

@Suite("Server settings")
struct ServerSettingsTests {
    @Test("YAML overrides defaults; every key is read")
    func yaml() throws {
        var settings = ServerSettings()
        try settings.apply(
            yaml: """
                listen: "[::1]:9443"
                data: /var/lib/handoff
                tls:
                  cert: /etc/handoff/server.pem
                  key: /etc/handoff/server.key
                  client_ca: /etc/handoff/ca.pem
                  require_client_cert: true
                limits:
                  max_frame_bytes: 1048576
                  max_calls_per_connection: 64
                  max_calls_total: 128
                  max_connections: 300
                  max_handshakes: 40
                  idle_timeout_seconds: 30
                  shutdown_grace_seconds: 5
                  threads: 2
                sessions:
                  resident_ceiling: 500
                  state_size_limit_bytes: 1024
                  default_turn_limit: 20
                  max_turn_limit: 100
                  text_size_limit_bytes: 2048
                  context_cache_bytes: 0
                  memory_bytes_limit: 4096
                multi_factor:
                  code_length: 8
                  lifetime_seconds: 120
                  attempts: 5
                  key_file: /etc/handoff/mfa.key
                  channels:
                    - {type: webhook, url: "http://127.0.0.1:9000/codes", secret_file: /etc/handoff/hook.secret}
                    - {type: webhook, url: "https://hooks.example.com/codes", secret_file: /etc/handoff/hook.secret, ca_file: /etc/handoff/hooks-ca.pem}
                    - {type: file, path: /tmp/codes.jsonl}
                store:
                  cache_mib: 16
                  checkpoint_pages: 2000
                  automated_assessments: committed
                """, source: "test.yaml")
        #expect(settings.multiFactor.codeLength == 8)
        #expect(settings.multiFactor.lifetimeSeconds == 120)
        #expect(settings.multiFactor.attempts == 5)
        #expect(settings.multiFactor.keyFile == "/etc/handoff/mfa.key")
        #expect(
            settings.multiFactor.channels == [
                .webhook(url: "http://127.0.0.1:9000/codes", secretFile: "/etc/handoff/hook.secret"),
                .webhook(url: "https://hooks.example.com/codes", secretFile: "/etc/handoff/hook.secret", caFile: "/etc/handoff/hooks-ca.pem"),
                .file(path: "/tmp/codes.jsonl"),
            ])
        #expect(settings.storeCacheMiB == 16)
        #expect(settings.storeCheckpointPages == 2000 && ServerSettings().storeCheckpointPages == 10_000)
        var tooSmall = ServerSettings()
        #expect(throws: ServerSettings.Error.self) { try tooSmall.apply(yaml: "store: {cache_mib: 0}", source: "t.yaml") }
        #expect(throws: ServerSettings.Error.self) { try tooSmall.apply(yaml: "store: {checkpoint_pages: 10}", source: "t.yaml") }
        // A state limit a frame could not carry (half the frame at most).
        var frameBound = ServerSettings()
        let bigState = #expect(throws: ServerSettings.Error.self) {
            try frameBound.apply(yaml: "limits: {max_frame_bytes: 1048576}\nsessions: {state_size_limit_bytes: 600000}", source: "t.yaml")
        }
        #expect(bigState?.message.contains("sessions.state_size_limit_bytes is 600000; it must be within 2...524288") == true)
        #expect(settings.automatedAssessments == .committed && ServerSettings().automatedAssessments == .queued)
        let unknownMode = #expect(throws: ServerSettings.Error.self) {
            try tooSmall.apply(yaml: "store: {automated_assessments: later}", source: "t.yaml")
        }
        #expect(unknownMode?.message == #"t.yaml: store.automated_assessments is "later"; it must be queued or committed"#)
        #expect(settings.sessions.residentCeiling == 500)
        #expect(settings.sessions.stateSizeLimit == 1024)
        #expect(settings.sessions.defaultTurnLimit == 20)
        #expect(settings.sessions.maximumTurnLimit == 100)
        #expect(settings.sessions.textSizeLimit == 2048)
        #expect(settings.sessions.contextCacheBytes == 0)
        #expect(settings.sessions.memoryBytesLimit == 4096)
        #expect(try settings.hostAndPort() == ("::1", 9443))
        let configuration = try settings.serverConfiguration()
        #expect(configuration.connection.maximumFrameSize == 1_048_576)
        #expect(configuration.connection.maximumConcurrentCalls == 64)
        #expect(configuration.connection.handlers.limit == 128)
        #expect(settings.maximumCallsTotal == 128)
        #expect(configuration.maximumConnections == 300 && configuration.maximumHandshakes == 40)
        #expect(configuration.connection.idleTimeout == .seconds(30))
        #expect(configuration.tls?.certificateChainPath == "/etc/handoff/server.pem")
        #expect(configuration.tls?.peerVerification == .required)
    }

    @Test("defaults point the certificates into the data directory")
    func defaults() throws {
        var settings = ServerSettings()
        settings.data = "/srv/h"
        let configuration = try settings.serverConfiguration()
        #expect(configuration.tls?.certificateChainPath == "/srv/h/certs/server.pem")
        #expect(configuration.tls?.trustRootsPath == "/srv/h/certs/ca.pem")
        #expect(configuration.tls?.peerVerification == .optional)
    }

    @Test(
        "a misspelt key is refused by name",
        arguments: [
            ("limits:\n  max_frame_byte: 5\n", "unknown setting \"max_frame_byte\""),
            ("lisen: 1.2.3.4:5\n", "unknown setting \"lisen\""),
            ("limits:\n  threads: many\n", "limits.threads"),
            ("limits:\n  max_frame_bytes: 10\n", "max_frame_bytes is 10"),
            ("listen: nowhere\n", "is not HOST:PORT"),
            ("listen: 127.0.0.1:70000\n", "port from 0 to 65535"),
            ("sessions:\n  resident_celing: 5\n", "unknown setting \"resident_celing\""),
            ("sessions:\n  default_turn_limit: 600\n", "sessions.default_turn_limit is 600; it must be within 1...500"),
            ("multi_factor:\n  channels:\n    - {type: sms}\n", "multi_factor.channels[0]: unknown type \"sms\""),
            ("multi_factor:\n  code_length: 4\n", "multi_factor.code_length is 4"),
        ])
    func errors(_ yaml: String, _ expected: String) {
        var settings = ServerSettings()
        let error = #expect(throws: ServerSettings.Error.self) { try settings.apply(yaml: yaml, source: "bad.yaml") }
        #expect(error?.message.contains(expected) == true, "\(String(describing: error))")
        #expect(
            error?.message.hasPrefix("bad.yaml") == true || expected.contains("is not") || expected.contains("port")
                || expected.contains("is 10") || expected.contains("is 600") || expected.contains("is 4"))
    }
}
