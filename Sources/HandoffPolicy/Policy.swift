// Handoff — the risk policy: rules that map a proposed action to a decision
// type, a risk and a strategy, and say which rules matched and why. Pure
// domain code: no I/O, no transport; loading from YAML is Policy+YAML.swift.

public import Foundation
public import HandoffCore

/// Risk of an action, in increasing order; when several rules match, the highest wins.
public enum RiskLevel: Int, Sendable, Hashable, Comparable, CaseIterable, CustomStringConvertible {
    case low = 1
    case lowMedium, medium, high, critical

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    /// The name used in policy files and explanations.
    public var description: String {
        switch self {
        case .low: "low"
        case .lowMedium: "low_medium"
        case .medium: "medium"
        case .high: "high"
        case .critical: "critical"
        }
    }
}

/// The kind of decision an action represents.
public enum DecisionType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case informational, preferences, transactional, financial, legal, medical, destructive
    public var description: String { rawValue }
}

/// How an action may proceed, in increasing order of human involvement; when
/// several rules imply a strategy, the most involved wins.
public enum Strategy: Int, Sendable, Hashable, Comparable, CaseIterable, CustomStringConvertible {
    case automate = 1
    case confirm, explicitConfirm, multiFactor, escalate

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .automate: "automate"
        case .confirm: "confirm"
        case .explicitConfirm: "explicit_confirm"
        case .multiFactor: "multi_factor"
        case .escalate: "escalate"
        }
    }
}

/// An action the agent proposes (a tool call), as the policy reads it.
public struct ProposedAction: Sendable, Hashable {
    public var toolName: String
    /// The agent's own classification, a hint the policy may use.
    public var declaredType: DecisionType?
    /// The tool's arguments (a JSON object).
    public var parameters: JSONValue
    /// What the action does, in words.
    public var description: String
    /// Money the action moves, if any.
    public var amount: Decimal?
    public var currency: String
    /// The model's confidence, 0...1, if reported.
    public var confidence: Double?

    public init(
        toolName: String, declaredType: DecisionType? = nil, parameters: JSONValue = .object([:]), description: String = "",
        amount: Decimal? = nil, currency: String = "", confidence: Double? = nil
    ) {
        self.toolName = toolName
        self.declaredType = declaredType
        self.parameters = parameters
        self.description = description
        self.amount = amount
        self.currency = currency
        self.confidence = confidence
    }
}

/// The kind of rule that matched.
public enum RuleKind: String, Sendable, Hashable {
    case declaredType = "declared_type"
    case tool
    case word
    case amount
    case personalData = "personal_data"
    case confidence
    case standingDecision = "standing_decision"
    case fallback = "default"
}

/// One rule that matched, and why.
public struct MatchedRule: Sendable, Hashable, CustomStringConvertible {
    /// The rule's id in the policy, for example `amount.high`.
    public var id: String
    public var kind: RuleKind
    /// Why it matched, for example `amount 250 > 100`.
    public var explanation: String
    /// The risk this rule alone implies, if any.
    public var risk: RiskLevel?
    /// The decision type this rule alone implies, if any.
    public var decisionType: DecisionType?

    public var description: String { "\(id): \(explanation)" }

    public init(id: String, kind: RuleKind, explanation: String, risk: RiskLevel? = nil, decisionType: DecisionType? = nil) {
        self.id = id
        self.kind = kind
        self.explanation = explanation
        self.risk = risk
        self.decisionType = decisionType
    }
}

/// How an answer to a confirmation reads.
public enum ConfirmationAnswer: String, Sendable, Hashable {
    case confirmed, declined, ambiguous
}

/// The policy's verdict on an action.
public struct Assessment: Sendable, Hashable {
    public var risk: RiskLevel
    public var decisionType: DecisionType
    public var strategy: Strategy
    /// Every rule that matched, in evaluation order.
    public var matched: [MatchedRule]
    /// An automated action picked by the sampling rate for review after the fact.
    public var sampledForReview: Bool
    public var policyVersion: String

    public init(
        risk: RiskLevel, decisionType: DecisionType, strategy: Strategy, matched: [MatchedRule], sampledForReview: Bool,
        policyVersion: String
    ) {
        self.risk = risk
        self.decisionType = decisionType
        self.strategy = strategy
        self.matched = matched
        self.sampledForReview = sampledForReview
        self.policyVersion = policyVersion
    }
}

/// A risk policy. Build one from YAML (`Policy(yaml:source:)`) or use `Policy.standard`.
public struct Policy: Sendable, Hashable {
    /// What each decision type means by default.
    public struct TypeDefaults: Sendable, Hashable {
        public var risk: RiskLevel
        public var strategy: Strategy
    }

    /// Tools that imply a decision type.
    public struct ToolRule: Sendable, Hashable {
        public var id: String
        public var tools: Set<String>
        public var decisionType: DecisionType
    }

    /// Whole words (case-insensitive) in the description, the parameters' text
    /// or the tool name that imply a decision type.
    public struct WordRule: Sendable, Hashable {
        public var id: String
        /// Lower-case words; a word matches only itself ("update" does not match "updated").
        public var words: [String]
        public var decisionType: DecisionType
    }

    /// Money above a threshold raises the risk.
    public struct AmountRule: Sendable, Hashable {
        public var id: String
        public var threshold: Decimal
        public var risk: RiskLevel
    }

    /// Parameters naming personal data raise the risk to at least `risk`.
    public struct PersonalDataRule: Sendable, Hashable {
        public var id: String
        /// Lower-case parameter names, matched at any depth of the parameters.
        public var fields: Set<String>
        public var risk: RiskLevel
    }

    /// A reported confidence below the threshold forces a strategy.
    public struct ConfidenceRule: Sendable, Hashable {
        public var id: String
        public var threshold: Double
        public var strategy: Strategy
    }

    /// A tenant's standing decision about a tool ("always allow get_weather").
    public struct StandingDecision: Sendable, Hashable {
        public var id: String
        /// The tenant it applies to; `*` for every tenant.
        public var tenant: String
        public var tool: String
        public var strategy: Strategy
    }

    /// The file's version, or a hash of the file when it declares none.
    public var version: String
    public var types: [DecisionType: TypeDefaults]
    /// The least strategy each risk needs (a risk raised by the amount rule
    /// raises the strategy with it).
    public var riskStrategies: [RiskLevel: Strategy]
    /// The decision type when no rule implies one.
    public var fallbackType: DecisionType
    public var toolRules: [ToolRule]
    public var wordRules: [WordRule] {
        didSet { wordIndex = Self.index(wordRules) }
    }
    /// Word → the rules (indices into `wordRules`) that list it.
    private var wordIndex: [String: [Int]] = [:]
    public var amount: AmountRule?
    public var personalData: PersonalDataRule?
    public var confidence: ConfidenceRule?
    public var standingDecisions: [StandingDecision]
    /// Share (0...1) of automated actions also sent for review after the fact.
    public var samplingRate: Double
    /// How long an undecided pending action lives, in seconds; nil: forever.
    public var pendingExpirySeconds: Int? = 3600
    /// How the end user's answers to a confirmation are read.
    public var confirmation = Confirmation()
    /// How escalation tickets are prioritised and how long they may wait.
    public var escalation = Escalation()
    /// Approval chains: who approves what amount, and for how long.
    public var approvals = Approvals()

    /// Ticket priority from the reason's words, and the SLA of each priority.
    public struct Escalation: Sendable, Hashable {
        /// Rules in order; the first whose word is in the reason sets the
        /// priority (2 high, 3 urgent); none: normal (1).
        public var rules: [(words: [String], priority: Int)] = [
            (["payment", "payments", "security", "fraud", "breach"], 3),
            (["complaint", "complain", "frustrated", "angry", "upset"], 2),
        ]
        /// Seconds a ticket of each priority (1, 2, 3) may wait to be claimed.
        public var slaSeconds: [Int: Int] = [1: 3600, 2: 900, 3: 300]
        /// An escalation rate above this (escalations / sessions created) raises the alert.
        public var alertThreshold = 0.15
        /// The window EscalationStats uses when the caller names none.
        public var alertWindowSeconds = 86_400

        public init() {}

        public func priority(for reason: String) -> Int {
            let words = Set(Policy.words(in: reason))
            return rules.first { rule in rule.words.contains { words.contains($0) } }?.priority ?? 1
        }

        public static func == (a: Self, b: Self) -> Bool {
            a.slaSeconds == b.slaSeconds && a.rules.map(\.words) == b.rules.map(\.words) && a.rules.map(\.priority) == b.rules.map(\.priority)
                && a.alertThreshold == b.alertThreshold && a.alertWindowSeconds == b.alertWindowSeconds
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(slaSeconds)
            for rule in rules {
                hasher.combine(rule.words)
                hasher.combine(rule.priority)
            }
        }
    }

    /// The words that confirm and decline, and how long a confirmation waits.
    public struct Confirmation: Sendable, Hashable {
        /// Lower-case words or phrases (words separated by one space) that confirm.
        public var yesWords = ["yes", "y", "yeah", "yep", "sure", "ok", "okay", "confirm", "confirmed", "proceed", "go ahead", "do it", "approve"]
        /// Lower-case words or phrases that decline.
        public var noWords = ["no", "n", "nope", "nah", "cancel", "stop", "decline", "don t", "do not", "dont", "abort"]
        /// Seconds an asked confirmation waits for an answer; nil: for ever.
        public var timeoutSeconds: Int? = 600
        /// What an ambiguous answer is told, before the question again.
        public var reprompt = "Sorry, I need a clear yes or no."
        /// The agent is the end user's channel: it may relay the user's answers
        /// and codes. When false, an agent identity may not answer them.
        public var agentRelaysUser = true

        public init() {}

        /// How the user's answer reads: both or neither kind of word is
        /// ambiguous. A yes-word right after a negation ("not sure", "don't do
        /// it") does not confirm.
        public func classify(_ text: String) -> ConfirmationAnswer {
            let words = Policy.words(in: text)
            let yes = yesWords.contains { Self.contains(words, phrase: $0, unlessNegated: true) }
            let no = noWords.contains { Self.contains(words, phrase: $0, unlessNegated: false) }
            switch (yes, no) {
            case (true, false): return .confirmed
            case (false, true): return .declined
            default: return .ambiguous
            }
        }

        /// Words that turn the yes-word right after them into no yes.
        static let negations: [[String]] = [["not"], ["never"], ["dont"], ["don", "t"], ["no"]]

        static func contains(_ words: [String], phrase: String, unlessNegated: Bool) -> Bool {
            let parts = phrase.split(separator: " ").map(String.init)
            guard !parts.isEmpty, parts.count <= words.count else { return false }
            for start in 0...(words.count - parts.count) where words[start..<(start + parts.count)].elementsEqual(parts) {
                let negated =
                    unlessNegated
                    && negations.contains { negation in
                        start >= negation.count && words[(start - negation.count)..<start].elementsEqual(negation)
                    }
                if !negated { return true }
            }
            return false
        }
    }

    init(
        version: String, types: [DecisionType: TypeDefaults], riskStrategies: [RiskLevel: Strategy], fallbackType: DecisionType,
        toolRules: [ToolRule], wordRules: [WordRule], amount: AmountRule?, personalData: PersonalDataRule?,
        confidence: ConfidenceRule?, standingDecisions: [StandingDecision], samplingRate: Double
    ) {
        self.version = version
        self.types = types
        self.riskStrategies = riskStrategies
        self.fallbackType = fallbackType
        self.toolRules = toolRules
        self.wordRules = wordRules
        self.wordIndex = Self.index(wordRules)
        self.amount = amount
        self.personalData = personalData
        self.confidence = confidence
        self.standingDecisions = standingDecisions
        self.samplingRate = samplingRate
    }

    private static func index(_ rules: [WordRule]) -> [String: [Int]] {
        var index: [String: [Int]] = [:]
        for (position, rule) in rules.enumerated() {
            for word in rule.words where index[word]?.last != position { index[word, default: []].append(position) }
        }
        return index
    }

    /// Assesses `action` for `tenant`. `sample` is a uniform random number in
    /// 0..<1 (the caller's, so tests can fix it) deciding sampled review.
    public func assess(_ action: ProposedAction, tenant: String, sample: Double = 1) -> Assessment {
        var matched: [MatchedRule] = []
        matched.reserveCapacity(4)

        if let declared = action.declaredType {
            matched.append(
                MatchedRule(
                    id: "declared_type", kind: .declaredType, explanation: "the agent declared \(declared)",
                    risk: types[declared]?.risk, decisionType: declared))
        }
        for rule in toolRules where rule.tools.contains(action.toolName) {
            matched.append(
                MatchedRule(
                    id: rule.id, kind: .tool, explanation: "tool \(action.toolName)",
                    risk: types[rule.decisionType]?.risk, decisionType: rule.decisionType))
        }
        if !wordRules.isEmpty {
            // The first word of each rule found, scanning description, parameters, tool name.
            var hits = [(word: String, place: String)?](repeating: nil, count: wordRules.count)
            Self.scanWords(of: action) { word, place in
                guard let rules = wordIndex[word] else { return }
                for rule in rules where hits[rule] == nil { hits[rule] = (word, place) }
            }
            for (index, hit) in hits.enumerated() {
                guard let hit else { continue }
                let rule = wordRules[index]
                matched.append(
                    MatchedRule(
                        id: rule.id, kind: .word, explanation: "word \"\(hit.word)\" in \(hit.place)",
                        risk: types[rule.decisionType]?.risk, decisionType: rule.decisionType))
            }
        }
        if !matched.contains(where: { $0.decisionType != nil }) {
            matched.append(
                MatchedRule(
                    id: "default", kind: .fallback, explanation: "no rule named a decision type",
                    risk: types[fallbackType]?.risk, decisionType: fallbackType))
        }
        if let rule = amount, let value = action.amount, value > rule.threshold {
            let currency = action.currency.isEmpty ? "" : " \(action.currency)"
            matched.append(
                MatchedRule(
                    id: rule.id, kind: .amount, explanation: "amount \(value)\(currency) > \(rule.threshold)", risk: rule.risk))
        }
        if let rule = personalData, let field = Self.firstField(in: action.parameters, among: rule.fields) {
            matched.append(
                MatchedRule(
                    id: rule.id, kind: .personalData, explanation: "personal data field \"\(field)\" in parameters", risk: rule.risk))
        }

        // The decision type of the riskiest rule that names one (the first on a tie).
        var decisionType = fallbackType
        var typeRisk: RiskLevel?
        for rule in matched {
            guard let type = rule.decisionType else { continue }
            let risk = types[type]?.risk ?? .low
            if typeRisk == nil || risk > typeRisk! {
                decisionType = type
                typeRisk = risk
            }
        }
        let risk = matched.compactMap(\.risk).max() ?? .low
        var strategy = max(types[decisionType]?.strategy ?? .escalate, riskStrategies[risk] ?? .escalate)

        if let rule = confidence, let value = action.confidence, value < rule.threshold {
            matched.append(
                MatchedRule(
                    id: rule.id, kind: .confidence,
                    explanation: "confidence \(Self.format(value)) < \(Self.format(rule.threshold))"))
            strategy = max(strategy, rule.strategy)
        }
        if let standing = standingDecisions.first(where: { $0.tool == action.toolName && ($0.tenant == "*" || $0.tenant == tenant) }) {
            matched.append(
                MatchedRule(
                    id: standing.id, kind: .standingDecision,
                    explanation: "standing decision: \(standing.strategy) for tool \(standing.tool)"
                        + (standing.tenant == "*" ? "" : " in tenant \(standing.tenant)")))
            strategy = standing.strategy
        }
        return Assessment(
            risk: risk, decisionType: decisionType, strategy: strategy, matched: matched,
            sampledForReview: strategy == .automate && sample < samplingRate, policyVersion: version)
    }

    /// Calls `found` with every whole word of the action, lower-cased, and where it is.
    static func scanWords(of action: ProposedAction, _ found: (String, String) -> Void) {
        scan(action.description, "description", found)
        func strings(_ value: JSONValue) {
            switch value {
            case .string(let text): scan(text, "parameters", found)
            case .array(let elements): elements.forEach(strings)
            case .object(let members): members.values.forEach(strings)
            default: break
            }
        }
        strings(action.parameters)
        scan(action.toolName, "tool name", found)
    }

    /// The words of `text` (runs of letters and digits), lower-cased, in order.
    static func words(in text: String) -> [String] {
        var words: [String] = []
        scan(text, "") { word, _ in words.append(word) }
        return words
    }

    /// Splits `text` into words (runs of letters and digits), lower-cased.
    /// ASCII text takes a byte-wise path; anything else goes by Characters.
    private static func scan(_ text: String, _ place: String, _ found: (String, String) -> Void) {
        if text.utf8.allSatisfy({ $0 < 0x80 }) {
            var word: [UInt8] = []
            word.reserveCapacity(16)
            for byte in text.utf8 {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): word.append(byte)
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): word.append(byte + 32)
                default:
                    if !word.isEmpty {
                        found(String(decoding: word, as: UTF8.self), place)
                        word.removeAll(keepingCapacity: true)
                    }
                }
            }
            if !word.isEmpty { found(String(decoding: word, as: UTF8.self), place) }
            return
        }
        var word = ""
        for character in text.lowercased() {
            if character.isLetter || character.isNumber {
                word.append(character)
            } else if !word.isEmpty {
                found(word, place)
                word = ""
            }
        }
        if !word.isEmpty { found(word, place) }
    }

    /// The first parameter name (at any depth, case-insensitive) in `fields`, by sorted order.
    static func firstField(in value: JSONValue, among fields: Set<String>) -> String? {
        switch value {
        case .object(let members):
            for name in members.keys.sorted() {
                if fields.contains(name.lowercased()) { return name.lowercased() }
                if let inner = firstField(in: members[name]!, among: fields) { return inner }
            }
            return nil
        case .array(let elements):
            for element in elements {
                if let inner = firstField(in: element, among: fields) { return inner }
            }
            return nil
        default:
            return nil
        }
    }

    static func format(_ value: Double) -> String {
        String(format: "%.2f", value)
    }
}
