// Handoff — handoff.v1.Policy and Admin/ReloadPolicy wired to the domain.

import Foundation
import HandoffCore
public import HandoffDesks
public import HandoffPolicy
import HandoffProto
public import HandoffRPC

typealias ProtoRiskLevel = HandoffProto.RiskLevel
typealias ProtoDecisionType = HandoffProto.DecisionType
typealias ProtoStrategy = HandoffProto.Strategy

extension HandoffPolicy.RiskLevel {
    var proto: ProtoRiskLevel { ProtoRiskLevel(rawValue: Int32(rawValue)) }
}

extension HandoffPolicy.Strategy {
    var proto: ProtoStrategy { ProtoStrategy(rawValue: Int32(rawValue)) }
}

extension HandoffPolicy.DecisionType {
    var proto: ProtoDecisionType {
        switch self {
        case .informational: .informational
        case .preferences: .preferences
        case .transactional: .transactional
        case .financial: .financial
        case .legal: .legal
        case .medical: .medical
        case .destructive: .destructive
        }
    }

    init?(proto: ProtoDecisionType) {
        switch proto {
        case .informational: self = .informational
        case .preferences: self = .preferences
        case .transactional: self = .transactional
        case .financial: self = .financial
        case .legal: self = .legal
        case .medical: self = .medical
        case .destructive: self = .destructive
        case .unspecified, .unrecognized: return nil
        }
    }
}

extension HandoffPolicy.RuleKind {
    var proto: HandoffProto.RuleKind {
        switch self {
        case .declaredType: .declaredType
        case .tool: .tool
        case .word: .word
        case .amount: .amount
        case .personalData: .personalData
        case .confidence: .confidence
        case .standingDecision: .standingDecision
        case .fallback: .default
        }
    }
}

/// The protocol's Action checked and turned into the policy's.
func proposedAction(_ action: Action?) throws(RPCError) -> ProposedAction {
    guard let action, !action.toolName.isEmpty else {
        throw RPCError(code: .invalidArgument, message: "action.tool_name is required")
    }
    var declared: HandoffPolicy.DecisionType?
    switch action.decisionType {
    case .unspecified: declared = nil
    case .unrecognized(let value): throw RPCError(code: .invalidArgument, message: "action.decision_type \(value) is not a known decision type")
    default: declared = HandoffPolicy.DecisionType(proto: action.decisionType)
    }
    var parameters = JSONValue.object([:])
    if !action.parametersJSON.isEmpty {
        do {
            parameters = try JSONValue(parsing: action.parametersJSON)
        } catch {
            throw RPCError(code: .invalidArgument, message: "action.parameters_json is \(error.message)")
        }
        guard case .object = parameters else {
            throw RPCError(code: .invalidArgument, message: "action.parameters_json must be a JSON object")
        }
    }
    var amount: Decimal?
    if !action.amount.isEmpty {
        let text = action.amount
        // Money an action moves is never negative: a negative amount would pass every threshold.
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
            let value = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX"))
        else {
            throw RPCError(code: .invalidArgument, message: "action.amount \"\(text)\" is not decimal text such as 250 or 19.99 (never negative)")
        }
        guard action.currency.count == 3, action.currency.allSatisfy({ $0.isASCII && $0.isUppercase }) else {
            throw RPCError(code: .invalidArgument, message: "action.currency must be an ISO 4217 code such as USD when amount is set")
        }
        amount = value
    }
    if let confidence = action.confidence, !(0...1).contains(confidence) {
        throw RPCError(code: .invalidArgument, message: "action.confidence \(confidence) is not within 0.0...1.0")
    }
    return ProposedAction(
        toolName: action.toolName, declaredType: declared, parameters: parameters, description: action.description,
        amount: amount, currency: action.currency, confidence: action.confidence)
}

extension ProposedAction {
    var proto: Action {
        Action(
            toolName: toolName, decisionType: declaredType?.proto ?? .unspecified, parametersJSON: parameters.serialized,
            description: description, amount: amount.map { "\($0)" } ?? "", currency: currency, confidence: confidence)
    }
}

extension PendingActionRecord {
    var proto: PendingAction { proto(action: nil) }

    /// `action`: the record's action as the caller has it already (the
    /// same canonical JSON), so it is not parsed back.
    func proto(action known: ProposedAction?) -> PendingAction {
        let status: PendingActionStatus =
            switch self.status {
            case .pending: .pending
            case .confirmed: .confirmed
            case .declined: .declined
            case .expired: .expired
            case .approved: .approved
            case .rejected: .rejected
            case .released: .released
            case .executed: .executed
            case .cancelled: .cancelled
            }
        let action = known ?? (try? JSONValue(parsing: actionJSON)).flatMap { ProposedAction(canonicalJSON: $0) }
        return PendingAction(
            id: id, sessionID: sessionID, action: action?.proto, risk: ProtoRiskLevel(rawValue: Int32(risk)),
            decisionType: HandoffPolicy.DecisionType(rawValue: decisionType)?.proto ?? .unspecified,
            strategy: ProtoStrategy(rawValue: Int32(strategy)), status: status, createdAtUnixMs: createdAtMs,
            updatedAtUnixMs: updatedAtMs, expiresAtUnixMs: isUndecided ? expiryInForceMs : expiresAtMs, idempotencyKey: idempotencyKey,
            actionHash: actionHash,
            assessedSessionVersion: assessedVersion)
    }
}

extension MethodRegistry {
    /// Registers Policy/AssessAction and Admin/ReloadPolicy.
    /// `escalation`: hands actions of the escalate strategy to people at once (nil: the agent escalates itself).
    public mutating func registerPolicy(_ assessments: AssessmentService, policy: PolicyHolder, escalation: AutomaticEscalation? = nil) {
        register(HandoffProto.Policy.assessAction) { request, context in
            let action = try proposedAction(request.action)
            let outcome = try await assessments.assess(
                sessionID: request.sessionID, action: action, idempotencyKey: request.idempotencyKey, caller: context.caller,
                escalation: escalation)
            let assessment = outcome.assessment
            return AssessActionResponse(
                risk: assessment.risk.proto, decisionType: assessment.decisionType.proto, strategy: assessment.strategy.proto,
                matchedRules: assessment.matched.map {
                    MatchedRule(
                        ruleID: $0.id, kind: $0.kind.proto, explanation: $0.explanation, risk: $0.risk?.proto ?? .unspecified,
                        decisionType: $0.decisionType?.proto ?? .unspecified)
                },
                // A new pending action holds this very action; a replay's may since have been
                // edited by its approvers, so it is read from the record.
                pendingAction: outcome.pending?.proto(action: outcome.replayed ? nil : action), sampledForReview: assessment.sampledForReview,
                policyVersion: assessment.policyVersion, ticketID: outcome.ticketID, approvalID: outcome.approvalID)
        }
        register(Admin.reloadPolicy) { request, _ in
            guard policy.path != nil else {
                throw RPCError(code: .failedPrecondition, message: "handoffd runs the shipped policy; start it with --policy FILE to reload one")
            }
            let loaded: PolicyHolder.Loaded
            do throws(PolicyError) {
                loaded = try policy.reload(apply: !request.validateOnly)
            } catch {
                throw RPCError(code: .invalidArgument, message: error.message)
            }
            let rules =
                loaded.policy.toolRules.count + loaded.policy.wordRules.count + loaded.policy.standingDecisions.count
                + [loaded.policy.amount != nil, loaded.policy.personalData != nil, loaded.policy.confidence != nil].filter { $0 }.count
            return ReloadPolicyResponse(
                policyVersion: loaded.policy.version, policyHash: loaded.hash, ruleCount: Int32(rules),
                applied: !request.validateOnly, loadedAtUnixMs: request.validateOnly ? policy.current.loadedAtMs : loaded.loadedAtMs)
        }
    }
}
