"""Generated protobuf modules for handoff.v1 (scripts/generate; do not edit)."""
