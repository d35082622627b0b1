// Handoff — test fixture: a root CA with intermediate CAs under it, made with
// the `openssl` command line (DevelopmentPKI's CAs carry pathlen:0 and sign
// leaves only), client certificates from any of them, and CRLs from each.
import Foundation
import HandoffTLS
import HandoffTestSupport

/// `root.pem`, then `intermediate-1.pem` (signed by the root) down to
/// `intermediate-<count>.pem`, each signed by the one above, in a fresh
/// directory of the shared test PKI.
struct IntermediateCAs: Sendable {
    let directory: String
    let count: Int

    var root: String { self.path("root.pem") }
    func certificate(_ level: Int) -> String { self.path(level == 0 ? "root.pem" : "intermediate-\(level).pem") }
    func key(_ level: Int) -> String { self.path(level == 0 ? "root.key" : "intermediate-\(level).key") }
    func path(_ name: String) -> String { self.directory + "/" + name }

    private static let config = """
        [req]
        distinguished_name = dn
        prompt = no
        [dn]
        [ca]
        basicConstraints = critical,CA:TRUE
        keyUsage = critical,keyCertSign,cRLSign
        subjectKeyIdentifier = hash
        authorityKeyIdentifier = keyid:always

        """

    /// At least one intermediate.
    static func make(count: Int) async throws -> IntermediateCAs {
        precondition(count >= 1)
        let cas = IntermediateCAs(directory: TestPKI.shared.path("chain-\(UUID().uuidString)"), count: count)
        try FileManager.default.createDirectory(atPath: cas.directory, withIntermediateDirectories: true)
        let config = cas.path("ca.cnf")
        try Self.config.write(toFile: config, atomically: true, encoding: .utf8)
        let newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc"]
        try await openssl(
            [
                "req", "-x509", "-new", "-config", config, "-extensions", "ca", "-subj", "/CN=Chain Root", "-days", "30",
                "-keyout", cas.key(0), "-out", cas.root,
            ] + newKey)
        for level in 1...count {
            let request = cas.path("intermediate-\(level).csr")
            try await openssl(
                [
                    "req", "-new", "-config", config, "-subj", "/CN=Intermediate \(level)",
                    "-keyout", cas.key(level), "-out", request,
                ] + newKey)
            try await openssl(
                [
                    "x509", "-req", "-in", request, "-CA", cas.certificate(level - 1), "-CAkey", cas.key(level - 1),
                    "-days", "30", "-extfile", config, "-extensions", "ca", "-out", cas.certificate(level),
                ])
        }
        return cas
    }

    /// A client certificate from intermediate `level`: the chain file (leaf,
    /// then every intermediate up to the root, which is left out) and the key.
    func client(from level: Int, name: String = "carol") throws -> (chain: String, key: String) {
        let leaf = self.path("\(name)-\(level).pem")
        let key = self.path("\(name)-\(level).key")
        try DevelopmentPKI.issueCertificate(
            certificatePath: leaf, keyPath: key,
            issuerCertificatePath: self.certificate(level), issuerKeyPath: self.key(level),
            commonName: name, uris: ["handoff://tenant/acme/operator/\(name)"], usage: .client
        )
        let chain = self.path("\(name)-\(level)-chain.pem")
        let pems = try ([leaf] + (1...level).reversed().map(self.certificate)).map { try String(contentsOfFile: $0, encoding: .utf8) }
        try pems.joined().write(toFile: chain, atomically: true, encoding: .utf8)
        return (chain, key)
    }

    /// One PEM file with a CRL from each CA, root included; the root's
    /// revokes intermediate 1 when `revokingFirstIntermediate`.
    func revocationLists(revokingFirstIntermediate: Bool) throws -> String {
        let file = self.path("crls-\(UUID().uuidString).pem")
        var pems: [String] = []
        for level in 0...self.count {
            let crl = self.path("crl-\(level)-\(UUID().uuidString).pem")
            try DevelopmentPKI.createRevocationList(
                path: crl, issuerCertificatePath: self.certificate(level), issuerKeyPath: self.key(level),
                revokedCertificatePaths: level == 0 && revokingFirstIntermediate ? [self.certificate(1)] : []
            )
            pems.append(try String(contentsOfFile: crl, encoding: .utf8))
        }
        try pems.joined().write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    private static func openssl(_ arguments: [String]) async throws {
        let result = try await runProcess(ChildProcess.opensslPath, arguments)
        guard result.status == 0 else {
            throw TLSError(code: .certificateCreation, message: "openssl \(arguments.joined(separator: " ")): \(result.output)")
        }
    }
}
