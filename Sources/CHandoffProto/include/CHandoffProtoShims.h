// Handoff — CHandoffProto shim: the few things Swift needs from protobuf-c
// that are not plain functions, and the layout assumptions the Swift bridge
// (Sources/HandoffProto/ProtoMessage+CBridge.swift) relies on.
#ifndef CHANDOFFPROTO_SHIMS_H
#define CHANDOFFPROTO_SHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

// The bridge writes protobuf-c booleans as 32-bit integers and array lengths
// as Swift Int; fail the build rather than miscompile if either changes.
_Static_assert(sizeof(protobuf_c_boolean) == 4, "protobuf_c_boolean must be 32 bits");
_Static_assert(sizeof(size_t) == sizeof(intptr_t), "size_t must match Swift's Int");

/// The libprotobuf-c version the binary runs with, for example "1.4.1".
static inline const char *CHandoffProto_libraryVersion(void) {
  return protobuf_c_version();
}

/// The libprotobuf-c version the shim was compiled against.
static inline uint32_t CHandoffProto_headerVersionNumber(void) {
  return PROTOBUF_C_VERSION_NUMBER;
}

#endif
