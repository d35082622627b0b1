// Handoff — approval chains as policy: which approvers an amount needs, level
// by level, who belongs to a group, how long a step waits and what an
// undecided step turns into. Pure domain code; read from YAML in
// Policy+YAML.swift.

public import Foundation
public import HandoffCore

extension Policy {
    /// Approval chains and their approvers.
    public struct Approvals: Sendable, Hashable {
        /// A chain for amounts above `above`: its steps in order, each a list
        /// of approver entries (any one of them decides the step).
        public struct Chain: Sendable, Hashable {
            public var above: Decimal
            public var steps: [[String]]

            public init(above: Decimal, steps: [[String]]) {
                self.above = above
                self.steps = steps
            }
        }

        /// What an undecided step turns into when its time is up.
        public enum ExpiryOutcome: String, Sendable, Hashable, CaseIterable {
            /// The approval ends expired and its action is not released.
            case reject
            /// The chain moves on to the next level (the last level's expiry ends it).
            case escalate
        }

        /// Named groups of approver entries (identities, names, `role:approver`).
        public var groups: [String: [String]] = ["managers": ["role:approver"], "finance": ["role:approver"]]
        /// The chain an amount uses is the one with the highest `above` below it.
        public var chains: [Chain] = [
            Chain(above: 0, steps: [["group:managers"]]),
            Chain(above: 10_000, steps: [["group:managers"], ["group:finance"]]),
        ]
        /// Seconds a step waits for its decision; nil: for ever.
        public var stepTimeoutSeconds: Int? = 86_400
        public var onExpiry: ExpiryOutcome = .reject
        /// Decision types whose escalate strategy opens an approval (when an
        /// amount is given and a chain covers it) rather than an operator ticket.
        public var routeDecisionTypes: Set<DecisionType> = [.financial]

        public init() {}

        /// The chain for `amount`, or nil when no chain covers it.
        public func chain(for amount: Decimal) -> Chain? {
            chains.filter { amount > $0.above }.max { $0.above < $1.above }
        }

        /// Whether a step with `entries` is routed to the caller: by identity,
        /// by name within the tenant, by role, or through a group.
        public func routes(_ entries: [String], to caller: Caller) -> Bool {
            entries.contains { entry in
                if entry.hasPrefix("group:") {
                    return (groups[String(entry.dropFirst(6))] ?? []).contains { Self.matches($0, caller) }
                }
                return Self.matches(entry, caller)
            }
        }

        static func matches(_ entry: String, _ caller: Caller) -> Bool {
            if entry.hasPrefix("role:") { return caller.role == entry.dropFirst(5) }
            if entry.hasPrefix("handoff://") { return caller.identity == entry }
            // A bare name: the approver of that name in the caller's own tenant.
            return caller.role == "approver" && caller.identity == "handoff://tenant/\(caller.tenant.rawValue)/approver/\(entry)"
        }

        /// Why an entry cannot be used, or nil when it can.
        func problem(with entry: String) -> String? {
            if entry.hasPrefix("group:") {
                return groups[String(entry.dropFirst(6))] == nil ? "unknown group \"\(entry.dropFirst(6))\"" : nil
            }
            return Self.entryProblem(entry)
        }

        static func entryProblem(_ entry: String) -> String? {
            if entry.hasPrefix("role:") {
                return entry == "role:approver" ? nil : "\"\(entry)\": only role:approver may decide approvals"
            }
            if entry.hasPrefix("handoff://") {
                let parts = entry.dropFirst("handoff://".count).split(separator: "/", omittingEmptySubsequences: false)
                return parts.count == 4 && parts[0] == "tenant" && parts[2] == "approver" && !parts[1].isEmpty && !parts[3].isEmpty
                    ? nil : "\"\(entry)\" is not an approver identity handoff://tenant/<tenant>/approver/<name>"
            }
            let allowed = entry.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_.@".unicodeScalars.contains($0) }
            return !entry.isEmpty && allowed ? nil : "\"\(entry)\" is not an approver name, identity, group:<name> or role:approver"
        }
    }
}
