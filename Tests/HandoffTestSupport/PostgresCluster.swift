// Handoff — a real PostgreSQL server for the tests. `make test` starts a
// throwaway cluster (scripts/pg-cluster) and names it in HANDOFF_TEST_POSTGRES;
// run without it (`swift test` alone), the first test that needs one starts
// its own the same way and stops it when the test process exits. Each test
// gets a database of its own.

public import Foundation

public enum PostgresCluster {
    /// The repository's root (for scripts/pg-cluster).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    private static let started = StartOnce()

    /// `postgres://handoff@127.0.0.1:PORT/handoff` of a running cluster.
    public static func url() async throws -> String {
        if let url = ProcessInfo.processInfo.environment["HANDOFF_TEST_POSTGRES"], !url.isEmpty { return url }
        return try await started.url()
    }

    /// A new, empty database on the cluster: its URL, and how to drop it.
    public static func freshDatabase() async throws -> (url: String, drop: @Sendable () async -> Void) {
        let base = try await url()
        let name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let admin = base.replacingOccurrences(of: #"/[^/]*$"#, with: "/postgres", options: .regularExpression)
        let created = try await runProcess("/usr/bin/env", ["psql", admin, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", "CREATE DATABASE \(name)"])
        guard created.status == 0 else { throw ClusterError(text: "CREATE DATABASE failed: \(created.output)") }
        let url = base.replacingOccurrences(of: #"/[^/]*$"#, with: "/\(name)", options: .regularExpression)
        return (
            url,
            {
                _ = try? await runProcess("/usr/bin/env", ["psql", admin, "-qAt", "-c", "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"])
            }
        )
    }

    public struct ClusterError: Error, CustomStringConvertible {
        public let text: String
        public var description: String { text }
    }

    /// Starts one cluster for this process, the first time it is asked for
    /// (one task: callers that come while it starts wait for the same one).
    private actor StartOnce {
        private var starting: Task<String, any Error>?

        func url() async throws -> String {
            if let starting { return try await starting.value }
            let task = Task { try await Self.start() }
            starting = task
            return try await task.value
        }

        private static func start() async throws -> String {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("handoff-pg-\(getpid())").path
            let result = try await runProcess(root + "/scripts/pg-cluster", ["start", directory])
            guard result.status == 0, let url = result.output.split(separator: "\n").last.map(String.init), url.hasPrefix("postgres://") else {
                throw ClusterError(text: "could not start a PostgreSQL cluster (scripts/pg-cluster): \(result.output)")
            }
            stopDirectory = directory
            atexit {
                guard let directory = stopDirectory else { return }
                let stop = Process()
                stop.executableURL = URL(fileURLWithPath: PostgresCluster.root + "/scripts/pg-cluster")
                stop.arguments = ["stop", directory]
                try? stop.run()
                stop.waitUntilExit()
                try? FileManager.default.removeItem(atPath: directory)
            }
            return url
        }
    }
}

/// The cluster this process started, stopped at exit (set once, before atexit is registered).
nonisolated(unsafe) private var stopDirectory: String?
