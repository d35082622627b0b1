// Handoff — handoffd, the server.
//
// Settings come from defaults, then --config FILE, then flags. The RPC server
// runs in a ServiceGroup that shuts down gracefully on SIGTERM and SIGINT.

public import ArgumentParser
import Foundation
import HandoffCore
import HandoffDesks
import HandoffOperations
import HandoffPolicy
import HandoffPostgres
import HandoffRPC
import HandoffSQLite
import HandoffServer
import HandoffVersion
public import Logging
import Metrics
import NIOPosix
import ServiceLifecycle
import Synchronization

@main
struct Handoffd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handoffd",
        abstract: "The Handoff human-in-the-loop server.",
        discussion: "Logs `listening on HOST:PORT` once it accepts connections; SIGTERM or SIGINT stop it gracefully.",
        version: HandoffVersion.description
    )

    @Option(help: "YAML settings file (keys in docs/CONFIGURATION.md); flags override it.")
    var config: String?

    @Option(help: "Address to listen on, HOST:PORT; port 0 picks a free port. [default: 127.0.0.1:7443]")
    var listen: String?

    @Option(help: "Directory for the embedded store and certificates. [default: .handoff]")
    var data: String?

    @Option(help: "Server certificate chain, PEM. [default: <data>/certs/server.pem]")
    var tlsCert: String?

    @Option(help: "Server private key, PEM. [default: <data>/certs/server.key]")
    var tlsKey: String?

    @Option(help: "CA bundle for client certificates, PEM. [default: <data>/certs/ca.pem]")
    var clientCA: String?

    @Flag(help: "Refuse clients without a certificate signed by --client-ca.")
    var requireClientCert = false

    @Flag(help: "Development only: allow `tls: {enabled: false}` (plaintext; tokens and state cross the network in clear).")
    var insecureDev = false

    @Option(help: "Risk policy file (YAML; `handoff policy default` prints the shipped one). SIGHUP reloads it. [default: the shipped policy]")
    var policy: String?

    @Option(
        help:
            "Log level: trace, debug, info, notice, warning, error or critical. At debug, every call is logged with its caller, status and duration.")
    var logLevel: Logger.Level = .info

    @Option(help: "Log format: text, or json (one object a line). [default: text]")
    var logFormat: String?

    @Option(
        name: .customLong("store"),
        help:
            "The store: postgres://USER@HOST:PORT/DATABASE runs this node on a PostgreSQL database shared with other nodes (password from store.password_file or PGPASSWORD; options in docs/CONFIGURATION.md). [default: SQLite in <data>]"
    )
    var storeURL: String?

    @Option(help: "Serve /metrics (Prometheus), /healthz and /readyz over HTTP on HOST:PORT, for example 127.0.0.1:9464. [default: off]")
    var metricsListen: String?

    func run() async throws {
        // What handoffd makes (the store, its WAL, keys, development files) is
        // for its own user alone.
        umask(0o077)

        var settings = ServerSettings()
        do {
            if let config { try settings.apply(yamlFile: config) }
            if let listen { settings.listen = listen }
            if let data { settings.data = data }
            if let tlsCert { settings.tlsCertificate = tlsCert }
            if let tlsKey { settings.tlsKey = tlsKey }
            if let clientCA { settings.clientCA = clientCA }
            if let policy { settings.policy = policy }
            if requireClientCert { settings.requireClientCertificate = true }
            if let metricsListen { settings.metricsListen = metricsListen }
            if let logFormat { settings.logFormat = logFormat }
            if let storeURL { settings.storeURL = storeURL }
            try settings.validate()
            if !settings.tlsEnabled && !insecureDev {
                throw ValidationError(
                    "TLS is turned off (tls.enabled: false): handoffd refuses to serve plaintext unless started with --insecure-dev")
            }
            try settings.checkSecretPermissions()
        } catch {
            throw ValidationError("\(error)")
        }
        let level = logLevel
        let json = settings.logFormat == "json"
        LoggingSystem.bootstrap { label in
            if json {
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "handoffd")
        logger.info("handoffd \(HandoffVersion.description)")
        // Before anything makes a metric: those made earlier would stay no-ops.
        let metricsRegistry = settings.metricsListen.map { _ in HandoffMetricsBackend.bootstrap() }

        for (problem, message) in settings.revocationListReport() {
            if problem { logger.warning("\(message)") } else { logger.info("\(message)") }
        }
        let store: any Store
        let observeWrites: (@escaping @Sendable (WriteHealth.Change) -> Void) -> Void
        var postgres: PostgresStore?
        // Held until handoffd exits: one server per data directory.
        var dataLock: DataDirectoryLock?
        defer { withExtendedLifetime(dataLock) {} }
        do {
            try settings.makeDataDirectory()
            dataLock = try DataDirectoryLock(data: settings.data)
            if let url = settings.storeURL {
                var connection = try PostgresSettings.resolve(
                    url: url, passwordFile: settings.storePasswordFile, poolSize: settings.storePoolSize, sslmode: settings.storeSSLMode,
                    caFile: settings.storeCAFile)
                connection.notifyActions = DeskHub.actions
                let opened = try await PostgresStore(settings: connection, logger: logger)
                logger.info("store: PostgreSQL at \(connection.displayName), \(connection.poolSize) connections at most")
                postgres = opened
                store = opened
                observeWrites = opened.observeWrites
            } else {
                let opened = try SQLiteStore(
                    path: settings.storePath, cacheMiB: settings.storeCacheMiB, checkpointPages: settings.storeCheckpointPages)
                store = opened
                observeWrites = opened.observeWrites
            }
        } catch {
            logger.critical("cannot open the store: \(error)")
            throw ExitCode.failure
        }
        let dataDirectory = settings.data
        // The store's write failure in progress, for /readyz.
        let storeFailure = Mutex<String?>(nil)
        observeWrites { change in
            switch change {
            case .failing(let cause):
                storeFailure.withLock { $0 = "\(cause)" }
                if case .full = cause {
                    logger.error(
                        "the store cannot write: no space left on the data volume \(dataDirectory); writes are refused (RESOURCE_EXHAUSTED) until space is freed, reads go on",
                        metadata: ["cause": "\(cause)"])
                } else {
                    logger.error(
                        "the store cannot write; writes are refused (UNAVAILABLE) until it recovers, reads go on", metadata: ["cause": "\(cause)"])
                }
            case .recovered(let failed):
                storeFailure.withLock { $0 = nil }
                logger.notice("the store writes again after \(failed) failed writes")
            }
        }
        let policyHolder: PolicyHolder
        do {
            policyHolder = try PolicyHolder(path: settings.policy)
        } catch {
            logger.critical("cannot load the policy: \(error)")
            throw ExitCode.failure
        }
        logger.info("policy \(policyHolder.current.policy.version) in force", metadata: ["file": "\(settings.policy ?? "shipped")"])
        // SIGHUP reloads the policy file (PolicyReloadService); ignored until then.
        signal(SIGHUP, SIG_IGN)

        let sessions = SessionService(store: store, configuration: settings.sessions)
        var registry = MethodRegistry()
        registry.enforceAccessRules(AccessControl(tokens: settings.tokens))
        registry.registerHealth()
        let multiFactor: MultiFactorSettings
        let notices: [any NoticeChannel]
        do {
            multiFactor = try settings.multiFactorSettings(group: MultiThreadedEventLoopGroup.singleton)
            notices = try settings.noticeChannels(group: MultiThreadedEventLoopGroup.singleton)
        } catch {
            logger.critical("cannot set up multi-factor codes or notifications: \(error)")
            throw ExitCode.failure
        }
        let services = HandoffServices(
            store: store, sessions: sessions, policy: policyHolder, multiFactor: multiFactor, notices: notices,
            automatedAssessments: settings.automatedAssessments, logger: logger)
        services.register(into: &registry)
        // Other nodes' desk commits wake this node's Watch calls at once (they poll besides).
        postgres?.listenForFeed(
            wake: { [desk = services.desk] tenant in desk.wake(tenant: tenant) }, relistened: { [desk = services.desk] in desk.wakeAll() })
        // Calls counted and timed when metrics are on, logged at debug level; trace context always bound.
        let telemetry = CallTelemetry(methodNames: registry.methodNames, logger: logger)
        telemetry.install(into: &registry, observe: metricsRegistry != nil || logLevel <= .debug)
        if !settings.tlsEnabled {
            logger.warning("serving WITHOUT TLS (--insecure-dev): bearer tokens and session state cross the network in clear; development only")
        }
        let server: RPCServer
        let serverConfiguration: RPCServer.Configuration
        do {
            try settings.checkTLSFiles()
            serverConfiguration = try settings.serverConfiguration()
            server = try RPCServer(configuration: serverConfiguration, registry: registry, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode.failure
        }
        // Set the moment a graceful shutdown begins: /readyz answers 503 from then on.
        let draining = DrainingFlag(delay: .seconds(settings.drainDelaySeconds), logger: logger)
        // Started in this order and told to stop in the reverse: the store
        // last, after every service that writes to it; notices after the calls.
        var lifecycle: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: StoreService(store: store, postgres: postgres)),
            .init(service: NoticeService(notices: services.notices, graceSeconds: settings.shutdownGraceSeconds, logger: logger)),
        ]
        if let metricsRegistry, let address = settings.metricsListen.flatMap(HostAndPort.init) {
            let gauges = OperationsGauges(store: store, services: services, server: server, handlers: serverConfiguration.connection.handlers)
            let endpoints = OperationsEndpoints(
                metrics: {
                    await gauges.refresh()
                    return metricsRegistry.emitToBuffer()
                },
                notReady: {
                    if draining.isSet { return "draining: the server is shutting down" }
                    if let failure = storeFailure.withLock({ $0 }) { return "the store cannot write: \(failure)" }
                    do {
                        _ = try await store.feedHead(tenant: TenantID("_readyz"))
                        return nil
                    } catch {
                        return "the store does not answer reads: \(error)"
                    }
                })
            // First in the group, so it stops last: /readyz answers 503 all through the drain.
            lifecycle.append(.init(service: OperationsServer(host: address.host, port: address.port, endpoints: endpoints, logger: logger)))
        }
        lifecycle.append(.init(service: server))
        lifecycle.append(
            .init(
                service: DeskSweeper(
                    approvals: services.approvals, interval: .milliseconds(settings.sweepIntervalMs), logger: logger)))
        lifecycle.append(.init(service: PolicyReloadService(holder: policyHolder, logger: logger)))
        // Last, so told first: marks the drain before the server starts it.
        lifecycle.append(.init(service: draining))
        let group = ServiceGroup(
            configuration: .init(
                services: lifecycle,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            if let error = error as? OperationsServerError {
                logger.critical("\(error.message)")
                throw ExitCode.failure
            }
            // A port taken is the usual first-run wall: say so, and how to pick another.
            if "\(error)".contains("Address already in use") {
                logger.critical(
                    "cannot listen on \(settings.listen): the address is in use (another handoffd?); choose another with --listen HOST:PORT, or make run LISTEN=127.0.0.1:7444"
                )
                throw ExitCode.failure
            }
            throw error
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Set when a graceful shutdown begins (the service group tells it first).
final class DrainingFlag: Service {
    private let flag = Atomic<Bool>(false)
    /// How long calls are still served after the flag is set (limits.drain_delay_seconds).
    private let delay: Duration
    private let logger: Logger

    init(delay: Duration, logger: Logger) {
        self.delay = delay
        self.logger = logger
    }

    var isSet: Bool { flag.load(ordering: .relaxed) }

    func run() async throws {
        // Returns when the shutdown begins (or the group is cancelled).
        try? await gracefulShutdown()
        flag.store(true, ordering: .relaxed)
        logger.notice(
            delay > .zero
                ? "shutdown requested: /readyz answers 503; calls are served \(delay) more, then the drain starts"
                : "shutdown requested: /readyz answers 503; draining")
        // The group stops the next service (and so the RPC server's drain) when this returns.
        if delay > .zero { try? await Task.sleep(for: delay) }
    }
}
