// Handoff — handoffd, the server.
//
// Parses flags, sets up logging and runs the server's services in a
// ServiceGroup that shuts down gracefully on SIGTERM and SIGINT.

public import ArgumentParser
public import Logging
import ServiceLifecycle

@main
struct Handoffd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handoffd",
        abstract: "The Handoff human-in-the-loop server."
    )

    @Option(help: "Address to listen on, HOST:PORT; port 0 picks a free port.")
    var listen = "127.0.0.1:7443"

    @Option(help: "Directory for the embedded store and generated files.")
    var data = ".handoff"

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "handoffd")
        let group = ServiceGroup(
            services: [IdleUntilShutdown()],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        logger.info("handoffd started", metadata: ["listen": "\(listen)", "data": "\(data)"])
        try await group.run()
        logger.info("handoffd stopped")
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Holds the process open until graceful shutdown begins.
struct IdleUntilShutdown: Service {
    func run() async throws {
        try? await gracefulShutdown()
    }
}
