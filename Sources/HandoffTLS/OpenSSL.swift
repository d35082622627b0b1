// Handoff — every libssl call the TLS handler makes, in one file.
//
// `OpenSSLContext` owns an `SSL_CTX` (configured once, then shared by all
// connections); `OpenSSLConnection` owns one `SSL` and its two memory BIOs.
// Return codes are translated here, at the boundary, into small Swift enums
// (`TLSHandshakeResult`, `OpenSSLConnection.ReadResult`) and `TLSError`s that
// carry OpenSSL's reason text. The state machine and the handler never see C.
//
// Why two `BIO_s_mem` rather than a custom ByteBuffer-backed BIO (as
// swift-nio-ssl's ByteBufferBIO does): memory BIOs keep this file free of
// `BIO_METHOD` callbacks and their `Unmanaged` bookkeeping, and cost one
// memcpy of ciphertext per read, which is small next to the AEAD work on the
// same bytes. Both BIOs grow without bound, so `SSL_write` never returns
// WANT_WRITE and a read never needs more than the bytes already fed.
internal import COpenSSL
import NIOCore

// MARK: - Error queue

/// OpenSSL's per-thread error queue: cleared before each operation, drained
/// into reason texts after a failure.
/// OpenSSL, initialised once before its first use without its atexit(3)
/// cleanup (see `COpenSSL_init_without_atexit`): every entry point of this
/// module that calls OpenSSL reads `OpenSSLLibrary.initialized` first.
enum OpenSSLLibrary {
    static let initialized: Bool = COpenSSL_init_without_atexit() == 1
}

enum OpenSSLErrorQueue {
    @inline(__always)
    static func clear() {
        ERR_clear_error()
    }

    /// Removes every queued error, oldest first, as reason text such as
    /// `certificate verify failed` or `No such file or directory (calling fopen(/x, r))`.
    static func drainReasons() -> [String] {
        var reasons: [String] = []
        while true {
            var data: UnsafePointer<CChar>? = nil
            var flags: Int32 = 0
            let code = ERR_get_error_all(nil, nil, nil, &data, &flags)
            if code == 0 { break }
            var text: String
            if let reason = ERR_reason_error_string(code) {
                text = String(cString: reason)
            } else {
                text = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 256) { buffer in
                    ERR_error_string_n(code, buffer.baseAddress, buffer.count)
                    return String(cString: buffer.baseAddress!)
                }
            }
            if let data, flags & ERR_TXT_STRING != 0, data.pointee != 0 {
                text += " (\(String(cString: data)))"
            }
            if reasons.last != text { reasons.append(text) }
        }
        return reasons
    }

    /// A `TLSError` whose message is `prefix: reason; reason…`.
    static func error(_ code: TLSError.Code, _ prefix: String, fallback: String = "unknown OpenSSL error") -> TLSError {
        let reasons = self.drainReasons()
        return TLSError(code: code, message: "\(prefix): \(reasons.isEmpty ? fallback : reasons.joined(separator: "; "))")
    }
}

// MARK: - Context

/// The ALPN protocols a server accepts, in preference order, in a class so the
/// `@convention(c)` select callback can reach them through an unretained pointer.
/// The owning `OpenSSLContext` keeps it alive for as long as its `SSL_CTX`.
private final class ALPNProtocols {
    let names: [[UInt8]]
    init(_ names: [String]) { self.names = names.map { Array($0.utf8) } }
}

/// An `SSL_CTX` configured from a `TLSConfiguration`.
///
/// `@unchecked Sendable` is sound because: `ctx` is configured only inside
/// `init`, before `self` escapes, and never mutated afterwards; from then on it
/// is only handed to `SSL_new` (which takes its own reference atomically) and
/// read by OpenSSL during handshakes, which OpenSSL documents as safe from many
/// threads once setup is done (the `X509_STORE` locks itself). `alpn` is an
/// immutable array read by the select callback. Nothing else is stored.
final class OpenSSLContext: @unchecked Sendable {
    let ctx: OpaquePointer
    let configuration: TLSConfiguration
    /// Client: the server host name is an IP literal (checked as an IP SAN, no SNI).
    let serverHostnameIsIPAddress: Bool
    private let alpn: ALPNProtocols

    init(configuration: TLSConfiguration) throws(TLSError) {
        _ = OpenSSLLibrary.initialized
        try Self.validate(configuration)
        OpenSSLErrorQueue.clear()
        let method = configuration.role == .server ? TLS_server_method() : TLS_client_method()
        guard let ctx = SSL_CTX_new(method) else {
            throw OpenSSLErrorQueue.error(.configuration, "cannot create SSL_CTX")
        }
        let alpn = ALPNProtocols(configuration.applicationProtocols)
        do {
            try Self.configure(ctx, configuration, alpn: alpn)
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
        self.ctx = ctx
        self.configuration = configuration
        self.alpn = alpn
        self.serverHostnameIsIPAddress = configuration.serverHostname.map(Self.isIPAddress) ?? false
    }

    deinit {
        SSL_CTX_free(self.ctx)
    }

    private static func validate(_ configuration: TLSConfiguration) throws(TLSError) {
        func fail(_ message: String) -> TLSError { TLSError(code: .configuration, message: message) }
        switch (configuration.certificateChainPath, configuration.privateKeyPath) {
        case (nil, nil):
            if configuration.role == .server {
                throw fail("a TLS server needs certificateChainPath and privateKeyPath")
            }
        case (.some, nil):
            throw fail("certificateChainPath is set but privateKeyPath is not")
        case (nil, .some):
            throw fail("privateKeyPath is set but certificateChainPath is not")
        case (.some, .some):
            break
        }
        if configuration.role == .server, configuration.peerVerification != .none, configuration.trustRootsPath == nil {
            throw fail("verifying client certificates needs trustRootsPath (the client CA bundle)")
        }
        for name in configuration.applicationProtocols where name.utf8.isEmpty || name.utf8.count > 255 {
            throw fail("ALPN protocol name '\(name)' must be 1 to 255 bytes")
        }
        if let host = configuration.serverHostname, host.isEmpty || host.utf8.contains(0) {
            throw fail("serverHostname must be a non-empty host name or IP address")
        }
    }

    private static func configure(_ ctx: OpaquePointer, _ configuration: TLSConfiguration, alpn: ALPNProtocols) throws(TLSError) {
        _ = COpenSSL_SSL_CTX_set_handoff_options(ctx)
        let minimum = configuration.minimumVersion == .tls13 ? TLS1_3_VERSION : TLS1_2_VERSION
        guard COpenSSL_SSL_CTX_set_min_proto_version(ctx, minimum) == 1 else {
            throw OpenSSLErrorQueue.error(.configuration, "cannot set the minimum TLS version")
        }
        // TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3 keeps OpenSSL's defaults.
        guard SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL") == 1 else {
            throw OpenSSLErrorQueue.error(.configuration, "cannot set the TLS 1.2 cipher list")
        }
        if configuration.role == .server {
            // Handoff connections are long-lived and nobody resumes sessions:
            // sending TLS 1.3 tickets would cost a record and a signature-free
            // but non-trivial encryption on every handshake, for nothing.
            _ = SSL_CTX_set_num_tickets(ctx, 0)
            _ = COpenSSL_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_OFF))
        }

        // Our certificate and key.
        if let chain = configuration.certificateChainPath, let key = configuration.privateKeyPath {
            OpenSSLErrorQueue.clear()
            guard SSL_CTX_use_certificate_chain_file(ctx, chain) == 1 else {
                throw OpenSSLErrorQueue.error(.configuration, "cannot load certificate chain '\(chain)'")
            }
            guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 else {
                // OpenSSL checks the key against the certificate while loading it.
                let reasons = OpenSSLErrorQueue.drainReasons()
                let prefix =
                    reasons.contains(where: { $0.contains("mismatch") })
                    ? "private key '\(key)' does not match certificate '\(chain)'"
                    : "cannot load private key '\(key)'"
                let detail = reasons.isEmpty ? "unknown OpenSSL error" : reasons.joined(separator: "; ")
                throw TLSError(code: .configuration, message: "\(prefix): \(detail)")
            }
            guard SSL_CTX_check_private_key(ctx) == 1 else {
                throw OpenSSLErrorQueue.error(
                    .configuration,
                    "private key '\(key)' does not match certificate '\(chain)'"
                )
            }
        }

        // Verifying the peer.
        let verifyMode: Int32
        switch (configuration.role, configuration.peerVerification) {
        case (_, .none): verifyMode = SSL_VERIFY_NONE
        case (.server, .optional): verifyMode = SSL_VERIFY_PEER
        case (.server, .required): verifyMode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
        case (.client, _): verifyMode = SSL_VERIFY_PEER
        }
        SSL_CTX_set_verify(ctx, verifyMode, nil)
        // Handoff's chains are short (a CA, perhaps an intermediate, a leaf);
        // a long chain is refused rather than walked.
        SSL_CTX_set_verify_depth(ctx, TLSConfiguration.maximumVerifyDepth)
        if let roots = configuration.trustRootsPath {
            OpenSSLErrorQueue.clear()
            guard SSL_CTX_load_verify_locations(ctx, roots, nil) == 1 else {
                throw OpenSSLErrorQueue.error(.configuration, "cannot load trust roots '\(roots)'")
            }
            if configuration.role == .server, configuration.peerVerification != .none {
                // Tell clients which CAs we accept, so one holding several
                // certificates can pick the right one.
                if let names = SSL_load_client_CA_file(roots) {
                    SSL_CTX_set_client_CA_list(ctx, names)
                }
                OpenSSLErrorQueue.clear()
            }
        } else if configuration.role == .client, configuration.peerVerification != .none {
            guard SSL_CTX_set_default_verify_paths(ctx) == 1 else {
                throw OpenSSLErrorQueue.error(.configuration, "cannot load the system trust store")
            }
        }
        if let crl = configuration.crlPath {
            OpenSSLErrorQueue.clear()
            guard let store = SSL_CTX_get_cert_store(ctx),
                let lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file()),
                X509_load_crl_file(lookup, crl, X509_FILETYPE_PEM) > 0
            else {
                throw OpenSSLErrorQueue.error(.configuration, "cannot load CRL '\(crl)'")
            }
            // Every certificate of the chain, not only the leaf: a revoked
            // intermediate must not vouch for leaves it issued.
            _ = X509_STORE_set_flags(store, UInt(X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL))
        }

        // ALPN.
        guard !configuration.applicationProtocols.isEmpty else { return }
        switch configuration.role {
        case .server:
            // `arg` is an unretained pointer to `alpn`, which the OpenSSLContext
            // owns and which therefore outlives the SSL_CTX and every SSL made
            // from it (each OpenSSLConnection holds its OpenSSLContext).
            SSL_CTX_set_alpn_select_cb(ctx, handoffALPNSelect, Unmanaged.passUnretained(alpn).toOpaque())
            // The select callback is not called when a client sends no ALPN
            // extension at all; refuse those here, with the same alert.
            SSL_CTX_set_client_hello_cb(ctx, handoffRequireALPN, nil)
        case .client:
            var wire: [UInt8] = []
            for name in alpn.names {
                wire.append(UInt8(name.count))
                wire.append(contentsOf: name)
            }
            // Note the inverted convention: 0 is success.
            guard SSL_CTX_set_alpn_protos(ctx, wire, UInt32(wire.count)) == 0 else {
                throw OpenSSLErrorQueue.error(.configuration, "cannot set ALPN protocols")
            }
        }
    }

    /// Whether `host` is an IPv4 or IPv6 literal, as OpenSSL parses them.
    static func isIPAddress(_ host: String) -> Bool {
        guard let octets = a2i_IPADDRESS(host) else {
            OpenSSLErrorQueue.clear()
            return false
        }
        ASN1_OCTET_STRING_free(octets)
        return true
    }
}

/// Server ALPN: pick our most preferred protocol among those the client
/// offered, or fail the handshake with a `no_application_protocol` alert.
/// OpenSSL copies the selection after we return, so pointing into `input` is fine.
private func handoffALPNSelect(
    _ ssl: OpaquePointer?,
    _ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
    _ outLength: UnsafeMutablePointer<UInt8>?,
    _ input: UnsafePointer<UInt8>?,
    _ inputLength: UInt32,
    _ arg: UnsafeMutableRawPointer?
) -> Int32 {
    guard let out, let outLength, let input, let arg else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    let accepted = Unmanaged<ALPNProtocols>.fromOpaque(arg).takeUnretainedValue()
    let offered = UnsafeBufferPointer(start: input, count: Int(inputLength))
    for name in accepted.names {
        var index = 0
        while index < offered.count {
            let length = Int(offered[index])
            let start = index + 1
            let end = start + length
            guard end <= offered.count else { break }
            if length == name.count, offered[start..<end].elementsEqual(name) {
                out.pointee = input + start
                outLength.pointee = UInt8(length)
                return SSL_TLSEXT_ERR_OK
            }
            index = end
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL
}

/// Server client-hello callback: a ClientHello without an ALPN extension is
/// refused with `no_application_protocol`.
private func handoffRequireALPN(
    _ ssl: OpaquePointer?,
    _ alert: UnsafeMutablePointer<Int32>?,
    _ arg: UnsafeMutableRawPointer?
) -> Int32 {
    var data: UnsafePointer<UInt8>? = nil
    var length = 0
    let type = UInt32(TLSEXT_TYPE_application_layer_protocol_negotiation)
    if SSL_client_hello_get0_ext(ssl, type, &data, &length) == 1, length > 2 {
        return SSL_CLIENT_HELLO_SUCCESS
    }
    COpenSSL_raise_no_alpn_offered()
    alert?.pointee = SSL_AD_NO_APPLICATION_PROTOCOL
    return SSL_CLIENT_HELLO_ERROR
}

// MARK: - Connection

/// One TLS connection: an `SSL` reading ciphertext from `networkToSSL` and
/// writing ciphertext to `sslToNetwork`, both memory BIOs it owns.
/// Event-loop confined (not Sendable): only its handler calls it.
final class OpenSSLConnection {
    enum ReadResult: Equatable {
        /// Some plaintext was appended to the buffer.
        case bytes(Int)
        /// No complete record is buffered: feed more ciphertext.
        case wantRead
        /// The peer sent close_notify.
        case closeNotify
        case failed(TLSError)
    }

    private let ssl: OpaquePointer
    private let networkToSSL: OpaquePointer
    private let sslToNetwork: OpaquePointer
    /// Keeps the SSL_CTX, and the ALPN list its callback reads, alive.
    private let context: OpenSSLContext

    init(context: OpenSSLContext) throws(TLSError) {
        OpenSSLErrorQueue.clear()
        guard let ssl = SSL_new(context.ctx) else {
            throw OpenSSLErrorQueue.error(.configuration, "cannot create SSL")
        }
        guard let rbio = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw OpenSSLErrorQueue.error(.configuration, "cannot create memory BIO")
        }
        guard let wbio = BIO_new(BIO_s_mem()) else {
            BIO_free(rbio)
            SSL_free(ssl)
            throw OpenSSLErrorQueue.error(.configuration, "cannot create memory BIO")
        }
        // Empty means "retry later" (WANT_READ), never EOF: end of stream is
        // the handler's business (channelInactive / inputClosed).
        _ = COpenSSL_BIO_set_mem_eof_return(rbio, -1)
        _ = COpenSSL_BIO_set_mem_eof_return(wbio, -1)
        SSL_set_bio(ssl, rbio, wbio)  // `ssl` owns both BIOs from here on.
        self.ssl = ssl
        self.networkToSSL = rbio
        self.sslToNetwork = wbio
        self.context = context

        let configuration = context.configuration
        switch configuration.role {
        case .server:
            SSL_set_accept_state(ssl)
        case .client:
            SSL_set_connect_state(ssl)
            if let host = configuration.serverHostname {
                try self.setServerHostname(host, isIPAddress: context.serverHostnameIsIPAddress)
            }
        }
    }

    deinit {
        SSL_free(self.ssl)
    }

    private func setServerHostname(_ host: String, isIPAddress: Bool) throws(TLSError) {
        let verifying = self.context.configuration.peerVerification != .none
        if isIPAddress {
            // RFC 6066: no SNI for IP literals; check the certificate's IP SANs.
            if verifying, X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(self.ssl), host) != 1 {
                throw OpenSSLErrorQueue.error(.configuration, "cannot verify server IP address '\(host)'")
            }
        } else {
            guard COpenSSL_SSL_set_tlsext_host_name(self.ssl, host) == 1 else {
                throw OpenSSLErrorQueue.error(.configuration, "cannot set SNI '\(host)'")
            }
            if verifying {
                SSL_set_hostflags(self.ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
                guard SSL_set1_host(self.ssl, host) == 1 else {
                    throw OpenSSLErrorQueue.error(.configuration, "cannot verify server host name '\(host)'")
                }
            }
        }
    }

    // MARK: Handshake

    /// One step of the handshake over whatever ciphertext has been fed.
    func handshake() -> TLSHandshakeResult {
        OpenSSLErrorQueue.clear()
        let rc = SSL_do_handshake(self.ssl)
        if rc == 1 {
            if let error = self.checkNegotiatedApplicationProtocol() {
                return .failed(error)
            }
            return .complete
        }
        let code = SSL_get_error(self.ssl, rc)
        switch code {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .wantIO
        default:
            return .failed(self.failure(.handshakeFailed, "TLS handshake failed", sslError: code))
        }
    }

    /// Client: the server must have picked one of our protocols. (OpenSSL
    /// already refuses a pick we did not offer; this refuses no pick at all.)
    private func checkNegotiatedApplicationProtocol() -> TLSError? {
        let configuration = self.context.configuration
        guard configuration.role == .client, !configuration.applicationProtocols.isEmpty else { return nil }
        if let selected = self.selectedApplicationProtocol, configuration.applicationProtocols.contains(selected) {
            return nil
        }
        let offered = configuration.applicationProtocols.joined(separator: ", ")
        return TLSError(
            code: .handshakeFailed,
            message: "TLS handshake failed: server did not select ALPN protocol \(offered)"
        )
    }

    private var selectedApplicationProtocol: String? {
        var data: UnsafePointer<UInt8>? = nil
        var length: UInt32 = 0
        SSL_get0_alpn_selected(self.ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// What the handshake established. Call after `.complete`.
    func sessionInfo() -> TLSSessionInfo {
        let version = String(cString: SSL_get_version(self.ssl))
        let cipher = SSL_get_current_cipher(self.ssl).map { String(cString: SSL_CIPHER_get_name($0)) } ?? ""
        var peer: PeerCertificate? = nil
        if self.context.configuration.peerVerification != .none,
            SSL_get_verify_result(self.ssl) == X509_V_OK,
            let certificate = SSL_get1_peer_certificate(self.ssl)
        {
            peer = X509Certificate.peerCertificate(certificate)
            X509_free(certificate)
        }
        return TLSSessionInfo(
            protocolVersion: version,
            cipher: cipher,
            applicationProtocol: self.selectedApplicationProtocol,
            peer: peer
        )
    }

    // MARK: Ciphertext in

    /// Hands ciphertext from the network to OpenSSL. Fails only if memory runs out.
    func feed(ciphertext: ByteBuffer) -> TLSError? {
        let ok = ciphertext.withUnsafeReadableBytes { bytes -> Bool in
            guard bytes.count > 0 else { return true }
            var written = 0
            return BIO_write_ex(self.networkToSSL, bytes.baseAddress, bytes.count, &written) == 1
                && written == bytes.count
        }
        return ok ? nil : OpenSSLErrorQueue.error(.protocolError, "cannot buffer ciphertext")
    }

    /// Whether fed ciphertext, or decrypted plaintext, is waiting to be read.
    var hasBufferedInput: Bool {
        COpenSSL_BIO_pending(self.networkToSSL) > 0 || SSL_has_pending(self.ssl) == 1
    }

    /// A buffer size that holds the plaintext of everything buffered so far
    /// (plaintext is never longer than its ciphertext), within sane bounds.
    var plaintextCapacityHint: Int {
        let buffered = COpenSSL_BIO_pending(self.networkToSSL) + Int(SSL_pending(self.ssl))
        return min(max(buffered, 64), 256 * 1024)
    }

    // MARK: Plaintext

    /// Decrypts into the writable bytes of `buffer` (growing it if it has none).
    func readPlaintext(into buffer: inout ByteBuffer) -> ReadResult {
        OpenSSLErrorQueue.clear()
        var rc: Int32 = 0
        let count = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 1) { bytes -> Int in
            var read = 0
            rc = SSL_read_ex(self.ssl, bytes.baseAddress, bytes.count, &read)
            return rc == 1 ? read : 0
        }
        if rc == 1 { return .bytes(count) }
        let code = SSL_get_error(self.ssl, rc)
        switch code {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .wantRead
        case SSL_ERROR_ZERO_RETURN:
            return .closeNotify
        default:
            return .failed(self.failure(.protocolError, "TLS read failed", sslError: code))
        }
    }

    /// Encrypts all of `plaintext` into the outgoing BIO (which always takes it all).
    func writePlaintext(_ plaintext: ByteBuffer) -> TLSError? {
        OpenSSLErrorQueue.clear()
        return plaintext.withUnsafeReadableBytes { bytes -> TLSError? in
            guard bytes.count > 0 else { return nil }
            var written = 0
            let rc = SSL_write_ex(self.ssl, bytes.baseAddress, bytes.count, &written)
            if rc == 1 { return nil }
            return self.failure(.protocolError, "TLS write failed", sslError: SSL_get_error(self.ssl, rc))
        }
    }

    // MARK: Ciphertext out

    /// Bytes of ciphertext OpenSSL has produced and nobody has sent yet.
    var pendingCiphertextCount: Int {
        COpenSSL_BIO_pending(self.sslToNetwork)
    }

    /// Moves all pending ciphertext to the end of `buffer`.
    func drainCiphertext(into buffer: inout ByteBuffer) {
        let pending = self.pendingCiphertextCount
        guard pending > 0 else { return }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { bytes -> Int in
            var read = 0
            // A memory BIO holding `pending` bytes hands them all over.
            guard BIO_read_ex(self.sslToNetwork, bytes.baseAddress, pending, &read) == 1 else { return 0 }
            return read
        }
    }

    /// Queues a close_notify alert (send it with `drainCiphertext`). We do not
    /// wait for the peer's reply; TLS allows closing after sending ours.
    func shutdown() {
        OpenSSLErrorQueue.clear()
        _ = SSL_shutdown(self.ssl)
        OpenSSLErrorQueue.clear()
    }

    // MARK: Errors

    /// Drains the error queue into a `TLSError`, adding the X.509 verification
    /// result to OpenSSL's generic "certificate verify failed".
    private func failure(_ code: TLSError.Code, _ prefix: String, sslError: Int32) -> TLSError {
        var reasons = OpenSSLErrorQueue.drainReasons()
        let verifyResult = SSL_get_verify_result(self.ssl)
        if verifyResult != X509_V_OK, let index = reasons.firstIndex(where: { $0.hasPrefix("certificate verify failed") }) {
            reasons[index] = "certificate verify failed: " + String(cString: X509_verify_cert_error_string(verifyResult))
        }
        if reasons.isEmpty {
            reasons.append(sslError == SSL_ERROR_SYSCALL ? "unexpected end of stream" : "SSL error \(sslError)")
        }
        return TLSError(code: code, message: "\(prefix): \(reasons.joined(separator: "; "))")
    }
}

// MARK: - Certificates

/// Reading fields of an `X509*` without taking ownership of it.
enum X509Certificate {
    static func peerCertificate(_ certificate: OpaquePointer) -> PeerCertificate {
        let name = X509_get_subject_name(certificate)
        var uris: [String] = []
        var dnsNames: [String] = []
        if let raw = X509_get_ext_d2i(certificate, NID_subject_alt_name, nil, nil) {
            let names = OpaquePointer(raw)
            for index in 0..<COpenSSL_sk_GENERAL_NAME_num(names) {
                var type: Int32 = 0
                guard let entry = COpenSSL_sk_GENERAL_NAME_value(names, index),
                    let value = GENERAL_NAME_get0_value(entry, &type)
                else { continue }
                switch type {
                case GEN_URI: uris.append(self.string(value.assumingMemoryBound(to: ASN1_STRING.self)))
                case GEN_DNS: dnsNames.append(self.string(value.assumingMemoryBound(to: ASN1_STRING.self)))
                default: break
                }
            }
            GENERAL_NAMES_free(names)
        }
        return PeerCertificate(
            subject: name.map(self.rfc2253) ?? "",
            subjectCommonName: name.flatMap(self.commonName),
            uris: uris,
            dnsNames: dnsNames,
            notBefore: self.unixTime(X509_get0_notBefore(certificate)),
            notAfter: self.unixTime(X509_get0_notAfter(certificate)),
            sha256Fingerprint: self.sha256Fingerprint(certificate)
        )
    }

    private static func string(_ asn1: UnsafePointer<ASN1_STRING>) -> String {
        guard let data = ASN1_STRING_get0_data(asn1) else { return "" }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(asn1))), as: UTF8.self)
    }

    private static func commonName(_ name: OpaquePointer) -> String? {
        let index = X509_NAME_get_index_by_NID(name, NID_commonName, -1)
        guard index >= 0, let entry = X509_NAME_get_entry(name, index),
            let data = X509_NAME_ENTRY_get_data(entry)
        else { return nil }
        var utf8: UnsafeMutablePointer<UInt8>? = nil
        let length = ASN1_STRING_to_UTF8(&utf8, data)
        guard length >= 0, let utf8 else { return nil }
        defer { COpenSSL_OPENSSL_free(utf8) }
        return String(decoding: UnsafeBufferPointer(start: utf8, count: Int(length)), as: UTF8.self)
    }

    private static func rfc2253(_ name: OpaquePointer) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        guard X509_NAME_print_ex(bio, name, 0, COpenSSL_XN_FLAG_RFC2253()) >= 0 else { return "" }
        var data: UnsafeMutablePointer<CChar>? = nil
        let length = COpenSSL_BIO_get_mem_data(bio, &data)
        guard let data, length > 0 else { return "" }
        return data.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }

    /// Seconds since 1970 of an ASN1_TIME, via OpenSSL's own date arithmetic.
    private static func unixTime(_ time: UnsafePointer<ASN1_TIME>?) -> Int64 {
        guard let time, let epoch = ASN1_TIME_set(nil, 0) else { return 0 }
        defer { ASN1_TIME_free(epoch) }
        var days: Int32 = 0
        var seconds: Int32 = 0
        guard ASN1_TIME_diff(&days, &seconds, epoch, time) == 1 else { return 0 }
        return Int64(days) * 86_400 + Int64(seconds)
    }

    private static func sha256Fingerprint(_ certificate: OpaquePointer) -> String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Int(EVP_MAX_MD_SIZE)) { digest in
            var length: UInt32 = 0
            guard X509_digest(certificate, EVP_sha256(), digest.baseAddress, &length) == 1 else { return "" }
            let hex: [UInt8] = Array("0123456789abcdef".utf8)
            var out: [UInt8] = []
            out.reserveCapacity(Int(length) * 2)
            for byte in digest.prefix(Int(length)) {
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0f)])
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
