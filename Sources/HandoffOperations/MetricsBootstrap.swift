// Handoff — the metrics backend: swift-metrics bootstrapped with
// swift-prometheus, with buckets fitted to what each histogram measures.

import Metrics
public import Prometheus

/// The process's Prometheus registry, once `bootstrap()` installed it.
public enum HandoffMetricsBackend {
    /// Installs Prometheus as the swift-metrics backend (once per process)
    /// and returns its registry, which /metrics emits.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // A call: from a tenth of a millisecond (a Ping on loopback) to a minute (a long wait).
        let calls: [Duration] = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
            .milliseconds(2500), .seconds(10), .seconds(60),
        ]
        // A person: from a second to a day.
        let people: [Duration] = [
            .seconds(1), .seconds(5), .seconds(15), .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(1800),
            .seconds(3600), .seconds(4 * 3600), .seconds(24 * 3600),
        ]
        factory.durationHistogramBuckets = [
            "handoff_rpc_duration_seconds": calls,
            "handoff_store_commit_duration_seconds": calls,
            "handoff_decision_wait_seconds": people,
            "handoff_ticket_claim_wait_seconds": people,
            "handoff_ticket_resolve_seconds": people,
        ]
        factory.valueHistogramBuckets = ["handoff_store_writes_per_commit": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]]
        MetricsSystem.bootstrap(factory)
        return registry
    }
}
