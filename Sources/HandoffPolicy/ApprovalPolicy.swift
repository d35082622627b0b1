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
        /// The tool argument that carries the amount, per tool (`amount` when
        /// a tool is not named): an approver's lower amount is written there.
        public var amountParameters: [String: String] = [:]
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

        /// The argument of `tool` that carries its amount.
        public func amountParameter(for tool: String) -> String { amountParameters[tool] ?? "amount" }

        /// An approver's edit made one consistent action: when the tool's
        /// arguments carry the amount (the original's or the edit's), the
        /// argument is set to the edited amount, a number where it was one.
        /// - Returns: the action to release, or why the edit is refused (its
        ///   arguments name an amount that is neither the original nor the edit's).
        public func reconcile(_ edited: ProposedAction, original: ProposedAction) -> Result<ProposedAction, AmountMismatch> {
            guard let amount = edited.amount else { return .success(edited) }
            let key = amountParameter(for: edited.toolName)
            guard case .object(var arguments) = edited.parameters else { return .success(edited) }
            let before = original.parameters.objectValue?[key]
            guard let given = arguments[key] ?? before else { return .success(edited) }
            if let stated = Self.decimal(given), stated != amount, stated != Self.decimal(before ?? .null) {
                return .failure(AmountMismatch(parameter: key, stated: given, amount: amount))
            }
            arguments[key] = Self.encode(amount, like: given)
            var consistent = edited
            consistent.parameters = .object(arguments)
            return .success(consistent)
        }

        /// Why an action's amount and its amount argument disagree, or nil when
        /// they agree (or it has no amount, or no such argument). A released
        /// action must agree: a tool run with its arguments must move the amount approved.
        public func mismatch(in action: ProposedAction) -> AmountMismatch? {
            guard let amount = action.amount, let given = action.parameters.objectValue?[amountParameter(for: action.toolName)] else {
                return nil
            }
            return Self.decimal(given) == amount ? nil
                : AmountMismatch(parameter: amountParameter(for: action.toolName), stated: given, amount: amount)
        }

        /// A JSON number or decimal string as a Decimal.
        static func decimal(_ value: JSONValue) -> Decimal? {
            switch value {
            case .integer(let n): Decimal(n)
            case .number(let n): Decimal(string: "\(n)", locale: Locale(identifier: "en_US_POSIX"))
            case .string(let text): Decimal(string: text, locale: Locale(identifier: "en_US_POSIX"))
            default: nil
            }
        }

        /// `amount` in the JSON type `like` had: a string stays a string.
        static func encode(_ amount: Decimal, like: JSONValue) -> JSONValue {
            let text = "\(amount)"
            if case .string = like { return .string(text) }
            let whole = NSDecimalNumber(decimal: amount).int64Value
            if Decimal(whole) == amount { return .integer(whole) }
            return .number(NSDecimalNumber(decimal: amount).doubleValue)
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

        /// The step entries that route a step to the caller (`routes` holds
        /// for a step that lists any of them): its role, its identity, its bare
        /// name in its own tenant, and each group with a member it matches.
        /// A store matches these as data; the rules stay here.
        public func entries(routingTo caller: Caller) -> [String] {
            var candidates = ["role:\(caller.role)", caller.identity]
            let own = "handoff://tenant/\(caller.tenant.rawValue)/approver/"
            if caller.identity.hasPrefix(own) { candidates.append(String(caller.identity.dropFirst(own.count))) }
            var found = candidates.filter { Self.matches($0, caller) }
            for (name, members) in groups.sorted(by: { $0.key < $1.key }) where members.contains(where: { Self.matches($0, caller) }) {
                found.append("group:\(name)")
            }
            return found
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

/// An action whose amount argument says another amount than the action's.
public struct AmountMismatch: Error, Sendable, Hashable, CustomStringConvertible {
    public var parameter: String
    public var stated: JSONValue
    public var amount: Decimal
    public var description: String {
        "the argument \"\(parameter)\" is \(stated.serialized) but the amount is \(amount): a tool run with these arguments would not move the amount approved"
    }
}
