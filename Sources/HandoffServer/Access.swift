// Handoff — who may call what. The caller's identity comes from its verified
// client certificate (a SAN URI handoff://tenant/<tenant>/<role>/<name>); every
// RPC has one rule in `AccessRules.table`, checked before the call is
// dispatched. A test walks the whole role × RPC matrix from this table, and a
// method without a rule fails it.

import Crypto
import Foundation
public import HandoffCore
import HandoffProto
public import HandoffRPC
import Synchronization

/// Handoff's roles (HandoffCore's, named here over the protocol's enum of the same name).
public typealias Role = HandoffCore.Role

/// One RPC's rule.
public struct AccessRule: Sendable {
    /// The roles that may call it.
    public var roles: Set<Role>
    /// Callers without a certificate may call it too.
    public var anonymous = false
    /// Only a global admin (`handoff://global/admin/<name>`) may call it:
    /// what it changes is shared by every tenant.
    public var globalOnly = false
    /// Further checks made by the method itself, in words (for the table's readers).
    public var furtherChecks = ""
}

public enum AccessRules {
    static let everyone = Set(Role.allCases)

    /// Every RPC's rule. A method missing here is refused to everybody, and
    /// `AccessMatrixTests` fails.
    public static let table: [String: AccessRule] = [
        "handoff.v1.Health/Ping": AccessRule(roles: everyone, anonymous: true),

        "handoff.v1.Sessions/CreateSession": AccessRule(roles: [.agent, .admin]),
        "handoff.v1.Sessions/GetSession": AccessRule(roles: everyone),
        "handoff.v1.Sessions/UpdateState": AccessRule(roles: [.agent, .admin]),
        "handoff.v1.Sessions/AddTurn": AccessRule(roles: [.agent, .admin]),
        "handoff.v1.Sessions/AddMemory": AccessRule(roles: [.agent, .admin]),
        "handoff.v1.Sessions/GetContext": AccessRule(roles: everyone),
        "handoff.v1.Sessions/ListEvents": AccessRule(roles: [.agent, .operator, .admin]),

        "handoff.v1.Policy/AssessAction": AccessRule(roles: [.agent, .admin]),

        "handoff.v1.Confirmations/RequestConfirmation": AccessRule(roles: [.agent]),
        "handoff.v1.Confirmations/RespondToConfirmation": AccessRule(
            roles: [.agent], furtherChecks: "the policy must mark the agent as the user's channel (confirmation.agent_relays_user)"),
        "handoff.v1.Confirmations/StartMultiFactor": AccessRule(roles: [.agent]),
        "handoff.v1.Confirmations/VerifyMultiFactor": AccessRule(
            roles: [.agent], furtherChecks: "the policy must mark the agent as the user's channel (confirmation.agent_relays_user)"),

        "handoff.v1.Decisions/WaitForDecision": AccessRule(roles: [.agent, .admin]),
        "handoff.v1.Decisions/ReportExecution": AccessRule(roles: [.agent]),

        "handoff.v1.Escalations/Escalate": AccessRule(roles: [.agent, .operator, .admin]),
        "handoff.v1.Escalations/GetTicket": AccessRule(roles: [.operator, .admin]),
        "handoff.v1.Escalations/ListQueue": AccessRule(roles: [.operator, .admin]),
        "handoff.v1.Escalations/Claim": AccessRule(
            roles: [.operator, .admin], furtherChecks: "a claimed ticket is reassigned only by an admin"),
        "handoff.v1.Escalations/Reply": AccessRule(roles: [.operator], furtherChecks: "only on a ticket the operator claimed"),
        "handoff.v1.Escalations/Resolve": AccessRule(
            roles: [.operator, .admin], furtherChecks: "an operator resolves only tickets they claimed"),

        "handoff.v1.Approvals/RequestApproval": AccessRule(roles: [.agent, .operator]),
        "handoff.v1.Approvals/GetApproval": AccessRule(roles: [.agent, .operator, .approver, .admin]),
        "handoff.v1.Approvals/ListPendingApprovals": AccessRule(roles: [.approver, .admin]),
        "handoff.v1.Approvals/DecideApproval": AccessRule(
            roles: [.approver], furtherChecks: "only steps routed to the approver or their group; never an approval they requested"),

        "handoff.v1.Operators/Watch": AccessRule(roles: [.operator, .approver, .admin]),
        "handoff.v1.Analytics/EscalationStats": AccessRule(roles: [.operator, .admin]),

        "handoff.v1.Admin/ReloadPolicy": AccessRule(roles: [.admin], globalOnly: true),
        "handoff.v1.Admin/VerifyAuditChain": AccessRule(roles: [.operator, .admin]),
        "handoff.v1.Admin/Backup": AccessRule(roles: [.admin], globalOnly: true),
    ]

}

/// A bearer token a deployment configured, kept as the SHA-256 of the token.
public struct TokenGrant: Sendable, Hashable {
    public var principal: Principal
    /// SHA-256 of the token, lower-case hex.
    public var sha256: String
    /// Unix ms after which the token is refused; nil: no expiry.
    public var expiresAtMs: Int64?

    public init(principal: Principal, sha256: String, expiresAtMs: Int64?) {
        self.principal = principal
        self.sha256 = sha256.lowercased()
        self.expiresAtMs = expiresAtMs
    }
}

/// Authentication (certificate or bearer token), the rule table, and the
/// per-identity rate limits on the guessable calls.
public final class AccessControl: Sendable {
    /// Calls a minute one identity may make to the guessable methods.
    public static let guessableMethods: [String: Int] = [
        "handoff.v1.Confirmations/VerifyMultiFactor": 20,
        // Each start sends the user a code (and may page them): a loop of starts is spam even when guessing gains nothing.
        "handoff.v1.Confirmations/StartMultiFactor": 10,
    ]
    /// Failed token presentations a minute from one address before it is refused outright.
    public static let tokenFailuresPerMinute = 10
    /// Addresses (and identities) whose windows are kept at most.
    static let maximumTrackedWindows = 100_000

    /// The address a failure counts against: an IPv4 address, or an IPv6
    /// address's /64 (one host holds a whole /64 and could otherwise rotate).
    static func limitKey(_ remote: String) -> String {
        let host = remote.lastIndex(of: ":").map { String(remote[..<$0]) } ?? remote
        guard host.contains(":") else { return host }
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        // An IPv4 client on a dual-stack socket (::ffff:192.0.2.1) counts as its IPv4 address.
        if bare.contains("."), let colon = bare.lastIndex(of: ":") { return String(bare[bare.index(after: colon)...]) }
        // Expand "::" and keep the first four groups.
        let halves = bare.components(separatedBy: "::")
        let head = halves[0].split(separator: ":").map(String.init)
        let tail = halves.count > 1 ? halves[1].split(separator: ":").map(String.init) : []
        let groups = head + Array(repeating: "0", count: max(0, 8 - head.count - tail.count)) + tail
        return groups.prefix(4).joined(separator: ":") + "::/64"
    }

    private let tokens: [String: TokenGrant]
    private let clock: @Sendable () -> Int64
    private let windows = Mutex<[String: (start: Int64, count: Int)]>([:])

    public init(tokens: [TokenGrant] = [], clock: @escaping @Sendable () -> Int64 = SessionService.wallClockMs) {
        self.tokens = Dictionary(tokens.map { ($0.sha256, $0) }, uniquingKeysWith: { first, _ in first })
        self.clock = clock
    }

    /// Counts one event in a one-minute window; false when `limit` is passed.
    private func allow(_ key: String, limit: Int) -> Bool {
        let now = clock()
        return windows.withLock { windows in
            var window = windows[key] ?? (now, 0)
            if now - window.start >= 60_000 { window = (now, 0) }
            window.count += 1
            if windows[key] == nil, windows.count >= Self.maximumTrackedWindows {
                windows = windows.filter { now - $0.value.start < 60_000 }
                guard windows.count < Self.maximumTrackedWindows else { return false }
            }
            windows[key] = window
            return window.count <= limit
        }
    }

    /// The caller of a call, or UNAUTHENTICATED naming what is wrong.
    func principal(_ context: ServerCallContext) throws(RPCError) -> Principal? {
        if let peer = context.connection.peer {
            guard let principal = Self.principal(of: peer, memo: context.connection.memo) else {
                throw RPCError(
                    code: .unauthenticated,
                    message: "the client certificate names no Handoff identity: expected a SAN URI (or a subject CN) "
                        + "handoff://tenant/<tenant>/<agent|operator|approver|admin>/<name>")
            }
            return principal
        }
        guard let header = context.metadataValue("authorization") else { return nil }
        let address = Self.limitKey(context.connection.remoteAddress ?? "?")
        let token = header.hasPrefix("Bearer ") ? String(header.dropFirst(7)) : ""
        let hash = SHA256.hash(data: Data(token.utf8)).hexString
        // The limit is checked and a failure counted under one lock: guesses
        // sent in parallel cannot all pass the check before any is counted.
        let now = clock()
        let key = "token-failures:\(address)"
        // A known token (256 random bits) is never limited: guessers sharing
        // an address (a NAT, a proxy) cannot lock its holder out.
        let known = token.isEmpty ? nil : tokens[hash]
        let found: TokenGrant?? =
            known.map { .some($0) }
            ?? windows.withLock { windows in
                var window = windows[key] ?? (now, 0)
                if now - window.start >= 60_000 { window = (now, 0) }
                guard window.count < Self.tokenFailuresPerMinute else { return .none }
                if windows[key] == nil, windows.count >= Self.maximumTrackedWindows {
                    // Bounded: drop ended windows; if all are live, refuse rather than grow.
                    windows = windows.filter { now - $0.value.start < 60_000 }
                    guard windows.count < Self.maximumTrackedWindows else { return .none }
                }
                window.count += 1
                windows[key] = window
                return .some(nil)
            }
        guard case .some(let known) = found else {
            ServerMetrics.rateLimited("token_failures")
            throw RPCError(code: .resourceExhausted, message: "too many failed token presentations from this address; wait a minute")
        }
        guard let grant = known else {
            throw RPCError(code: .unauthenticated, message: "the bearer token is not one this server knows")
        }
        if let expiry = grant.expiresAtMs, clock() >= expiry {
            throw RPCError(code: .unauthenticated, message: "the bearer token of \(grant.principal.uri) has expired")
        }
        return grant.principal
    }

    /// The tenant a global admin's call names (`handoff-tenant` metadata), if well formed.
    static func callTenant(_ context: ServerCallContext) -> TenantID? {
        guard let name = context.metadataValue("handoff-tenant"), !name.isEmpty, name.utf8.count <= 100,
            name.utf8.allSatisfy(Principal.isNameByte)
        else { return nil }
        return TenantID(name)
    }

    /// A verified certificate's identity: its first SAN URI of the Handoff
    /// form, else its subject CN when that is of the form.
    static func principal(of peer: PeerIdentity) -> Principal? {
        peer.uris.lazy.compactMap(Principal.init(uri:)).first ?? peer.commonName.flatMap(Principal.init(uri:))
    }

    /// What a connection's certificate names, worked out once per connection.
    static func principal(of peer: PeerIdentity, memo: ConnectionMemo) -> Principal? {
        memo.value { CertificatePrincipal(principal: principal(of: peer)) }.principal
    }

    /// The memo's slot for `principal(of:)`.
    private struct CertificatePrincipal: Sendable {
        let principal: Principal?
    }

    /// Checks a call against its rule: UNAUTHENTICATED without a usable
    /// identity, PERMISSION_DENIED naming the rule when the role is not in it,
    /// RESOURCE_EXHAUSTED past a rate limit. Returns the caller's identity.
    func check(_ method: String, _ context: ServerCallContext) throws(RPCError) -> String? {
        guard let rule = AccessRules.table[method] else {
            // Not a Handoff method: the dispatcher answers UNIMPLEMENTED.
            if !ProtoRegistry.methods.contains(where: { $0.fullName == method }) { return nil }
            throw RPCError(code: .permissionDenied, message: "\(method) has no access rule; nobody may call it")
        }
        let found = try principal(context)
        guard let principal = found else {
            if rule.anonymous { return nil }
            throw RPCError(
                code: .unauthenticated,
                message: "a client certificate naming handoff://tenant/<tenant>/<role>/<name>, or a bearer token, is required")
        }
        guard rule.roles.contains(principal.role) else {
            let allowed = Role.allCases.filter { rule.roles.contains($0) }.map(\.rawValue).joined(separator: ", ")
            throw RPCError(
                code: .permissionDenied,
                message: "\(method) is for \(allowed); \(principal.uri) is \(principal.role.rawValue)")
        }
        if rule.globalOnly, !principal.isGlobal {
            throw RPCError(
                code: .permissionDenied,
                message:
                    "\(method) acts on what every tenant shares: only a global admin (handoff://global/admin/<name>) may call it; \(principal.uri) is a tenant's (`handoff certs issue DIR --role admin --global --name NAME` or `handoff tokens new --identity handoff://global/admin/NAME` makes one)"
            )
        }
        if principal.isGlobal, !rule.anonymous, !rule.globalOnly, Self.callTenant(context) == nil {
            throw RPCError(
                code: .invalidArgument,
                message: "\(principal.uri) is a global admin: name the tenant of the call in the handoff-tenant metadata")
        }
        if let limit = Self.guessableMethods[method], !allow("\(method):\(principal.uri)", limit: limit) {
            ServerMetrics.rateLimited("per_identity_method")
            throw RPCError(code: .resourceExhausted, message: "\(method): at most \(limit) calls a minute per identity; wait")
        }
        return principal.uri
    }
}

extension MethodRegistry {
    /// Checks every call with `access` before it is dispatched.
    public mutating func enforceAccessRules(_ access: AccessControl = AccessControl()) {
        accessCheck = { method, context throws(RPCError) in try access.check(method, context) }
    }
}

extension ServerCallContext {
    /// The caller as the domain sees it: its tenant, its identity URI and role.
    /// Only called behind `enforceAccessRules`, which refused calls without one;
    /// a registry without it (some tests) sees certificate holders in the
    /// default tenant.
    var caller: Caller {
        // Mostly the identity is the certificate's, parsed once per connection.
        let certified = connection.peer.flatMap { AccessControl.principal(of: $0, memo: connection.memo) }
        if let identity, let principal = certified?.uri == identity ? certified : Principal(uri: identity) {
            // A global admin works in the tenant its call names (the access check required one).
            let tenant = principal.isGlobal ? AccessControl.callTenant(self) ?? Principal.globalTenant : principal.tenant
            return Caller(tenant: tenant, identity: principal.uri, role: principal.role)
        }
        if let principal = certified {
            return Caller(tenant: principal.tenant, identity: principal.uri, role: principal.role)
        }
        let identity = connection.peer.map { $0.uris.first ?? $0.commonName ?? "certificate \($0.fingerprint.prefix(16))" }
        return Caller(tenant: .default, identity: identity ?? "anonymous", role: .agent)
    }
}
