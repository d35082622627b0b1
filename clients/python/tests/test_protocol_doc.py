"""docs/PROTOCOL.md against the real encoding and the real schema.

The worked examples of the protocol document are annotated hex dumps in fenced
blocks with the info string `hexdump`, each starting with a line
`example <id>: ...`. scripts/protocol_examples.py builds the same frames with
the generated modules; these tests fail when the document's bytes, or its
annotations, differ from what the script builds, and when the document's
method list differs from the services in proto/handoff/v1.
"""
import importlib
import importlib.util
import os
import pkgutil
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DOC = os.path.join(ROOT, "docs", "PROTOCOL.md")
PROTO_DIR = os.path.join(ROOT, "proto", "handoff", "v1")
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))

from handoff.v1 import envelope_pb2  # noqa: E402


def load_examples():
    spec = importlib.util.spec_from_file_location(
        "protocol_examples", os.path.join(ROOT, "scripts", "protocol_examples.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


examples = load_examples()


def doc_text():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def hexdump_blocks(text):
    """example id -> the block's lines (fence lines excluded)."""
    blocks = {}
    for body in re.findall(r"^```hexdump\n(.*?)^```$", text, flags=re.M | re.S):
        lines = body.rstrip("\n").split("\n")
        match = re.match(r"example (\w+): ", lines[0])
        assert match, f"a hexdump block must start with 'example <id>: ', not {lines[0]!r}"
        ident = match.group(1)
        assert ident not in blocks, f"example {ident} appears twice"
        blocks[ident] = lines
    return blocks


DUMP_LINE = re.compile(r"^([0-9a-f]{4})  ((?:[0-9a-f]{2} {1,2})*[0-9a-f]{2}) +\|.*\|$")


def dump_bytes(lines):
    """The bytes of a block's hex dump (the lines before the first blank one)."""
    data = bytearray()
    for line in lines[1:]:
        if not line:
            break
        match = DUMP_LINE.match(line)
        assert match, f"not a hex dump line: {line!r}"
        assert int(match.group(1), 16) == len(data), f"offset {match.group(1)} out of sequence"
        data += bytes.fromhex(match.group(2))
    return bytes(data)


def test_every_example_is_in_the_document_once():
    blocks = hexdump_blocks(doc_text())
    assert sorted(blocks) == sorted(ex.id for ex in examples.examples())


@pytest.mark.parametrize("ex", examples.examples(), ids=lambda ex: ex.id)
def test_document_bytes_are_the_real_encoding(ex):
    lines = hexdump_blocks(doc_text())[ex.id]
    assert dump_bytes(lines) == ex.frame()


@pytest.mark.parametrize("ex", examples.examples(), ids=lambda ex: ex.id)
def test_document_block_is_the_scripts_output(ex):
    lines = hexdump_blocks(doc_text())[ex.id]
    assert "\n".join(lines) == examples.render(ex)


@pytest.mark.parametrize("ex", examples.examples(), ids=lambda ex: ex.id)
def test_every_example_is_one_well_formed_frame(ex):
    frame = ex.frame()
    length = int.from_bytes(frame[:4], "big")
    assert length == len(frame) - 4
    envelope = envelope_pb2.Envelope()
    envelope.ParseFromString(frame[4:])
    assert envelope.kind != envelope_pb2.FRAME_KIND_UNSPECIFIED
    assert envelope.SerializeToString(deterministic=True) == frame[4:]
    if envelope.kind in (envelope_pb2.FRAME_KIND_PING, envelope_pb2.FRAME_KIND_PONG):
        assert envelope.call_id == 0
    elif envelope.kind != envelope_pb2.FRAME_KIND_GOAWAY:
        assert envelope.call_id % 2 == 1, "client call ids are odd"


def test_running_the_script_prints_the_document_blocks():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "protocol_examples.py")],
                            capture_output=True, text=True, check=True)
    printed = hexdump_blocks(result.stdout)
    assert printed == hexdump_blocks(doc_text())


def test_the_example_requests_name_real_methods():
    methods = {f"handoff.v1.{service}/{name}" for service, name, *_ in proto_methods()}
    for ex in examples.examples():
        envelope = envelope_pb2.Envelope()
        envelope.ParseFromString(ex.frame()[4:])
        if envelope.kind == envelope_pb2.FRAME_KIND_REQUEST:
            assert envelope.method in methods


# ---------------------------------------------------------------------------
# The method list


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def proto_methods():
    """(service, method, request, response, streaming) for every rpc in proto/handoff/v1."""
    found = []
    for name in sorted(os.listdir(PROTO_DIR)):
        if not name.endswith(".proto"):
            continue
        with open(os.path.join(PROTO_DIR, name), encoding="utf-8") as f:
            text = strip_comments(f.read())
        for service, body in re.findall(r"\bservice\s+(\w+)\s*\{(.*?)\n\}", text, flags=re.S):
            rpcs = re.findall(
                r"\brpc\s+(\w+)\s*\(\s*(stream\s+)?([\w.]+)\s*\)\s*returns\s*\(\s*(stream\s+)?([\w.]+)\s*\)",
                body)
            assert len(rpcs) == body.count("rpc "), f"an rpc of {service} was not understood"
            for method, client_stream, request, server_stream, response in rpcs:
                assert not client_stream, f"{service}.{method}: client streaming is not part of handoff/1"
                found.append((service, method, request, response, bool(server_stream)))
    return found


def section(text, number):
    match = re.search(rf"^## {number} .*?(?=^## {number + 1} |\Z)", text, flags=re.M | re.S)
    assert match, f"section {number} not found"
    return match.group(0)


def doc_methods():
    rows = re.findall(
        r"^\| `handoff\.v1\.(\w+)/(\w+)` \| `(\w+)` \| `(\w+)` \| (unary|stream) \|$",
        section(doc_text(), 8), flags=re.M)
    return [(s, m, req, resp, shape == "stream") for s, m, req, resp, shape in rows]


def test_the_schema_parser_agrees_with_the_generated_descriptors():
    import handoff.v1
    from_descriptors = []
    for info in pkgutil.iter_modules(handoff.v1.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"handoff.v1.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                assert m.input_type.file.package == m.output_type.file.package == "handoff.v1"
                from_descriptors.append(
                    (service.name, m.name, m.input_type.name, m.output_type.name, m.server_streaming))
    assert sorted(from_descriptors) == sorted(proto_methods())
    assert ("Operators", "Watch", "WatchRequest", "DeskEvent", True) in from_descriptors


def test_method_list_names_exactly_the_proto_methods():
    documented = doc_methods()
    in_protos = proto_methods()
    assert len(documented) == len(set((s, m) for s, m, *_ in documented)), "a method is listed twice"
    assert sorted(documented) == sorted(in_protos)


def test_method_list_count_line():
    methods = proto_methods()
    services = {s for s, *_ in methods}
    streaming = sum(1 for *_, st in methods if st)
    assert (f"{len(methods)} methods in {len(services)} services; {streaming} are server-streaming"
            in " ".join(section(doc_text(), 8).split()))


# ---------------------------------------------------------------------------
# The status codes

CANONICAL = [
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
]


def test_status_table_lists_the_17_canonical_codes():
    rows = re.findall(r"^\| (\d+) \| `([A-Z_]+)` \|", section(doc_text(), 5), flags=re.M)
    assert [(int(n), name) for n, name in rows] == list(enumerate(CANONICAL))


def test_status_codes_match_envelope_proto():
    with open(os.path.join(PROTO_DIR, "envelope.proto"), encoding="utf-8") as f:
        text = " ".join(f.read().replace("//", " ").split())
    pairs = re.findall(r"(\d+) ([A-Z_]{2,})", text)
    assert [(int(n), name) for n, name in pairs if name in CANONICAL] == list(enumerate(CANONICAL))
