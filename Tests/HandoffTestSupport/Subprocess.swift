// Handoff — running child processes from tests without deadlocks.
//
// Two traps, both seen here: (1) tests run in parallel, so one test's child
// inherits another test's pipe ends unless they are close-on-exec, and a
// reader then waits for an EOF that only comes when an unrelated long-lived
// child (say a handoffd) exits; (2) waiting for a child on one of the two
// cooperative threads of these machines starves every other test.

public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A pipe whose two descriptors are closed in every child that does not
/// take them as its standard input or output (dup2 clears the flag there).
public func closeOnExecPipe() -> Pipe {
    let pipe = Pipe()
    for fd in [pipe.fileHandleForReading.fileDescriptor, pipe.fileHandleForWriting.fileDescriptor] {
        _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
    }
    return pipe
}

/// Runs blocking work on a thread of its own, off the cooperative pool.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Runs `executable` to completion and returns its status and its standard
/// output and error, merged; in `directory` and with `environment` when given.
public func runProcess(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil
) async throws -> (status: Int32, output: String) {
    try await offPool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let output = closeOnExecPipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? output.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
