// Handoff — a process that exits while other threads are inside OpenSSL
// exits cleanly: OpenSSL is initialised without its atexit(3) cleanup, which
// freed its global locks under those threads (handoffd died of SIGSEGV after
// "server stopped" on SIGTERM, in CRYPTO_THREAD_unlock on a freed lock).

import Foundation
import HandoffTLS
import HandoffTestSupport
import Testing

@Suite("OpenSSL at exit")
struct OpenSSLExitTests {
    static let childVariable = "HANDOFF_TEST_OPENSSL_EXIT"

    @Test("a process exiting while two threads make and free TLS contexts exits with status 0, ten times out of ten")
    func exitWhileInUse() async throws {
        var environment = ProcessInfo.processInfo.environment
        environment[Self.childVariable] = "1"
        for run in 1...10 {
            // This test binary again, running only the child below.
            let (status, output) = try await runProcess(
                "/proc/self/exe", ["--testing-library", "swift-testing", "--filter", "exitWhileInUseChild"], environment: environment)
            #expect(status == 0, "run \(run): \(output.suffix(2000))")
        }
    }

    @Test("the child of the test above (does nothing unless that test runs it)")
    func exitWhileInUseChild() {
        guard ProcessInfo.processInfo.environment[Self.childVariable] == "1" else { return }
        for _ in 0..<2 {
            Thread.detachNewThread {
                while true { _ = try? TLSContext(configuration: .client(peerVerification: .none)) }
            }
        }
        usleep(50_000)
        exit(0)
    }
}
