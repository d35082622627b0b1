// Handoff — the approval desk over real TLS connections: chains built from
// policy, routing, the requester and one-level-per-approver rules, batches
// with per-item errors, edits, expiry outcomes, notices, automatic routing of
// the escalate strategy, SLA breach events and what approvers may watch.

import Foundation
import HandoffClient
import HandoffCore
import HandoffDesks
import HandoffPolicy
import HandoffProto
import HandoffRPC
import HandoffSQLite
import HandoffServer
import HandoffTestSupport
import NIOPosix
import Testing

/// The shipped policy with its chains replaced: managers alice and dave,
/// finance bob and alice; carol is an approver in no group.
private let chainPolicy =
    Policy.standardYAML.components(separatedBy: "\napprovals:")[0] + """

        approvals:
          groups:
            managers: [alice, dave]
            finance: [bob, "handoff://tenant/acme/approver/alice"]
          chains:
            - {above: 1000, steps: [[group:managers]]}
            - {above: 10000, steps: [[group:managers], [group:finance]]}
          step_timeout_seconds: 60
          on_expiry: escalate
        """

@Suite("The approval desk over TLS", .timeLimit(.minutes(1)))
struct ApprovalsMethodsTests {
    private func start(
        _ fixtures: Fixtures, clock: TestClock, policy: String = chainPolicy
    ) async throws -> (RunningServer, HandoffClient, HandoffServices) {
        try await startServices(fixtures, clock: clock, policyYAML: policy, notices: [FileCodeChannel(path: fixtures.path("notices.jsonl"))])
    }

    private func request(_ agent: HandoffClient, amount: String, reason: String = "customer asked for a refund") async throws -> Approval {
        try #require(
            try await agent.call(
                Approvals.requestApproval,
                RequestApprovalRequest(
                    sessionID: "s", reason: reason,
                    subject: .action(Action(toolName: "issue_refund", description: "Refund order 42", amount: amount, currency: "USD")))
            ).approval)
    }

    private func decide(_ client: HandoffClient, _ decisions: [ApprovalDecision]) async throws -> [ApprovalDecisionResult] {
        try await client.call(Approvals.decideApproval, DecideApprovalRequest(decisions: decisions)).results
    }

    private func approved(_ result: ApprovalDecisionResult?) -> Approval? {
        if case .approval(let approval)? = result?.result { approval } else { nil }
    }

    private func refused(_ result: ApprovalDecisionResult?) -> ItemError? {
        if case .error(let error)? = result?.result { error } else { nil }
    }

    /// The notices delivered so far (after the sender's queue is drained: it delivers from a task of its own).
    private func notices(_ fixtures: Fixtures, _ services: HandoffServices, flushing: Bool = true) async throws -> [[String: Any]] {
        if flushing { await services.notices.flush() }
        guard let text = try? String(contentsOfFile: fixtures.path("notices.jsonl"), encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    @Test("a two-level chain: routed approvers only, one level each, an edit rebinds the release, the requester hears the outcome")
    func twoLevels() async throws {
        let fixtures = try Fixtures(approvers: ["alice", "bob", "carol"])
        defer { fixtures.remove() }
        let (running, agent, services) = try await start(fixtures, clock: TestClock())
        let alice = try running.client(fixtures.clientTLS(role: "alice"))
        let bob = try running.client(fixtures.clientTLS(role: "bob"))
        let carol = try running.client(fixtures.clientTLS(role: "carol"))

        let approval = try await request(agent, amount: "25000")
        #expect(approval.status == .pending && approval.currentLevel == 1)
        #expect(approval.steps.map(\.approvers) == [["group:managers"], ["group:finance"]])
        #expect(approval.steps.map(\.status) == [.pending, .waiting])
        #expect(approval.requester == Identity(tenantID: "acme", role: .agent, name: "agent"))
        let first = try await notices(fixtures, services)
        #expect(first.count == 1 && first.first?["kind"] as? String == "approval.requested")
        #expect(first.first?["recipients"] as? [String] == ["group:managers"])

        // Who waits for what: alice (a manager) sees it, bob and carol do not.
        #expect(try await alice.call(Approvals.listPendingApprovals, ListPendingApprovalsRequest()).approvals.map(\.id) == [approval.id])
        #expect(try await bob.call(Approvals.listPendingApprovals, ListPendingApprovalsRequest()).approvals.isEmpty)
        #expect(try await carol.call(Approvals.listPendingApprovals, ListPendingApprovalsRequest()).approvals.isEmpty)
        let notRouted = refused(try await decide(carol, [ApprovalDecision(approvalID: approval.id, verdict: .approve)]).first)
        #expect(notRouted?.code == 7)
        #expect(notRouted?.message.contains("routed to group:managers") == true)
        #expect(refused(try await decide(bob, [ApprovalDecision(approvalID: approval.id, verdict: .approve)]).first)?.code == 7)

        // A stale expected level is refused; the right one moves the chain on.
        #expect(refused(try await decide(alice, [ApprovalDecision(approvalID: approval.id, verdict: .approve, expectedLevel: 2)]).first)?.code == 9)
        let afterFirst = try #require(
            approved(
                try await decide(
                    alice,
                    [
                        ApprovalDecision(approvalID: approval.id, verdict: .approve, comment: "fine by me", expectedLevel: 1)
                    ]
                ).first))
        #expect(afterFirst.currentLevel == 2 && afterFirst.steps.map(\.status) == [.approved, .pending])
        #expect(afterFirst.steps[0].decidedBy == Identity(tenantID: "acme", role: .approver, name: "alice"))
        #expect(try await notices(fixtures, services).last?["recipients"] as? [String] == ["group:finance"])

        // Alice is in finance too, but one person does not approve two levels.
        let twice = refused(try await decide(alice, [ApprovalDecision(approvalID: approval.id, verdict: .approve)]).first)
        #expect(twice?.code == 7)
        #expect(twice?.message.contains("you decided level 1") == true)

        // Bob approves a lower amount: the edited action is what is released.
        let edited = Action(toolName: "issue_refund", description: "Refund order 42 (partial)", amount: "20000", currency: "USD")
        let wrongTool = refused(
            try await decide(
                bob,
                [
                    ApprovalDecision(
                        approvalID: approval.id, verdict: .approve, editedAction: Action(toolName: "wire_money", amount: "1", currency: "USD"))
                ]
            ).first)
        #expect(wrongTool?.code == 3)
        let done = try #require(
            approved(
                try await decide(
                    bob,
                    [
                        ApprovalDecision(approvalID: approval.id, verdict: .approve, editedAction: edited, expectedLevel: 2)
                    ]
                ).first))
        #expect(done.status == .approved && done.currentLevel == 0)
        #expect(done.editedAction?.amount == "20000")

        var decision: DecisionUpdate?
        for try await update in try await agent.stream(Decisions.waitForDecision, WaitForDecisionRequest(pendingActionIDs: [done.pendingActionID])) {
            decision = update
        }
        #expect(decision?.status == .released)
        #expect(decision?.action?.amount == "20000", "the release is bound to the edited action")
        #expect(decision?.releaseToken.count == 64)
        #expect(decision?.decidedBy == Identity(tenantID: "acme", role: .approver, name: "bob"), "the decider reaches the agent")
        let outcome = try await notices(fixtures, services).last
        #expect(outcome?["kind"] as? String == "approval.approved")
        #expect(outcome?["recipients"] as? [String] == ["handoff://tenant/acme/agent/agent"])
        // Final: nobody decides it again.
        #expect(refused(try await decide(bob, [ApprovalDecision(approvalID: approval.id, verdict: .reject)]).first)?.code == 9)

        let events = try await agent.call(Sessions.listEvents, ListEventsRequest(sessionID: "s", pageSize: 50)).events.map(\.action)
        #expect(
            Array(events.suffix(6)) == [
                "approval.requested", "approval.decided", "approval.requested", "approval.decided", "approval.approved", "action.released",
            ])
        let admin = try running.client(fixtures.clientTLS(role: "admin"))
        #expect(try await admin.call(Admin.verifyAuditChain, VerifyAuditChainRequest(sessionID: "s")).ok)
        for client in [alice, bob, carol, admin, agent] { await client.close() }
        await running.stop()
    }

    @Test("replayed, an approval's events show it as it was after each change: requested pending, decided approved")
    func replayedApprovalState() async throws {
        let fixtures = try Fixtures(approvers: ["alice"])
        defer { fixtures.remove() }
        let (running, agent, services) = try await start(fixtures, clock: TestClock())
        let alice = try running.client(fixtures.clientTLS(role: "alice"))
        let head = try await services.store.feedHead(tenant: TenantID("acme"))
        let approval = try await request(agent, amount: "2000")
        _ = try #require(approved(try await decide(alice, [ApprovalDecision(approvalID: approval.id, verdict: .approve)]).first))
        let caller = Caller(tenant: TenantID("acme"), identity: "handoff://tenant/acme/admin/admin", role: .admin)
        var seen: [(DeskItem.Kind, String)] = []
        for try await item in try await services.feed.watch(after: head, caller: caller, include: { _, _, _ in true }) {
            seen.append((item.kind, item.approval?.status.rawValue ?? ""))
            if seen.count == 2 { break }
        }
        #expect(seen.map(\.0) == [.approvalRequested, .approvalDecided])
        #expect(seen.map(\.1) == ["pending", "approved"], "the decision's event shows the approval approved, not as it was mid-change")
        for client in [alice, agent] { await client.close() }
        await running.stop()
    }

    @Test("a later level may not raise what an earlier level lowered; the lowered amount is released in the arguments")
    func laterLevelCannotRaise() async throws {
        let fixtures = try Fixtures(approvers: ["alice", "bob"])
        defer { fixtures.remove() }
        let (running, agent, _) = try await start(fixtures, clock: TestClock())
        let alice = try running.client(fixtures.clientTLS(role: "alice"))
        let bob = try running.client(fixtures.clientTLS(role: "bob"))
        let approval = try #require(
            try await agent.call(
                Approvals.requestApproval,
                RequestApprovalRequest(
                    sessionID: "s", reason: "refund",
                    subject: .action(
                        Action(
                            toolName: "issue_refund", parametersJSON: #"{"amount":12000,"order":"42"}"#, amount: "12000", currency: "USD")))
            ).approval)
        let lowered = Action(toolName: "issue_refund", parametersJSON: #"{"amount":12000,"order":"42"}"#, amount: "11000", currency: "USD")
        _ = try #require(
            approved(try await decide(alice, [ApprovalDecision(approvalID: approval.id, verdict: .approve, editedAction: lowered)]).first))
        let raised = Action(toolName: "issue_refund", parametersJSON: #"{"amount":12000,"order":"42"}"#, amount: "12000", currency: "USD")
        let refusal = refused(try await decide(bob, [ApprovalDecision(approvalID: approval.id, verdict: .approve, editedAction: raised)]).first)
        #expect(refusal?.code == 3 && refusal?.message.contains("exceeds the amount under approval 11000") == true, "\(String(describing: refusal))")
        let done = try #require(approved(try await decide(bob, [ApprovalDecision(approvalID: approval.id, verdict: .approve)]).first))
        #expect(done.status == .approved)
        #expect(done.editedAction?.amount == "11000")
        #expect(done.editedAction?.parametersJSON == #"{"amount":11000,"order":"42"}"#, "the argument follows the edit")
        for client in [alice, bob, agent] { await client.close() }
        await running.stop()
    }

    @Test("a batch decides each item on its own; a rejection rejects the action; bad requests name the field")
    func batchesAndRefusals() async throws {
        let fixtures = try Fixtures(approvers: ["alice", "bob"])
        defer { fixtures.remove() }
        let (running, agent, services) = try await start(fixtures, clock: TestClock())
        let alice = try running.client(fixtures.clientTLS(role: "alice"))
        let one = try await request(agent, amount: "2000")
        let two = try await request(agent, amount: "3000")
        #expect(one.steps.count == 1)

        let results = try await decide(
            alice,
            [
                ApprovalDecision(approvalID: one.id, verdict: .approve),
                ApprovalDecision(approvalID: "ap-nope", verdict: .approve),
                ApprovalDecision(approvalID: two.id, verdict: .unspecified),
                ApprovalDecision(approvalID: two.id, verdict: .reject, comment: "not without a receipt"),
            ])
        #expect(results.map(\.approvalID) == [one.id, "ap-nope", two.id, two.id])
        #expect(approved(results[0])?.status == .approved)
        #expect(refused(results[1])?.code == 5)
        #expect(refused(results[2])?.code == 3)
        #expect(approved(results[3])?.status == .rejected)
        #expect(approved(results[3])?.steps.first?.comment == "not without a receipt")
        var statuses: [String: PendingActionStatus] = [:]
        for try await update in try await agent.stream(
            Decisions.waitForDecision, WaitForDecisionRequest(pendingActionIDs: [one.pendingActionID, two.pendingActionID]))
        {
            statuses[update.pendingActionID] = update.status
        }
        #expect(statuses == [one.pendingActionID: .released, two.pendingActionID: .rejected])

        // The requester rule holds even for an approver who requested it.
        let aliceCaller = Caller(tenant: TenantID("acme"), identity: "handoff://tenant/acme/approver/alice", role: .approver)
        let upgrade = try await assess(agent, Action(toolName: "book_flight", description: "Book a business class upgrade"))
        let own = try await services.approvals.request(
            sessionID: "s", pendingActionID: upgrade.id, action: nil, amount: "5000", currency: "USD", reason: "my own", caller: aliceCaller)
        let ownRefusal = refused(try await decide(alice, [ApprovalDecision(approvalID: own.approval.id, verdict: .approve)]).first)
        #expect(ownRefusal?.code == 7)
        #expect(ownRefusal?.message.contains("nobody decides an approval they requested") == true)

        func code(_ request: RequestApprovalRequest) async -> RPCError? { await refusalOf(agent, Approvals.requestApproval, request) }
        let refund = Action(toolName: "issue_refund", amount: "500", currency: "USD")
        #expect(await code(RequestApprovalRequest(sessionID: "s", reason: "r"))?.code == .invalidArgument)
        #expect(await code(RequestApprovalRequest(sessionID: "s", subject: .action(refund)))?.message.contains("reason is required") == true)
        let small = await code(RequestApprovalRequest(sessionID: "s", reason: "r", subject: .action(refund)))
        #expect(small?.code == .failedPrecondition, "no chain covers 500")
        #expect(small?.message.contains("no approval chain for amount 500") == true)
        #expect(await code(RequestApprovalRequest(sessionID: "s", amount: "12,5", reason: "r", subject: .action(refund)))?.code == .invalidArgument)
        #expect(await code(RequestApprovalRequest(sessionID: "s", reason: "r", subject: .pendingActionID("pa-nope")))?.code == .notFound)
        #expect(await refusalOf(alice, Approvals.decideApproval, DecideApprovalRequest())?.code == .invalidArgument)
        // The chain follows the action's own amount: stating less is refused.
        let understated = await code(
            RequestApprovalRequest(
                sessionID: "s", amount: "1500", reason: "r", subject: .action(Action(toolName: "issue_refund", amount: "25000", currency: "USD"))))
        #expect(understated?.code == .invalidArgument && understated?.message.contains("below the action's own amount") == true)
        // An approver lowers an amount, never raises it.
        let refundApproval = try await request(agent, amount: "3000", reason: "another refund")
        let raised = refused(
            try await decide(
                alice,
                [
                    ApprovalDecision(
                        approvalID: refundApproval.id, verdict: .approve,
                        editedAction: Action(toolName: "issue_refund", amount: "9000", currency: "USD"))
                ]
            ).first)
        #expect(raised?.code == 3 && raised?.message.contains("exceeds the amount under approval") == true)
        let unstated = refused(
            try await decide(
                alice,
                [
                    ApprovalDecision(
                        approvalID: refundApproval.id, verdict: .approve, editedAction: Action(toolName: "issue_refund"))
                ]
            ).first)
        #expect(unstated?.code == 3 && unstated?.message.contains("edited_action.amount is required") == true)
        #expect(
            await code(RequestApprovalRequest(sessionID: "s", amount: "1.2.3", reason: "r", subject: .action(refund)))?.code
                == .invalidArgument)
        // While approvers decide, the user's confirmation cannot settle it.
        let booking = try await assess(agent, Action(toolName: "book_flight", description: "Book a flight"))
        _ = try await agent.call(Confirmations.requestConfirmation, RequestConfirmationRequest(pendingActionID: booking.id))
        let chained = try #require(
            try await agent.call(
                Approvals.requestApproval,
                RequestApprovalRequest(
                    sessionID: "s", amount: "2500", reason: "a manager signs bookings this large", subject: .pendingActionID(booking.id))
            ).approval)
        let answered = await refusalOf(
            agent, Confirmations.respondToConfirmation, RespondToConfirmationRequest(pendingActionID: booking.id, text: "yes"))
        #expect(answered?.code == .failedPrecondition && answered?.message.contains("awaits approval \(chained.id)") == true)
        // An operator asks approval of an assessed action, never of a new one.
        let operatorAsks = try running.client(fixtures.clientTLS(role: "operator"))
        #expect(
            await refusalOf(
                operatorAsks, Approvals.requestApproval,
                RequestApprovalRequest(
                    sessionID: "s", reason: "r", subject: .action(refund)))?.code == .permissionDenied)
        await operatorAsks.close()
        // Requesting again for the same pending action returns the approval already pending.
        let pending = try await agent.call(
            Approvals.requestApproval,
            RequestApprovalRequest(
                sessionID: "s", amount: "5000", reason: "again", subject: .pendingActionID(own.action.id)))
        #expect(pending.approval?.id == own.approval.id)
        // The desk cannot decide around the chain: an operator's resolve may not release it.
        let operatorClient = try running.client(fixtures.clientTLS(role: "operator"))
        let ticket = try #require(
            try await agent.call(
                Escalations.escalate,
                EscalateRequest(
                    sessionID: "s", reason: "customer is waiting", pendingActionID: own.action.id)
            ).ticket)
        _ = try await operatorClient.call(Escalations.claim, ClaimRequest(ticketID: ticket.id))
        let bypass = await refusalOf(
            operatorClient, Escalations.resolve,
            ResolveRequest(
                ticketID: ticket.id, outcome: .resolved, pendingActionDecision: .release))
        #expect(bypass?.code == .failedPrecondition && bypass?.message.contains("awaits approval \(own.approval.id)") == true)
        // Nor leave it silently: the operator says the action stays with the chain.
        let silent = await refusalOf(operatorClient, Escalations.resolve, ResolveRequest(ticketID: ticket.id, outcome: .handedBack))
        #expect(silent?.code == .failedPrecondition && silent?.message.contains("LEAVE_PENDING") == true, "\(String(describing: silent))")
        _ = try await operatorClient.call(
            Escalations.resolve, ResolveRequest(ticketID: ticket.id, outcome: .handedBack, pendingActionDecision: .leavePending))
        #expect(try await alice.call(Approvals.getApproval, GetApprovalRequest(approvalID: own.approval.id)).approval?.status == .pending)
        await operatorClient.close()
        for client in [alice, agent] { await client.close() }
        await running.stop()
    }

    @Test("an undecided step expires: escalate moves the chain on, the last expiry ends it and the action, reject ends it at once")
    func expiry() async throws {
        let fixtures = try Fixtures(approvers: ["alice", "bob"])
        defer { fixtures.remove() }
        let clock = TestClock()
        let (running, agent, services) = try await start(fixtures, clock: clock)
        let watcher = try running.client(fixtures.clientTLS(role: "operator"))
        let approval = try await request(agent, amount: "50000")
        let watched = Task {
            var kinds: [DeskEventKind] = []
            for try await event in try await watcher.stream(
                Operators.watch,
                WatchRequest(
                    kinds: [.approvalExpired, .approvalRequested], resumeCursor: ""))
            {
                kinds.append(event.kind)
                if kinds.count == 3 { break }
            }
            return kinds
        }
        while services.feed.hub.watcherCount < 1 { try await Task.sleep(for: .milliseconds(2)) }  // it has read the feed's head
        clock.advance(seconds: 59)
        #expect(try await services.approvals.sweep().approvals == 0)
        clock.advance(seconds: 2)
        #expect(try await services.approvals.sweep().approvals == 1)
        let moved = try #require(try await agent.call(Approvals.getApproval, GetApprovalRequest(approvalID: approval.id)).approval)
        #expect(moved.steps.map(\.status) == [.expired, .pending] && moved.currentLevel == 2)
        #expect(moved.steps[1].expiresAtUnixMs == clock.read() + 60_000)

        // No sweep this time: reading it applies the due expiry.
        clock.advance(seconds: 61)
        let ended = try #require(try await agent.call(Approvals.getApproval, GetApprovalRequest(approvalID: approval.id)).approval)
        #expect(ended.status == .expired && ended.steps.map(\.status) == [.expired, .expired])
        #expect(try await services.approvals.sweep().approvals == 0, "already applied")
        var status: PendingActionStatus?
        for try await update in try await agent.stream(
            Decisions.waitForDecision, WaitForDecisionRequest(pendingActionIDs: [approval.pendingActionID]))
        {
            status = update.status
        }
        #expect(status == .expired)
        #expect(
            try await watched.value == [.approvalExpired, .approvalRequested, .approvalExpired], "level 1 expired, level 2 asked, level 2 expired")
        #expect(try await notices(fixtures, services).last?["kind"] as? String == "approval.expired")
        await watcher.close()
        await agent.close()
        await running.stop()

        // on_expiry: reject ends the chain at its first expiry.
        let other = try Fixtures(approvers: ["alice"])
        defer { other.remove() }
        let rejectPolicy = chainPolicy.replacingOccurrences(of: "on_expiry: escalate", with: "on_expiry: reject")
        let (second, agent2, services2) = try await start(other, clock: clock, policy: rejectPolicy)
        let short = try await request(agent2, amount: "50000")
        clock.advance(seconds: 61)
        #expect(try await services2.approvals.sweep().approvals == 1)
        let over = try #require(try await agent2.call(Approvals.getApproval, GetApprovalRequest(approvalID: short.id)).approval)
        #expect(over.status == .expired && over.steps.map(\.status) == [.expired, .cancelled])
        await agent2.close()
        await second.stop()
    }

    @Test("the escalate strategy goes to people at once: money to the approval desk, the rest to an operator; a repeat finds them")
    func automaticRouting() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (running, agent, services) = try await start(fixtures, clock: TestClock(), policy: Policy.standardYAML)
        let refund = AssessActionRequest(
            sessionID: "s", action: Action(toolName: "issue_refund", description: "Refund my order", amount: "250", currency: "USD"),
            idempotencyKey: "refund-1")
        let store = try #require(services.store as? SQLiteStore)
        let commitsBefore = store._testOnly_commitCount
        let first = try await agent.call(HandoffProto.Policy.assessAction, refund)
        #expect(first.strategy == .escalate && !first.approvalID.isEmpty && first.ticketID.isEmpty)
        // One transaction: an assessed action never exists without the chain that decides it.
        #expect(
            store._testOnly_commitCount - commitsBefore == 1,
            "the assessment and its approval took \(store._testOnly_commitCount - commitsBefore) commits")
        let recorded = try await agent.call(Sessions.listEvents, ListEventsRequest(sessionID: "s", pageSize: 10)).events.map(\.action)
        #expect(Array(recorded.suffix(2)) == ["action.assessed", "approval.requested"], "\(recorded)")
        let again = try await agent.call(HandoffProto.Policy.assessAction, refund)
        #expect(again.approvalID == first.approvalID, "a repeat opened a second approval")
        let approver = try running.client(fixtures.clientTLS(role: "approver"))
        let waiting = try await approver.call(Approvals.listPendingApprovals, ListPendingApprovalsRequest())
        #expect(waiting.approvals.map(\.id) == [first.approvalID])
        #expect(
            waiting.approvals.first?.reason.contains("amount 250 USD > 100") == true,
            "the reason names the rules: \(waiting.approvals.first?.reason ?? "")")

        let medical = AssessActionRequest(
            sessionID: "s",
            action: Action(
                toolName: "answer_question", description: "Is it safe to double my medication dose?", confidence: 0.4))
        let escalated = try await agent.call(HandoffProto.Policy.assessAction, medical)
        #expect(escalated.strategy == .escalate && !escalated.ticketID.isEmpty && escalated.approvalID.isEmpty)
        let operatorClient = try running.client(fixtures.clientTLS(role: "operator"))
        let view = try await operatorClient.call(Escalations.getTicket, GetTicketRequest(ticketID: escalated.ticketID))
        #expect(view.pendingAction?.id == escalated.pendingAction?.id)
        #expect(view.ticket?.priority == .urgent, "a critical action is urgent whatever the reason's words")
        #expect(try await agent.call(Sessions.getSession, GetSessionRequest(sessionID: "s")).session?.status == .escalated)
        // Automated actions go nowhere.
        let weather = try await agent.call(
            HandoffProto.Policy.assessAction,
            AssessActionRequest(
                sessionID: "s", action: Action(toolName: "get_weather", description: "What's the weather?")))
        #expect(weather.ticketID.isEmpty && weather.approvalID.isEmpty)
        for client in [approver, operatorClient, agent] { await client.close() }
        await running.stop()
    }

    @Test("an escalation rate above the threshold alerts operators through the notice channels once per window")
    func escalationAlert() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let clock = TestClock()
        let (running, agent, services) = try await start(fixtures, clock: clock, policy: Policy.standardYAML)
        for id in ["a", "b", "c"] { _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: id, reasoning: "r")) }
        func alerts() async throws -> [[String: Any]] { try await notices(fixtures, services).filter { $0["kind"] as? String == "escalation.alert" } }
        _ = try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "a", reason: "complaint"))  // 1 of 4 sessions: 25 %
        #expect(try await alerts().count == 1)
        #expect((try await alerts().first?["summary"] as? String)?.contains("escalation rate 25.0% (1 of 4 sessions)") == true)
        #expect(try await alerts().first?["recipients"] as? [String] == ["role:operator", "role:admin"])
        _ = try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "b", reason: "complaint"))
        #expect(try await alerts().count == 1, "a second escalation in the same window sent a second alert")
        // A day later the window holds only new sessions.
        clock.advance(seconds: 86_401)
        for id in ["d", "e"] { _ = try await agent.call(Sessions.createSession, CreateSessionRequest(sessionID: id, reasoning: "r")) }
        _ = try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "d", reason: "complaint"))
        #expect(try await alerts().count == 2)
        await agent.close()
        await running.stop()
    }

    @Test("automated actions the sampling rate picks are recorded for review, in the assessment's transaction")
    func sampledForReview() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let everything = Policy.standardYAML.replacingOccurrences(of: "sampling_rate: 0.0", with: "sampling_rate: 1.0")
        #expect(everything != Policy.standardYAML)
        let (running, agent, _) = try await start(fixtures, clock: TestClock(), policy: everything)
        let weather = try await agent.call(
            HandoffProto.Policy.assessAction,
            AssessActionRequest(
                sessionID: "s", action: Action(toolName: "get_weather", description: "What's the weather?")))
        #expect(weather.strategy == .automate && weather.sampledForReview)
        _ = try await agent.call(
            HandoffProto.Policy.assessAction,
            AssessActionRequest(
                sessionID: "s", action: Action(toolName: "book_flight", description: "Book a flight")))  // not automated: not sampled
        let operatorClient = try running.client(fixtures.clientTLS(role: "operator"))
        let reviews = try await operatorClient.call(Sessions.listEvents, ListEventsRequest(actions: ["action.sampled_for_review"]))
        #expect(reviews.events.count == 1)
        #expect(reviews.events.first?.reasoning == "What's the weather?" && reviews.events.first?.detailsJSON.contains("get_weather") == true)
        for client in [operatorClient, agent] { await client.close() }
        await running.stop()
    }

    @Test("a notice channel that hangs holds up neither the approval nor the next notice's turn")
    func slowChannel() async throws {
        /// A webhook that does not answer until the test lets it.
        final class Hanging: NoticeChannel {
            let name = "hanging"
            private let gate = AsyncStream<Void>.makeStream()
            func release() { gate.continuation.finish() }
            func notify(_ notice: DeskNotice) async throws { for await _ in gate.stream {} }
        }
        let fixtures = try Fixtures(approvers: ["alice"])
        defer { fixtures.remove() }
        let hanging = Hanging()
        let (running, agent, services) = try await startServices(
            fixtures, clock: TestClock(), policyYAML: chainPolicy, notices: [hanging, FileCodeChannel(path: fixtures.path("notices.jsonl"))])
        // Both requests are answered while the hanging channel still holds its first notice.
        _ = try await request(agent, amount: "2000")
        _ = try await request(agent, amount: "3000", reason: "a second refund")
        while try await notices(fixtures, services, flushing: false).count < 2 { try await Task.sleep(for: .milliseconds(5)) }
        hanging.release()
        await services.notices.flush()
        #expect(try await notices(fixtures, services).count == 2, "every notice still reaches the other channel")
        await agent.close()
        await running.stop()
    }

    @Test("a webhook that answers 503 gets the notice again, with the same notice_id, until it takes it; a 400 is not tried again")
    func webhookRetries() async throws {
        let secret = Array("notice-webhook-secret".utf8)
        let receiver = try await WebhookReceiver(secret: secret)
        defer { Task { await receiver.close() } }
        receiver.script.withLock { $0 = [.serviceUnavailable, .serviceUnavailable] }
        let webhook = try WebhookCodeChannel(
            url: "http://127.0.0.1:\(receiver.port)/notices", secret: secret, timeout: .seconds(30), group: MultiThreadedEventLoopGroup.singleton)
        let fixtures = try Fixtures(approvers: ["alice"])
        defer { fixtures.remove() }
        let (running, agent, services) = try await startServices(
            fixtures, clock: TestClock(), policyYAML: chainPolicy, notices: [webhook],
            noticeRetryDelays: [.milliseconds(100), .milliseconds(100), .seconds(60)])
        _ = try await request(agent, amount: "2000")
        // Two attempts answered 503; the third is taken.
        await services.notices.flush()
        let attempts = receiver.deliveries
        #expect(attempts.count == 3, "\(attempts.count) attempts")
        #expect(attempts.allSatisfy { $0.signatureValid && $0.body["kind"] == "approval.requested" })
        #expect(Set(attempts.map { $0.body["notice_id"] ?? "" }).count == 1 && attempts[0].body["notice_id"]?.count == 36)

        // A refusal (4xx) is final: one attempt only.
        receiver.status.withLock { $0 = .badRequest }
        _ = try await request(agent, amount: "3000", reason: "a second refund")
        await services.notices.flush()  // retries included: a retry of the 400 would be counted here
        #expect(receiver.deliveries.count == 4, "a 400 was tried again")
        #expect(receiver.deliveries[3].body["notice_id"] != attempts[0].body["notice_id"])
        await agent.close()
        await running.stop()
    }

    @Test("a retried approval.requested that reaches the receiver after the outcome is told apart by approval_revision")
    func retryAfterOutcome() async throws {
        let secret = Array("notice-webhook-secret".utf8)
        let receiver = try await WebhookReceiver(secret: secret)
        defer { Task { await receiver.close() } }
        receiver.script.withLock { $0 = [.serviceUnavailable] }
        let webhook = try WebhookCodeChannel(
            url: "http://127.0.0.1:\(receiver.port)/notices", secret: secret, timeout: .seconds(30), group: MultiThreadedEventLoopGroup.singleton)
        let fixtures = try Fixtures(approvers: ["alice"])
        defer { fixtures.remove() }
        let clock = TestClock()
        let (running, agent, services) = try await startServices(
            // The retry waits for a minute, so the decision comes first however busy the machine is; the
            // test then hurries it (flush(within:) cancels a retry's wait).
            fixtures, clock: clock, policyYAML: chainPolicy, notices: [webhook], noticeRetryDelays: [.seconds(60)])
        let alice = try running.client(fixtures.clientTLS(role: "alice"))
        let approval = try await request(agent, amount: "2000")
        clock.advance(seconds: 5)
        #expect(approved(try await decide(alice, [ApprovalDecision(approvalID: approval.id, verdict: .approve)]).first)?.status == .approved)
        try await until(seconds: 20) { receiver.deliveries.count >= 2 }
        #expect(await services.notices.flush(within: .seconds(20)) == 0)
        let kinds = receiver.deliveries.map { $0.body["kind"] ?? "" }
        #expect(kinds == ["approval.requested", "approval.approved", "approval.requested"], "\(kinds)")
        let revisions = receiver.deliveries.map { Int($0.body["approval_revision"] ?? "") ?? -1 }
        let times = receiver.deliveries.map { Int64($0.body["occurred_at_unix_ms"] ?? "") ?? -1 }
        #expect(revisions[0] == revisions[2] && revisions[0] >= 0 && revisions[1] > revisions[2], "\(revisions)")
        #expect(times == [clock.read() - 5000, clock.read(), clock.read() - 5000], "\(times)")
        for client in [alice, agent] { await client.close() }
        await running.stop()
    }

    @Test("a ticket unclaimed past its SLA gets one sla_breached event and Watch event; approvers watch only their approvals")
    func slaBreachesAndApproverWatch() async throws {
        let fixtures = try Fixtures(approvers: ["alice", "carol"])
        defer { fixtures.remove() }
        let clock = TestClock()
        let (running, agent, services) = try await start(fixtures, clock: clock)
        let operatorClient = try running.client(fixtures.clientTLS(role: "operator"))
        let alice = try running.client(fixtures.clientTLS(role: "alice"))
        let carol = try running.client(fixtures.clientTLS(role: "carol"))
        let operatorWatch = Task { () async throws -> DeskEvent? in
            for try await event in try await operatorClient.stream(Operators.watch, WatchRequest(kinds: [.ticketSlaBreached])) { return event }
            return nil
        }
        let aliceWatch = Task { () async throws -> DeskEvent? in
            for try await event in try await alice.stream(Operators.watch, WatchRequest()) { return event }
            return nil
        }
        let carolWatch = Task { () async throws -> DeskEvent? in
            for try await event in try await carol.stream(Operators.watch, WatchRequest()) { return event }
            return nil
        }
        while services.feed.hub.watcherCount < 3 { try await Task.sleep(for: .milliseconds(2)) }  // all three read the feed's head
        let ticket = try #require(try await agent.call(Escalations.escalate, EscalateRequest(sessionID: "s", reason: "fraud on my card")).ticket)
        #expect(ticket.priority == .urgent)
        clock.advance(seconds: 301)
        #expect(try await services.approvals.sweep().breaches == 1)
        #expect(try await services.approvals.sweep().breaches == 0, "a breach is recorded once")
        let breach = try #require(try await operatorWatch.value)
        #expect(breach.kind == .ticketSlaBreached)
        if case .ticket(let t)? = breach.subject { #expect(t.id == ticket.id && t.slaBreached) } else { Issue.record("no ticket") }

        // Alice (a manager) hears of the approval and not of the ticket; carol hears nothing.
        let approval = try await request(agent, amount: "5000")
        let seen = try #require(try await aliceWatch.value)
        #expect(seen.kind == .approvalRequested)
        if case .approval(let a)? = seen.subject { #expect(a.id == approval.id) } else { Issue.record("no approval") }
        try await Task.sleep(for: .milliseconds(200))
        carolWatch.cancel()
        #expect((try? await carolWatch.value) ?? nil == nil, "carol saw an event not routed to her")
        let events = try await agent.call(Sessions.listEvents, ListEventsRequest(sessionID: "s", pageSize: 50)).events.map(\.action)
        #expect(events.filter { $0 == "ticket.sla_breached" }.count == 1)
        for client in [operatorClient, alice, carol, agent] { await client.close() }
        await running.stop()
    }
}
