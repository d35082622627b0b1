// Handoff — after a decision: waiting for it (WaitForDecision) and reporting
// the execution of a released action (ReportExecution). A decision is durable
// before any waiter hears of it; a waiter that reconnects asks again and gets
// it from the store.

import Crypto
import Foundation
public import HandoffCore
import HandoffPolicy
import Synchronization

/// Tells waiters, in this process, that a pending action was settled (after the commit).
public final class DecisionHub: Sendable {
    private struct Key: Hashable, Sendable {
        let tenant: TenantID
        let id: String
    }

    private let board = NoticeBoard<Key, PendingActionRecord>(bufferLimit: nil)

    public init() {}

    /// Updates of these actions from now on; call `cancel` when done.
    func subscribe(tenant: TenantID, ids: [String]) -> (stream: AsyncStream<PendingActionRecord>, cancel: @Sendable () -> Void) {
        let (stream, _, cancel) = board.subscribe(ids.map { Key(tenant: tenant, id: $0) })
        return (stream, cancel)
    }

    /// WaitForDecision calls waiting now.
    public var waiterCount: Int { board.subscriberCount }

    /// Called after a settled action was committed; `committedHere` false
    /// when it was read back from the store (it may have been counted already).
    func publish(_ action: PendingActionRecord, committedHere: Bool = true) {
        guard action.isSettled else { return }
        if committedHere { DeskMetrics.decided(action) }
        board.post(action, to: Key(tenant: action.tenant, id: action.id))
    }
}

/// One settled action as WaitForDecision reports it.
public struct Decision: Sendable, Hashable {
    public var action: PendingActionRecord
    /// Set when the action is released (derived again from the server key: never stored).
    public var releaseToken: String?
}

/// What ReportExecution answers.
public struct ExecutionReport: Sendable, Hashable {
    public var duplicate: Bool
    public var action: PendingActionRecord
}

extension ConfirmationService {
    /// The release token of an action: HMAC-SHA256 with the server key over its
    /// tenant, id and binding hash. The server can give it again to a waiter
    /// that reconnects without ever storing it (only its SHA-256 is kept, to find
    /// the action from the token).
    func releaseToken(for action: PendingActionRecord) -> String {
        let message = "handoff.release.v1:\(action.tenant.rawValue):\(action.id):" + action.actionHash.hexString
        return HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: multiFactor.key).hexString
    }

    /// Streams each listed action's decision as it is settled (at once for
    /// those already settled), then finishes.
    /// - Throws: `.invalid` (not 1 to 100 ids), `.notFound` (an unknown id) before anything is streamed.
    public func waitForDecision(pendingActionIDs: [String], caller: Caller) async throws(HandoffError) -> AsyncThrowingStream<Decision, any Error> {
        var ids: [String] = []
        for id in pendingActionIDs where !ids.contains(id) { ids.append(id) }
        guard (1...100).contains(ids.count) else {
            throw .invalid("pending_action_ids must hold 1 to 100 ids, not \(ids.count)")
        }
        // Subscribe before reading, so a decision made in between is not missed.
        let (updates, cancel) = decisions.subscribe(tenant: caller.tenant, ids: ids)
        var current: [String: PendingActionRecord] = [:]
        for id in ids {
            do {
                current[id] = try await load(id, caller: caller)
            } catch {
                cancel()
                throw error
            }
        }
        let (stream, continuation) = AsyncThrowingStream<Decision, any Error>.makeStream()
        let task = Task {
            var waiting = Set(ids)
            func send(_ action: PendingActionRecord) {
                guard waiting.remove(action.id) != nil else { return }
                continuation.yield(Decision(action: action, releaseToken: action.status == .released ? self.releaseToken(for: action) : nil))
            }
            for id in ids {
                guard var action = current[id] else { continue }
                if action.isSettled {
                    send(action)
                } else if action.hasExpired(at: self.clock()) {
                    if let settled = try? await self.expireNow(action.id, caller: caller) { action = settled }
                    if action.isSettled { send(action) }
                }
            }
            // One poller: decisions committed elsewhere (another process on
            // the same store) are read from the store every few seconds, and
            // expiries nobody else notices are applied when due. Never a sleep
            // longer than the poll interval: a cancelled Task.sleep frees its
            // timer only at its deadline (on Linux, a dispatch_after), so a
            // timer per action until its expiry (an hour) kept about 1 KB per
            // wait for that hour (found with heaptrack under the soak).
            let undecided = Mutex(waiting)
            let dues = ids.reduce(into: [String: Int64]()) { dues, id in
                if waiting.contains(id), let due = current[id]?.nextExpiryMs { dues[id] = due }
            }
            let poller = Task {
                let pollMs = Int64(self.decisionPollInterval.components.seconds * 1000)
                while !Task.isCancelled {
                    let left = undecided.withLock { $0 }
                    let now = self.clock()
                    let soonest = left.compactMap { dues[$0] }.min()
                    let untilDue = soonest.map { $0 - now + 5 } ?? pollMs
                    try? await Task.sleep(for: .milliseconds(max(1, min(pollMs, untilDue))))
                    let checked = self.clock()
                    for id in undecided.withLock({ $0 }) where !Task.isCancelled {
                        guard let stored = try? await self.load(id, caller: caller) else { continue }
                        if stored.isSettled {
                            self.decisions.publish(stored, committedHere: false)
                        } else if (dues[id].map { $0 <= checked } ?? false) || stored.hasExpired(at: checked) {
                            // Due at the start, or since (a confirmation or a code asked meanwhile has its own expiry).
                            _ = try? await self.expireNow(id, caller: caller)
                        }
                    }
                }
            }
            defer { poller.cancel() }
            if !waiting.isEmpty {
                for await action in updates {
                    send(action)
                    let left = waiting
                    undecided.withLock { $0 = left }
                    if waiting.isEmpty { break }
                }
            }
            cancel()
            continuation.finish()
        }
        continuation.onTermination = { _ in
            task.cancel()
            cancel()
        }
        return stream
    }

    /// Marks an undecided action expired if its time is up; returns it as stored.
    @discardableResult
    func expireNow(_ id: String, caller: Caller) async throws(HandoffError) -> PendingActionRecord {
        do {
            return try await decide(id, caller: caller, whileApproving: true) { (action, _) throws(HandoffError) in (action, status: nil) }
        } catch {
            // decide refuses an expired action after recording the expiry: read what it wrote.
            return try await load(id, caller: caller)
        }
    }

    /// Records the execution of a released action, once.
    public func reportExecution(
        releaseToken: String, resultJSON: String, idempotencyKey: String, errorMessage: String, caller: Caller
    ) async throws(HandoffError) -> ExecutionReport {
        guard !releaseToken.isEmpty, releaseToken.utf8.count <= 128 else { throw .invalid("release_token is required") }
        guard !idempotencyKey.isEmpty, idempotencyKey.utf8.count <= 128 else {
            throw .invalid("idempotency_key is required (1 to 128 bytes)")
        }
        if !resultJSON.isEmpty {
            do {
                _ = try JSONValue(parsing: resultJSON)
            } catch {
                throw .invalid("result_json is \(error.message)")
            }
        }
        let hash = Array(SHA256.hash(data: Data(releaseToken.utf8)))
        let found: PendingActionRecord?
        do {
            found = try await store.pendingAction(tenant: caller.tenant, releaseTokenHash: hash)
        } catch {
            throw HandoffError(error)
        }
        guard let found else { throw .conflict("this release token was never issued, or its action was not released") }
        return try await decide(found.id, caller: caller) { (stored, now) throws(HandoffError) in
            var action = stored
            if action.status == .executed {
                guard action.executionKey == idempotencyKey else {
                    throw .conflict("pending action \(action.id) was already executed under another idempotency key")
                }
                return (ExecutionReport(duplicate: true, action: action), status: nil)
            }
            guard action.status == .released else {
                throw .conflict("pending action \(action.id) is \(action.status), not released")
            }
            // Fail closed: the stored action must still be the one released.
            let proposed = (try? JSONValue(parsing: action.actionJSON)).flatMap { ProposedAction(canonicalJSON: $0) }
            guard let proposed, proposed.bindingHash(sessionVersion: action.assessedVersion) == action.actionHash else {
                throw .conflict("pending action \(action.id) no longer matches what was released; it needs a new decision")
            }
            action.status = .executed
            action.executedAtMs = now
            action.executionKey = idempotencyKey
            action.resultJSON = resultJSON.isEmpty ? nil : resultJSON
            action.executionError = errorMessage.isEmpty ? nil : errorMessage
            action.updatedAtMs = now
            var details: [String: JSONValue] = ["idempotency_key": .string(idempotencyKey)]
            details["result"] = resultJSON.isEmpty ? .null : (try? JSONValue(parsing: resultJSON)) ?? .null
            details["error"] = errorMessage.isEmpty ? .null : .string(errorMessage)
            let (written, status) = try await self.write(action, events: [self.event(.actionExecuted, action, caller, now, details)])
            return (ExecutionReport(duplicate: false, action: written), status: status)
        }
    }
}
