// Handoff — the metrics of decisions and desks: what the policy decided,
// how long people took, what the desks hold. Emitted through swift-metrics
// (no-ops unless handoffd bootstrapped a backend); docs/OPERATIONS.md
// explains each. Labels take only names from small fixed sets: never ids,
// identities or free text.

import CoreMetrics
import HandoffCore
import HandoffPolicy

/// The domain's metrics, each created on first use.
public enum DeskMetrics {
    /// Every strategy and decision type pair, made once: the hot path
    /// (every assessment) finds its counter without the factory's lock.
    private static let assessments: [Int: Counter] = {
        var counters: [Int: Counter] = [:]
        for strategy in Strategy.allCases {
            for type in DecisionType.allCases {
                counters[key(strategy, type)] = Counter(
                    label: "handoff_assessments_total",
                    dimensions: [("strategy", strategy.description), ("decision_type", type.rawValue)])
            }
        }
        return counters
    }()

    private static func key(_ strategy: Strategy, _ type: DecisionType) -> Int {
        strategy.rawValue * 100 + (DecisionType.allCases.firstIndex(of: type) ?? 0)
    }

    static func assessed(_ strategy: Strategy, _ type: DecisionType) {
        assessments[key(strategy, type)]?.increment()
        if strategy != .automate { reached(.pending) }
    }

    private static let reachedPending = Counter(
        label: "handoff_pending_actions_total", dimensions: [("status", PendingActionRecord.Status.pending.rawValue)])

    /// A pending action reached `status`: created (`pending`), decided, expired or executed.
    private static func reached(_ status: PendingActionRecord.Status) {
        if status == .pending { return reachedPending.increment() }
        Counter(label: "handoff_pending_actions_total", dimensions: [("status", status.rawValue)]).increment()
    }

    /// A pending action was settled (after its commit): counted by status;
    /// and when it is a decision, how long it
    /// waited since its assessment, by strategy and outcome. Expiry and
    /// execution are not a person's decision and are not timed here.
    static func decided(_ action: PendingActionRecord) {
        reached(action.status)
        guard [.released, .declined, .rejected, .cancelled].contains(action.status) else { return }
        let strategy = Strategy(rawValue: action.strategy)?.description ?? "unknown"
        CoreMetrics.Timer(
            label: "handoff_decision_wait_seconds", dimensions: [("strategy", strategy), ("outcome", action.status.rawValue)]
        ).recordMilliseconds(max(0, action.updatedAtMs - action.createdAtMs))
    }

    /// A multi-factor code checked: `verified`, `wrong`, `expired` or `exhausted`.
    static func multiFactorAttempt(_ result: String) {
        Counter(label: "handoff_multi_factor_attempts_total", dimensions: [("result", result)]).increment()
    }

    /// A ticket claimed for the first time, `waitedMs` after it opened.
    static func ticketClaimed(waitedMs: Int64) {
        CoreMetrics.Timer(label: "handoff_ticket_claim_wait_seconds").recordMilliseconds(max(0, waitedMs))
    }

    /// A ticket resolved, `tookMs` after it opened.
    static func ticketResolved(tookMs: Int64) {
        CoreMetrics.Timer(label: "handoff_ticket_resolve_seconds").recordMilliseconds(max(0, tookMs))
    }

    /// Open tickets whose claim SLA ran out, as the desk sweeper records them.
    public static func slaBreaches(_ count: Int) {
        guard count > 0 else { return }
        Counter(label: "handoff_sla_breaches_total").increment(by: count)
    }

    /// A desk notice's fate on its channel: `sent`, `failed` (after its retries) or `dropped` (queue full).
    static func notice(_ channel: String, _ result: String) {
        Counter(label: "handoff_notices_total", dimensions: [("channel", channel), ("result", result)]).increment()
    }
}
