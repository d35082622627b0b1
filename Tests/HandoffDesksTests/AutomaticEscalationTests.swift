// Handoff — AssessAction's escalate strategy as one use case: the ticket or
// approval is routed by the policy snapshot the action was assessed with and
// written in the assessment's own transaction; a replay names what still
// decides the action and writes nothing.

import Foundation
import GRDB
import HandoffCore
import HandoffPolicy
import HandoffSQLite
import Testing

@testable import HandoffDesks

@Suite("Automatic escalation")
struct AutomaticEscalationTests {
    /// The desks over a real SQLite file, with the shipped policy edited by `edit`.
    struct Desks {
        let directory: String
        let store: SQLiteStore
        let sessions: SessionService
        let assessments: AssessmentService
        let escalation: AutomaticEscalation
        let agent = Caller(tenant: .default, identity: "handoff://tenant/default/agent/a")
        var path: String { (directory as NSString).appendingPathComponent("handoff.sqlite") }

        init(edit: (String) -> String = { $0 }) throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("escalation-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let file = (directory as NSString).appendingPathComponent("policy.yaml")
            try edit(Policy.standardYAML).write(toFile: file, atomically: true, encoding: .utf8)
            store = try SQLiteStore(path: (directory as NSString).appendingPathComponent("handoff.sqlite"))
            sessions = SessionService(store: store)
            let policy = try PolicyHolder(path: file)
            let confirmations = ConfirmationService(
                store: store, sessions: sessions, policy: policy,
                multiFactor: MultiFactorSettings(key: Array(repeating: 1, count: 32), channels: []))
            assessments = AssessmentService(store: store, sessions: sessions, policy: policy)
            let approvals = ApprovalService(
                store: store, sessions: sessions, policy: policy, confirmations: confirmations, assessments: assessments, desk: DeskHub())
            let escalations = EscalationService(store: store, sessions: sessions, policy: policy, confirmations: confirmations)
            escalation = AutomaticEscalation(approvals: approvals, escalations: escalations)
        }

        func count(_ table: String) throws -> Int {
            try DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? -1 }
        }
    }

    static let legal = ProposedAction(
        toolName: "give_legal_advice", declaredType: .legal, parameters: .object(["topic": .string("lease")]),
        description: "Advise on breaking the lease", amount: nil, currency: "", confidence: 0.9)

    @Test("an escalated action and its ticket are one write: when the ticket cannot be written, neither is the assessment")
    func ticketInTheAssessmentsTransaction() async throws {
        let desks = try Desks()
        defer { try? FileManager.default.removeItem(atPath: desks.directory) }
        _ = try await desks.sessions.create(id: "s", stateJSON: "{}", labels: [:], reasoning: "r", caller: desks.agent)
        // The fault: the database refuses every ticket.
        try await DatabaseQueue(path: desks.path).write { db in
            try db.execute(sql: "CREATE TRIGGER no_tickets BEFORE INSERT ON tickets BEGIN SELECT RAISE(ABORT, 'no tickets'); END")
        }
        await #expect(throws: HandoffError.self) {
            _ = try await desks.assessments.assess(
                sessionID: "s", action: Self.legal, idempotencyKey: "k1", caller: desks.agent, escalation: desks.escalation)
        }
        // Written in two transactions, the pending action and its assessment would be left with no one to decide them.
        #expect(try desks.count("pending_actions") == 0)
        #expect(try desks.count("assessments") == 0)
        #expect(try await desks.store.events(tenant: .default, sessionID: "s").map(\.event.action) == ["session.created"])

        try await DatabaseQueue(path: desks.path).write { db in try db.execute(sql: "DROP TRIGGER no_tickets") }
        let outcome = try await desks.assessments.assess(
            sessionID: "s", action: Self.legal, idempotencyKey: "k1", caller: desks.agent, escalation: desks.escalation)
        #expect(outcome.assessment.strategy == .escalate && !outcome.ticketID.isEmpty && outcome.approvalID.isEmpty)
        let events = try await desks.store.events(tenant: .default, sessionID: "s").map(\.event.action)
        #expect(events == ["session.created", "action.assessed", "session.escalated"])
        #expect(try await desks.sessions.get(id: "s", caller: desks.agent).status == .escalated)
    }

    @Test("a replay names the ticket still deciding the action and writes nothing")
    func replayNamesTheTicket() async throws {
        let desks = try Desks()
        defer { try? FileManager.default.removeItem(atPath: desks.directory) }
        _ = try await desks.sessions.create(id: "s", stateJSON: "{}", labels: [:], reasoning: "r", caller: desks.agent)
        let first = try await desks.assessments.assess(
            sessionID: "s", action: Self.legal, idempotencyKey: "k1", caller: desks.agent, escalation: desks.escalation)
        let again = try await desks.assessments.assess(
            sessionID: "s", action: Self.legal, idempotencyKey: "k1", caller: desks.agent, escalation: desks.escalation)
        #expect(again.replayed && again.ticketID == first.ticketID && again.pending?.id == first.pending?.id)
        #expect(try desks.count("tickets") == 1)
        #expect(try await desks.store.events(tenant: .default, sessionID: "s").count == 3)
    }

    @Test("a replay of an escalated action that nobody decides any more hands it over again, once")
    func replayRepairsAnOrphan() async throws {
        let desks = try Desks()
        defer { try? FileManager.default.removeItem(atPath: desks.directory) }
        _ = try await desks.sessions.create(id: "s", stateJSON: "{}", labels: [:], reasoning: "r", caller: desks.agent)
        // Assessed without a handover: what an action left by a failed second write looked like.
        let orphan = try await desks.assessments.assess(sessionID: "s", action: Self.legal, idempotencyKey: "k1", caller: desks.agent)
        #expect(orphan.ticketID.isEmpty && orphan.pending?.isUndecided == true)
        #expect(try desks.count("tickets") == 0)
        let repaired = try await desks.assessments.assess(
            sessionID: "s", action: Self.legal, idempotencyKey: "k1", caller: desks.agent, escalation: desks.escalation)
        #expect(repaired.replayed && !repaired.ticketID.isEmpty && repaired.pending?.id == orphan.pending?.id)
        let again = try await desks.assessments.assess(
            sessionID: "s", action: Self.legal, idempotencyKey: "k1", caller: desks.agent, escalation: desks.escalation)
        #expect(again.ticketID == repaired.ticketID)
        #expect(try desks.count("tickets") == 1)
    }

    @Test("a refund goes to approvers, opened with the assessment; with no decision type routed there, to the operator desk")
    func routedOnce() async throws {
        let refund = ProposedAction(
            toolName: "issue_refund", declaredType: nil, parameters: .object(["order": .string("A-1")]), description: "Refund 250 dollars",
            amount: Decimal(250), currency: "USD", confidence: 0.9)
        let routed = try Desks()
        defer { try? FileManager.default.removeItem(atPath: routed.directory) }
        _ = try await routed.sessions.create(id: "s", stateJSON: "{}", labels: [:], reasoning: "r", caller: routed.agent)
        let toApprovers = try await routed.assessments.assess(
            sessionID: "s", action: refund, idempotencyKey: "", caller: routed.agent, escalation: routed.escalation)
        #expect(!toApprovers.approvalID.isEmpty && toApprovers.ticketID.isEmpty)
        #expect(try routed.count("approvals") == 1 && routed.count("tickets") == 0)

        let unrouted = try Desks {
            $0.replacingOccurrences(of: "route_decision_types: [financial]", with: "route_decision_types: []")
        }
        defer { try? FileManager.default.removeItem(atPath: unrouted.directory) }
        _ = try await unrouted.sessions.create(id: "s", stateJSON: "{}", labels: [:], reasoning: "r", caller: unrouted.agent)
        let toOperators = try await unrouted.assessments.assess(
            sessionID: "s", action: refund, idempotencyKey: "", caller: unrouted.agent, escalation: unrouted.escalation)
        #expect(toOperators.approvalID.isEmpty && !toOperators.ticketID.isEmpty)
        #expect(try unrouted.count("approvals") == 0 && unrouted.count("tickets") == 1)
    }

    @Test("the reason made from a policy's long explanations is cut to what a ticket takes, and the ticket opens")
    func longReason() {
        let rule = MatchedRule(id: "r", kind: .tool, explanation: String(repeating: "é", count: 3000), risk: nil, decisionType: nil)
        let assessment = Assessment(
            risk: .critical, decisionType: .legal, strategy: .escalate, matched: [rule], sampledForReview: false, policyVersion: "1")
        let reason = AutomaticEscalation.reason(assessment, Self.legal)
        #expect(reason.utf8.count <= EscalationService.reasonBytes && reason.hasSuffix("…"))
    }
}
