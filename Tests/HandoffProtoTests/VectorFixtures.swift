// Handoff — the expected values of the cross-language vectors, built in Swift
// independently of scripts/vectors.py (which builds them with Google's
// protobuf). Keep the two in step.

import Foundation
import HandoffProto

enum VectorFixtures {
    static let unicode = "Grüße, 漢字, emoji 🙂👩‍💻, combining é, RTL שלום"

    static var directory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors")
    }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// name -> the message, as `any ProtoMessage` so one loop covers them all.
    static let all: [(String, any ProtoMessage)] = [
        ("envelope_request", envelopeRequest),
        ("envelope_end", Envelope(kind: .end, callID: UInt64.max, statusCode: 10, statusMessage: "stale version: expected 3, found 4")),
        (
            "update_state_patch",
            UpdateStateRequest(
                sessionID: "s-1", reasoning: "the user added an item", expectedVersion: 0,
                change: .mergePatchJSON(#"{"cart":{"items":2,"note":null}}"#))
        ),
        ("update_state_replace", UpdateStateRequest(sessionID: "s-2", reasoning: "reset", change: .replacementJSON("{}"))),
        (
            "session",
            Session(
                id: "s-max", tenantID: "acme", version: Int64.max, stateJSON: #"{"k":""# + unicode + #""}"#,
                status: .escalated, labels: ["channel": "web", "lang": "fr", "z": ""],
                createdAtUnixMs: Int64.min, updatedAtUnixMs: -1, escalationTicketID: "t-1")
        ),
        ("context", context),
        (
            "action_zero_confidence",
            Action(
                toolName: "refund_order", decisionType: .financial, parametersJSON: #"{"order":"A-17","amount":250}"#,
                description: "Refund my order of 250 dollars", amount: "250.00", currency: "USD", confidence: 0.0)
        ),
        (
            "pending_unknown_enum",
            PendingAction(
                id: "pa-1", sessionID: "s-1", risk: .unrecognized(42), status: .released,
                actionHash: [UInt8](repeating: 0, count: 32), assessedSessionVersion: 7)
        ),
        (
            "assess_response",
            AssessActionResponse(
                risk: .high, decisionType: .financial, strategy: .escalate,
                matchedRules: [
                    MatchedRule(ruleID: "amount", kind: .amount, explanation: "amount 250 > 100", risk: .high),
                    MatchedRule(ruleID: "word:refund", kind: .word, explanation: #"word "refund""#, risk: .high, decisionType: .financial),
                ],
                sampledForReview: true, policyVersion: "default-1")
        ),
        (
            "stats",
            EscalationStatsResponse(
                sinceUnixMs: 1_763_395_200_000, untilUnixMs: 1_764_000_000_000, sessionsInWindow: 1000, escalations: 163,
                escalationRate: 0.163, topReasons: [ReasonCount(reason: "frustrated", count: 90)],
                byPriority: [PriorityCount(priority: .urgent, count: 12)], alertThreshold: 0.15, alertActive: true)
        ),
        ("ping_empty", PingRequest()),
    ]

    static let envelopeRequest = Envelope(
        kind: .request, callID: 1, method: "handoff.v1.Sessions/UpdateState", timeoutMs: 2500,
        metadata: [
            MetadataEntry(key: "authorization", value: "Bearer t0ken"),
            MetadataEntry(key: "x-note", value: unicode),
            MetadataEntry(key: "x-note", value: "repeated key"),
        ],
        payload: Array(0...255))

    static func turn(_ i: Int) -> Turn {
        let metadata: String = #"{"tokens":"# + String(i * 10) + "}"
        let source: TurnSource = i % 2 == 0 ? .agent : .operator
        return Turn(
            sessionID: "s-ctx", sequence: Int64(i + 1), input: "question \(i + 1)", output: "answer \(i + 1) \(unicode)",
            metadataJSON: metadata, reasoning: "because", source: source,
            author: Identity(tenantID: "acme", role: .agent, name: "bot"), createdAtUnixMs: 1_764_000_000_000 + Int64(i))
    }

    static let context = GetContextResponse(
        session: Session(id: "s-ctx", tenantID: "acme", version: 4, stateJSON: "{}"),
        turns: [turn(0), turn(1), turn(2)],
        memories: [Memory(sessionID: "s-ctx", sequence: 1, content: "prefers aisle seats")],
        totalTurns: 60)
}
