// Handoff — what went wrong, in the domain's words: every service of the
// sessions and the desks throws it; the server maps each case to a status
// code (HandoffServer, SessionsMethods.swift), and the text is the caller's.

/// A refusal of the domain.
public enum HandoffError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The request is not one the domain takes (a field missing, too long,
    /// malformed or out of range).
    case invalid(String)
    /// No such record in the caller's tenant.
    case notFound(String)
    /// A record with that id exists already.
    case alreadyExists(String)
    /// The record moved on since the version the caller named: nothing was changed.
    case staleVersion(String)
    /// The record's state does not allow this now (a ticket already resolved,
    /// an action not awaiting this answer), or an idempotency key was used
    /// for another request.
    case conflict(String)
    /// The caller's role or identity may not do this to this record.
    case forbidden(String)
    /// A limit was reached (a session's memories and their bytes).
    case limitReached(String)
    /// The data volume is full: the write was not made.
    case volumeFull(String)
    /// The store failed; the text is for logs.
    case storeFailed(String)
    /// Something outside the store failed (a notification channel); the text is for the caller.
    case unreachable(String)
    /// The call ended (cancelled, or past its deadline) before its change
    /// started: nothing was changed.
    case callEnded(String)

    public var description: String {
        switch self {
        case .invalid(let m), .notFound(let m), .alreadyExists(let m), .staleVersion(let m), .conflict(let m), .forbidden(let m),
            .limitReached(let m), .volumeFull(let m), .storeFailed(let m), .unreachable(let m), .callEnded(let m):
            m
        }
    }

    public init(_ error: StoreError) {
        switch error {
        case .alreadyExists: self = .alreadyExists(error.description)
        case .notFound, .missing: self = .notFound(error.description)
        case .versionConflict: self = .staleVersion(error.description)
        case .keyReused: self = .conflict(error.description)
        case .limitReached: self = .limitReached(error.description)
        case .full: self = .volumeFull("no space left on the data volume: the write was not made; retry once space is freed")
        case .cancelled: self = .callEnded(error.description)
        case .unsupported: self = .conflict(error.description)
        case .failure: self = .storeFailed(error.description)
        }
    }
}
