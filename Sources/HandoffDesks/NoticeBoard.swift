// Handoff — in-process notices after a commit: subscribers of a key get what
// is posted to it, as an AsyncStream. With a buffer limit, a subscriber that
// does not read is marked lagged and its stream ends (it catches up from the
// store); without one, notices wait for it.

import Synchronization

final class NoticeBoard<Key: Hashable & Sendable, Notice: Sendable>: Sendable {
    /// One subscriber: its stream's continuation and whether it fell behind.
    final class Subscription: Sendable {
        let continuation: AsyncStream<Notice>.Continuation
        let lagged = Atomic<Bool>(false)

        init(_ continuation: AsyncStream<Notice>.Continuation) {
            self.continuation = continuation
        }
    }

    /// Notices a subscriber may hold unread; nil: no limit.
    let bufferLimit: Int?
    private let subscribers = Mutex<[Key: [ObjectIdentifier: Subscription]]>([:])

    init(bufferLimit: Int?) {
        self.bufferLimit = bufferLimit
    }

    /// Notices posted to any of `keys` from now on; call `cancel` when done.
    func subscribe(_ keys: [Key]) -> (stream: AsyncStream<Notice>, subscription: Subscription, cancel: @Sendable () -> Void) {
        let (stream, continuation) = AsyncStream<Notice>.makeStream(
            bufferingPolicy: bufferLimit.map { .bufferingOldest($0) } ?? .unbounded)
        let subscription = Subscription(continuation)
        let id = ObjectIdentifier(subscription)
        subscribers.withLock { subscribers in
            for key in keys { subscribers[key, default: [:]][id] = subscription }
        }
        let cancel: @Sendable () -> Void = { [weak self] in
            self?.subscribers.withLock { subscribers in
                for key in keys {
                    subscribers[key]?[id] = nil
                    if subscribers[key]?.isEmpty == true { subscribers[key] = nil }
                }
            }
            continuation.finish()
        }
        return (stream, subscription, cancel)
    }

    /// Subscribers now (one counted once however many keys it listens to).
    var subscriberCount: Int {
        subscribers.withLock { Set($0.values.flatMap(\.keys)).count }
    }

    func post(_ notice: Notice, to key: Key) {
        let targets = subscribers.withLock { Array(($0[key] ?? [:]).values) }
        for subscription in targets {
            if case .dropped = subscription.continuation.yield(notice) {
                subscription.lagged.store(true, ordering: .releasing)
                subscription.continuation.finish()
            }
        }
    }
}
