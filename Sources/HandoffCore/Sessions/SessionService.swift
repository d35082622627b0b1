// Handoff — sessions: one actor per resident session serialises its changes;
// a registry loads actors on demand and evicts the least recently used idle
// ones beyond a ceiling, so memory stays bounded however many sessions exist.

import Foundation
import Synchronization

/// Who is calling, as far as the domain cares.
public struct Caller: Sendable, Hashable {
    public var tenant: TenantID
    /// A stable name for events, for example `handoff://tenant/acme/agent/bot`.
    public var identity: String
    public var role: Role

    public init(tenant: TenantID, identity: String, role: Role = .agent) {
        self.tenant = tenant
        self.identity = identity
        self.role = role
    }

    /// The actor of the server's own changes (expiries, SLA breaches).
    public static let systemIdentity = "system"

    /// The server acting in `tenant`.
    public static func system(_ tenant: TenantID) -> Caller {
        Caller(tenant: tenant, identity: systemIdentity, role: .admin)
    }
}

/// The sessions of every tenant.
///
/// Not an actor: a call looks its session up in a locked table and goes
/// straight to that session's actor, so calls on different sessions never
/// queue behind one another, and no call pays a hop through a shared actor.
public final class SessionService: Sendable {
    /// Limits of the service.
    public struct Configuration: Sendable, Equatable {
        /// Resident session actors at most; idle ones beyond it are evicted.
        public var residentCeiling = 10_000
        /// The largest state, in bytes of canonical JSON.
        public var stateSizeLimit = SessionState.defaultSizeLimit
        /// GetContext's turns when the caller asks for none in particular.
        public var defaultTurnLimit = 50
        /// The most turns one GetContext may ask for.
        public var maximumTurnLimit = 500
        /// The largest turn or memory text field, in bytes.
        public var textSizeLimit = 256 * 1024
        /// Bytes of turns and memories a resident session keeps for GetContext;
        /// a context that does not fit is read from the store instead.
        public var contextCacheBytes = 32 * 1024
        /// Bytes one GetContext answer carries at most (its text; under the
        /// 4 MiB frame with room for the rest): past it, the oldest of the
        /// turns asked for are left out. With 256 KiB text fields, 50 turns
        /// could be 38 MiB, and the answer was RESOURCE_EXHAUSTED every time.
        public var contextResponseBytes = 3 << 20
        /// Bytes of one session's memories (content and metadata) at most.
        /// GetContext returns every memory, so they must fit its answer
        /// beside the state and some turns.
        public var memoryBytesLimit = 1 << 20
        public init() {}
    }

    struct Key: Hashable, Sendable {
        let tenant: TenantID
        let id: String
    }

    private struct Entry {
        let actor: SessionActor
        var lastUse: UInt64
        /// Calls using the actor now; an entry in use is never evicted, so a
        /// write in flight always finishes in the actor every later call sees.
        var users: Int
    }

    private struct Registry {
        var entries: [Key: Entry] = [:]
        var useClock: UInt64 = 0
    }

    private let store: any Store
    private let configuration: Configuration
    private let registry = Mutex(Registry())
    private let clock: @Sendable () -> Int64

    public init(
        store: any Store, configuration: Configuration = .init(),
        clock: @escaping @Sendable () -> Int64 = SessionService.wallClockMs
    ) {
        self.store = store
        self.configuration = configuration
        self.clock = clock
    }

    /// Milliseconds since 1970 by the system clock.
    public static let wallClockMs: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Memories of one session at most (AddMemory checks them all).
    public static let maximumMemories = 1_000

    /// Labels of one session at most, and their sizes.
    public static let maximumLabels = 64
    public static let maximumLabelKeyBytes = 128
    public static let maximumLabelValueBytes = 1024

    /// The bytes a session id may hold (sessions.proto: [A-Za-z0-9._:-]).
    private static func isSessionIDByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    /// A text field within the configured text size limit (256 KiB by default).
    private func checkSize(_ text: String, _ field: String) throws(HandoffError) {
        guard text.utf8.count <= configuration.textSizeLimit else {
            throw .invalid("\(field) is \(text.utf8.count) bytes; the limit is \(configuration.textSizeLimit)")
        }
    }

    /// Resident actors now (for tests and metrics).
    public var residentCount: Int { registry.withLock { $0.entries.count } }

    /// Creates a session; `id` nil or empty picks a random one.
    public func create(
        id: String?, stateJSON: String, labels: [String: String], reasoning: String, caller: Caller
    ) async throws(HandoffError) -> SessionRecord {
        let id = (id?.isEmpty ?? true) ? RecordID.make() : id!
        // As sessions.proto says: ids reach logs, terminals and URLs.
        guard id.utf8.count <= 128, id.utf8.allSatisfy(Self.isSessionIDByte) else {
            throw .invalid(#"session_id must be at most 128 of A-Z, a-z, 0-9, ".", "_", ":" and "-""#)
        }
        guard labels.count <= Self.maximumLabels else {
            throw .invalid("labels holds \(labels.count) labels; at most \(Self.maximumLabels)")
        }
        for (key, value) in labels {
            guard (1...Self.maximumLabelKeyBytes).contains(key.utf8.count), value.utf8.count <= Self.maximumLabelValueBytes else {
                throw .invalid(
                    "a label's key must be 1 to \(Self.maximumLabelKeyBytes) bytes and its value at most \(Self.maximumLabelValueBytes) bytes")
            }
        }
        try checkSize(reasoning, "reasoning")
        let state: JSONValue
        do {
            state = stateJSON.isEmpty ? .object([:]) : try JSONValue(parsing: stateJSON)
        } catch {
            throw .invalid("state_json is \(error.message)")
        }
        let json: String
        do {
            json = try SessionState.validate(state, sizeLimit: configuration.stateSizeLimit).json
        } catch {
            throw .invalid(error.message)
        }
        let now = clock()
        let record = SessionRecord(
            tenant: caller.tenant, id: id, version: 1, stateJSON: json, status: .active, labels: labels,
            createdAtMs: now, updatedAtMs: now)
        let details = JSONValue.object(["state": state, "labels": .object(labels.mapValues(JSONValue.string))])
        do {
            _ = try await store.createSession(
                record,
                event: NewEvent(
                    action: .sessionCreated, actor: caller.identity, reasoning: reasoning,
                    detailsJSON: details.serialized, occurredAtMs: now))
        } catch {
            throw HandoffError(error)
        }
        // The next call finds the session resident, on the creator's executor.
        let key = Key(tenant: caller.tenant, id: id)
        registry.withLock { registry in
            if registry.entries[key] == nil {
                registry.useClock &+= 1
                registry.entries[key] = Entry(actor: makeActor(key, loaded: record), lastUse: registry.useClock, users: 0)
            }
            evictIfNeeded(&registry)
        }
        return record
    }

    /// The session, from its resident actor or the store.
    public func get(id: String, caller: Caller) async throws(HandoffError) -> SessionRecord {
        try await withSession(id, caller) { actor throws(HandoffError) in try await actor.current() }
    }

    /// Applies a state change in order with every other change to the session.
    public func updateState(
        id: String, change: StateChange, reasoning: String, expectedVersion: Int64?, caller: Caller
    ) async throws(HandoffError) -> SessionRecord {
        guard reasoning.unicodeScalars.contains(where: { !$0.properties.isWhitespace }) else {
            throw .invalid("reasoning is required: say why the state changes")
        }
        try checkSize(reasoning, "reasoning")
        let now = clock()
        return try await withSession(id, caller) { actor throws(HandoffError) in
            try await actor.update(change: change, reasoning: reasoning, expectedVersion: expectedVersion, caller: caller, now: now)
        }
    }

    /// Appends a turn of the conversation, in order with the session's other changes.
    public func addTurn(
        id: String, input: String, output: String, metadataJSON: String, reasoning: String, caller: Caller
    ) async throws(HandoffError) -> TurnRecord {
        for (name, text) in [("input", input), ("output", output), ("reasoning", reasoning), ("metadata_json", metadataJSON)] {
            try checkSize(text, name)
        }
        let metadata = try Self.jsonObject(metadataJSON, field: "metadata_json")
        let canonical = metadata.serialized
        // GetContext tells operators' and the server's own turns by these
        // (Turn.source); a client must not pass its turns off as theirs.
        for reserved in [#""source":"operator""#, #""source":"system""#] where canonical.contains(reserved) {
            throw .invalid(
                "metadata_json may not hold \(reserved): the server marks the turns operators and the server itself write")
        }
        let now = clock()
        let turn = TurnRecord(
            sessionID: id, sequence: 0, input: input, output: output, metadataJSON: canonical, reasoning: reasoning,
            author: caller.identity, createdAtMs: now)
        let event = NewEvent(
            action: .sessionTurnAdded, actor: caller.identity, reasoning: reasoning,
            detailsJSON: JSONValue.object(["input": .string(input), "output": .string(output), "metadata": metadata]).serialized,
            occurredAtMs: now)
        return try await withSession(id, caller) { actor throws(HandoffError) in try await actor.addTurn(turn, event: event) }
    }

    /// Appends a memory to the session.
    public func addMemory(
        id: String, content: String, metadataJSON: String, reasoning: String, caller: Caller
    ) async throws(HandoffError) -> MemoryRecord {
        guard !content.isEmpty else { throw .invalid("content is required") }
        try checkSize(content, "content")
        try checkSize(metadataJSON, "metadata_json")
        try checkSize(reasoning, "reasoning")
        let metadata = try Self.jsonObject(metadataJSON, field: "metadata_json")
        let now = clock()
        let memory = MemoryRecord(sessionID: id, sequence: 0, content: content, metadataJSON: metadata.serialized, createdAtMs: now)
        let event = NewEvent(
            action: .sessionMemoryAdded, actor: caller.identity, reasoning: reasoning,
            detailsJSON: JSONValue.object(["content": .string(content), "metadata": metadata]).serialized,
            occurredAtMs: now)
        return try await withSession(id, caller) { actor throws(HandoffError) in try await actor.addMemory(memory, event: event) }
    }

    /// The session with its most recent turns (oldest first) and its memories.
    /// `turnLimit` 0 means the default (50); above the maximum is lowered to
    /// it (as sessions.proto says); negative is refused.
    public func context(
        id: String, turnLimit: Int, caller: Caller, responseBytes: Int? = nil
    ) async throws(HandoffError) -> SessionContext {
        guard turnLimit >= 0 else {
            throw .invalid("turn_limit must not be negative, not \(turnLimit)")
        }
        let limit = turnLimit == 0 ? configuration.defaultTurnLimit : min(turnLimit, configuration.maximumTurnLimit)
        let context = try await withSession(id, caller) { actor throws(HandoffError) in try await actor.context(turnLimit: limit) }
        return Self.fitted(context, within: responseBytes ?? configuration.contextResponseBytes)
    }

    /// `context` with as many of its latest turns as fit in `bytes` beside
    /// the state and the memories (which always stay: a caller that gets
    /// none of them could not tell they exist). `totalTurns` still counts them all.
    public static func fitted(_ context: SessionContext, within bytes: Int) -> SessionContext {
        // Text, plus each record's session id and room for its fields' tags and lengths.
        let id = context.session.id.utf8.count
        func size(_ turn: TurnRecord) -> Int {
            turn.input.utf8.count + turn.output.utf8.count + turn.metadataJSON.utf8.count + turn.reasoning.utf8.count
                + turn.author.utf8.count + id + 96
        }
        var total =
            context.session.stateJSON.utf8.count
            + context.session.labels.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 8 }
            + context.memories.reduce(0) { $0 + $1.content.utf8.count + $1.metadataJSON.utf8.count + id + 48 }
        var kept = 0
        for turn in context.turns.reversed() {
            total += size(turn)
            if total > bytes { break }
            kept += 1
        }
        guard kept < context.turns.count else { return context }
        var fitted = context
        fitted.turns = Array(context.turns.suffix(kept))
        return fitted
    }

    /// The most action names one ListEvents may filter by (Handoff writes
    /// a few dozen kinds; each is a bound parameter of the store's query).
    public static let maximumListedActions = 100

    /// Events one page of one session's events walks at most (newest first;
    /// a page that did not fill by then ends early, with a next page token).
    public static let maximumWalkPerPage = 10_000

    /// The most events one ListEvents page holds (the same maximum as turns).
    public var maximumPageSize: Int { configuration.maximumTurnLimit }

    /// A page of the event log and where the next one starts (nil at the end).
    public func listEvents(query: EventQuery, caller: Caller) async throws(HandoffError) -> (events: [EventRecord], next: EventPosition?) {
        guard (1...maximumPageSize).contains(query.limit) else {
            throw .invalid("page_size must be from 1 to \(maximumPageSize), not \(query.limit)")
        }
        guard query.actions.count <= Self.maximumListedActions else {
            throw .invalid("actions names \(query.actions.count) actions; at most \(Self.maximumListedActions) may be listed at once")
        }
        var probe = query
        probe.limit = query.limit + 1  // one more tells whether a next page exists
        // A page of one session walks its chain: bounded, so that a filter
        // that matches little cannot make one call walk millions of events.
        probe.scanLimit = Self.maximumWalkPerPage
        let found: EventPage
        do {
            found = try await store.listEvents(tenant: caller.tenant, query: probe)
        } catch {
            throw HandoffError(error)
        }
        let page = Array(found.events.prefix(query.limit))
        // Only one session's newest-first listing resumes at a position; other tokens do not carry it.
        func position(after event: EventRecord) -> EventPosition {
            EventPosition(
                occurredAtMs: event.event.occurredAtMs, sessionID: event.sessionID, sequence: event.sequence,
                feedPosition: query.sessionID != nil && query.newestFirst ? event.feedPosition : nil)
        }
        let next: EventPosition?
        if found.events.count > query.limit {
            next = page.last.map(position(after:))
        } else {
            // The walk ran out of budget: the page may be short, even empty, and the next goes on from there.
            next = found.resumeAfter.map(position(after:))
        }
        return (page, next)
    }

    /// Empty text is an empty object; anything else must be a JSON object.
    private static func jsonObject(_ text: String, field: String) throws(HandoffError) -> JSONValue {
        if text.isEmpty { return .object([:]) }
        do {
            let value = try JSONValue(parsing: text)
            guard case .object = value else { throw HandoffError.invalid("\(field) must be a JSON object") }
            return value
        } catch let error as HandoffError {
            throw error
        } catch {
            throw .invalid("\(field) is \(error)")
        }
    }

    /// The outcome of recomputing a session's event chain.
    public struct AuditResult: Sendable, Hashable {
        public var eventsChecked: Int
        /// nil when every link holds.
        public var firstBreak: EventChain.Break?
        /// The stored hash of the last event checked; empty when none was.
        public var headHash: [UInt8]
    }

    /// Recomputes the session's hash chain from the store and names the first broken link.
    public func verifyAuditChain(id: String, caller: Caller) async throws(HandoffError) -> AuditResult {
        let checked: EventChain.Verifier?
        do {
            checked = try await store.verifyChain(tenant: caller.tenant, sessionID: id)
        } catch {
            throw HandoffError(error)
        }
        guard let checked else { throw .notFound("session \(id) not found") }
        return AuditResult(eventsChecked: checked.checked, firstBreak: checked.firstBreak, headHash: checked.checked == 0 ? [] : checked.lastHash)
    }

    /// The id of the session's unresolved escalation ticket, or nil (the
    /// session must be the caller's tenant's; another's is nil too).
    public func escalationTicketID(id: String, caller: Caller) async throws(HandoffError) -> String? {
        do {
            return try await store.unresolvedTicketID(tenant: caller.tenant, sessionID: id)
        } catch {
            throw HandoffError(error)
        }
    }

    /// Runs `work`, a change to one of the session's pending actions, in order
    /// with the session's other changes; `work` returns the session status the
    /// store computed, which the resident session takes. `first`: the call's
    /// first change, not made (`.callEnded`) if the call ended while it
    /// waited for the session's turn.
    public func changeBeside<T: Sendable>(
        id: String, caller: Caller, addsTurns: Bool = false, first: Bool = false,
        _ work: @escaping @Sendable () async throws(HandoffError) -> (T, status: SessionRecord.Status?)
    ) async throws(HandoffError) -> T {
        try await withSession(id, caller) { actor throws(HandoffError) in
            try await actor.changeBeside(addsTurns: addsTurns, first: first, work)
        }
    }

    /// Runs `body` with the session's resident actor, making one (not yet
    /// loaded: it loads itself in its first call) if there is none.
    private func withSession<T: Sendable>(
        _ id: String, _ caller: Caller, _ body: (SessionActor) async throws(HandoffError) -> T
    ) async throws(HandoffError) -> T {
        let key = Key(tenant: caller.tenant, id: id)
        let actor = registry.withLock { registry -> SessionActor in
            registry.useClock &+= 1
            if var entry = registry.entries[key] {
                entry.lastUse = registry.useClock
                entry.users += 1
                registry.entries[key] = entry
                return entry.actor
            }
            let actor = makeActor(key, loaded: nil)
            registry.entries[key] = Entry(actor: actor, lastUse: registry.useClock, users: 1)
            evictIfNeeded(&registry)
            return actor
        }
        let result: Result<T, HandoffError>
        do throws(HandoffError) {
            result = .success(try await body(actor))
        } catch {
            result = .failure(error)
        }
        registry.withLock { registry in
            guard var entry = registry.entries[key], entry.actor === actor else { return }
            entry.users -= 1
            // An id that named no session leaves nothing behind.
            if entry.users == 0, !actor.isLoaded {
                registry.entries.removeValue(forKey: key)
            } else {
                registry.entries[key] = entry
            }
            // Entries in use when the ceiling was passed are evicted once idle.
            evictIfNeeded(&registry)
        }
        return try result.get()
    }

    private func makeActor(_ key: Key, loaded: SessionRecord?) -> SessionActor {
        SessionActor(
            key: key, loaded: loaded, store: store,
            limits: .init(
                stateSizeLimit: configuration.stateSizeLimit, contextCacheBytes: configuration.contextCacheBytes,
                memoryBytesLimit: configuration.memoryBytesLimit))
    }

    /// Beyond the ceiling, drops the least recently used idle actors down to
    /// nine tenths of it (so the sort is paid once per many new sessions, not
    /// per call). The next call on an evicted session loads it again.
    private func evictIfNeeded(_ registry: inout Registry) {
        guard registry.entries.count > configuration.residentCeiling else { return }
        let target = configuration.residentCeiling - configuration.residentCeiling / 10
        let idle = registry.entries.filter { $0.value.users == 0 }.sorted { $0.value.lastUse < $1.value.lastUse }
        for (key, _) in idle.prefix(registry.entries.count - target) {
            registry.entries.removeValue(forKey: key)
        }
    }
}
