// Handoff — every page token and resume cursor a client can send, against
// every List RPC and Watch of a real server: hostile numbers, garbage and
// random bytes are INVALID_ARGUMENT (or a page), never a crash; and the
// approvals' keyset pages neither skip nor repeat while approvals are decided.

import Foundation
import HandoffClient
import HandoffCore
import HandoffDesks
import HandoffPolicy
import HandoffProto
import HandoffRPC
import HandoffSQLite
import HandoffServer
import Testing

@Suite("Page tokens over TLS", .timeLimit(.minutes(2)))
struct PageTokenTests {
    /// Every service with the access rules, on `fixtures`; a session "s" with
    /// `refunds` refunds waiting for approval (and one ticket).
    private func start(_ fixtures: Fixtures, refunds: Int) async throws -> (RunningServer, [String: HandoffClient]) {
        let store = try SQLiteStore(path: fixtures.path("handoff.sqlite"))
        let sessions = SessionService(store: store)
        let services = HandoffServices(
            store: store, sessions: sessions, policy: try PolicyHolder(path: nil),
            multiFactor: MultiFactorSettings(key: Array(repeating: 7, count: 32), channels: [FileCodeChannel(path: fixtures.path("codes.jsonl"))]))
        var registry = MethodRegistry()
        registry.enforceAccessRules()
        registry.registerHealth()
        services.register(into: &registry)
        let running = try await RunningServer(.init(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS()), registry: registry)
        var clients: [String: HandoffClient] = [:]
        for role in Fixtures.roles { clients[role] = try running.client(fixtures.clientTLS(role: role)) }
        let agent = clients["agent"]!
        _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: "s", reasoning: "chat"))
        for i in 0..<refunds {
            let reply = try await agent.call(
                HandoffProto.Policy.assessAction,
                AssessActionRequest(
                    sessionID: "s", action: Action(toolName: "issue_refund", description: "refund \(i)", amount: "\(200 + i)", currency: "USD")))
            #expect(!reply.approvalID.isEmpty)
        }
        _ = try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "s", reason: "the user asks for a person"))
        return (running, clients)
    }

    /// Tokens a stranger might send: every prefix the server uses, with numbers at and past the edges, and garbage.
    static func hostileTokens() -> [String] {
        func b64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
        let numbers = [
            "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-1", "0", "1e9", "", " 1", "0x10", "99999999999999999999999",
        ]
        var tokens: [String] = []
        for n in numbers {
            tokens += [
                b64("q:\(n)"), b64("a:\(n):0:ap-x"), b64("a:0:\(n):ap-x"), b64("a:\(n):\(n):"), b64("p:\(n):1:1:s"), b64("\(n):\(n):s"),
                b64("\(n):1:s"),
            ]
        }
        tokens += [
            "not base64!", "====", String(repeating: "A", count: 100_000), b64(String(repeating: "q:1", count: 1000)), b64("a::::"), b64("q:"),
        ]
        // Random bytes, seeded so a failure can be replayed.
        var generator = SplitMix(seed: 20_261_207)
        for length in [1, 3, 8, 17, 64, 300] {
            for _ in 0..<10 {
                tokens.append(Data((0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString())
            }
        }
        return tokens
    }

    @Test(
        "hostile page tokens and resume cursors to ListEvents, ListQueue, ListPendingApprovals and Watch: a page or INVALID_ARGUMENT, and the server answers after"
    )
    func hostileTokensRefused() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, clients) = try await start(fixtures, refunds: 2)
        let admin = clients["admin"]!
        let allowed: Set<RPCError.Code> = [.ok, .invalidArgument]
        var answers = 0
        for token in Self.hostileTokens() {
            func code<Request, Response>(_ method: UnaryMethod<Request, Response>, _ request: Request) async -> RPCError.Code {
                (await refusalOf(admin, method, request))?.code ?? .ok
            }
            let codes = [
                await code(Sessions.listEvents, ListEventsRequest(sessionID: "s", pageSize: 5, pageToken: token)),
                await code(Sessions.listEvents, ListEventsRequest(sessionID: "s", order: .newestFirst, pageSize: 5, pageToken: token)),
                await code(Escalations.listQueue, ListQueueRequest(pageSize: 5, pageToken: token)),
                await code(Approvals.listPendingApprovals, ListPendingApprovalsRequest(pageSize: 5, pageToken: token)),
                await code(Approvals.listPendingApprovals, ListPendingApprovalsRequest(pageSize: 500, pageToken: token)),
            ]
            #expect(codes.allSatisfy { allowed.contains($0) }, "\(token.prefix(60)): \(codes)")
            var watched: RPCError.Code = .ok
            do {
                for try await _ in try await admin.stream(
                    Operators.watch, WatchRequest(resumeCursor: token), options: CallOptions(timeout: .milliseconds(50)))
                {}
            } catch let error as RPCError {
                watched = error.code
            } catch {
                watched = .unknown
            }
            #expect([.invalidArgument, .deadlineExceeded, .ok].contains(watched), "Watch \(token.prefix(60)): \(watched)")
            answers += codes.count + 1
        }
        #expect(answers > 400)
        _ = try await admin.call(Health.ping, PingRequest())
        for client in clients.values { await client.close() }
        await running.stop()
    }

    @Test("the known crash: ListPendingApprovals with q:Int.max is INVALID_ARGUMENT naming the token")
    func knownCrash() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, clients) = try await start(fixtures, refunds: 1)
        let token = Data("q:9223372036854775807".utf8).base64EncodedString()
        for role in ["approver", "admin"] {
            let refused = await refusalOf(clients[role]!, Approvals.listPendingApprovals, ListPendingApprovalsRequest(pageToken: token))
            #expect(refused?.code == .invalidArgument && refused?.message.contains("page_token") == true, "\(role): \(String(describing: refused))")
        }
        _ = try await clients["admin"]!.call(Health.ping, PingRequest())
        for client in clients.values { await client.close() }
        await running.stop()
    }

    @Test("ListPendingApprovals pages by keyset: approvals decided between pages shift nothing; every one is listed once")
    func keysetPages() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, clients) = try await start(fixtures, refunds: 7)
        let approver = clients["approver"]!
        var seen: [String] = []
        var token = ""
        var pages = 0
        repeat {
            let page = try await approver.call(Approvals.listPendingApprovals, ListPendingApprovalsRequest(pageSize: 3, pageToken: token))
            seen += page.approvals.map(\.id)
            // Deciding the first of each page takes it off the pending list before the next page is read.
            if let first = page.approvals.first {
                let result = try await approver.call(
                    Approvals.decideApproval,
                    DecideApprovalRequest(decisions: [
                        ApprovalDecision(approvalID: first.id, verdict: .reject, comment: "no")
                    ]))
                guard case .approval? = result.results.first?.result else {
                    Issue.record("the decision failed: \(result)")
                    break
                }
            }
            token = page.nextPageToken
            pages += 1
        } while !token.isEmpty && pages < 10
        #expect(seen.count == 7, "\(seen)")
        #expect(Set(seen).count == 7, "an approval was listed twice")
        // The agent requested them all: it is no approver of its own requests, and agents may not list.
        let agent = await refusalOf(clients["agent"]!, Approvals.listPendingApprovals, ListPendingApprovalsRequest())
        #expect(agent?.code == .permissionDenied)
        for client in clients.values { await client.close() }
        await running.stop()
    }
}
