// Handoff — the gauges read at each scrape: what the desks hold (from the
// store), calls and connections in flight, watchers and waiters.

import HandoffCore
import HandoffRPC
import HandoffServer
import HandoffVersion
import Metrics
import Synchronization

/// Sets every scrape-time gauge just before /metrics is emitted.
final class OperationsGauges: Sendable {
    private let store: any Store
    private let services: HandoffServices
    private let server: RPCServer
    private let handlers: HandlerBudget
    /// Label sets of the ticket gauge seen before: a status and priority that
    /// has no ticket any more reads 0, not its last count.
    private let ticketLabels = Mutex<Set<[String]>>([])

    init(store: any Store, services: HandoffServices, server: RPCServer, handlers: HandlerBudget) {
        self.store = store
        self.services = services
        self.server = server
        self.handlers = handlers
        Gauge(label: "handoff_build_info", dimensions: [("version", HandoffVersion.release), ("commit", HandoffVersion.commit)]).record(1)
    }

    func refresh() async {
        Gauge(label: "handoff_rpc_calls_in_flight").record(handlers.current)
        let (open, handshaking) = server.openConnections
        Gauge(label: "handoff_connections_open").record(open)
        Gauge(label: "handoff_tls_handshakes_in_progress").record(handshaking)
        Gauge(label: "handoff_watch_subscribers").record(services.feed.hub.watcherCount)
        Gauge(label: "handoff_decision_waiters").record(services.confirmations.decisions.waiterCount)
        Gauge(label: "handoff_sessions_resident").record(services.sessions.residentCount)
        guard let counts = try? await store.deskCounts() else {
            Gauge(label: "handoff_store_scrape_ok").record(0)
            return
        }
        Gauge(label: "handoff_store_scrape_ok").record(1)
        var seen = Set<[String]>()
        for ticket in counts.tickets {
            let labels = [ticket.status.rawValue, "\(ticket.priority)"]
            seen.insert(labels)
            Gauge(label: "handoff_tickets", dimensions: [("status", labels[0]), ("priority", labels[1])]).record(ticket.count)
        }
        let gone = ticketLabels.withLock { known in
            defer { known.formUnion(seen) }
            return known.subtracting(seen)
        }
        for labels in gone {
            Gauge(label: "handoff_tickets", dimensions: [("status", labels[0]), ("priority", labels[1])]).record(0)
        }
        let oldest = counts.oldestOpenTicketCreatedAtMs.map { max(0, SessionService.wallClockMs() - $0) } ?? 0
        Gauge(label: "handoff_oldest_open_ticket_age_seconds").record(Double(oldest) / 1000)
        Gauge(label: "handoff_approvals_pending").record(counts.pendingApprovals)
        Gauge(label: "handoff_pending_actions_undecided").record(counts.undecidedActions)
    }
}
