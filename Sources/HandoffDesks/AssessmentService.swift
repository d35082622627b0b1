// Handoff — AssessAction in the domain, one use case: assess a proposed
// action with one snapshot of the policy in force, keep a pending action when
// it may not run on its own, hand an escalated one to its approvers or to the
// operator desk, and record an `action.assessed` event, all in one
// transaction; the same idempotency key gets the first answer back.

import Crypto
import Foundation
public import HandoffCore
public import HandoffPolicy
import Synchronization

/// What AssessAction answers.
public struct AssessmentOutcome: Sendable, Hashable {
    public var assessment: Assessment
    /// Set exactly when the strategy is not automate.
    public var pending: PendingActionRecord?
    /// True when the idempotency key had been used: the first answer, again.
    public var replayed: Bool
    /// The ticket or the approval an escalated action was handed to (at most
    /// one is set): opened in the assessment's own transaction, or on a
    /// replay, the one still deciding the pending action.
    public var ticketID = ""
    public var approvalID = ""
}

/// When AssessAction answers an automated action that carries no
/// idempotency key: its `action.assessed` event is all it writes, and
/// nothing later refers to it.
public enum AutomatedAssessments: String, Sendable, CaseIterable {
    /// Once its event is queued for the next group commit (about a
    /// millisecond later). Writes after it commit after it, and reads wait
    /// for it; a crash in between loses that event, not the decision.
    case queued
    /// Once its event committed, like every other write.
    case committed
}

public final class AssessmentService: Sendable {
    private let store: any Store
    private let sessions: SessionService
    private let policy: PolicyHolder
    private let clock: @Sendable () -> Int64
    private let random: @Sendable () -> Double
    private let automated: AutomatedAssessments
    private let queuedWriteFailed: @Sendable (_ sessionID: String, StoreError) -> Void

    /// - Parameters:
    ///   - automated: when an automated action without an idempotency key is answered.
    ///   - queuedWriteFailed: told when the event of such an answer, queued, did not commit.
    public init(
        store: any Store, sessions: SessionService, policy: PolicyHolder,
        clock: @escaping @Sendable () -> Int64 = SessionService.wallClockMs,
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        automated: AutomatedAssessments = .queued,
        queuedWriteFailed: @escaping @Sendable (_ sessionID: String, StoreError) -> Void = { _, _ in }
    ) {
        self.store = store
        self.sessions = sessions
        self.policy = policy
        self.clock = clock
        self.random = random
        self.automated = automated
        self.queuedWriteFailed = queuedWriteFailed
    }

    /// Assesses `action` in session `sessionID`. With `escalation`, an action
    /// of the escalate strategy goes to its approvers or to the operator desk
    /// in the same transaction, routed by the same policy snapshot.
    /// - Throws: `.notFound` (no such session), `.conflict` (the key was
    ///   used for another action), `.invalid`.
    public func assess(
        sessionID: String, action: ProposedAction, idempotencyKey: String, caller: Caller, escalation: AutomaticEscalation? = nil
    ) async throws(HandoffError) -> AssessmentOutcome {
        guard !action.toolName.isEmpty else { throw .invalid("action.tool_name is required") }
        guard idempotencyKey.utf8.count <= 128 else { throw .invalid("idempotency_key is longer than 128 bytes") }
        let loaded = policy.current
        // The amount assessed must be the amount the tool's arguments move (fail closed).
        if let mismatch = loaded.policy.approvals.mismatch(in: action) { throw .invalid("action: \(mismatch)") }
        let assessment = loaded.policy.assess(action, tenant: caller.tenant.rawValue, sample: random())
        let now = clock()
        let actionJSON = action.canonicalJSON.serialized
        var pending: PendingActionRecord?
        if assessment.strategy != .automate {
            // Only an action that waits for a decision is bound to the session's
            // version; an automated one reads the session only when it is
            // answered before its write (below), which would refuse an unknown one.
            let session = try await sessions.get(id: sessionID, caller: caller)
            pending = PendingActionRecord(
                tenant: caller.tenant, id: RecordID.make("pa-"), sessionID: sessionID, status: .pending,
                actionJSON: actionJSON, risk: assessment.risk.rawValue, decisionType: assessment.decisionType.rawValue,
                strategy: assessment.strategy.rawValue, createdAtMs: now, updatedAtMs: now,
                expiresAtMs: loaded.policy.pendingExpirySeconds.map { now + Int64($0) * 1000 } ?? 0,
                idempotencyKey: idempotencyKey, actionHash: action.bindingHash(sessionVersion: session.version),
                assessedVersion: session.version)
        }
        var handover: (handover: Handover, pending: PendingActionRecord, event: NewEvent?)?
        if let escalation, let created = pending {
            handover = try await escalation.handover(
                created, action: action, assessment: assessment, caller: caller, now: now, policy: loaded.policy)
        }
        let assessmentJSON = assessment.json.serialized
        var details = assessment.json.objectValue ?? [:]
        details["tool"] = .string(action.toolName)
        details["pending_action_id"] = pending.map { .string($0.id) } ?? .null
        details["idempotency_key"] = .string(idempotencyKey)
        let record = AssessmentRecord(
            sessionID: sessionID, idempotencyKey: idempotencyKey,
            requestHash: Array(SHA256.hash(data: Data(actionJSON.utf8))), assessmentJSON: assessmentJSON,
            pendingActionID: pending?.id, createdAtMs: now)
        let events =
            [
                NewEvent(
                    action: .actionAssessed, actor: caller.identity, reasoning: action.description,
                    detailsJSON: JSONValue.object(details).serialized, occurredAtMs: now)
            ]
            // An automated action the sampling rate picked: operators review these after the
            // fact (`handoff reviews`, or ListEvents with this action).
            + (assessment.sampledForReview
                ? [
                    NewEvent(
                        action: .actionSampledForReview, actor: caller.identity, reasoning: action.description,
                        detailsJSON: JSONValue.object([
                            "tool": .string(action.toolName), "action": action.canonicalJSON,
                            "sampling_rate": .number(loaded.policy.samplingRate),
                        ]).serialized,
                        occurredAtMs: now)
                ] : [])
            + (handover?.event.map { [$0] } ?? [])
        if pending == nil, idempotencyKey.isEmpty, automated == .queued {
            // Nothing refers to this write later: answered once it is queued.
            // The session must exist first, as the write would refuse it.
            // Past the store's limit of queued writes, it waits for its commit.
            _ = try await sessions.get(id: sessionID, caller: caller)
            let failed = queuedWriteFailed
            let queue = { [store] in
                store.queueAssessment(tenant: caller.tenant, assessment: record, events: events) { result in
                    if case .failure(let error) = result { failed(sessionID, error) }
                }
            }
            // A full queue: wait once for room rather than for this write's own
            // commit behind the whole queue; taken by others meanwhile, it commits.
            var queued = queue()
            if !queued, await store.waitForQueueRoom() { queued = queue() }
            if queued {
                DeskMetrics.assessed(assessment.strategy, assessment.decisionType)
                return AssessmentOutcome(assessment: assessment, pending: nil, replayed: false)
            }
        }
        let store = store
        let (held, given) = (handover?.pending ?? pending, handover?.handover)
        let write = { @Sendable () async throws(HandoffError) -> RecordedAssessment in
            do throws(StoreError) {
                return try await store.recordAssessment(
                    tenant: caller.tenant, assessment: record, pending: held, handover: given, events: events)
            } catch {
                throw HandoffError(error)
            }
        }
        let recorded: RecordedAssessment
        if case .ticket = handover?.handover {
            // A ticket adds the escalation's turn and changes the session's
            // status: written in order with the session's other changes.
            recorded = try await sessions.changeBeside(id: sessionID, caller: caller, addsTurns: true, first: true) {
                () throws(HandoffError) in
                let recorded = try await write()
                return (recorded, status: recorded.sessionStatus)
            }
        } else {
            recorded = try await write()
        }
        guard recorded.replayed else {
            DeskMetrics.assessed(assessment.strategy, assessment.decisionType)
            if let escalation { await escalation.announce(recorded, action: action, caller: caller) }
            return AssessmentOutcome(
                assessment: assessment, pending: recorded.pending, replayed: false, ticketID: recorded.ticket?.record.id ?? "",
                approvalID: recorded.approval?.id ?? "")
        }
        guard let first = try? Assessment(json: JSONValue(parsing: recorded.assessmentJSON)) else {
            throw .storeFailed("the stored assessment under key \(idempotencyKey) does not parse")
        }
        var replay = AssessmentOutcome(assessment: first, pending: recorded.pending, replayed: true)
        if let escalation, let earlier = recorded.pending, first.strategy == .escalate {
            (replay.ticketID, replay.approvalID) = try await escalation.deciding(
                earlier, action: action, assessment: first, caller: caller, policy: loaded.policy)
        }
        return replay
    }
}

extension ProposedAction {
    /// The action as canonical JSON: what is stored and what idempotency compares.
    public var canonicalJSON: JSONValue {
        var members: [String: JSONValue] = [
            "tool_name": .string(toolName), "parameters": parameters, "description": .string(description),
            "currency": .string(currency),
        ]
        members["decision_type"] = declaredType.map { .string($0.rawValue) } ?? .null
        members["amount"] = amount.map { .string("\($0)") } ?? .null
        members["confidence"] = confidence.map { .number($0) } ?? .null
        return .object(members)
    }

    /// Reads `canonicalJSON` back.
    public init?(canonicalJSON value: JSONValue) {
        guard let members = value.objectValue, case .string(let tool)? = members["tool_name"] else { return nil }
        var declared: DecisionType?
        if case .string(let name)? = members["decision_type"] { declared = DecisionType(rawValue: name) }
        var amount: Decimal?
        if case .string(let text)? = members["amount"] { amount = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) }
        var confidence: Double?
        switch members["confidence"] {
        case .number(let v)?: confidence = v
        case .integer(let v)?: confidence = Double(v)
        default: break
        }
        var description = ""
        var currency = ""
        if case .string(let text)? = members["description"] { description = text }
        if case .string(let text)? = members["currency"] { currency = text }
        self.init(
            toolName: tool, declaredType: declared, parameters: members["parameters"] ?? .object([:]), description: description,
            amount: amount, currency: currency, confidence: confidence)
    }

    /// SHA-256 over the tool name, the canonical parameters and the session
    /// version it was assessed at: what a release is bound to.
    public func bindingHash(sessionVersion: Int64) -> [UInt8] {
        var hasher = SHA256()
        for text in ["handoff.action.v1", toolName, parameters.serialized] {
            let bytes = Array(text.utf8)
            withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { hasher.update(bufferPointer: $0) }
            hasher.update(data: bytes)
        }
        withUnsafeBytes(of: sessionVersion.bigEndian) { hasher.update(bufferPointer: $0) }
        return Array(hasher.finalize())
    }
}

extension Assessment {
    /// The assessment as JSON: stored for replays and written into the event.
    public var json: JSONValue {
        .object([
            "risk": .string(risk.description), "decision_type": .string(decisionType.rawValue),
            "strategy": .string(strategy.description), "sampled_for_review": .bool(sampledForReview),
            "policy_version": .string(policyVersion),
            "matched_rules": .array(
                matched.map { rule in
                    .object([
                        "id": .string(rule.id), "kind": .string(rule.kind.rawValue), "explanation": .string(rule.explanation),
                        "risk": rule.risk.map { .string($0.description) } ?? .null,
                        "decision_type": rule.decisionType.map { .string($0.rawValue) } ?? .null,
                    ])
                }),
        ])
    }

    /// Reads `json` back; nil when it is not one.
    public init?(json: JSONValue) {
        guard let members = json.objectValue,
            case .string(let riskName)? = members["risk"], let risk = RiskLevel.allCases.first(where: { $0.description == riskName }),
            case .string(let typeName)? = members["decision_type"], let type = DecisionType(rawValue: typeName),
            case .string(let strategyName)? = members["strategy"],
            let strategy = Strategy.allCases.first(where: { $0.description == strategyName }),
            case .bool(let sampled)? = members["sampled_for_review"],
            case .string(let version)? = members["policy_version"],
            case .array(let rules)? = members["matched_rules"]
        else { return nil }
        var matched: [MatchedRule] = []
        for rule in rules {
            guard let fields = rule.objectValue, case .string(let id)? = fields["id"],
                case .string(let kindName)? = fields["kind"], let kind = RuleKind(rawValue: kindName),
                case .string(let explanation)? = fields["explanation"]
            else { return nil }
            var ruleRisk: RiskLevel?
            if case .string(let name)? = fields["risk"] { ruleRisk = RiskLevel.allCases.first { $0.description == name } }
            var ruleType: DecisionType?
            if case .string(let name)? = fields["decision_type"] { ruleType = DecisionType(rawValue: name) }
            matched.append(MatchedRule(id: id, kind: kind, explanation: explanation, risk: ruleRisk, decisionType: ruleType))
        }
        self.init(risk: risk, decisionType: type, strategy: strategy, matched: matched, sampledForReview: sampled, policyVersion: version)
    }
}
