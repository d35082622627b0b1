"""Checks on the generated Python modules and the schema they come from."""
import importlib
import os
import pkgutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))

import handoff.v1  # noqa: E402


def all_modules():
    return [importlib.import_module(f"handoff.v1.{m.name}") for m in pkgutil.iter_modules(handoff.v1.__path__)
            if m.name.endswith("_pb2")]


def all_messages():
    for mod in all_modules():
        stack = list(mod.DESCRIPTOR.message_types_by_name.values())
        while stack:
            desc = stack.pop()
            yield desc
            stack.extend(desc.nested_types)


def test_every_proto_file_has_a_module():
    protos = sorted(f[:-len(".proto")] for f in os.listdir(os.path.join(ROOT, "proto", "handoff", "v1")))
    assert sorted(m.__name__.split(".")[-1][:-len("_pb2")] for m in all_modules()) == protos


def test_schema_has_no_recursive_message():
    """No message contains itself, directly or through others, so decoding
    depth is bounded by the schema (the hostile-input tests rely on this)."""
    def reachable(desc, seen):
        for f in desc.fields:
            if f.message_type is not None and f.message_type.full_name not in seen:
                seen.add(f.message_type.full_name)
                reachable(f.message_type, seen)
        return seen

    for desc in all_messages():
        assert desc.full_name not in reachable(desc, set()), f"{desc.full_name} is recursive"


def test_enums_follow_the_style_rules():
    for mod in all_modules():
        for enum in mod.DESCRIPTOR.enum_types_by_name.values():
            first = enum.values[0]
            assert first.number == 0 and first.name.endswith("_UNSPECIFIED"), enum.full_name
            prefix = first.name[: -len("UNSPECIFIED")]
            assert all(v.name.startswith(prefix) for v in enum.values), enum.full_name


def test_committed_vectors_are_current():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "vectors.py"), "--verify"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["envelope_request", "update_state_patch", "context", "pending_unknown_enum"])
def test_vectors_decode_in_python(name):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import vectors
    expected = vectors.vectors()[name]
    decoded = type(expected)()
    with open(os.path.join(vectors.VECTOR_DIR, name + ".bin"), "rb") as fh:
        decoded.ParseFromString(fh.read())
    assert decoded == expected


def test_generated_code_is_current():
    """scripts/generate --check regenerates C, Swift and Python and compares."""
    result = subprocess.run([os.path.join(ROOT, "scripts", "generate"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
