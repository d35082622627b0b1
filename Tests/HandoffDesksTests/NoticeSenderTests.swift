// Handoff — NoticeSender: retries of a failed delivery, and a shutdown that
// does not wait out a retry's delay.

import Foundation
import HandoffCore
import Synchronization
import Testing

@testable import HandoffDesks
@testable import HandoffPolicy

@Suite("Desk notices", .timeLimit(.minutes(1)))
struct NoticeSenderTests {
    /// Fails its first `failures` attempts (permanently if `permanent`), then takes the notice.
    final class Flaky: NoticeChannel {
        struct Failure: DeliveryFailure { let isPermanent: Bool }
        let name = "flaky"
        let failures: Int
        let permanent: Bool
        let attempts = Mutex(0)
        init(failures: Int, permanent: Bool = false) {
            self.failures = failures
            self.permanent = permanent
        }
        func notify(_ notice: DeskNotice) async throws {
            if attempts.withLock({
                $0 += 1
                return $0
            }) <= failures {
                throw Failure(isPermanent: permanent)
            }
        }
    }

    private let notice = DeskNotice(
        kind: "approval.requested", tenant: .default, approvalID: "a", sessionID: "s", level: 1, recipients: ["alice"], summary: "x")

    /// What `onFailure` was told: the wait before each next attempt (nil: none).
    final class Failures: Sendable {
        let reported = Mutex<[Duration?]>([])
        func withLock<T>(_ body: (inout [Duration?]) -> T) -> T { reported.withLock { body(&$0) } }
    }

    private func sender(_ channel: Flaky, delays: [Duration]) -> (NoticeSender, Failures) {
        let failures = Failures()
        let sender = NoticeSender(channels: [channel], retryDelays: delays) { _, _, _, retryIn in
            failures.withLock { $0.append(retryIn) }
        }
        return (sender, failures)
    }

    @Test("a failing delivery is tried again after each delay until it passes, then no more")
    func retriesUntilDelivered() async throws {
        let channel = Flaky(failures: 2)
        let (sender, failures) = sender(channel, delays: [.milliseconds(20), .milliseconds(20), .milliseconds(20)])
        sender.send(notice)
        await sender.flush()
        #expect(channel.attempts.withLock { $0 } == 3)
        #expect(failures.withLock { $0 } == [.milliseconds(20), .milliseconds(20)])
    }

    @Test("retries end with the last delay; a permanent failure is not retried")
    func givesUp() async throws {
        let stubborn = Flaky(failures: 100)
        let (sender, failures) = sender(stubborn, delays: [.milliseconds(10), .milliseconds(10)])
        sender.send(notice)
        await sender.flush()
        #expect(stubborn.attempts.withLock { $0 } == 3)
        #expect(failures.withLock { $0 } == [.milliseconds(10), .milliseconds(10), nil])

        let refusing = Flaky(failures: 100, permanent: true)
        let (second, refusals) = self.sender(refusing, delays: [.milliseconds(10)])
        second.send(notice)
        await second.flush()
        #expect(refusing.attempts.withLock { $0 } == 1)
        #expect(refusals.withLock { $0 } == [nil])
    }

    @Test("beyond maximumRetries waiting, a failure is final")
    func boundedRetries() async throws {
        let channel = Flaky(failures: 3)
        let failures = Failures()
        let sender = NoticeSender(channels: [channel], retryDelays: [.seconds(600)], maximumRetries: 2) { _, _, _, retryIn in
            failures.withLock { $0.append(retryIn) }
        }
        for _ in 0..<3 { sender.send(notice) }
        while failures.withLock({ $0.count < 3 }) { try await Task.sleep(for: .milliseconds(5)) }
        #expect(failures.withLock { $0 } == [.seconds(600), .seconds(600), nil])
        #expect(await sender.flush(within: .seconds(5)) == 0)
        #expect(channel.attempts.withLock { $0 } == 5, "two retries, tried at once by the flush")
    }

    @Test("at shutdown a notice waiting for its retry is tried once more at once")
    func shutdownHurriesRetries() async throws {
        let channel = Flaky(failures: 1)
        let (sender, failures) = sender(channel, delays: [.seconds(600)])
        sender.send(notice)
        while failures.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(5)) }
        // Nothing left within 5 s, although the retry's own wait is 600 s.
        #expect(await sender.flush(within: .seconds(5)) == 0)
        #expect(channel.attempts.withLock { $0 } == 2)
        #expect(failures.withLock { $0 } == [.seconds(600)])
    }

    /// Holds every delivery until `open()`; counts what it took.
    final class Gated: NoticeChannel {
        let name: String
        let taken = Mutex(0)
        private let gate = AsyncStream<Void>.makeStream()
        private let isOpen = Mutex(false)
        init(name: String) { self.name = name }
        func open() {
            isOpen.withLock { $0 = true }
            gate.continuation.finish()
        }
        func notify(_ notice: DeskNotice) async throws {
            if !isOpen.withLock({ $0 }) { for await _ in gate.stream {} }
            taken.withLock { $0 += 1 }
        }
    }

    /// Takes every delivery at once.
    final class Counting: NoticeChannel {
        let name = "counting"
        let taken = Mutex(0)
        func notify(_ notice: DeskNotice) async throws { taken.withLock { $0 += 1 } }
    }

    @Test("a channel whose receiver hangs holds up no other channel")
    func channelsApart() async throws {
        let stuck = Gated(name: "stuck")
        let fine = Counting()
        let sender = NoticeSender(channels: [stuck, fine])
        for _ in 0..<3 { sender.send(notice) }
        while fine.taken.withLock({ $0 }) < 3 { try await Task.sleep(for: .milliseconds(2)) }
        #expect(stuck.taken.withLock { $0 } == 0, "the stuck channel took a notice while held")
        stuck.open()
        await sender.flush()
        #expect(stuck.taken.withLock { $0 } == 3)
    }

    @Test("a notice a full queue drops is reported with its channel; the rest are delivered")
    func dropsReported() async throws {
        let stuck = Gated(name: "stuck")
        let dropped = Mutex<[String]>([])
        let sender = NoticeSender(channels: [stuck], capacity: 2) { _, _, _, _ in
        } onDropped: { notice, channel in
            dropped.withLock { $0.append("\(channel):\(notice.id)") }
        }
        var sent: [DeskNotice] = []
        for _ in 0..<6 {
            var each = notice
            each.id = UUID().uuidString
            sent.append(each)
            sender.send(each)
        }
        stuck.open()
        await sender.flush()
        let reports = dropped.withLock { $0 }
        #expect(reports.count >= 3, "\(reports)")
        #expect(reports.allSatisfy { $0.hasPrefix("stuck:") })
        #expect(reports.count + stuck.taken.withLock { $0 } == 6, "every notice is either delivered or reported dropped")
    }
}
