// Handoff — the desk feed behind Operators/Watch: desk events of a tenant in
// commit order, read from the store's change feed after a cursor. The store
// is the truth: a process-local hub only wakes watchers after a commit (and
// a watcher also looks again every `pollInterval`, for commits it was not
// told of), so a wake-up that is lost or late costs latency, never an event,
// and a slow watcher never falls behind anything but the store itself.

public import HandoffCore
import HandoffPolicy
import Synchronization

/// A desk event as Watch sends it.
public struct DeskItem: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case ticketOpened, ticketClaimed, ticketResolved, ticketSLABreached
        case approvalRequested, approvalDecided, approvalExpired, watcherLagged
    }

    public var kind: Kind
    /// Its feed position: a watch resumed after it delivers what came next.
    public var position: Int64
    /// The ticket as it was right after the event, for ticket kinds.
    public var ticket: TicketRecord?
    /// The approval as it was right after the event, for approval kinds.
    public var approval: ApprovalRecord?
    public var actor: String
    public var occurredAtMs: Int64

    public init(
        kind: Kind, position: Int64, ticket: TicketRecord? = nil, approval: ApprovalRecord? = nil, actor: String, occurredAtMs: Int64
    ) {
        self.kind = kind
        self.position = position
        self.ticket = ticket
        self.approval = approval
        self.actor = actor
        self.occurredAtMs = occurredAtMs
    }
}

/// Wakes the watchers of a tenant, in this process, after desk events committed.
public final class DeskHub: Sendable {
    private let watchers = Mutex<[TenantID: [ObjectIdentifier: WakeSignal]]>([:])

    public init() {}

    /// A signal woken by each commit of desk events of `tenant`; call `cancel` when done.
    func subscribe(tenant: TenantID) -> (wakes: WakeSignal, cancel: @Sendable () -> Void) {
        let signal = WakeSignal()
        let id = ObjectIdentifier(signal)
        watchers.withLock { $0[tenant, default: [:]][id] = signal }
        let cancel: @Sendable () -> Void = { [weak self] in
            self?.watchers.withLock { watchers in
                watchers[tenant]?[id] = nil
                if watchers[tenant]?.isEmpty == true { watchers[tenant] = nil }
            }
            signal.close()
        }
        return (signal, cancel)
    }

    /// Watch calls subscribed now.
    public var watcherCount: Int { watchers.withLock { $0.values.reduce(0) { $0 + $1.count } } }

    /// Wakes the watchers of `tenant`: another node committed desk events
    /// of it (they read the change feed, which is the truth).
    public func wake(tenant: TenantID) {
        for signal in watchers.withLock({ Array(($0[tenant] ?? [:]).values) }) { signal.signal() }
    }

    /// Wakes every watcher: after a lost notification connection, when
    /// nobody knows what was missed.
    public func wakeAll() {
        for signal in watchers.withLock({ $0.values.flatMap(\.values) }) { signal.signal() }
    }

    /// The event actions whose commits wake watchers (for a store that tells other nodes).
    public static var actions: Set<String> { DeskFeed.actions }

    func publish(_ events: [EventRecord]) {
        var tenants: Set<TenantID> = []
        for event in events where DeskFeed.actions.contains(event.event.action) { tenants.insert(event.tenant) }
        for tenant in tenants {
            for signal in watchers.withLock({ Array(($0[tenant] ?? [:]).values) }) { signal.signal() }
        }
    }
}

/// A wake-up for one waiter: a signal given while nobody waits is kept (once)
/// for the next wait, so none is lost between two reads.
final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var closed = false
        /// The waiting task was cancelled (perhaps before it waited): it waits no more.
        var cancelled = false
        var waiter: CheckedContinuation<Bool, Never>?
        var timer: Task<Void, Never>?
    }

    private let state = Mutex(State())

    func signal() { resume(true, keepIfNobodyWaits: true) }

    func close() {
        state.withLock { $0.closed = true }
        resume(false, keepIfNobodyWaits: false)
    }

    /// True when signalled (or a signal was kept) or `timeout` passed; false
    /// when closed or the task is cancelled.
    func wait(timeout: Duration) async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let now: Bool? = state.withLock { state in
                    if state.closed || state.cancelled { return false }
                    if state.pending {
                        state.pending = false
                        return true
                    }
                    state.waiter = continuation
                    state.timer = Task { [weak self] in
                        try? await Task.sleep(for: timeout)
                        if !Task.isCancelled { self?.resume(true, keepIfNobodyWaits: false) }
                    }
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            state.withLock { $0.cancelled = true }
            resume(false, keepIfNobodyWaits: false)
        }
    }

    private func resume(_ value: Bool, keepIfNobodyWaits: Bool) {
        let (waiter, timer) = state.withLock { state -> (CheckedContinuation<Bool, Never>?, Task<Void, Never>?) in
            guard let waiter = state.waiter else {
                if keepIfNobodyWaits { state.pending = true }
                return (nil, nil)
            }
            state.waiter = nil
            defer { state.timer = nil }
            return (waiter, state.timer)
        }
        timer?.cancel()
        waiter?.resume(returning: value)
    }
}

/// Reads the feed for Watch.
public struct DeskFeed: Sendable {
    /// The event actions that are desk events, and their kinds.
    static let kinds: [EventAction: DeskItem.Kind] = [
        .sessionEscalated: .ticketOpened, .ticketOpened: .ticketOpened, .ticketClaimed: .ticketClaimed, .ticketResolved: .ticketResolved,
        .ticketSLABreached: .ticketSLABreached, .approvalRequested: .approvalRequested, .approvalDecided: .approvalDecided,
        .approvalExpired: .approvalExpired,
    ]
    static let actions = Set(kinds.keys.map(\.rawValue))
    static let actionList = actions.sorted()

    let store: any Store
    public let hub: DeskHub
    /// How often a watcher reads the feed without being woken (commits made
    /// by another process, or a wake-up lost).
    let pollInterval: Duration

    public init(store: any Store, hub: DeskHub, pollInterval: Duration = .seconds(2)) {
        self.store = store
        self.hub = hub
        self.pollInterval = pollInterval
    }

    /// Desk events of the caller's tenant after feed position `resume`, or
    /// from now on when nil (the feed's head is read here, before the watch
    /// subscribes, so a commit in between is read, not lost), in commit
    /// order. `include` filters (kind, ticket, approval).
    public func watch(
        after resume: Int64?, caller: Caller,
        include: @escaping @Sendable (DeskItem.Kind, TicketRecord?, ApprovalRecord?) -> Bool
    ) async throws(HandoffError) -> DeskWatch {
        var start = resume
        if start == nil {
            do {
                start = try await store.feedHead(tenant: caller.tenant)
            } catch {
                throw HandoffError(error)
            }
        }
        return DeskWatch(feed: self, start: start ?? 0, caller: caller, include: include)
    }
}

/// The items of one Watch, read in order by one task.
public struct DeskWatch: AsyncSequence, Sendable {
    public typealias Element = DeskItem
    let feed: DeskFeed
    let start: Int64
    let caller: Caller
    let include: @Sendable (DeskItem.Kind, TicketRecord?, ApprovalRecord?) -> Bool

    public func makeAsyncIterator() -> Iterator {
        Iterator(self)
    }

    public final class Iterator: AsyncIteratorProtocol {
        private let watch: DeskWatch
        private let wakes: WakeSignal
        private let cancel: @Sendable () -> Void
        /// The feed position read up to.
        private var last: Int64
        private var page: [EventRecord] = []

        init(_ watch: DeskWatch) {
            self.watch = watch
            // Subscribed before the first read, so no commit falls between the two.
            (wakes, cancel) = watch.feed.hub.subscribe(tenant: watch.caller.tenant)
            last = watch.start
        }

        deinit { cancel() }

        public func next() async throws -> DeskItem? {
            let store = watch.feed.store
            let tenant = watch.caller.tenant
            while !Task.isCancelled {
                if page.isEmpty {
                    page = try await store.changes(tenant: tenant, after: last, actions: DeskFeed.actionList, limit: 200)
                    if page.isEmpty {
                        guard await waitForWake() else { return nil }
                        continue
                    }
                }
                let event = page.removeFirst()
                last = event.feedPosition ?? last
                guard let kind = event.event.kind.flatMap({ DeskFeed.kinds[$0] }), let position = event.feedPosition else { continue }
                var ticket: TicketRecord?
                var approval: ApprovalRecord?
                let details = (try? JSONValue(parsing: event.event.detailsJSON))?.objectValue
                // An escalation that queued a waiting ticket, or joined the ticket in hand, opened nothing
                // (the waiting one is announced by its own ticket.opened when it opens).
                if event.event.kind == .sessionEscalated,
                    details?["attached"] == .bool(true) || details?["status"] == .string(TicketRecord.Status.waiting.rawValue)
                {
                    continue
                }
                // The record as it was right after the event (its snapshot over the stored record).
                if case .string(let id)? = details?["approval_id"] {
                    approval = try await store.approval(tenant: tenant, id: id)
                    if let state = details?["approval_state"] { approval = approval?.applying(deskSnapshot: state) }
                } else if case .string(let id)? = details?["ticket_id"] {
                    ticket = try await store.ticket(tenant: tenant, id: id)
                    if let state = details?["ticket_state"] { ticket = ticket?.applying(deskSnapshot: state) }
                }
                guard watch.include(kind, ticket, approval) else { continue }
                return DeskItem(
                    kind: kind, position: position, ticket: ticket, approval: approval, actor: event.event.actor,
                    occurredAtMs: event.event.occurredAtMs)
            }
            return nil
        }

        /// Until a commit is announced or the poll interval passed; false when the watch is over.
        private func waitForWake() async -> Bool {
            await wakes.wait(timeout: watch.feed.pollInterval) && !Task.isCancelled
        }
    }
}
