// Handoff — HOST:PORT as servers, clients and tools write it.

public import NIOCore

/// An address written `host:port`, or `[v6-literal]:port`.
public struct HostAndPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `127.0.0.1:7443`, `localhost:0` or `[::1]:7443`; nil for anything
    /// else, including a port outside 0...65535 or an empty host.
    public init?(_ text: String) {
        let host: Substring
        let port: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            port = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let number = Int(port), (0...65_535).contains(number) else { return nil }
        self.host = String(host)
        self.port = number
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension HostAndPort {
    /// A socket's address as the logs write it: `127.0.0.1:7443`, `[::1]:7443`.
    public init(_ address: SocketAddress) {
        self.init(host: address.ipAddress ?? "?", port: address.port ?? 0)
    }
}
