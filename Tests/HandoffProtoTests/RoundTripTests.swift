// Handoff — round trips of HandoffProto's value types through protobuf-c.

import HandoffProto
import Testing

@Suite("Round trips")
struct RoundTripTests {
    private func roundTrip<M: ProtoMessage>(_ message: M) throws -> M {
        try M(serializedBytes: message.serializedBytes())
    }

    @Test("every message type decodes from no bytes to its default and encodes back to none")
    func defaultsOfEveryType() throws {
        for type in ProtoRegistry.messageTypes {
            try checkDefault(type)
        }
    }

    private func checkDefault<M: ProtoMessage>(_: M.Type) throws {
        let empty = try M(serializedBytes: [UInt8]())
        #expect(try empty.serializedBytes() == [], "\(M.protoName) default is not empty on the wire")
    }

    @Test(
        "unicode strings survive",
        arguments: [
            "", "plain", VectorFixtures.unicode, String(repeating: "ß漢🙂", count: 10_000), "\u{FEFF}\u{200D}\u{10FFFF}",
        ])
    func unicodeStrings(_ text: String) throws {
        let m = MetadataEntry(key: "k", value: text)
        #expect(try roundTrip(m) == m)
    }

    @Test("empty and 1 MiB bytes survive")
    func bytesSizes() throws {
        var big = [UInt8](repeating: 0, count: 1 << 20)
        for i in big.indices { big[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 7) }
        for payload in [[UInt8](), [0], big] {
            let m = PingRequest(payload: payload)
            let decoded = try roundTrip(m)
            #expect(decoded.payload == payload)
        }
    }

    @Test("negative and 64-bit integers survive")
    func integers() throws {
        for v in [Int64.min, -1, 0, 1, Int64(Int32.max) + 1, Int64.max] {
            let s = Session(version: v, createdAtUnixMs: v, updatedAtUnixMs: -(v / 2))
            #expect(try roundTrip(s) == s)
        }
        for v in [UInt64.min, 1, UInt64(UInt32.max) + 1, UInt64.max] {
            let e = Envelope(callID: v, timeoutMs: v)
            #expect(try roundTrip(e) == e)
        }
    }

    @Test("doubles survive bit for bit, including infinities and NaN")
    func doubles() throws {
        for v in [0.0, 0.163, -1e308, Double.infinity, -Double.infinity, Double.leastNonzeroMagnitude, Double.nan] {
            let decoded = try roundTrip(EscalationStatsResponse(escalationRate: v))
            #expect(decoded.escalationRate.bitPattern == v.bitPattern)
        }
    }

    @Test("-0.0 in a field without presence is sent as absent (protobuf-c compares with 0) but decodes when sent")
    func negativeZero() throws {
        #expect(try EscalationStatsResponse(escalationRate: -0.0).serializedBytes() == [])
        // field 5, wire type 1 (64-bit), the bits of -0.0, as Google's protobuf sends it
        let sent: [UInt8] = [0x29, 0, 0, 0, 0, 0, 0, 0, 0x80]
        #expect(try EscalationStatsResponse(serializedBytes: sent).escalationRate.sign == .minus)
    }

    @Test("repeated and nested messages keep order and content")
    func repeatedNested() throws {
        let many = GetContextResponse(
            session: Session(id: "s", labels: ["a": "1", "b": "2"]),
            turns: (0..<50).map { Turn(sessionID: "s", sequence: Int64($0), input: "in \($0)", author: Identity(name: "n\($0)")) },
            memories: [Memory(content: "m1"), Memory(content: "m2")])
        #expect(try roundTrip(many) == many)
    }

    @Test("enums keep known and unknown values")
    func enums() throws {
        for risk in RiskLevel.knownCases + [.unrecognized(42), .unrecognized(-7), .unrecognized(Int32.max)] {
            let m = MatchedRule(risk: risk)
            #expect(try roundTrip(m).risk.rawValue == risk.rawValue)
        }
        #expect(RiskLevel(rawValue: 4) == .high)
        #expect(RiskLevel.unrecognized(4) == .high, "equality is by number")
    }

    @Test("an unset optional differs from one set to its default")
    func presence() throws {
        let unset = UpdateStateRequest(sessionID: "s", reasoning: "r")
        let zero = UpdateStateRequest(sessionID: "s", reasoning: "r", expectedVersion: 0)
        #expect(try unset.serializedBytes() != zero.serializedBytes())
        #expect(try roundTrip(unset).expectedVersion == nil)
        #expect(try roundTrip(zero).expectedVersion == 0)

        #expect(try roundTrip(Action(confidence: 0.0)).confidence == 0.0)
        #expect(try roundTrip(Action()).confidence == nil)

        #expect(try roundTrip(GetSessionResponse(session: Session())).session == Session())
        #expect(try roundTrip(GetSessionResponse()).session == nil)
    }

    @Test("a oneof keeps which member was set, even when its value is the default")
    func oneofs() throws {
        let patch = UpdateStateRequest(change: .mergePatchJSON(""))
        let replace = UpdateStateRequest(change: .replacementJSON(""))
        #expect(try roundTrip(patch).change == .mergePatchJSON(""))
        #expect(try roundTrip(replace).change == .replacementJSON(""))
        #expect(try roundTrip(UpdateStateRequest()).change == nil)
    }

    @Test("a string holding U+0000 is refused on encode, naming the field")
    func embeddedNUL() throws {
        let m = AddTurnRequest(sessionID: "s", input: "before\u{0}after")
        let error = #expect(throws: ProtoError.self) { try m.serializedBytes() }
        #expect(error?.code == .embeddedNUL)
        #expect(error?.message.contains("\"input\"") == true)
    }

    @Test("every RPC method is listed once with its types")
    func methods() {
        let names = ProtoRegistry.methods.map(\.fullName)
        #expect(Set(names).count == names.count)
        #expect(names.contains("handoff.v1.Health/Ping"))
        #expect(
            ProtoRegistry.methods.filter(\.serverStreaming).map(\.fullName).sorted()
                == ["handoff.v1.Admin/Backup", "handoff.v1.Decisions/WaitForDecision", "handoff.v1.Operators/Watch"])
        #expect(names.count == 30)
    }
}
