// Handoff — AssessAction's escalate strategy routes an action by the policy
// it was assessed with: a reload between the assessment and the routing (both
// within one call) cannot split one decision.

import Foundation
import HandoffCore
import HandoffPolicy
import HandoffSQLite
import Testing

@testable import HandoffDesks

@Suite("Automatic escalation")
struct AutomaticEscalationTests {
    @Test("an action assessed under a policy that routes it to approvers goes to approvers, though a reload since routes nothing there")
    func routedByThePolicyItWasAssessedWith() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("escalation-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = (directory as NSString).appendingPathComponent("policy.yaml")
        try Policy.standardYAML.write(toFile: file, atomically: true, encoding: .utf8)
        let store = try SQLiteStore(path: (directory as NSString).appendingPathComponent("handoff.sqlite"))
        let sessions = SessionService(store: store)
        let policy = try PolicyHolder(path: file)
        let confirmations = ConfirmationService(
            store: store, sessions: sessions, policy: policy, multiFactor: MultiFactorSettings(key: Array(repeating: 1, count: 32), channels: []))
        let assessments = AssessmentService(store: store, sessions: sessions, policy: policy)
        let approvals = ApprovalService(
            store: store, sessions: sessions, policy: policy, confirmations: confirmations, assessments: assessments, desk: DeskHub())
        let escalations = EscalationService(store: store, sessions: sessions, policy: policy, confirmations: confirmations)
        let escalation = AutomaticEscalation(approvals: approvals, escalations: escalations, policy: policy)
        let agent = Caller(tenant: .default, identity: "handoff://tenant/default/agent/a")
        _ = try await sessions.create(id: "s", stateJSON: "{}", labels: [:], reasoning: "r", caller: agent)
        let refund = ProposedAction(
            toolName: "issue_refund", declaredType: nil, parameters: .object(["order": .string("A-1")]), description: "Refund 250 dollars",
            amount: Decimal(250), currency: "USD", confidence: 0.9)
        let outcome = try await assessments.assess(sessionID: "s", action: refund, idempotencyKey: "", caller: agent)
        #expect(outcome.assessment.strategy == .escalate && outcome.pending != nil)

        // Between the assessment and its routing: a policy that routes no decision type to approvers.
        try Policy.standardYAML.replacingOccurrences(of: "route_decision_types: [financial]", with: "route_decision_types: []")
            .write(toFile: file, atomically: true, encoding: .utf8)
        try policy.reload()
        #expect(policy.current.policy.approvals.routeDecisionTypes.isEmpty)

        let route = try await escalation.route(outcome, sessionID: "s", action: refund, caller: agent)
        #expect(!route.approvalID.isEmpty && route.ticketID.isEmpty, "routed by the policy in force after the reload: \(route)")
    }
}
