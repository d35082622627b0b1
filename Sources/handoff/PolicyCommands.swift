// Handoff — `handoff policy check|explain|default`: the risk policy from the
// command line, without a server or a session.

import ArgumentParser
import Foundation
import HandoffCore
import HandoffPolicy

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "The risk policy: validate a file, explain an assessment, print the shipped one.",
        subcommands: [Check.self, Explain.self, Default.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a policy file; a bad one is refused with the line and the reason (exit status 1).")
        @Argument(help: "The policy file (YAML).") var file: String

        func run() throws {
            let policy: Policy
            do {
                policy = try Policy(contentsOfFile: file)
            } catch {
                throw CommandFailure(error.message)
            }
            print(
                "\(file): ok (version \(policy.version); \(policy.toolRules.count) tool rules, "
                    + "\(policy.wordRules.count) word rules, \(policy.standingDecisions.count) standing decisions)")
        }
    }

    struct Explain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Assess an action with a policy (the shipped one unless --policy) and say which rules matched and why.")
        @Option(help: "Policy file; the shipped policy if not given.") var policy: String?
        @Option(help: "The tool the agent wants to call.") var tool: String
        @Option(help: "The agent's declared decision type: \(DecisionType.allCases.map(\.rawValue).joined(separator: ", ")).")
        var type: String?
        @Option(help: "What the action does, in words.") var description = ""
        @Option(help: "The tool's arguments, a JSON object.") var params = "{}"
        @Option(help: "Money the action moves, as decimal text.") var amount: String?
        @Option(help: "ISO 4217 currency of --amount.") var currency = ""
        @Option(help: "The model's confidence, 0 to 1.") var confidence: Double?
        @Option(help: "The tenant (for standing decisions).") var tenant = "default"
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let rules: Policy
            do {
                rules = try policy.map { try Policy(contentsOfFile: $0) } ?? .standard
            } catch {
                throw CommandFailure("\(error)")
            }
            let action = try proposedAction()
            let result = rules.assess(action, tenant: tenant)
            let matched = result.matched.map { "\($0.id) (\($0.kind.rawValue)): \($0.explanation)" }
            if json {
                try emit(
                    [
                        ("risk", result.risk.description), ("decision_type", result.decisionType.rawValue),
                        ("strategy", result.strategy.description), ("matched_rules", matched), ("policy_version", result.policyVersion),
                    ], json: true)
            } else {
                print("risk: \(result.risk)")
                print("decision_type: \(result.decisionType)")
                print("strategy: \(result.strategy)")
                print("policy_version: \(result.policyVersion)")
                print("matched_rules:")
                for line in matched { print("  - \(line)") }
            }
        }

        func proposedAction() throws -> ProposedAction {
            var declared: DecisionType?
            if let type {
                guard let value = DecisionType(rawValue: type) else {
                    throw ValidationError("--type \(type) is not one of \(DecisionType.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                declared = value
            }
            let parameters: JSONValue
            do {
                parameters = try JSONValue(parsing: params)
            } catch {
                throw ValidationError("--params is \(error.message)")
            }
            guard case .object = parameters else { throw ValidationError("--params must be a JSON object") }
            var money: Decimal?
            if let amount {
                guard let value = Decimal(string: amount, locale: Locale(identifier: "en_US_POSIX")),
                    amount.allSatisfy({ $0.isNumber || $0 == "." || $0 == "-" })
                else { throw ValidationError("--amount \(amount) is not decimal text such as 250 or 19.99") }
                money = value
            }
            if let confidence, !(0...1).contains(confidence) {
                throw ValidationError("--confidence \(confidence) is not within 0...1")
            }
            return ProposedAction(
                toolName: tool, declaredType: declared, parameters: parameters, description: description, amount: money,
                currency: currency, confidence: confidence)
        }
    }

    struct Default: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "default", abstract: "Print the shipped policy, a starting point for a file of one's own.")
        func run() { print(Policy.standardYAML) }
    }
}
