// Handoff — the store's write health is told of every write: it must not
// keep anything per write (a closure kept in a Mutex's tuple was re-wrapped
// on each one: memory grew without bound, and handoffd segfaulted at exit
// releasing the chain).

import Foundation
import Synchronization
import Testing

@testable import HandoffCore

@Suite("Write health")
struct WriteHealthTests {
    private static func anonymousKiB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("RssAnon:") } ?? ""
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }

    @Test("a million successful writes keep no memory, and the health is released without a deep chain")
    func successesKeepNothing() async {
        let told = Mutex<[String]>([])
        var health: WriteHealth? = WriteHealth()
        health?.observe { change in told.withLock { $0.append("\(change)") } }
        let before = Self.anonymousKiB()
        for _ in 0..<1_000_000 { health?.succeeded() }
        let grew = Self.anonymousKiB() - before
        #expect(grew < 16 * 1024, "memory grew by \(grew) KiB over a million successful writes")
        health?.record(.full("disk"))
        health?.record(.full("disk"))
        health?.succeeded()
        #expect(told.withLock { $0.count } == 2, "one failure and one recovery are told, once each")
        health = nil  // with a chain of a million thunks, this release overflowed the stack
        #expect(health == nil)
    }
}
