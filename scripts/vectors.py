#!/usr/bin/env python3
# Handoff — cross-language protobuf test vectors.
#
# The messages below are built with Google's Python protobuf package and
# written as binary vectors to Tests/HandoffProtoTests/Vectors/. The Swift
# suite (VectorTests.swift) builds the same values independently and checks
# that it decodes each vector to them and encodes them to the same bytes, then
# writes its own encodings and runs `vectors.py --check DIR` so that Python
# decodes what Swift wrote. A changed field number breaks both directions.
#
#   scripts/vectors.py            rewrite the committed vectors
#   scripts/vectors.py --verify   fail if the committed vectors are stale
#   scripts/vectors.py --check D  decode D/<name>.bin (written by Swift) and compare
"""Write, verify or check the cross-language protobuf vectors."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))

from handoff.v1 import analytics_pb2, common_pb2, envelope_pb2, health_pb2, policy_pb2, sessions_pb2  # noqa: E402

VECTOR_DIR = os.path.join(ROOT, "Tests", "HandoffProtoTests", "Vectors")
UNICODE = "Grüße, 漢字, emoji 🙂👩‍💻, combining é, RTL שלום"


def vectors():
    """Every vector: name -> message. Keep in step with VectorTests.swift."""
    turns = [
        common_pb2.Turn(
            session_id="s-ctx",
            sequence=i + 1,
            input=f"question {i + 1}",
            output=f"answer {i + 1} {UNICODE}",
            metadata_json='{"tokens":%d}' % (i * 10),
            reasoning="because",
            source=common_pb2.TURN_SOURCE_AGENT if i % 2 == 0 else common_pb2.TURN_SOURCE_OPERATOR,
            author=common_pb2.Identity(tenant_id="acme", role=common_pb2.ROLE_AGENT, name="bot"),
            created_at_unix_ms=1_764_000_000_000 + i,
        )
        for i in range(3)
    ]
    return {
        "envelope_request": envelope_pb2.Envelope(
            kind=envelope_pb2.FRAME_KIND_REQUEST,
            call_id=1,
            method="handoff.v1.Sessions/UpdateState",
            timeout_ms=2500,
            metadata=[
                envelope_pb2.MetadataEntry(key="authorization", value="Bearer t0ken"),
                envelope_pb2.MetadataEntry(key="x-note", value=UNICODE),
                envelope_pb2.MetadataEntry(key="x-note", value="repeated key"),
            ],
            payload=bytes(range(256)),
        ),
        "envelope_end": envelope_pb2.Envelope(
            kind=envelope_pb2.FRAME_KIND_END,
            call_id=18_446_744_073_709_551_615,
            status_code=10,
            status_message="stale version: expected 3, found 4",
        ),
        "update_state_patch": sessions_pb2.UpdateStateRequest(
            session_id="s-1",
            merge_patch_json='{"cart":{"items":2,"note":null}}',
            reasoning="the user added an item",
            expected_version=0,
        ),
        "update_state_replace": sessions_pb2.UpdateStateRequest(
            session_id="s-2",
            replacement_json="{}",
            reasoning="reset",
        ),
        "session": common_pb2.Session(
            id="s-max",
            tenant_id="acme",
            version=9_223_372_036_854_775_807,
            state_json='{"k":"' + UNICODE + '"}',
            status=common_pb2.SESSION_STATUS_ESCALATED,
            labels={"channel": "web", "lang": "fr", "z": ""},
            created_at_unix_ms=-9_223_372_036_854_775_808,
            updated_at_unix_ms=-1,
            escalation_ticket_id="t-1",
        ),
        "context": sessions_pb2.GetContextResponse(
            session=common_pb2.Session(id="s-ctx", tenant_id="acme", version=4, state_json="{}"),
            turns=turns,
            memories=[common_pb2.Memory(session_id="s-ctx", sequence=1, content="prefers aisle seats")],
            total_turns=60,
        ),
        "action_zero_confidence": common_pb2.Action(
            tool_name="refund_order",
            decision_type=common_pb2.DECISION_TYPE_FINANCIAL,
            parameters_json='{"order":"A-17","amount":250}',
            description="Refund my order of 250 dollars",
            amount="250.00",
            currency="USD",
            confidence=0.0,
        ),
        "pending_unknown_enum": common_pb2.PendingAction(
            id="pa-1",
            session_id="s-1",
            risk=42,
            status=common_pb2.PENDING_ACTION_STATUS_RELEASED,
            action_hash=bytes(32),
            assessed_session_version=7,
        ),
        "assess_response": policy_pb2.AssessActionResponse(
            risk=common_pb2.RISK_LEVEL_HIGH,
            decision_type=common_pb2.DECISION_TYPE_FINANCIAL,
            strategy=common_pb2.STRATEGY_ESCALATE,
            matched_rules=[
                policy_pb2.MatchedRule(rule_id="amount", kind=policy_pb2.RULE_KIND_AMOUNT,
                                       explanation="amount 250 > 100", risk=common_pb2.RISK_LEVEL_HIGH),
                policy_pb2.MatchedRule(rule_id="word:refund", kind=policy_pb2.RULE_KIND_WORD,
                                       explanation='word "refund"', risk=common_pb2.RISK_LEVEL_HIGH,
                                       decision_type=common_pb2.DECISION_TYPE_FINANCIAL),
            ],
            sampled_for_review=True,
            policy_version="default-1",
        ),
        "stats": analytics_pb2.EscalationStatsResponse(
            since_unix_ms=1_763_395_200_000,
            until_unix_ms=1_764_000_000_000,
            sessions_in_window=1000,
            escalations=163,
            escalation_rate=0.163,
            top_reasons=[analytics_pb2.ReasonCount(reason="frustrated", count=90)],
            by_priority=[analytics_pb2.PriorityCount(priority=common_pb2.PRIORITY_URGENT, count=12)],
            alert_threshold=0.15,
            alert_active=True,
        ),
        "ping_empty": health_pb2.PingRequest(),
    }


def encode(message):
    return message.SerializeToString(deterministic=True)


def _fill(message, variant, depth=0):
    """Sets every field of `message` from its descriptor: signed numbers
    negative, 64-bit values past 32 bits, unicode strings, bytes with 0x00 and
    0xff, two elements in every repeated field and map, and in every oneof the
    first member (variant "a") or the last (variant "b")."""
    from google.protobuf.descriptor import FieldDescriptor as F

    desc = message.DESCRIPTOR
    skip = set()
    for oneof in desc.oneofs:
        chosen = oneof.fields[0] if variant == "a" else oneof.fields[-1]
        skip.update(f.name for f in oneof.fields if f is not chosen)

    def scalar(f, k):
        n = f.number * 1_000_003 + k
        if f.type in (F.TYPE_STRING,):
            return f"{f.name}-{k}-ü🙂"
        if f.type == F.TYPE_BYTES:
            return bytes([0, 255, k]) + f.name.encode()
        if f.type == F.TYPE_BOOL:
            return True
        if f.type in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
            return -n
        if f.type in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
            return -(n << 33)
        if f.type in (F.TYPE_UINT32, F.TYPE_FIXED32):
            return n + 2_000_000_000
        if f.type in (F.TYPE_UINT64, F.TYPE_FIXED64):
            return (n << 33) + 1
        if f.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
            return -1.25 * n
        if f.type == F.TYPE_ENUM:
            values = f.enum_type.values
            return values[(1 + k) % len(values)].number or values[-1].number
        raise AssertionError(f.type)

    for f in desc.fields:
        if f.name in skip:
            continue
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            getattr(message, f.name).update({f"k{k}-{f.name}": f"v{k}-ü" for k in range(2)})
        elif (f.is_repeated if hasattr(f, "is_repeated") else f.label == F.LABEL_REPEATED):
            if f.message_type is not None:
                for _ in range(2):
                    _fill(getattr(message, f.name).add(), variant, depth + 1)
            else:
                getattr(message, f.name).extend(scalar(f, k) for k in range(2))
        elif f.message_type is not None:
            _fill(getattr(message, f.name), variant, depth + 1)
        else:
            setattr(message, f.name, scalar(f, 0))
    return message


def every_message():
    """name -> message: each message type of the API with every field set, twice."""
    from google.protobuf import symbol_database  # noqa: F401
    from handoff.v1 import (admin_pb2, approvals_pb2, confirmations_pb2, decisions_pb2,  # noqa: F401
                            escalations_pb2, operators_pb2)
    import handoff.v1 as pkg
    out = {}
    for mod_name in sorted(n for n in dir(pkg) if n.endswith("_pb2")):
        mod = getattr(pkg, mod_name)
        for desc in mod.DESCRIPTOR.message_types_by_name.values():
            cls = getattr(mod, desc.name)
            for variant in ("a", "b"):
                out[f"{desc.full_name}.{variant}"] = _fill(cls(), variant)
    return out


def main(argv):
    vs = vectors()
    full = {os.path.join("AllMessages", n): m for n, m in every_message().items()}
    if len(argv) == 1:
        os.makedirs(os.path.join(VECTOR_DIR, "AllMessages"), exist_ok=True)
        for name, message in list(vs.items()) + list(full.items()):
            with open(os.path.join(VECTOR_DIR, name + ".bin"), "wb") as fh:
                fh.write(encode(message))
        print(f"wrote {len(vs)} vectors and {len(full)} full-message vectors to {os.path.relpath(VECTOR_DIR, ROOT)}")
        return 0
    if argv[1] == "--verify":
        stale = []
        for n, m in list(vs.items()) + list(full.items()):
            path = os.path.join(VECTOR_DIR, n + ".bin")
            if not os.path.exists(path) or open(path, "rb").read() != encode(m):
                stale.append(n)
        for n in stale:
            print(f"stale vector: {n} (run scripts/vectors.py)")
        return 1 if stale else 0
    if argv[1] == "--check" and len(argv) == 3:
        failures = 0
        for name, expected in vs.items():
            path = os.path.join(argv[2], name + ".bin")
            decoded = type(expected)()
            with open(path, "rb") as fh:
                decoded.ParseFromString(fh.read())
            if decoded != expected:
                failures += 1
                print(f"{name}: Python decoded Swift's encoding to a different message:\n{decoded}\nexpected:\n{expected}")
        print(f"checked {len(vs)} Swift encodings, {failures} mismatched")
        return 1 if failures else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
