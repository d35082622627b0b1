// Handoff — two PostgresStore instances on one database, as two nodes have:
// writes racing on one session have one winner per version, chains stay
// whole, and a feed reader on one instance sees every event committed by
// both, once each and in commit order, while they are being written.

import Foundation
import HandoffCore
import HandoffPostgres
import HandoffTestSupport
import Logging
import PostgresNIO
import Testing

private let acme = TenantID("acme")

private func event(_ action: String) -> NewEvent {
    NewEvent(action: action, actor: "handoff://tenant/acme/agent/a", reasoning: "", detailsJSON: "{}", occurredAtMs: 1_000)
}

/// Two stores ("nodes") on a fresh database, and how to remove them.
private func twoNodes() async throws -> (PostgresStore, PostgresStore, @Sendable () async -> Void) {
    let (url, drop) = try await PostgresCluster.freshDatabase()
    var settings = try PostgresSettings.parse(url)
    settings.poolSize = 6
    // Started together: the migration runs once, under the advisory lock.
    async let first = PostgresStore(settings: settings)
    async let second = PostgresStore(settings: settings)
    let (a, b) = try await (first, second)
    return (
        a, b,
        {
            await a.shutdown()
            await b.shutdown()
            await drop()
        }
    )
}

@Suite("PostgreSQL store shared by two nodes", .timeLimit(.minutes(2)))
struct SharedStoreTests {
    @Test("updates racing on one session from two nodes: one winner per version, and the chain verifies")
    func oneWinnerPerVersion() async throws {
        let (a, b, remove) = try await twoNodes()
        defer { Task { await remove() } }
        _ = try await a.createSession(
            SessionRecord(tenant: acme, id: "s", version: 1, stateJSON: "{}", status: .active, labels: [:], createdAtMs: 1, updatedAtMs: 1),
            event: event("session.created"))
        await #expect(throws: StoreError.alreadyExists("s")) {
            _ = try await b.createSession(
                SessionRecord(tenant: acme, id: "s", version: 1, stateJSON: "{}", status: .active, labels: [:], createdAtMs: 1, updatedAtMs: 1),
                event: event("session.created"))
        }
        // Each writer returns the versions it wrote.
        let won = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for writer in 0..<8 {
                let store = writer % 2 == 0 ? a : b
                group.addTask {
                    var mine: [Int64] = []
                    for _ in 0..<10 {
                        guard let current = try await store.session(tenant: acme, id: "s") else { return mine }
                        do {
                            _ = try await store.updateState(
                                tenant: acme, id: "s", expectedVersion: current.version, stateJSON: "{\"w\":\(writer)}", updatedAtMs: 2,
                                event: event("session.state_updated"))
                            mine.append(current.version + 1)
                        } catch StoreError.versionConflict {
                            continue
                        }
                    }
                    return mine
                }
            }
            var all: [Int64] = []
            for try await versions in group { all += versions }
            return all
        }
        var counted: [Int64: Int] = [:]
        for version in won { counted[version, default: 0] += 1 }
        let stored = try #require(try await b.session(tenant: acme, id: "s"))
        #expect(counted.values.allSatisfy { $0 == 1 }, "a version was written twice: \(counted)")
        #expect(Int64(counted.count) == stored.version - 1)
        let verifier = try #require(try await a.verifyChain(tenant: acme, sessionID: "s"))
        #expect(verifier.firstBreak == nil && verifier.checked == Int(stored.version))
    }

    @Test("a feed reader on one node sees every event both nodes commit, once each, in commit order, while they write")
    func feedAcrossNodes() async throws {
        let (a, b, remove) = try await twoNodes()
        defer { Task { await remove() } }
        let sessions = 12
        let updates = 15
        for i in 0..<sessions {
            _ = try await (i % 2 == 0 ? a : b).createSession(
                SessionRecord(tenant: acme, id: "s\(i)", version: 1, stateJSON: "{}", status: .active, labels: [:], createdAtMs: 1, updatedAtMs: 1),
                event: event("session.created"))
        }
        let start = try await b.feedHead(tenant: acme)
        let writers = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<sessions {
                    let store = i % 2 == 0 ? a : b
                    group.addTask {
                        for version in 1...updates {
                            _ = try await store.updateState(
                                tenant: acme, id: "s\(i)", expectedVersion: Int64(version), stateJSON: "{}", updatedAtMs: 2,
                                event: event("session.state_updated"))
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        // Read while they write: small pages, again and again, after the last position read.
        var seen: [EventRecord] = []
        var cursor = start
        let deadline = ContinuousClock.now + .seconds(60)
        while seen.count < sessions * updates, ContinuousClock.now < deadline {
            let page = try await b.changes(tenant: acme, after: cursor, actions: nil, limit: 5)
            seen += page
            cursor = page.last?.feedPosition ?? cursor
            if page.isEmpty { try await Task.sleep(for: .milliseconds(2)) }
        }
        try await writers.value
        seen += try await b.changes(tenant: acme, after: cursor, actions: nil, limit: 10_000)
        #expect(seen.count == sessions * updates, "events lost or repeated")
        let positions = seen.compactMap(\.feedPosition)
        #expect(positions == positions.sorted() && Set(positions).count == positions.count)
        for i in 0..<sessions {
            #expect(seen.filter { $0.sessionID == "s\(i)" }.map(\.sequence) == Array(2...Int64(updates + 1)))
        }
    }

    @Test("a write transaction left open in another database of the cluster holds no feed back: the head is exact, a new event read at once")
    func otherDatabaseHoldsNothing() async throws {
        let (a, b, remove) = try await twoNodes()
        defer { Task { await remove() } }
        // Another database's transaction with an id, older than every event
        // below (as a CREATE DATABASE or another application's batch is).
        let cluster = try PostgresSettings.parse(try await PostgresCluster.url())
        let other = try await PostgresConnection.connect(
            configuration: .init(host: cluster.host, port: cluster.port, username: cluster.user, password: nil, database: "postgres", tls: .disable),
            id: 1, logger: Logger(label: "other-database"))
        let logger = Logger(label: "other-database")
        _ = try await other.query("BEGIN", logger: logger).collect()
        _ = try await other.query("SELECT pg_current_xact_id()", logger: logger).collect()
        do {
            _ = try await a.createSession(
                SessionRecord(tenant: acme, id: "s", version: 1, stateJSON: "{}", status: .active, labels: [:], createdAtMs: 1, updatedAtMs: 1),
                event: event("session.created"))
            let created = try #require(try await b.changes(tenant: acme, after: 0, actions: nil, limit: 10).last?.feedPosition)
            #expect(try await b.feedHead(tenant: acme) == created, "the head fell back below the other database's transaction")
            _ = try await b.updateState(
                tenant: acme, id: "s", expectedVersion: 1, stateJSON: "{}", updatedAtMs: 2, event: event("session.state_updated"))
            #expect(try await b.changes(tenant: acme, after: created, actions: nil, limit: 10).map(\.sequence) == [2])
        } catch {
            _ = try? await other.query("ROLLBACK", logger: logger).collect()
            try? await other.close()
            throw error
        }
        _ = try await other.query("ROLLBACK", logger: logger).collect()
        try await other.close()
    }
}
