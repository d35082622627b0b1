// Handoff — `handoff certs`: a development certificate authority.

import ArgumentParser
import HandoffTLS

struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Development certificates.",
        subcommands: [Init.self]
    )

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a development CA, a server certificate and one client certificate per role.",
            discussion: """
                Writes ca.pem/ca.key, server.pem/server.key (localhost, 127.0.0.1, ::1) and \
                agent, operator, approver and admin certificates whose SAN URI is \
                handoff://tenant/<tenant>/<role>/<role>. Keys are written with mode 0600. \
                With several --tenant options, <role>.pem is the first tenant's and every \
                tenant also gets <tenant>.<role>.pem (use --role <tenant>.<role>).
                """
        )

        @Argument(help: "Directory to write into (created if missing).")
        var directory: String

        @Option(name: .customLong("tenant"), help: "Tenant named in the client certificates; repeat for several.")
        var tenants: [String] = []

        @Flag(help: "Replace an existing CA in the directory.")
        var force = false

        static let roles = ["agent", "operator", "approver", "admin"]

        func run() throws {
            let tenants = self.tenants.isEmpty ? ["default"] : self.tenants
            for tenant in tenants where tenant.isEmpty || !tenant.allSatisfy({ $0.isLetter || $0.isNumber || "-_".contains($0) }) {
                throw ValidationError("--tenant \(tenant) must be letters, digits, - and _")
            }
            var clients = Self.roles.map { (name: $0, uri: "handoff://tenant/\(tenants[0])/\($0)/\($0)") }
            if tenants.count > 1 {
                for tenant in tenants {
                    clients += Self.roles.map { (name: "\(tenant).\($0)", uri: "handoff://tenant/\(tenant)/\($0)/\($0)") }
                }
            }
            do {
                try DevelopmentPKI.create(directory: directory, clients: clients, overwrite: force)
            } catch {
                throw CommandFailure("certs init: \(error)")
            }
            print("wrote a development CA, server and \(Self.roles.joined(separator: ", ")) certificates to \(directory)")
        }
    }
}
