// Handoff — the desk feed behind Operators/Watch: desk events of a tenant,
// oldest first. The event log is the feed's history, so a watcher that
// resumes from a cursor replays what it missed from the store; live events
// come from a process-local hub after each commit. A watcher that falls too
// far behind is told so, and resumes.

public import HandoffCore

/// A desk event as Watch sends it.
public struct DeskItem: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case ticketOpened, ticketClaimed, ticketResolved, ticketSLABreached
        case approvalRequested, approvalDecided, approvalExpired, watcherLagged
    }

    public var kind: Kind
    /// Where it is in the feed (resume after it).
    public var position: EventPosition
    /// The ticket as it is now, for ticket kinds.
    public var ticket: TicketRecord?
    /// The approval as it is now, for approval kinds.
    public var approval: ApprovalRecord?
    public var actor: String
    public var occurredAtMs: Int64

    public init(
        kind: Kind, position: EventPosition, ticket: TicketRecord? = nil, approval: ApprovalRecord? = nil, actor: String,
        occurredAtMs: Int64
    ) {
        self.kind = kind
        self.position = position
        self.ticket = ticket
        self.approval = approval
        self.actor = actor
        self.occurredAtMs = occurredAtMs
    }
}

/// Tells watchers, in this process, of desk events after they committed.
public final class DeskHub: Sendable {
    private let board: NoticeBoard<TenantID, EventRecord>

    /// `bufferLimit`: notices a watcher may hold before it counts as fallen behind.
    public init(bufferLimit: Int = 1024) {
        board = NoticeBoard(bufferLimit: bufferLimit)
    }

    func subscribe(
        tenant: TenantID
    ) -> (stream: AsyncStream<EventRecord>, subscription: NoticeBoard<TenantID, EventRecord>.Subscription, cancel: @Sendable () -> Void) {
        board.subscribe([tenant])
    }

    /// Watch calls subscribed now.
    public var watcherCount: Int { board.subscriberCount }

    func publish(_ events: [EventRecord]) {
        for event in events where DeskFeed.actions.contains(event.event.action) { board.post(event, to: event.tenant) }
    }
}

/// Reads the feed for Watch.
public struct DeskFeed: Sendable {
    /// The event actions that are desk events, and their kinds.
    static let kinds: [String: DeskItem.Kind] = [
        "session.escalated": .ticketOpened, "ticket.opened": .ticketOpened, "ticket.claimed": .ticketClaimed, "ticket.resolved": .ticketResolved,
        "ticket.sla_breached": .ticketSLABreached, "approval.requested": .approvalRequested, "approval.decided": .approvalDecided,
        "approval.expired": .approvalExpired,
    ]
    static let actions = Set(kinds.keys)

    let store: any Store
    let hub: DeskHub

    public init(store: any Store, hub: DeskHub) {
        self.store = store
        self.hub = hub
    }

    /// Desk events of the caller's tenant: after `resume` (replayed from the
    /// store, then live), or from now on. `include` filters (kind, ticket, approval).
    /// Pull-based: a reader that does not read leaves live events in the hub's
    /// bounded buffer, and when that overflows it gets `watcherLagged` and the end.
    public func watch(
        after resume: EventPosition?, caller: Caller,
        include: @escaping @Sendable (DeskItem.Kind, TicketRecord?, ApprovalRecord?) -> Bool
    ) -> DeskWatch {
        DeskWatch(store: store, hub: hub, resume: resume, caller: caller, include: include)
    }

    static func isAfter(_ a: EventPosition, _ b: EventPosition) -> Bool {
        (a.occurredAtMs, a.sessionID, a.sequence) > (b.occurredAtMs, b.sessionID, b.sequence)
    }
}

/// The items of one Watch, read in order by one task.
public struct DeskWatch: AsyncSequence, Sendable {
    public typealias Element = DeskItem
    let store: any Store
    let hub: DeskHub
    let resume: EventPosition?
    let caller: Caller
    let include: @Sendable (DeskItem.Kind, TicketRecord?, ApprovalRecord?) -> Bool

    public func makeAsyncIterator() -> Iterator {
        Iterator(self)
    }

    public final class Iterator: AsyncIteratorProtocol {
        private let watch: DeskWatch
        private var live: AsyncStream<EventRecord>.Iterator
        private let subscription: NoticeBoard<TenantID, EventRecord>.Subscription
        private let cancel: @Sendable () -> Void
        private var last: EventPosition?
        private var replaying: Bool
        private var page: [EventRecord] = []
        private var finished = false

        init(_ watch: DeskWatch) {
            self.watch = watch
            // Subscribed before the replay starts, so nothing falls between the two.
            let (stream, subscription, cancel) = watch.hub.subscribe(tenant: watch.caller.tenant)
            self.live = stream.makeAsyncIterator()
            self.subscription = subscription
            self.cancel = cancel
            self.last = watch.resume
            self.replaying = watch.resume != nil
        }

        deinit { cancel() }

        public func next() async throws -> DeskItem? {
            while !finished {
                let event: EventRecord
                if replaying || !page.isEmpty {
                    if page.isEmpty {
                        var query = EventQuery()
                        query.actions = Array(DeskFeed.actions)
                        query.after = last
                        query.limit = 200
                        page = try await watch.store.listEvents(tenant: watch.caller.tenant, query: query).events
                        if page.count < query.limit { replaying = false }
                        if page.isEmpty { continue }
                    }
                    event = page.removeFirst()
                } else if let next = await live.next() {
                    event = next
                } else {
                    finished = true
                    cancel()
                    if subscription.lagged.load(ordering: .acquiring), let position = last ?? watch.resume {
                        return DeskItem(kind: .watcherLagged, position: position, actor: "", occurredAtMs: 0)
                    }
                    return nil
                }
                let position = EventPosition(occurredAtMs: event.event.occurredAtMs, sessionID: event.sessionID, sequence: event.sequence)
                if let last, !DeskFeed.isAfter(position, last) { continue }  // replayed already
                last = position
                guard let kind = DeskFeed.kinds[event.event.action] else { continue }
                var ticket: TicketRecord?
                var approval: ApprovalRecord?
                let details = (try? JSONValue(parsing: event.event.detailsJSON))?.objectValue
                if case .string(let id)? = details?["approval_id"] {
                    approval = try await watch.store.approval(tenant: watch.caller.tenant, id: id)
                } else if case .string(let id)? = details?["ticket_id"] {
                    ticket = try await watch.store.ticket(tenant: watch.caller.tenant, id: id)
                }
                guard watch.include(kind, ticket, approval) else { continue }
                return DeskItem(
                    kind: kind, position: position, ticket: ticket, approval: approval, actor: event.event.actor,
                    occurredAtMs: event.event.occurredAtMs)
            }
            return nil
        }
    }
}
