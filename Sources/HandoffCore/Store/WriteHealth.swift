// Handoff — whether a store's writes fail for a reason of the store (a full
// volume, an I/O error, an unreachable database server), told to its operator
// once per episode: every store keeps one.

import Synchronization

/// Whether the store's writes fail, for its operator: transitions only.
public final class WriteHealth: Sendable {
    public init() {}

    public enum Change: Sendable {
        /// Writes fail from now on; the first cause (its text is for logs).
        case failing(StoreError)
        /// A write succeeded again after `failed` writes had failed.
        case recovered(failed: Int)
    }

    /// The observer, in a class: a closure kept in the Mutex's tuple was
    /// re-wrapped in a reabstraction thunk on every `withLock` that wrote the
    /// tuple (the generic storage holds functions at another abstraction than
    /// the closure's), one thunk around the last on each successful write:
    /// memory grew by every write (about 2.8 KB a soak story), and releasing
    /// the chain at exit overflowed the stack (handoffd segfaulted on SIGTERM
    /// after a five-minute soak). WriteHealthTests keeps it from coming back.
    private final class Observer: Sendable {
        let tell: @Sendable (Change) -> Void
        init(_ tell: @escaping @Sendable (Change) -> Void) { self.tell = tell }
    }

    private let state = Mutex<(failed: Int, observer: Observer?)>((0, nil))

    public func observe(_ observer: @escaping @Sendable (Change) -> Void) {
        state.withLock { $0.observer = Observer(observer) }
    }

    /// Whether writes fail now.
    public var isFailing: Bool { state.withLock { $0.failed > 0 } }

    public func record(_ error: StoreError) {
        switch error {
        case .full, .failure: break
        default: return  // a refusal of the write itself: the store is fine
        }
        let tell = state.withLock { state -> Observer? in
            state.failed += 1
            return state.failed == 1 ? state.observer : nil
        }
        tell?.tell(.failing(error))
    }

    public func succeeded() {
        let (failed, tell) = state.withLock { state -> (Int, Observer?) in
            let failed = state.failed
            state.failed = 0
            return (failed, failed > 0 ? state.observer : nil)
        }
        tell?.tell(.recovered(failed: failed))
    }
}
