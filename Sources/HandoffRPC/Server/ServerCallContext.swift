// Handoff — what a server method handler knows about its call.

public import HandoffProto
public import Logging
public import NIOCore
import Synchronization

/// The verified identity of the peer, from its TLS client certificate.
public struct PeerIdentity: Sendable, Hashable {
    /// The certificate's subject common name.
    public var commonName: String?
    /// The certificate's SAN URIs, for example `handoff://tenant/acme/operator/alice`.
    public var uris: [String]
    /// The certificate's SHA-256 fingerprint, lower-case hex.
    public var fingerprint: String

    public init(commonName: String?, uris: [String], fingerprint: String) {
        self.commonName = commonName
        self.uris = uris
        self.fingerprint = fingerprint
    }
}

/// What is known about a connection: where it comes from and who is on it.
public struct ConnectionInfo: Sendable {
    /// The peer's address, `127.0.0.1:53211`.
    public var remoteAddress: String?
    /// The negotiated TLS version, `TLSv1.3`, once the handshake completed.
    public var tlsVersion: String?
    /// The verified client certificate, when the client presented one.
    public var peer: PeerIdentity?
    /// What the connection's calls work out once and share (the identity its
    /// certificate names, say): a new memo with every new `ConnectionInfo`.
    public let memo = ConnectionMemo()

    public init(remoteAddress: String? = nil, tlsVersion: String? = nil, peer: PeerIdentity? = nil) {
        self.remoteAddress = remoteAddress
        self.tlsVersion = tlsVersion
        self.peer = peer
    }
}

/// Values computed once per connection and shared by its calls, one per type.
/// Working out who a certificate names took 9% of the server's time on
/// Ping at 64 in flight (perf) when every call did it again.
public final class ConnectionMemo: Sendable {
    // The calls of one connection run on its event loop, so this lock is
    // taken by one thread at a time and costs no contention.
    private let values = Mutex<[ObjectIdentifier: any Sendable]>([:])

    public init() {}

    /// The value of type `T` for this connection, made by `make` the first time.
    public func value<T: Sendable>(_ make: () -> T) -> T {
        let key = ObjectIdentifier(T.self)
        if let found = values.withLock({ $0[key] }) as? T { return found }
        let made = make()
        values.withLock { $0[key] = made }
        return made
    }
}

/// The call a server handler is serving.
public struct ServerCallContext: Sendable {
    /// The method's wire name, `handoff.v1.Health/Ping`.
    public let method: String
    /// The call id on its connection.
    public let callID: UInt64
    /// The call's metadata, in the order sent (keys may repeat).
    public let metadata: [MetadataEntry]
    /// When the caller stops waiting; the handler is cancelled then.
    public let deadline: NIODeadline?
    /// The connection the call arrived on.
    public let connection: ConnectionInfo
    /// Who the registry's access check found the caller to be (its identity
    /// URI), or nil when there is no check or the call is anonymous.
    public internal(set) var identity: String?
    /// The connection's logger; `logger` adds the call's method and id on use,
    /// so calls that do not log pay nothing for the metadata.
    let connectionLogger: Logger

    /// A logger carrying the call's method and id.
    public var logger: Logger {
        var logger = connectionLogger
        logger[metadataKey: "call"] = "\(callID)"
        logger[metadataKey: "method"] = "\(method)"
        return logger
    }

    /// The first value of metadata `key` (lower-case), if present.
    public func metadataValue(_ key: String) -> String? {
        metadata.first { $0.key == key }?.value
    }
}
