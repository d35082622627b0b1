// Handoff — identities: who a caller is, as written in events and
// certificates (`handoff://tenant/<tenant>/<role>/<name>`, or a global admin's
// `handoff://global/admin/<name>`). Built and read here only.

/// The roles of Handoff, each scoped to one tenant.
public enum Role: String, Sendable, CaseIterable, Hashable {
    case agent, `operator`, approver, admin
}

/// A verified caller: tenant, role and name, from the certificate.
public struct Principal: Sendable, Hashable {
    public var tenant: TenantID
    public var role: Role
    public var name: String
    /// The identity as written in events, `handoff://tenant/acme/operator/alice`.
    public var uri: String

    /// The tenant of a global admin: it names the tenant of each call in the
    /// `handoff-tenant` metadata.
    public static let globalTenant = TenantID("*")

    /// A global admin (`handoff://global/admin/<name>`), who works in any tenant.
    public var isGlobal: Bool { tenant == Self.globalTenant }

    /// A member of a tenant: `handoff://tenant/<tenant>/<role>/<name>`, the
    /// one place such an identity is written.
    public init(tenant: TenantID, role: Role, name: String) {
        self.tenant = tenant
        self.role = role
        self.name = name
        self.uri = "handoff://tenant/\(tenant.rawValue)/\(role.rawValue)/\(name)"
    }

    /// A global admin, `handoff://global/admin/<name>`.
    public init(globalAdmin name: String) {
        tenant = Self.globalTenant
        role = .admin
        self.name = name
        uri = "handoff://global/admin/\(name)"
    }

    /// Reads `handoff://tenant/<tenant>/<role>/<name>`, or a global admin's
    /// `handoff://global/admin/<name>`; nil for anything else.
    /// (Byte-wise: it runs on every call.)
    public init?(uri: String) {
        if uri.utf8.starts(with: "handoff://global/admin/".utf8) {
            let name = uri.utf8.dropFirst("handoff://global/admin/".utf8.count)
            guard !name.isEmpty, name.count <= 200, name.allSatisfy(Self.isNameByte) else { return nil }
            tenant = Self.globalTenant
            role = .admin
            self.name = String(Substring(name))
            self.uri = uri
            return
        }
        let prefix = "handoff://tenant/".utf8
        let bytes = uri.utf8
        guard bytes.count <= 400, bytes.starts(with: prefix) else { return nil }
        var parts: [Substring.UTF8View] = []
        var start = bytes.index(bytes.startIndex, offsetBy: prefix.count)
        var index = start
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "/") {
                parts.append(Substring(uri)[start..<index].utf8)
                start = bytes.index(after: index)
            } else if !Self.isNameByte(byte) {
                return nil
            }
            index = bytes.index(after: index)
        }
        parts.append(Substring(uri)[start..<bytes.endIndex].utf8)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty }), let role = Role(rawValue: String(Substring(parts[1]))) else {
            return nil
        }
        tenant = TenantID(String(Substring(parts[0])))
        self.role = role
        name = String(Substring(parts[2]))
        self.uri = uri
    }

    /// Letters, digits, `-`, `_` and `.`: what tenant and identity names are made of.
    public static func isNameByte(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") || byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")
            || byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            || byte == UInt8(ascii: ".")
    }
}
