// Handoff — handoff.v1.Confirmations (RequestConfirmation, RespondToConfirmation)
// wired to the domain; the multi-factor calls follow with their issue.

import HandoffCore
public import HandoffPolicy
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
            let answer: HandoffProto.ConfirmationOutcome = switch outcome.answer {
            case .confirmed?: .confirmed
            case .declined?: .declined
            case .ambiguous?: .ambiguous
            case nil: .unspecified
            }
            return RespondToConfirmationResponse(
                outcome: answer, reprompt: outcome.prompt, repromptCount: Int32(outcome.action.repromptCount), pendingAction: pending)
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
