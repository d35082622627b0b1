// Handoff — a real server on 127.0.0.1:0 with fixture certificates made by
// DevelopmentPKI, and clients for it.

import Foundation
import HandoffClient
import HandoffProto
import HandoffRPC
import HandoffServer
import HandoffTLS
import Logging
import NIOCore
import ServiceLifecycle

/// Certificates for one test run: a CA, the server, and a client per role.
struct Fixtures {
    let directory: String
    static let roles = ["agent", "operator", "approver", "admin"]

    /// `approvers`: more approvers of the tenant, each with `<name>.pem` and the
    /// identity handoff://tenant/<tenant>/approver/<name>.
    init(tenant: String = "acme", approvers: [String] = [], operators: [String] = []) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("handoff-\(UUID().uuidString)").path
        try DevelopmentPKI.create(
            directory: directory,
            clients: Self.roles.map { (name: $0, uri: "handoff://tenant/\(tenant)/\($0)/\($0)") }
                + approvers.map { (name: $0, uri: "handoff://tenant/\(tenant)/approver/\($0)") }
                + operators.map { (name: $0, uri: "handoff://tenant/\(tenant)/operator/\($0)") })
    }

    func path(_ file: String) -> String { (directory as NSString).appendingPathComponent(file) }

    func serverTLS(requireClientCertificate: Bool = false) -> TLSConfiguration {
        .server(
            certificateChainPath: path("server.pem"), privateKeyPath: path("server.key"),
            clientCertificateTrustRootsPath: path("ca.pem"),
            clientCertificates: requireClientCertificate ? .required : .optional)
    }

    func clientTLS(role: String? = "agent", ca: String? = nil) -> TLSConfiguration {
        .client(
            trustRootsPath: ca ?? path("ca.pem"), serverHostname: "127.0.0.1",
            certificateChainPath: role.map { path("\($0).pem") }, privateKeyPath: role.map { path("\($0).key") })
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

/// A running RPCServer and the task running it.
final class RunningServer: Sendable {
    let server: RPCServer
    let task: Task<Void, any Error>
    let port: Int

    init(_ configuration: RPCServer.Configuration, registry: MethodRegistry) async throws {
        server = try RPCServer(configuration: configuration, registry: registry, logger: Logger(label: "test-server"))
        let server = self.server
        task = Task { try await server.run() }
        port = try await server.waitUntilListening().port!
    }

    func client(_ tls: TLSConfiguration, timeout: Duration? = .seconds(10)) throws -> HandoffClient {
        var configuration = HandoffClient.Configuration(host: "127.0.0.1", port: port, tls: tls)
        configuration.defaultTimeout = timeout
        return try HandoffClient(configuration: configuration)
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }
}

/// The repository's root and its debug binaries, for tests that run them.
enum Binaries {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func path(_ name: String) -> String {
        for configuration in ["debug", "release"] {
            let candidate = root.appendingPathComponent(".build/\(configuration)/\(name)").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return root.appendingPathComponent(".build/debug/\(name)").path
    }
}
