// Handoff — tls.crl end to end: a real handoffd over real TLS refuses the
// client certificates its CRL revokes, and says at start when the CRL must
// be replaced.

import Foundation
import HandoffClient
import HandoffProto
import HandoffRPC
import HandoffServer
import HandoffTLS
import HandoffTestSupport
import Testing

@Suite("handoffd and its CRL")
struct RevocationListTests {
    /// Writes a CRL from the fixtures' CA revoking `revoked` (file names of
    /// client certificates) and a config file whose `tls.crl` names it.
    private func config(_ fixtures: Fixtures, revoking revoked: [String], nextUpdateDays: Int) throws -> (config: String, crl: String) {
        let crl = fixtures.path("crl.pem")
        try DevelopmentPKI.createRevocationList(
            path: crl, issuerCertificatePath: fixtures.path("ca.pem"), issuerKeyPath: fixtures.path("ca.key"),
            revokedCertificatePaths: revoked.map(fixtures.path), nextUpdateDays: nextUpdateDays)
        let config = fixtures.path("handoffd.yaml")
        try "tls:\n  crl: \"\(crl)\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        return (config, crl)
    }

    private func client(_ fixtures: Fixtures, _ server: ServerProcess, role: String) throws -> HandoffClient {
        var configuration = HandoffClient.Configuration(host: "127.0.0.1", port: server.port, tls: fixtures.clientTLS(role: role))
        configuration.defaultTimeout = .seconds(10)
        return try HandoffClient(configuration: configuration)
    }

    /// The startup log line that mentions `text`.
    private func logLine(_ server: ServerProcess, containing text: String) -> Substring? {
        server.startupOutput.split(separator: "\n").first { $0.contains(text) }
    }

    /// tls.crl reaches handoffd's TLS: the revoked certificate is refused, the others served, the CRL reported current.
    @Test("handoffd with tls.crl refuses the client it revokes, serves another, and logs the CRL current until its next update")
    func revokedClientRefused() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (config, crl) = try self.config(fixtures, revoking: ["operator.pem"], nextUpdateDays: 30)
        let (server, agent) = try await startWithFixtures(fixtures, ["--config", config])
        #expect(try await agent.call(Health.ping, PingRequest(payload: [7])).payload == [7])

        let revoked = try self.client(fixtures, server, role: "operator")
        let error = await #expect(throws: RPCError.self) { _ = try await revoked.call(Health.ping, PingRequest()) }
        #expect(error?.code == .unavailable)
        // Under TLS 1.3 the client learns of the refusal on its first read: it sees the
        // alert ("certificate revoked") or, when the close comes first, a closed connection.
        let message = error?.message ?? ""
        #expect(message.contains("certificate revoked") || message.contains("connection is closed"), "\(String(describing: error))")

        let line = self.logLine(server, containing: "CRL 1 of \(crl) is current until")
        #expect(line?.contains(" info ") == true, "\(server.startupOutput)")
        await agent.close()
        await revoked.close()
        #expect(try await offPool { server.terminate() } == 0)
    }

    /// A CRL past its next update is a warning at start (it refuses every client it covers, as the warning says).
    @Test("handoffd warns at start that its CRL passed its next update, and refuses the clients it covers")
    func staleRevocationList() async throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        let (config, crl) = try self.config(fixtures, revoking: [], nextUpdateDays: -1)
        let (server, agent) = try await startWithFixtures(fixtures, ["--config", config])
        let line = self.logLine(server, containing: "CRL 1 of \(crl) passed its next update")
        #expect(line?.contains(" warning ") == true, "\(server.startupOutput)")

        let error = await #expect(throws: RPCError.self) { _ = try await agent.call(Health.ping, PingRequest()) }
        #expect(error?.code == .unavailable)
        await agent.close()
        #expect(try await offPool { server.terminate() } == 0)
    }

    /// Within a week of its next update a CRL is already a problem to report.
    @Test("a CRL due for replacement within a week is reported as a problem")
    func dueSoon() throws {
        let fixtures = try Fixtures()
        defer { fixtures.remove() }
        var settings = ServerSettings()
        settings.crl = try self.config(fixtures, revoking: [], nextUpdateDays: 3).crl
        let report = settings.revocationListReport()
        #expect(report.count == 1)
        #expect(report.first?.problem == true)
        #expect(report.first?.message.contains("must be replaced by its next update") == true, "\(report)")
    }
}
