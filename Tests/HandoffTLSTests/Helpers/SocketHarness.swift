// Handoff — test utility: TLS servers and clients over real sockets on
// 127.0.0.1 (port 0), raw TCP clients, and `openssl s_client`, every wait
// bounded by a deadline.
import Foundation
import HandoffTLS
import HandoffTestSupport
import NIOCore
import NIOPosix

struct FutureTimedOut: Error, CustomStringConvertible {
    var description: String { "an event loop future did not complete in time" }
}

extension EventLoopFuture where Value: Sendable {
    /// `get()` that gives up after `timeout` (the underlying work is not cancelled).
    func get(within timeout: TimeAmount = .seconds(10)) async throws -> Value {
        let promise = self.eventLoop.makePromise(of: Value.self)
        let timer = self.eventLoop.scheduleTask(in: timeout) { promise.fail(FutureTimedOut()) }
        self.whenComplete { result in
            timer.cancel()
            promise.completeWith(result)
        }
        return try await promise.futureResult.get()
    }
}

/// Runs `body` with a one-thread event loop group that is always shut down.
func withEventLoopGroup<T>(_ body: (MultiThreadedEventLoopGroup) async throws -> T) async throws -> T {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    do {
        let result = try await body(group)
        try await group.shutdownGracefully()
        return result
    } catch {
        try? await group.shutdownGracefully()
        throw error
    }
}

/// A TLS echo server on 127.0.0.1 with an ephemeral port; every accepted
/// connection records into the same `log`.
struct TLSTestServer {
    let channel: any Channel
    let log: EventLog

    var port: Int { self.channel.localAddress?.port ?? 0 }

    static func start(context: TLSContext, group: any EventLoopGroup) async throws -> TLSTestServer {
        let log = EventLog()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        TLSHandler(context: context), RecordingHandler(log: log, echo: true),
                    ])
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get(within: .seconds(10))
        return TLSTestServer(channel: channel, log: log)
    }

    func stop() async {
        _ = try? await self.channel.close().get(within: .seconds(5))
    }
}

struct TestClient {
    let channel: any Channel
    let log: EventLog

    /// Connects to 127.0.0.1:`port`, with a `TLSHandler` when `context` is given
    /// (raw TCP otherwise).
    static func connect(port: Int, context: TLSContext?, group: any EventLoopGroup) async throws -> TestClient {
        let log = EventLog()
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context {
                        try channel.pipeline.syncOperations.addHandler(TLSHandler(context: context))
                    }
                    try channel.pipeline.syncOperations.addHandler(RecordingHandler(log: log))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get(within: .seconds(10))
        return TestClient(channel: channel, log: log)
    }

    func send(_ text: String) async throws {
        try await self.channel.writeAndFlush(ByteBuffer(string: text)).get(within: .seconds(10))
    }

    func close() async {
        _ = try? await self.channel.close().get(within: .seconds(5))
    }
}

/// A child process (here: `openssl`) with stdin and merged stdout/stderr pipes.
final class ChildProcess: @unchecked Sendable {
    // @unchecked: `process` and the pipes are used from the test task only;
    // `output` is filled by the pipe's handler under `lock`.
    private let process = Process()
    private let input = closeOnExecPipe()
    private let outputPipe = closeOnExecPipe()
    private let lock = NSLock()
    private var outputData = Data()

    static let opensslPath = "/usr/bin/openssl"
    static var hasOpenSSL: Bool { FileManager.default.isExecutableFile(atPath: opensslPath) }

    init(_ executable: String, _ arguments: [String]) throws {
        self.process.executableURL = URL(fileURLWithPath: executable)
        self.process.arguments = arguments
        self.process.standardInput = self.input
        self.process.standardOutput = self.outputPipe
        self.process.standardError = self.outputPipe
        self.outputPipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.withLock { self.outputData.append(data) }
        }
        try self.process.run()
    }

    var output: String {
        self.lock.withLock { String(decoding: self.outputData, as: UTF8.self) }
    }

    func write(_ text: String) {
        self.input.fileHandleForWriting.write(Data(text.utf8))
    }

    func closeInput() {
        try? self.input.fileHandleForWriting.close()
    }

    /// Waits for the process to exit; kills it after `timeout`. Returns the exit status.
    @discardableResult
    func wait(timeout: Duration = .seconds(10)) async throws -> Int32 {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while self.process.isRunning {
            if ContinuousClock.now >= deadline {
                self.process.terminate()
                try await Task.sleep(for: .milliseconds(100))
                throw WaitTimedOut(what: "\(self.process.arguments ?? []) to exit", seen: [])
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        // Let the readability handler drain what is left.
        try await Task.sleep(for: .milliseconds(50))
        self.outputPipe.fileHandleForReading.readabilityHandler = nil
        if let rest = try? self.outputPipe.fileHandleForReading.readToEnd() {
            self.lock.withLock { self.outputData.append(rest) }
        }
        return self.process.terminationStatus
    }

    deinit {
        if self.process.isRunning { self.process.terminate() }
    }
}
