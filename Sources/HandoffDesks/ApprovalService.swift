// Handoff — the approval desk: a pending action goes through a chain of
// approvers built from policy for its amount. Each step is decided by an
// approver it is routed to who is neither the requester nor the decider of
// an earlier step; the last approval releases the action (as edited, if an
// approver edited it), any rejection rejects it, and an undecided step takes
// the policy's expiry outcome. Every change is written with its events and
// the pending action in one transaction, in the session's turn.

import Crypto
import Foundation
public import HandoffCore
public import HandoffPolicy
import Synchronization

/// Something the desks tell people about: the approvers of a new step, the
/// requester of an approval's outcome, or operators and admins of an
/// escalation rate above the policy's threshold.
public struct DeskNotice: Sendable, Hashable {
    /// Unique per notice and the same in every attempt to deliver it, so a
    /// receiver can drop a repeat (a retry after an answer that was lost).
    public var id = UUID().uuidString.lowercased()
    /// `approval.requested`, `approval.approved`, `approval.rejected`,
    /// `approval.expired` or `escalation.alert`.
    public var kind: String
    public var tenant: TenantID
    public var approvalID: String
    public var sessionID: String
    /// The step it is about (0 for an outcome).
    public var level: Int
    /// Who should hear of it: approver entries of the step, or the requester.
    public var recipients: [String]
    /// The action, amount and reason in words.
    public var summary: String
    /// The approval's revision after the change this notice reports (0 for
    /// an escalation alert). A retried notice can reach a receiver after a
    /// later one; of one approval's notices, the highest revision is current.
    public var revision: Int64 = 0
    /// When the change happened (ms since 1970).
    public var occurredAtMs: Int64 = 0
}

/// A way to tell approvers and requesters (a webhook, a development file).
public protocol NoticeChannel: Sendable {
    var name: String { get }
    func notify(_ notice: DeskNotice) async throws
}

/// A channel's failure that says whether trying again could help: a
/// webhook's 4xx answer (but 408 and 429) will not change on a retry.
/// Failures that do not conform are retried.
public protocol DeliveryFailure: Error {
    var isPermanent: Bool { get }
}

/// Sends notices through every channel, each channel from a task and a queue
/// of its own: a slow or dead webhook (up to its timeout per notice) holds
/// neither the RPC that caused the notice, nor the desk sweeper, nor the
/// other channels. Delivery is best effort
/// after the commit: the desk feed and the store hold the truth. A channel
/// that fails is reported to `onFailure` (the log) and, unless the failure
/// is permanent, tried again after each of `retryDelays` (in a task of its
/// own, so the next notices do not wait); the other channels still run.
public final class NoticeSender: Sendable {
    /// One queue per channel.
    private let lanes: [(name: String, continuation: AsyncStream<DeskNotice>.Continuation)]
    /// Deliveries queued and done (delivered, failed for good or dropped),
    /// shared with the workers; a retry counts as one more until it ends.
    /// `retries` holds the retries waiting, so a shutdown can hurry them.
    private final class Counts: Sendable {
        let state = Mutex((queued: 0, done: 0, retries: [Int: Task<Void, Never>](), nextRetry: 0))
    }

    private let counts = Counts()
    private let workers: [Task<Void, Never>]
    private let onDropped: @Sendable (DeskNotice, String) -> Void
    /// The waits before the second, third and fourth attempt of a failed delivery.
    public static let defaultRetryDelays: [Duration] = [.seconds(1), .seconds(5), .seconds(30)]

    /// - Parameters:
    ///   - capacity: notices waiting at most per channel; beyond it the oldest are dropped (and reported to `onDropped`).
    ///   - retryDelays: the waits before each further attempt of a failed delivery.
    ///   - maximumRetries: deliveries waiting for a retry at most (each is a
    ///     task, and may open a connection when its wait ends); a failure
    ///     beyond it is final. Retries may reach a receiver after later notices.
    ///   - onFailure: told of each failed attempt, with the wait before the next (nil: no more).
    ///   - onDropped: told of each notice a channel's full queue dropped, with the channel's name.
    public init(
        channels: [any NoticeChannel] = [], capacity: Int = 10_000,
        retryDelays: [Duration] = NoticeSender.defaultRetryDelays, maximumRetries: Int = 1_000,
        onFailure: @escaping @Sendable (DeskNotice, String, any Error, _ retryIn: Duration?) -> Void = { _, _, _, _ in },
        onDropped: @escaping @Sendable (DeskNotice, String) -> Void = { _, _ in }
    ) {
        let counts = self.counts
        self.onDropped = onDropped
        /// One attempt; on a failure that may pass, a retry in a task of its own.
        @Sendable func attempt(_ notice: DeskNotice, _ channel: any NoticeChannel, delays: ArraySlice<Duration>) async {
            do {
                try await channel.notify(notice)
                DeskMetrics.notice(channel.name, "sent")
                return
            } catch {
                let permanent = (error as? any DeliveryFailure)?.isPermanent ?? false
                guard !permanent, let delay = delays.first else {
                    DeskMetrics.notice(channel.name, "failed")
                    onFailure(notice, channel.name, error, nil)
                    return
                }
                let scheduled = counts.state.withLock { state -> Bool in
                    guard state.retries.count < maximumRetries else { return false }
                    state.queued += 1
                    state.nextRetry += 1
                    let key = state.nextRetry
                    // Cancelled by a shutdown's flush: tried once more at once.
                    state.retries[key] = Task {
                        try? await Task.sleep(for: delay)
                        await attempt(notice, channel, delays: Task.isCancelled ? [] : delays.dropFirst())
                        counts.state.withLock { state in
                            state.retries[key] = nil
                            state.done += 1
                        }
                    }
                    return true
                }
                if !scheduled { DeskMetrics.notice(channel.name, "failed") }
                onFailure(notice, channel.name, error, scheduled ? delay : nil)
            }
        }
        var lanes: [(name: String, continuation: AsyncStream<DeskNotice>.Continuation)] = []
        var workers: [Task<Void, Never>] = []
        for channel in channels {
            let (stream, continuation) = AsyncStream<DeskNotice>.makeStream(bufferingPolicy: .bufferingNewest(capacity))
            lanes.append((channel.name, continuation))
            workers.append(
                Task {
                    for await notice in stream {
                        await attempt(notice, channel, delays: retryDelays[...])
                        counts.state.withLock { $0.done += 1 }
                    }
                })
        }
        self.lanes = lanes
        self.workers = workers
    }

    deinit {
        for lane in lanes { lane.continuation.finish() }
    }

    /// Queues a notice on every channel; returns at once.
    public func send(_ notice: DeskNotice) {
        for lane in lanes {
            counts.state.withLock { $0.queued += 1 }
            if case .dropped(let dropped) = lane.continuation.yield(notice) {
                counts.state.withLock { $0.done += 1 }
                DeskMetrics.notice(lane.name, "dropped")
                onDropped(dropped, lane.name)
            }
        }
    }

    /// Waits until every notice queued so far was delivered (or failed for
    /// good, retries included); for tests.
    public func flush() async {
        _ = await waitForDeliveries(until: nil, hurrying: false)
    }

    /// For an orderly shutdown: every delivery waiting for a retry is tried
    /// once more at once, then this waits until all are done or `limit`
    /// passed. Returns how many deliveries were still not done.
    public func flush(within limit: Duration) async -> Int {
        await waitForDeliveries(until: ContinuousClock.now + limit, hurrying: true)
    }

    /// Waits until no delivery is left or `deadline` passed; returns how many
    /// are left. `hurrying` cancels the waits of retries (each then tries at once).
    private func waitForDeliveries(until deadline: ContinuousClock.Instant?, hurrying: Bool) async -> Int {
        while true {
            let (left, waiting) = counts.state.withLock { ($0.queued - $0.done, hurrying ? Array($0.retries.values) : []) }
            for retry in waiting { retry.cancel() }
            if left <= 0 { return 0 }
            if let deadline, ContinuousClock.now >= deadline { return left }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// One decision of a DecideApproval batch.
public struct ApprovalDecisionInput: Sendable, Hashable {
    public var approvalID: String
    public var approve: Bool
    public var comment: String
    /// The action as the approver wants it run instead; only with approve.
    public var editedAction: ProposedAction?
    /// 0: whatever step is current.
    public var expectedLevel: Int

    public init(approvalID: String, approve: Bool, comment: String, editedAction: ProposedAction?, expectedLevel: Int) {
        self.approvalID = approvalID
        self.approve = approve
        self.comment = comment
        self.editedAction = editedAction
        self.expectedLevel = expectedLevel
    }
}

/// What RequestApproval answers.
public struct ApprovalRequestOutcome: Sendable, Hashable {
    public var approval: ApprovalRecord
    public var action: PendingActionRecord
    /// False when the action already had a pending approval, which is returned.
    public var created: Bool
}

public final class ApprovalService: Sendable {
    private let store: any Store
    private let sessions: SessionService
    private let policy: PolicyHolder
    private let confirmations: ConfirmationService
    private let assessments: AssessmentService
    private let desk: DeskHub
    private let notices: NoticeSender
    private let clock: @Sendable () -> Int64

    public init(
        store: any Store, sessions: SessionService, policy: PolicyHolder, confirmations: ConfirmationService,
        assessments: AssessmentService, desk: DeskHub, notices: NoticeSender = NoticeSender(),
        clock: @escaping @Sendable () -> Int64 = SessionService.wallClockMs
    ) {
        self.store = store
        self.sessions = sessions
        self.policy = policy
        self.confirmations = confirmations
        self.assessments = assessments
        self.desk = desk
        self.notices = notices
        self.clock = clock
    }

    // MARK: RequestApproval

    /// Builds the chain for a pending action of the session (or for `action`,
    /// assessed first) and tells the first step's approvers.
    public func request(
        sessionID: String, pendingActionID: String?, action: ProposedAction?, amount amountText: String, currency: String,
        reason: String, caller: Caller
    ) async throws(HandoffError) -> ApprovalRequestOutcome {
        let reason = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !sessionID.isEmpty else { throw .invalid("session_id is required") }
        guard !reason.isEmpty else { throw .invalid("reason is required: say why the action needs approval") }
        guard reason.utf8.count <= 4096 else { throw .invalid("reason is longer than 4096 bytes") }
        guard (pendingActionID == nil) != (action == nil) else {
            throw .invalid("give exactly one of pending_action_id and action")
        }
        guard currency.isEmpty || (currency.count == 3 && currency.allSatisfy { $0.isASCII && $0.isUppercase }) else {
            throw .invalid("currency \"\(currency)\" is not an ISO 4217 code such as USD")
        }
        var amount: Decimal?
        if !amountText.isEmpty {
            let parts = amountText.split(separator: ".", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { (48...57).contains($0) } }),
                amountText.utf8.count <= 40,
                let parsed = Decimal(string: amountText, locale: Locale(identifier: "en_US_POSIX")), !parsed.isNaN
            else { throw .invalid("amount \"\(amountText)\" is not a non-negative decimal number such as 250.00") }
            amount = parsed
        }
        if action != nil, caller.role != .agent, caller.role != .admin {
            // Assessing a new action is AssessAction's, which is the agent's (and the admin's).
            throw .forbidden("only an agent or an admin proposes a new action; give the pending_action_id of an assessed one")
        }
        let pendingID: String
        if let action {
            let assessed = try await assessments.assess(sessionID: sessionID, action: action, idempotencyKey: "", caller: caller)
            guard let pending = assessed.pending else {
                throw .conflict("the policy automates this action (\(assessed.assessment.risk) risk); it needs no approval")
            }
            pendingID = pending.id
        } else {
            pendingID = pendingActionID ?? ""
        }
        let found = try await confirmations.load(pendingID, caller: caller)
        guard found.sessionID == sessionID else { throw .invalid("pending action \(pendingID) belongs to another session") }
        let proposed = (try? JSONValue(parsing: found.actionJSON)).flatMap { ProposedAction(canonicalJSON: $0) }
        if let proposed, let mismatch = policy.current.policy.approvals.mismatch(in: proposed) {
            throw .conflict("pending action \(found.id) cannot go to approval: \(mismatch)")
        }
        guard let value = amount ?? proposed?.amount else {
            throw .invalid("amount is required: neither the request nor the action names one")
        }
        // The chain follows what the action moves: a lower stated amount would buy a shorter chain.
        if let actual = proposed?.amount, value < actual {
            throw .invalid("amount \(value) is below the action's own amount \(actual)")
        }
        if let actual = proposed?.currency, !actual.isEmpty, !currency.isEmpty, currency != actual {
            throw .invalid("currency \(currency) differs from the action's \(actual)")
        }
        let money = currency.isEmpty ? (proposed?.currency ?? "") : currency
        let settings = policy.current.policy.approvals
        guard let chain = settings.chain(for: value) else {
            throw .conflict(
                "the policy has no approval chain for amount \(value) (chains start above \(settings.chains.map { "\($0.above)" }.sorted().joined(separator: ", ")))"
            )
        }
        let store = self.store
        let outcome = try await sessions.changeBeside(id: sessionID, caller: caller) { () throws(HandoffError) in
            let loaded = try await self.confirmations.load(pendingID, caller: caller)
            guard loaded.isUndecided else {
                throw .conflict("pending action \(loaded.id) is \(loaded.status), not pending")
            }
            let (approval, pending, requested) = Self.opening(
                loaded, chain: chain, amount: value, currency: money, reason: reason, caller: caller, now: self.clock(),
                stepTimeoutSeconds: settings.stepTimeoutSeconds)
            let opened: (approval: ApprovalRecord, created: Bool, events: [EventRecord])
            do throws(StoreError) {
                opened = try await store.openApproval(approval, action: pending, events: [requested])
            } catch {
                if case .versionConflict = error { throw .staleVersion("pending action \(pendingID) changed meanwhile; try again") }
                throw HandoffError(error)
            }
            self.desk.publish(opened.events)
            let current = opened.created ? pending.revisionBumped : try await self.confirmations.load(pendingID, caller: caller)
            return (ApprovalRequestOutcome(approval: opened.approval, action: current, created: opened.created), status: nil)
        }
        if outcome.created { await notifyStep(outcome.approval) }
        return outcome
    }

    /// The approval that `chain` opens for `pending`, the pending action as the
    /// approvers hold it from then on, and the `approval.requested` event.
    static func opening(
        _ pending: PendingActionRecord, chain: Policy.Approvals.Chain, amount: Decimal, currency: String, reason: String, caller: Caller,
        now: Int64, stepTimeoutSeconds: Int?
    ) -> (ApprovalRecord, PendingActionRecord, NewEvent) {
        var steps = chain.steps.enumerated().map { ApprovalStepRecord(level: $0.offset + 1, approvers: $0.element, status: .waiting) }
        activate(&steps[0], at: now, timeout: stepTimeoutSeconds)
        let approval = ApprovalRecord(
            tenant: caller.tenant, id: RecordID.make("ap-"), sessionID: pending.sessionID, pendingActionID: pending.id,
            actionJSON: pending.actionJSON, amount: "\(amount)", currency: currency, reason: reason, requester: caller.identity,
            status: .pending, steps: steps, currentLevel: 1, createdAtMs: now)
        // The chain's own deadlines govern from now on, not the action's; the
        // approvers decide it, so no confirmation or code is awaited any more.
        var pending = pending
        pending.expiresAtMs = 0
        pending.awaitingConfirmation = false
        pending.confirmationExpiresAtMs = 0
        pending.mfaCodeHash = nil
        pending.mfaExpiresAtMs = 0
        pending.updatedAtMs = now
        let requested = event(
            .approvalRequested, approval, caller.identity, now, reasoning: reason,
            [
                "level": .integer(1), "approvers": .array(steps[0].approvers.map(JSONValue.string)),
                "amount": .string(approval.amount), "currency": .string(currency),
            ])
        return (approval, pending, requested)
    }

    /// For AssessAction's escalate strategy: the approval a new pending action
    /// goes to, built to be written in the assessment's own transaction (nil
    /// when the policy does not route this action to approvers).
    public func automaticOpening(
        _ pending: PendingActionRecord, action: ProposedAction, assessment: Assessment, caller: Caller, now: Int64, policy assessedWith: Policy
    ) -> (approval: ApprovalRecord, pending: PendingActionRecord, event: NewEvent)? {
        let settings = assessedWith.approvals
        guard assessment.strategy == .escalate, settings.routeDecisionTypes.contains(assessment.decisionType),
            let amount = action.amount, let chain = settings.chain(for: amount)
        else { return nil }
        let (approval, held, requested) = Self.opening(
            pending, chain: chain, amount: amount, currency: action.currency, reason: AutomaticEscalation.reason(assessment, action),
            caller: caller, now: now, stepTimeoutSeconds: settings.stepTimeoutSeconds)
        return (approval, held, requested)
    }

    /// The pending approval that decides `pending`, if any.
    func pendingApprovalID(of pending: PendingActionRecord, caller: Caller) async throws(HandoffError) -> String? {
        do {
            return try await store.pendingApprovalID(tenant: caller.tenant, pendingActionID: pending.id)
        } catch {
            throw HandoffError(error)
        }
    }

    /// After an approval opened with an assessment committed: watchers and
    /// the first step's approvers are told.
    /// `action`: the approval's action as the caller has it already, so the
    /// notice's summary does not parse it back from JSON.
    public func announce(_ approval: ApprovalRecord, events: [EventRecord], action: ProposedAction? = nil) async {
        desk.publish(events)
        await notifyStep(approval, action: action)
    }

    // MARK: Reading

    /// One approval of the caller's tenant, its expiry applied if due.
    public func get(id: String, caller: Caller) async throws(HandoffError) -> ApprovalRecord {
        let found = try await load(id, caller: caller)
        guard found.status == .pending, found.dueAtMs > 0, found.dueAtMs <= clock() else { return found }
        try await expire(found)
        return try await load(id, caller: caller)
    }

    /// Pending approvals whose current step the caller may decide (every
    /// pending one of the tenant for an admin), soonest due first, after
    /// `after`; and where the next page starts when more may follow. The
    /// store filters by routing (the entries this policy routes to the
    /// caller), so a page reads about `limit` rows; a page may end short,
    /// with a cursor, when rows the final check refused were skipped.
    public func pending(
        sessionID: String?, after: ApprovalCursor?, limit: Int, caller: Caller
    ) async throws(HandoffError) -> (approvals: [ApprovalRecord], next: ApprovalCursor?) {
        let settings = policy.current.policy.approvals
        var query = ApprovalQuery()
        query.sessionID = sessionID
        query.after = after
        query.dueAfterMs = clock()
        query.limit = limit + 1
        if caller.role != .admin {
            query.currentApprovers = settings.entries(routingTo: caller)
            query.notRequestedBy = caller.identity
        }
        let page: [ApprovalRecord]
        do {
            page = try await store.pendingApprovals(tenant: caller.tenant, query: query)
        } catch {
            throw HandoffError(error)
        }
        let examined = page.prefix(limit)
        // The rest of the rule (never a second step by the same approver) is checked here.
        let mine = examined.filter { caller.role == .admin || Self.refusal($0, caller, settings) == nil }
        let next = page.count > limit ? examined.last.map(ApprovalCursor.init) : nil
        return (Array(mine), next)
    }

    // MARK: DecideApproval

    /// Decides each item on its own, in order; one failing does not stop the others.
    public func decide(_ items: [ApprovalDecisionInput], caller: Caller) async -> [Result<ApprovalRecord, HandoffError>] {
        var results: [Result<ApprovalRecord, HandoffError>] = []
        for item in items {
            do throws(HandoffError) {
                results.append(.success(try await decide(item, caller: caller)))
            } catch {
                results.append(.failure(error))
            }
        }
        return results
    }

    private func decide(_ item: ApprovalDecisionInput, caller: Caller) async throws(HandoffError) -> ApprovalRecord {
        guard item.comment.utf8.count <= 4096 else { throw .invalid("comment is longer than 4096 bytes") }
        guard item.expectedLevel >= 0 else { throw .invalid("expected_level must be 0 or a level number") }
        if item.editedAction != nil, !item.approve { throw .invalid("edited_action goes only with APPROVE") }
        let found = try await get(id: item.approvalID, caller: caller)
        if case (let edited?, let original?) = (item.editedAction, Self.action(found.actionJSON)), edited.toolName != original.toolName {
            throw .invalid("edited_action.tool_name must stay \(original.toolName), not \(edited.toolName)")
        }
        // An edit may lower what is approved, never raise it past the amount the chain was built for,
        // nor past what an earlier level lowered it to.
        if let edited = item.editedAction {
            let chainAmount = Decimal(string: found.amount, locale: Locale(identifier: "en_US_POSIX")) ?? 0
            let earlier = found.editedActionJSON.flatMap(Self.action)?.amount
            let approved = earlier.map { min($0, chainAmount) } ?? chainAmount
            if let amount = edited.amount, amount > approved {
                throw .invalid("edited_action.amount \(amount) exceeds the amount under approval \(approved)")
            }
            if edited.amount == nil, Self.action(found.actionJSON)?.amount != nil {
                throw .invalid("edited_action.amount is required: the action has an amount (at most \(found.amount))")
            }
            if !edited.currency.isEmpty, !found.currency.isEmpty, edited.currency != found.currency {
                throw .invalid("edited_action.currency must stay \(found.currency)")
            }
        }
        let settings = policy.current.policy.approvals
        // An edited amount is written into the tool's arguments too: the action released is one consistent thing.
        var reconciled = item
        if let edited = item.editedAction, let original = Self.action(found.editedActionJSON ?? found.actionJSON) {
            switch settings.reconcile(edited, original: original) {
            case .success(let consistent): reconciled.editedAction = consistent
            case .failure(let mismatch): throw .invalid("edited_action: \(mismatch)")
            }
        }
        let item = reconciled
        let store = self.store
        let approval = try await sessions.changeBeside(id: found.sessionID, caller: caller) { () throws(HandoffError) in
            var approval = try await self.load(item.approvalID, caller: caller)
            guard approval.status == .pending, var step = approval.currentStep else {
                throw .conflict("approval \(approval.id) is \(approval.status), not pending")
            }
            if step.expiresAtMs > 0, step.expiresAtMs <= self.clock() {
                throw .conflict("level \(step.level) of approval \(approval.id) expired undecided; the policy's expiry outcome applies")
            }
            if item.expectedLevel != 0, item.expectedLevel != step.level {
                throw .conflict("approval \(approval.id) is at level \(step.level), not \(item.expectedLevel): read it again")
            }
            if let refusal = Self.refusal(approval, caller, settings) { throw .forbidden(refusal) }
            let now = self.clock()
            step.decidedBy = caller.identity
            step.comment = item.comment
            step.decidedAtMs = now
            step.expiresAtMs = 0
            var pending = try await self.confirmations.load(approval.pendingActionID, caller: caller)
            var events = [NewEvent]()
            var detail: [String: JSONValue] = [
                "level": .integer(Int64(step.level)), "verdict": .string(item.approve ? "approve" : "reject"),
                "comment": .string(item.comment),
            ]
            if let edited = item.editedAction {
                let json = edited.canonicalJSON.serialized
                step.editedActionJSON = json
                approval.editedActionJSON = json
                detail["edited_action"] = edited.canonicalJSON
            }
            step.status = item.approve ? .approved : .rejected
            approval.steps[step.level - 1] = step
            events.append(Self.event(.approvalDecided, approval, caller.identity, now, reasoning: item.comment, detail))
            if !item.approve {
                approval.finish(.rejected, at: now)
                events.append(Self.event(.approvalRejected, approval, caller.identity, now, reasoning: item.comment, [:]))
                Self.settle(&pending, release: false, at: now)
            } else if step.level < approval.steps.count {
                approval.currentLevel = step.level + 1
                Self.activate(&approval.steps[step.level], at: now, timeout: settings.stepTimeoutSeconds)
                events.append(
                    Self.event(
                        .approvalRequested, approval, caller.identity, now, reasoning: approval.reason,
                        [
                            "level": .integer(Int64(approval.currentLevel)),
                            "approvers": .array(approval.steps[step.level].approvers.map(JSONValue.string)),
                        ]))
            } else {
                // Fail closed: an action whose amount argument disagrees with its amount is never released.
                if let released = Self.action(approval.editedActionJSON ?? pending.actionJSON), let mismatch = settings.mismatch(in: released) {
                    throw .conflict(
                        "approval \(approval.id) cannot release its action: \(mismatch); approve with edited_action whose arguments agree, or reject")
                }
                approval.finish(.approved, at: now)
                events.append(Self.event(.approvalApproved, approval, caller.identity, now, reasoning: item.comment, [:]))
                if let edited = approval.editedActionJSON, let proposed = Self.action(edited) {
                    // The released action is the edited one: a new binding, so
                    // a token for the original could not run it.
                    pending.actionJSON = edited
                    pending.actionHash = proposed.bindingHash(sessionVersion: pending.assessedVersion)
                }
                Self.settle(&pending, release: true, at: now)
            }
            if pending.status != .pending {
                pending.decidedBy = caller.identity
                pending.decisionComment = item.comment
                if pending.status == .released {
                    pending.releaseTokenHash = Array(SHA256.hash(data: Data(self.confirmations.releaseToken(for: pending).utf8)))
                }
                events.append(
                    self.confirmations.event(
                        pending.status == .released ? .actionReleased : .actionRejected, pending, caller, now, ["by": .string("approval")]))
            }
            do throws(StoreError) {
                let written = try await store.updateApproval(
                    approval, action: pending.status == .pending ? nil : pending, events: Self.withFinalState(events, approval))
                self.desk.publish(written.events)
                if let action = written.action { self.confirmations.decisions.publish(action) }
                return (written.approval, status: written.sessionStatus)
            } catch {
                if case .versionConflict = error { throw .staleVersion("approval \(item.approvalID) changed meanwhile; read it again and retry") }
                throw HandoffError(error)
            }
        }
        if approval.status == .pending { await notifyStep(approval) } else { await notifyOutcome(approval) }
        return approval
    }

    // MARK: Expiry and SLA sweeps

    /// Applies the expiry outcome to every approval step due by now, and
    /// records every ticket SLA breach not yet recorded. Returns how many of each.
    @discardableResult
    public func sweep(limit: Int = 500) async throws(HandoffError) -> (approvals: Int, breaches: Int) {
        let now = clock()
        let due: [ApprovalRecord]
        let breached: [TicketRecord]
        do {
            due = try await store.dueApprovals(now: now, limit: limit)
            breached = try await store.unrecordedSLABreaches(now: now, limit: limit)
        } catch {
            throw HandoffError(error)
        }
        var expired = 0
        for approval in due {
            do throws(HandoffError) {
                try await expire(approval)
                expired += 1
            } catch {
                continue  // changed meanwhile (decided, or expired by a reader): the next sweep sees it as it is
            }
        }
        var breaches = 0
        for ticket in breached {
            if (try? await recordBreach(ticket)) != nil { breaches += 1 }
        }
        return (expired, breaches)
    }

    private func recordBreach(_ found: TicketRecord) async throws(HandoffError) {
        let caller = Caller.system(found.tenant)
        let store = self.store
        try await sessions.changeBeside(id: found.sessionID, caller: caller) { () throws(HandoffError) -> (Void, status: SessionRecord.Status?) in
            let current: TicketRecord?
            do throws(StoreError) {
                current = try await store.ticket(tenant: found.tenant, id: found.id)
            } catch {
                throw HandoffError(error)
            }
            guard var ticket = current, ticket.status == .open, !ticket.slaBreachRecorded else { return ((), status: nil) }
            ticket.slaBreachRecorded = true
            let now = self.clock()
            let event = NewEvent(
                action: .ticketSLABreached, actor: Caller.systemIdentity, reasoning: "not claimed within its SLA",
                detailsJSON: JSONValue.object([
                    "ticket_id": .string(ticket.id), "priority": .integer(Int64(ticket.priority)),
                    "sla_deadline_unix_ms": .integer(ticket.slaDeadlineMs), "late_by_ms": .integer(now - ticket.slaDeadlineMs),
                    "ticket_state": ticket.deskSnapshot,
                ]).serialized,
                occurredAtMs: now)
            do throws(StoreError) {
                let written = try await store.updateTicket(ticket, turn: nil, events: [event])
                self.desk.publish(written.events)
                return ((), status: written.sessionStatus)
            } catch {
                throw HandoffError(error)
            }
        }
    }

    /// The policy's expiry outcome for an approval whose current step is due.
    private func expire(_ found: ApprovalRecord) async throws(HandoffError) {
        let caller = Caller.system(found.tenant)
        let settings = policy.current.policy.approvals
        let store = self.store
        let approval = try await sessions.changeBeside(id: found.sessionID, caller: caller) {
            () throws(HandoffError) -> (ApprovalRecord?, status: SessionRecord.Status?) in
            var approval = try await self.load(found.id, caller: caller)
            let now = self.clock()
            guard approval.status == .pending, var step = approval.currentStep, step.expiresAtMs > 0, step.expiresAtMs <= now else {
                return (nil, status: nil)
            }
            step.status = .expired
            step.decidedAtMs = now
            step.expiresAtMs = 0
            approval.steps[step.level - 1] = step
            var events = [
                Self.event(
                    .approvalExpired, approval, Caller.systemIdentity, now, reasoning: "not decided in time",
                    [
                        "level": .integer(Int64(step.level)), "on_expiry": .string(settings.onExpiry.rawValue),
                    ])
            ]
            var pending: PendingActionRecord?
            if settings.onExpiry == .escalate, step.level < approval.steps.count {
                approval.currentLevel = step.level + 1
                Self.activate(&approval.steps[step.level], at: now, timeout: settings.stepTimeoutSeconds)
                events.append(
                    Self.event(
                        .approvalRequested, approval, Caller.systemIdentity, now, reasoning: approval.reason,
                        [
                            "level": .integer(Int64(approval.currentLevel)),
                            "approvers": .array(approval.steps[step.level].approvers.map(JSONValue.string)),
                            "after_expiry_of_level": .integer(Int64(step.level)),
                        ]))
            } else {
                approval.finish(.expired, at: now)
                var action = try await self.confirmations.load(approval.pendingActionID, caller: caller)
                if action.isUndecided {
                    action.status = .expired
                    action.decidedBy = Caller.systemIdentity
                    action.awaitingConfirmation = false
                    action.updatedAtMs = now
                    events.append(self.confirmations.event(.actionExpired, action, caller, now, ["by": .string("approval")]))
                    pending = action
                }
            }
            do throws(StoreError) {
                let written = try await store.updateApproval(approval, action: pending, events: Self.withFinalState(events, approval))
                self.desk.publish(written.events)
                if let action = written.action { self.confirmations.decisions.publish(action) }
                return (written.approval, status: written.sessionStatus)
            } catch {
                if case .versionConflict = error { throw .staleVersion("approval \(found.id) changed meanwhile") }
                throw HandoffError(error)
            }
        }
        guard let approval else { return }
        if approval.status == .pending { await notifyStep(approval) } else { await notifyOutcome(approval) }
    }

    // MARK: Helpers

    private func load(_ id: String, caller: Caller) async throws(HandoffError) -> ApprovalRecord {
        guard !id.isEmpty else { throw .invalid("approval_id is required") }
        let found: ApprovalRecord?
        do {
            found = try await store.approval(tenant: caller.tenant, id: id)
        } catch {
            throw HandoffError(error)
        }
        guard let found else { throw .notFound("approval \(id) not found") }
        return found
    }

    /// Why the caller may not decide the approval's current step, or nil.
    static func refusal(_ approval: ApprovalRecord, _ caller: Caller, _ settings: Policy.Approvals) -> String? {
        guard let step = approval.currentStep else { return "approval \(approval.id) is not pending" }
        if caller.identity == approval.requester {
            return "nobody decides an approval they requested (\(approval.id) was requested by \(caller.identity))"
        }
        if let earlier = approval.steps.first(where: { $0.level < step.level && $0.decidedBy == caller.identity }) {
            return "you decided level \(earlier.level) of approval \(approval.id); level \(step.level) needs another approver"
        }
        if !settings.routes(step.approvers, to: caller) {
            return "level \(step.level) of approval \(approval.id) is routed to \(step.approvers.joined(separator: ", ")), not to \(caller.identity)"
        }
        return nil
    }

    static func activate(_ step: inout ApprovalStepRecord, at now: Int64, timeout: Int?) {
        step.status = .pending
        step.activatedAtMs = now
        step.expiresAtMs = timeout.map { now + Int64($0) * 1000 } ?? 0
    }

    static func settle(_ action: inout PendingActionRecord, release: Bool, at now: Int64) {
        action.status = release ? .released : .rejected
        action.awaitingConfirmation = false
        action.mfaCodeHash = nil
        action.updatedAtMs = now
    }

    static func action(_ json: String) -> ProposedAction? {
        (try? JSONValue(parsing: json)).flatMap { ProposedAction(canonicalJSON: $0) }
    }

    static func event(
        _ name: EventAction, _ approval: ApprovalRecord, _ actor: String, _ now: Int64, reasoning: String, _ extra: [String: JSONValue]
    ) -> NewEvent {
        var details = extra
        details["approval_id"] = .string(approval.id)
        details["pending_action_id"] = .string(approval.pendingActionID)
        details["status"] = .string(approval.status.rawValue)
        details["approval_state"] = approval.deskSnapshot
        return NewEvent(action: name, actor: actor, reasoning: reasoning, detailsJSON: JSONValue.object(details).serialized, occurredAtMs: now)
    }

    /// `events` with the approval's snapshot as it is after the whole change
    /// (a decision that also advances or ends the chain, an expiry that moves
    /// it on): what a replay of any of them shows.
    static func withFinalState(_ events: [NewEvent], _ approval: ApprovalRecord) -> [NewEvent] {
        events.map { event in
            guard event.detailsJSON.contains("\"approval_id\":\"\(approval.id)\"") else { return event }
            return StoreRules.annotated(event, ["approval_state": approval.deskSnapshot])
        }
    }

    private static func summary(_ approval: ApprovalRecord, action known: ProposedAction? = nil) -> String {
        let proposed = approval.editedActionJSON == nil ? known ?? action(approval.actionJSON) : action(approval.editedActionJSON!)
        let what = proposed.map { $0.description.isEmpty ? $0.toolName : "\($0.description) (\($0.toolName))" } ?? "an action"
        return "\(what), \(approval.amount) \(approval.currency)".trimmingCharacters(in: .whitespaces) + ": \(approval.reason)"
    }

    private func notifyStep(_ approval: ApprovalRecord, action: ProposedAction? = nil) async {
        guard let step = approval.currentStep else { return }
        await send(
            DeskNotice(
                kind: EventAction.approvalRequested.rawValue, tenant: approval.tenant, approvalID: approval.id, sessionID: approval.sessionID,
                level: step.level, recipients: step.approvers, summary: Self.summary(approval, action: action), revision: approval.revision,
                occurredAtMs: clock()))
    }

    private func notifyOutcome(_ approval: ApprovalRecord) async {
        await send(
            DeskNotice(
                kind: "approval.\(approval.status.rawValue)", tenant: approval.tenant, approvalID: approval.id, sessionID: approval.sessionID,
                level: 0, recipients: [approval.requester], summary: Self.summary(approval), revision: approval.revision,
                occurredAtMs: clock()))
    }

    private func send(_ notice: DeskNotice) async {
        notices.send(notice)
    }
}

extension PendingActionRecord {
    /// As the store returns it after one write.
    var revisionBumped: PendingActionRecord {
        var copy = self
        copy.revision += 1
        return copy
    }
}
