// Handoff — the domain services of one server, made and registered together,
// so handoffd and the tests run the same wiring; and the desk sweeper that
// applies approval expiries and records SLA breaches as time passes.

public import HandoffCore
public import HandoffDesks
public import HandoffPolicy
public import HandoffRPC
public import Logging
public import ServiceLifecycle

/// Every domain service, built over one store and one policy.
public struct HandoffServices: Sendable {
    /// The store every service writes to.
    public let store: any Store
    public let sessions: SessionService
    public let policy: PolicyHolder
    public let assessments: AssessmentService
    public let confirmations: ConfirmationService
    public let escalations: EscalationService
    public let approvals: ApprovalService
    public let feed: DeskFeed
    /// Wakes this process's Watch calls (another node's commits wake it through the store).
    public let desk: DeskHub
    public let automaticEscalation: AutomaticEscalation
    /// Where approval notices and alerts are queued for their channels.
    public let notices: NoticeSender
    /// Seals Watch cursors (derived from the server key, so they survive a restart).
    let cursors: FeedCursorToken

    public init(
        store: any Store, sessions: SessionService, policy: PolicyHolder, multiFactor: MultiFactorSettings,
        notices: [any NoticeChannel] = [], noticeRetryDelays: [Duration] = NoticeSender.defaultRetryDelays,
        clock: @escaping @Sendable () -> Int64 = SessionService.wallClockMs, automatedAssessments: AutomatedAssessments = .queued,
        logger: Logger = Logger(label: "handoff")
    ) {
        self.store = store
        self.sessions = sessions
        self.policy = policy
        cursors = FeedCursorToken(key: multiFactor.derivedKey(for: "watch cursors"))
        assessments = AssessmentService(
            store: store, sessions: sessions, policy: policy, clock: clock, automated: automatedAssessments
        ) { sessionID, error in
            logger.error(
                "an automated assessment was answered but its event did not commit",
                metadata: [
                    "session": "\(sessionID)", "error": "\(error)",
                ])
        }
        var multiFactor = multiFactor
        multiFactor.deliveryFailed = { channel, pendingActionID, error in
            logger.warning(
                "multi-factor code not delivered",
                metadata: [
                    "channel": "\(channel)", "pending_action": "\(pendingActionID)", "error": "\(error)",
                ])
        }
        confirmations = ConfirmationService(store: store, sessions: sessions, policy: policy, multiFactor: multiFactor, clock: clock)
        let desk = DeskHub()
        self.desk = desk
        let sender = NoticeSender(channels: notices, retryDelays: noticeRetryDelays) { notice, channel, error, retryIn in
            logger.warning(
                retryIn == nil ? "desk notice not delivered" : "desk notice not delivered yet; trying again",
                metadata: [
                    "channel": "\(channel)", "kind": "\(notice.kind)", "approval": "\(notice.approvalID)", "notice": "\(notice.id)",
                    "error": "\(error)", "retry_in": "\(retryIn.map { "\($0)" } ?? "never")",
                ])
        } onDropped: { notice, channel in
            logger.error(
                "desk notice dropped: the channel's queue is full (its receiver is slow or down)",
                metadata: [
                    "channel": "\(channel)", "kind": "\(notice.kind)", "approval": "\(notice.approvalID)", "notice": "\(notice.id)",
                ])
        }
        escalations = EscalationService(
            store: store, sessions: sessions, policy: policy, confirmations: confirmations, desk: desk, notices: sender, clock: clock)
        approvals = ApprovalService(
            store: store, sessions: sessions, policy: policy, confirmations: confirmations, assessments: assessments, desk: desk,
            notices: sender, clock: clock)
        self.notices = sender
        feed = DeskFeed(store: store, hub: desk)
        automaticEscalation = AutomaticEscalation(approvals: approvals, escalations: escalations)
    }

    /// Registers every domain RPC (Health and the access rules are the caller's).
    public func register(into registry: inout MethodRegistry, clock: @escaping @Sendable () -> Int64 = SessionService.wallClockMs) {
        registry.registerSessions(sessions)
        registry.registerPolicy(assessments, policy: policy, escalation: automaticEscalation)
        registry.registerConfirmations(confirmations)
        registry.registerDecisions(confirmations)
        registry.registerEscalations(escalations, clock: clock)
        registry.registerAnalytics(escalations)
        registry.registerApprovals(approvals)
        registry.registerWatch(feed, policy: policy, cursors: cursors, clock: clock)
        registry.registerBackup(store: store)
    }
}

/// Sweeps the desks every `interval`: approval steps past their deadline
/// take the policy's expiry outcome, tickets past their claim SLA get a
/// `ticket.sla_breached` event (and a Watch event). Readers also apply a due
/// expiry themselves, so the sweep's period bounds only how late watchers hear.
public struct DeskSweeper: Service {
    let approvals: ApprovalService
    let interval: Duration
    let logger: Logger

    public init(approvals: ApprovalService, interval: Duration = .seconds(1), logger: Logger) {
        self.approvals = approvals
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let swept = try await approvals.sweep()
                    DeskMetrics.slaBreaches(swept.breaches)
                    if swept.approvals + swept.breaches > 0 {
                        logger.info("desk sweep", metadata: ["approvals_expired": "\(swept.approvals)", "sla_breaches": "\(swept.breaches)"])
                    }
                } catch {
                    // Stopping (the server did not start, or shuts down) is not a failure.
                    if Task.isCancelled { break }
                    logger.warning("desk sweep failed; retrying", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
