// Handoff — a development certificate authority built with OpenSSL's
// EVP_PKEY / X509 / X509_CRL APIs (no `openssl` command line): the CA, server
// and client certificates of `handoff certs init`, and the odd certificates
// tests need (expired, from an unknown CA, revoked).
//
// Like OpenSSL.swift, this file holds raw OpenSSL pointers; every one is
// freed in the function that made it.
internal import COpenSSL

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Musl)
    internal import Musl
#elseif canImport(Darwin)
    internal import Darwin
#endif

#if canImport(Glibc)
    private let systemWrite = Glibc.write
#elseif canImport(Musl)
    private let systemWrite = Musl.write
#elseif canImport(Darwin)
    private let systemWrite = Darwin.write
#endif

/// A development certificate authority: EC P-256 keys, SHA-256 signatures.
///
/// Not for production: the CA key sits unencrypted next to the certificates.
public enum DevelopmentPKI {
    /// What a leaf certificate may be used for (its extended key usage).
    public enum Usage: Sendable, Hashable {
        case server
        case client
    }

    /// Default validity of everything ``create(directory:clients:validityDays:serverNames:overwrite:)`` writes.
    public static let defaultValidityDays = 825

    /// Writes a development CA and the certificates a local deployment needs:
    ///
    /// - `ca.pem`, `ca.key`: the CA (`CN=Handoff Development CA`);
    /// - `server.pem`, `server.key`: `CN=localhost`, SAN `DNS:localhost`,
    ///   `IP:127.0.0.1`, `IP:::1` (or `serverNames`), EKU serverAuth;
    /// - `<name>.pem`, `<name>.key` for each client: `CN=<name>`, SAN `URI:<uri>`,
    ///   EKU clientAuth.
    ///
    /// Keys are written mode 0600, certificates 0644; `directory` is created
    /// (mode 0700) if missing.
    ///
    /// - Parameters:
    ///   - directory: where to write; created if missing.
    ///   - clients: one client certificate per entry, e.g.
    ///     `("alice", "handoff://tenant/acme/operator/alice")`.
    ///   - validityDays: validity of every certificate written.
    ///   - serverNames: host names and IP literals for the server certificate.
    ///   - overwrite: replace an existing CA in `directory`; otherwise an
    ///     existing `ca.key` is an error, so a CA is never replaced by accident.
    /// - Throws: ``TLSError`` with code ``TLSError/Code/certificateCreation``.
    public static func create(
        directory: String,
        clients: [(name: String, uri: String)],
        validityDays: Int = DevelopmentPKI.defaultValidityDays,
        serverNames: [String] = ["localhost", "127.0.0.1", "::1"],
        overwrite: Bool = false
    ) throws(TLSError) {
        _ = OpenSSLLibrary.initialized
        try FileIO.makeDirectory(directory)
        let caCertificate = FileIO.join(directory, "ca.pem")
        let caKey = FileIO.join(directory, "ca.key")
        if !overwrite, FileIO.exists(caKey) {
            throw TLSError(code: .certificateCreation, message: "'\(caKey)' already exists; not replacing a CA")
        }
        for client in clients where client.name.isEmpty || client.name.contains("/") || client.name == "ca" || client.name == "server" {
            throw TLSError(code: .certificateCreation, message: "invalid client certificate name '\(client.name)'")
        }
        try self.createAuthority(
            certificatePath: caCertificate,
            keyPath: caKey,
            commonName: "Handoff Development CA",
            validityDays: validityDays
        )
        try self.issueCertificate(
            certificatePath: FileIO.join(directory, "server.pem"),
            keyPath: FileIO.join(directory, "server.key"),
            issuerCertificatePath: caCertificate,
            issuerKeyPath: caKey,
            commonName: serverNames.first ?? "localhost",
            subjectAlternativeNames: serverNames,
            usage: .server,
            notAfterDays: validityDays
        )
        for client in clients {
            try self.issueCertificate(
                certificatePath: FileIO.join(directory, "\(client.name).pem"),
                keyPath: FileIO.join(directory, "\(client.name).key"),
                issuerCertificatePath: caCertificate,
                issuerKeyPath: caKey,
                commonName: client.name,
                uris: [client.uri],
                usage: .client,
                notAfterDays: validityDays
            )
        }
    }

    /// Creates a self-signed CA certificate and its key.
    ///
    /// - Parameters:
    ///   - certificatePath: PEM certificate to write (mode 0644).
    ///   - keyPath: PEM private key to write (mode 0600).
    ///   - commonName: the CA's subject CN.
    ///   - validityDays: days from now until it expires.
    public static func createAuthority(
        certificatePath: String,
        keyPath: String,
        commonName: String,
        validityDays: Int = DevelopmentPKI.defaultValidityDays
    ) throws(TLSError) {
        _ = OpenSSLLibrary.initialized
        let key = try Key.generate()
        let certificate = try CertificateBuilder.build(
            commonName: commonName,
            publicKey: key.pointer,
            issuer: nil,
            signingKey: key.pointer,
            notBeforeSeconds: -3600,
            notAfterSeconds: validityDays * 86_400,
            extensions: [
                (NID_basic_constraints, "critical,CA:TRUE,pathlen:0"),
                (NID_key_usage, "critical,keyCertSign,cRLSign"),
                (NID_subject_key_identifier, "hash"),
            ]
        )
        defer { X509_free(certificate) }
        try PEM.write(key: key.pointer, to: keyPath)
        try PEM.write(certificate: certificate, to: certificatePath)
    }

    /// Issues a leaf certificate signed by an existing CA, with a new key.
    ///
    /// - Parameters:
    ///   - certificatePath: PEM certificate to write (mode 0644).
    ///   - keyPath: PEM private key to write (mode 0600).
    ///   - issuerCertificatePath: the CA certificate (PEM).
    ///   - issuerKeyPath: the CA key (PEM).
    ///   - commonName: the subject CN (for clients, the identity name).
    ///   - subjectAlternativeNames: DNS names and IP literals (IPs are detected).
    ///   - uris: SAN URIs, such as `handoff://tenant/acme/operator/alice`.
    ///   - usage: server or client authentication.
    ///   - notBeforeDays: start of validity, in days from now (negative: past).
    ///     The start is backdated one more hour for clock skew.
    ///   - notAfterDays: end of validity, in days from now; negative makes an
    ///     already expired certificate.
    public static func issueCertificate(
        certificatePath: String,
        keyPath: String,
        issuerCertificatePath: String,
        issuerKeyPath: String,
        commonName: String,
        subjectAlternativeNames: [String] = [],
        uris: [String] = [],
        usage: Usage,
        notBeforeDays: Int = 0,
        notAfterDays: Int = DevelopmentPKI.defaultValidityDays
    ) throws(TLSError) {
        _ = OpenSSLLibrary.initialized
        let issuer = try PEM.readCertificate(issuerCertificatePath)
        defer { X509_free(issuer) }
        let issuerKey = try PEM.readKey(issuerKeyPath)
        let key = try Key.generate()

        var names: [String] = []
        for name in subjectAlternativeNames {
            names.append(OpenSSLContext.isIPAddress(name) ? "IP:\(name)" : "DNS:\(name)")
        }
        for uri in uris {
            names.append("URI:\(uri)")
        }
        for name in names where name.contains(",") {
            throw TLSError(code: .certificateCreation, message: "subject alternative name '\(name)' contains a comma")
        }
        var extensions: [(Int32, String)] = [
            (NID_basic_constraints, "critical,CA:FALSE"),
            (NID_key_usage, "critical,digitalSignature"),
            (NID_ext_key_usage, usage == .server ? "serverAuth" : "clientAuth"),
            (NID_subject_key_identifier, "hash"),
            (NID_authority_key_identifier, "keyid:always"),
        ]
        if !names.isEmpty {
            extensions.append((NID_subject_alt_name, names.joined(separator: ",")))
        }
        let certificate = try CertificateBuilder.build(
            commonName: commonName,
            publicKey: key.pointer,
            issuer: issuer,
            signingKey: issuerKey.pointer,
            notBeforeSeconds: notBeforeDays * 86_400 - 3600,
            notAfterSeconds: notAfterDays * 86_400,
            extensions: extensions
        )
        defer { X509_free(certificate) }
        try PEM.write(key: key.pointer, to: keyPath)
        try PEM.write(certificate: certificate, to: certificatePath)
    }

    /// Writes a CRL, signed by the CA, revoking the given certificates.
    ///
    /// - Parameters:
    ///   - path: PEM CRL to write (mode 0644).
    ///   - issuerCertificatePath: the CA that issued the revoked certificates.
    ///   - issuerKeyPath: its key.
    ///   - revokedCertificatePaths: PEM certificates to revoke (may be empty).
    ///   - nextUpdateDays: days until the CRL should be replaced.
    public static func createRevocationList(
        path: String,
        issuerCertificatePath: String,
        issuerKeyPath: String,
        revokedCertificatePaths: [String],
        nextUpdateDays: Int = 30
    ) throws(TLSError) {
        _ = OpenSSLLibrary.initialized
        let issuer = try PEM.readCertificate(issuerCertificatePath)
        defer { X509_free(issuer) }
        let issuerKey = try PEM.readKey(issuerKeyPath)
        OpenSSLErrorQueue.clear()
        guard let crl = X509_CRL_new() else {
            throw OpenSSLErrorQueue.error(.certificateCreation, "cannot create CRL")
        }
        defer { X509_CRL_free(crl) }
        guard let lastUpdate = X509_gmtime_adj(nil, -60) else {
            throw OpenSSLErrorQueue.error(.certificateCreation, "cannot create CRL")
        }
        defer { ASN1_TIME_free(lastUpdate) }
        guard let nextUpdate = X509_gmtime_adj(nil, nextUpdateDays * 86_400) else {
            throw OpenSSLErrorQueue.error(.certificateCreation, "cannot create CRL")
        }
        defer { ASN1_TIME_free(nextUpdate) }
        guard X509_CRL_set_version(crl, 1) == 1,  // v2
            X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) == 1,
            X509_CRL_set1_lastUpdate(crl, lastUpdate) == 1,
            X509_CRL_set1_nextUpdate(crl, nextUpdate) == 1
        else {
            throw OpenSSLErrorQueue.error(.certificateCreation, "cannot fill in CRL")
        }
        for revokedPath in revokedCertificatePaths {
            let revoked = try PEM.readCertificate(revokedPath)
            defer { X509_free(revoked) }
            guard let entry = X509_REVOKED_new() else {
                throw OpenSSLErrorQueue.error(.certificateCreation, "cannot create CRL entry")
            }
            guard X509_REVOKED_set_serialNumber(entry, X509_get_serialNumber(revoked)) == 1,
                X509_REVOKED_set_revocationDate(entry, lastUpdate) == 1,
                X509_CRL_add0_revoked(crl, entry) == 1  // `crl` owns `entry` from here
            else {
                X509_REVOKED_free(entry)
                throw OpenSSLErrorQueue.error(.certificateCreation, "cannot revoke '\(revokedPath)'")
            }
        }
        guard X509_CRL_sort(crl) == 1, X509_CRL_sign(crl, issuerKey.pointer, EVP_sha256()) > 0 else {
            throw OpenSSLErrorQueue.error(.certificateCreation, "cannot sign CRL")
        }
        try PEM.write(path: path, mode: 0o644, secret: false, what: "CRL") { bio in
            PEM_write_bio_X509_CRL(bio, crl) == 1
        }
    }

    /// The `nextUpdate` of each CRL in a PEM file, as seconds from now
    /// (negative once passed; nil for a CRL without one). A CRL past its
    /// next update fails every verification that needs it, so a server reports these.
    public static func revocationListNextUpdates(path: String) throws(TLSError) -> [Int?] {
        _ = OpenSSLLibrary.initialized
        OpenSSLErrorQueue.clear()
        guard let bio = BIO_new_file(path, "r") else {
            throw OpenSSLErrorQueue.error(.configuration, "cannot open CRL '\(path)'")
        }
        defer { BIO_free(bio) }
        var found: [Int?] = []
        while let crl = PEM_read_bio_X509_CRL(bio, nil, nil, nil) {
            defer { X509_CRL_free(crl) }
            var days: Int32 = 0
            var seconds: Int32 = 0
            if let next = X509_CRL_get0_nextUpdate(crl), ASN1_TIME_diff(&days, &seconds, nil, next) == 1 {
                found.append(Int(days) * 86_400 + Int(seconds))
            } else {
                found.append(nil)
            }
        }
        OpenSSLErrorQueue.clear()  // the read past the last CRL leaves "no start line"
        return found
    }

    /// Reads the identifying fields of a PEM certificate (the first in the file).
    public static func readCertificate(path: String) throws(TLSError) -> PeerCertificate {
        _ = OpenSSLLibrary.initialized
        let certificate = try PEM.readCertificate(path)
        defer { X509_free(certificate) }
        return X509Certificate.peerCertificate(certificate)
    }
}

// MARK: - Building blocks

/// An owned `EVP_PKEY*`.
private final class Key {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { EVP_PKEY_free(self.pointer) }

    static func generate() throws(TLSError) -> Key {
        OpenSSLErrorQueue.clear()
        guard let key = COpenSSL_EVP_EC_gen("P-256") else {
            throw OpenSSLErrorQueue.error(.certificateCreation, "cannot generate an EC P-256 key")
        }
        return Key(key)
    }
}

private enum CertificateBuilder {
    /// A signed X.509 v3 certificate; the caller frees it with `X509_free`.
    /// `issuer == nil` makes it self-signed.
    static func build(
        commonName: String,
        publicKey: OpaquePointer,
        issuer: OpaquePointer?,
        signingKey: OpaquePointer,
        notBeforeSeconds: Int,
        notAfterSeconds: Int,
        extensions: [(Int32, String)]
    ) throws(TLSError) -> OpaquePointer {
        OpenSSLErrorQueue.clear()
        guard let certificate = X509_new() else {
            throw OpenSSLErrorQueue.error(.certificateCreation, "cannot create certificate")
        }
        do {
            try self.fill(
                certificate,
                commonName: commonName,
                publicKey: publicKey,
                issuer: issuer,
                signingKey: signingKey,
                notBeforeSeconds: notBeforeSeconds,
                notAfterSeconds: notAfterSeconds,
                extensions: extensions
            )
        } catch {
            X509_free(certificate)
            throw error
        }
        return certificate
    }

    private static func fill(
        _ certificate: OpaquePointer,
        commonName: String,
        publicKey: OpaquePointer,
        issuer: OpaquePointer?,
        signingKey: OpaquePointer,
        notBeforeSeconds: Int,
        notAfterSeconds: Int,
        extensions: [(Int32, String)]
    ) throws(TLSError) {
        func failure(_ what: String) -> TLSError {
            OpenSSLErrorQueue.error(.certificateCreation, "cannot create certificate '\(commonName)': \(what)")
        }
        guard X509_set_version(certificate, 2) == 1 else { throw failure("version") }  // v3

        // A random positive 127-bit serial, as CAs must use unpredictable serials.
        var serialBytes = [UInt8](repeating: 0, count: 16)
        guard RAND_bytes(&serialBytes, Int32(serialBytes.count)) == 1 else { throw failure("serial") }
        serialBytes[0] = (serialBytes[0] & 0x7f) | 0x01
        guard let serialNumber = BN_bin2bn(serialBytes, Int32(serialBytes.count), nil) else { throw failure("serial") }
        defer { BN_free(serialNumber) }
        guard let serial = BN_to_ASN1_INTEGER(serialNumber, nil) else { throw failure("serial") }
        defer { ASN1_INTEGER_free(serial) }
        guard X509_set_serialNumber(certificate, serial) == 1 else { throw failure("serial") }

        guard X509_gmtime_adj(X509_getm_notBefore(certificate), notBeforeSeconds) != nil,
            X509_gmtime_adj(X509_getm_notAfter(certificate), notAfterSeconds) != nil
        else { throw failure("validity") }
        guard X509_set_pubkey(certificate, publicKey) == 1 else { throw failure("public key") }

        guard let name = X509_NAME_new() else { throw failure("subject") }
        defer { X509_NAME_free(name) }
        let cn = Array(commonName.utf8)
        guard X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, cn, Int32(cn.count), -1, 0) == 1,
            X509_set_subject_name(certificate, name) == 1,
            X509_set_issuer_name(certificate, issuer.map { X509_get_subject_name($0) } ?? name) == 1
        else { throw failure("subject") }

        // Extensions are built in order: the subject key identifier must exist
        // before a self-signed certificate's authority key identifier refers to it.
        var v3 = X509V3_CTX()
        X509V3_set_ctx(&v3, issuer ?? certificate, certificate, nil, nil, 0)
        for (nid, value) in extensions {
            guard let ext = X509V3_EXT_conf_nid(nil, &v3, nid, value) else {
                throw failure("extension \(String(cString: OBJ_nid2sn(nid))) = \(value)")
            }
            defer { X509_EXTENSION_free(ext) }
            guard X509_add_ext(certificate, ext, -1) == 1 else {
                throw failure("extension \(String(cString: OBJ_nid2sn(nid)))")
            }
        }
        guard X509_sign(certificate, signingKey, EVP_sha256()) > 0 else { throw failure("signature") }
    }
}

private enum PEM {
    static func readCertificate(_ path: String) throws(TLSError) -> OpaquePointer {
        OpenSSLErrorQueue.clear()
        guard let bio = BIO_new_file(path, "r") else {
            throw OpenSSLErrorQueue.error(.certificateCreation, "cannot open certificate '\(path)'")
        }
        defer { BIO_free(bio) }
        guard let certificate = PEM_read_bio_X509(bio, nil, nil, nil) else {
            throw OpenSSLErrorQueue.error(.certificateCreation, "cannot read certificate '\(path)'")
        }
        return certificate
    }

    static func readKey(_ path: String) throws(TLSError) -> Key {
        OpenSSLErrorQueue.clear()
        guard let bio = BIO_new_file(path, "r") else {
            throw OpenSSLErrorQueue.error(.certificateCreation, "cannot open private key '\(path)'")
        }
        defer { BIO_free(bio) }
        guard let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else {
            throw OpenSSLErrorQueue.error(.certificateCreation, "cannot read private key '\(path)'")
        }
        return Key(key)
    }

    static func write(certificate: OpaquePointer, to path: String) throws(TLSError) {
        try self.write(path: path, mode: 0o644, secret: false, what: "certificate") { bio in
            PEM_write_bio_X509(bio, certificate) == 1
        }
    }

    /// Unencrypted PKCS#8, mode 0600.
    static func write(key: OpaquePointer, to path: String) throws(TLSError) {
        try self.write(path: path, mode: 0o600, secret: true, what: "private key") { bio in
            PEM_write_bio_PrivateKey(bio, key, nil, nil, 0, nil, nil) == 1
        }
    }

    /// Encodes into a memory BIO (a secure-heap one for secrets, cleared when
    /// freed), then writes the file with `mode` from the moment it exists.
    static func write(
        path: String,
        mode: mode_t,
        secret: Bool,
        what: String,
        _ encode: (OpaquePointer) -> Bool
    ) throws(TLSError) {
        OpenSSLErrorQueue.clear()
        guard let bio = BIO_new(secret ? BIO_s_secmem() : BIO_s_mem()) else {
            throw OpenSSLErrorQueue.error(.certificateCreation, "cannot encode \(what) '\(path)'")
        }
        defer { BIO_free(bio) }
        guard encode(bio) else {
            throw OpenSSLErrorQueue.error(.certificateCreation, "cannot encode \(what) '\(path)'")
        }
        var data: UnsafeMutablePointer<CChar>? = nil
        let length = COpenSSL_BIO_get_mem_data(bio, &data)
        guard let data, length > 0 else {
            throw TLSError(code: .certificateCreation, message: "cannot encode \(what) '\(path)': empty PEM")
        }
        try FileIO.writeFile(path: path, bytes: UnsafeRawBufferPointer(start: data, count: length), mode: mode)
    }
}

private enum FileIO {
    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    static func systemError(_ what: String, _ path: String, _ code: Int32) -> TLSError {
        TLSError(code: .certificateCreation, message: "\(what) '\(path)': \(String(cString: strerror(code)))")
    }

    /// `mkdir -p` with mode 0700 for what it creates.
    static func makeDirectory(_ path: String) throws(TLSError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o700) != 0 {
                // An existing file (not a directory) shows up as ENOTDIR later.
                let code = errno
                guard code == EEXIST else {
                    throw self.systemError("cannot create directory", prefix, code)
                }
            }
            prefix += "/"
        }
    }

    /// Creates (or truncates) `path` with `mode` and writes all of `bytes`.
    static func writeFile(path: String, bytes: UnsafeRawBufferPointer, mode: mode_t) throws(TLSError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw self.systemError("cannot create", path, errno) }
        defer { close(fd) }
        // An existing file keeps its old mode through O_CREAT: set it.
        guard fchmod(fd, mode) == 0 else { throw self.systemError("cannot set mode of", path, errno) }
        var offset = 0
        while offset < bytes.count {
            let written = systemWrite(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw self.systemError("cannot write", path, errno)
            }
            offset += written
        }
        guard fsync(fd) == 0 else { throw self.systemError("cannot sync", path, errno) }
    }
}
