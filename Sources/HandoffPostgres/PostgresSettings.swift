// Handoff — where the PostgreSQL store is and how to reach it: from
// `--store postgres://USER@HOST:PORT/DB` or the config file's `store:`
// section. The password comes from a file or PGPASSWORD, never from a
// command line or a log.

import Foundation
public import HandoffCore
import NIOSSL
import PostgresNIO

/// How to reach the database.
public struct PostgresSettings: Sendable {
    public enum TLSMode: String, Sendable, CaseIterable {
        /// No TLS (a database on loopback or a private network).
        case disable
        /// TLS, without checking the server's certificate (libpq's `require`).
        case require
        /// TLS, with the certificate checked against `caFile` (or the system's roots) and the host name.
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    /// Never printed: `displayName` leaves it out.
    public var password: String?
    public var tls: TLSMode = .disable
    /// The CA certificates (PEM) that sign the server's certificate, for `verify-full`.
    public var caFile: String?
    /// Connections in the pool, at most.
    public var poolSize = 16
    /// Event actions whose commit wakes the watchers of other nodes (a
    /// NOTIFY carrying the tenant, never data); the desk feed's.
    public var notifyActions: Set<String> = []

    public init(host: String, port: Int = 5432, user: String, database: String) {
        self.host = host
        self.port = port
        self.user = user
        self.database = database
    }

    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=disable|require|verify-full&sslrootcert=FILE&pool_size=N]`
    /// (also `postgresql://`). A password in the URL is accepted but
    /// discouraged (a command line is visible to every user of the machine):
    /// use a password file or PGPASSWORD.
    public static func parse(_ text: String) throws(StoreError) -> PostgresSettings {
        let advice =
            "expected postgres://USER@HOST:PORT/DATABASE, for example postgres://handoff@127.0.0.1:5432/handoff (a password belongs in store.password_file or PGPASSWORD; in the URL, characters such as # @ / ? or spaces must be percent-encoded)"
        guard let url = URLComponents(string: text), let scheme = url.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw StoreError.failure("the store URL \(redacted(text)) is not a PostgreSQL URL: \(advice)")
        }
        guard let host = url.host, !host.isEmpty else { throw StoreError.failure("the store URL \(redacted(text)) names no host: \(advice)") }
        guard let user = url.user, !user.isEmpty else { throw StoreError.failure("the store URL \(redacted(text)) names no user: \(advice)") }
        let database = String(url.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else {
            throw StoreError.failure("the store URL \(redacted(text)) names no database: \(advice)")
        }
        if let port = url.port, !(1...65_535).contains(port) {
            throw StoreError.failure("the store URL's port \(port) is not a TCP port (1-65535)")
        }
        var settings = PostgresSettings(host: host, port: url.port ?? 5432, user: user, database: database)
        settings.password = url.password
        for item in url.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else {
                    throw StoreError.failure("sslmode=\(value) is not one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                settings.tls = mode
            case "sslrootcert": settings.caFile = value
            case "pool_size":
                guard let size = Int(value), (2...1_000).contains(size) else {
                    throw StoreError.failure("pool_size=\(value) is not a number of connections from 2 to 1000")
                }
                settings.poolSize = size
            default:
                throw StoreError.failure("the store URL's parameter \(item.name) is unknown (known: sslmode, sslrootcert, pool_size)")
            }
        }
        return settings
    }

    /// The settings of `url` with the config file's overrides, and the
    /// password from `passwordFile`, else PGPASSWORD (unless the URL has one).
    public static func resolve(
        url: String, passwordFile: String?, poolSize: Int?, sslmode: String?, caFile: String?,
        environment: [String: String]? = nil
    ) throws(StoreError) -> PostgresSettings {
        let environment = environment ?? ProcessInfo.processInfo.environment
        var settings = try parse(url)
        if let sslmode {
            guard let mode = TLSMode(rawValue: sslmode) else {
                throw StoreError.failure(
                    "store.sslmode is \"\(sslmode)\"; it must be one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            settings.tls = mode
        }
        if let caFile { settings.caFile = caFile }
        if let poolSize {
            guard (2...1_000).contains(poolSize) else { throw StoreError.failure("store.pool_size is \(poolSize); it must be from 2 to 1000") }
            settings.poolSize = poolSize
        }
        if settings.password == nil {
            if let passwordFile {
                guard let text = try? String(contentsOfFile: passwordFile, encoding: .utf8) else {
                    throw StoreError.failure("cannot read the PostgreSQL password file \(passwordFile) (store.password_file)")
                }
                settings.password = text.trimmingCharacters(in: .newlines)
            } else if let password = environment["PGPASSWORD"], !password.isEmpty {
                settings.password = password
            }
        }
        return settings
    }

    /// The URL without any password, for messages: whatever stands
    /// between `://` and the last `@` past its first `:` is masked, whether
    /// or not the URL parses (a password with `#` or `/` in it fools a parser).
    static func redacted(_ text: String) -> String {
        guard let scheme = text.range(of: "://"), let at = text.range(of: "@", options: .backwards),
            at.lowerBound > scheme.upperBound
        else { return text }
        let userInfo = text[scheme.upperBound..<at.lowerBound]
        guard let colon = userInfo.firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":****" + String(text[at.lowerBound...])
    }

    /// `user@host:port/database`: for logs and errors, never with the password.
    public var displayName: String { "\(user)@\(host):\(port)/\(database)" }

    func tlsConfiguration() throws(StoreError) -> TLSConfiguration? {
        switch tls {
        case .disable:
            return nil
        case .require:
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            return configuration
        case .verifyFull:
            var configuration = TLSConfiguration.makeClientConfiguration()
            if let caFile {
                guard FileManager.default.isReadableFile(atPath: caFile) else {
                    throw StoreError.failure("cannot read the PostgreSQL CA file \(caFile) (sslrootcert)")
                }
                configuration.trustRoots = .file(caFile)
            }
            return configuration
        }
    }

    func clientConfiguration() throws(StoreError) -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS = try tlsConfiguration().map { .require($0) } ?? .disable
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: tls)
        configuration.options.maximumConnections = poolSize
        configuration.options.minimumConnections = min(2, poolSize)
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }

    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        if let configuration = try tlsConfiguration() {
            tls = .require(try NIOSSLContext(configuration: configuration))
        } else {
            tls = .disable
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: tls)
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }
}
