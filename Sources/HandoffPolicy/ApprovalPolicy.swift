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

        /// The argument of `tool` that carries its amount: a key of the
        /// arguments, or a path of keys separated by `/` (`refund/amount`).
        public func amountParameter(for tool: String) -> String { amountParameters[tool] ?? "amount" }

        /// The value at the tool's amount argument, if the arguments have it.
        func amountArgument(of action: ProposedAction) -> JSONValue? {
            var value: JSONValue? = action.parameters
            for key in amountParameter(for: action.toolName).split(separator: "/") { value = value?.objectValue?[String(key)] }
            return value
        }

        /// `action` with `amount` written at its amount argument, keeping the argument's JSON type.
        func settingAmountArgument(_ action: ProposedAction, to amount: Decimal) -> ProposedAction {
            let path = amountParameter(for: action.toolName).split(separator: "/").map(String.init)
            func set(_ value: JSONValue, _ keys: ArraySlice<String>) -> JSONValue {
                guard let key = keys.first, case .object(var members) = value else { return value }
                if keys.count == 1 {
                    members[key] = Self.encode(amount, like: members[key] ?? .integer(0))
                } else if let inner = members[key] {
                    members[key] = set(inner, keys.dropFirst())
                }
                return .object(members)
            }
            var updated = action
            updated.parameters = set(action.parameters, path[...])
            return updated
        }

        /// An approver's edit made one consistent action: when the tool's
        /// arguments carry the amount, the argument is set to the edited
        /// amount (a number where it was one). An edit without an amount
        /// keeps the argument it had.
        /// - Returns: the action to release, or why the edit is refused (its
        ///   arguments name an amount that is neither the original nor the
        ///   edit's, or one that is not plain decimal money).
        public func reconcile(_ edited: ProposedAction, original: ProposedAction) -> Result<ProposedAction, AmountMismatch> {
            let key = amountParameter(for: edited.toolName)
            let before = amountArgument(of: original)
            guard let given = amountArgument(of: edited) ?? before else { return .success(edited) }
            guard let amount = edited.amount else {
                // No edited amount: the argument must stay what was approved.
                return given == before ? .success(edited) : .failure(AmountMismatch(parameter: key, stated: given, amount: nil))
            }
            if let stated = Self.money(given), stated != amount, stated != before.flatMap(Self.money) {
                return .failure(AmountMismatch(parameter: key, stated: given, amount: amount))
            }
            if Self.money(given) == nil { return .failure(AmountMismatch(parameter: key, stated: given, amount: amount)) }
            return .success(settingAmountArgument(edited, to: amount))
        }

        /// Why an action's amount and its amount argument disagree, or nil
        /// when they agree or the arguments carry no amount. An argument that
        /// is not plain non-negative decimal money, or one without a stated
        /// amount beside it, disagrees. Checked when an action is assessed or
        /// put to approval, and again before it is released: a tool run with
        /// the arguments must move the amount that was assessed and approved.
        public func mismatch(in action: ProposedAction) -> AmountMismatch? {
            guard let given = amountArgument(of: action) else { return nil }
            let key = amountParameter(for: action.toolName)
            guard let amount = action.amount, let stated = Self.money(given), stated == amount else {
                return AmountMismatch(parameter: key, stated: given, amount: action.amount)
            }
            return nil
        }

        /// A JSON value as money: a non-negative integer, a finite
        /// non-negative number, or a string of plain decimal digits with at
        /// most one point (`250`, `19.99`; never `250,000`, `2.5e2` or `-1`).
        static func money(_ value: JSONValue) -> Decimal? {
            switch value {
            case .integer(let n): return n >= 0 ? Decimal(n) : nil
            case .number(let n): return n >= 0 && n.isFinite ? Decimal(string: "\(n)", locale: Locale(identifier: "en_US_POSIX")) : nil
            case .string(let text):
                let parts = text.split(separator: ".", omittingEmptySubsequences: false)
                guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { (0x30...0x39).contains($0) } }) else {
                    return nil
                }
                return Decimal(string: text, locale: Locale(identifier: "en_US_POSIX"))
            default: return nil
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
            var candidates = ["role:\(caller.role.rawValue)", caller.identity]
            if let own = Principal(uri: caller.identity), own.tenant == caller.tenant, own.role == .approver { candidates.append(own.name) }
            var found = candidates.filter { Self.matches($0, caller) }
            for (name, members) in groups.sorted(by: { $0.key < $1.key }) where members.contains(where: { Self.matches($0, caller) }) {
                found.append("group:\(name)")
            }
            return found
        }

        static func matches(_ entry: String, _ caller: Caller) -> Bool {
            if entry.hasPrefix("role:") { return caller.role.rawValue == entry.dropFirst(5) }
            if entry.hasPrefix("handoff://") { return caller.identity == entry }
            // A bare name: the approver of that name in the caller's own tenant.
            return caller.role == .approver && caller.identity == Principal(tenant: caller.tenant, role: .approver, name: entry).uri
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
                let read = Principal(uri: entry)
                return read.map { !$0.isGlobal && $0.role == .approver } == true
                    ? nil : "\"\(entry)\" is not an approver identity handoff://tenant/<tenant>/approver/<name>"
            }
            let allowed = entry.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "-_.@".unicodeScalars.contains($0) }
            return !entry.isEmpty && allowed ? nil : "\"\(entry)\" is not an approver name, identity, group:<name> or role:approver"
        }
    }
}

/// An action whose amount argument says another amount than the action's
/// (or is not plain money, or has no stated amount beside it).
public struct AmountMismatch: Error, Sendable, Hashable, CustomStringConvertible {
    public var parameter: String
    public var stated: JSONValue
    public var amount: Decimal?
    public var description: String {
        let beside = amount.map { "the amount is \($0)" } ?? "the action states no amount"
        return
            "the argument \"\(parameter)\" is \(stated.serialized) but \(beside): a tool run with these arguments would not move the amount assessed and approved"
    }
}
