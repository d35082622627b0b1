// Handoff — multi-factor confirmation: a one-time code from the system's
// CSPRNG goes to the end user through notification channels; the server keeps
// only an HMAC of it (server key), for a few minutes and a few attempts. A
// correct code releases the action exactly once; the code itself is never
// stored, logged, put in an event or returned.

import Crypto
import Foundation
public import HandoffCore
import HandoffPolicy

/// What a channel delivers to the end user. Holds the code: channels must not log it.
public struct CodeDelivery: Sendable {
    public var tenant: TenantID
    public var sessionID: String
    public var pendingActionID: String
    /// What the code authorises, in words.
    public var summary: String
    public var code: String
    public var expiresAtMs: Int64
}

/// A way to reach the end user (a webhook, a development file).
public protocol CodeChannel: Sendable {
    /// The name StartMultiFactor reports, for example "webhook".
    var name: String { get }
    /// Delivers the code; throws when it could not.
    func deliver(_ delivery: CodeDelivery) async throws
}

/// How codes are made and checked.
public struct MultiFactorSettings: Sendable {
    /// The server key codes are HMACed with (32 random bytes kept by the server).
    var keyBytes: [UInt8]
    var key: SymmetricKey { SymmetricKey(data: keyBytes) }
    public var channels: [any CodeChannel]
    /// Digits per code, 6 to 8.
    public var codeLength = 6
    public var lifetimeSeconds = 300
    /// Wrong codes allowed before the action is cancelled.
    public var attempts = 3
    /// Told of each channel that failed to deliver a code: its name and the
    /// error (whose text never holds the code), for the operator's log.
    public var deliveryFailed: @Sendable (_ channel: String, _ pendingActionID: String, _ error: any Error) -> Void = { _, _, _ in }

    /// A key of its own for `purpose`, derived from the server key (HKDF):
    /// stable across restarts, and useless for codes.
    public func derivedKey(for purpose: String) -> [UInt8] {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: Data("handoff \(purpose)".utf8), outputByteCount: 32)
            .withUnsafeBytes { Array($0) }
    }

    public init(key: [UInt8], channels: [any CodeChannel]) {
        self.keyBytes = key
        self.channels = channels
    }
}

/// What StartMultiFactor answers (never the code).
public struct MultiFactorStart: Sendable, Hashable {
    public var channels: [String]
    public var expiresAtMs: Int64
    public var codeLength: Int
    public var attempts: Int
}

/// What VerifyMultiFactor answers.
public struct MultiFactorVerification: Sendable, Hashable {
    public var verified: Bool
    public var attemptsRemaining: Int
    public var action: PendingActionRecord
    /// Only in the reply that released the action.
    public var releaseToken: String?
}

extension ConfirmationService {
    /// Issues a code for a pending action of strategy multi-factor and delivers
    /// it; a new code replaces the previous one.
    /// - Throws: `.conflict` (other strategy, not pending),
    ///   `.unreachable` when no channel delivered it.
    public func startMultiFactor(pendingActionID: String, caller: Caller) async throws(HandoffError) -> MultiFactorStart {
        let settings = multiFactor
        guard !settings.channels.isEmpty else { throw .unreachable("no notification channel is configured for codes") }
        let (start, delivery) = try await decide(pendingActionID, caller: caller) { (found, now) throws(HandoffError) in
            var action = found
            guard action.isUndecided else { throw .conflict("pending action \(action.id) is \(action.status), not pending") }
            guard action.strategy == Strategy.multiFactor.rawValue else {
                throw .conflict("pending action \(action.id) does not need a multi-factor code")
            }
            // Wrong codes count per action, across codes: a new code replaces
            // the last one but never gives the attempts back.
            let firstCode = action.mfaExpiresAtMs == 0
            guard firstCode || action.mfaAttemptsLeft > 0 else {
                throw .conflict("pending action \(action.id) has no code attempts left")
            }
            let code = Self.newCode(length: settings.codeLength)
            action.mfaCodeHash = Self.mac(code, for: action.id, key: settings.key)
            action.mfaExpiresAtMs = now + Int64(settings.lifetimeSeconds) * 1000
            if firstCode { action.mfaAttemptsLeft = settings.attempts }
            action.updatedAtMs = now
            let (stored, status) = try await self.write(
                action,
                events: [
                    self.event(
                        .mfaStarted, action, caller, now,
                        [
                            "channels": .array(settings.channels.map { .string($0.name) }),
                            "expires_at_unix_ms": .integer(action.mfaExpiresAtMs),
                        ])
                ])
            let summary =
                (try? JSONValue(parsing: stored.actionJSON)).flatMap { ProposedAction(canonicalJSON: $0) }
                .map { $0.description.isEmpty ? $0.toolName : $0.description } ?? stored.id
            let delivery = CodeDelivery(
                tenant: caller.tenant, sessionID: stored.sessionID, pendingActionID: stored.id, summary: summary, code: code,
                expiresAtMs: stored.mfaExpiresAtMs)
            let start = MultiFactorStart(
                channels: [], expiresAtMs: stored.mfaExpiresAtMs, codeLength: settings.codeLength, attempts: stored.mfaAttemptsLeft)
            return ((start, delivery), status)
        }
        // Delivered outside the session's turn: a slow webhook holds up nothing else.
        var delivered: [String] = []
        for channel in settings.channels {
            do {
                try await channel.deliver(delivery)
                delivered.append(channel.name)
            } catch {
                settings.deliveryFailed(channel.name, delivery.pendingActionID, error)
                continue  // the next channel may reach the user
            }
        }
        guard !delivered.isEmpty else { throw .unreachable("no notification channel delivered the code; start again") }
        var answer = start
        answer.channels = delivered
        return answer
    }

    /// Checks a code. A wrong one is an answer (verified false, attempts left);
    /// one after expiry or after the attempts ran out cancels the action.
    public func verifyMultiFactor(pendingActionID: String, code: String, caller: Caller) async throws(HandoffError) -> MultiFactorVerification {
        try requireUserChannel(caller)
        guard !code.isEmpty, code.utf8.count <= 32 else { throw .invalid("code must be 1 to 32 characters") }
        let settings = multiFactor
        return try await decide(pendingActionID, caller: caller) { (found, now) throws(HandoffError) in
            var action = found
            guard action.isUndecided else { throw .conflict("pending action \(action.id) is \(action.status), not pending") }
            guard let expected = action.mfaCodeHash else {
                throw .conflict("pending action \(action.id) has no code: call StartMultiFactor first")
            }
            action.updatedAtMs = now
            if now >= action.mfaExpiresAtMs || action.mfaAttemptsLeft <= 0 {
                action.status = .cancelled
                action.mfaCodeHash = nil
                action.mfaAttemptsLeft = 0
                let reason = now >= action.mfaExpiresAtMs ? "the code expired" : "no attempts left"
                DeskMetrics.multiFactorAttempt(now >= action.mfaExpiresAtMs ? "expired" : "exhausted")
                let (stored, status) = try await self.write(
                    action,
                    events: [
                        self.event(.mfaFailed, action, caller, now, ["reason": .string(reason)]),
                        self.event(.actionCancelled, action, caller, now, ["reason": .string(reason)]),
                    ])
                return (MultiFactorVerification(verified: false, attemptsRemaining: 0, action: stored, releaseToken: nil), status)
            }
            // Constant-time comparison of the HMACs.
            let right = HMAC<SHA256>.isValidAuthenticationCode(
                expected, authenticating: Data("\(action.id):\(code)".utf8), using: settings.key)
            DeskMetrics.multiFactorAttempt(right ? "verified" : "wrong")
            if right {
                let token = self.releaseToken(for: action)
                action.status = .released
                action.mfaCodeHash = nil
                action.releaseTokenHash = Array(SHA256.hash(data: Data(token.utf8)))
                let (stored, status) = try await self.write(
                    action,
                    events: [
                        self.event(.mfaVerified, action, caller, now, [:]),
                        self.event(.actionReleased, action, caller, now, ["by": .string("multi_factor")]),
                    ])
                return (
                    MultiFactorVerification(verified: true, attemptsRemaining: stored.mfaAttemptsLeft, action: stored, releaseToken: token), status
                )
            }
            action.mfaAttemptsLeft -= 1
            var events = [
                self.event(
                    .mfaFailed, action, caller, now,
                    [
                        "reason": .string("wrong code"), "attempts_left": .integer(Int64(action.mfaAttemptsLeft)),
                    ])
            ]
            // The last wrong code cancels the action at once: no further code can release it.
            if action.mfaAttemptsLeft <= 0 {
                action.status = .cancelled
                action.mfaCodeHash = nil
                action.mfaAttemptsLeft = 0
                events.append(self.event(.actionCancelled, action, caller, now, ["reason": .string("no attempts left")]))
            }
            let (stored, status) = try await self.write(action, events: events)
            return (MultiFactorVerification(verified: false, attemptsRemaining: stored.mfaAttemptsLeft, action: stored, releaseToken: nil), status)
        }
    }

    static func mac(_ code: String, for id: String, key: SymmetricKey) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Data("\(id):\(code)".utf8), using: key))
    }

    /// `length` decimal digits, each uniform, from the system's CSPRNG.
    static func newCode(length: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in Character(String(Int.random(in: 0...9, using: &generator))) })
    }
}
