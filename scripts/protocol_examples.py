#!/usr/bin/env python3
# Handoff — the worked examples of docs/PROTOCOL.md, section 10.
#
# Every frame below is built with Google's protobuf package from the generated
# modules in clients/python (deterministic serialization), framed exactly as
# the protocol says (4-byte big-endian length, then one encoded Envelope), and
# printed as an annotated hex dump. The dumps in docs/PROTOCOL.md are this
# script's output pasted verbatim; clients/python/tests/test_protocol_doc.py
# fails when they differ, so the document cannot drift from the encoding.
#
#   python3 scripts/protocol_examples.py          print every example block
#   python3 scripts/protocol_examples.py a1 b2    print the named examples only
"""Build and render the frames of the PROTOCOL.md worked examples."""
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))

from google.protobuf import descriptor as _descriptor  # noqa: E402

from handoff.v1 import common_pb2, envelope_pb2, health_pb2, operators_pb2  # noqa: E402

FD = _descriptor.FieldDescriptor
WIRE_NAMES = {0: "VARINT", 1: "I64", 2: "LEN", 5: "I32"}
STATUS_NAMES = [
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
]

# Fixed values shared by the examples.
NOW_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z
PING_PROBE = b"probe-7"


# ---------------------------------------------------------------------------
# Building frames


def frame(envelope):
    """One frame: the 4-byte big-endian length N, then the N envelope bytes."""
    body = envelope.SerializeToString(deterministic=True)
    return struct.pack(">I", len(body)) + body


def encode(message):
    return message.SerializeToString(deterministic=True)


def unary_request():
    """a1: the client starts call 1, Health/Ping, 5 s deadline, a bearer token."""
    return frame(envelope_pb2.Envelope(
        kind=envelope_pb2.FRAME_KIND_REQUEST,
        call_id=1,
        method="handoff.v1.Health/Ping",
        timeout_ms=5000,
        metadata=[envelope_pb2.MetadataEntry(key="authorization", value="Bearer t0k")],
        payload=encode(health_pb2.PingRequest(payload=b"hi")),
    ))


def unary_end():
    """a2: the server ends call 1 with OK and the PingResponse."""
    return frame(envelope_pb2.Envelope(
        kind=envelope_pb2.FRAME_KIND_END,
        call_id=1,
        status_code=0,
        payload=encode(health_pb2.PingResponse(
            payload=b"hi", server_time_unix_ms=NOW_MS, server_version="0.1.0")),
    ))


def watch_request():
    """b1: the client starts call 3, Operators/Watch, resuming after cursor c-41."""
    return frame(envelope_pb2.Envelope(
        kind=envelope_pb2.FRAME_KIND_REQUEST,
        call_id=3,
        method="handoff.v1.Operators/Watch",
        timeout_ms=0,  # a watch has no deadline
        payload=encode(operators_pb2.WatchRequest(resume_cursor="c-41")),
    ))


AGENT = common_pb2.Identity(tenant_id="acme", role=common_pb2.ROLE_AGENT, name="booking-agent")


def watch_message_1():
    """b2: the first streamed DeskEvent: a ticket was opened."""
    event = operators_pb2.DeskEvent(
        cursor="c-42",
        kind=operators_pb2.DESK_EVENT_KIND_TICKET_OPENED,
        ticket=common_pb2.Ticket(
            id="t-7",
            tenant_id="acme",
            session_id="s-1",
            reason="refund over limit",
            priority=common_pb2.PRIORITY_HIGH,
            status=common_pb2.TICKET_STATUS_OPEN,
            created_by=AGENT,
            created_at_unix_ms=NOW_MS + 250,
        ),
        actor=AGENT,
        occurred_at_unix_ms=NOW_MS + 250,
    )
    return frame(envelope_pb2.Envelope(
        kind=envelope_pb2.FRAME_KIND_MESSAGE, call_id=3, payload=encode(event)))


def watch_message_2():
    """b3: the second streamed DeskEvent: the watcher lagged; the stream ends after it."""
    event = operators_pb2.DeskEvent(
        cursor="c-43",
        kind=operators_pb2.DESK_EVENT_KIND_WATCHER_LAGGED,
        occurred_at_unix_ms=NOW_MS + 900,
    )
    return frame(envelope_pb2.Envelope(
        kind=envelope_pb2.FRAME_KIND_MESSAGE, call_id=3, payload=encode(event)))


def watch_end():
    """b4: the server ends call 3 with OK; a stream's END carries no payload."""
    return frame(envelope_pb2.Envelope(kind=envelope_pb2.FRAME_KIND_END, call_id=3, status_code=0))


def ping():
    """c1: a keepalive PING (call id 0) with opaque data."""
    return frame(envelope_pb2.Envelope(kind=envelope_pb2.FRAME_KIND_PING, call_id=0, payload=PING_PROBE))


def pong():
    """c2: the PONG answering it, echoing the data."""
    return frame(envelope_pb2.Envelope(kind=envelope_pb2.FRAME_KIND_PONG, call_id=0, payload=PING_PROBE))


def unknown_method_end():
    """d1: the server's answer to a REQUEST (call 5) naming a method it does not serve."""
    return frame(envelope_pb2.Envelope(
        kind=envelope_pb2.FRAME_KIND_END,
        call_id=5,
        status_code=12,  # UNIMPLEMENTED
        status_message='unknown method "handoff.v1.Sessions/Rename"',
    ))


def oversize_goaway():
    """d2: the server's GOAWAY when a frame announces more than its limit."""
    return frame(envelope_pb2.Envelope(
        kind=envelope_pb2.FRAME_KIND_GOAWAY,
        call_id=3,  # the highest call id the server accepted (call 5 was refused, not started)
        status_code=8,  # RESOURCE_EXHAUSTED
        status_message="frame of 5000000 bytes exceeds the limit of 4194304 bytes",
    ))


class Example:
    """One worked example: an id, a title, the frame and how to read its payload."""

    def __init__(self, ident, title, build, payload_type=None):
        self.id = ident
        self.title = title
        self.build = build
        self.payload_type = payload_type

    def frame(self):
        return self.build()


EXAMPLES = [
    Example("a1", "unary REQUEST, client -> server", unary_request, health_pb2.PingRequest),
    Example("a2", "unary END (OK) with the response, server -> client", unary_end, health_pb2.PingResponse),
    Example("b1", "streaming REQUEST, client -> server", watch_request, operators_pb2.WatchRequest),
    Example("b2", "streaming MESSAGE 1, server -> client", watch_message_1, operators_pb2.DeskEvent),
    Example("b3", "streaming MESSAGE 2, server -> client", watch_message_2, operators_pb2.DeskEvent),
    Example("b4", "streaming END (OK), server -> client", watch_end),
    Example("c1", "PING, client -> server", ping),
    Example("c2", "PONG, server -> client", pong),
    Example("d1", "END (UNIMPLEMENTED), server -> client", unknown_method_end),
    Example("d2", "GOAWAY (RESOURCE_EXHAUSTED), server -> client", oversize_goaway),
]


def examples():
    """Every example, in document order."""
    return list(EXAMPLES)


def example(ident):
    for ex in EXAMPLES:
        if ex.id == ident:
            return ex
    raise KeyError(ident)


def frames():
    """Example id -> the frame's bytes (length prefix included)."""
    return {ex.id: ex.frame() for ex in EXAMPLES}


# ---------------------------------------------------------------------------
# Rendering


def hex_lines(data):
    """16 bytes per line: offset, hex in two groups of eight, printable ASCII."""
    lines = []
    for start in range(0, len(data), 16):
        chunk = data[start:start + 16]
        left = " ".join(f"{b:02x}" for b in chunk[:8])
        right = " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{start:04x}  {left:<23}  {right:<23}  |{text}|")
    return lines


def read_varint(data, pos):
    value = shift = 0
    start = pos
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos, data[start:pos]


def hexbytes(b):
    return " ".join(f"{x:02x}" for x in b)


def show_bytes(value):
    shown = hexbytes(value) if value else "(empty)"
    if value and all(0x20 <= b < 0x7F for b in value):
        shown += f' ("{value.decode("ascii")}")'
    return shown


def show_scalar(field, raw):
    """The meaning of a VARINT, I64 or I32 value of `field`."""
    t = field.type
    if t == FD.TYPE_ENUM:
        value = field.enum_type.values_by_number.get(raw)
        return f"{raw} ({value.name})" if value else f"{raw} (unknown enum value)"
    if t == FD.TYPE_BOOL:
        return "true" if raw else "false"
    if t in (FD.TYPE_INT32, FD.TYPE_INT64):
        return str(raw - (1 << 64) if raw >= 1 << 63 else raw)
    if t in (FD.TYPE_SINT32, FD.TYPE_SINT64):
        return str((raw >> 1) ^ -(raw & 1))
    if field.containing_type is envelope_pb2.Envelope.DESCRIPTOR and field.name == "status_code" and raw < len(STATUS_NAMES):
        return f"{raw} ({STATUS_NAMES[raw]})"
    return str(raw)


def annotate(data, base, desc, depth, payload_type, out):
    """Appends one line per field of the message `desc` encoded in `data`.

    `base` is the offset of data[0] in the frame; `payload_type` says how to
    read Envelope.payload (the request or response message), when known.
    """
    pos = 0
    indent = "  " * depth
    while pos < len(data):
        offset = base + pos
        key, pos, key_bytes = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        field = desc.fields_by_number.get(number)
        name = field.name if field else f"(unknown field {number})"
        tag = f"#{number} {WIRE_NAMES.get(wire, wire)}"
        if wire == 0:
            raw, pos, raw_bytes = read_varint(data, pos)
            meaning = show_scalar(field, raw) if field else str(raw)
            out.append((offset, key_bytes + raw_bytes, tag, f"{indent}{name} = {meaning}"))
        elif wire == 1:
            raw_bytes = data[pos:pos + 8]
            pos += 8
            if field and field.type == FD.TYPE_DOUBLE:
                meaning = repr(struct.unpack("<d", raw_bytes)[0])
            else:
                meaning = str(struct.unpack("<Q", raw_bytes)[0])
            out.append((offset, key_bytes + raw_bytes, tag, f"{indent}{name} = {meaning}"))
        elif wire == 5:
            raw_bytes = data[pos:pos + 4]
            pos += 4
            if field and field.type == FD.TYPE_FLOAT:
                meaning = repr(struct.unpack("<f", raw_bytes)[0])
            else:
                meaning = str(struct.unpack("<I", raw_bytes)[0])
            out.append((offset, key_bytes + raw_bytes, tag, f"{indent}{name} = {meaning}"))
        elif wire == 2:
            length, pos, len_bytes = read_varint(data, pos)
            value = data[pos:pos + length]
            value_base = base + pos
            pos += length
            tag = f"{tag} len={length}"
            sub = None
            if field is not None and field.type == FD.TYPE_MESSAGE:
                sub = field.message_type
            elif field is not None and field.name == "payload" and desc is envelope_pb2.Envelope.DESCRIPTOR:
                sub = payload_type.DESCRIPTOR if payload_type else None
            if sub is not None:
                label = sub.full_name if field.type != FD.TYPE_MESSAGE else sub.name
                out.append((offset, key_bytes + len_bytes, tag, f"{indent}{name} = {label} {{"))
                annotate(value, value_base, sub, depth + 1, None, out)
                out.append((None, b"", "", f"{indent}}}"))
            elif field is not None and field.type == FD.TYPE_STRING:
                shown = json.dumps(value.decode("utf-8"), ensure_ascii=False)
                out.append((offset, key_bytes + len_bytes, tag, f"{indent}{name} = {shown}"))
            else:
                out.append((offset, key_bytes + len_bytes, tag, f"{indent}{name} = {show_bytes(value)}"))
        else:
            raise ValueError(f"wire type {wire} at offset {offset:#x}")


def render(ex):
    """The text of one example block (without the ``` fence lines)."""
    data = ex.frame()
    body = data[4:]
    (length,) = struct.unpack(">I", data[:4])
    assert length == len(body)
    lines = [f"example {ex.id}: {ex.title}, {len(data)} bytes on the wire"]
    lines += hex_lines(data)
    lines.append("")
    rows = [(0, data[:4], "prefix", f"length N = {length} (0x{length:02x}): the envelope is bytes 0004..{len(data) - 1:04x}")]
    annotate(body, 4, envelope_pb2.Envelope.DESCRIPTOR, 0, ex.payload_type, rows)
    bytes_width = max(len(hexbytes(b)) for _, b, _, _ in rows)
    tag_width = max(len(t) for _, _, t, _ in rows)
    for offset, raw, tag, meaning in rows:
        where = f"{offset:04x}" if offset is not None else "    "
        lines.append(f"{where}  {hexbytes(raw):<{bytes_width}}  {tag:<{tag_width}}  {meaning}".rstrip())
    return "\n".join(lines)


def fenced(ex):
    """The block as it appears in docs/PROTOCOL.md."""
    return "```hexdump\n" + render(ex) + "\n```"


def main(argv):
    chosen = [example(i) for i in argv] if argv else EXAMPLES
    print("\n\n".join(fenced(ex) for ex in chosen))


if __name__ == "__main__":
    main(sys.argv[1:])
