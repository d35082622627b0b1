// Handoff — group commit: writes that arrive while a transaction is being
// committed wait, then share the next one, so throughput is not one fsync
// per call. Each write runs in its own savepoint (a refused write rolls back
// alone) and is answered only after the shared transaction committed.

import GRDB

actor WriteBatcher {
    /// One queued write: runs inside the batch's transaction and returns how
    /// to answer its caller once the batch committed.
    private struct Job: Sendable {
        let execute: @Sendable (Database) -> @Sendable () -> Void
        let fail: @Sendable (any Error) -> Void
    }

    private let pool: DatabasePool
    private var queue: [Job] = []
    private var committing = false
    /// Transactions committed so far (tests prove batching with it).
    private(set) var commits = 0
    /// The most writes one transaction carries.
    private let maximumBatch: Int

    init(pool: DatabasePool, maximumBatch: Int = 256) {
        self.pool = pool
        self.maximumBatch = maximumBatch
    }

    /// Runs `body` in the next group transaction; returns after it committed.
    func submit<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            queue.append(Job(
                execute: { db in
                    do {
                        var value: T?
                        try db.inSavepoint {
                            value = try body(db)
                            return .commit
                        }
                        let result = value!
                        return { continuation.resume(returning: result) }
                    } catch {
                        return { continuation.resume(throwing: error) }
                    }
                },
                fail: { continuation.resume(throwing: $0) }))
            if !committing {
                committing = true
                // The commit loop runs while writes keep arriving and ends when
                // the queue is empty; the next submit starts it again.
                Task { await self.commitLoop() }
            }
        }
    }

    private func commitLoop() async {
        while !queue.isEmpty {
            let batch = Array(queue.prefix(maximumBatch))
            queue.removeFirst(batch.count)
            do {
                let answers = try await pool.write { db in batch.map { $0.execute(db) } }
                commits += 1
                for answer in answers { answer() }
            } catch {
                // The commit itself failed: nothing of the batch is durable.
                for job in batch { job.fail(error) }
            }
        }
        committing = false
    }
}
