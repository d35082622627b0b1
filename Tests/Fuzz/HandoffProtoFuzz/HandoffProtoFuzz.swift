// Handoff — libFuzzer entry point for the protobuf decoders.
//
// Every input is decoded as an Envelope (what a frame carries), and, with its
// first byte choosing the type, as one of the API's messages. Whatever decodes
// must re-encode, and the re-encoding must be a fixed point; anything else, and
// every crash, leak or sanitizer report, is a finding.

import HandoffProto

@_cdecl("LLVMFuzzerTestOneInput")
public func handoffProtoFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    roundTrip(Envelope.self, bytes)
    if size > 0 {
        let types = ProtoRegistry.messageTypes
        let type = types[Int(data[0]) % types.count]
        roundTrip(type, UnsafeRawBufferPointer(rebasing: bytes.dropFirst()))
    }
    return 0
}

func roundTrip<M: ProtoMessage>(_: M.Type, _ bytes: UnsafeRawBufferPointer) {
    guard let message = try? M(serializedBytes: bytes) else { return }
    let first: [UInt8]
    do {
        first = try message.serializedBytes()
    } catch {
        fatalError("\(M.protoName) decoded but does not re-encode: \(error)")
    }
    do {
        let again = try M(serializedBytes: first)
        let second = try again.serializedBytes()
        if second != first {
            fatalError("\(M.protoName): re-encoding is not a fixed point")
        }
    } catch {
        fatalError("\(M.protoName): own encoding does not decode: \(error)")
    }
}
