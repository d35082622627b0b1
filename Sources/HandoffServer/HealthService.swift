// Handoff — handoff.v1.Health: a ping that touches nothing but the transport.

import Foundation
import HandoffProto
public import HandoffRPC

/// The version handoffd reports in PingResponse.
public let handoffVersion = "0.1.0"

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
