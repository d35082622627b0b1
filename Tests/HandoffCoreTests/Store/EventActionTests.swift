// Handoff — the event actions the domain names are the ones the protocol
// document lists, each once, and a name read back maps to its case.

import Foundation
import HandoffCore
import Testing

@Suite("Event actions")
struct EventActionTests {
    @Test("every action the domain writes has its row in docs/PROTOCOL.md's table, and every row is one the domain writes")
    func documented() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let protocolText = try String(contentsOf: root.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)
        let rows = Set(
            protocolText.split(separator: "\n").compactMap { line -> String? in
                guard line.hasPrefix("| `"), let end = line.dropFirst(3).firstIndex(of: "`") else { return nil }
                let name = String(line[line.index(line.startIndex, offsetBy: 3)..<end])
                return name.contains(".") && !name.contains(" ") && !name.contains("/") ? name : nil
            })
        let written = Set(EventAction.allCases.map(\.rawValue))
        #expect(written.subtracting(rows).isEmpty, "written but not documented: \(written.subtracting(rows).sorted())")
        #expect(rows.subtracting(written).isEmpty, "documented but never written: \(rows.subtracting(written).sorted())")
    }

    @Test("a stored name reads back as its case; a name this version does not write reads as none")
    func kinds() {
        for action in EventAction.allCases {
            #expect(NewEvent(action: action, actor: "a", reasoning: "r", detailsJSON: "{}", occurredAtMs: 1).kind == action)
        }
        #expect(NewEvent(action: "session.renamed", actor: "a", reasoning: "r", detailsJSON: "{}", occurredAtMs: 1).kind == nil)
    }
}
