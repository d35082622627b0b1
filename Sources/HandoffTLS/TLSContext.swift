// Handoff — TLSContext: one configured OpenSSL context shared by every
// connection of a server or client.

/// A TLS configuration turned into an OpenSSL `SSL_CTX`: files are read and
/// checked once, here, and every ``TLSHandler`` made from it shares it.
///
/// Build one per listener (or per client), not per connection.
public final class TLSContext: Sendable {
    /// The configuration this context was built from.
    public let configuration: TLSConfiguration
    let native: OpenSSLContext

    /// Reads the certificate chain, key, trust roots and CRL named by
    /// `configuration` and configures OpenSSL.
    ///
    /// - Throws: ``TLSError`` with code ``TLSError/Code/configuration`` whose
    ///   message names the offending file and gives OpenSSL's reason, e.g.
    ///   `cannot load private key '/etc/handoff/server.key': No such file or directory …`.
    public init(configuration: TLSConfiguration) throws(TLSError) {
        self.native = try OpenSSLContext(configuration: configuration)
        self.configuration = configuration
    }
}
