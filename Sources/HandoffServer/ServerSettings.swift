// Handoff — handoffd's settings: defaults, a YAML file, then flags.

import Foundation
public import HandoffCore
public import HandoffDesks
import HandoffPolicy
import HandoffRPC
import HandoffSQLite
import HandoffTLS
public import NIOCore
import Yams

/// Everything handoffd can be told. Defaults suit `make run`; a YAML file
/// (`--config`) overrides them and command-line flags override the file.
///
/// ```yaml
/// listen: 127.0.0.1:7443
/// data: .handoff
/// policy: policy.yaml        # the shipped policy when absent
/// tls:
///   cert: .handoff/certs/server.pem
///   key: .handoff/certs/server.key
///   client_ca: .handoff/certs/ca.pem
///   require_client_cert: false
///   enabled: true                       # false: plaintext, refused unless handoffd --insecure-dev
/// limits:
///   max_frame_bytes: 4194304
///   max_calls_per_connection: 1024
///   max_calls_total: 16384              # handlers running at once on the whole server
///   max_connections: 10000              # open connections; more are closed as they arrive
///   max_handshakes: 512                 # TLS handshakes in progress; more are closed as they arrive
///   idle_timeout_seconds: 120
///   shutdown_grace_seconds: 10
///   drain_delay_seconds: 0              # after SIGTERM, /readyz says 503 this long before the drain starts
/// tokens:                               # bearer tokens (handoff tokens new), stored as SHA-256
///   - {identity: "handoff://tenant/acme/agent/bot", sha256: "<64 hex>", expires: "2027-01-01T00:00:00Z"}
/// multi_factor:
///   code_length: 6
///   lifetime_seconds: 300
///   attempts: 3
///   key_file: .handoff/mfa.key          # made (0600) on first start
///   channels:                           # default: one file channel, <data>/mfa-codes.jsonl
///     - {type: webhook, url: "http://127.0.0.1:9000/codes", secret_file: /etc/handoff/webhook.secret}
///     - {type: file, path: .handoff/mfa-codes.jsonl}
/// notifications:                        # approval notices to approvers and requesters
///   channels:                           # default: one file channel, <data>/notifications.jsonl
///     - {type: webhook, url: "https://hooks.example.com/approvals", secret_file: /etc/handoff/webhook.secret}
///     # ca_file: /etc/handoff/hooks-ca.pem  (https: the CA the receiver's certificate chains to; default: the system's)
/// desk:
///   sweep_interval_ms: 1000             # approval expiries and SLA breaches are applied this often
/// metrics:
///   listen: 127.0.0.1:9464              # /metrics, /healthz, /readyz over HTTP; default: off
/// log:
///   format: text                        # or json: one object a line
/// store:
///   url: postgres://handoff@db:5432/handoff  # several nodes on one PostgreSQL; default: SQLite in <data>
///   password_file: /etc/handoff/pg.password  # else PGPASSWORD; never in the URL on a shared machine
///   pool_size: 16                       # PostgreSQL connections of this node, at most
///   sslmode: verify-full                # disable, require or verify-full (with sslrootcert)
///   sslrootcert: /etc/handoff/pg-ca.pem
///   cache_mib: 64                       # SQLite page cache of the writer; each reader gets a quarter
///   checkpoint_pages: 10000             # the writer copies the WAL back into the database after this many pages
///   automated_assessments: queued       # or committed: when AssessAction answers an automated action (see docs/CONFIGURATION.md)
/// sessions:
///   resident_ceiling: 10000
///   state_size_limit_bytes: 262144
///   default_turn_limit: 50
///   max_turn_limit: 500
///   text_size_limit_bytes: 262144
///   context_cache_bytes: 32768
///   memory_bytes_limit: 1048576         # one session's memories (GetContext returns them all)
/// ```
public struct ServerSettings: Sendable, Equatable {
    public var listen = "127.0.0.1:7443"
    public var data = ".handoff"
    /// Defaults to `<data>/certs/server.pem`.
    public var tlsCertificate: String?
    /// Defaults to `<data>/certs/server.key`.
    public var tlsKey: String?
    /// CA for client certificates; defaults to `<data>/certs/ca.pem`.
    public var clientCA: String?
    public var requireClientCertificate = false
    /// false: plaintext TCP. handoffd refuses it unless started with --insecure-dev.
    public var tlsEnabled = true
    public var crl: String?
    /// The risk policy file; nil: the shipped policy.
    public var policy: String?
    public var maximumFrameBytes = 4 << 20
    public var maximumCallsPerConnection = 1024
    /// Handlers running at once across every connection.
    public var maximumCallsTotal = 16_384
    /// Open connections at most; one past it is closed as it is accepted.
    public var maximumConnections = 10_000
    /// TLS handshakes in progress at most (slow or idle handshakes are a cheap flood).
    public var maximumHandshakes = 512
    public var idleTimeoutSeconds = 120
    public var shutdownGraceSeconds = 10
    /// `limits.drain_delay_seconds`: after SIGTERM, how long /readyz answers
    /// 503 while calls are still served, before the drain starts, so a load
    /// balancer stops routing here first.
    public var drainDelaySeconds = 0
    public var threads = System.coreCount
    /// Session limits (resident actors, state size, turn limits, context cache).
    public var sessions = SessionService.Configuration()
    /// Multi-factor codes: how they are made and where they go.
    public var multiFactor = MultiFactor()
    /// Bearer tokens, as their SHA-256.
    public var tokens: [TokenGrant] = []
    /// Where approval notices go; nil: one file channel at `<data>/notifications.jsonl`.
    public var notificationChannels: [MultiFactor.Channel]?
    /// How often expired approval steps and SLA breaches are swept.
    public var sweepIntervalMs = 1000
    /// SQLite's page cache of the writer connection, in MiB; each reader
    /// connection gets a quarter. Memory against write latency: see docs/CONFIGURATION.md.
    public var storeCacheMiB = SQLiteStore.defaultCacheMiB
    /// `postgres://USER@HOST:PORT/DB`: the PostgreSQL store; nil: SQLite in `data`.
    public var storeURL: String?
    /// A file holding the PostgreSQL password (else PGPASSWORD, else none).
    public var storePasswordFile: String?
    public var storePoolSize: Int?
    public var storeSSLMode: String?
    public var storeCAFile: String?
    /// WAL pages after which the writer checkpoints (SQLite's
    /// wal_autocheckpoint). Write throughput against WAL size: see docs/CONFIGURATION.md.
    public var storeCheckpointPages = SQLiteStore.defaultCheckpointPages
    /// When AssessAction answers an automated action without an idempotency
    /// key: once its event is queued for the next group commit, or committed.
    public var automatedAssessments = AutomatedAssessments.queued
    /// `metrics.listen`: where /metrics, /healthz and /readyz are served over
    /// plain HTTP; nil (the default) serves none of them.
    public var metricsListen: String?
    /// `log.format`: `text` (default) or `json`, one object a line.
    public var logFormat = "text"

    public struct MultiFactor: Sendable, Equatable {
        public var codeLength = 6
        public var lifetimeSeconds = 300
        public var attempts = 3
        /// The server key codes are HMACed with; default `<data>/mfa.key`.
        public var keyFile: String?
        /// nil: one file channel at `<data>/mfa-codes.jsonl` (development).
        public var channels: [Channel]?

        public enum Channel: Sendable, Equatable {
            case file(path: String)
            /// `caFile`: the CA bundle an https:// receiver's certificate must chain to (nil: the system's).
            case webhook(url: String, secretFile: String, caFile: String? = nil)
        }
    }

    public init() {}

    /// A settings problem, naming the file, line or value at fault.
    public struct Error: Swift.Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Applies a YAML settings file on top of these settings.
    public mutating func apply(yamlFile path: String) throws(Error) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw Error(message: "cannot read config file \(path): \(error.localizedDescription)")
        }
        try apply(yaml: text, source: path)
    }

    /// Applies YAML settings text; `source` names it in errors.
    public mutating func apply(yaml text: String, source: String) throws(Error) {
        let file: File
        do {
            file = try YAMLDecoder().decode(File.self, from: text)
        } catch let error as DecodingError {
            throw Error(message: "\(source): \(Self.describe(error))")
        } catch {
            throw Error(message: "\(source): \(error)")
        }
        if let v = file.listen { listen = v }
        if let v = file.data { data = v }
        if let v = file.policy { policy = v }
        if let tls = file.tls {
            if let v = tls.cert { tlsCertificate = v }
            if let v = tls.key { tlsKey = v }
            if let v = tls.clientCA { clientCA = v }
            if let v = tls.requireClientCert { requireClientCertificate = v }
            if let v = tls.crl { crl = v }
            if let v = tls.enabled { tlsEnabled = v }
        }
        if let limits = file.limits {
            if let v = limits.maxFrameBytes { maximumFrameBytes = v }
            if let v = limits.maxCallsPerConnection { maximumCallsPerConnection = v }
            if let v = limits.maxCallsTotal { maximumCallsTotal = v }
            if let v = limits.maxConnections { maximumConnections = v }
            if let v = limits.maxHandshakes { maximumHandshakes = v }
            if let v = limits.idleTimeoutSeconds { idleTimeoutSeconds = v }
            if let v = limits.shutdownGraceSeconds { shutdownGraceSeconds = v }
            if let v = limits.drainDelaySeconds { drainDelaySeconds = v }
            if let v = limits.threads { threads = v }
        }
        if let entries = file.tokens {
            tokens = try entries.enumerated().map { (index, entry) throws(Error) in
                let at = "\(source): tokens[\(index)]"
                guard let principal = Principal(uri: entry.identity) else {
                    throw Error(message: "\(at): identity \(entry.identity) is not handoff://tenant/<tenant>/<role>/<name>")
                }
                guard entry.sha256.count == 64, entry.sha256.allSatisfy(\.isHexDigit) else {
                    throw Error(message: "\(at): sha256 must be 64 hex digits (the hash `handoff tokens new` prints, not the token)")
                }
                var expiry: Int64?
                if let text = entry.expires {
                    guard let date = ISO8601DateFormatter().date(from: text) else {
                        throw Error(message: "\(at): expires \(text) is not an ISO 8601 time such as 2027-01-01T00:00:00Z")
                    }
                    expiry = Int64(date.timeIntervalSince1970 * 1000)
                }
                return TokenGrant(principal: principal, sha256: entry.sha256, expiresAtMs: expiry)
            }
        }
        if let v = file.multiFactor {
            if let x = v.codeLength { multiFactor.codeLength = x }
            if let x = v.lifetimeSeconds { multiFactor.lifetimeSeconds = x }
            if let x = v.attempts { multiFactor.attempts = x }
            if let x = v.keyFile { multiFactor.keyFile = x }
            if let channels = v.channels { multiFactor.channels = try Self.channels(channels, at: "\(source): multi_factor.channels") }
        }
        if let channels = file.notifications?.channels {
            notificationChannels = try Self.channels(channels, at: "\(source): notifications.channels")
        }
        if let v = file.desk?.sweepIntervalMs { sweepIntervalMs = v }
        if let v = file.store?.cacheMiB { storeCacheMiB = v }
        if let v = file.store?.url { storeURL = v }
        if let v = file.store?.passwordFile { storePasswordFile = v }
        if let v = file.store?.poolSize { storePoolSize = v }
        if let v = file.store?.sslmode { storeSSLMode = v }
        if let v = file.store?.sslrootcert { storeCAFile = v }
        if let v = file.store?.checkpointPages { storeCheckpointPages = v }
        if let v = file.store?.automatedAssessments {
            guard let mode = AutomatedAssessments(rawValue: v) else {
                throw Error(message: "\(source): store.automated_assessments is \"\(v)\"; it must be queued or committed")
            }
            automatedAssessments = mode
        }
        if let v = file.metrics?.listen { metricsListen = v }
        if let v = file.log?.format { logFormat = v }
        if let v = file.sessions {
            if let x = v.residentCeiling { sessions.residentCeiling = x }
            if let x = v.stateSizeLimitBytes { sessions.stateSizeLimit = x }
            if let x = v.defaultTurnLimit { sessions.defaultTurnLimit = x }
            if let x = v.maxTurnLimit { sessions.maximumTurnLimit = x }
            if let x = v.textSizeLimitBytes { sessions.textSizeLimit = x }
            if let x = v.contextCacheBytes { sessions.contextCacheBytes = x }
            if let x = v.memoryBytesLimit { sessions.memoryBytesLimit = x }
        }
        try validate()
    }

    /// Checks ranges; a bad value is refused with its name and the accepted range.
    public func validate() throws(Error) {
        _ = try hostAndPort()
        if let metricsListen, HostAndPort(metricsListen) == nil {
            throw Error(message: "metrics.listen \(metricsListen) is not HOST:PORT with a port from 0 to 65535 (for example 127.0.0.1:9464)")
        }
        guard ["text", "json"].contains(logFormat) else {
            throw Error(message: "log.format is \"\(logFormat)\"; it must be text or json")
        }
        func check(_ name: String, _ value: Int, _ range: ClosedRange<Int>) throws(Error) {
            guard range.contains(value) else {
                throw Error(message: "\(name) is \(value); it must be within \(range.lowerBound)...\(range.upperBound)")
            }
        }
        try check("limits.max_frame_bytes", maximumFrameBytes, 1024...(256 << 20))
        try check("limits.max_calls_per_connection", maximumCallsPerConnection, 1...100_000)
        try check("limits.max_calls_total", maximumCallsTotal, 1...1_000_000)
        try check("limits.max_connections", maximumConnections, 1...1_000_000)
        try check("limits.max_handshakes", maximumHandshakes, 1...100_000)
        try check("limits.idle_timeout_seconds", idleTimeoutSeconds, 1...86_400)
        try check("limits.shutdown_grace_seconds", shutdownGraceSeconds, 0...3_600)
        try check("limits.drain_delay_seconds", drainDelaySeconds, 0...300)
        try check("limits.threads", threads, 1...256)
        try check("desk.sweep_interval_ms", sweepIntervalMs, 10...60_000)
        try check("store.cache_mib", storeCacheMiB, 1...16_384)
        try check("store.checkpoint_pages", storeCheckpointPages, 100...1_000_000)
        try check("sessions.resident_ceiling", sessions.residentCeiling, 1...10_000_000)
        // A state travels whole in a request (a replacement) and in responses
        // (UpdateState, GetSession, GetContext): half a frame leaves room for the rest.
        try check("sessions.state_size_limit_bytes", sessions.stateSizeLimit, 2...max(2, min(64 << 20, maximumFrameBytes / 2)))
        try check("sessions.max_turn_limit", sessions.maximumTurnLimit, 1...100_000)
        try check("sessions.default_turn_limit", sessions.defaultTurnLimit, 1...sessions.maximumTurnLimit)
        try check("sessions.text_size_limit_bytes", sessions.textSizeLimit, 1...(64 << 20))
        try check("sessions.context_cache_bytes", sessions.contextCacheBytes, 0...(64 << 20))
        // GetContext returns every memory: more than about 3 MiB could never be answered.
        try check("sessions.memory_bytes_limit", sessions.memoryBytesLimit, 0...(3 << 20))
        try check("multi_factor.code_length", multiFactor.codeLength, 6...8)
        try check("multi_factor.lifetime_seconds", multiFactor.lifetimeSeconds, 30...3_600)
        try check("multi_factor.attempts", multiFactor.attempts, 1...10)
    }

    /// `listen` split into host and port; accepts `host:port` and `[v6]:port`.
    public func hostAndPort() throws(Error) -> (host: String, port: Int) {
        guard let address = HostAndPort(listen) else {
            throw Error(message: "listen address \(listen) is not HOST:PORT with a port from 0 to 65535")
        }
        return (address.host, address.port)
    }

    /// With TLS on, that the certificate, key and client CA files can be
    /// read; a missing one is the usual first-run wall, so the error says
    /// which, and how to make or name one (handoffd calls this at start).
    /// The development certificates' folder, and the certificate chain, key
    /// and client CA in use (each `<data>/certs/…` unless set).
    private var tlsPaths: (certs: String, chain: String, key: String, clientCA: String) {
        let certs = (data as NSString).appendingPathComponent("certs")
        return (
            certs, tlsCertificate ?? (certs as NSString).appendingPathComponent("server.pem"),
            tlsKey ?? (certs as NSString).appendingPathComponent("server.key"),
            clientCA ?? (certs as NSString).appendingPathComponent("ca.pem")
        )
    }

    public func checkTLSFiles() throws(Error) {
        let (certs, chain, key, clientCA) = tlsPaths
        if tlsEnabled {
            for (what, path, option) in [
                ("server certificate", chain, "--tls-cert"), ("server key", key, "--tls-key"), ("client CA", clientCA, "--client-ca"),
            ] where !FileManager.default.isReadableFile(atPath: path) {
                let why = FileManager.default.fileExists(atPath: path) ? "it is not readable by this user" : "there is no such file"
                throw Error(
                    message:
                        "cannot read the \(what) \(path): \(why). Make development certificates with `handoff certs init \(certs)`, or name your own with \(option) (tls.cert, tls.key, tls.client_ca in the config file)"
                )
            }
        }
    }

    /// The RPC server's configuration these settings describe.
    public func serverConfiguration() throws(Error) -> RPCServer.Configuration {
        let (host, port) = try hostAndPort()
        let (_, chain, key, clientCA) = tlsPaths
        let tls = TLSConfiguration.server(
            certificateChainPath: chain,
            privateKeyPath: key,
            clientCertificateTrustRootsPath: clientCA,
            clientCertificates: requireClientCertificate ? .required : .optional,
            crlPath: crl)
        var configuration = RPCServer.Configuration(host: host, port: port, tls: tlsEnabled ? tls : nil)
        configuration.connection.maximumFrameSize = maximumFrameBytes
        configuration.connection.maximumConcurrentCalls = maximumCallsPerConnection
        configuration.connection.handlers = HandlerBudget(limit: maximumCallsTotal)
        configuration.connection.idleTimeout = .seconds(Int64(idleTimeoutSeconds))
        configuration.shutdownGracePeriod = .seconds(shutdownGraceSeconds)
        configuration.maximumConnections = maximumConnections
        configuration.maximumHandshakes = maximumHandshakes
        configuration.threads = threads
        return configuration
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let at = path(context)
            return (at.isEmpty ? "" : "\(at): ") + context.debugDescription
        case .keyNotFound(let key, let context):
            return "\(path(context)): missing \(key.stringValue)"
        @unknown default:
            return "\(error)"
        }
    }

    /// The file's shape; every key optional, unknown keys refused.
    private struct File: Decodable {
        var listen: String?
        var data: String?
        var policy: String?
        var tls: TLS?
        var limits: Limits?
        var sessions: Sessions?
        var multiFactor: MultiFactorFile?
        var tokens: [TokenFile]?
        var notifications: NotificationsFile?
        var desk: DeskFile?
        var store: StoreFile?
        var metrics: MetricsFile?
        var log: LogFile?

        struct MetricsFile: Decodable {
            var listen: String?
            enum CodingKeys: String, CodingKey, CaseIterable { case listen }
            init(from decoder: any Decoder) throws {
                try refuseUnknownKeys(decoder, CodingKeys.self)
                listen = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(String.self, forKey: .listen)
            }
        }

        struct LogFile: Decodable {
            var format: String?
            enum CodingKeys: String, CodingKey, CaseIterable { case format }
            init(from decoder: any Decoder) throws {
                try refuseUnknownKeys(decoder, CodingKeys.self)
                format = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(String.self, forKey: .format)
            }
        }

        struct StoreFile: Decodable {
            var cacheMiB: Int?
            var checkpointPages: Int?
            var automatedAssessments: String?
            var url: String?
            var passwordFile: String?
            var poolSize: Int?
            var sslmode: String?
            var sslrootcert: String?
            enum CodingKeys: String, CodingKey, CaseIterable {
                case cacheMiB = "cache_mib"
                case checkpointPages = "checkpoint_pages"
                case automatedAssessments = "automated_assessments"
                case url
                case passwordFile = "password_file"
                case poolSize = "pool_size"
                case sslmode, sslrootcert
            }
            init(from decoder: any Decoder) throws {
                try refuseUnknownKeys(decoder, CodingKeys.self)
                let container = try decoder.container(keyedBy: CodingKeys.self)
                cacheMiB = try container.decodeIfPresent(Int.self, forKey: .cacheMiB)
                checkpointPages = try container.decodeIfPresent(Int.self, forKey: .checkpointPages)
                automatedAssessments = try container.decodeIfPresent(String.self, forKey: .automatedAssessments)
                url = try container.decodeIfPresent(String.self, forKey: .url)
                passwordFile = try container.decodeIfPresent(String.self, forKey: .passwordFile)
                poolSize = try container.decodeIfPresent(Int.self, forKey: .poolSize)
                sslmode = try container.decodeIfPresent(String.self, forKey: .sslmode)
                sslrootcert = try container.decodeIfPresent(String.self, forKey: .sslrootcert)
            }
        }

        struct NotificationsFile: Decodable {
            var channels: [ChannelFile]?
            enum CodingKeys: String, CodingKey, CaseIterable { case channels }
            init(from decoder: any Decoder) throws {
                try refuseUnknownKeys(decoder, CodingKeys.self)
                channels = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent([ChannelFile].self, forKey: .channels)
            }
        }

        struct DeskFile: Decodable {
            var sweepIntervalMs: Int?
            enum CodingKeys: String, CodingKey, CaseIterable { case sweepIntervalMs = "sweep_interval_ms" }
            init(from decoder: any Decoder) throws {
                try refuseUnknownKeys(decoder, CodingKeys.self)
                sweepIntervalMs = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(Int.self, forKey: .sweepIntervalMs)
            }
        }

        struct TokenFile: Decodable {
            var identity: String
            var sha256: String
            var expires: String?
            enum CodingKeys: String, CodingKey, CaseIterable {
                case identity, sha256, expires
            }
            init(from decoder: any Decoder) throws {
                try refuseUnknownKeys(decoder, CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                identity = try c.decode(String.self, forKey: .identity)
                sha256 = try c.decode(String.self, forKey: .sha256)
                expires = try c.decodeIfPresent(String.self, forKey: .expires)
            }
        }

        struct MultiFactorFile: Decodable {
            var codeLength: Int?
            var lifetimeSeconds: Int?
            var attempts: Int?
            var keyFile: String?
            var channels: [ChannelFile]?
            enum CodingKeys: String, CodingKey, CaseIterable {
                case codeLength = "code_length"
                case lifetimeSeconds = "lifetime_seconds"
                case attempts
                case keyFile = "key_file"
                case channels
            }
            init(from decoder: any Decoder) throws {
                try refuseUnknownKeys(decoder, CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                codeLength = try c.decodeIfPresent(Int.self, forKey: .codeLength)
                lifetimeSeconds = try c.decodeIfPresent(Int.self, forKey: .lifetimeSeconds)
                attempts = try c.decodeIfPresent(Int.self, forKey: .attempts)
                keyFile = try c.decodeIfPresent(String.self, forKey: .keyFile)
                channels = try c.decodeIfPresent([ChannelFile].self, forKey: .channels)
            }
        }

        struct ChannelFile: Decodable {
            var type: String
            var path: String?
            var url: String?
            var secretFile: String?
            var caFile: String?
            enum CodingKeys: String, CodingKey, CaseIterable {
                case type, path, url
                case secretFile = "secret_file"
                case caFile = "ca_file"
            }
            init(from decoder: any Decoder) throws {
                try refuseUnknownKeys(decoder, CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                type = try c.decode(String.self, forKey: .type)
                path = try c.decodeIfPresent(String.self, forKey: .path)
                url = try c.decodeIfPresent(String.self, forKey: .url)
                secretFile = try c.decodeIfPresent(String.self, forKey: .secretFile)
                caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
            }
        }

        struct Sessions: Decodable {
            var residentCeiling: Int?
            var stateSizeLimitBytes: Int?
            var defaultTurnLimit: Int?
            var maxTurnLimit: Int?
            var textSizeLimitBytes: Int?
            var contextCacheBytes: Int?
            var memoryBytesLimit: Int?
            enum CodingKeys: String, CodingKey, CaseIterable {
                case residentCeiling = "resident_ceiling"
                case stateSizeLimitBytes = "state_size_limit_bytes"
                case defaultTurnLimit = "default_turn_limit"
                case maxTurnLimit = "max_turn_limit"
                case textSizeLimitBytes = "text_size_limit_bytes"
                case contextCacheBytes = "context_cache_bytes"
                case memoryBytesLimit = "memory_bytes_limit"
            }
            init(from decoder: any Decoder) throws {
                try refuseUnknownKeys(decoder, CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                residentCeiling = try c.decodeIfPresent(Int.self, forKey: .residentCeiling)
                stateSizeLimitBytes = try c.decodeIfPresent(Int.self, forKey: .stateSizeLimitBytes)
                defaultTurnLimit = try c.decodeIfPresent(Int.self, forKey: .defaultTurnLimit)
                maxTurnLimit = try c.decodeIfPresent(Int.self, forKey: .maxTurnLimit)
                textSizeLimitBytes = try c.decodeIfPresent(Int.self, forKey: .textSizeLimitBytes)
                contextCacheBytes = try c.decodeIfPresent(Int.self, forKey: .contextCacheBytes)
                memoryBytesLimit = try c.decodeIfPresent(Int.self, forKey: .memoryBytesLimit)
            }
        }

        struct TLS: Decodable {
            var cert: String?
            var key: String?
            var clientCA: String?
            var requireClientCert: Bool?
            var crl: String?
            var enabled: Bool?
            enum CodingKeys: String, CodingKey, CaseIterable {
                case cert, key, crl, enabled
                case clientCA = "client_ca"
                case requireClientCert = "require_client_cert"
            }
            init(from decoder: any Decoder) throws {
                try refuseUnknownKeys(decoder, CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                cert = try c.decodeIfPresent(String.self, forKey: .cert)
                key = try c.decodeIfPresent(String.self, forKey: .key)
                clientCA = try c.decodeIfPresent(String.self, forKey: .clientCA)
                requireClientCert = try c.decodeIfPresent(Bool.self, forKey: .requireClientCert)
                crl = try c.decodeIfPresent(String.self, forKey: .crl)
                enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled)
            }
        }

        struct Limits: Decodable {
            var maxFrameBytes: Int?
            var maxCallsPerConnection: Int?
            var maxCallsTotal: Int?
            var maxConnections: Int?
            var maxHandshakes: Int?
            var idleTimeoutSeconds: Int?
            var shutdownGraceSeconds: Int?
            var drainDelaySeconds: Int?
            var threads: Int?
            enum CodingKeys: String, CodingKey, CaseIterable {
                case maxFrameBytes = "max_frame_bytes"
                case maxCallsPerConnection = "max_calls_per_connection"
                case maxCallsTotal = "max_calls_total"
                case maxConnections = "max_connections"
                case maxHandshakes = "max_handshakes"
                case idleTimeoutSeconds = "idle_timeout_seconds"
                case shutdownGraceSeconds = "shutdown_grace_seconds"
                case drainDelaySeconds = "drain_delay_seconds"
                case threads
            }
            init(from decoder: any Decoder) throws {
                try refuseUnknownKeys(decoder, CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                maxFrameBytes = try c.decodeIfPresent(Int.self, forKey: .maxFrameBytes)
                maxCallsPerConnection = try c.decodeIfPresent(Int.self, forKey: .maxCallsPerConnection)
                maxCallsTotal = try c.decodeIfPresent(Int.self, forKey: .maxCallsTotal)
                maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections)
                maxHandshakes = try c.decodeIfPresent(Int.self, forKey: .maxHandshakes)
                idleTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .idleTimeoutSeconds)
                shutdownGraceSeconds = try c.decodeIfPresent(Int.self, forKey: .shutdownGraceSeconds)
                drainDelaySeconds = try c.decodeIfPresent(Int.self, forKey: .drainDelaySeconds)
                threads = try c.decodeIfPresent(Int.self, forKey: .threads)
            }
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case listen, data, policy, tls, limits, sessions, tokens, notifications, desk, store, metrics, log
            case multiFactor = "multi_factor"
        }

        init(from decoder: any Decoder) throws {
            try refuseUnknownKeys(decoder, CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            listen = try c.decodeIfPresent(String.self, forKey: .listen)
            data = try c.decodeIfPresent(String.self, forKey: .data)
            policy = try c.decodeIfPresent(String.self, forKey: .policy)
            tls = try c.decodeIfPresent(TLS.self, forKey: .tls)
            limits = try c.decodeIfPresent(Limits.self, forKey: .limits)
            sessions = try c.decodeIfPresent(Sessions.self, forKey: .sessions)
            multiFactor = try c.decodeIfPresent(MultiFactorFile.self, forKey: .multiFactor)
            tokens = try c.decodeIfPresent([TokenFile].self, forKey: .tokens)
            notifications = try c.decodeIfPresent(NotificationsFile.self, forKey: .notifications)
            desk = try c.decodeIfPresent(DeskFile.self, forKey: .desk)
            store = try c.decodeIfPresent(StoreFile.self, forKey: .store)
            metrics = try c.decodeIfPresent(MetricsFile.self, forKey: .metrics)
            log = try c.decodeIfPresent(LogFile.self, forKey: .log)
        }
    }
}

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// A misspelt key would otherwise be ignored silently; refuse it by name.
private func refuseUnknownKeys<K: CodingKey & CaseIterable>(_ decoder: any Decoder, _: K.Type) throws {
    let container = try decoder.container(keyedBy: AnyKey.self)
    let known = Set(K.allCases.map(\.stringValue))
    for key in container.allKeys where !known.contains(key.stringValue) {
        throw DecodingError.dataCorrupted(
            .init(
                codingPath: decoder.codingPath + [key],
                debugDescription: "unknown setting \"\(key.stringValue)\" (known: \(known.sorted().joined(separator: ", ")))"))
    }
}

extension ServerSettings {
    /// The multi-factor settings made real: the server key (read, or made with
    /// mode 0600 on first start) and the channels (webhook secrets read from
    /// their files). A problem names the file at fault; no secret is printed.
    public func multiFactorSettings(group: any EventLoopGroup) throws(Error) -> MultiFactorSettings {
        let keyPath = multiFactor.keyFile ?? (data as NSString).appendingPathComponent("mfa.key")
        let key = try Self.secret(at: keyPath, createIfMissing: true)
        let channels = try Self.made(
            multiFactor.channels ?? [.file(path: (data as NSString).appendingPathComponent("mfa-codes.jsonl"))], "multi_factor.channels",
            group: group)
        var settings = MultiFactorSettings(key: key, channels: channels)
        settings.codeLength = multiFactor.codeLength
        settings.lifetimeSeconds = multiFactor.lifetimeSeconds
        settings.attempts = multiFactor.attempts
        return settings
    }

    /// Approval notice channels made real (webhook secrets read from their files).
    public func noticeChannels(group: any EventLoopGroup) throws(Error) -> [any NoticeChannel] {
        try Self.made(
            notificationChannels ?? [.file(path: (data as NSString).appendingPathComponent("notifications.jsonl"))], "notifications.channels",
            group: group)
    }

    /// File and webhook channels (each carries codes and notices) for `list`.
    private static func made(
        _ list: [MultiFactor.Channel], _ setting: String, group: any EventLoopGroup
    ) throws(Error) -> [any CodeChannel & NoticeChannel] {
        var channels: [any CodeChannel & NoticeChannel] = []
        for channel in list {
            switch channel {
            case .file(let path):
                channels.append(FileCodeChannel(path: path))
            case .webhook(let url, let secretFile, let caFile):
                do {
                    channels.append(
                        try WebhookCodeChannel(
                            url: url, secret: try secret(at: secretFile, createIfMissing: false), caFile: caFile, group: group))
                } catch let error as Error {
                    throw error
                } catch {
                    throw Error(message: "\(setting): \(error)")
                }
            }
        }
        return channels
    }

    private static func channels(_ list: [File.ChannelFile], at path: String) throws(Error) -> [MultiFactor.Channel] {
        try list.enumerated().map { (index, channel) throws(Error) in
            switch channel.type {
            case "file":
                guard let file = channel.path else { throw Error(message: "\(path)[\(index)]: a file channel needs path") }
                return .file(path: file)
            case "webhook":
                guard let url = channel.url, let secret = channel.secretFile else {
                    throw Error(message: "\(path)[\(index)]: a webhook channel needs url and secret_file")
                }
                return .webhook(url: url, secretFile: secret, caFile: channel.caFile)
            default:
                throw Error(message: "\(path)[\(index)]: unknown type \"\(channel.type)\" (known: file, webhook)")
            }
        }
    }

    /// The bytes of a secret file (a text secret's trailing newline dropped); `createIfMissing`
    /// writes 32 random bytes with mode 0600 first.
    static func secret(at path: String, createIfMissing: Bool) throws(Error) -> [UInt8] {
        if !FileManager.default.fileExists(atPath: path) {
            guard createIfMissing else { throw Error(message: "secret file \(path) does not exist") }
            var generator = SystemRandomNumberGenerator()
            let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Error(message: "cannot create secret file \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
                throw Error(message: "cannot write secret file \(path)")
            }
            return bytes
        }
        guard let contents = FileManager.default.contents(atPath: path) else { throw Error(message: "cannot read secret file \(path)") }
        var bytes = [UInt8](contents)
        // A secret someone typed (text) may end in a newline, which is not
        // part of it; the random bytes made above are kept exactly, whatever
        // their last byte.
        var text = bytes
        while text.last == UInt8(ascii: "\n") || text.last == UInt8(ascii: "\r") { text.removeLast() }
        if text.allSatisfy({ (0x20...0x7e).contains($0) }) { bytes = text }
        guard bytes.count >= 16 else { throw Error(message: "secret file \(path) holds fewer than 16 bytes") }
        return bytes
    }
}

extension ServerSettings {
    /// Refuses private keys and secrets that others may read: a key with mode
    /// 0644 has leaked already on a shared machine.
    public func checkSecretPermissions() throws(Error) {
        let certs = (data as NSString).appendingPathComponent("certs")
        var files = tlsEnabled ? [tlsKey ?? (certs as NSString).appendingPathComponent("server.key")] : []
        files.append(multiFactor.keyFile ?? (data as NSString).appendingPathComponent("mfa.key"))
        for case .webhook(_, let secretFile, _) in (multiFactor.channels ?? []) + (notificationChannels ?? []) { files.append(secretFile) }
        // The store holds every state, turn and answer, and the hashes of codes and tokens.
        files += ["", "-wal", "-shm"].map { storePath + $0 }
        for file in files where FileManager.default.fileExists(atPath: file) {
            let mode = ((try? FileManager.default.attributesOfItem(atPath: file))?[.posixPermissions] as? Int) ?? 0
            if mode & 0o077 != 0 {
                throw Error(message: "\(file) is readable by others (mode \(String(mode, radix: 8))); run chmod 600 \(file)")
            }
        }
    }

    /// The embedded store's file.
    public var storePath: String { (data as NSString).appendingPathComponent("handoff.sqlite") }

    /// Makes the data directory (mode 0700) if it is missing.
    public func makeDataDirectory() throws(Error) {
        do {
            try FileManager.default.createDirectory(
                atPath: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw Error(message: "cannot make the data directory \(data): \(error.localizedDescription)")
        }
    }
}

extension ServerSettings {
    /// What to say of `tls.crl` at start, as (is it a problem, the message):
    /// each CRL's next update, a warning within a week of it, and an error
    /// once it has passed, since from then every client certificate is refused.
    public func revocationListReport(warnWithinSeconds: Int = 7 * 86_400) -> [(problem: Bool, message: String)] {
        guard let crl else { return [] }
        let updates: [Int?]
        do {
            updates = try DevelopmentPKI.revocationListNextUpdates(path: crl)
        } catch {
            return [(true, "cannot read the CRLs of tls.crl \(crl): \(error)")]
        }
        return updates.enumerated().map { index, seconds in
            let name = "CRL \(index + 1) of \(crl)"
            guard let seconds else { return (false, "\(name) names no next update") }
            let when = Date(timeIntervalSinceNow: TimeInterval(seconds)).formatted(.iso8601)
            if seconds <= 0 {
                return (
                    true,
                    "\(name) passed its next update at \(when): every client certificate it covers is refused until a fresh CRL is installed (then restart)"
                )
            }
            if seconds <= warnWithinSeconds {
                return (true, "\(name) must be replaced by its next update at \(when); after that every client certificate it covers is refused")
            }
            return (false, "\(name) is current until \(when)")
        }
    }
}

/// The data directory held by one handoffd: an exclusive `flock` on
/// `<data>/handoffd.lock`, kept for the process's life and let go by the
/// kernel when it ends however it ends (a kill -9 leaves no stale lock). The
/// file names the holder's process id, for the refusal a second one gets.
public final class DataDirectoryLock: Sendable {
    private let descriptor: Int32

    /// Takes the lock, or throws naming the directory and the process that holds it.
    public init(data: String) throws(ServerSettings.Error) {
        let path = (data as NSString).appendingPathComponent("handoffd.lock")
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            throw ServerSettings.Error(message: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw ServerSettings.Error(
                message: """
                    the data directory \(data) is in use by another handoffd\(holder.isEmpty ? "" : " (process \(holder))"): \
                    stop it first, or give this one another --data
                    """)
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        descriptor = fd
    }

    deinit { close(descriptor) }
}
