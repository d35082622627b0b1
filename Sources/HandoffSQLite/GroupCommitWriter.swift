// Handoff — group commit: writes that arrive while a transaction is being
// committed wait, then share the next one, so throughput is not one fsync
// per call. A refused write leaves nothing behind in the shared transaction
// (see `commit`), and each write is answered only after that transaction
// committed.
//
// One dispatch queue runs the transactions synchronously, so a write costs
// one wake-up of that queue and one resumption of the caller, and nothing
// else: no actor, no task, no second queue between the caller and SQLite
// (each of those is a thread hop of about 20 µs on these machines).

import Dispatch
import GRDB
import Synchronization

final class GroupCommitWriter: Sendable {
    /// One queued write: runs inside the batch's transaction and says how
    /// to answer its caller once the batch committed.
    private struct Job: Sendable {
        /// Runs the write; with `isolated`, in a savepoint of its own.
        let execute: @Sendable (Database, _ isolated: Bool) -> Outcome
        let fail: @Sendable (any Error) -> Void
    }

    private enum Outcome {
        /// Done, or refused before it changed anything: answer after the commit.
        case answer(@Sendable () -> Void)
        /// Threw after changing rows: those changes must not commit.
        case undo(any Error)
    }

    /// Ends a batch's transaction without committing it.
    private struct Undo: Error {
        let index: Int
        let error: any Error
    }

    private struct Queue {
        var jobs: [(ticket: Int, job: Job)] = []
        /// The drain loop is scheduled or running; the next submit must not start another.
        var draining = false
        var commits = 0
        /// The ticket of the last job queued; tickets count up from 1.
        var lastTicket = 0
        /// Every job up to this ticket has been answered (batches end in queue order).
        var finishedThrough = 0
        /// The ticket of the last detached job, and how many are not answered yet.
        var lastDetached = 0
        var detachedWaiting = 0
        /// Reads waiting (`settle`) until `finishedThrough` reaches their ticket.
        var settling: [(ticket: Int, continuation: CheckedContinuation<Void, Never>)] = []
        /// Callers waiting (`waitForDetachedRoom`) for a detached job to be answered.
        var waitingForRoom: [CheckedContinuation<Void, Never>] = []
    }

    private let pool: DatabasePool
    private let queue = Mutex(Queue())
    private let worker = DispatchQueue(label: "handoff.sqlite.group-commit", qos: .userInitiated)
    /// The most writes one transaction carries.
    private let maximumBatch: Int

    init(pool: DatabasePool, maximumBatch: Int = 256) {
        self.pool = pool
        self.maximumBatch = maximumBatch
    }

    /// Transactions committed so far (tests prove batching with it).
    var commits: Int { queue.withLock { $0.commits } }

    /// Writes queued and not yet taken into a transaction (for tests).
    var waiting: Int { queue.withLock { $0.jobs.count } }

    /// Reads waiting in `settle` (for tests).
    var settling: Int { queue.withLock { $0.settling.count } }

    /// Callers waiting in `waitForDetachedRoom` (for tests).
    var waitingForRoom: Int { queue.withLock { $0.waitingForRoom.count } }

    /// Runs `body` in the next group transaction; returns after it committed.
    func submit<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            enqueue(body) { continuation.resume(with: $0) }
        }
    }

    /// Queues `body` for the next group transaction and returns true at
    /// once; `completion` is told its result after that transaction committed
    /// (or failed). Writes queued later commit after it, and reads that
    /// `settle()` first see it. Returns false, queueing nothing, when
    /// `limit` detached writes wait already: the caller then waits for its
    /// commit instead, so a slow disk slows callers down rather than grow
    /// what a crash could take.
    func submitDetached<T: Sendable>(
        limit: Int, _ body: @escaping @Sendable (Database) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) -> Bool {
        enqueue(detachedLimit: limit, body) { result in
            completion(result)
            // One place freed, one caller told: telling all of them at once
            // sent all but one back to a full queue.
            let next = self.queue.withLock { queue -> CheckedContinuation<Void, Never>? in
                queue.detachedWaiting -= 1
                return queue.waitingForRoom.isEmpty ? nil : queue.waitingForRoom.removeFirst()
            }
            next?.resume()
        }
    }

    /// Returns once fewer than `limit` detached jobs wait (at once if so
    /// already); others may take the room first.
    func waitForDetachedRoom(limit: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let room = queue.withLock { queue -> Bool in
                if queue.detachedWaiting < limit { return true }
                queue.waitingForRoom.append(continuation)
                return false
            }
            if room { continuation.resume() }
        }
    }

    /// Returns once every detached write queued before the call has been
    /// answered: at once, without a continuation, when there is none (every
    /// store read of events calls this).
    func settle() async {
        let target = queue.withLock { $0.lastDetached > $0.finishedThrough ? $0.lastDetached : nil }
        guard let target else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = queue.withLock { queue -> Bool in
                if target <= queue.finishedThrough { return true }
                queue.settling.append((target, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Queues a job; with `detachedLimit`, only if fewer detached jobs wait.
    @discardableResult
    private func enqueue<T: Sendable>(
        detachedLimit: Int? = nil, _ body: @escaping @Sendable (Database) throws -> T,
        answer: @escaping @Sendable (Result<T, any Error>) -> Void
    ) -> Bool {
        let job = Job(
            execute: { db, isolated in
                if isolated {
                    do {
                        let result = try Self.inSavepoint(db) { try body(db) }
                        return .answer { answer(.success(result)) }
                    } catch {
                        return .answer { answer(.failure(error)) }
                    }
                }
                let before = db.totalChangesCount
                do {
                    let result = try body(db)
                    return .answer { answer(.success(result)) }
                } catch {
                    // Most refusals (a stale version, no such session)
                    // come before the first change: nothing to undo.
                    // Unless SQLite itself ended the transaction (an I/O
                    // error, a full disk): the rest must run in a new one.
                    if db.totalChangesCount == before, db.isInsideTransaction {
                        return .answer { answer(.failure(error)) }
                    }
                    return .undo(error)
                }
            },
            fail: { answer(.failure($0)) })
        let (queued, start) = queue.withLock { queue -> (Bool, Bool) in
            if let detachedLimit {
                guard queue.detachedWaiting < detachedLimit else { return (false, false) }
                queue.detachedWaiting += 1
            }
            queue.lastTicket += 1
            if detachedLimit != nil { queue.lastDetached = queue.lastTicket }
            queue.jobs.append((queue.lastTicket, job))
            if queue.draining { return (true, false) }
            queue.draining = true
            return (true, true)
        }
        if start { worker.async { self.drain() } }
        return queued
    }

    /// Runs `body` in a savepoint of the batch's transaction: if it throws,
    /// its changes roll back alone. Cached statements: GRDB's `inSavepoint`
    /// prepares its SAVEPOINT and RELEASE anew each time.
    private static func inSavepoint<T>(_ db: Database, _ body: () throws -> T) throws -> T {
        try db.cachedStatement(sql: "SAVEPOINT handoff_write").execute()
        let result: T
        do {
            result = try body()
        } catch {
            try db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT handoff_write").execute()
            try db.cachedStatement(sql: "RELEASE SAVEPOINT handoff_write").execute()
            throw error
        }
        try db.cachedStatement(sql: "RELEASE SAVEPOINT handoff_write").execute()
        return result
    }

    /// Commits batches while writes keep arriving; ends when none wait.
    private func drain() {
        while true {
            let batch = queue.withLock { queue -> [(ticket: Int, job: Job)] in
                guard !queue.jobs.isEmpty else {
                    queue.draining = false
                    return []
                }
                let batch = Array(queue.jobs.prefix(maximumBatch))
                queue.jobs.removeFirst(batch.count)
                return batch
            }
            guard let last = batch.last?.ticket else { return }
            commit(batch.map(\.job))
            // Every job of this batch and of the ones before is answered.
            let settled = queue.withLock { queue -> [CheckedContinuation<Void, Never>] in
                queue.finishedThrough = last
                let ready = queue.settling.filter { $0.ticket <= last }
                queue.settling.removeAll { $0.ticket <= last }
                return ready.map(\.continuation)
            }
            for read in settled { read.resume() }
        }
    }

    /// Commits `batch` in one transaction. A write that threw after changing
    /// rows rolls the whole transaction back; it is refused, and the rest run
    /// once more in a new transaction, each in a savepoint of its own, so a
    /// batch takes at most two passes. (Savepoints on the first pass too cost
    /// two statements per write on the thread that bounds durable writes: docs/STORAGE.md.)
    private func commit(_ batch: [Job]) {
        var jobs = batch
        var isolated = false
        while !jobs.isEmpty {
            let started = ContinuousClock.now
            do {
                let answers = try pool.write { db in
                    try jobs.indices.map { index -> @Sendable () -> Void in
                        switch jobs[index].execute(db, isolated) {
                        case .answer(let answer): return answer
                        case .undo(let error): throw Undo(index: index, error: error)
                        }
                    }
                }
                queue.withLock { $0.commits += 1 }
                StoreMetrics.committed(writes: jobs.count, took: ContinuousClock.now - started)
                for answer in answers { answer() }
                return
            } catch let undo as Undo {
                jobs.remove(at: undo.index).fail(undo.error)
                isolated = true
            } catch {
                // The commit itself failed: nothing of the batch is durable.
                StoreMetrics.failed(error)
                for job in jobs { job.fail(error) }
                return
            }
        }
    }
}
