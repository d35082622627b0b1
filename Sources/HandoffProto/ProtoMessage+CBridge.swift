// Handoff — the bridge between HandoffProto's value types and protobuf-c.
//
// All unsafe pointer code of HandoffProto lives in this file and in the
// generated `_CBridged` conformances that call it. Encoding builds the C struct
// tree in an arena (one bump allocator freed as a whole), asks protobuf-c for
// the packed size and packs straight into the result array. Decoding lets
// protobuf-c unpack (it bounds every length by the input), copies the fields
// into Swift values and frees the C tree before returning.

internal import CHandoffProto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a generated message provides to the bridge: its C struct type, the
/// protoc-c functions for it, and conversions in both directions.
protocol _CBridged: ProtoMessage {
    associatedtype CStruct
    static func _cUnpack(_ count: Int, _ data: UnsafePointer<UInt8>) -> UnsafeMutablePointer<CStruct>?
    static func _cFree(_ c: UnsafeMutablePointer<CStruct>)
    static func _cPackedSize(_ c: UnsafePointer<CStruct>) -> Int
    static func _cPack(_ c: UnsafePointer<CStruct>, _ out: UnsafeMutablePointer<UInt8>) -> Int
    /// Reads a C struct that protobuf-c unpacked (so every pointer is valid).
    init(_c c: UnsafePointer<CStruct>) throws(ProtoError)
    /// Builds the C struct of `m` in `arena`; the result lives as long as the arena.
    static func _cMake(_ m: Self, _ arena: inout _ProtoArena) throws(ProtoError) -> UnsafeMutablePointer<CStruct>
}

/// One byte that stands in for the data pointer of an empty input, so
/// protobuf-c is never handed NULL.
private let emptyInput: [UInt8] = [0]

@inline(__always)
func _protoDecode<M: _CBridged>(_ bytes: UnsafeRawBufferPointer) throws(ProtoError) -> M {
    let unpacked: UnsafeMutablePointer<M.CStruct>?
    if let base = bytes.baseAddress, bytes.count > 0 {
        unpacked = M._cUnpack(bytes.count, base.assumingMemoryBound(to: UInt8.self))
    } else {
        unpacked = emptyInput.withUnsafeBufferPointer { M._cUnpack(0, $0.baseAddress!) }
    }
    guard let c = unpacked else {
        throw ProtoError(
            code: .malformed,
            message: "\(M.protoName): \(bytes.count) bytes are not a valid protobuf encoding (truncated, wrong wire type or bad length)"
        )
    }
    defer { M._cFree(c) }
    return try M(_c: c)
}

@inline(__always)
func _protoEncode<M: _CBridged>(_ m: M) throws(ProtoError) -> [UInt8] {
    // The C tree of most messages fits in the arena's first chunk, on the
    // stack: no malloc of a chunk per encoding. (Swift places a temporary
    // allocation on the stack up to 1 KiB; past that it takes it from the heap.)
    let encoded: Result<[UInt8], ProtoError> = withUnsafeTemporaryAllocation(
        byteCount: _ProtoArena.firstChunkSize, alignment: _ProtoArena.alignment
    ) { stack in
        var arena = _ProtoArena(first: stack)
        let c: UnsafeMutablePointer<M.CStruct>
        do throws(ProtoError) {
            c = try M._cMake(m, &arena)
        } catch {
            return .failure(error)
        }
        let size = M._cPackedSize(c)
        if size == 0 { return .success([]) }
        return .success(
            [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                count = M._cPack(c, buffer.baseAddress!)
                precondition(count == size, "protobuf-c packed \(count) bytes after announcing \(size)")
            })
    }
    return try encoded.get()
}

/// Reads a protobuf-c string field; NULL and "" are both the empty string.
@inline(__always)
func _protoString(_ p: UnsafeMutablePointer<CChar>?, _ field: StaticString) throws(ProtoError) -> String {
    guard let p, p.pointee != 0 else { return "" }
    guard let s = String(validatingCString: p) else {
        throw ProtoError(code: .invalidUTF8, message: "string field \"\(field)\" is not valid UTF-8")
    }
    return s
}

/// Copies a protobuf-c bytes field into an array.
@inline(__always)
func _protoBytes(_ b: ProtobufCBinaryData) -> [UInt8] {
    guard b.len > 0, let data = b.data else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: b.len))
}

/// A bump allocator for the C struct tree of one encoding. Every pointer it
/// hands out stays valid until the arena is destroyed, which frees them all;
/// being non-copyable, it cannot be freed twice or outlive its scope by copy.
struct _ProtoArena: ~Copyable {
    /// The caller's first chunk (see `_protoEncode`).
    static let firstChunkSize = 1024
    static let chunkSize = 2048
    /// Enough for every C type protobuf-c's structs hold (pointers, 64-bit
    /// integers, doubles); more would make the heap's chunks `posix_memalign`s.
    static let alignment = 8
    /// The chunks it allocated (the first, the caller's, is not among them).
    private var chunks: [UnsafeMutableRawPointer] = []
    private var cursor = 0
    private var limit = 0
    private var current: UnsafeMutableRawPointer?

    init() {}

    /// An arena whose first chunk is `first` (the caller's, typically on the
    /// stack); it must outlive the arena and everything allocated in it.
    init(first: UnsafeMutableRawBufferPointer) {
        current = first.baseAddress
        limit = first.count
    }

    deinit {
        for chunk in chunks { chunk.deallocate() }
    }

    private mutating func raw(_ size: Int, alignment: Int) -> UnsafeMutableRawPointer {
        // Offsets are aligned within a chunk, so a chunk's base must be aligned at least as much.
        precondition(alignment <= Self.alignment, "a C type aligned to \(alignment) bytes in the protobuf arena")
        if let base = current {
            let aligned = (cursor + alignment - 1) & ~(alignment - 1)
            if aligned + size <= limit {
                cursor = aligned + size
                return base + aligned
            }
        }
        let capacity = max(Self.chunkSize, size)
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: Self.alignment)
        chunks.append(chunk)
        current = chunk
        limit = capacity
        cursor = size
        return chunk
    }

    /// Uninitialised room for one `T` (the caller initialises it).
    mutating func allocate<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        raw(MemoryLayout<T>.stride, alignment: MemoryLayout<T>.alignment).bindMemory(to: T.self, capacity: 1)
    }

    /// Uninitialised room for `count` values of a trivial C type.
    mutating func allocateArray<T>(_: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        raw(MemoryLayout<T>.stride * count, alignment: MemoryLayout<T>.alignment).bindMemory(to: T.self, capacity: count)
    }

    /// A NUL-terminated copy of `s`; refuses strings that hold U+0000.
    mutating func cString(_ s: String, _ field: StaticString) throws(ProtoError) -> UnsafeMutablePointer<CChar> {
        var s = s
        let count = s.utf8.count
        let p = raw(count + 1, alignment: 1).bindMemory(to: CChar.self, capacity: count + 1)
        let clean = s.withUTF8 { utf8 -> Bool in
            guard let src = utf8.baseAddress, count > 0 else { return true }
            memcpy(p, src, count)
            return memchr(src, 0, count) == nil
        }
        p[count] = 0
        guard clean else {
            throw ProtoError(code: .embeddedNUL, message: "string field \"\(field)\" contains U+0000, which cannot be encoded")
        }
        return p
    }

    /// A copy of `bytes` as protobuf-c binary data.
    mutating func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        guard !bytes.isEmpty else { return ProtobufCBinaryData(len: 0, data: nil) }
        let p = allocateArray(UInt8.self, count: bytes.count)
        bytes.withUnsafeBufferPointer { src in _ = memcpy(p, src.baseAddress!, bytes.count) }
        return ProtobufCBinaryData(len: bytes.count, data: p)
    }
}
