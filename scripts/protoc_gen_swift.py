#!/usr/bin/env python3
# Handoff — Swift code generator for the protobuf-c bridge.
#
# Reads a FileDescriptorSet (protoc --descriptor_set_out --include_source_info)
# and writes, for every .proto file, one Swift file of Sendable value types
# whose encoding and decoding go through the C structs that protoc-c generates
# in the CHandoffProto target. It mirrors protoc-c's naming rules
# (protoc-c/c_helpers.cc: FullNameToC, FullNameToLower, CamelToLower) so the
# Swift code calls the generated C functions directly.
#
# Usage: protoc_gen_swift.py DESCRIPTOR_SET OUT_DIR
"""Generate HandoffProto's Swift value types from a descriptor set."""

import os
import re
import sys

from google.protobuf import descriptor_pb2 as d

FD = d.FieldDescriptorProto

SWIFT_KEYWORDS = {
    "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import",
    "init", "inout", "internal", "let", "open", "operator", "private", "protocol", "public",
    "rethrows", "static", "struct", "subscript", "typealias", "var", "break", "case", "continue",
    "default", "defer", "do", "else", "fallthrough", "for", "guard", "if", "in", "repeat",
    "return", "switch", "where", "while", "as", "Any", "catch", "false", "is", "nil", "super",
    "self", "Self", "throw", "throws", "true", "try", "Type", "Protocol",
}

# Words written in upper case when they are not the first word of a Swift name,
# following the Swift API design guidelines (sessionID, stateJSON).
ACRONYMS = {"id": "ID", "ids": "IDs", "json": "JSON", "url": "URL", "mfa": "MFA", "sla": "SLA",
            "ttl": "TTL", "ms": "Ms", "alpn": "ALPN", "tls": "TLS", "crl": "CRL"}

SCALARS = {
    # type: (swift type, default literal, C kind)
    FD.TYPE_STRING: ("String", '""', "string"),
    FD.TYPE_BYTES: ("[UInt8]", "[]", "bytes"),
    FD.TYPE_BOOL: ("Bool", "false", "bool"),
    FD.TYPE_INT32: ("Int32", "0", "num"),
    FD.TYPE_SINT32: ("Int32", "0", "num"),
    FD.TYPE_SFIXED32: ("Int32", "0", "num"),
    FD.TYPE_INT64: ("Int64", "0", "num"),
    FD.TYPE_SINT64: ("Int64", "0", "num"),
    FD.TYPE_SFIXED64: ("Int64", "0", "num"),
    FD.TYPE_UINT32: ("UInt32", "0", "num"),
    FD.TYPE_FIXED32: ("UInt32", "0", "num"),
    FD.TYPE_UINT64: ("UInt64", "0", "num"),
    FD.TYPE_FIXED64: ("UInt64", "0", "num"),
    FD.TYPE_DOUBLE: ("Double", "0", "num"),
    FD.TYPE_FLOAT: ("Float", "0", "num"),
}


def camel_to_lower(name):
    """protoc-c's CamelToLower: an underscore before an upper-case letter that
    follows anything but an upper-case letter ("GetMFACode" -> "get_mfacode",
    "Item2Value" -> "item2_value"), as protoc-c 1.4 writes its function names."""
    out = []
    for i, ch in enumerate(name):
        if ch.isupper():
            if i != 0 and not name[i - 1].isupper():
                out.append("_")
            out.append(ch.lower())
        else:
            out.append(ch)
    return "".join(out)


def to_camel(name):
    """protoc-c's ToCamel: lower_snake to CamelCase."""
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


def swift_ident(name):
    return f"`{name}`" if name in SWIFT_KEYWORDS else name


def lower_camel(snake):
    parts = [p for p in snake.split("_") if p]
    out = [parts[0]]
    for p in parts[1:]:
        out.append(ACRONYMS.get(p, p[:1].upper() + p[1:]))
    return "".join(out)


def enum_prefix(e):
    """The shared value prefix, taken from the `<PREFIX>_UNSPECIFIED = 0` value."""
    first = e.value[0].name
    return first[: -len("UNSPECIFIED")] if first.endswith("_UNSPECIFIED") else ""


def upper_camel_case_enum_value(value_name, prefix):
    stem = value_name[len(prefix):] if value_name.startswith(prefix) else value_name
    parts = stem.lower().split("_")
    name = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    if name[:1].isdigit():
        name = "_" + name
    return swift_ident(name)


class Context:
    """Indexes every message and enum of the set by its full name."""

    def __init__(self, fds):
        self.messages = {}  # ".pkg.Msg" -> (DescriptorProto, c_name, lower_name, swift_name, file)
        self.enums = {}  # ".pkg.Enum" -> (EnumDescriptorProto, c_name, swift_name)
        for f in fds.file:
            pkg = f.package
            c_pkg = "".join(to_camel(p) + "__" for p in pkg.split(".")) if pkg else ""
            l_pkg = "".join(p.lower() + "__" for p in pkg.split(".")) if pkg else ""
            for m in f.message_type:
                self._add_message(f, m, "." + pkg, c_pkg, l_pkg, [])
            for e in f.enum_type:
                self.enums[f".{pkg}.{e.name}"] = (e, c_pkg + e.name, e.name)

    def _add_message(self, f, m, scope, c_prefix, l_prefix, swift_scope):
        full = f"{scope}.{m.name}"
        c_name = c_prefix + m.name
        lower = l_prefix + camel_to_lower(m.name)
        swift = ".".join(swift_scope + [m.name])
        self.messages[full] = (m, c_name, lower, swift, f)
        for n in m.nested_type:
            self._add_message(f, n, full, c_name + "__", lower + "__", swift_scope + [m.name])
        for e in m.enum_type:
            self.enums[f"{full}.{e.name}"] = (e, c_name + "__" + e.name, ".".join(swift_scope + [m.name, e.name]))

    def is_map_entry(self, type_name):
        m = self.messages.get(type_name)
        return m is not None and m[0].options.map_entry


class Comments:
    """Leading comments from source info, keyed by descriptor path."""

    def __init__(self, f):
        self.by_path = {}
        for loc in f.source_code_info.location:
            if loc.leading_comments:
                self.by_path[tuple(loc.path)] = loc.leading_comments

    def doc(self, path, indent):
        text = self.by_path.get(tuple(path))
        if not text:
            return []
        lines = text.rstrip("\n").split("\n")
        return [f"{indent}///{(' ' + l.strip()) if l.strip() else ''}" for l in lines]


class Field:
    def __init__(self, ctx, msg, fp, oneof_single):
        self.fp = fp
        self.name = fp.name
        self.c = fp.name  # protoc-c keeps the proto field name
        self.swift = swift_ident(lower_camel(fp.name))
        self.bare = lower_camel(fp.name)
        self.repeated = fp.label == FD.LABEL_REPEATED
        self.is_map = self.repeated and fp.type == FD.TYPE_MESSAGE and ctx.is_map_entry(fp.type_name)
        self.optional = oneof_single  # a one-member oneof: explicit presence
        self.oneof_c = msg.oneof_decl[fp.oneof_index].name if oneof_single else None
        self.kind, self.swift_type, self.default = self._kind(ctx)

    def _kind(self, ctx):
        fp = self.fp
        if fp.type == FD.TYPE_MESSAGE:
            if self.is_map:
                entry = ctx.messages[fp.type_name][0]
                k, v = entry.field[0], entry.field[1]
                if k.type != FD.TYPE_STRING or v.type != FD.TYPE_STRING:
                    raise SystemExit(f"{fp.name}: only map<string, string> is supported")
                self.entry = ctx.messages[fp.type_name]
                return "map", "[String: String]", "[:]"
            m = ctx.messages[fp.type_name]
            self.msg = m
            return "message", m[3], None
        if fp.type == FD.TYPE_ENUM:
            e = ctx.enums[fp.type_name]
            self.enum = e
            return "enum", e[2], f".{upper_camel_case_enum_value(e[0].value[0].name, enum_prefix(e[0]))}"
        if fp.type not in SCALARS:
            raise SystemExit(f"{fp.name}: unsupported type {fp.type}")
        t, dflt, kind = SCALARS[fp.type]
        return kind, t, dflt

    def decl_type(self):
        if self.is_map:
            return self.swift_type
        if self.repeated:
            return f"[{self.swift_type}]"
        if self.kind == "message" or self.optional:
            return f"{self.swift_type}?"
        return self.swift_type

    def decl_default(self):
        if self.is_map:
            return "[:]"
        if self.repeated:
            return "[]"
        if self.kind == "message" or self.optional:
            return "nil"
        return self.default


def c_scalar_to_swift(f, expr):
    """Swift expression converting one C value of field f to its Swift value (may throw)."""
    if f.kind == "string":
        return f'try _protoString({expr}, "{f.name}")'
    if f.kind == "bytes":
        return f"_protoBytes({expr})"
    if f.kind == "bool":
        return f"({expr} != 0)"
    if f.kind == "num":
        return expr
    if f.kind == "enum":
        return f"{f.swift_type}(rawValue: Int32(truncatingIfNeeded: {expr}.rawValue))"
    if f.kind == "message":
        return f"try {f.swift_type}(_c: {expr}!)"
    raise AssertionError(f.kind)


def swift_to_c(f, expr):
    """C expression (in a context with `arena`) for one Swift value of field f."""
    if f.kind == "string":
        return f'try arena.cString({expr}, "{f.name}")'
    if f.kind == "bytes":
        return f"arena.binary({expr})"
    if f.kind == "bool":
        return f"({expr} ? 1 : 0)"
    if f.kind == "num":
        return expr
    if f.kind == "enum":
        return f".init(rawValue: numericCast(UInt32(bitPattern: {expr}.rawValue)))"
    if f.kind == "message":
        return f"try {f.swift_type}._cMake({expr}, &arena)"
    raise AssertionError(f.kind)


def c_elem_type(f):
    """The C element type of a repeated field's array, as Swift spells it."""
    if f.kind == "string":
        return "UnsafeMutablePointer<CChar>?"
    if f.kind == "bytes":
        return "ProtobufCBinaryData"
    if f.kind == "bool":
        return "protobuf_c_boolean"
    if f.kind == "enum":
        return f.enum[1]
    if f.kind == "message":
        return f"UnsafeMutablePointer<{f.msg[1]}>?"
    return {"Int32": "Int32", "Int64": "Int64", "UInt32": "UInt32", "UInt64": "UInt64",
            "Double": "Double", "Float": "Float"}[f.swift_type]


def gen_enum(e, c_name, swift_name, comments, path, indent):
    out = comments.doc(path, indent)
    simple = swift_name.split(".")[-1]
    out.append(f"{indent}public enum {simple}: RawRepresentable, Sendable, Hashable {{")
    cases = []
    for i, v in enumerate(e.value):
        case = upper_camel_case_enum_value(v.name, enum_prefix(e))
        cases.append((case, v.number))
        out += comments.doc(path + [2, i], indent + "    ")
        out.append(f"{indent}    case {case}")
    out.append(f"{indent}    /// A value this build does not know, kept so it survives a round trip.")
    out.append(f"{indent}    case unrecognized(Int32)")
    out.append("")
    out.append(f"{indent}    /// Every value this build knows, in declaration order.")
    out.append(f"{indent}    public static let knownCases: [{simple}] = [{', '.join('.' + c for c, _ in cases)}]")
    out.append("")
    out.append(f"{indent}    public init(rawValue: Int32) {{")
    out.append(f"{indent}        switch rawValue {{")
    for c, n in cases:
        out.append(f"{indent}        case {n}: self = .{c}")
    out.append(f"{indent}        default: self = .unrecognized(rawValue)")
    out.append(f"{indent}        }}")
    out.append(f"{indent}    }}")
    out.append("")
    out.append(f"{indent}    public var rawValue: Int32 {{")
    out.append(f"{indent}        switch self {{")
    for c, n in cases:
        out.append(f"{indent}        case .{c}: {n}")
    out.append(f"{indent}        case .unrecognized(let value): value")
    out.append(f"{indent}        }}")
    out.append(f"{indent}    }}")
    out.append("")
    out.append(f"{indent}    public static func == (lhs: Self, rhs: Self) -> Bool {{ lhs.rawValue == rhs.rawValue }}")
    out.append(f"{indent}    public func hash(into hasher: inout Hasher) {{ hasher.combine(rawValue) }}")
    out.append(f"{indent}}}")
    return out


def gen_message(ctx, full, comments, path, indent):
    m, c_name, lower, swift_name, _ = ctx.messages[full]
    simple = swift_name.split(".")[-1]
    # Oneofs: a single member is an optional field; several become an enum.
    members = {}
    for fp in m.field:
        if fp.HasField("oneof_index"):
            members.setdefault(fp.oneof_index, []).append(fp)
    fields, oneofs = [], []
    seen_oneofs = set()
    for i, fp in enumerate(m.field):
        if fp.HasField("oneof_index") and len(members[fp.oneof_index]) > 1:
            if fp.oneof_index not in seen_oneofs:
                seen_oneofs.add(fp.oneof_index)
                od = m.oneof_decl[fp.oneof_index]
                fs = [(Field(ctx, m, x, False), [y.number for y in m.field].index(x.number)) for x in members[fp.oneof_index]]
                oneofs.append((od, fp.oneof_index, fs))
            continue
        single = fp.HasField("oneof_index")
        fields.append((Field(ctx, m, fp, single), i))

    out = comments.doc(path, indent)
    out.append(f"{indent}public struct {simple}: ProtoMessage {{")
    ii = indent + "    "
    out.append(f'{ii}public static let protoName = "{full[1:]}"')
    out.append("")
    for f, i in fields:
        out += comments.doc(path + [2, i], ii)
        out.append(f"{ii}public var {f.swift}: {f.decl_type()}")
    for od, oi, fs in oneofs:
        out += comments.doc(path + [8, oi], ii)
        out.append(f"{ii}public var {swift_ident(lower_camel(od.name))}: {to_camel(od.name)}?")
    out.append("")
    # Memberwise initialiser with defaults.
    params = [f"{f.swift}: {f.decl_type()} = {f.decl_default()}" for f, _ in fields]
    params += [f"{swift_ident(lower_camel(od.name))}: {to_camel(od.name)}? = nil" for od, _, _ in oneofs]
    out.append(f"{ii}/// Creates a message; every field left out keeps its protobuf default.")
    if params:
        out.append(f"{ii}public init(")
        out.append(",\n".join(f"{ii}    {p}" for p in params))
        out.append(f"{ii}) {{")
        for f, _ in fields:
            out.append(f"{ii}    self.{f.bare} = {f.swift}")
        for od, _, _ in oneofs:
            n = lower_camel(od.name)
            out.append(f"{ii}    self.{n} = {swift_ident(n)}")
        out.append(f"{ii}}}")
    else:
        out.append(f"{ii}public init() {{}}")
    out.append("")
    out.append(f"{ii}/// Decodes a message from its protobuf encoding.")
    out.append(f"{ii}public init(serializedBytes bytes: UnsafeRawBufferPointer) throws(ProtoError) {{")
    out.append(f"{ii}    self = try _protoDecode(bytes)")
    out.append(f"{ii}}}")
    out.append("")
    out.append(f"{ii}/// Encodes the message; throws when a string holds U+0000, which protobuf-c cannot carry.")
    out.append(f"{ii}public func serializedBytes() throws(ProtoError) -> [UInt8] {{")
    out.append(f"{ii}    try _protoEncode(self)")
    out.append(f"{ii}}}")
    for od, oi, fs in oneofs:
        out.append("")
        out += comments.doc(path + [8, oi], ii)
        out.append(f"{ii}public enum {to_camel(od.name)}: Sendable, Hashable {{")
        for f, i in fs:
            out += comments.doc(path + [2, i], ii + "    ")
            out.append(f"{ii}    case {f.swift}({f.swift_type})")
        out.append(f"{ii}}}")
    # Nested enums and messages (map entries are internal to the C side).
    for ei, e in enumerate(m.enum_type):
        out.append("")
        out += gen_enum(e, c_name + "__" + e.name, f"{swift_name}.{e.name}", comments, path + [4, ei], ii)
    for ni, n in enumerate(m.nested_type):
        if n.options.map_entry:
            continue
        out.append("")
        out += gen_message(ctx, f"{full}.{n.name}", comments, path + [3, ni], ii)
    out.append(f"{indent}}}")
    bridges.append(gen_bridge(ctx, full, fields, oneofs))
    return out


def gen_bridge(ctx, full, fields, oneofs):
    m, c_name, lower, swift_name, _ = ctx.messages[full]
    out = [f"extension {swift_name}: _CBridged {{"]
    i = "    "
    out.append(f"{i}typealias CStruct = {c_name}")
    out.append("")
    out.append(f"{i}static func _cInit(_ c: UnsafeMutablePointer<CStruct>) {{ {lower}__init(c) }}")
    out.append(f"{i}static func _cUnpack(_ count: Int, _ data: UnsafePointer<UInt8>) -> UnsafeMutablePointer<CStruct>? {{")
    out.append(f"{i}    {lower}__unpack(nil, count, data)")
    out.append(f"{i}}}")
    out.append(f"{i}static func _cFree(_ c: UnsafeMutablePointer<CStruct>) {{ {lower}__free_unpacked(c, nil) }}")
    out.append(f"{i}static func _cPackedSize(_ c: UnsafePointer<CStruct>) -> Int {{ {lower}__get_packed_size(c) }}")
    out.append(f"{i}static func _cPack(_ c: UnsafePointer<CStruct>, _ out: UnsafeMutablePointer<UInt8>) -> Int {{")
    out.append(f"{i}    {lower}__pack(c, out)")
    out.append(f"{i}}}")
    out.append("")
    # Decoding from the C struct.
    out.append(f"{i}init(_c c: UnsafePointer<CStruct>) throws(ProtoError) {{")
    ii = i + "    "
    if not fields and not oneofs:
        out.append(f"{ii}self.init()")
    for f, _ in fields:
        src = f"c.pointee.{f.c}"
        if f.is_map:
            entry_c = f.entry[1]
            out.append(f"{ii}var {f.bare}Map: [String: String] = [:]")
            out.append(f"{ii}for k in 0..<c.pointee.n_{f.c} {{")
            out.append(f"{ii}    let e = c.pointee.{f.c}[k]!")
            out.append(f'{ii}    {f.bare}Map[try _protoString(e.pointee.key, "{f.name}")] = try _protoString(e.pointee.value, "{f.name}")')
            out.append(f"{ii}}}")
            out.append(f"{ii}self.{f.bare} = {f.bare}Map")
            _ = entry_c
        elif f.repeated:
            conv = c_scalar_to_swift(f, f"c.pointee.{f.c}[k]")
            if conv.startswith("try "):
                out.append(f"{ii}var {f.bare}Values: [{f.swift_type}] = []")
                out.append(f"{ii}{f.bare}Values.reserveCapacity(c.pointee.n_{f.c})")
                out.append(f"{ii}for k in 0..<c.pointee.n_{f.c} {{ {f.bare}Values.append({conv}) }}")
                out.append(f"{ii}self.{f.bare} = {f.bare}Values")
            else:
                out.append(f"{ii}self.{f.bare} = (0..<c.pointee.n_{f.c}).map {{ k in {conv} }}")
        elif f.optional:
            out.append(f"{ii}self.{f.bare} = c.pointee.{f.oneof_c}_case.rawValue == {f.fp.number} ? {c_scalar_to_swift(f, src)} : nil")
        elif f.kind == "message":
            out.append(f"{ii}self.{f.bare} = {src} == nil ? nil : {c_scalar_to_swift(f, src)}")
        else:
            out.append(f"{ii}self.{f.bare} = {c_scalar_to_swift(f, src)}")
    for od, _, fs in oneofs:
        n = lower_camel(od.name)
        out.append(f"{ii}switch c.pointee.{od.name}_case.rawValue {{")
        for f, _ in fs:
            out.append(f"{ii}case {f.fp.number}: self.{n} = .{f.swift}({c_scalar_to_swift(f, 'c.pointee.' + f.c)})")
        out.append(f"{ii}default: self.{n} = nil")
        out.append(f"{ii}}}")
    out.append(f"{i}}}")
    out.append("")
    # Encoding into an arena-allocated C struct.
    out.append(f"{i}static func _cMake(_ m: Self, _ arena: inout _ProtoArena) throws(ProtoError) -> UnsafeMutablePointer<CStruct> {{")
    out.append(f"{ii}let c = arena.allocate(CStruct.self)")
    out.append(f"{ii}{lower}__init(c)")
    for f, _ in fields:
        v = f"m.{f.bare}"
        if f.is_map:
            entry_c, entry_lower = f.entry[1], f.entry[2]
            out.append(f"{ii}if !{v}.isEmpty {{")
            out.append(f"{ii}    let entries = arena.allocateArray(UnsafeMutablePointer<{entry_c}>?.self, count: {v}.count)")
            out.append(f"{ii}    for (k, kv) in {v}.sorted(by: {{ $0.key < $1.key }}).enumerated() {{")
            out.append(f"{ii}        let e = arena.allocate({entry_c}.self)")
            out.append(f"{ii}        {entry_lower}__init(e)")
            out.append(f'{ii}        e.pointee.key = try arena.cString(kv.key, "{f.name}")')
            out.append(f'{ii}        e.pointee.value = try arena.cString(kv.value, "{f.name}")')
            out.append(f"{ii}        entries[k] = e")
            out.append(f"{ii}    }}")
            out.append(f"{ii}    c.pointee.n_{f.c} = {v}.count")
            out.append(f"{ii}    c.pointee.{f.c} = entries")
            out.append(f"{ii}}}")
        elif f.repeated:
            out.append(f"{ii}if !{v}.isEmpty {{")
            out.append(f"{ii}    let values = arena.allocateArray({c_elem_type(f)}.self, count: {v}.count)")
            out.append(f"{ii}    for (k, x) in {v}.enumerated() {{ values[k] = {swift_to_c(f, 'x')} }}")
            out.append(f"{ii}    c.pointee.n_{f.c} = {v}.count")
            out.append(f"{ii}    c.pointee.{f.c} = values")
            out.append(f"{ii}}}")
        elif f.optional:
            out.append(f"{ii}if let x = {v} {{")
            out.append(f"{ii}    c.pointee.{f.oneof_c}_case = .init(rawValue: {f.fp.number})")
            out.append(f"{ii}    c.pointee.{f.c} = {swift_to_c(f, 'x')}")
            out.append(f"{ii}}}")
        elif f.kind == "message":
            out.append(f"{ii}if let x = {v} {{ c.pointee.{f.c} = {swift_to_c(f, 'x')} }}")
        else:
            out.append(f"{ii}c.pointee.{f.c} = {swift_to_c(f, v)}")
    for od, _, fs in oneofs:
        n = lower_camel(od.name)
        out.append(f"{ii}switch m.{n} {{")
        for f, _ in fs:
            out.append(f"{ii}case .{f.swift}(let x):")
            out.append(f"{ii}    c.pointee.{od.name}_case = .init(rawValue: {f.fp.number})")
            out.append(f"{ii}    c.pointee.{f.c} = {swift_to_c(f, 'x')}")
        out.append(f"{ii}case nil: break")
        out.append(f"{ii}}}")
    out.append(f"{ii}return c")
    out.append(f"{i}}}")
    out.append("}")
    return out


bridges = []


def gen_service(ctx, f, svc, comments, path):
    """A namespace of typed method descriptors for one service."""
    out = comments.doc(path, "")
    out.append(f"public enum {svc.name} {{")
    out.append(f'    /// The fully qualified service name.')
    out.append(f'    public static let serviceName = "{f.package}.{svc.name}"')
    for mi, m in enumerate(svc.method):
        req = ctx.messages[m.input_type][3]
        resp = ctx.messages[m.output_type][3]
        kind = "ServerStreamingMethod" if m.server_streaming else "UnaryMethod"
        name = m.name[:1].lower() + m.name[1:]
        out.append("")
        out += comments.doc(path + [2, mi], "    ")
        out.append(f'    public static let {swift_ident(name)} = {kind}<{req}, {resp}>(fullName: "{f.package}.{svc.name}/{m.name}")')
    out.append("}")
    return out


def gen_file(ctx, f):
    global bridges
    bridges = []
    comments = Comments(f)
    body = []
    for ei, e in enumerate(f.enum_type):
        body.append("")
        body += gen_enum(e, None, e.name, comments, [5, ei], "")
    for mi, m in enumerate(f.message_type):
        if m.options.map_entry:
            continue
        body.append("")
        body += gen_message(ctx, f".{f.package}.{m.name}", comments, [4, mi], "")
    for si, svc in enumerate(f.service):
        body.append("")
        body += gen_service(ctx, f, svc, comments, [6, si])
    for b in bridges:
        body.append("")
        body += b
    header = [
        f"// DO NOT EDIT. Generated by scripts/generate (scripts/protoc_gen_swift.py) from proto/{f.name}.",
        "// Handoff — Swift value types bridged to protobuf-c's generated C structs.",
        "",
        "internal import CHandoffProto",
    ]
    return "\n".join(header + body) + "\n"


def gen_registry(ctx, fds):
    """One file listing every message type and every RPC method of the set."""
    out = [
        "// DO NOT EDIT. Generated by scripts/generate (scripts/protoc_gen_swift.py) from proto/.",
        "// Handoff — every message type and every RPC method of the API, for code that",
        "// must cover all of them (method tables, round-trip tests, fuzzing).",
        "",
        "/// The messages and methods of the Handoff API, as declared in proto/.",
        "public enum ProtoRegistry {",
        "    /// Every message type, in declaration order (map entries excluded).",
        "    public static let messageTypes: [any ProtoMessage.Type] = [",
    ]
    for full, (m, _, _, swift, _) in ctx.messages.items():
        if not m.options.map_entry:
            out.append(f"        {swift}.self,")
    out.append("    ]")
    out.append("")
    out.append("    /// Every RPC method, in declaration order.")
    out.append("    public static let methods: [ProtoMethod] = [")
    for f in fds.file:
        for s in f.service:
            for m in s.method:
                req = ctx.messages[m.input_type][3]
                resp = ctx.messages[m.output_type][3]
                out.append("        ProtoMethod(")
                out.append(f'            service: "{f.package}.{s.name}", name: "{m.name}",')
                out.append(f"            requestType: {req}.self, responseType: {resp}.self,")
                out.append(f"            serverStreaming: {'true' if m.server_streaming else 'false'}")
                out.append("        ),")
                if m.client_streaming:
                    raise SystemExit(f"{s.name}.{m.name}: client streaming is not part of the protocol")
    out.append("    ]")
    out.append("}")
    return "\n".join(out) + "\n"


def main():
    desc_path, out_dir = sys.argv[1], sys.argv[2]
    fds = d.FileDescriptorSet()
    with open(desc_path, "rb") as fh:
        fds.ParseFromString(fh.read())
    ctx = Context(fds)
    os.makedirs(out_dir, exist_ok=True)
    for f in fds.file:
        if f.syntax != "proto3":
            raise SystemExit(f"{f.name}: only proto3 files are supported")
        base = re.sub(r"\.proto$", "", os.path.basename(f.name))
        with open(os.path.join(out_dir, f"{base}.pb.swift"), "w") as fh:
            fh.write(gen_file(ctx, f))
    with open(os.path.join(out_dir, "ProtoRegistry.pb.swift"), "w") as fh:
        fh.write(gen_registry(ctx, fds))


if __name__ == "__main__":
    main()
