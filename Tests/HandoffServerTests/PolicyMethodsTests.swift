// Handoff — Policy/AssessAction and Admin/ReloadPolicy over real TLS, into a
// real SQLite file.

import Foundation
import HandoffClient
import HandoffCore
import HandoffDesks
import HandoffPolicy
import HandoffProto
import HandoffRPC
import HandoffServer
import NIOPosix
import Synchronization
import Testing

@testable import HandoffSQLite

@Suite("Policy over TLS", .timeLimit(.minutes(1)))
struct PolicyMethodsTests {
    /// A server with sessions and the policy in `policyFile` (nil: shipped), and a session "s".
    private func start(
        _ fixtures: Fixtures, policyFile: String? = nil, clock: @escaping @Sendable () -> Int64 = SessionService.wallClockMs,
        store: SQLiteStore? = nil, automated: AutomatedAssessments = .queued
    ) async throws -> (RunningServer, HandoffClient, PolicyHolder) {
        let store = try store ?? SQLiteStore(path: fixtures.path("handoff.sqlite"))
        let sessions = SessionService(store: store, clock: clock)
        let holder = try PolicyHolder(path: policyFile)
        var registry = MethodRegistry()
        registry.registerSessions(sessions)
        registry.registerPolicy(
            AssessmentService(store: store, sessions: sessions, policy: holder, clock: clock, automated: automated), policy: holder)
        let running = try await RunningServer(.init(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS()), registry: registry)
        let client = try running.client(fixtures.clientTLS(role: "agent"))
        _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "s", reasoning: "chat started"))
        return (running, client, holder)
    }

    private func refusal(_ client: HandoffClient, _ request: AssessActionRequest) async -> RPCError? {
        await refusalOf(client, HandoffProto.Policy.assessAction, request)
    }

    @Test("the seed scenario's actions: strategy, rules with why, a pending action exactly when not automated, an event each")
    func seedActions() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let now: Int64 = 1_800_000_000_000
        let (running, client, _) = try await start(fixtures, clock: { now })
        let cases: [(Action, HandoffProto.Strategy, HandoffProto.RiskLevel)] = [
            (Action(toolName: "get_weather", parametersJSON: #"{"city":"Paris"}"#, description: "What's the weather?"), .automate, .low),
            (Action(toolName: "book_flight", description: "Book a flight to NYC"), .explicitConfirm, .medium),
            (Action(toolName: "issue_refund", description: "Refund my order of 250 dollars", amount: "250", currency: "USD"), .escalate, .high),
            (Action(toolName: "delete_user_data", description: "Delete all my data"), .multiFactor, .high),
            (Action(toolName: "answer", description: "What dosage of ibuprofen should I take?", confidence: 0.4), .escalate, .critical),
        ]
        var pendingIDs: Set<String> = []
        for (action, strategy, risk) in cases {
            let reply = try await client.call(HandoffProto.Policy.assessAction, AssessActionRequest(sessionID: "s", action: action))
            #expect(reply.strategy == strategy, "\(action.toolName): \(reply.matchedRules)")
            #expect(reply.risk == risk, "\(action.toolName)")
            #expect(reply.policyVersion == "handoff-standard-1")
            if strategy == .automate {
                #expect(reply.pendingAction == nil)
            } else {
                let pending = try #require(reply.pendingAction)
                #expect(pending.status == .pending)
                #expect(pending.sessionID == "s")
                #expect(pending.strategy == strategy)
                #expect(pending.action?.toolName == action.toolName)
                #expect(pending.expiresAtUnixMs == now + 3_600_000)
                #expect(pending.actionHash.count == 32)
                #expect(pending.assessedSessionVersion == 1)
                pendingIDs.insert(pending.id)
            }
        }
        #expect(pendingIDs.count == 4, "each pending action has its own id")
        let refund = try await client.call(
            HandoffProto.Policy.assessAction, AssessActionRequest(sessionID: "s", action: cases[2].0))
        #expect(refund.matchedRules.contains { $0.ruleID == "amount.high" && $0.kind == .amount && $0.explanation == "amount 250 USD > 100" })
        let medical = try await client.call(HandoffProto.Policy.assessAction, AssessActionRequest(sessionID: "s", action: cases[4].0))
        #expect(medical.matchedRules.contains { $0.kind == .confidence && $0.explanation == "confidence 0.40 < 0.70" })

        let events = try await client.call(
            Sessions.listEvents, ListEventsRequest(sessionID: "s", actions: ["action.assessed"], pageSize: 50))
        #expect(events.events.count == 7)
        let first = try JSONValue(parsing: events.events[0].detailsJSON).objectValue
        #expect(first?["strategy"] == .string("automate"))
        #expect(first?["tool"] == .string("get_weather"))
        let audit = try await client.call(Admin.verifyAuditChain, VerifyAuditChainRequest(sessionID: "s"))
        #expect(audit.ok)
        await running.stop()
    }

    @Test("the same idempotency key returns the same pending action and writes nothing new; another action under it is refused")
    func idempotency() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, client, _) = try await start(fixtures)
        let refund = Action(toolName: "issue_refund", description: "Refund 40", amount: "40", currency: "EUR")
        let request = AssessActionRequest(sessionID: "s", action: refund, idempotencyKey: "turn-7-call-1")
        let first = try await client.call(HandoffProto.Policy.assessAction, request)
        let again = try await client.call(HandoffProto.Policy.assessAction, request)
        #expect(first.pendingAction?.id != nil)
        #expect(again.pendingAction?.id == first.pendingAction?.id)
        #expect(again.matchedRules == first.matchedRules)
        let events = try await client.call(
            Sessions.listEvents, ListEventsRequest(sessionID: "s", actions: ["action.assessed"], pageSize: 50))
        #expect(events.events.count == 1, "a replay records no second event")

        var other = request
        other.action?.amount = "41"
        let error = await refusal(client, other)
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message.contains("turn-7-call-1") == true)
        // Without a key every call is a new assessment.
        let a = try await client.call(HandoffProto.Policy.assessAction, AssessActionRequest(sessionID: "s", action: refund))
        let b = try await client.call(HandoffProto.Policy.assessAction, AssessActionRequest(sessionID: "s", action: refund))
        #expect(a.pendingAction?.id != b.pendingAction?.id)
        await running.stop()
    }

    @Test(
        "bad actions are INVALID_ARGUMENT naming the field; an unknown session is NOT_FOUND",
        arguments: [
            (Action(toolName: ""), "action.tool_name is required"),
            (Action(toolName: "t", parametersJSON: "[1]"), "action.parameters_json must be a JSON object"),
            (Action(toolName: "t", parametersJSON: "{oops"), "action.parameters_json is not valid JSON"),
            (Action(toolName: "t", amount: "12,50", currency: "EUR"), "action.amount \"12,50\" is not decimal text"),
            (Action(toolName: "t", amount: "12.50"), "action.currency must be an ISO 4217 code"),
            (Action(toolName: "t", confidence: 1.5), "action.confidence 1.5 is not within 0.0...1.0"),
            (Action(toolName: "t", confidence: .nan), "action.confidence nan is not within 0.0...1.0"),
        ])
    func badActions(_ action: Action, _ expected: String) async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, client, _) = try await start(fixtures)
        let error = await refusal(client, AssessActionRequest(sessionID: "s", action: action))
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(expected) == true, "\(String(describing: error))")
        let missing = await refusal(client, AssessActionRequest(sessionID: "nope", action: Action(toolName: "t")))
        #expect(missing?.code == .notFound)
        // An automated action answered once its event is queued reads the session first: the write comes after the answer.
        let missingAutomated = await refusal(
            client, AssessActionRequest(sessionID: "nope", action: Action(toolName: "get_weather", description: "Weather in Lisbon")))
        #expect(missingAutomated?.code == .notFound && missingAutomated?.message.contains("nope") == true, "\(String(describing: missingAutomated))")
        await running.stop()
    }

    @Test(
        "an automated action is answered while the store's writer is busy (queued), or after its event committed (committed); reads see it",
        arguments: AutomatedAssessments.allCases)
    func automatedWhileWriterBusy(_ mode: AutomatedAssessments) async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let store = try SQLiteStore(path: fixtures.path("handoff.sqlite"))
        let (running, client, _) = try await start(fixtures, store: store, automated: mode)

        // A write that holds the writer, like a slow disk would.
        let gate = DispatchSemaphore(value: 0)
        let held = Mutex(false)
        let holding = Task {
            try await store.write { _ in
                held.withLock { $0 = true }
                gate.wait()
            }
        }
        while !held.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        let weather = Action(toolName: "get_weather", description: "What's the weather in Lisbon?")
        let answered = Mutex(false)
        let assessing = Task {
            defer { answered.withLock { $0 = true } }
            return try await client.call(HandoffProto.Policy.assessAction, AssessActionRequest(sessionID: "s", action: weather))
        }
        let listing: Task<ListEventsResponse, any Error>
        func list() -> Task<ListEventsResponse, any Error> {
            Task { try await client.call(Sessions.listEvents, ListEventsRequest(sessionID: "s", actions: ["action.assessed"], pageSize: 50)) }
        }
        switch mode {
        case .queued:
            // Answered without its commit (with an idempotency key it would wait);
            // a read after the answer waits for the commit.
            #expect(try await assessing.value.strategy == .automate)
            listing = list()
            while store._testOnly_settlingReads == 0 { try await Task.sleep(for: .milliseconds(2)) }
            gate.signal()
        case .committed:
            // The assessment's write waits behind the held one: no answer may come until it commits.
            while store._testOnly_waitingWrites == 0 { try await Task.sleep(for: .milliseconds(2)) }
            #expect(store._testOnly_waitingWrites == 1, "the assessment's write is not waiting for the writer")
            for _ in 0..<50 {
                #expect(!answered.withLock { $0 }, "answered before its commit")
                try await Task.sleep(for: .milliseconds(2))
            }
            gate.signal()
            #expect(try await assessing.value.strategy == .automate)
            listing = list()
        }
        try await holding.value
        #expect(try await listing.value.events.map(\.action) == ["action.assessed"], "a read after the answer missed the event")
        #expect(try await client.call(Admin.verifyAuditChain, VerifyAuditChainRequest(sessionID: "s")).ok)
        await client.close()
        await running.stop()
    }

    @Test("ReloadPolicy applies a good file, refuses a bad one with line and reason and keeps the old policy")
    func reload() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let file = fixtures.path("policy.yaml")
        try Policy.standardYAML.write(toFile: file, atomically: true, encoding: .utf8)
        let (running, client, _) = try await start(fixtures, policyFile: file)
        let weather = AssessActionRequest(sessionID: "s", action: Action(toolName: "get_weather"))
        #expect(try await client.call(HandoffProto.Policy.assessAction, weather).strategy == .automate)

        // A file that escalates everything informational, checked only, then applied.
        let strict = Policy.standardYAML
            .replacingOccurrences(of: "version: handoff-standard-1", with: "version: strict-2")
            .replacingOccurrences(of: "informational: {risk: low, strategy: automate}", with: "informational: {risk: low, strategy: escalate}")
        try strict.write(toFile: file, atomically: true, encoding: .utf8)
        let checked = try await client.call(Admin.reloadPolicy, ReloadPolicyRequest(validateOnly: true))
        #expect(checked.policyVersion == "strict-2")
        #expect(!checked.applied)
        #expect(try await client.call(HandoffProto.Policy.assessAction, weather).strategy == .automate, "validate_only applies nothing")
        let applied = try await client.call(Admin.reloadPolicy, ReloadPolicyRequest())
        #expect(applied.applied)
        #expect(applied.policyHash.count == 32)
        let reply = try await client.call(HandoffProto.Policy.assessAction, weather)
        #expect(reply.strategy == .escalate)
        #expect(reply.policyVersion == "strict-2")

        try "version: broken\nwords:\n  - id: w\n    words: [two words]\n    decision_type: legal\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        var error: RPCError?
        do {
            _ = try await client.call(Admin.reloadPolicy, ReloadPolicyRequest())
        } catch let refused {
            error = refused
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("policy.yaml:4: words[0].words[0]") == true, "\(String(describing: error))")
        #expect(try await client.call(HandoffProto.Policy.assessAction, weather).policyVersion == "strict-2", "the old policy stays")
        await running.stop()
    }
}

/// A server with sessions, the policy (the shipped one, or `policyYAML`),
/// confirmations, codes and decisions, on `clock`, with a session "s".
func startDecisionServer(
    _ fixtures: Fixtures, clock: TestClock, policyYAML: String? = nil, channels: [any CodeChannel] = []
) async throws -> (RunningServer, HandoffClient) {
    let (running, client, _) = try await startServices(fixtures, clock: clock, policyYAML: policyYAML, channels: channels)
    return (running, client)
}

/// A server with every domain service, wired as handoffd wires them (no
/// access rules: callers are their certificates' identities), session "s"
/// made by the agent; the services are returned for sweeps.
func startServices(
    _ fixtures: Fixtures, clock: TestClock, policyYAML: String? = nil, channels: [any CodeChannel] = [],
    notices: [any NoticeChannel] = [], noticeRetryDelays: [Duration] = NoticeSender.defaultRetryDelays
) async throws -> (RunningServer, HandoffClient, HandoffServices) {
    let store = try SQLiteStore(path: fixtures.path("handoff.sqlite"))
    let sessions = SessionService(store: store, clock: { clock.read() })
    var policyFile: String?
    if let policyYAML {
        policyFile = fixtures.path("policy.yaml")
        try policyYAML.write(toFile: policyFile!, atomically: true, encoding: .utf8)
    }
    let holder = try PolicyHolder(path: policyFile)
    let services = HandoffServices(
        store: store, sessions: sessions, policy: holder,
        multiFactor: MultiFactorSettings(key: Array(repeating: 9, count: 32), channels: channels), notices: notices,
        noticeRetryDelays: noticeRetryDelays, clock: { clock.read() })
    var registry = MethodRegistry()
    services.register(into: &registry, clock: { clock.read() })
    let running = try await RunningServer(.init(host: "127.0.0.1", port: 0, tls: fixtures.serverTLS()), registry: registry)
    let client = try running.client(fixtures.clientTLS(role: "agent"))
    _ = try await client.call(Sessions.createSession, CreateSessionRequest(sessionID: "s", reasoning: "chat started"))
    return (running, client, services)
}

/// The error a unary call ends with, or nil when it succeeds.
func refusalOf<Request, Response>(
    _ client: HandoffClient, _ method: UnaryMethod<Request, Response>, _ request: Request
) async -> RPCError? {
    do {
        _ = try await client.call(method, request)
        return nil
    } catch {
        return error
    }
}

/// Assesses `action` in session "s" and returns the pending action it needs.
func assess(_ client: HandoffClient, _ action: Action) async throws -> PendingAction {
    try #require(try await client.call(HandoffProto.Policy.assessAction, AssessActionRequest(sessionID: "s", action: action)).pendingAction)
}

/// A clock the test moves by hand.
final class TestClock: Sendable {
    private let now = Mutex<Int64>(1_800_000_000_000)
    func read() -> Int64 { now.withLock { $0 } }
    func advance(seconds: Int64) { now.withLock { $0 += seconds * 1000 } }
}

@Suite("Confirmations over TLS", .timeLimit(.minutes(1)))
struct ConfirmationsMethodsTests {
    private func start(_ fixtures: Fixtures, policyYAML: String? = nil, clock: TestClock) async throws -> (RunningServer, HandoffClient) {
        try await startDecisionServer(fixtures, clock: clock, policyYAML: policyYAML)
    }

    private func status(_ client: HandoffClient) async throws -> SessionStatus? {
        try await client.call(Sessions.getSession, GetSessionRequest(sessionID: "s")).session?.status
    }

    @Test("explicit confirmation: the action spelled out, maybe and a question re-prompt, yes releases once with a token")
    func yesAfterAmbiguity() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let clock = TestClock()
        let (running, client) = try await start(fixtures, clock: clock)
        let booking = try await assess(
            client,
            Action(
                toolName: "book_flight", parametersJSON: #"{"to":"NYC","date":"2026-12-24"}"#, description: "Book a flight to NYC"))
        #expect(booking.strategy == .explicitConfirm)
        #expect(try await status(client) == .active)

        let asked = try await client.call(
            Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: booking.id))
        #expect(asked.prompt.contains("- tool: book_flight"), "\(asked.prompt)")
        #expect(asked.prompt.contains(#"{"date":"2026-12-24","to":"NYC"}"#), "\(asked.prompt)")
        #expect(asked.prompt.contains("Answer yes"))
        // The deadline that applies: the confirmation's (600 s shipped), sooner than the action's own hour.
        #expect(booking.expiresAtUnixMs == clock.read() + 3_600_000)
        #expect(asked.pendingAction?.expiresAtUnixMs == clock.read() + 600_000)
        #expect(try await status(client) == .awaitingConfirmation)

        for (text, count) in [("hmm, what time?", 1), ("maybe", 2), ("yes but no", 3)] {
            let reply = try await client.call(
                Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: booking.id, text: text))
            #expect(reply.outcome == .ambiguous, "\(text)")
            #expect(reply.repromptCount == Int32(count))
            #expect(reply.reprompt.hasPrefix("Sorry, I need a clear yes or no."))
            #expect(reply.pendingAction?.status == .pending)
            #expect(reply.pendingAction?.releaseToken == "")
        }
        let yes = try await client.call(
            Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: booking.id, text: "Yes, go ahead!"))
        #expect(yes.outcome == .confirmed)
        #expect(yes.pendingAction?.status == .released)
        let token = try #require(yes.pendingAction?.releaseToken)
        #expect(token.count == 64)
        #expect(try await status(client) == .active)

        let again = await refusalOf(
            client, Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: booking.id, text: "yes"))
        #expect(again?.code == .failedPrecondition)
        #expect(again?.message.contains("released") == true)

        let events = try await client.call(Sessions.listEvents, ListEventsRequest(sessionID: "s", pageSize: 50)).events.map(\.action)
        #expect(
            events == [
                "session.created", "action.assessed", "confirmation.requested", "confirmation.answered", "confirmation.answered",
                "confirmation.answered", "confirmation.answered", "action.released",
            ])
        #expect(try await client.call(Admin.verifyAuditChain, VerifyAuditChainRequest(sessionID: "s")).ok)
        await running.stop()
        // Only the token's hash is kept.
        let database =
            try Data(contentsOf: URL(fileURLWithPath: fixtures.path("handoff.sqlite")))
            + ((try? Data(contentsOf: URL(fileURLWithPath: fixtures.path("handoff.sqlite-wal")))) ?? Data())
        #expect(database.range(of: Data(token.utf8)) == nil, "the release token is in the database")
    }

    @Test("a no-word declines and releases nothing; wrong strategy, unknown id and an unasked answer are refused")
    func declineAndRefusals() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, client) = try await start(fixtures, clock: TestClock())
        let preference = try await assess(client, Action(toolName: "recommend_hotel", description: "Suggest a hotel"))
        #expect(preference.strategy == .confirm)
        let early = await refusalOf(
            client, Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: preference.id, text: "yes"))
        #expect(early?.code == .failedPrecondition)
        #expect(early?.message.contains("call RequestConfirmation first") == true)
        let asked = try await client.call(
            Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: preference.id, prompt: "Shall I book the Ritz?"))
        #expect(asked.prompt == "Shall I book the Ritz?", "a plain confirmation keeps the agent's words")
        let no = try await client.call(
            Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: preference.id, text: "No, don't."))
        #expect(no.outcome == .declined)
        #expect(no.pendingAction?.status == .declined)
        #expect(no.pendingAction?.releaseToken == "")
        #expect(try await status(client) == .active)

        // A legal question escalates (to an operator, no approval): not a confirmation's to settle.
        let legal = try await assess(client, Action(toolName: "answer_question", decisionType: .legal, description: "Can I break my lease?"))
        let wrong = await refusalOf(client, Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: legal.id))
        #expect(wrong?.code == .failedPrecondition)
        #expect(wrong?.message.contains("needs escalate, not a confirmation") == true, "\(String(describing: wrong))")
        // A refund the policy sent to approvers is theirs to settle.
        let refund = try await assess(client, Action(toolName: "issue_refund", amount: "250", currency: "USD"))
        let approving = await refusalOf(client, Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: refund.id))
        #expect(approving?.code == .failedPrecondition && approving?.message.contains("awaits approval") == true)
        let unknown = await refusalOf(client, Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: "pa-nope"))
        #expect(unknown?.code == .notFound)
        await running.stop()
    }

    @Test("with agent_relays_user false an agent may not answer for the user, nor enter a code")
    func agentIsNotTheUsersChannel() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let strict = Policy.standardYAML.replacingOccurrences(of: "agent_relays_user: true", with: "agent_relays_user: false")
        let (running, client) = try await start(fixtures, policyYAML: strict, clock: TestClock())
        let booking = try await assess(client, Action(toolName: "book_flight", description: "Book a flight"))
        _ = try await client.call(Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: booking.id))
        let answer = await refusalOf(
            client, Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: booking.id, text: "yes"))
        #expect(answer?.code == .permissionDenied)
        #expect(answer?.message.contains("agent_relays_user is false") == true)
        let code = await refusalOf(
            client, Confirmations.verifyMultiFactor, VerifyMultiFactorRequest(pendingActionID: booking.id, code: "123456"))
        #expect(code?.code == .permissionDenied)
        await running.stop()
    }

    @Test("an unanswered confirmation expires after the timeout and releases nothing; 'never' waits for ever")
    func timeout() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let clock = TestClock()
        let (running, client) = try await start(fixtures, clock: clock)
        let booking = try await assess(client, Action(toolName: "book_flight", description: "Book a flight"))
        _ = try await client.call(Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: booking.id))
        #expect(try await status(client) == .awaitingConfirmation)
        clock.advance(seconds: 601)
        let late = await refusalOf(
            client, Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: booking.id, text: "yes"))
        #expect(late?.code == .failedPrecondition)
        #expect(late?.message.contains("expired unanswered; nothing was released") == true, "\(String(describing: late))")
        #expect(try await status(client) == .active)
        let events = try await client.call(Sessions.listEvents, ListEventsRequest(sessionID: "s", pageSize: 50)).events.map(\.action)
        #expect(events.last == "action.expired")
        #expect(!events.contains("action.released"))
        await running.stop()

        let patient = try Fixtures()
        defer { patient.remove() }
        let forever = Policy.standardYAML
            .replacingOccurrences(of: "timeout_seconds: 600", with: "timeout_seconds: never")
            .replacingOccurrences(of: "pending_expiry_seconds: 3600", with: "pending_expiry_seconds: never")
        let (server2, client2) = try await start(patient, policyYAML: forever, clock: clock)
        let later = try await assess(client2, Action(toolName: "book_flight", description: "Book a flight"))
        #expect(later.expiresAtUnixMs == 0)
        _ = try await client2.call(Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: later.id))
        clock.advance(seconds: 365 * 24 * 3600)
        let yes = try await client2.call(
            Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: later.id, text: "yes"))
        #expect(yes.outcome == .confirmed)
        await server2.stop()
    }
}

@Suite("Multi-factor codes over TLS", .timeLimit(.minutes(1)))
struct MultiFactorMethodsTests {
    private let secret = Array("webhook-shared-secret-for-tests".utf8)

    private func start(
        _ fixtures: Fixtures, clock: TestClock, channels: [any CodeChannel]
    ) async throws -> (RunningServer, HandoffClient) {
        try await startDecisionServer(fixtures, clock: clock, channels: channels)
    }

    private func deletion(_ client: HandoffClient) async throws -> PendingAction {
        let reply = try await client.call(
            HandoffProto.Policy.assessAction,
            AssessActionRequest(sessionID: "s", action: Action(toolName: "delete_user_data", description: "Delete all my data")))
        let pending = try #require(reply.pendingAction)
        #expect(pending.strategy == .multiFactor)
        return pending
    }

    private func verify(_ client: HandoffClient, _ id: String, _ code: String) async throws -> VerifyMultiFactorResponse {
        try await client.call(Confirmations.verifyMultiFactor, VerifyMultiFactorRequest(pendingActionID: id, code: code))
    }

    private func refusal(_ client: HandoffClient, _ id: String, _ code: String) async -> RPCError? {
        await refusalOf(client, Confirmations.verifyMultiFactor, VerifyMultiFactorRequest(pendingActionID: id, code: code))
    }

    @Test("the code reaches a real webhook, signed; the right code releases exactly once; the code is in no reply and not in the store")
    func rightCode() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let receiver = try await WebhookReceiver(secret: secret)
        let webhook = try WebhookCodeChannel(
            url: "http://127.0.0.1:\(receiver.port)/codes", secret: secret, timeout: .seconds(30), group: MultiThreadedEventLoopGroup.singleton)
        let file = FileCodeChannel(path: fixtures.path("codes.jsonl"))
        let clock = TestClock()
        let (running, client) = try await start(fixtures, clock: clock, channels: [webhook, file])
        let pending = try await deletion(client)

        let started = try await client.call(Confirmations.startMultiFactor, StartMultiFactorRequest(pendingActionID: pending.id))
        #expect(started.channels == ["webhook", "file"])
        #expect(started.codeLength == 6)
        #expect(started.attemptsRemaining == 3)
        #expect(started.expiresAtUnixMs == clock.read() + 300_000)
        #expect(try await client.call(Sessions.getSession, GetSessionRequest(sessionID: "s")).session?.status == .awaitingConfirmation)
        let delivery = try #require(receiver.deliveries.first)
        #expect(delivery.signatureValid, "the receiver could not verify the signature")
        #expect(delivery.path == "/codes")
        #expect(delivery.body["pending_action_id"] == pending.id)
        let code = try #require(delivery.body["code"])
        #expect(code.count == 6 && code.allSatisfy(\.isNumber))
        let fileLine = try String(contentsOfFile: fixtures.path("codes.jsonl"), encoding: .utf8)
        #expect(fileLine.contains(code))
        let mode = try FileManager.default.attributesOfItem(atPath: fixtures.path("codes.jsonl"))[.posixPermissions] as? Int
        #expect(mode == 0o600)

        let ok = try await verify(client, pending.id, code)
        #expect(ok.verified)
        #expect(ok.pendingAction?.status == .released)
        #expect(ok.pendingAction?.releaseToken.count == 64)
        let replay = await refusal(client, pending.id, code)
        #expect(replay?.code == .failedPrecondition, "a used code must not release twice")
        #expect(try await client.call(Sessions.getSession, GetSessionRequest(sessionID: "s")).session?.status == .active)

        let events = try await client.call(Sessions.listEvents, ListEventsRequest(sessionID: "s", pageSize: 50))
        #expect(events.events.map(\.action).suffix(3) == ["mfa.started", "mfa.verified", "action.released"])
        #expect(!events.events.contains { $0.detailsJSON.contains(code) }, "the code is in an event")
        await running.stop()
        await receiver.close()
        let database =
            try Data(contentsOf: URL(fileURLWithPath: fixtures.path("handoff.sqlite")))
            + ((try? Data(contentsOf: URL(fileURLWithPath: fixtures.path("handoff.sqlite-wal")))) ?? Data())
        #expect(
            database.range(of: Data("\"\(code)\"".utf8)) == nil && database.range(of: Data(":\(code)".utf8)) == nil,
            "the code is in the database")
    }

    @Test("the third wrong code cancels the action at once: the right code after it releases nothing")
    func wrongThrice() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let file = FileCodeChannel(path: fixtures.path("codes.jsonl"))
        let (running, client) = try await start(fixtures, clock: TestClock(), channels: [file])
        let pending = try await deletion(client)
        _ = try await client.call(Confirmations.startMultiFactor, StartMultiFactorRequest(pendingActionID: pending.id))
        let code = try Self.lastCode(fixtures)
        let wrong = code == "000000" ? "000001" : "000000"
        for left in [2, 1, 0] {
            let reply = try await verify(client, pending.id, wrong)
            #expect(!reply.verified)
            #expect(reply.attemptsRemaining == Int32(left))
            #expect(reply.pendingAction?.status == (left == 0 ? .cancelled : .pending))
        }
        #expect((await refusal(client, pending.id, code))?.code == .failedPrecondition, "the right code after the last wrong one")
        let events = try await client.call(Sessions.listEvents, ListEventsRequest(sessionID: "s", pageSize: 50)).events.map(\.action)
        #expect(events.suffix(2) == ["mfa.failed", "action.cancelled"])
        await running.stop()
    }

    @Test("a new code does not give the attempts back: wrong guesses count per action across codes")
    func attemptsSurviveNewCodes() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let file = FileCodeChannel(path: fixtures.path("codes.jsonl"))
        let (running, client) = try await start(fixtures, clock: TestClock(), channels: [file])
        let pending = try await deletion(client)
        var outcomes: [(verified: Bool, left: Int32, status: PendingActionStatus?)] = []
        for _ in 0..<3 {
            let started = try await client.call(Confirmations.startMultiFactor, StartMultiFactorRequest(pendingActionID: pending.id))
            #expect(started.attemptsRemaining == Int32(3 - outcomes.count), "a new code reports the attempts still left")
            let code = try Self.lastCode(fixtures)
            let reply = try await verify(client, pending.id, code == "000000" ? "000001" : "000000")
            outcomes.append((reply.verified, reply.attemptsRemaining, reply.pendingAction?.status))
        }
        #expect(outcomes.map(\.left) == [2, 1, 0])
        #expect(outcomes.last?.status == .cancelled)
        let again = await refusalOf(client, Confirmations.startMultiFactor, StartMultiFactorRequest(pendingActionID: pending.id))
        #expect(again?.code == .failedPrecondition, "no code for a cancelled action")
        await running.stop()
    }

    @Test("an expired code cancels; a new code replaces the old; a failing webhook alone is UNAVAILABLE")
    func expiryAndReplacement() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let clock = TestClock()
        let file = FileCodeChannel(path: fixtures.path("codes.jsonl"))
        let (running, client) = try await start(fixtures, clock: clock, channels: [file])

        let first = try await deletion(client)
        _ = try await client.call(Confirmations.startMultiFactor, StartMultiFactorRequest(pendingActionID: first.id))
        let code = try Self.lastCode(fixtures)
        clock.advance(seconds: 301)
        let late = try await verify(client, first.id, code)
        #expect(!late.verified)
        #expect(late.pendingAction?.status == .cancelled)

        let second = try await deletion(client)
        _ = try await client.call(Confirmations.startMultiFactor, StartMultiFactorRequest(pendingActionID: second.id))
        let old = try Self.lastCode(fixtures)
        _ = try await client.call(Confirmations.startMultiFactor, StartMultiFactorRequest(pendingActionID: second.id))
        let new = try Self.lastCode(fixtures)
        if old != new {
            let stale = try await verify(client, second.id, old)
            #expect(!stale.verified, "the replaced code still works")
        }
        #expect(try await verify(client, second.id, new).verified)
        await running.stop()

        // A receiver that answers 500: the only channel failed, the call says so.
        let failing = try Fixtures()
        defer { failing.remove() }
        let receiver = try await WebhookReceiver(secret: secret)
        receiver.status.withLock { $0 = .internalServerError }
        let webhook = try WebhookCodeChannel(
            url: "http://127.0.0.1:\(receiver.port)/codes", secret: secret, timeout: .seconds(30), group: MultiThreadedEventLoopGroup.singleton)
        let (server2, client2) = try await start(failing, clock: clock, channels: [webhook])
        let third = try await deletion(client2)
        do {
            _ = try await client2.call(Confirmations.startMultiFactor, StartMultiFactorRequest(pendingActionID: third.id))
            Issue.record("a start whose only channel failed succeeded")
        } catch {
            #expect(error.code == .unavailable)
        }
        await server2.stop()
        await receiver.close()
    }

    static func lastCode(_ fixtures: Fixtures) throws -> String {
        let lines = try String(contentsOfFile: fixtures.path("codes.jsonl"), encoding: .utf8).split(separator: "\n")
        let json = try JSONSerialization.jsonObject(with: Data(try #require(lines.last).utf8)) as? [String: Any]
        return try #require(json?["code"] as? String)
    }
}

@Suite("Decisions over TLS", .timeLimit(.minutes(1)))
struct DecisionsMethodsTests {
    /// Asks and answers a confirmation; returns the reply's pending action.
    private func answer(_ client: HandoffClient, _ id: String, _ text: String) async throws -> PendingAction? {
        _ = try await client.call(Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: id))
        return try await client.call(
            Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: id, text: text)
        ).pendingAction
    }

    private func report(_ client: HandoffClient, _ request: ReportExecutionRequest) async throws(RPCError) -> ReportExecutionResponse {
        try await client.call(Decisions.reportExecution, request)
    }

    @Test("ReportExecution records once per token; a repeat with the same key returns the first report; anything else is refused")
    func reportExecution() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, client) = try await startDecisionServer(fixtures, clock: TestClock())
        let booking = try await assess(client, Action(toolName: "book_flight", parametersJSON: #"{"to":"NYC"}"#, description: "Book a flight"))
        let released = try #require(try await answer(client, booking.id, "yes"))
        let token = released.releaseToken
        #expect(released.status == .released && token.count == 64)

        let first = try await report(
            client,
            ReportExecutionRequest(
                releaseToken: token, resultJSON: #"{"confirmation":"AB12"}"#, idempotencyKey: "exec-1"))
        #expect(first.recorded && !first.duplicate)
        #expect(first.pendingActionID == booking.id)
        let again = try await report(client, ReportExecutionRequest(releaseToken: token, resultJSON: #"{"other":1}"#, idempotencyKey: "exec-1"))
        #expect(again.duplicate)
        #expect(again.resultJSON == #"{"confirmation":"AB12"}"#, "a duplicate returns the first result")
        #expect(again.executedAtUnixMs == first.executedAtUnixMs)
        func refused(_ request: ReportExecutionRequest) async -> RPCError? {
            do {
                _ = try await report(client, request)
                return nil
            } catch {
                return error
            }
        }
        #expect(await refused(ReportExecutionRequest(releaseToken: token, idempotencyKey: "exec-2"))?.code == .failedPrecondition)
        #expect(
            await refused(ReportExecutionRequest(releaseToken: String(repeating: "0", count: 64), idempotencyKey: "k"))?.code
                == .failedPrecondition, "a token never issued")
        #expect(await refused(ReportExecutionRequest(releaseToken: token))?.code == .invalidArgument, "the key is required")
        #expect(await refused(ReportExecutionRequest(releaseToken: token, resultJSON: "{oops", idempotencyKey: "k"))?.code == .invalidArgument)
        // A declined action never had a token to report with.
        let other = try await assess(client, Action(toolName: "recommend_hotel", description: "Suggest a hotel"))
        #expect(try await answer(client, other.id, "no")?.releaseToken == "")
        let events = try await client.call(Sessions.listEvents, ListEventsRequest(sessionID: "s", actions: ["action.executed"], pageSize: 10))
        #expect(events.events.count == 1)
        await running.stop()
    }

    @Test("WaitForDecision yields each of several actions as it is decided, then ends; a waiter that reconnects gets it from the store")
    func waitForDecisions() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, client, services) = try await startServices(fixtures, clock: TestClock())
        let booking = try await assess(client, Action(toolName: "book_flight", description: "Book a flight"))
        let hotel = try await assess(client, Action(toolName: "recommend_hotel", description: "Suggest a hotel"))

        let waiter = try running.client(fixtures.clientTLS(role: "agent"))
        let updates = Task {
            var seen: [DecisionUpdate] = []
            for try await update in try await waiter.stream(
                Decisions.waitForDecision, WaitForDecisionRequest(pendingActionIDs: [booking.id, hotel.id, booking.id]))
            {
                seen.append(update)
            }
            return seen
        }
        // Decided only once the waiter waits, so the live wake-up is what is tested (not a replay from the store).
        while services.confirmations.decisions.waiterCount == 0 { try await Task.sleep(for: .milliseconds(2)) }
        let released = try #require(try await answer(client, booking.id, "yes please"))
        _ = try await answer(client, hotel.id, "no")
        let seen = try await updates.value
        #expect(seen.map(\.pendingActionID) == [booking.id, hotel.id])
        #expect(seen.first?.status == .released)
        #expect(seen.first?.releaseToken == released.releaseToken, "the waiter gets the same token")
        #expect(seen.first?.action?.toolName == "book_flight")
        #expect(seen.last?.status == .declined)
        #expect(seen.last?.releaseToken == "")
        await waiter.close()

        // A new connection asking later gets the durable decision at once.
        let later = try running.client(fixtures.clientTLS(role: "agent"))
        var again: [DecisionUpdate] = []
        for try await update in try await later.stream(Decisions.waitForDecision, WaitForDecisionRequest(pendingActionIDs: [booking.id])) {
            again.append(update)
        }
        #expect(again.map(\.status) == [.released])
        #expect(again.first?.releaseToken == released.releaseToken)
        await later.close()

        var failure: (any Error)?
        do {
            for try await _ in try await client.stream(Decisions.waitForDecision, WaitForDecisionRequest(pendingActionIDs: [booking.id, "pa-nope"])) {
            }
        } catch {
            failure = error
        }
        #expect((failure as? RPCError)?.code == .notFound)
        failure = nil
        do {
            for try await _ in try await client.stream(Decisions.waitForDecision, WaitForDecisionRequest()) {}
        } catch {
            failure = error
        }
        #expect((failure as? RPCError)?.code == .invalidArgument)
        await running.stop()
    }

    @Test("a waiter on an action past its expiry gets EXPIRED at once, and the expiry is recorded")
    func expiredWhileNobodyLooked() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let clock = TestClock()
        let (running, client) = try await startDecisionServer(fixtures, clock: clock)
        let booking = try await assess(client, Action(toolName: "book_flight", description: "Book a flight"))
        clock.advance(seconds: 3601)
        var seen: [DecisionUpdate] = []
        for try await update in try await client.stream(Decisions.waitForDecision, WaitForDecisionRequest(pendingActionIDs: [booking.id])) {
            seen.append(update)
        }
        #expect(seen.map(\.status) == [.expired])
        let events = try await client.call(Sessions.listEvents, ListEventsRequest(sessionID: "s", actions: ["action.expired"], pageSize: 10))
        #expect(events.events.count == 1)
        await running.stop()
    }

    @Test("a confirmation asked while a waiter waits has its own expiry, and the waiter hears of it")
    func confirmationExpiresDuringTheWait() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let clock = TestClock()
        let (running, client) = try await startDecisionServer(fixtures, clock: clock)
        let booking = try await assess(client, Action(toolName: "book_flight", description: "Book a flight"))
        let waiter = Task {
            var seen: [DecisionUpdate] = []
            for try await update in try await client.stream(
                Decisions.waitForDecision, WaitForDecisionRequest(pendingActionIDs: [booking.id]), options: CallOptions(timeout: .seconds(20)))
            {
                seen.append(update)
            }
            return seen
        }
        try await Task.sleep(for: .milliseconds(200))  // the wait has begun (latency only)
        // Asked now: the confirmation expires in 600 s, the action itself in 3600 s.
        _ = try await client.call(Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: booking.id))
        clock.advance(seconds: 601)
        let started = ContinuousClock.now
        let seen = try await waiter.value
        #expect(seen.map(\.status) == [.expired], "\(seen)")
        #expect(ContinuousClock.now - started < .seconds(5), "heard within the poll interval, not at the action's own expiry")
        await running.stop()
    }
}

@Suite("The operator desk over TLS", .timeLimit(.minutes(1)))
struct EscalationsMethodsTests {
    @Test("escalate once (a second call returns the same ticket), claim, reply into the conversation, resolve releasing the action")
    func ticketLifecycle() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let clock = TestClock()
        let (running, agent) = try await startDecisionServer(fixtures, clock: clock)
        let operatorClient = try running.client(fixtures.clientTLS(role: "operator"))
        let admin = try running.client(fixtures.clientTLS(role: "admin"))
        _ = try await agent.call(Sessions.addTurn, AddTurnRequest(sessionID: "s", input: "I want my money back", output: "Let me check"))
        // A booking waits for the user's confirmation; the customer wants a person instead.
        let assessed = try await agent.call(
            HandoffProto.Policy.assessAction,
            AssessActionRequest(sessionID: "s", action: Action(toolName: "book_flight", description: "Book a flight to NYC")))
        let refund = try #require(assessed.pendingAction)
        #expect(assessed.approvalID.isEmpty && assessed.ticketID.isEmpty, "a confirmation goes to nobody at once")

        let opened = try await agent.call(
            Escalations.escalate,
            EscalateRequest(
                sessionID: "s", reason: "Customer is frustrated and filed a complaint", pendingActionID: refund.id))
        #expect(opened.created)
        let ticket = try #require(opened.ticket)
        #expect(ticket.priority == .high)
        #expect(ticket.status == .open)
        #expect(ticket.slaDeadlineUnixMs == clock.read() + 900_000)
        let again = try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "s", reason: "payment problem"))
        #expect(!again.created && again.ticket?.id == ticket.id, "a second escalation opened a second ticket")
        let escalatedSession = try await agent.call(Sessions.getSession, GetSessionRequest(sessionID: "s")).session
        #expect(escalatedSession?.status == .escalated && escalatedSession?.escalationTicketID == ticket.id)

        let queue = try await operatorClient.call(Escalations.listQueue, ListQueueRequest())
        #expect(queue.tickets.map(\.id) == [ticket.id])
        let view = try await operatorClient.call(Escalations.getTicket, GetTicketRequest(ticketID: ticket.id))
        #expect(view.snapshot?.turns.map(\.input) == ["I want my money back"], "the snapshot is the context before the escalation")
        #expect(view.liveContext?.turns.last?.source == .system, "the escalation turn is in the live context")
        #expect(view.pendingAction?.id == refund.id)

        let claimed = try await operatorClient.call(Escalations.claim, ClaimRequest(ticketID: ticket.id))
        #expect(claimed.ticket?.status == .claimed)
        #expect(claimed.ticket?.assignedTo == Identity(tenantID: "acme", role: .operator, name: "operator"))
        #expect((await refusalOf(admin, Escalations.claim, ClaimRequest(ticketID: ticket.id)))?.code == .failedPrecondition)

        let reply = try await operatorClient.call(Escalations.reply, ReplyRequest(ticketID: ticket.id, text: "Hi, I'm Sam; I'll sort this out."))
        #expect(reply.turn?.source == .operator)
        let context = try await agent.call(Sessions.getContext, GetContextRequest(sessionID: "s"))
        #expect(context.turns.last?.output == "Hi, I'm Sam; I'll sort this out.", "the agent does not see the operator's reply")
        #expect(context.turns.last?.source == .operator)

        let notYours = await refusalOf(admin, Escalations.reply, ReplyRequest(ticketID: ticket.id, text: "x"))
        #expect(notYours?.code == .failedPrecondition)
        let resolved = try await operatorClient.call(
            Escalations.resolve,
            ResolveRequest(
                ticketID: ticket.id, outcome: .resolved, note: "refund approved", pendingActionDecision: .release))
        #expect(resolved.ticket?.status == .resolved)
        #expect(resolved.pendingAction?.status == .released)
        #expect(resolved.pendingAction?.releaseToken.count == 64)
        let after = try await agent.call(Sessions.getContext, GetContextRequest(sessionID: "s")).turns.last
        #expect(after?.source == .system && after?.output == "The person handling this has finished: refund approved")
        var update: DecisionUpdate?
        for try await u in try await agent.stream(Decisions.waitForDecision, WaitForDecisionRequest(pendingActionIDs: [refund.id])) { update = u }
        #expect(update?.comment == "refund approved" && update?.decidedBy?.role == .operator, "the operator's note reaches the agent")
        #expect(try await agent.call(Sessions.getSession, GetSessionRequest(sessionID: "s")).session?.status == .active)
        #expect(
            (await refusalOf(operatorClient, Escalations.resolve, ResolveRequest(ticketID: ticket.id, outcome: .resolved)))?.code
                == .failedPrecondition)
        let events = try await agent.call(Sessions.listEvents, ListEventsRequest(sessionID: "s", pageSize: 50)).events.map(\.action)
        #expect(Array(events.suffix(5)) == ["session.escalated", "ticket.claimed", "ticket.replied", "action.released", "ticket.resolved"])
        #expect(try await admin.call(Admin.verifyAuditChain, VerifyAuditChainRequest(sessionID: "s")).ok)
        // After resolution a new escalation opens a new ticket.
        #expect(try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "s", reason: "again")).created)
        for client in [operatorClient, admin, agent] { await client.close() }
        await running.stop()
    }

    @Test("two actions escalated in one session: the second waits for the first ticket, then opens and is decided on its own")
    func secondEscalationWaits() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let clock = TestClock()
        let (running, agent) = try await startDecisionServer(fixtures, clock: clock)
        let operatorClient = try running.client(fixtures.clientTLS(role: "operator"))
        // The customer first asks for a person (no action), then the agent proposes two legal actions in parallel.
        let plain = try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "s", reason: "wants a person"))
        let first = try await agent.call(
            HandoffProto.Policy.assessAction,
            AssessActionRequest(sessionID: "s", action: Action(toolName: "draft_contract", description: "Give legal advice on the lease")))
        let second = try await agent.call(
            HandoffProto.Policy.assessAction,
            AssessActionRequest(
                sessionID: "s", action: Action(toolName: "diagnose", description: "Give a medical diagnosis of the rash"), idempotencyKey: "k2"))
        let firstAction = try #require(first.pendingAction)
        let secondAction = try #require(second.pendingAction)
        #expect(first.strategy == .escalate && second.strategy == .escalate)
        // The first is attached to the ticket in hand, which held no action; the second waits.
        #expect(first.ticketID == plain.ticket?.id, "the first action was not given to the ticket in hand")
        #expect(!second.ticketID.isEmpty && second.ticketID != first.ticketID, "the second action was folded into the first's ticket")
        let waiting = try await operatorClient.call(Escalations.getTicket, GetTicketRequest(ticketID: second.ticketID)).ticket
        #expect(waiting?.status == .waiting && waiting?.pendingActionID == secondAction.id)
        #expect(
            try await operatorClient.call(Escalations.listQueue, ListQueueRequest()).tickets.map(\.id) == [first.ticketID],
            "a waiting ticket is in the default queue")
        #expect(
            try await operatorClient.call(Escalations.listQueue, ListQueueRequest(statuses: [.waiting])).tickets.map(\.id)
                == [second.ticketID])
        let early = await refusalOf(operatorClient, Escalations.claim, ClaimRequest(ticketID: second.ticketID))
        #expect(early?.code == .failedPrecondition && early?.message.contains("waiting") == true, "\(String(describing: early))")
        // A retried assessment (same action, same idempotency key) finds the same waiting ticket.
        let retried = try await agent.call(
            HandoffProto.Policy.assessAction,
            AssessActionRequest(
                sessionID: "s", action: Action(toolName: "diagnose", description: "Give a medical diagnosis of the rash"), idempotencyKey: "k2"))
        #expect(retried.pendingAction?.id == secondAction.id && retried.ticketID == second.ticketID)

        _ = try await operatorClient.call(Escalations.claim, ClaimRequest(ticketID: first.ticketID))
        let resolved = try await operatorClient.call(
            Escalations.resolve,
            ResolveRequest(
                ticketID: first.ticketID, outcome: .resolved, note: "no legal advice from a bot", pendingActionDecision: .reject))
        #expect(resolved.pendingAction?.id == firstAction.id && resolved.pendingAction?.status == .rejected)
        // Resolving the ticket in hand opened the waiting one, in the same transaction.
        let opened = try await operatorClient.call(Escalations.getTicket, GetTicketRequest(ticketID: second.ticketID)).ticket
        #expect(opened?.status == .open)
        #expect(try await operatorClient.call(Escalations.listQueue, ListQueueRequest()).tickets.map(\.id) == [second.ticketID])
        let session = try await agent.call(Sessions.getSession, GetSessionRequest(sessionID: "s")).session
        #expect(session?.status == .escalated && session?.escalationTicketID == second.ticketID)
        _ = try await operatorClient.call(Escalations.claim, ClaimRequest(ticketID: second.ticketID))
        let released = try await operatorClient.call(
            Escalations.resolve,
            ResolveRequest(
                ticketID: second.ticketID, outcome: .resolved, note: "seen by a doctor", pendingActionDecision: .release))
        #expect(released.pendingAction?.id == secondAction.id && released.pendingAction?.status == .released)
        #expect(try await agent.call(Sessions.getSession, GetSessionRequest(sessionID: "s")).session?.status == .active)
        let events = try await agent.call(Sessions.listEvents, ListEventsRequest(sessionID: "s", pageSize: 100)).events.map(\.action)
        #expect(events.filter { $0 == "ticket.opened" }.count == 1, "\(events)")
        for client in [operatorClient, agent] { await client.close() }
        await running.stop()
    }

    @Test("GetTicket of a session with turns too big for one frame: snapshot and live context share the answer")
    func bigTicket() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, agent) = try await startDecisionServer(fixtures, clock: TestClock())
        let operatorClient = try running.client(fixtures.clientTLS(role: "operator"))
        _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: "big", reasoning: "start"))
        let output = String(repeating: "o", count: 256 * 1024)
        for i in 1...24 {
            _ = try await agent.call(Sessions.addTurn, AddTurnRequest(sessionID: "big", input: "q\(i)", output: output, reasoning: "r"))
        }
        let ticket = try #require(try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "big", reason: "help")).ticket)
        let view = try await operatorClient.call(Escalations.getTicket, GetTicketRequest(ticketID: ticket.id))
        #expect(view.snapshot?.turns.last?.input == "q24")
        #expect((view.snapshot?.turns.count ?? 0) >= 4)
        #expect(view.liveContext?.turns.last?.source == .system, "the escalation turn is in the live context")
        for client in [operatorClient, agent] { await client.close() }
        await running.stop()
    }

    @Test("malformed desk requests are INVALID_ARGUMENT naming the field")
    func malformed() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, agent) = try await startDecisionServer(fixtures, clock: TestClock())
        let operatorClient = try running.client(fixtures.clientTLS(role: "operator"))
        let noReason = await refusalOf(agent, Escalations.escalate, EscalateRequest(sessionID: "s", reason: "  "))
        #expect(noReason?.code == .invalidArgument && noReason?.message.contains("reason is required") == true)
        let badToken = await refusalOf(operatorClient, Escalations.listQueue, ListQueueRequest(pageToken: "not-a-token"))
        #expect(badToken?.code == .invalidArgument && badToken?.message.contains("page_token") == true)
        // page_size above 500 is lowered to it (common.proto, "Paging"); negative is refused.
        _ = try await operatorClient.call(Escalations.listQueue, ListQueueRequest(pageSize: 501))
        _ = try await operatorClient.call(Approvals.listPendingApprovals, ListPendingApprovalsRequest(pageSize: 100_000))
        let negativePage = await refusalOf(operatorClient, Escalations.listQueue, ListQueueRequest(pageSize: -1))
        #expect(negativePage?.code == .invalidArgument && negativePage?.message.contains("page_size must not be negative") == true)
        let negativeApprovals = await refusalOf(operatorClient, Approvals.listPendingApprovals, ListPendingApprovalsRequest(pageSize: -1))
        #expect(negativeApprovals?.code == .invalidArgument)
        // Filters repeated 40,000 times: each known value counts once (each
        // was a SQL parameter, and a 4 MiB frame holds some two million);
        // values the protocol does not define are refused.
        let repeated = try await operatorClient.call(
            Escalations.listQueue,
            ListQueueRequest(statuses: Array(repeating: .open, count: 40_000), priorities: Array(repeating: .urgent, count: 40_000)))
        #expect(repeated.tickets.allSatisfy { $0.status == .open && $0.priority == .urgent })
        let unknown = await refusalOf(
            operatorClient, Escalations.listQueue, ListQueueRequest(priorities: (0..<40_000).map { .unrecognized(Int32(100 + $0)) }))
        #expect(unknown?.code == .invalidArgument && unknown?.message.contains("priorities") == true)
        let hugeToken = await refusalOf(
            agent, Decisions.reportExecution, ReportExecutionRequest(releaseToken: String(repeating: "a", count: 200), idempotencyKey: "k"))
        #expect(hugeToken?.code == .invalidArgument)
        var watchError: (any Error)?
        do {
            for try await _ in try await operatorClient.stream(Operators.watch, WatchRequest(resumeCursor: "%%%")) {}
        } catch {
            watchError = error
        }
        #expect((watchError as? RPCError)?.code == .invalidArgument)
        for client in [operatorClient, agent] { await client.close() }
        await running.stop()
    }

    @Test("two operators claim one ticket at once: exactly one wins, the other is FAILED_PRECONDITION")
    func concurrentClaims() async throws {
        let fixtures = try Fixtures(operators: ["sam", "kim"])
        defer { fixtures.remove() }
        let (running, agent) = try await startDecisionServer(fixtures, clock: TestClock())
        let sam = try running.client(fixtures.clientTLS(role: "sam"))
        let kim = try running.client(fixtures.clientTLS(role: "kim"))
        for round in 0..<10 {
            _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: "c\(round)", reasoning: "r"))
            let ticket = try #require(try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "c\(round)", reason: "help")).ticket)
            async let a = refusalOf(sam, Escalations.claim, ClaimRequest(ticketID: ticket.id))
            async let b = refusalOf(kim, Escalations.claim, ClaimRequest(ticketID: ticket.id))
            let outcomes = [await a, await b]
            #expect(outcomes.filter { $0 == nil }.count == 1, "round \(round): \(outcomes)")
            #expect(outcomes.compactMap { $0?.code } == [.failedPrecondition], "round \(round): \(outcomes)")
        }
        for client in [sam, kim, agent] { await client.close() }
        await running.stop()
    }

    @Test("the queue: breached SLAs first, then priority, then age; an admin may reassign; only the claimant resolves")
    func queueOrder() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let clock = TestClock()
        let (running, agent, services) = try await startServices(fixtures, clock: clock)
        let operatorClient = try running.client(fixtures.clientTLS(role: "operator"))
        let admin = try running.client(fixtures.clientTLS(role: "admin"))
        var ids: [String: String] = [:]
        for (session, reason, after) in [
            ("n", "question about opening hours", 0), ("u", "possible fraud on the account", 1), ("h", "angry customer", 3000),
        ] {
            clock.advance(seconds: Int64(after))
            _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: session, reasoning: "r"))
            ids[session] = try #require(try await agent.call(Escalations.escalate, EscalateRequest(sessionID: session, reason: reason)).ticket?.id)
        }
        func order(sweeping: Bool = true) async throws -> [String] {
            if sweeping { try await services.approvals.sweep() }  // as handoffd's sweeper does every second: records the breaches
            return try await operatorClient.call(Escalations.listQueue, ListQueueRequest()).tickets.map { ticket in
                ids.first { $0.value == ticket.id }!.key + (ticket.slaBreached ? "!" : "")
            }
        }
        // Urgent was created 3000 s ago: past its 300 s SLA.
        #expect(try await order() == ["u!", "h", "n"])
        _ = try await operatorClient.call(Escalations.claim, ClaimRequest(ticketID: ids["u"]!))
        clock.advance(seconds: 700)  // normal is 3701 s old (SLA 3600), high 700 s (SLA 900)
        #expect(try await order(sweeping: false) == ["u!", "h", "n"], "until the sweep records it, n is neither marked nor ordered as breached")
        #expect(
            try await order() == ["n!", "u!", "h"], "a breached normal ticket rises above an unbreached high one; u was claimed late and stays marked"
        )
        let page = try await operatorClient.call(Escalations.listQueue, ListQueueRequest(pageSize: 2))
        #expect(page.tickets.count == 2 && !page.nextPageToken.isEmpty)
        let rest = try await operatorClient.call(Escalations.listQueue, ListQueueRequest(pageSize: 2, pageToken: page.nextPageToken))
        #expect(rest.tickets.count == 1 && rest.nextPageToken.isEmpty)
        let urgentOnly = try await operatorClient.call(Escalations.listQueue, ListQueueRequest(priorities: [.urgent]))
        #expect(urgentOnly.tickets.map(\.id) == [ids["u"]!])

        // A ticket goes only to an operator or admin of the tenant: not another tenant's, not an agent or approver.
        for assignee in [
            "handoff://tenant/globex/operator/eve", "handoff://tenant/acme/agent/agent", "handoff://tenant/acme/approver/approver",
            "handoff://global/admin/root", "handoff://tenant/acme/operator/", "eve/../x",
        ] {
            let refused = await refusalOf(admin, Escalations.claim, ClaimRequest(ticketID: ids["u"]!, reassign: true, assignee: assignee))
            #expect(
                refused?.code == .invalidArgument && refused?.message.contains("is not an operator or admin of tenant acme") == true,
                "\(assignee): \(String(describing: refused))")
        }
        let named = try await admin.call(Escalations.claim, ClaimRequest(ticketID: ids["u"]!, reassign: true, assignee: "olga"))
        #expect(named.ticket?.assignedTo == Identity(tenantID: "acme", role: .operator, name: "olga"))
        let reassigned = try await admin.call(Escalations.claim, ClaimRequest(ticketID: ids["u"]!, reassign: true))
        #expect(reassigned.ticket?.assignedTo == Identity(tenantID: "acme", role: .admin, name: "admin"))
        let notYours = await refusalOf(operatorClient, Escalations.resolve, ResolveRequest(ticketID: ids["u"]!, outcome: .handedBack))
        #expect(notYours?.code == .permissionDenied)
        #expect(try await admin.call(Escalations.resolve, ResolveRequest(ticketID: ids["u"]!, outcome: .handedBack)).ticket?.status == .resolved)
        let noDecision = await refusalOf(
            admin, Escalations.resolve,
            ResolveRequest(
                ticketID: ids["n"]!, outcome: .resolved, pendingActionDecision: .release))
        #expect(noDecision?.code == .invalidArgument, "a ticket without a pending action has nothing to release")
        for client in [operatorClient, admin, agent] { await client.close() }
        await running.stop()
    }
}

@Suite("Watching the desk over TLS", .timeLimit(.minutes(1)))
struct WatchMethodsTests {
    /// Collects `count` desk events from a Watch started with `request`.
    private func collect(_ client: HandoffClient, _ request: WatchRequest, count: Int) -> Task<[DeskEvent], any Error> {
        Task {
            var seen: [DeskEvent] = []
            for try await event in try await client.stream(Operators.watch, request) {
                seen.append(event)
                if seen.count == count { break }
            }
            return seen
        }
    }

    @Test("a watcher sees tickets opened, claimed and resolved as they happen; one that resumes from a cursor misses nothing")
    func liveAndResume() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, agent, services) = try await startServices(fixtures, clock: TestClock())
        let operatorClient = try running.client(fixtures.clientTLS(role: "operator"))
        let watcher = try running.client(fixtures.clientTLS(role: "operator"))

        let live = collect(watcher, WatchRequest(), count: 3)
        while services.feed.hub.watcherCount < 1 { try await Task.sleep(for: .milliseconds(2)) }  // it has read the feed's head
        let ticket = try #require(try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "s", reason: "security question")).ticket)
        _ = try await operatorClient.call(Escalations.claim, ClaimRequest(ticketID: ticket.id))
        _ = try await operatorClient.call(Escalations.resolve, ResolveRequest(ticketID: ticket.id, outcome: .resolved))
        let seen = try await live.value
        #expect(seen.map(\.kind) == [.ticketOpened, .ticketClaimed, .ticketResolved])
        #expect(seen.allSatisfy { event in if case .ticket(let t)? = event.subject { t.id == ticket.id } else { false } })
        if case .ticket(let t)? = seen.first?.subject { #expect(t.priority == .urgent) }
        #expect(seen[1].actor == Identity(tenantID: "acme", role: .operator, name: "operator"))
        await watcher.close()

        // Nobody watches while another session escalates and is claimed.
        _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: "s2", reasoning: "r"))
        let second = try #require(try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "s2", reason: "question")).ticket)
        _ = try await operatorClient.call(Escalations.claim, ClaimRequest(ticketID: second.id))
        let resumed = try running.client(fixtures.clientTLS(role: "operator"))
        let replay = collect(resumed, WatchRequest(resumeCursor: seen.last!.cursor), count: 3)
        _ = try await operatorClient.call(Escalations.resolve, ResolveRequest(ticketID: second.id, outcome: .dismissed))
        let caughtUp = try await replay.value
        #expect(caughtUp.map(\.kind) == [.ticketOpened, .ticketClaimed, .ticketResolved], "what was missed, then what is live")
        #expect(caughtUp.allSatisfy { event in if case .ticket(let t)? = event.subject { t.id == second.id } else { false } })

        // Filters: only claims, and a bad kind is refused.
        let claims = try await collectOne(resumed, WatchRequest(kinds: [.ticketClaimed], resumeCursor: seen.first!.cursor))
        #expect(claims?.kind == .ticketClaimed)
        var failure: (any Error)?
        do {
            for try await _ in try await resumed.stream(Operators.watch, WatchRequest(kinds: [.unspecified])) {}
        } catch {
            failure = error
        }
        #expect((failure as? RPCError)?.code == .invalidArgument)
        for client in [operatorClient, resumed, agent] { await client.close() }
        await running.stop()
    }

    private func collectOne(_ client: HandoffClient, _ request: WatchRequest) async throws -> DeskEvent? {
        for try await event in try await client.stream(Operators.watch, request) { return event }
        return nil
    }

    @Test("a watcher that reads nothing while events commit misses none of them later, in commit order; a resume delivers the rest")
    func slowReader() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let store = try SQLiteStore(path: fixtures.path("handoff.sqlite"))
        let sessions = SessionService(store: store)
        let holder = try PolicyHolder(path: nil)
        let confirmations = ConfirmationService(
            store: store, sessions: sessions, policy: holder, multiFactor: MultiFactorSettings(key: Array(repeating: 1, count: 32), channels: []))
        let hub = DeskHub()
        let desk = EscalationService(store: store, sessions: sessions, policy: holder, confirmations: confirmations, desk: hub)
        let feed = DeskFeed(store: store, hub: hub)
        let caller = Caller(tenant: TenantID("acme"), identity: "handoff://tenant/acme/operator/op", role: .operator)
        for i in 0..<50 {
            _ = try await sessions.create(id: "s\(i)", stateJSON: "{}", labels: [:], reasoning: "r", caller: caller)
        }
        // A watch from the head whose reader reads nothing while fifty escalations commit
        // (with the old in-memory buffer it lagged and ended).
        let head = try await store.feedHead(tenant: caller.tenant)
        let iterator = try await feed.watch(after: head, caller: caller) { _, _, _ in true }.makeAsyncIterator()
        for i in 0..<50 {
            _ = try await desk.escalate(sessionID: "s\(i)", reason: "r", pendingActionID: "", caller: caller)
        }
        var items: [DeskItem] = []
        while items.count < 50, let item = try await iterator.next() { items.append(item) }
        #expect(items.map { $0.ticket?.sessionID } == (0..<50).map { "s\($0)" })
        #expect(!items.contains { $0.kind == .watcherLagged })
        #expect(items.map(\.position) == items.map(\.position).sorted(), "commit order")
        var resumed: [DeskItem] = []
        for try await item in try await feed.watch(after: items[46].position, caller: caller) { _, _, _ in true } {
            resumed.append(item)
            if resumed.count == 3 { break }
        }
        #expect(resumed.map { $0.ticket?.sessionID } == ["s47", "s48", "s49"], "the resumed watch delivers exactly what followed")
    }

    @Test("four agents escalating 24 sessions at once: each of three watchers gets all 24 ticket-opened events live, and again when resumed")
    func everyEventAtEveryWatcher() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, agent, services) = try await startServices(fixtures, clock: TestClock())
        let agents = try (0..<4).map { _ in try running.client(fixtures.clientTLS(role: "agent")) }
        let operators = try (0..<3).map { _ in try running.client(fixtures.clientTLS(role: "operator")) }
        for i in 0..<24 {
            _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: "e\(i)", reasoning: "r"))
        }
        let watches = operators.map { client in
            Task { () async throws -> [(String, String)] in
                var seen: [(String, String)] = []
                for try await event in try await client.stream(
                    Operators.watch, WatchRequest(kinds: [.ticketOpened]), options: CallOptions(timeout: .seconds(30)))
                {
                    if case .ticket(let ticket)? = event.subject { seen.append((ticket.sessionID, event.cursor)) }
                    if seen.count == 24 { break }
                }
                return seen
            }
        }
        while services.feed.hub.watcherCount < 3 { try await Task.sleep(for: .milliseconds(2)) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, client) in agents.enumerated() {
                group.addTask {
                    for i in stride(from: index, to: 24, by: 4) {
                        _ = try await client.call(Escalations.escalate, EscalateRequest(sessionID: "e\(i)", reason: "help"))
                    }
                }
            }
            try await group.waitForAll()
        }
        let everyone = Set((0..<24).map { "e\($0)" })
        var orders: [[String]] = []
        for watch in watches {
            let seen = try await watch.value
            #expect(Set(seen.map(\.0)) == everyone && seen.count == 24, "\(seen.map(\.0))")
            orders.append(seen.map(\.0))
        }
        #expect(Set(orders.map { $0.joined(separator: ",") }).count == 1, "every watcher saw one order, the commit order")
        // Resumed from the first event's cursor: the other 23, in the same order.
        let first = try await watches[0].value
        var resumed: [String] = []
        for try await event in try await operators[0].stream(
            Operators.watch, WatchRequest(kinds: [.ticketOpened], resumeCursor: first[0].1), options: CallOptions(timeout: .seconds(30)))
        {
            if case .ticket(let ticket)? = event.subject { resumed.append(ticket.sessionID) }
            if resumed.count == 23 { break }
        }
        #expect(resumed == Array(orders[0].dropFirst()))
        // A cursor is the tenant's own: altered, it is refused.
        var altered = Array(first[0].1)
        altered[4] = altered[4] == "A" ? "B" : "A"
        let refused = await firstError(operators[1], WatchRequest(resumeCursor: String(altered)))
        #expect(refused?.code == .invalidArgument)
        for client in agents + operators + [agent] { await client.close() }
        await running.stop()
    }

    @Test(
        "a second escalated action waits behind the first: TICKET_OPENED once for each ticket, the second when it opens; replayed, each shows its ticket as it was"
    )
    func openedOncePerTicket() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, agent, services) = try await startServices(fixtures, clock: TestClock())
        let operatorClient = try running.client(fixtures.clientTLS(role: "operator"))
        let caller = Caller(tenant: TenantID("acme"), identity: "handoff://tenant/acme/operator/operator", role: .operator)
        let head = try await services.store.feedHead(tenant: caller.tenant)
        let lease = try await agent.call(
            HandoffProto.Policy.assessAction,
            AssessActionRequest(
                sessionID: "s", action: Action(toolName: "draft_contract", description: "Give legal advice on the lease")))
        let rash = try await agent.call(
            HandoffProto.Policy.assessAction,
            AssessActionRequest(
                sessionID: "s", action: Action(toolName: "diagnose", description: "Give a medical diagnosis of the rash")))
        _ = try await operatorClient.call(Escalations.claim, ClaimRequest(ticketID: lease.ticketID))
        _ = try await operatorClient.call(
            Escalations.resolve,
            ResolveRequest(
                ticketID: lease.ticketID, outcome: .resolved, note: "no", pendingActionDecision: .reject))
        var seen: [(DeskItem.Kind, String, String)] = []
        for try await item in try await services.feed.watch(after: head, caller: caller, include: { _, _, _ in true }) {
            seen.append((item.kind, item.ticket?.id ?? "", item.ticket?.status.rawValue ?? ""))
            if seen.count == 4 { break }
        }
        #expect(seen.map(\.0) == [.ticketOpened, .ticketClaimed, .ticketResolved, .ticketOpened])
        #expect(seen.map(\.1) == [lease.ticketID, lease.ticketID, lease.ticketID, rash.ticketID])
        // Replayed after all of it, each event still shows its ticket as it was right after the event.
        #expect(seen.map(\.2) == ["open", "claimed", "resolved", "open"])
        for client in [operatorClient, agent] { await client.close() }
        await running.stop()
    }

    private func firstError(_ client: HandoffClient, _ request: WatchRequest) async -> RPCError? {
        do {
            for try await _ in try await client.stream(Operators.watch, request, options: CallOptions(timeout: .seconds(2))) {}
            return nil
        } catch let error as RPCError {
            return error
        } catch {
            return nil
        }
    }
}

@Suite("Escalation analytics over TLS", .timeLimit(.minutes(1)))
struct AnalyticsMethodsTests {
    @Test("a generated week: the stats of the week and of one day agree with counts the test keeps itself")
    func generatedWeek() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let clock = TestClock()
        let (running, agent) = try await startDecisionServer(fixtures, clock: clock)  // session "s", not escalated
        let operatorClient = try running.client(fixtures.clientTLS(role: "operator"))
        var random = SplitMix(seed: 42)
        let reasons = [
            ("payment failed", 3), ("security question", 3), ("frustrated customer", 2), ("complaint about delay", 2),
            ("question about hours", 1), ("wants a human", 1),
        ]
        struct Kept {
            var created: Int64
            var reason: String
            var priority: Int
            var claimedAfter: Int64?
            var resolvedAfter: Int64?
        }
        var sessions: [Int64] = [clock.read()]
        var kept: [Kept] = []
        let start = clock.read()
        for i in 0..<210 {  // 30 a day over 7 days, at irregular times
            clock.advance(seconds: Int64(random.next() % 5760))
            _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: "w\(i)", reasoning: "r"))
            sessions.append(clock.read())
            guard random.next() % 4 == 0 else { continue }
            let (reason, priority) = reasons[Int(random.next() % UInt64(reasons.count))]
            let ticket = try #require(try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "w\(i)", reason: reason)).ticket)
            var record = Kept(created: clock.read(), reason: reason, priority: priority)
            if random.next() % 3 != 0 {
                let wait = Int64(random.next() % 600) + 1
                clock.advance(seconds: wait)
                _ = try await operatorClient.call(Escalations.claim, ClaimRequest(ticketID: ticket.id))
                record.claimedAfter = wait * 1000
                if random.next() % 2 == 0 {
                    let work = Int64(random.next() % 1200) + 1
                    clock.advance(seconds: work)
                    _ = try await operatorClient.call(Escalations.resolve, ResolveRequest(ticketID: ticket.id, outcome: .resolved))
                    record.resolvedAfter = (wait + work) * 1000
                }
            }
            kept.append(record)
        }
        let end = clock.read() + 1
        func nearestRank(_ values: [Int64], _ q: Double) -> Int64 {
            let sorted = values.sorted()
            return sorted.isEmpty ? 0 : sorted[max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1)]
        }
        for (since, until) in [(start, end), (start + 2 * 86_400_000, start + 3 * 86_400_000)] {
            let inWindow = kept.filter { $0.created >= since && $0.created < until }
            let sessionCount = sessions.filter { $0 >= since && $0 < until }.count
            let stats = try await operatorClient.call(
                Analytics.escalationStats,
                EscalationStatsRequest(
                    topReasonsLimit: 100, window: .range(TimeRange(sinceUnixMs: since, untilUnixMs: until))))
            #expect(stats.sessionsInWindow == Int64(sessionCount))
            #expect(stats.escalations == Int64(inWindow.count))
            #expect(abs(stats.escalationRate - Double(inWindow.count) / Double(max(1, sessionCount))) < 1e-9)
            var counts: [String: Int64] = [:]
            for k in inWindow { counts[k.reason, default: 0] += 1 }
            #expect(Dictionary(uniqueKeysWithValues: stats.topReasons.map { ($0.reason, $0.count) }) == counts)
            let expectedByPriority: [Int64] = [3, 2, 1].map { p in Int64(inWindow.filter { $0.priority == p }.count) }
            #expect(stats.byPriority.map { $0.count } == expectedByPriority)
            let claims = inWindow.compactMap(\.claimedAfter)
            let resolutions = inWindow.compactMap(\.resolvedAfter)
            #expect(stats.ticketsClaimed == Int64(claims.count) && stats.ticketsResolved == Int64(resolutions.count))
            #expect(stats.medianTimeToClaimMs == nearestRank(claims, 0.5) && stats.p90TimeToClaimMs == nearestRank(claims, 0.9))
            #expect(stats.medianTimeToResolveMs == nearestRank(resolutions, 0.5) && stats.p90TimeToResolveMs == nearestRank(resolutions, 0.9))
        }
        #expect(kept.count > 30, "the generator escalated too little to test anything: \(kept.count)")
        for client in [operatorClient, agent] { await client.close() }
        await running.stop()
    }

    @Test("rate, top reasons, per-priority counts, claim and resolve times, and the alert over a window")
    func stats() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let clock = TestClock()
        let start = clock.read()
        let (running, agent) = try await startDecisionServer(fixtures, clock: clock)  // creates session "s"
        let operatorClient = try running.client(fixtures.clientTLS(role: "operator"))
        for i in 1..<10 { _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: "s\(i)", reasoning: "r")) }
        var tickets: [String] = []
        for (session, reason) in [("s", "Payment failed"), ("s1", "payment failed "), ("s2", "frustrated customer")] {
            tickets.append(try #require(try await agent.call(Escalations.escalate, EscalateRequest(sessionID: session, reason: reason)).ticket?.id))
        }
        clock.advance(seconds: 60)
        _ = try await operatorClient.call(Escalations.claim, ClaimRequest(ticketID: tickets[0]))
        clock.advance(seconds: 60)
        _ = try await operatorClient.call(Escalations.claim, ClaimRequest(ticketID: tickets[1]))
        _ = try await operatorClient.call(Escalations.resolve, ResolveRequest(ticketID: tickets[0], outcome: .resolved))
        let stats = try await operatorClient.call(
            Analytics.escalationStats, EscalationStatsRequest(window: .range(TimeRange(sinceUnixMs: start, untilUnixMs: start + 1_000))))
        #expect(stats.sessionsInWindow == 10)
        #expect(stats.escalations == 3)
        #expect(abs(stats.escalationRate - 0.3) < 1e-9)
        #expect(stats.topReasons.map(\.reason) == ["payment failed", "frustrated customer"])
        #expect(stats.topReasons.first?.count == 2)
        #expect(stats.byPriority.map(\.priority) == [.urgent, .high, .normal])
        #expect(stats.byPriority.map(\.count) == [2, 1, 0])
        #expect(stats.ticketsClaimed == 2 && stats.ticketsResolved == 1)
        #expect(stats.medianTimeToClaimMs == 60_000 && stats.p90TimeToClaimMs == 120_000)
        #expect(stats.medianTimeToResolveMs == 120_000)
        #expect(stats.alertThreshold == 0.15)
        #expect(stats.alertActive, "30% of sessions escalated is above 15%")
        let empty = try await operatorClient.call(
            Analytics.escalationStats, EscalationStatsRequest(window: .range(TimeRange(sinceUnixMs: start - 10_000, untilUnixMs: start - 1))))
        #expect(empty.escalations == 0 && empty.escalationRate == 0 && !empty.alertActive)
        let bad = await refusalOf(operatorClient, Analytics.escalationStats, EscalationStatsRequest(window: .durationMs(0)))
        #expect(bad?.code == .invalidArgument)
        for client in [operatorClient, agent] { await client.close() }
        await running.stop()
    }
}

/// A seeded generator, so generated input is the same every run.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
