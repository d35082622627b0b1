// Handoff — handoff.v1.Approvals (the approval desk) wired to the domain.

import Foundation
import HandoffCore
public import HandoffDesks
import HandoffPolicy
import HandoffProto
public import HandoffRPC

extension ApprovalRecord {
    var proto: Approval {
        func status(_ status: ApprovalRecord.Status) -> ApprovalStatus {
            switch status {
            case .pending: .pending
            case .approved: .approved
            case .rejected: .rejected
            case .expired: .expired
            case .cancelled: .cancelled
            }
        }
        func status(_ status: ApprovalStepRecord.Status) -> ApprovalStatus {
            switch status {
            case .waiting: .waiting
            case .pending: .pending
            case .approved: .approved
            case .rejected: .rejected
            case .expired: .expired
            case .cancelled: .cancelled
            }
        }
        func action(_ json: String?) -> Action? {
            json.flatMap { try? JSONValue(parsing: $0) }.flatMap { ProposedAction(canonicalJSON: $0) }?.proto
        }
        return Approval(
            id: id, tenantID: tenant.rawValue, sessionID: sessionID, pendingActionID: pendingActionID, action: action(actionJSON),
            editedAction: action(editedActionJSON), amount: amount, currency: currency, reason: reason,
            requester: Identity(actor: requester), status: status(self.status),
            steps: steps.map { step in
                ApprovalStep(
                    level: Int32(step.level), approvers: step.approvers, status: status(step.status),
                    decidedBy: step.decidedBy.isEmpty ? nil : Identity(actor: step.decidedBy),
                    comment: step.comment, editedAction: action(step.editedActionJSON), activatedAtUnixMs: step.activatedAtMs,
                    expiresAtUnixMs: step.expiresAtMs, decidedAtUnixMs: step.decidedAtMs)
            },
            currentLevel: Int32(currentLevel), createdAtUnixMs: createdAtMs, decidedAtUnixMs: decidedAtMs)
    }
}

extension MethodRegistry {
    /// Registers Approvals: RequestApproval, GetApproval, ListPendingApprovals and DecideApproval.
    public mutating func registerApprovals(_ approvals: ApprovalService) {
        register(Approvals.requestApproval) { request, context in
            var pendingID: String?
            var action: ProposedAction?
            switch request.subject {
            case .pendingActionID(let id)?:
                guard !id.isEmpty else { throw RPCError(code: .invalidArgument, message: "pending_action_id is empty") }
                pendingID = id
            case .action(let proto)?:
                action = try proposedAction(proto)
            case nil:
                throw RPCError(code: .invalidArgument, message: "give exactly one of pending_action_id and action")
            }
            let outcome = try await approvals.request(
                sessionID: request.sessionID, pendingActionID: pendingID, action: action, amount: request.amount,
                currency: request.currency, reason: request.reason, caller: context.caller)
            return RequestApprovalResponse(approval: outcome.approval.proto, pendingAction: outcome.action.proto)
        }
        register(Approvals.getApproval) { request, context in
            GetApprovalResponse(approval: try await approvals.get(id: request.approvalID, caller: context.caller).proto)
        }
        register(Approvals.listPendingApprovals) { request, context in
            let limit = try pageLimit(request.pageSize)
            let after = request.pageToken.isEmpty ? nil : try ApprovalPageToken.decode(request.pageToken)
            let found = try await approvals.pending(
                sessionID: request.sessionID.isEmpty ? nil : request.sessionID, after: after, limit: limit, caller: context.caller)
            return ListPendingApprovalsResponse(
                approvals: found.approvals.map(\.proto), nextPageToken: found.next.map(ApprovalPageToken.encode) ?? "")
        }
        register(Approvals.decideApproval) { request, context in
            guard (1...100).contains(request.decisions.count) else {
                throw RPCError(code: .invalidArgument, message: "decisions must hold 1 to 100 items, not \(request.decisions.count)")
            }
            // Items malformed on their own are refused on their own, like any other item error.
            var inputs: [Result<ApprovalDecisionInput, RPCError>] = []
            for decision in request.decisions {
                inputs.append(
                    Result { () throws(RPCError) in
                        guard !decision.approvalID.isEmpty else { throw RPCError(code: .invalidArgument, message: "approval_id is required") }
                        let approve: Bool
                        switch decision.verdict {
                        case .approve: approve = true
                        case .reject: approve = false
                        default: throw RPCError(code: .invalidArgument, message: "verdict must be APPROVE or REJECT")
                        }
                        let edited = try decision.editedAction.map { action throws(RPCError) in try proposedAction(action) }
                        return ApprovalDecisionInput(
                            approvalID: decision.approvalID, approve: approve, comment: decision.comment, editedAction: edited,
                            expectedLevel: Int(decision.expectedLevel))
                    })
            }
            var results: [ApprovalDecisionResult] = []
            for (decision, input) in zip(request.decisions, inputs) {
                switch input {
                case .failure(let error):
                    results.append(
                        ApprovalDecisionResult(
                            approvalID: decision.approvalID, result: .error(ItemError(code: error.code.rawValue, message: error.message))))
                case .success(let input):
                    switch await approvals.decide([input], caller: context.caller)[0] {
                    case .success(let approval):
                        results.append(ApprovalDecisionResult(approvalID: decision.approvalID, result: .approval(approval.proto)))
                    case .failure(let error):
                        let rpc = error.rpcError
                        results.append(
                            ApprovalDecisionResult(
                                approvalID: decision.approvalID, result: .error(ItemError(code: rpc.code.rawValue, message: rpc.message))))
                    }
                }
            }
            return DecideApprovalResponse(results: results)
        }
    }
}
