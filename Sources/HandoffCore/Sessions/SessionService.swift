// Handoff — sessions: one actor per resident session serialises its changes;
// a registry loads actors on demand and evicts the least recently used idle
// ones beyond a ceiling, so memory stays bounded however many sessions exist.

import Foundation

/// Who is calling, as far as the domain cares.
public struct Caller: Sendable, Hashable {
    public var tenant: TenantID
    /// A stable name for events, for example `handoff://tenant/acme/agent/bot`.
    public var identity: String

    public init(tenant: TenantID, identity: String) {
        self.tenant = tenant
        self.identity = identity
    }
}

/// A refusal of the sessions domain; the server maps each case to a status code.
public enum SessionError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalidArgument(String)
    case notFound(String)
    case alreadyExists(String)
    /// A version check failed: nothing was changed.
    case aborted(String)
    /// The store failed; the text is for logs.
    case unavailable(String)

    public var description: String {
        switch self {
        case .invalidArgument(let m), .notFound(let m), .alreadyExists(let m), .aborted(let m), .unavailable(let m): m
        }
    }

    init(_ error: StoreError) {
        switch error {
        case .alreadyExists: self = .alreadyExists(error.description)
        case .notFound: self = .notFound(error.description)
        case .versionConflict: self = .aborted(error.description)
        case .failure: self = .unavailable(error.description)
        }
    }
}

/// The sessions of every tenant.
public actor SessionService {
    /// Limits of the service.
    public struct Configuration: Sendable {
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
        public init() {}
    }

    private struct Key: Hashable {
        let tenant: TenantID
        let id: String
    }

    private let store: any Store
    private let configuration: Configuration
    private var resident: [Key: (actor: SessionActor, lastUse: UInt64)] = [:]
    private var useClock: UInt64 = 0
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

    /// Resident actors now (for tests and metrics).
    public var residentCount: Int { resident.count }

    /// Creates a session; `id` nil or empty picks a random one.
    public func create(
        id: String?, stateJSON: String, labels: [String: String], reasoning: String, caller: Caller
    ) async throws(SessionError) -> SessionRecord {
        let id = (id?.isEmpty ?? true) ? UUID().uuidString.lowercased() : id!
        guard id.utf8.count <= 128, !id.contains(where: { $0.isNewline || $0 == "\u{0}" }) else {
            throw .invalidArgument("session_id must be at most 128 bytes without control characters")
        }
        let state: JSONValue
        do {
            state = stateJSON.isEmpty ? .object([:]) : try JSONValue(parsing: stateJSON)
        } catch {
            throw .invalidArgument("state_json is \(error.message)")
        }
        let json: String
        do {
            json = try SessionState.validate(state, sizeLimit: configuration.stateSizeLimit).json
        } catch {
            throw .invalidArgument(error.message)
        }
        let now = clock()
        let record = SessionRecord(
            tenant: caller.tenant, id: id, version: 1, stateJSON: json, status: "active", labels: labels,
            createdAtMs: now, updatedAtMs: now)
        let details = JSONValue.object(["state": state, "labels": .object(labels.mapValues(JSONValue.string))])
        do {
            _ = try await store.createSession(
                record,
                event: NewEvent(
                    action: "session.created", actor: caller.identity, reasoning: reasoning,
                    detailsJSON: details.serialized, occurredAtMs: now))
        } catch {
            throw SessionError(error)
        }
        return record
    }

    /// The session, from its resident actor or the store.
    public func get(id: String, caller: Caller) async throws(SessionError) -> SessionRecord {
        try await actor(for: id, caller: caller).current()
    }

    /// Applies a state change in order with every other change to the session.
    public func updateState(
        id: String, change: StateChange, reasoning: String, expectedVersion: Int64?, caller: Caller
    ) async throws(SessionError) -> SessionRecord {
        guard !reasoning.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw .invalidArgument("reasoning is required: say why the state changes")
        }
        return try await actor(for: id, caller: caller).update(
            change: change, reasoning: reasoning, expectedVersion: expectedVersion, caller: caller,
            sizeLimit: configuration.stateSizeLimit, now: clock())
    }

    /// Appends a turn of the conversation, in order with the session's other changes.
    public func addTurn(
        id: String, input: String, output: String, metadataJSON: String, reasoning: String, caller: Caller
    ) async throws(SessionError) -> TurnRecord {
        for (name, text) in [("input", input), ("output", output), ("reasoning", reasoning), ("metadata_json", metadataJSON)]
        where text.utf8.count > configuration.textSizeLimit {
            throw .invalidArgument("\(name) is \(text.utf8.count) bytes; the limit is \(configuration.textSizeLimit)")
        }
        let metadata = try Self.jsonObject(metadataJSON, field: "metadata_json")
        let now = clock()
        let turn = TurnRecord(
            sessionID: id, sequence: 0, input: input, output: output, metadataJSON: metadata.serialized, reasoning: reasoning,
            author: caller.identity, createdAtMs: now)
        let store = self.store
        return try await actor(for: id, caller: caller).serialized { () throws(SessionError) -> TurnRecord in
            do throws(StoreError) {
                let stored = try await store.addTurn(
                    tenant: caller.tenant, turn: turn,
                    event: NewEvent(
                        action: "session.turn_added", actor: caller.identity, reasoning: reasoning,
                        detailsJSON: JSONValue.object(["input": .string(input), "output": .string(output), "metadata": metadata]).serialized,
                        occurredAtMs: now))
                return stored
            } catch {
                throw SessionError(error)
            }
        }
    }

    /// Appends a memory to the session.
    public func addMemory(
        id: String, content: String, metadataJSON: String, reasoning: String, caller: Caller
    ) async throws(SessionError) -> MemoryRecord {
        guard !content.isEmpty else { throw .invalidArgument("content is required") }
        guard content.utf8.count <= configuration.textSizeLimit else {
            throw .invalidArgument("content is \(content.utf8.count) bytes; the limit is \(configuration.textSizeLimit)")
        }
        let metadata = try Self.jsonObject(metadataJSON, field: "metadata_json")
        let now = clock()
        let memory = MemoryRecord(sessionID: id, sequence: 0, content: content, metadataJSON: metadata.serialized, createdAtMs: now)
        let store = self.store
        return try await actor(for: id, caller: caller).serialized { () throws(SessionError) -> MemoryRecord in
            do throws(StoreError) {
                return try await store.addMemory(
                    tenant: caller.tenant, memory: memory,
                    event: NewEvent(
                        action: "session.memory_added", actor: caller.identity, reasoning: reasoning,
                        detailsJSON: JSONValue.object(["content": .string(content), "metadata": metadata]).serialized,
                        occurredAtMs: now))
            } catch {
                throw SessionError(error)
            }
        }
    }

    /// The session with its most recent turns (oldest first) and its memories.
    /// `turnLimit` 0 means the default (50); above the maximum is refused.
    public func context(id: String, turnLimit: Int, caller: Caller) async throws(SessionError) -> SessionContext {
        guard turnLimit >= 0, turnLimit <= configuration.maximumTurnLimit else {
            throw .invalidArgument("turn_limit must be from 0 to \(configuration.maximumTurnLimit), not \(turnLimit)")
        }
        let limit = turnLimit == 0 ? configuration.defaultTurnLimit : turnLimit
        do {
            guard let context = try await store.context(tenant: caller.tenant, sessionID: id, turnLimit: limit) else {
                throw SessionError.notFound("session \(id) not found")
            }
            return context
        } catch let error as SessionError {
            throw error
        } catch let error as StoreError {
            throw SessionError(error)
        } catch {
            throw .unavailable("\(error)")
        }
    }

    /// A page of the event log and where the next one starts (nil at the end).
    public func listEvents(query: EventQuery, caller: Caller) async throws(SessionError) -> (events: [EventRecord], next: EventPosition?) {
        guard (1...configuration.maximumTurnLimit).contains(query.limit) else {
            throw .invalidArgument("page_size must be from 1 to \(configuration.maximumTurnLimit), not \(query.limit)")
        }
        var probe = query
        probe.limit = query.limit + 1  // one more tells whether a next page exists
        let found: [EventRecord]
        do {
            found = try await store.listEvents(tenant: caller.tenant, query: probe)
        } catch {
            throw SessionError(error)
        }
        let page = Array(found.prefix(query.limit))
        let next = found.count > query.limit
            ? page.last.map { EventPosition(occurredAtMs: $0.event.occurredAtMs, sessionID: $0.sessionID, sequence: $0.sequence) }
            : nil
        return (page, next)
    }

    /// Empty text is an empty object; anything else must be a JSON object.
    private static func jsonObject(_ text: String, field: String) throws(SessionError) -> JSONValue {
        if text.isEmpty { return .object([:]) }
        do {
            let value = try JSONValue(parsing: text)
            guard case .object = value else { throw SessionError.invalidArgument("\(field) must be a JSON object") }
            return value
        } catch let error as SessionError {
            throw error
        } catch {
            throw .invalidArgument("\(field) is \(error)")
        }
    }

    /// The outcome of recomputing a session's event chain.
    public struct AuditResult: Sendable, Hashable {
        public var eventsChecked: Int
        /// nil when every link holds.
        public var firstBreak: EventChain.Break?
        /// The hash of the last event.
        public var headHash: [UInt8]
    }

    /// Recomputes the session's hash chain from the store and names the first broken link.
    public func verifyAuditChain(id: String, caller: Caller) async throws(SessionError) -> AuditResult {
        let events: [EventRecord]
        do {
            events = try await store.events(tenant: caller.tenant, sessionID: id)
        } catch {
            throw SessionError(error)
        }
        guard !events.isEmpty else { throw .notFound("session \(id) not found") }
        return AuditResult(eventsChecked: events.count, firstBreak: EventChain.verify(events), headHash: events.last!.hash)
    }

    private func actor(for id: String, caller: Caller) async throws(SessionError) -> SessionActor {
        let key = Key(tenant: caller.tenant, id: id)
        useClock &+= 1
        if let entry = resident[key] {
            resident[key]?.lastUse = useClock
            return entry.actor
        }
        let record: SessionRecord?
        do {
            record = try await store.session(tenant: caller.tenant, id: id)
        } catch {
            throw SessionError(error)
        }
        guard let record else { throw .notFound("session \(id) not found") }
        // Another caller may have loaded it while this one awaited the store.
        if let entry = resident[key] { return entry.actor }
        let actor = SessionActor(record: record, store: store)
        resident[key] = (actor, useClock)
        evictIfNeeded()
        return actor
    }

    /// Drops the least recently used actors beyond the ceiling. An evicted
    /// actor that is still serving a call finishes it; the next call loads a
    /// fresh one from the store, where the version is checked anyway.
    private func evictIfNeeded() {
        let excess = resident.count - configuration.residentCeiling
        guard excess > 0 else { return }
        let oldest = resident.sorted { $0.value.lastUse < $1.value.lastUse }.prefix(excess)
        for (key, _) in oldest { resident.removeValue(forKey: key) }
    }
}

/// One resident session: its changes happen one at a time, in arrival order.
actor SessionActor {
    private var record: SessionRecord
    /// `record.stateJSON` parsed, kept so an update does not parse it again.
    private var parsedState: JSONValue?
    private let store: any Store
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(record: SessionRecord, store: any Store) {
        self.record = record
        self.store = store
    }

    func current() -> SessionRecord { record }

    /// Runs `work` in this session's turn: after every change that arrived
    /// before it, before every change that arrives after.
    func serialized<T: Sendable>(_ work: @Sendable () async throws(SessionError) -> T) async throws(SessionError) -> T {
        await takeTurn()
        defer { passTurn() }
        return try await work()
    }

    func update(
        change: StateChange, reasoning: String, expectedVersion: Int64?, caller: Caller, sizeLimit: Int, now: Int64
    ) async throws(SessionError) -> SessionRecord {
        // The store write suspends this actor; without the turn, a second update
        // could start from the same version and be refused as stale.
        await takeTurn()
        defer { passTurn() }
        if let expectedVersion, expectedVersion != record.version {
            throw .aborted("stale version: expected \(expectedVersion), the session is at \(record.version)")
        }
        let current: JSONValue
        if let parsedState {
            current = parsedState
        } else {
            do {
                current = try JSONValue(parsing: record.stateJSON)
            } catch {
                throw .unavailable("stored state of \(record.id) does not parse: \(error.message)")
            }
        }
        let next: (state: JSONValue, json: String)
        do {
            next = try SessionState.apply(change, to: current, sizeLimit: sizeLimit)
        } catch {
            throw .invalidArgument(error.message)
        }
        let details: JSONValue
        switch change {
        case .mergePatch(let patch): details = .object(["merge_patch": patch, "version": .integer(record.version + 1)])
        case .replacement(let state): details = .object(["replacement": state, "version": .integer(record.version + 1)])
        }
        do {
            let (updated, _) = try await store.updateState(
                tenant: record.tenant, id: record.id, expectedVersion: record.version, stateJSON: next.json, updatedAtMs: now,
                event: NewEvent(
                    action: "session.state_updated", actor: caller.identity, reasoning: reasoning,
                    detailsJSON: details.serialized, occurredAtMs: now))
            record = updated
            parsedState = next.state
            return updated
        } catch {
            if case .versionConflict = error, let fresh = try? await store.session(tenant: record.tenant, id: record.id) {
                record = fresh  // another node or an evicted twin wrote first
                parsedState = nil
            }
            throw SessionError(error)
        }
    }

    private func takeTurn() async {
        if busy {
            await withCheckedContinuation { waiting.append($0) }
        } else {
            busy = true
        }
    }

    private func passTurn() {
        if waiting.isEmpty {
            busy = false
        } else {
            waiting.removeFirst().resume()
        }
    }
}
