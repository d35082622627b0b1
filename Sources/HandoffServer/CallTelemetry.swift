// Handoff — what every call leaves behind for operators: its count and
// latency in the metrics, its line in the access log (debug level), and its
// trace context bound for the events it writes.

import CoreMetrics
import HandoffCore
public import HandoffRPC
public import Logging
import Synchronization

/// The metrics of the transport and access layers, created on first use
/// (after handoffd bootstrapped the metrics system; without one, no-ops).
/// docs/OPERATIONS.md explains each.
enum ServerMetrics {
    /// A call refused by a limit: `limit` is one of calls_per_connection,
    /// calls_in_server, token_failures, per_identity_method, connections, handshakes.
    static func rateLimited(_ limit: String) {
        Counter(label: "handoff_rate_limited_total", dimensions: [("limit", limit)]).increment()
    }

    /// A TLS handshake that did not complete, by reason.
    static func handshakeFailed(_ reason: String) {
        Counter(label: "handoff_tls_handshake_failures_total", dimensions: [("reason", reason)]).increment()
    }
}

/// Counts and times every call by method and status, logs it at debug level
/// (with caller, tenant, status, duration and trace context), and binds a
/// caller's valid W3C `traceparent` to the call's task (`CallTrace`).
public final class CallTelemetry: Sendable {
    private final class MethodMetrics: Sendable {
        let name: String
        let latency: CoreMetrics.Timer
        let ok: Counter
        private let others = Mutex<[UInt32: Counter]>([:])

        init(name: String) {
            self.name = name
            latency = CoreMetrics.Timer(label: "handoff_rpc_duration_seconds", dimensions: [("method", name)])
            ok = Counter(label: "handoff_rpc_calls_total", dimensions: [("method", name), ("code", "OK")])
        }

        func count(_ code: RPCError.Code) {
            if code == .ok { return ok.increment() }
            let counter = others.withLock { others in
                if let found = others[code.rawValue] { return found }
                let made = Counter(label: "handoff_rpc_calls_total", dimensions: [("method", name), ("code", "\(code)")])
                others[code.rawValue] = made
                return made
            }
            counter.increment()
        }
    }

    /// Every registered method's metrics, made up front so the hot path takes no lock to find them.
    private let methods: [String: MethodMetrics]
    /// Calls to a method nobody registered: the client's name never becomes a label.
    private let unknown = MethodMetrics(name: "unknown")
    private let logger: Logger

    /// - Parameter methodNames: the registry's methods (`MethodRegistry.methodNames`).
    public init(methodNames: [String], logger: Logger) {
        methods = Dictionary(uniqueKeysWithValues: methodNames.map { ($0, MethodMetrics(name: $0)) })
        self.logger = logger
    }

    /// Installs the trace scope on `registry` and, with `observe`, the
    /// observer that counts and logs calls (after every method is registered).
    public func install(into registry: inout MethodRegistry, observe: Bool = true) {
        if observe { registry.callObserver = { [self] outcome in self.observe(outcome) } }
        registry.callScope = { context, work in
            guard let sent = context.metadataValue("traceparent"), let traceparent = CallTrace.validated(sent) else {
                return try await work()
            }
            return try await CallTrace.$traceparent.withValue(traceparent) { try await work() }
        }
    }

    /// `text` with each control character (a newline, an escape, …) written as `\u{…}`.
    static func escapingControlCharacters(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.properties.generalCategory == .control {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    func observe(_ outcome: CallOutcome) {
        let metrics = (outcome.registered ? methods[outcome.method] : nil) ?? unknown
        let (seconds, attoseconds) = outcome.duration.components
        let nanoseconds = seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
        metrics.count(outcome.code)
        metrics.latency.recordNanoseconds(nanoseconds)
        if let refusal = outcome.refusal { ServerMetrics.rateLimited(refusal.rawValue) }
        guard logger.logLevel <= .debug else { return }
        var metadata: Logger.Metadata = [
            "call": "\(outcome.callID)",
            "method": "\(metrics.name)",
            "status": "\(outcome.code)",
            "duration_ms": "\(Double(nanoseconds) / 1e6)",
        ]
        if let context = outcome.context {
            if context.identity != nil {
                let caller = context.caller
                metadata["caller"] = "\(caller.identity)"
                metadata["tenant"] = "\(caller.tenant)"
            }
            if let remote = context.connection.remoteAddress { metadata["remote"] = "\(remote)" }
            if let sent = context.metadataValue("traceparent"), let traceparent = CallTrace.validated(sent) {
                metadata["traceparent"] = "\(traceparent)"
            }
        }
        // "error", not "message": the JSON format's own key for the line's text.
        // Escaped: a message may quote the client's text (an id, a method name),
        // which must not start a line of its own in a text log.
        if outcome.code != .ok { metadata["error"] = "\(Self.escapingControlCharacters(outcome.message))" }
        logger.debug("call", metadata: metadata)
    }
}
