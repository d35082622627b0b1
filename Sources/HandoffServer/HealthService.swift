// Handoff — handoff.v1.Health: a ping that touches nothing but the transport.

import Foundation
import HandoffProto
public import HandoffRPC
import HandoffVersion

/// The version handoffd reports in PingResponse: the release, and the
/// commit it was built from as semver build metadata (`0.1.0+14338a1c0ffe`).
public let handoffVersion = HandoffVersion.release + "+" + HandoffVersion.commit

extension MethodRegistry {
    /// Registers `handoff.v1.Health/Ping`: echoes the payload with the server's clock.
    public mutating func registerHealth() {
        register(Health.ping) { request, _ in
            PingResponse(
                payload: request.payload,
                serverTimeUnixMs: Int64(Date().timeIntervalSince1970 * 1000),
                serverVersion: handoffVersion)
        }
    }
}
