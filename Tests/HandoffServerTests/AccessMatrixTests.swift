// Handoff — every cell of the role × RPC matrix, from AccessRules.table, over
// real mutual TLS with certificates made by `handoff certs init` for two
// tenants; and tenants kept apart.

import Crypto
import Foundation
import HandoffClient
import HandoffCore
import HandoffDesks
import HandoffPolicy
import HandoffProto
import HandoffRPC
import HandoffSQLite
import HandoffTLS
import HandoffTestSupport
import Testing

@testable import HandoffServer

@Suite("Access rules", .serialized)
struct AccessMatrixTests {
    @Test(
        "identity URIs: the well-formed ones parse, anything else names no one",
        arguments: [
            ("handoff://tenant/acme/operator/alice", "acme", HandoffServer.Role.operator, "alice"),
            ("handoff://tenant/a-b_c.d/admin/x.y", "a-b_c.d", HandoffServer.Role.admin, "x.y"),
        ])
    func identities(_ uri: String, _ tenant: String, _ role: HandoffServer.Role, _ name: String) throws {
        let principal = try #require(Principal(uri: uri))
        #expect(principal.tenant.rawValue == tenant && principal.role == role && principal.name == name)
    }

    @Test(
        "malformed identity URIs are refused",
        arguments: [
            "handoff://tenant/acme/robot/x", "handoff://tenant/acme/agent", "handoff://tenant/acme/agent/x/y", "handoff://tenant//agent/x",
            "handoff://tenant/acme/agent/", "https://tenant/acme/agent/x", "handoff://tenant/ac me/agent/x", "handoff://tenant/acmé/agent/x",
        ])
    func badIdentities(_ uri: String) {
        #expect(Principal(uri: uri) == nil)
    }

    @Test("every RPC of the protocol has exactly one rule, and every rule names an RPC")
    func tableIsComplete() {
        let methods = Set(ProtoRegistry.methods.map(\.fullName))
        let ruled = Set(AccessRules.table.keys)
        #expect(methods.subtracting(ruled).isEmpty, "RPCs without a rule: \(methods.subtracting(ruled).sorted())")
        #expect(ruled.subtracting(methods).isEmpty, "rules for no RPC: \(ruled.subtracting(methods).sorted())")
    }

    /// A server with every implemented service and the rules enforced, on certificates from `handoff certs init`.
    private func start(_ directory: String, access: AccessControl = AccessControl()) async throws -> RunningServer {
        try await startWithServices(directory, access: access).server
    }

    /// `start`, and the services it serves (to wait on their state instead of pausing).
    private func startWithServices(
        _ directory: String, access: AccessControl = AccessControl()
    ) async throws -> (server: RunningServer, services: HandoffServices) {
        let made = try await runProcess(Binaries.path("handoff"), ["certs", "init", directory, "--tenant", "acme", "--tenant", "globex"])
        #expect(made.status == 0, "\(made.output)")
        func path(_ file: String) -> String { (directory as NSString).appendingPathComponent(file) }
        let store = try SQLiteStore(path: path("handoff.sqlite"))
        let sessions = SessionService(store: store)
        let policy = try PolicyHolder(path: nil)
        let services = HandoffServices(
            store: store, sessions: sessions, policy: policy,
            multiFactor: MultiFactorSettings(key: Array(repeating: 1, count: 32), channels: [FileCodeChannel(path: path("codes.jsonl"))]),
            notices: [FileCodeChannel(path: path("notices.jsonl"))])
        var registry = MethodRegistry()
        registry.enforceAccessRules(access)
        registry.registerHealth()
        services.register(into: &registry)
        let tls = TLSConfiguration.server(
            certificateChainPath: path("server.pem"), privateKeyPath: path("server.key"), clientCertificateTrustRootsPath: path("ca.pem"),
            clientCertificates: .optional)
        return (try await RunningServer(.init(host: "127.0.0.1", port: 0, tls: tls), registry: registry), services)
    }

    private func client(_ running: RunningServer, _ directory: String, _ name: String?) throws -> HandoffClient {
        func path(_ file: String) -> String { (directory as NSString).appendingPathComponent(file) }
        return try running.client(
            .client(
                trustRootsPath: path("ca.pem"), serverHostname: "127.0.0.1",
                certificateChainPath: name.map { path("\($0).pem") }, privateKeyPath: name.map { path("\($0).key") }))
    }

    /// The status of calling `method` with an empty request.
    private func status(_ client: HandoffClient, _ method: ProtoMethod) async -> RPCError.Code {
        func unary<Request: ProtoMessage, Response: ProtoMessage>(_: Request.Type, _: Response.Type) async -> RPCError.Code {
            do {
                _ = try await client.call(UnaryMethod<Request, Response>(fullName: method.fullName), try Request(serializedBytes: []))
                return .ok
            } catch let error as RPCError {
                return error.code
            } catch {
                return .unknown
            }
        }
        func stream<Request: ProtoMessage, Response: ProtoMessage>(_: Request.Type, _: Response.Type) async -> RPCError.Code {
            do {
                // A stream allowed past its rule may wait for events (Watch): the
                // deadline ends it, and DEADLINE_EXCEEDED counts as let in.
                for try await _ in try await client.stream(
                    ServerStreamingMethod<Request, Response>(fullName: method.fullName), try Request(serializedBytes: []),
                    options: CallOptions(timeout: .seconds(1)))
                {
                    break
                }
                return .ok
            } catch let error as RPCError {
                return error.code
            } catch {
                return .unknown
            }
        }
        return method.serverStreaming
            ? await stream(method.requestType, method.responseType) : await unary(method.requestType, method.responseType)
    }

    /// The codes that say a call got past its rule and a handler answered it
    /// as a handler should (an empty request is mostly INVALID_ARGUMENT or
    /// NOT_FOUND). UNIMPLEMENTED (no handler), INTERNAL or UNKNOWN (a handler
    /// that failed) and UNAVAILABLE are not "allowed": they are broken cells.
    static let answeredByHandler: Set<RPCError.Code> = [
        .ok, .invalidArgument, .notFound, .failedPrecondition, .deadlineExceeded, .alreadyExists, .aborted, .outOfRange,
    ]

    @Test(
        "each role, by certificate and by bearer token, a global admin by both, and no identity, against each RPC: allowed calls are answered by their handler, the others refused by the rule"
    )
    func matrix() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("access-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func hash(_ token: String) -> String { SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined() }
        var grants = Role.allCases.map { role in
            TokenGrant(principal: Principal(uri: "handoff://tenant/globex/\(role.rawValue)/bearer")!, sha256: hash("token-\(role)"), expiresAtMs: nil)
        }
        grants.append(TokenGrant(principal: Principal(uri: "handoff://global/admin/root-token")!, sha256: hash("token-global"), expiresAtMs: nil))
        let running = try await start(directory, access: AccessControl(tokens: grants))
        let issued = try await runProcess(
            Binaries.path("handoff"), ["certs", "issue", directory, "--name", "root", "--role", "admin", "--global"])
        try #require(issued.status == 0, "\(issued.output)")
        func path(_ file: String) -> String { (directory as NSString).appendingPathComponent(file) }
        /// A client by certificate (`name`) or by token, in globex (a global admin names it in the metadata).
        func caller(certificate name: String?, token: String?, global: Bool) throws -> HandoffClient {
            var configuration = HandoffClient.Configuration(
                host: "127.0.0.1", port: running.port,
                tls: .client(
                    trustRootsPath: path("ca.pem"), serverHostname: "127.0.0.1", certificateChainPath: name.map { path("\($0).pem") },
                    privateKeyPath: name.map { path("\($0).key") }))
            if let token { configuration.metadata.append(MetadataEntry(key: "authorization", value: "Bearer \(token)")) }
            if global { configuration.metadata.append(MetadataEntry(key: "handoff-tenant", value: "globex")) }
            return try HandoffClient(configuration: configuration)
        }
        var identities: [(label: String, role: HandoffServer.Role, global: Bool, client: HandoffClient)] = []
        for role in Role.allCases {
            identities.append(("certificate \(role)", role, false, try caller(certificate: "globex.\(role.rawValue)", token: nil, global: false)))
            identities.append(("token \(role)", role, false, try caller(certificate: nil, token: "token-\(role)", global: false)))
        }
        identities.append(("certificate global admin", .admin, true, try caller(certificate: "global.admin.root", token: nil, global: true)))
        identities.append(("token global admin", .admin, true, try caller(certificate: nil, token: "token-global", global: true)))
        var cells = 0
        for identity in identities {
            for method in ProtoRegistry.methods {
                let rule = try #require(AccessRules.table[method.fullName])
                let code = await status(identity.client, method)
                if rule.roles.contains(identity.role), !rule.globalOnly || identity.global {
                    #expect(Self.answeredByHandler.contains(code), "\(identity.label) on \(method.fullName): \(code)")
                } else {
                    #expect(code == .permissionDenied, "\(identity.label) on \(method.fullName): \(code)")
                }
                cells += 1
            }
            await identity.client.close()
        }
        let anonymous = try client(running, directory, nil)
        for method in ProtoRegistry.methods {
            let code = await status(anonymous, method)
            #expect(code == (AccessRules.table[method.fullName]!.anonymous ? .ok : .unauthenticated), "anonymous on \(method.fullName): \(code)")
            cells += 1
        }
        await anonymous.close()
        #expect(cells == (Role.allCases.count * 2 + 3) * ProtoRegistry.methods.count)
        await running.stop()
    }

    @Test("a refusal names the rule; another tenant's session and pending action are NOT_FOUND, not PERMISSION_DENIED")
    func tenantsApart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("access-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let running = try await start(directory)
        let acme = try client(running, directory, "acme.agent")
        let globex = try client(running, directory, "globex.agent")
        let acmeOperator = try client(running, directory, "acme.operator")

        _ = try await acme.call(Sessions.createSession, CreateSessionRequest(sessionID: "s", stateJSON: #"{"who":"acme"}"#, reasoning: "r"))
        let pending = try #require(
            try await acme.call(
                HandoffProto.Policy.assessAction, AssessActionRequest(sessionID: "s", action: Action(toolName: "book_flight", description: "Book"))
            ).pendingAction)
        func code<Request, Response>(_ client: HandoffClient, _ method: UnaryMethod<Request, Response>, _ request: Request) async -> RPCError? {
            do {
                _ = try await client.call(method, request)
                return nil
            } catch {
                return error
            }
        }
        #expect(await code(globex, Sessions.getSession, GetSessionRequest(sessionID: "s"))?.code == .notFound)
        #expect(
            await code(globex, Sessions.updateState, UpdateStateRequest(sessionID: "s", reasoning: "r", change: .mergePatchJSON("{}")))?.code
                == .notFound)
        #expect(await code(globex, Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: pending.id))?.code == .notFound)
        // The same id in globex is another session.
        _ = try await globex.call(Sessions.createSession, CreateSessionRequest(sessionID: "s", stateJSON: #"{"who":"globex"}"#, reasoning: "r"))
        #expect(try await acme.call(Sessions.getSession, GetSessionRequest(sessionID: "s")).session?.stateJSON == #"{"who":"acme"}"#)
        #expect(try await acme.call(Sessions.getSession, GetSessionRequest(sessionID: "s")).session?.tenantID == "acme")

        // Another tenant's approval is NOT_FOUND to read and to decide.
        let refund = try await acme.call(
            HandoffProto.Policy.assessAction,
            AssessActionRequest(
                sessionID: "s", action: Action(toolName: "issue_refund", amount: "250", currency: "USD")))
        #expect(!refund.approvalID.isEmpty)
        let globexApprover = try client(running, directory, "globex.approver")
        #expect(await code(globexApprover, Approvals.getApproval, GetApprovalRequest(approvalID: refund.approvalID))?.code == .notFound)
        let item = try await globexApprover.call(
            Approvals.decideApproval,
            DecideApprovalRequest(decisions: [
                ApprovalDecision(approvalID: refund.approvalID, verdict: .approve)
            ])
        ).results.first
        guard case .error(let error)? = item?.result else {
            Issue.record("another tenant decided an approval")
            return
        }
        #expect(error.code == 5)
        #expect(try await globexApprover.call(Approvals.listPendingApprovals, ListPendingApprovalsRequest()).approvals.isEmpty)
        await globexApprover.close()

        let denied = await code(acmeOperator, Sessions.updateState, UpdateStateRequest(sessionID: "s", reasoning: "r", change: .mergePatchJSON("{}")))
        #expect(denied?.code == .permissionDenied)
        #expect(denied?.message == "handoff.v1.Sessions/UpdateState is for agent, admin; handoff://tenant/acme/operator/operator is operator")
        // An operator reads the context of its own tenant's session.
        #expect(try await acmeOperator.call(Sessions.getContext, GetContextRequest(sessionID: "s")).session?.stateJSON == #"{"who":"acme"}"#)
        for client in [acme, globex, acmeOperator] { await client.close() }
        await running.stop()
    }

    /// RPCs that name no record of a tenant, and why each needs no isolation probe.
    static let isolationExempt: [String: String] = [
        "handoff.v1.Health/Ping": "names nothing",
        "handoff.v1.Sessions/CreateSession": "creates in the caller's tenant (the same id in two tenants is two sessions: tenantsApart)",
        "handoff.v1.Admin/ReloadPolicy": "global admins only; the policy is shared",
        "handoff.v1.Admin/Backup": "global admins only; the copy holds every tenant by design",
    ]

    @Test(
        "tenant isolation on every RPC that names a record, generated from the access table: another tenant's ids are NOT_FOUND, its lists and feeds empty"
    )
    func isolationEverywhere() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("access-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (running, services) = try await startWithServices(directory)
        func caller(_ tenant: String, _ role: String) throws -> HandoffClient { try client(running, directory, "\(tenant).\(role)") }
        let acme = try caller("acme", "agent")
        let acmeOperator = try caller("acme", "operator")
        // acme's records: a session, a released booking (with its token), a deletion waiting for a code, a ticket, an approval.
        _ = try await acme.call(Sessions.createSession, CreateSessionRequest(sessionID: "s", reasoning: "r"))
        func assess(_ action: Action) async throws -> AssessActionResponse {
            try await acme.call(HandoffProto.Policy.assessAction, AssessActionRequest(sessionID: "s", action: action))
        }
        let booking = try #require(try await assess(Action(toolName: "book_flight", description: "Book")).pendingAction)
        _ = try await acme.call(Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: booking.id))
        let released = try await acme.call(
            Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: booking.id, text: "yes"))
        let token = try #require(released.pendingAction?.releaseToken)
        let deletion = try #require(try await assess(Action(toolName: "delete_user_data", description: "Delete")).pendingAction)
        let confirm = try #require(try await assess(Action(toolName: "book_flight", description: "Book again")).pendingAction)
        let refund = try await assess(Action(toolName: "issue_refund", amount: "250", currency: "USD"))
        _ = try await acme.call(Sessions.createSession, CreateSessionRequest(sessionID: "t", reasoning: "r"))
        let ticket = try #require(try await acme.call(Escalations.escalate, EscalateRequest(sessionID: "t", reason: "help")).ticket)
        _ = try await acmeOperator.call(Escalations.claim, ClaimRequest(ticketID: ticket.id))

        let agent = try caller("globex", "agent")
        let op = try caller("globex", "operator")
        let approver = try caller("globex", "approver")
        let admin = try caller("globex", "admin")
        @Sendable func notFound<Request, Response>(
            _ client: HandoffClient, _ method: UnaryMethod<Request, Response>, _ request: Request
        ) async -> Bool {
            let refused = await refusalOf(client, method, request)
            if refused?.code != .notFound { Issue.record("\(method.fullName): \(String(describing: refused))") }
            return refused?.code == .notFound
        }
        var probes: [String: () async throws -> Bool] = [:]
        probes["handoff.v1.Sessions/GetSession"] = { await notFound(agent, Sessions.getSession, GetSessionRequest(sessionID: "s")) }
        probes["handoff.v1.Sessions/UpdateState"] = {
            await notFound(agent, Sessions.updateState, UpdateStateRequest(sessionID: "s", reasoning: "r", change: .mergePatchJSON("{}")))
        }
        probes["handoff.v1.Sessions/AddTurn"] = {
            await notFound(agent, Sessions.addTurn, AddTurnRequest(sessionID: "s", input: "x", reasoning: "r"))
        }
        probes["handoff.v1.Sessions/AddMemory"] = {
            await notFound(agent, Sessions.addMemory, AddMemoryRequest(sessionID: "s", content: "x", reasoning: "r"))
        }
        probes["handoff.v1.Sessions/GetContext"] = { await notFound(op, Sessions.getContext, GetContextRequest(sessionID: "s")) }
        probes["handoff.v1.Sessions/ListEvents"] = {
            let events = try? await op.call(Sessions.listEvents, ListEventsRequest(sessionID: "s", pageSize: 100))
            let all = try await op.call(Sessions.listEvents, ListEventsRequest(pageSize: 100))
            return (events?.events.isEmpty ?? true) && all.events.isEmpty
        }
        probes["handoff.v1.Policy/AssessAction"] = {
            await notFound(agent, HandoffProto.Policy.assessAction, AssessActionRequest(sessionID: "s", action: Action(toolName: "get_weather")))
        }
        probes["handoff.v1.Confirmations/RequestConfirmation"] = {
            await notFound(agent, Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: confirm.id))
        }
        probes["handoff.v1.Confirmations/RespondToConfirmation"] = {
            await notFound(agent, Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: confirm.id, text: "yes"))
        }
        probes["handoff.v1.Confirmations/StartMultiFactor"] = {
            await notFound(agent, Confirmations.startMultiFactor, StartMultiFactorRequest(pendingActionID: deletion.id))
        }
        probes["handoff.v1.Confirmations/VerifyMultiFactor"] = {
            await notFound(agent, Confirmations.verifyMultiFactor, VerifyMultiFactorRequest(pendingActionID: deletion.id, code: "123456"))
        }
        probes["handoff.v1.Decisions/WaitForDecision"] = {
            do {
                for try await _ in try await agent.stream(
                    Decisions.waitForDecision, WaitForDecisionRequest(pendingActionIDs: [booking.id]),
                    options: CallOptions(timeout: .seconds(10)))
                {
                    Issue.record("WaitForDecision answered with another tenant's decision")
                }
                return false
            } catch let error as RPCError {
                return error.code == .notFound
            }
        }
        probes["handoff.v1.Decisions/ReportExecution"] = {
            // A token is looked up in the caller's tenant: another's is as unknown as a made-up one, and stays unused.
            let refused = await refusalOf(
                agent, Decisions.reportExecution, ReportExecutionRequest(releaseToken: token, resultJSON: "{}", idempotencyKey: "k"))
            let unknown = await refusalOf(
                agent, Decisions.reportExecution,
                ReportExecutionRequest(releaseToken: String(repeating: "0", count: 64), resultJSON: "{}", idempotencyKey: "k"))
            let used = try await acme.call(
                Decisions.reportExecution, ReportExecutionRequest(releaseToken: token, resultJSON: "{}", idempotencyKey: "k"))
            return refused != nil && refused?.code == unknown?.code && refused?.message == unknown?.message
                && used.recorded && !used.duplicate
        }
        probes["handoff.v1.Escalations/Escalate"] = { await notFound(agent, Escalations.escalate, EscalateRequest(sessionID: "s", reason: "x")) }
        probes["handoff.v1.Escalations/GetTicket"] = { await notFound(op, Escalations.getTicket, GetTicketRequest(ticketID: ticket.id)) }
        probes["handoff.v1.Escalations/ListQueue"] = { try await op.call(Escalations.listQueue, ListQueueRequest()).tickets.isEmpty }
        probes["handoff.v1.Escalations/Claim"] = { await notFound(op, Escalations.claim, ClaimRequest(ticketID: ticket.id)) }
        probes["handoff.v1.Escalations/Reply"] = { await notFound(op, Escalations.reply, ReplyRequest(ticketID: ticket.id, text: "hi")) }
        probes["handoff.v1.Escalations/Resolve"] = {
            await notFound(op, Escalations.resolve, ResolveRequest(ticketID: ticket.id, outcome: .resolved, note: "x"))
        }
        probes["handoff.v1.Approvals/RequestApproval"] = {
            await notFound(
                agent, Approvals.requestApproval,
                RequestApprovalRequest(
                    sessionID: "s", amount: "250", currency: "USD", reason: "x", subject: .pendingActionID(confirm.id)))
        }
        probes["handoff.v1.Approvals/GetApproval"] = {
            await notFound(approver, Approvals.getApproval, GetApprovalRequest(approvalID: refund.approvalID))
        }
        probes["handoff.v1.Approvals/ListPendingApprovals"] = {
            let routed = try await approver.call(Approvals.listPendingApprovals, ListPendingApprovalsRequest()).approvals
            let all = try await admin.call(Approvals.listPendingApprovals, ListPendingApprovalsRequest()).approvals
            return routed.isEmpty && all.isEmpty
        }
        probes["handoff.v1.Approvals/DecideApproval"] = {
            let result = try await approver.call(
                Approvals.decideApproval,
                DecideApprovalRequest(decisions: [
                    ApprovalDecision(approvalID: refund.approvalID, verdict: .approve)
                ]))
            guard case .error(let error)? = result.results.first?.result else { return false }
            return error.code == 5
        }
        probes["handoff.v1.Analytics/EscalationStats"] = {
            let stats = try await op.call(Analytics.escalationStats, EscalationStatsRequest())
            return stats.escalations == 0 && stats.sessionsInWindow == 0
        }
        probes["handoff.v1.Admin/VerifyAuditChain"] = { await notFound(admin, Admin.verifyAuditChain, VerifyAuditChainRequest(sessionID: "s")) }
        probes["handoff.v1.Operators/Watch"] = {
            // acme's operator sees acme's next escalation (the control); globex's watcher, live and replayed, sees nothing.
            let ours = Task { () async throws -> Int in
                var seen = 0
                for try await _ in try await acmeOperator.stream(
                    Operators.watch, WatchRequest(kinds: [.ticketOpened]), options: CallOptions(timeout: .seconds(30)))
                {
                    seen += 1
                    break
                }
                return seen
            }
            let theirs = Task { () async throws -> Int in
                var seen = 0
                do {
                    for try await event in try await op.stream(Operators.watch, WatchRequest(), options: CallOptions(timeout: .seconds(5))) {
                        if event.kind != .watcherLagged { seen += 1 }
                    }
                } catch let error as RPCError where error.code == .deadlineExceeded {}
                return seen
            }
            // Both watches have read the feed's head before the change (a late one would miss it).
            try await until(seconds: 20) { services.feed.hub.watcherCount >= 2 }
            _ = try await acme.call(Sessions.createSession, CreateSessionRequest(sessionID: "w", reasoning: "r"))
            _ = try await acme.call(Escalations.escalate, EscalateRequest(sessionID: "w", reason: "watch me"))
            let control = try await ours.value
            let leaked = try await theirs.value
            return control == 1 && leaked == 0
        }
        for method in ProtoRegistry.methods.map(\.fullName) where Self.isolationExempt[method] == nil {
            let probe = try #require(probes[method], "\(method) names a record but has no isolation probe")
            #expect(try await probe(), "\(method) reached another tenant's record")
        }
        for client in [acme, acmeOperator, agent, op, approver, admin] { await client.close() }
        await running.stop()
    }

    @Test("a certificate may name its identity in the subject CN alone")
    func commonNameIdentity() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("access-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let running = try await start(directory)
        func path(_ file: String) -> String { (directory as NSString).appendingPathComponent(file) }
        try "extendedKeyUsage = clientAuth\n".write(toFile: path("ext.cnf"), atomically: true, encoding: .utf8)
        let openssl = "/usr/bin/openssl"
        for arguments in [
            [
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", path("cn.key"), "-out", path("cn.csr"),
                "-subj", #"/CN=handoff:\/\/tenant\/acme\/operator\/cn-only"#,
            ],
            [
                "x509", "-req", "-in", path("cn.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"), "-CAcreateserial",
                "-out", path("cn.pem"), "-days", "1", "-extfile", path("ext.cnf"),
            ],
        ] {
            let made = try await runProcess(openssl, arguments)
            try #require(made.status == 0, "\(made.output)")
        }
        let client = try client(running, directory, "cn")
        _ = try await client.call(Escalations.listQueue, ListQueueRequest())
        let denied = await refusalOf(client, Sessions.createSession, CreateSessionRequest(sessionID: "x", reasoning: "r"))
        #expect(denied?.code == .permissionDenied)
        #expect(denied?.message.hasSuffix("handoff://tenant/acme/operator/cn-only is operator") == true, "\(String(describing: denied))")
        await client.close()
        await running.stop()
    }

    @Test("a global admin works in the tenant each call names, and must name one")
    func globalAdmin() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("access-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let root = try #require(Principal(uri: "handoff://global/admin/root"))
        #expect(root.isGlobal && root.role == .admin && root.name == "root")
        #expect(Principal(uri: "handoff://global/operator/x") == nil, "only admins are global")
        let hash = SHA256.hash(data: Data("root-token".utf8)).map { String(format: "%02x", $0) }.joined()
        let running = try await start(directory, access: AccessControl(tokens: [TokenGrant(principal: root, sha256: hash, expiresAtMs: nil)]))
        let acme = try client(running, directory, "acme.agent")
        _ = try await acme.call(Sessions.createSession, CreateSessionRequest(sessionID: "g", stateJSON: #"{"who":"acme"}"#, reasoning: "r"))
        var configuration = HandoffClient.Configuration(
            host: "127.0.0.1", port: running.port,
            tls: .client(trustRootsPath: (directory as NSString).appendingPathComponent("ca.pem"), serverHostname: "127.0.0.1"))
        configuration.metadata = [MetadataEntry(key: "authorization", value: "Bearer root-token")]
        let global = try HandoffClient(configuration: configuration)
        func inTenant(_ tenant: String) -> CallOptions { CallOptions(metadata: [MetadataEntry(key: "handoff-tenant", value: tenant)]) }
        let unnamed = await refusalOf(global, Sessions.getSession, GetSessionRequest(sessionID: "g"))
        #expect(unnamed?.code == .invalidArgument && unnamed?.message.contains("handoff-tenant") == true)
        // What every tenant shares needs no tenant: the shipped policy cannot be reloaded, and says so.
        let reload = await refusalOf(global, Admin.reloadPolicy, ReloadPolicyRequest(validateOnly: true))
        #expect(reload?.code == .failedPrecondition, "\(String(describing: reload))")
        let seen = try await global.call(Sessions.getSession, GetSessionRequest(sessionID: "g"), options: inTenant("acme"))
        #expect(seen.session?.stateJSON == #"{"who":"acme"}"#)
        do {
            _ = try await global.call(Sessions.getSession, GetSessionRequest(sessionID: "g"), options: inTenant("globex"))
            Issue.record("acme's session was found in globex")
        } catch {
            #expect(error.code == .notFound)
        }
        // What it does is recorded as a global admin's.
        _ = try await global.call(
            Sessions.updateState,
            UpdateStateRequest(
                sessionID: "g", reasoning: "support fix", change: .mergePatchJSON(#"{"fixed":true}"#)), options: inTenant("acme"))
        let events = try await acme.call(Sessions.listEvents, ListEventsRequest(sessionID: "g", order: .newestFirst, pageSize: 5))
        #expect(events.events.first?.actor == Identity(tenantID: "", role: .admin, name: "root"))
        // A tenant's admin may not reach another tenant by naming it.
        let acmeAdmin = try client(running, directory, "acme.admin")
        let scoped = try await acmeAdmin.call(Sessions.getSession, GetSessionRequest(sessionID: "g"), options: inTenant("globex"))
        #expect(scoped.session?.tenantID == "acme", "handoff-tenant moved a tenant-scoped admin")
        for c in [acme, global, acmeAdmin] { await c.close() }
        await running.stop()
    }

    @Test("bearer tokens: a known one acts as its identity, an unknown or expired one is UNAUTHENTICATED, guessing is cut off")
    func bearerTokens() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("access-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func hash(_ token: String) -> String { SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined() }
        let bot = try #require(Principal(uri: "handoff://tenant/acme/agent/bot"))
        let access = AccessControl(tokens: [
            TokenGrant(principal: bot, sha256: hash("good-token"), expiresAtMs: nil),
            TokenGrant(principal: bot, sha256: hash("old-token"), expiresAtMs: 1_000),
        ])
        let running = try await start(directory, access: access)
        func tokenClient(_ token: String) throws -> HandoffClient {
            var configuration = HandoffClient.Configuration(
                host: "127.0.0.1", port: running.port,
                tls: .client(trustRootsPath: (directory as NSString).appendingPathComponent("ca.pem"), serverHostname: "127.0.0.1"))
            configuration.metadata = [MetadataEntry(key: "authorization", value: "Bearer \(token)")]
            configuration.defaultTimeout = .seconds(10)
            return try HandoffClient(configuration: configuration)
        }
        let good = try tokenClient("good-token")
        let created = try await good.call(Sessions.createSession, CreateSessionRequest(sessionID: "t", reasoning: "r"))
        #expect(created.session?.tenantID == "acme")
        let events = try await good.call(Sessions.listEvents, ListEventsRequest(sessionID: "t", pageSize: 5))
        #expect(events.events.first?.actor == Identity(tenantID: "acme", role: .agent, name: "bot"))

        let refusal = { (client: HandoffClient) async -> RPCError? in
            do throws(RPCError) {
                _ = try await client.call(Sessions.getSession, GetSessionRequest(sessionID: "t"))
                return nil
            } catch {
                return error
            }
        }
        let old = try tokenClient("old-token")
        #expect((await refusal(old))?.message.contains("has expired") == true)
        let wrong = try tokenClient("guess")
        var codes: [RPCError.Code] = []
        for _ in 0..<(AccessControl.tokenFailuresPerMinute + 2) { codes.append((await refusal(wrong))?.code ?? .ok) }
        #expect(codes.prefix(AccessControl.tokenFailuresPerMinute).allSatisfy { $0 == .unauthenticated }, "\(codes)")
        #expect(codes.last == .resourceExhausted, "\(codes)")
        // Guessers on the same address do not lock out the holder of a known token.
        #expect(try await good.call(Sessions.getSession, GetSessionRequest(sessionID: "t")).session?.id == "t")
        for client in [good, old, wrong] { await client.close() }
        await running.stop()
    }

    @Test(
        "token failures count per IPv4 address, per IPv6 /64, and an IPv4 client on a dual-stack socket as its IPv4 address",
        arguments: [
            ("127.0.0.1:5000", "127.0.0.1"), ("[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"), ("[2001:db8:1:2::9]:1", "2001:db8:1:2::/64"),
            ("[::1]:7", "0:0:0:0::/64"), ("[::ffff:192.0.2.7]:80", "192.0.2.7"),
        ])
    func limitKeys(_ remote: String, _ key: String) {
        #expect(AccessControl.limitKey(remote) == key)
    }

    @Test(
        "the code calls are rate-limited per identity",
        arguments: [
            "handoff.v1.Confirmations/VerifyMultiFactor", "handoff.v1.Confirmations/StartMultiFactor",
        ])
    func codeRateLimits(_ method: String) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("access-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let running = try await start(directory)
        let agent = try client(running, directory, "acme.agent")
        let limit = try #require(AccessControl.guessableMethods[method])
        var codes: [RPCError.Code] = []
        for _ in 0...limit {
            do {
                if method.hasSuffix("VerifyMultiFactor") {
                    _ = try await agent.call(Confirmations.verifyMultiFactor, VerifyMultiFactorRequest(pendingActionID: "pa-x", code: "123456"))
                } else {
                    _ = try await agent.call(Confirmations.startMultiFactor, StartMultiFactorRequest(pendingActionID: "pa-x"))
                }
                codes.append(.ok)
            } catch {
                codes.append(error.code)
            }
        }
        #expect(codes.prefix(limit).allSatisfy { $0 == .notFound }, "\(codes)")
        #expect(codes.last == .resourceExhausted)
        await agent.close()
        await running.stop()
    }

    @Test("bearer-token guesses sent in parallel are held to the limit: at most that many are checked, the rest refused")
    func parallelTokenGuesses() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("access-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let running = try await start(directory)
        let guessers = try (0..<8).map { _ in
            var configuration = HandoffClient.Configuration(
                host: "127.0.0.1", port: running.port,
                tls: .client(trustRootsPath: (directory as NSString).appendingPathComponent("ca.pem"), serverHostname: "127.0.0.1"))
            configuration.metadata = [MetadataEntry(key: "authorization", value: "Bearer guess")]
            return try HandoffClient(configuration: configuration)
        }
        let codes = await withTaskGroup(of: RPCError.Code.self) { group in
            for index in 0..<200 {
                group.addTask {
                    do {
                        _ = try await guessers[index % guessers.count].call(Sessions.getSession, GetSessionRequest(sessionID: "t"))
                        return RPCError.Code.ok
                    } catch let error as RPCError {
                        return error.code
                    } catch {
                        return RPCError.Code.unknown
                    }
                }
            }
            var codes: [RPCError.Code] = []
            for await code in group { codes.append(code) }
            return codes
        }
        #expect(codes.filter { $0 == RPCError.Code.unauthenticated }.count == AccessControl.tokenFailuresPerMinute, "\(codes)")
        #expect(codes.filter { $0 == RPCError.Code.resourceExhausted }.count == 200 - AccessControl.tokenFailuresPerMinute)
        for guesser in guessers { await guesser.close() }
        await running.stop()
    }
}
