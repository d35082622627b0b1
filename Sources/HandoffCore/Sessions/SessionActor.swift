// Handoff — one resident session: its changes happen one at a time, in
// arrival order, and it keeps what GetContext needs so that a read of a
// resident session does not touch the store.

import Synchronization

/// One session, resident: the last committed record, its parsed state, and
/// (once asked for) a bounded copy of its latest turns and its memories.
///
/// A default actor on purpose. Called from a server handler, whose task
/// prefers its connection's event loop as task executor, it runs on that
/// loop's thread (SE-0417), so a call does not hop threads to reach it. An
/// earlier version gave it the loop as a custom serial executor instead; under
/// 64 concurrent calls a resumed continuation was then occasionally never run
/// and the call hung (seen in about one `handoff-bench rpc --method update_state
/// --sessions 20 --concurrency 64 --connections 1` run in fifteen; none in
/// fifty runs since).
///
/// Every change to the session goes through this actor, one at a time, so
/// what it holds is what the store holds once each change committed; a read
/// made while a change waits for its commit sees the state before that
/// change, which is the last acknowledged one.
actor SessionActor {
    struct Limits: Sendable {
        var stateSizeLimit: Int
        var contextCacheBytes: Int
        var memoryBytesLimit: Int
    }

    /// The latest turns and the memories, within `Limits.contextCacheBytes`.
    private struct ContextCache {
        /// The latest turns, oldest first (a suffix of all of them).
        var turns: [TurnRecord]
        var turnBytes: Int
        /// Every memory, or nil when they do not fit.
        var memories: [MemoryRecord]?
        var memoryBytes: Int
        var totalTurns: Int64
    }

    private let key: SessionService.Key
    private let store: any Store
    private let limits: Limits
    /// The store is shared with other server processes (`Store.isShared`):
    /// another node may have changed the session since this actor last read
    /// it, so every call reads the store again instead of answering from
    /// what the actor holds (its changes still take turns here, and the
    /// store checks versions in the write's transaction).
    private let shared: Bool
    /// Set once the record is loaded; read by the registry without awaiting.
    private nonisolated let loaded = Atomic<Bool>(false)

    private var record: SessionRecord?
    /// `record.stateJSON` parsed, kept so an update does not parse it again.
    private var parsedState: JSONValue?
    private var cached: ContextCache?
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(key: SessionService.Key, loaded record: SessionRecord?, store: any Store, limits: Limits) {
        self.key = key
        self.record = record
        self.store = store
        self.limits = limits
        self.shared = store.isShared
        if record != nil { loaded.store(true, ordering: .relaxed) }
    }

    /// Whether the actor holds its session (false until loaded, and for an id that names none).
    nonisolated var isLoaded: Bool { loaded.load(ordering: .relaxed) }

    func current() async throws(HandoffError) -> SessionRecord {
        if let record, !shared { return record }
        await takeTurn()
        defer { passTurn() }
        forgetIfShared()
        return try await load()
    }

    func update(
        change: StateChange, reasoning: String, expectedVersion: Int64?, caller: Caller, now: Int64
    ) async throws(HandoffError) -> SessionRecord {
        // The store write suspends this actor; without the turn, a second update
        // could start from the same version and be refused as stale.
        try await takeTurnToChange()
        defer { passTurn() }
        // Without an expected version the caller asked for its change on
        // whatever is current: when another node wrote between the read and
        // the write (a shared store), read again and apply it there, a few
        // times, rather than refuse a version the caller never named.
        var attempt = 0
        while true {
            attempt += 1
            forgetIfShared()
            do {
                return try await applyUpdate(change: change, reasoning: reasoning, expectedVersion: expectedVersion, caller: caller, now: now)
            } catch .staleVersion(let message) where expectedVersion == nil && shared && attempt < 50 {
                _ = message
                forget()
                // Many nodes writing one session: step aside a little, more each time.
                if attempt > 2 { try? await Task.sleep(for: .microseconds(Int64.random(in: 0...(500 * Int64(attempt))))) }
            }
        }
    }

    /// One try of `update`, the caller holding the turn.
    private func applyUpdate(
        change: StateChange, reasoning: String, expectedVersion: Int64?, caller: Caller, now: Int64
    ) async throws(HandoffError) -> SessionRecord {
        var record = try await load()
        if let expectedVersion, expectedVersion != record.version {
            throw .staleVersion("stale version: expected \(expectedVersion), the session is at \(record.version)")
        }
        let current: JSONValue
        if let parsedState {
            current = parsedState
        } else {
            do {
                current = try JSONValue(parsing: record.stateJSON)
            } catch {
                throw .storeFailed("stored state of \(record.id) does not parse: \(error.message)")
            }
        }
        let next: (state: JSONValue, json: String)
        do {
            next = try SessionState.apply(change, to: current, sizeLimit: limits.stateSizeLimit)
        } catch {
            throw .invalid(error.message)
        }
        let details: JSONValue
        switch change {
        case .mergePatch(let patch): details = .object(["merge_patch": patch, "version": .integer(record.version + 1)])
        case .replacement(let state): details = .object(["replacement": state, "version": .integer(record.version + 1)])
        }
        do {
            _ = try await store.updateState(
                tenant: record.tenant, id: record.id, expectedVersion: record.version, stateJSON: next.json, updatedAtMs: now,
                event: NewEvent(
                    action: .sessionStateUpdated, actor: caller.identity, reasoning: reasoning,
                    detailsJSON: details.serialized, occurredAtMs: now))
        } catch {
            if case .versionConflict = error {
                forget()  // another node wrote first: the next call reloads
            }
            throw HandoffError(error)
        }
        record.version += 1
        record.stateJSON = next.json
        record.updatedAtMs = now
        self.record = record
        parsedState = next.state
        return record
    }

    func addTurn(_ turn: TurnRecord, event: NewEvent) async throws(HandoffError) -> TurnRecord {
        try await takeTurnToChange()
        defer { passTurn() }
        forgetIfShared()
        _ = try await load()
        let stored: TurnRecord
        do {
            stored = try await store.addTurn(tenant: key.tenant, turn: turn, event: event)
        } catch {
            throw HandoffError(error)
        }
        if var cache = cached {
            cache.turns.append(stored)
            cache.turnBytes += Self.size(of: stored)
            cache.totalTurns = stored.sequence
            trimTurns(&cache)
            cached = cache
        }
        return stored
    }

    func addMemory(_ memory: MemoryRecord, event: NewEvent) async throws(HandoffError) -> MemoryRecord {
        try await takeTurnToChange()
        defer { passTurn() }
        forgetIfShared()
        _ = try await load()
        let stored: MemoryRecord
        do {
            stored = try await store.addMemory(
                tenant: key.tenant, memory: memory, event: event,
                limit: (count: SessionService.maximumMemories, bytes: limits.memoryBytesLimit))
        } catch {
            throw HandoffError(error)
        }
        if var cache = cached, cache.memories != nil {
            cache.memoryBytes += Self.size(of: stored)
            if cache.memoryBytes + cache.turnBytes > limits.contextCacheBytes {
                cache.memories = nil  // too many to keep: read them from the store
            } else {
                cache.memories!.append(stored)
            }
            cached = cache
        }
        return stored
    }

    /// Runs a change to something of the session's kept elsewhere (a pending
    /// action) in the session's turn, and takes the session status the store
    /// computed in the same transaction (nil: nothing was written).
    func changeBeside<T: Sendable>(
        addsTurns: Bool = false, first: Bool = false, _ work: @Sendable () async throws(HandoffError) -> (T, status: SessionRecord.Status?)
    ) async throws(HandoffError) -> T {
        // Not takeTurnToChange unless `first`: these changes often follow
        // one already committed for the same call (a pending action, then
        // its ticket); stopping between them would leave the first without
        // the second. A call's first change stops if the call has ended.
        if first { try await takeTurnToChange() } else { await takeTurn() }
        defer { passTurn() }
        forgetIfShared()
        _ = try await load()
        if addsTurns { cached = nil }  // the next GetContext reads the new turns
        let (value, status) = try await work()
        if let status { record?.status = status }
        return value
    }

    /// The session, its latest `turnLimit` turns (oldest first) and its memories.
    func context(turnLimit: Int) async throws(HandoffError) -> SessionContext {
        if !shared, let record, let cache = cached, let answer = Self.answer(record, cache, turnLimit) { return answer }
        // Filling the cache needs the turn: no change may commit between the
        // store read and keeping what it returned.
        await takeTurn()
        defer { passTurn() }
        forgetIfShared()
        if cached == nil {
            // One read brings the session (if not loaded yet) and its context.
            let found: SessionContext?
            do {
                found = try await store.context(tenant: key.tenant, sessionID: key.id, turnLimit: max(turnLimit, 50))
            } catch {
                throw HandoffError(error)
            }
            guard let found else { throw .notFound("session \(key.id) not found") }
            if self.record == nil {
                self.record = found.session
                loaded.store(true, ordering: .relaxed)
            }
            let record = self.record!
            var cache = ContextCache(
                turns: found.turns, turnBytes: found.turns.reduce(0) { $0 + Self.size(of: $1) },
                memories: found.memories, memoryBytes: found.memories.reduce(0) { $0 + Self.size(of: $1) },
                totalTurns: found.totalTurns)
            if cache.memoryBytes > limits.contextCacheBytes {
                cache.memories = nil
            }
            trimTurns(&cache)
            cached = cache
            // The read answers this call whatever the cache keeps.
            if found.turns.count >= turnLimit || Int64(found.turns.count) == found.totalTurns {
                return SessionContext(
                    session: record, turns: Array(found.turns.suffix(turnLimit)), memories: found.memories,
                    totalTurns: found.totalTurns)
            }
        }
        let record = try await load()
        if let cache = cached, let answer = Self.answer(record, cache, turnLimit) { return answer }
        // More than the cache holds: straight from the store.
        do {
            guard let found = try await store.context(tenant: key.tenant, sessionID: key.id, turnLimit: turnLimit) else {
                throw HandoffError.notFound("session \(key.id) not found")
            }
            return SessionContext(session: record, turns: found.turns, memories: found.memories, totalTurns: found.totalTurns)
        } catch let error as HandoffError {
            throw error
        } catch let error as StoreError {
            throw HandoffError(error)
        } catch {
            throw .storeFailed("\(error)")
        }
    }

    /// The context from the cache, when the cache can answer it.
    private static func answer(_ record: SessionRecord, _ cache: ContextCache, _ turnLimit: Int) -> SessionContext? {
        guard let memories = cache.memories,
            cache.turns.count >= turnLimit || Int64(cache.turns.count) == cache.totalTurns
        else { return nil }
        return SessionContext(session: record, turns: Array(cache.turns.suffix(turnLimit)), memories: memories, totalTurns: cache.totalTurns)
    }

    /// Drops the oldest cached turns until turns and memories fit the budget.
    private func trimTurns(_ cache: inout ContextCache) {
        let budget = limits.contextCacheBytes - (cache.memories == nil ? 0 : cache.memoryBytes)
        var drop = 0
        while cache.turnBytes > budget, drop < cache.turns.count {
            cache.turnBytes -= Self.size(of: cache.turns[drop])
            drop += 1
        }
        if drop > 0 { cache.turns.removeFirst(drop) }
    }

    private static func size(of turn: TurnRecord) -> Int {
        turn.input.utf8.count + turn.output.utf8.count + turn.metadataJSON.utf8.count + turn.reasoning.utf8.count
            + turn.author.utf8.count + 64
    }

    private static func size(of memory: MemoryRecord) -> Int {
        memory.content.utf8.count + memory.metadataJSON.utf8.count + 48
    }

    /// The record, loading it from the store the first time; the caller holds the turn.
    private func load() async throws(HandoffError) -> SessionRecord {
        if let record { return record }
        let found: SessionRecord?
        do {
            found = try await store.session(tenant: key.tenant, id: key.id)
        } catch {
            throw HandoffError(error)
        }
        guard let found else { throw .notFound("session \(key.id) not found") }
        record = found
        loaded.store(true, ordering: .relaxed)
        return found
    }

    /// With a shared store, drops what the actor holds (the caller holds the turn).
    private func forgetIfShared() {
        if shared { forget() }
    }

    /// Drops what the actor holds; the next call reads the store again.
    private func forget() {
        record = nil
        parsedState = nil
        cached = nil
    }

    /// Takes the turn for a change. A call that ended while it waited for
    /// the turn (the client cancelled it, or its deadline passed, and it was
    /// answered so) changes nothing: its task is cancelled, and the change
    /// would commit after the caller was told it did not happen.
    private func takeTurnToChange() async throws(HandoffError) {
        await takeTurn()
        if Task.isCancelled {
            passTurn()
            throw .callEnded("the call ended (cancelled, or past its deadline) before its change started; nothing was changed")
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
