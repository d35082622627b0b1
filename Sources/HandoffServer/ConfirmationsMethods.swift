// Handoff — handoff.v1.Confirmations (RequestConfirmation, RespondToConfirmation)
// wired to the domain; the multi-factor calls follow with their issue.

import HandoffCore
public import HandoffDesks
import HandoffPolicy
import HandoffProto
public import HandoffRPC

extension MethodRegistry {
    /// Registers Confirmations: RequestConfirmation, RespondToConfirmation,
    /// StartMultiFactor and VerifyMultiFactor.
    public mutating func registerConfirmations(_ confirmations: ConfirmationService) {
        register(Confirmations.requestConfirmation) { request, context in
            let outcome = try await confirmations.request(
                pendingActionID: request.pendingActionID, prompt: request.prompt, caller: context.caller)
            return RequestConfirmationResponse(prompt: outcome.prompt, pendingAction: outcome.action.proto)
        }
        register(Confirmations.respondToConfirmation) { request, context in
            let outcome = try await confirmations.respond(
                pendingActionID: request.pendingActionID, text: request.text, caller: context.caller)
            var pending = outcome.action.proto
            pending.releaseToken = outcome.releaseToken ?? ""
            let answer: HandoffProto.ConfirmationOutcome =
                switch outcome.answer {
                case .confirmed?: .confirmed
                case .declined?: .declined
                case .ambiguous?: .ambiguous
                case nil: .unspecified
                }
            return RespondToConfirmationResponse(
                outcome: answer, reprompt: outcome.prompt, repromptCount: Int32(clamping: outcome.action.repromptCount), pendingAction: pending)
        }
        register(Confirmations.startMultiFactor) { request, context in
            let start = try await confirmations.startMultiFactor(pendingActionID: request.pendingActionID, caller: context.caller)
            return StartMultiFactorResponse(
                channels: start.channels, expiresAtUnixMs: start.expiresAtMs, codeLength: Int32(start.codeLength),
                attemptsRemaining: Int32(start.attempts))
        }
        register(Confirmations.verifyMultiFactor) { request, context in
            let result = try await confirmations.verifyMultiFactor(
                pendingActionID: request.pendingActionID, code: request.code, caller: context.caller)
            var pending = result.action.proto
            pending.releaseToken = result.releaseToken ?? ""
            return VerifyMultiFactorResponse(
                verified: result.verified, attemptsRemaining: Int32(result.attemptsRemaining), pendingAction: pending)
        }
    }
}

extension MethodRegistry {
    /// Registers Decisions/WaitForDecision and Decisions/ReportExecution.
    public mutating func registerDecisions(_ confirmations: ConfirmationService) {
        register(Decisions.waitForDecision, endsOnDrain: true) { request, context, writer in
            let decisions = try await confirmations.waitForDecision(pendingActionIDs: request.pendingActionIDs, caller: context.caller)
            for try await decision in decisions {
                let pending = decision.action.proto
                try await writer.write(
                    DecisionUpdate(
                        pendingActionID: decision.action.id, status: pending.status, releaseToken: decision.releaseToken ?? "",
                        action: pending.action,
                        decidedBy: decision.action.decidedBy.isEmpty ? nil : Identity(actor: decision.action.decidedBy),
                        comment: decision.action.decisionComment, decidedAtUnixMs: decision.action.updatedAtMs))
            }
        }
        register(Decisions.reportExecution) { request, context in
            let report = try await confirmations.reportExecution(
                releaseToken: request.releaseToken, resultJSON: request.resultJSON, idempotencyKey: request.idempotencyKey,
                errorMessage: request.errorMessage, caller: context.caller)
            return ReportExecutionResponse(
                recorded: true, duplicate: report.duplicate, executedAtUnixMs: report.action.executedAtMs,
                pendingActionID: report.action.id, resultJSON: report.action.resultJSON ?? "")
        }
    }
}
