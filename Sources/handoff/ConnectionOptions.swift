// Handoff — how a `handoff` command reaches the server.

import ArgumentParser
import Foundation
import HandoffClient
import HandoffProto
import HandoffRPC
import HandoffTLS

/// The environment variables the CLI reads, as `--help` lists them.
enum Environment {
    static let help = """
        Environment: HANDOFF_SERVER (--server), HANDOFF_CERTS (--certs), HANDOFF_ROLE (--role), \
        HANDOFF_TOKEN (--token), HANDOFF_TENANT (--tenant); an option given on the command line wins.
        """

    static func value(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }
}

/// The role a command is for, when only one role may call it.
enum CommandRole: String {
    case agent, `operator`, approver
}

/// Server address and credentials, shared by every command that calls the server.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Server address HOST:PORT (env HANDOFF_SERVER).")
    var server = Environment.value("HANDOFF_SERVER") ?? "127.0.0.1:7443"

    @Option(help: "Directory made by `handoff certs init` (env HANDOFF_CERTS).")
    var certs = Environment.value("HANDOFF_CERTS") ?? ".handoff/certs"

    @Option(
        help: ArgumentHelp(
            "Which client certificate of --certs to use: agent, operator, approver or admin (env HANDOFF_ROLE).",
            discussion: "Without --role, HANDOFF_ROLE, --cert, --key or a token: the desk commands and the console use "
                + "operator, the approval commands approver, the rest agent."))
    var role: String?

    @Option(help: "CA bundle that signed the server certificate (default: <certs>/ca.pem).")
    var ca: String?

    @Option(help: "Client certificate (default: <certs>/<role>.pem).")
    var cert: String?

    @Option(help: "Client key (default: <certs>/<role>.key).")
    var key: String?

    @Option(help: "A bearer token instead of a client certificate (env HANDOFF_TOKEN); see `handoff tokens new`.")
    var token: String?

    @Option(help: "Seconds to wait for each call (default: 30; `handoff wait`: until decided).")
    var timeout: Double?

    @Option(help: "For a global admin: the tenant the calls act in (env HANDOFF_TENANT).")
    var tenant: String?

    @Flag(help: "On a failure, print the library's detail too.")
    var verbose = false

    /// The bearer token, from --token or HANDOFF_TOKEN.
    var effectiveToken: String? { token ?? Environment.value("HANDOFF_TOKEN") }

    /// The role whose certificate is used: --role, then HANDOFF_ROLE; without
    /// either, when the certificate comes from the --certs directory (no
    /// --cert, --key or token), the one role the command is for; else agent.
    func role(for command: CommandRole) -> String {
        if let role { return role }
        if let role = Environment.value("HANDOFF_ROLE") { return role }
        if cert == nil, key == nil, effectiveToken == nil { return command.rawValue }
        return CommandRole.agent.rawValue
    }

    func hostAndPort() throws -> (String, Int) {
        guard let address = HostAndPort(server), address.port > 0 else {
            throw ValidationError("--server \(server) is not HOST:PORT")
        }
        return (address.host, address.port)
    }

    func makeClient(for command: CommandRole = .agent) throws -> HandoffClient {
        let (host, port) = try hostAndPort()
        let token = effectiveToken
        let role = role(for: command)
        func inCerts(_ file: String) -> String { (certs as NSString).appendingPathComponent(file) }
        let caPath = ca ?? inCerts("ca.pem")
        let certPath = token != nil ? nil : cert ?? inCerts("\(role).pem")
        let keyPath = token != nil ? nil : key ?? inCerts("\(role).key")
        Advice.context = Advice.Context(
            server: server, certs: certs, role: role, command: command, ca: caPath, cert: certPath, key: keyPath,
            fromCerts: ["--ca": ca == nil, "--cert": cert == nil, "--key": key == nil],
            explicitRole: self.role != nil || Environment.value("HANDOFF_ROLE") != nil, verbose: verbose)
        // With a token the connection carries no client certificate.
        let tls = TLSConfiguration.client(
            trustRootsPath: caPath, serverHostname: host, certificateChainPath: certPath, privateKeyPath: keyPath)
        var configuration = HandoffClient.Configuration(host: host, port: port, tls: tls)
        if let token { configuration.metadata = [MetadataEntry(key: "authorization", value: "Bearer \(token)")] }
        if let tenant = tenant ?? Environment.value("HANDOFF_TENANT") {
            configuration.metadata.append(MetadataEntry(key: "handoff-tenant", value: tenant))
        }
        let timeout = self.timeout ?? 30
        guard timeout.isFinite, timeout > 0, timeout <= 86_400 else {
            throw CommandFailure("--timeout must be a number of seconds above 0 and at most 86400, not \(timeout)")
        }
        configuration.defaultTimeout = .milliseconds(Int64(timeout * 1000))
        configuration.keepaliveInterval = nil
        do {
            return try HandoffClient(configuration: configuration)
        } catch {
            throw CommandFailure(Advice.explain(error))
        }
    }
}

/// A failure the command reports in one line and exits 1 for.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
