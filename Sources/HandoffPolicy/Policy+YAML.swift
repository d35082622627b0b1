// Handoff — reading a policy file. The YAML is composed into nodes that keep
// their line numbers, so every refusal names the line, the key and the reason;
// unknown keys are refused by name (a misspelt rule would otherwise be a rule
// that silently never applies).

import Crypto
import Foundation
import HandoffCore
import Yams

/// A policy file that cannot be used, with where and why.
public struct PolicyError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension Policy {
    /// Reads a policy from YAML text; `source` names it in errors (a path).
    /// Decision types and risk strategies the file leaves out keep the
    /// standard table's values; rules the file leaves out do not apply.
    public init(yaml text: String, source: String) throws(PolicyError) {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw PolicyError(message: "\(source): \(Self.describe(error))")
        } catch {
            throw PolicyError(message: "\(source): \(error)")
        }
        guard let root else { throw PolicyError(message: "\(source): the file is empty") }
        let reader = PolicyReader(source: source)
        self = try reader.policy(root, text: text)
    }

    /// The largest policy file read (1 MiB; the shipped one is about 5 KiB).
    public static let maximumFileBytes = 1 << 20

    /// Reads a policy file.
    public init(contentsOfFile path: String) throws(PolicyError) {
        let text: String
        do {
            // Checked before the YAML parser sees it: a huge file (or a device) would hold the parser and memory.
            let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
            guard size <= Self.maximumFileBytes else {
                throw PolicyError(message: "policy file \(path) is \(size) bytes; a policy is at most \(Self.maximumFileBytes) bytes")
            }
            guard let handle = FileHandle(forReadingAtPath: path) else {
                throw PolicyError(message: "cannot read policy file \(path): it does not exist or is not readable")
            }
            defer { try? handle.close() }
            let data = try handle.read(upToCount: Self.maximumFileBytes + 1) ?? Data()
            guard data.count <= Self.maximumFileBytes else {
                throw PolicyError(message: "policy file \(path) is more than \(Self.maximumFileBytes) bytes")
            }
            guard let decoded = String(data: data, encoding: .utf8) else {
                throw PolicyError(message: "policy file \(path) is not UTF-8 text")
            }
            text = decoded
        } catch let error as PolicyError {
            throw error
        } catch {
            throw PolicyError(message: "cannot read policy file \(path): \(error.localizedDescription)")
        }
        try self.init(yaml: text, source: path)
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return "line \(mark.line): \(problem)"
        default:
            return "\(error)"
        }
    }
}

/// Walks the composed YAML, naming the line and key of every problem.
private struct PolicyReader {
    let source: String

    func fail(_ node: Node?, _ path: String, _ reason: String) -> PolicyError {
        let line = node?.mark.map { ":\($0.line)" } ?? ""
        return PolicyError(message: "\(source)\(line): \(path.isEmpty ? "" : "\(path): ")\(reason)")
    }

    func policy(_ root: Node, text: String) throws(PolicyError) -> Policy {
        let keys = try mapping(
            root, "",
            allowed: [
                "version", "decision_types", "risk_strategies", "default_decision_type", "tools", "words", "amount",
                "personal_data", "confidence", "standing_decisions", "sampling_rate", "pending_expiry_seconds", "confirmation", "escalation",
                "approvals",
            ])
        var policy = Policy.standardTable
        if let node = keys["version"] {
            policy.version = try string(node, "version")
        } else {
            policy.version = "sha256:" + SHA256.hash(data: Data(text.utf8)).prefix(6).hexString
        }
        if let node = keys["decision_types"] {
            let types = try mapping(node, "decision_types", allowed: DecisionType.allCases.map(\.rawValue))
            for (name, value) in types {
                let path = "decision_types.\(name)"
                let fields = try mapping(value, path, allowed: ["risk", "strategy"], required: ["risk", "strategy"])
                policy.types[DecisionType(rawValue: name)!] = Policy.TypeDefaults(
                    risk: try risk(fields["risk"]!, "\(path).risk"), strategy: try strategy(fields["strategy"]!, "\(path).strategy"))
            }
        }
        if let node = keys["risk_strategies"] {
            let risks = try mapping(node, "risk_strategies", allowed: RiskLevel.allCases.map(\.description))
            for (name, value) in risks {
                policy.riskStrategies[RiskLevel.allCases.first { $0.description == name }!] =
                    try strategy(value, "risk_strategies.\(name)")
            }
        }
        if let node = keys["default_decision_type"] {
            policy.fallbackType = try decisionType(node, "default_decision_type")
        }
        if let node = keys["tools"] {
            policy.toolRules = []
            for (index, item) in try list(node, "tools").enumerated() {
                let path = "tools[\(index)]"
                let fields = try mapping(item, path, allowed: ["id", "tools", "decision_type"], required: ["id", "tools", "decision_type"])
                let tools = try list(fields["tools"]!, "\(path).tools").enumerated().map { (i, tool) throws(PolicyError) in
                    try string(tool, "\(path).tools[\(i)]")
                }
                policy.toolRules.append(
                    Policy.ToolRule(
                        id: try string(fields["id"]!, "\(path).id"), tools: Set(tools),
                        decisionType: try decisionType(fields["decision_type"]!, "\(path).decision_type")))
            }
        }
        if let node = keys["words"] {
            policy.wordRules = []
            for (index, item) in try list(node, "words").enumerated() {
                let path = "words[\(index)]"
                let fields = try mapping(item, path, allowed: ["id", "words", "decision_type"], required: ["id", "words", "decision_type"])
                var words: [String] = []
                for (i, wordNode) in try list(fields["words"]!, "\(path).words").enumerated() {
                    let word = try string(wordNode, "\(path).words[\(i)]").lowercased()
                    guard !word.isEmpty, word.allSatisfy({ $0.isLetter || $0.isNumber }) else {
                        throw fail(
                            wordNode, "\(path).words[\(i)]", "\"\(word)\" is not a single word (letters and digits only; rules match whole words)")
                    }
                    words.append(word)
                }
                policy.wordRules.append(
                    Policy.WordRule(
                        id: try string(fields["id"]!, "\(path).id"), words: words,
                        decisionType: try decisionType(fields["decision_type"]!, "\(path).decision_type")))
            }
        }
        if let node = keys["amount"] {
            let fields = try mapping(node, "amount", allowed: ["id", "threshold", "risk"], required: ["id", "threshold", "risk"])
            let text = try string(fields["threshold"]!, "amount.threshold")
            guard let threshold = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")), threshold >= 0,
                text.allSatisfy({ $0.isNumber || $0 == "." })
            else { throw fail(fields["threshold"], "amount.threshold", "\"\(text)\" is not a non-negative decimal number") }
            policy.amount = Policy.AmountRule(
                id: try string(fields["id"]!, "amount.id"), threshold: threshold, risk: try risk(fields["risk"]!, "amount.risk"))
        }
        if let node = keys["personal_data"] {
            let fields = try mapping(node, "personal_data", allowed: ["id", "fields", "risk"], required: ["id", "fields", "risk"])
            let names = try list(fields["fields"]!, "personal_data.fields").enumerated().map { (i, field) throws(PolicyError) in
                try string(field, "personal_data.fields[\(i)]").lowercased()
            }
            policy.personalData = Policy.PersonalDataRule(
                id: try string(fields["id"]!, "personal_data.id"), fields: Set(names),
                risk: try risk(fields["risk"]!, "personal_data.risk"))
        }
        if let node = keys["confidence"] {
            let fields = try mapping(node, "confidence", allowed: ["id", "threshold", "strategy"], required: ["id", "threshold", "strategy"])
            let threshold = try number(fields["threshold"]!, "confidence.threshold")
            guard (0...1).contains(threshold) else {
                throw fail(fields["threshold"], "confidence.threshold", "\(threshold) is not within 0...1 (0.70 means 70%)")
            }
            policy.confidence = Policy.ConfidenceRule(
                id: try string(fields["id"]!, "confidence.id"), threshold: threshold,
                strategy: try strategy(fields["strategy"]!, "confidence.strategy"))
        }
        if let node = keys["standing_decisions"] {
            policy.standingDecisions = []
            for (index, item) in try list(node, "standing_decisions").enumerated() {
                let path = "standing_decisions[\(index)]"
                let fields = try mapping(
                    item, path, allowed: ["id", "tenant", "tool", "strategy"], required: ["id", "tenant", "tool", "strategy"])
                policy.standingDecisions.append(
                    Policy.StandingDecision(
                        id: try string(fields["id"]!, "\(path).id"), tenant: try string(fields["tenant"]!, "\(path).tenant"),
                        tool: try string(fields["tool"]!, "\(path).tool"), strategy: try strategy(fields["strategy"]!, "\(path).strategy")))
            }
        }
        if let node = keys["sampling_rate"] {
            let rate = try number(node, "sampling_rate")
            guard (0...1).contains(rate) else { throw fail(node, "sampling_rate", "\(rate) is not within 0...1") }
            policy.samplingRate = rate
        }
        if let node = keys["pending_expiry_seconds"] {
            policy.pendingExpirySeconds = try secondsOrNever(node, "pending_expiry_seconds")
        }
        if let node = keys["confirmation"] {
            let fields = try mapping(
                node, "confirmation", allowed: ["yes_words", "no_words", "timeout_seconds", "reprompt", "agent_relays_user"])
            if let relays = fields["agent_relays_user"] {
                switch try string(relays, "confirmation.agent_relays_user") {
                case "true": policy.confirmation.agentRelaysUser = true
                case "false": policy.confirmation.agentRelaysUser = false
                case let other: throw fail(relays, "confirmation.agent_relays_user", "\"\(other)\" is not true or false")
                }
            }
            func phrases(_ key: String) throws(PolicyError) -> [String]? {
                guard let list = fields[key] else { return nil }
                var result: [String] = []
                for (i, item) in try self.list(list, "confirmation.\(key)").enumerated() {
                    let text = try string(item, "confirmation.\(key)[\(i)]")
                    let words = Policy.words(in: text)
                    guard !words.isEmpty else { throw fail(item, "confirmation.\(key)[\(i)]", "\"\(text)\" has no word in it") }
                    result.append(words.joined(separator: " "))
                }
                return result
            }
            if let yes = try phrases("yes_words") { policy.confirmation.yesWords = yes }
            if let no = try phrases("no_words") { policy.confirmation.noWords = no }
            let overlap = Set(policy.confirmation.yesWords).intersection(policy.confirmation.noWords)
            if let word = overlap.sorted().first {
                throw fail(node, "confirmation", "\"\(word)\" is both a yes-word and a no-word")
            }
            if let timeout = fields["timeout_seconds"] {
                policy.confirmation.timeoutSeconds = try secondsOrNever(timeout, "confirmation.timeout_seconds")
            }
            if let reprompt = fields["reprompt"] { policy.confirmation.reprompt = try string(reprompt, "confirmation.reprompt") }
        }
        if let node = keys["escalation"] {
            let fields = try mapping(node, "escalation", allowed: ["priorities", "sla_seconds", "alert_threshold", "alert_window_seconds"])
            if let threshold = fields["alert_threshold"] {
                let value = try number(threshold, "escalation.alert_threshold")
                guard (0...1).contains(value) else { throw fail(threshold, "escalation.alert_threshold", "\(value) is not within 0...1") }
                policy.escalation.alertThreshold = value
            }
            if let window = fields["alert_window_seconds"] {
                guard let seconds = try secondsOrNever(window, "escalation.alert_window_seconds") else {
                    throw fail(window, "escalation.alert_window_seconds", "never is not a window; give a number of seconds")
                }
                policy.escalation.alertWindowSeconds = seconds
            }
            let names = ["normal": 1, "high": 2, "urgent": 3]
            if let list = fields["priorities"] {
                policy.escalation.rules = []
                for (i, item) in try self.list(list, "escalation.priorities").enumerated() {
                    let path = "escalation.priorities[\(i)]"
                    let rule = try mapping(item, path, allowed: ["words", "priority"], required: ["words", "priority"])
                    let words = try self.list(rule["words"]!, "\(path).words").enumerated().map { (j, word) throws(PolicyError) in
                        try string(word, "\(path).words[\(j)]").lowercased()
                    }
                    let name = try string(rule["priority"]!, "\(path).priority")
                    guard let priority = names[name] else {
                        throw fail(rule["priority"], "\(path).priority", "unknown priority \"\(name)\" (known: normal, high, urgent)")
                    }
                    policy.escalation.rules.append((words, priority))
                }
            }
            if let sla = fields["sla_seconds"] {
                for (name, value) in try mapping(sla, "escalation.sla_seconds", allowed: ["normal", "high", "urgent"]) {
                    guard let seconds = try secondsOrNever(value, "escalation.sla_seconds.\(name)") else {
                        throw fail(value, "escalation.sla_seconds.\(name)", "never is not a claim deadline; give a number of seconds")
                    }
                    policy.escalation.slaSeconds[names[name]!] = seconds
                }
            }
        }
        if let node = keys["approvals"] { policy.approvals = try approvals(node) }
        var ids: [String: String] = [:]
        let allIDs =
            policy.toolRules.map(\.id) + policy.wordRules.map(\.id) + policy.standingDecisions.map(\.id)
            + [policy.amount?.id, policy.personalData?.id, policy.confidence?.id].compactMap { $0 }
        for id in allIDs {
            guard ids[id] == nil else { throw fail(nil, "", "rule id \"\(id)\" is used twice; ids name rules in explanations") }
            ids[id] = id
        }
        return policy
    }

    func approvals(_ node: Node) throws(PolicyError) -> Policy.Approvals {
        let fields = try mapping(
            node, "approvals",
            allowed: [
                "groups", "chains", "step_timeout_seconds", "on_expiry", "route_decision_types", "amount_parameters",
            ])
        var approvals = Policy.Approvals()
        func entries(_ node: Node, _ path: String) throws(PolicyError) -> [String] {
            let items: [Node] = if case .sequence = node { try list(node, path) } else { [node] }
            guard !items.isEmpty else { throw fail(node, path, "needs at least one approver") }
            return try items.enumerated().map { (i, item) throws(PolicyError) in try string(item, "\(path)[\(i)]") }
        }
        if let groups = fields["groups"] {
            approvals.groups = [:]
            for (name, members) in try mapping(groups, "approvals.groups", allowed: nil) {
                let path = "approvals.groups.\(name)"
                let list = try entries(members, path)
                for entry in list {
                    if entry.hasPrefix("group:") { throw fail(members, path, "a group lists approvers, not other groups (\(entry))") }
                    if let problem = Policy.Approvals.entryProblem(entry) { throw fail(members, path, problem) }
                }
                approvals.groups[name] = list
            }
        }
        if let chains = fields["chains"] {
            approvals.chains = []
            for (i, item) in try list(chains, "approvals.chains").enumerated() {
                let path = "approvals.chains[\(i)]"
                let chain = try mapping(item, path, allowed: ["above", "steps"], required: ["above", "steps"])
                let text = try string(chain["above"]!, "\(path).above")
                guard let above = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")), above >= 0, !above.isNaN else {
                    throw fail(chain["above"], "\(path).above", "\"\(text)\" is not a non-negative decimal amount")
                }
                guard !approvals.chains.contains(where: { $0.above == above }) else {
                    throw fail(chain["above"], "\(path).above", "another chain already starts above \(text)")
                }
                let stepNodes = try list(chain["steps"]!, "\(path).steps")
                guard !stepNodes.isEmpty, stepNodes.count <= 10 else { throw fail(chain["steps"], "\(path).steps", "needs 1 to 10 steps") }
                var steps: [[String]] = []
                for (j, stepNode) in stepNodes.enumerated() {
                    steps.append(try entries(stepNode, "\(path).steps[\(j)]"))
                }
                approvals.chains.append(Policy.Approvals.Chain(above: above, steps: steps))
            }
        }
        // Entries are checked once the groups are known, wherever they were written.
        for (i, chain) in approvals.chains.enumerated() {
            for (j, step) in chain.steps.enumerated() {
                for entry in step {
                    if let problem = approvals.problem(with: entry) { throw fail(fields["chains"], "approvals.chains[\(i)].steps[\(j)]", problem) }
                }
            }
        }
        if let timeout = fields["step_timeout_seconds"] {
            approvals.stepTimeoutSeconds = try secondsOrNever(timeout, "approvals.step_timeout_seconds")
        }
        if let outcome = fields["on_expiry"] {
            let text = try string(outcome, "approvals.on_expiry")
            guard let value = Policy.Approvals.ExpiryOutcome(rawValue: text) else {
                throw fail(outcome, "approvals.on_expiry", "unknown outcome \"\(text)\" (known: reject, escalate)")
            }
            approvals.onExpiry = value
        }
        if let parameters = fields["amount_parameters"] {
            for (tool, node) in try mapping(parameters, "approvals.amount_parameters", allowed: nil) {
                let name = try string(node, "approvals.amount_parameters.\(tool)")
                guard !name.isEmpty else { throw fail(node, "approvals.amount_parameters.\(tool)", "names no argument") }
                approvals.amountParameters[tool] = name
            }
        }
        if let types = fields["route_decision_types"] {
            approvals.routeDecisionTypes = []
            for (i, item) in try list(types, "approvals.route_decision_types").enumerated() {
                approvals.routeDecisionTypes.insert(try decisionType(item, "approvals.route_decision_types[\(i)]"))
            }
        }
        return approvals
    }

    // MARK: Node readers

    func mapping(_ node: Node, _ path: String, allowed: [String]?, required: [String] = []) throws(PolicyError) -> [String: Node] {
        guard case .mapping(let pairs) = node else { throw fail(node, path, "expected a mapping of keys to values") }
        var result: [String: Node] = [:]
        for (key, value) in pairs {
            guard case .scalar(let scalar) = key else { throw fail(key, path, "keys must be plain names") }
            let name = scalar.string
            if let allowed, !allowed.contains(name) {
                throw fail(key, path.isEmpty ? name : "\(path).\(name)", "unknown key (known: \(allowed.joined(separator: ", ")))")
            }
            guard result[name] == nil else { throw fail(key, path.isEmpty ? name : "\(path).\(name)", "given twice") }
            result[name] = value
        }
        for name in required where result[name] == nil {
            throw fail(node, path, "missing \(name)")
        }
        return result
    }

    func list(_ node: Node, _ path: String) throws(PolicyError) -> [Node] {
        guard case .sequence(let items) = node else { throw fail(node, path, "expected a list") }
        return Array(items)
    }

    func string(_ node: Node, _ path: String) throws(PolicyError) -> String {
        guard case .scalar(let scalar) = node else { throw fail(node, path, "expected a single value") }
        return scalar.string
    }

    /// A positive number of seconds, or nil for `never`.
    func secondsOrNever(_ node: Node, _ path: String) throws(PolicyError) -> Int? {
        let text = try string(node, path)
        if text == "never" { return nil }
        guard let seconds = Int(text), seconds > 0 else { throw fail(node, path, "\"\(text)\" is not a positive number of seconds or never") }
        guard seconds <= 315_360_000 else { throw fail(node, path, "\(seconds) seconds is more than ten years; use never") }
        return seconds
    }

    func number(_ node: Node, _ path: String) throws(PolicyError) -> Double {
        let text = try string(node, path)
        guard let value = Double(text), value.isFinite else { throw fail(node, path, "\"\(text)\" is not a number") }
        return value
    }

    func risk(_ node: Node, _ path: String) throws(PolicyError) -> RiskLevel {
        let text = try string(node, path)
        guard let level = RiskLevel.allCases.first(where: { $0.description == text }) else {
            throw fail(node, path, "unknown risk \"\(text)\" (known: \(RiskLevel.allCases.map(\.description).joined(separator: ", ")))")
        }
        return level
    }

    func strategy(_ node: Node, _ path: String) throws(PolicyError) -> Strategy {
        let text = try string(node, path)
        guard let strategy = Strategy.allCases.first(where: { $0.description == text }) else {
            throw fail(node, path, "unknown strategy \"\(text)\" (known: \(Strategy.allCases.map(\.description).joined(separator: ", ")))")
        }
        return strategy
    }

    func decisionType(_ node: Node, _ path: String) throws(PolicyError) -> DecisionType {
        let text = try string(node, path)
        guard let type = DecisionType(rawValue: text) else {
            throw fail(node, path, "unknown decision type \"\(text)\" (known: \(DecisionType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return type
    }
}
