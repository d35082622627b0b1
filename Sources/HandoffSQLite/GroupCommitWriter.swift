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
        var jobs: [Job] = []
        /// The drain loop is scheduled or running; the next submit must not start another.
        var draining = false
        var commits = 0
    }

    private let pool: DatabasePool
    private let queue = Mutex(Queue())
    /// Detached writes queued and not yet answered.
    private let detached = Atomic<Int>(0)
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

    /// Runs `body` in the next group transaction; returns after it committed.
    func submit<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            enqueue(body) { continuation.resume(with: $0) }
        }
    }

    /// Queues `body` for the next group transaction and returns at once;
    /// `completion` is told its result after that transaction committed (or
    /// failed). Writes queued or submitted later commit after it, and reads
    /// that `settle()` first see it.
    func submitDetached<T: Sendable>(
        _ body: @escaping @Sendable (Database) throws -> T, completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        detached.add(1, ordering: .sequentiallyConsistent)
        enqueue(body) { result in
            completion(result)
            self.detached.subtract(1, ordering: .releasing)
        }
    }

    /// Returns once every write detached before the call committed (or
    /// failed): at once when there is none, which is the common case.
    func settle() async {
        guard detached.load(ordering: .sequentiallyConsistent) > 0 else { return }
        // Jobs commit in the order they were queued: when this one's
        // transaction committed, so had every earlier one's.
        _ = try? await submit { _ in () }
    }

    private func enqueue<T: Sendable>(
        _ body: @escaping @Sendable (Database) throws -> T, answer: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
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
        let start = queue.withLock { queue -> Bool in
            queue.jobs.append(job)
            if queue.draining { return false }
            queue.draining = true
            return true
        }
        if start { worker.async { self.drain() } }
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
            let batch = queue.withLock { queue -> [Job] in
                guard !queue.jobs.isEmpty else {
                    queue.draining = false
                    return []
                }
                let batch = Array(queue.jobs.prefix(maximumBatch))
                queue.jobs.removeFirst(batch.count)
                return batch
            }
            if batch.isEmpty { return }
            commit(batch)
        }
    }

    /// Commits `batch` in one transaction. A write that threw after changing
    /// rows rolls the whole transaction back; it is refused, and the rest run
    /// once more in a new transaction, each in a savepoint of its own, so a
    /// batch takes at most two passes. (A savepoint around every write on
    /// the first pass too cost two more statements per write on this thread,
    /// the one that bounds durable writes: without them handoff-bench store
    /// wrote 24,182 and 24,457/s where it wrote 22,515 and 21,787/s, alternated.)
    private func commit(_ batch: [Job]) {
        var jobs = batch
        var isolated = false
        while !jobs.isEmpty {
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
                for answer in answers { answer() }
                return
            } catch let undo as Undo {
                jobs.remove(at: undo.index).fail(undo.error)
                isolated = true
            } catch {
                // The commit itself failed: nothing of the batch is durable.
                for job in jobs { job.fail(error) }
                return
            }
        }
    }
}
