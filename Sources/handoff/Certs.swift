// Handoff — `handoff certs`: a development certificate authority.

import ArgumentParser
import Foundation
import HandoffCore
import HandoffTLS

struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Development certificates.",
        subcommands: [Init.self, Issue.self]
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

        func run() throws {
            let tenants = self.tenants.isEmpty ? ["default"] : self.tenants
            // As handoffd reads identities (Principal); no `.`, which separates tenant and role in file names.
            for tenant in tenants where tenant.isEmpty || tenant.contains(".") || !tenant.utf8.allSatisfy(Principal.isNameByte) {
                throw ValidationError("--tenant \(tenant) must be ASCII letters, digits, - and _")
            }
            var clients = Role.allCases.map { (name: $0.rawValue, uri: Principal(tenant: TenantID(tenants[0]), role: $0, name: $0.rawValue).uri) }
            if tenants.count > 1 {
                for tenant in tenants {
                    clients += Role.allCases.map {
                        (name: "\(tenant).\($0.rawValue)", uri: Principal(tenant: TenantID(tenant), role: $0, name: $0.rawValue).uri)
                    }
                }
            }
            do {
                try DevelopmentPKI.create(directory: directory, clients: clients, overwrite: force)
            } catch {
                throw CommandFailure("certs init: \(error)")
            }
            print("wrote a development CA, server and \(Role.allCases.map(\.rawValue).joined(separator: ", ")) certificates to \(directory)")
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue one more client certificate from the development CA of DIR.",
            discussion: """
                For a second approver or operator, or a global admin: writes <file>.pem and <file>.key \
                (mode 0600) into DIR, signed by DIR/ca.pem and DIR/ca.key, with the SAN URI \
                handoff://tenant/<tenant>/<role>/<name> (or handoff://global/admin/<name> with --global). \
                Use it with --certs DIR --role <file>.
                """
        )

        @Argument(help: "Directory made by `handoff certs init`.")
        var directory: String

        @Option(help: "The identity's name, for example alice.")
        var name: String

        @Option(help: "agent, operator, approver or admin.")
        var role: String

        @Option(help: "Its tenant (default: default).")
        var tenant = "default"

        @Flag(help: "A global admin (handoff://global/admin/<name>), who names each call's tenant.")
        var global = false

        @Option(help: "File name without extension (default: <tenant>.<role>.<name>, or global.admin.<name>).")
        var file: String?

        func validate() throws {
            // As handoffd reads identities (Principal): ASCII only, and not too long.
            let allowed = { (text: String) in !text.isEmpty && text.utf8.count <= 100 && text.utf8.allSatisfy(Principal.isNameByte) }
            guard allowed(name) else { throw ValidationError("--name \(name) must be 1 to 100 ASCII letters, digits, -, _ and .") }
            guard allowed(tenant) else { throw ValidationError("--tenant \(tenant) must be 1 to 100 ASCII letters, digits, -, _ and .") }
            guard Role(rawValue: role) != nil else {
                throw ValidationError("--role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if global, role != "admin" { throw ValidationError("only admins are global (--role admin)") }
        }

        func run() throws {
            let uri =
                global ? Principal(globalAdmin: name).uri : Principal(tenant: TenantID(tenant), role: Role(rawValue: role) ?? .agent, name: name).uri
            let base = file ?? (global ? "global.admin.\(name)" : "\(tenant).\(role).\(name)")
            func path(_ file: String) -> String { (directory as NSString).appendingPathComponent(file) }
            do {
                try DevelopmentPKI.issueCertificate(
                    certificatePath: path("\(base).pem"), keyPath: path("\(base).key"), issuerCertificatePath: path("ca.pem"),
                    issuerKeyPath: path("ca.key"), commonName: name, uris: [uri], usage: .client)
            } catch {
                throw CommandFailure("certs issue: \(error)")
            }
            print("wrote \(path("\(base).pem")) for \(uri) (use --role \(base))")
        }
    }
}
