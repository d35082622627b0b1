// Handoff — handoffd's long-lived workers as services of its service group,
// so that its shutdown is the group's: each is told in turn, in the reverse
// of the order they were started in (the store last, after every service that
// writes to it has stopped).

import Dispatch
import Foundation
import HandoffCore
import HandoffDesks
import HandoffPolicy
import HandoffPostgres
import Logging
import ServiceLifecycle

/// The store, kept open until the services started after it have stopped:
/// then automated assessments answered once queued commit (`settle`), and a
/// PostgreSQL pool and its listener close.
struct StoreService: Service {
    let store: any Store
    let postgres: PostgresStore?

    func run() async throws {
        try? await gracefulShutdown()
        await store.settle()
        await postgres?.shutdown()
    }
}

/// The desk notices' sender: once the calls are over, what they queued (an
/// approver's new step, an outcome for the requester) still goes out,
/// within the shutdown grace.
struct NoticeService: Service {
    let notices: NoticeSender
    let graceSeconds: Int
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        let left = await notices.flush(within: .seconds(graceSeconds))
        if left > 0 {
            logger.error(
                "\(left) deliveries of desk notices (or their retries) were still not done when the shutdown grace of \(graceSeconds) s ended; the approvals themselves are stored and listed by ListPendingApprovals"
            )
        }
    }
}

/// SIGHUP reloads the policy file; a bad one is logged and the old one
/// stays. (handoffd ignores SIGHUP from its start, so one that comes before
/// this service runs does not end the process.)
struct PolicyReloadService: Service {
    let holder: PolicyHolder
    let logger: Logger

    func run() async throws {
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP)
        hangup.setEventHandler { [holder, logger] in
            do {
                let loaded = try holder.reload()
                logger.notice("policy reloaded: \(loaded.policy.version) in force")
            } catch {
                logger.error("policy not reloaded, the old one stays in force: \(error)")
            }
        }
        hangup.resume()
        try? await gracefulShutdown()
        hangup.cancel()
    }
}
