// Handoff — how a `handoff` command reaches the server.

import ArgumentParser
import Foundation
import HandoffClient
import HandoffProto
import HandoffRPC
import HandoffTLS

/// Server address and credentials, shared by every command that calls the server.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Server address HOST:PORT (env HANDOFF_SERVER).")
    var server = ProcessInfo.processInfo.environment["HANDOFF_SERVER"] ?? "127.0.0.1:7443"

    @Option(help: "Directory made by `handoff certs init` (env HANDOFF_CERTS).")
    var certs = ProcessInfo.processInfo.environment["HANDOFF_CERTS"] ?? ".handoff/certs"

    @Option(help: "Which client certificate of --certs to use: agent, operator, approver or admin.")
    var role = ProcessInfo.processInfo.environment["HANDOFF_ROLE"] ?? "agent"

    @Option(help: "CA bundle that signed the server certificate (default: <certs>/ca.pem).")
    var ca: String?

    @Option(help: "Client certificate (default: <certs>/<role>.pem).")
    var cert: String?

    @Option(help: "Client key (default: <certs>/<role>.key).")
    var key: String?

    @Option(help: "A bearer token instead of a client certificate (env HANDOFF_TOKEN); see `handoff tokens new`.")
    var token: String?

    @Option(help: "Seconds to wait for each call.")
    var timeout: Double = 30

    @Option(help: "For a global admin: the tenant the calls act in (env HANDOFF_TENANT).")
    var tenant: String?

    func hostAndPort() throws -> (String, Int) {
        guard let address = HostAndPort(server), address.port > 0 else {
            throw ValidationError("--server \(server) is not HOST:PORT")
        }
        return (address.host, address.port)
    }

    func makeClient() throws -> HandoffClient {
        let (host, port) = try hostAndPort()
        let token = self.token ?? ProcessInfo.processInfo.environment["HANDOFF_TOKEN"]
        let dir = URL(fileURLWithPath: certs)
        // With a token the connection carries no client certificate.
        let tls = TLSConfiguration.client(
            trustRootsPath: ca ?? dir.appendingPathComponent("ca.pem").path,
            serverHostname: host,
            certificateChainPath: token != nil ? nil : cert ?? dir.appendingPathComponent("\(role).pem").path,
            privateKeyPath: token != nil ? nil : key ?? dir.appendingPathComponent("\(role).key").path)
        var configuration = HandoffClient.Configuration(host: host, port: port, tls: tls)
        if let token { configuration.metadata = [MetadataEntry(key: "authorization", value: "Bearer \(token)")] }
        if let tenant = tenant ?? ProcessInfo.processInfo.environment["HANDOFF_TENANT"] { configuration.metadata.append(MetadataEntry(key: "handoff-tenant", value: tenant)) }
        guard timeout.isFinite, timeout > 0, timeout <= 86_400 else {
            throw CommandFailure("--timeout must be a number of seconds above 0 and at most 86400, not \(timeout)")
        }
        configuration.defaultTimeout = .milliseconds(Int64(timeout * 1000))
        configuration.keepaliveInterval = nil
        do {
            return try HandoffClient(configuration: configuration)
        } catch {
            throw CommandFailure("\(error)")
        }
    }
}

/// A failure the command reports in one line and exits 1 for.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
