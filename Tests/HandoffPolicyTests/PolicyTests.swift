// Handoff — the risk policy: the shipped table, each kind of rule, the
// highest risk winning, and policy files refused with line and reason.

import Foundation
import HandoffCore
import HandoffPolicy
import Testing

@Suite("Risk policy")
struct PolicyTests {
    let policy = Policy.standard

    func assess(_ action: ProposedAction, tenant: String = "acme", sample: Double = 1) -> Assessment {
        policy.assess(action, tenant: tenant, sample: sample)
    }

    @Test(
        "the shipped table: each declared decision type gets its risk and strategy",
        arguments: [
            (DecisionType.informational, RiskLevel.low, Strategy.automate),
            (.preferences, .lowMedium, .confirm),
            (.transactional, .medium, .explicitConfirm),
            (.financial, .high, .escalate),
            (.legal, .critical, .escalate),
            (.medical, .critical, .escalate),
            (.destructive, .high, .multiFactor),
        ])
    func table(_ type: DecisionType, _ risk: RiskLevel, _ strategy: Strategy) {
        let result = assess(ProposedAction(toolName: "do_it", declaredType: type))
        #expect(result.decisionType == type)
        #expect(result.risk == risk)
        #expect(result.strategy == strategy)
        #expect(result.matched.first?.kind == .declaredType)
        #expect(result.policyVersion == "handoff-standard-1")
    }

    @Test(
        "the seed scenario's actions, from tool names and words alone",
        arguments: [
            ("get_weather", "What's the weather in Paris?", nil as Decimal?, DecisionType.informational, Strategy.automate),
            ("book_flight", "Book a flight to NYC", nil, .transactional, .explicitConfirm),
            ("issue_refund", "Refund my order of 250 dollars", Decimal(250), .financial, .escalate),
            ("delete_user_data", "Delete all my data", nil, .destructive, .multiFactor),
            ("answer_question", "Is this rash a symptom of measles? What dosage?", nil, .medical, .escalate),
            ("recommend_hotel", "Suggest a hotel near the venue", nil, .preferences, .confirm),
        ])
    func scenario(_ tool: String, _ text: String, _ amount: Decimal?, _ type: DecisionType, _ strategy: Strategy) {
        let result = assess(ProposedAction(toolName: tool, description: text, amount: amount, currency: "USD"))
        #expect(result.decisionType == type, "\(result.matched)")
        #expect(result.strategy == strategy, "\(result.matched)")
    }

    @Test("words match whole words, case-insensitively, and nothing else")
    func wordBoundaries() {
        // "updated" is not "update"; "cancellation" matches because it is listed.
        #expect(assess(ProposedAction(toolName: "note", description: "I updated my notes")).decisionType == .informational)
        let cancel = assess(ProposedAction(toolName: "note", description: "Process the CANCELLATION, please."))
        #expect(cancel.decisionType == .destructive)
        #expect(cancel.matched.contains { $0.explanation == "word \"cancellation\" in description" })
        // Inside another word it does not match: "bookkeeping" is not "book", "Deleted" is listed.
        #expect(assess(ProposedAction(toolName: "note", description: "bookkeeping")).decisionType == .informational)
        #expect(assess(ProposedAction(toolName: "note", description: "Deleted!")).decisionType == .destructive)
        // Words in the parameters' text and in the tool name count too.
        let params = assess(ProposedAction(toolName: "run", parameters: .object(["what": .array([.string("refund it")])])))
        #expect(params.matched.contains { $0.explanation == "word \"refund\" in parameters" })
        #expect(assess(ProposedAction(toolName: "wipe_disk")).decisionType == .destructive)
    }

    @Test("an amount above the threshold raises the risk to high and says why")
    func amount() {
        let result = assess(ProposedAction(toolName: "book_flight", description: "Book a flight", amount: Decimal(250), currency: "USD"))
        #expect(result.risk == .high)
        #expect(result.decisionType == .transactional)
        #expect(result.strategy == .multiFactor, "high risk needs at least multi-factor")
        #expect(result.matched.contains { $0.id == "amount.high" && $0.explanation == "amount 250 USD > 100" })
        let cheap = assess(ProposedAction(toolName: "book_flight", description: "Book a flight", amount: Decimal(100)))
        #expect(cheap.risk == .medium, "100 is not above 100")
    }

    @Test("personal-data fields at any depth raise the risk to at least medium")
    func personalData() {
        let result = assess(
            ProposedAction(
                toolName: "save_profile", parameters: .object(["user": .object(["name": .string("Ann"), "SSN": .string("078-05-1120")])])))
        #expect(result.risk == .medium)
        #expect(result.strategy == .explicitConfirm)
        #expect(result.matched.contains { $0.kind == .personalData && $0.explanation == "personal data field \"ssn\" in parameters" })
        // At least medium: a critical action stays critical.
        let medical = assess(ProposedAction(toolName: "x", declaredType: .medical, parameters: .object(["medical_record": .string("r")])))
        #expect(medical.risk == .critical)
    }

    @Test("a confidence below 0.70 escalates; 0.70 itself does not")
    func confidence() {
        let low = assess(ProposedAction(toolName: "get_weather", confidence: 0.55))
        #expect(low.strategy == .escalate)
        #expect(low.matched.contains { $0.explanation == "confidence 0.55 < 0.70" })
        #expect(assess(ProposedAction(toolName: "get_weather", confidence: 0.70)).strategy == .automate)
        #expect(assess(ProposedAction(toolName: "get_weather", confidence: 0.0)).strategy == .escalate, "0.0 is a real confidence")
    }

    @Test("the highest risk wins, with every matching rule listed in order")
    func highestWins() {
        let result = assess(
            ProposedAction(
                toolName: "book_flight", declaredType: .preferences, description: "Book it and delete the old booking"))
        #expect(result.decisionType == .destructive)
        #expect(result.risk == .high)
        #expect(result.matched.map(\.kind) == [.declaredType, .word, .word])
        #expect(result.matched.map(\.id) == ["declared_type", "words.destructive", "words.transactional"])
    }

    @Test("standing decisions apply to their tenant only; sampling picks automated actions")
    func standingAndSampling() throws {
        let custom = try Policy(
            yaml: """
                standing_decisions:
                  - {id: standing.acme.refunds, tenant: acme, tool: issue_refund, strategy: automate}
                sampling_rate: 0.25
                """, source: "custom.yaml")
        let refund = ProposedAction(toolName: "issue_refund", amount: Decimal(20))
        let acme = custom.assess(refund, tenant: "acme", sample: 0.1)
        #expect(acme.strategy == .automate)
        #expect(acme.sampledForReview)
        #expect(acme.matched.last?.explanation == "standing decision: automate for tool issue_refund in tenant acme")
        #expect(!custom.assess(refund, tenant: "acme", sample: 0.3).sampledForReview)
        // A file without rules keeps the table but classifies nothing by name.
        #expect(custom.assess(refund, tenant: "globex").strategy == .automate)
        #expect(custom.assess(ProposedAction(toolName: "x", declaredType: .financial), tenant: "globex").strategy == .escalate)
        #expect(
            !Policy.standard.assess(ProposedAction(toolName: "issue_refund"), tenant: "acme", sample: 0).sampledForReview,
            "escalated actions are never 'sampled'")
        #expect(custom.version.hasPrefix("sha256:"), "a file without a version is named by its hash")
    }

    @Test(
        "a bad policy file is refused with the line, the key and the reason",
        arguments: [
            (
                "version: x\nwords:\n  - id: w\n    words: [check-in]\n    decision_type: transactional\n",
                "bad.yaml:4: words[0].words[0]: \"check-in\" is not a single word"
            ),
            (
                "version: x\namount: {id: a, threshold: lots, risk: high}\n",
                "bad.yaml:2: amount.threshold: \"lots\" is not a non-negative decimal number"
            ),
            ("version: x\nconfidence: {id: c, threshold: 70, strategy: escalate}\n", "bad.yaml:2: confidence.threshold: 70.0 is not within 0...1"),
            (
                "version: x\ntools:\n  - id: t\n    tools: [a]\n    decision_type: risky\n",
                "bad.yaml:5: tools[0].decision_type: unknown decision type \"risky\""
            ),
            ("version: x\nword:\n  - id: w\n", "bad.yaml:2: word: unknown key"),
            ("version: x\ndecision_types:\n  financial: {risk: high}\n", "bad.yaml:3: decision_types.financial: missing strategy"),
            ("version: x\nrisk_strategies: {high: pray}\n", "bad.yaml:2: risk_strategies.high: unknown strategy \"pray\""),
            ("version: [x\n", "bad.yaml: line 2:"),
            ("", "bad.yaml: the file is empty"),
            (
                "version: x\ntools:\n  - {id: same, tools: [a], decision_type: legal}\nwords:\n  - {id: same, words: [b], decision_type: legal}\n",
                "rule id \"same\" is used twice"
            ),
            (
                "version: x\napprovals:\n  chains:\n    - {above: 100, steps: [[group:nobody]]}\n",
                "approvals.chains[0].steps[0]: unknown group \"nobody\""
            ),
            ("version: x\napprovals:\n  groups: {boss: [role:agent]}\n", "bad.yaml:3: approvals.groups.boss: \"role:agent\": only role:approver"),
            (
                "version: x\napprovals:\n  chains:\n    - {above: 10, steps: [alice]}\n    - {above: 10.0, steps: [bob]}\n",
                "bad.yaml:5: approvals.chains[1].above: another chain already starts above 10.0"
            ),
            ("version: x\napprovals: {on_expiry: shrug}\n", "bad.yaml:2: approvals.on_expiry: unknown outcome \"shrug\""),
            ("version: x\napprovals: {step_timeout_seconds: soon}\n", "approvals.step_timeout_seconds: \"soon\" is not a positive number"),
            ("version: x\npending_expiry_seconds: 9999999999999999\n", "pending_expiry_seconds: 9999999999999999 seconds is more than ten years"),
            // These two overflowed `now + seconds * 1000` on every escalation.
            (
                "version: x\nescalation:\n  sla_seconds: {normal: 9223372036854775807}\n",
                "escalation.sla_seconds.normal: 9223372036854775807 seconds is more than ten years"
            ),
            (
                "version: x\nescalation: {alert_window_seconds: 9223372036854776}\n",
                "escalation.alert_window_seconds: 9223372036854776 seconds is more than ten years"
            ),
            ("version: x\nescalation: {alert_window_seconds: never}\n", "never is not a window"),
            ("version: x\napprovals: {amount_parameters: {issue_refund: \"\"}}\n", "approvals.amount_parameters.issue_refund: names no argument"),
        ])
    func badFiles(_ yaml: String, _ expected: String) {
        let error = #expect(throws: PolicyError.self) { _ = try Policy(yaml: yaml, source: "bad.yaml") }
        #expect(error?.message.contains(expected) == true, "\(String(describing: error))")
    }

    @Test("an amount takes the chain with the highest start below it; steps route by name, identity, role and group")
    func approvalChains() throws {
        let policy = try Policy(
            yaml: """
                version: x
                approvals:
                  groups: {managers: [alice], finance: ["handoff://tenant/acme/approver/bob", role:approver]}
                  chains:
                    - {above: 1000, steps: [group:managers]}
                    - {above: 10000, steps: [[group:managers, carol], [group:finance]]}
                """, source: "p.yaml"
        ).approvals
        #expect(policy.chain(for: 1000) == nil, "above is strict")
        #expect(policy.chain(for: 1000.01)?.steps == [["group:managers"]])
        #expect(policy.chain(for: 10_001)?.steps.count == 2)
        func caller(_ name: String, _ role: String = "approver", tenant: String = "acme") -> Caller {
            Caller(tenant: TenantID(tenant), identity: "handoff://tenant/\(tenant)/\(role)/\(name)", role: Role(rawValue: role)!)
        }
        #expect(policy.routes(["group:managers"], to: caller("alice")))
        #expect(!policy.routes(["group:managers"], to: caller("alice", "operator")), "a name means the approver of that name")
        #expect(!policy.routes(["group:managers"], to: caller("bob")))
        #expect(policy.routes(["group:managers", "carol"], to: caller("carol")))
        #expect(policy.routes(["group:finance"], to: caller("dave")), "role:approver is every approver of the tenant")
        #expect(!policy.routes(["group:finance"], to: caller("dave", "agent")))
        #expect(Policy.standard.approvals.chain(for: 250)?.steps == [["group:managers"]])
    }

    @Test("a policy file over 1 MiB is refused before it is parsed")
    func oversizedFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("big-\(UUID().uuidString).yaml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ("version: x\n# " + String(repeating: "y", count: Policy.maximumFileBytes)).write(toFile: path, atomically: true, encoding: .utf8)
        let error = #expect(throws: PolicyError.self) { _ = try Policy(contentsOfFile: path) }
        #expect(error?.message.contains("a policy is at most 1048576 bytes") == true, "\(String(describing: error))")
    }

    @Test("the entries that route to a caller are exactly those `routes` accepts, so a store can filter by them")
    func routingEntries() throws {
        let policy = try Policy(
            yaml: """
                version: x
                approvals:
                  groups: {managers: [alice], finance: ["handoff://tenant/acme/approver/bob", role:approver], none: [zed]}
                  chains:
                    - {above: 1000, steps: [group:managers]}
                """, source: "p.yaml"
        ).approvals
        let candidates = [
            "group:managers", "group:finance", "group:none", "alice", "bob", "zed", "role:approver", "role:agent",
            "handoff://tenant/acme/approver/alice", "handoff://tenant/acme/approver/bob", "handoff://tenant/other/approver/alice",
        ]
        for (tenant, role, name) in [
            ("acme", "approver", "alice"), ("acme", "approver", "bob"), ("other", "approver", "alice"),
            ("acme", "operator", "alice"), ("acme", "approver", "carol"),
        ] {
            let caller = Caller(tenant: TenantID(tenant), identity: "handoff://tenant/\(tenant)/\(role)/\(name)", role: Role(rawValue: role)!)
            let entries = Set(policy.entries(routingTo: caller))
            for entry in candidates {
                #expect(entries.contains(entry) == policy.routes([entry], to: caller), "\(caller.identity) and \(entry)")
            }
        }
    }

    @Test("an approver's edited amount is written into the tool's amount argument; arguments naming a third amount are refused")
    func amountEdits() throws {
        var approvals = Policy.standard.approvals
        approvals.amountParameters["wire"] = "sum"
        let original = ProposedAction(toolName: "issue_refund", parameters: .object(["order": .string("42"), "amount": .integer(250)]), amount: 250)
        var edited = original
        edited.amount = 200
        let made = try approvals.reconcile(edited, original: original).get()
        #expect(made.parameters.objectValue?["amount"] == .integer(200))
        #expect(made.parameters.objectValue?["order"] == .string("42"))
        #expect(approvals.mismatch(in: made) == nil)
        edited.parameters = .object(["order": .string("42"), "amount": .integer(999)])
        #expect(throws: AmountMismatch.self) { _ = try approvals.reconcile(edited, original: original).get() }
        // A string argument stays a string; the policy names another argument per tool.
        let wire = ProposedAction(toolName: "wire", parameters: .object(["sum": .string("10.50")]), amount: Decimal(string: "10.50"))
        var lower = wire
        lower.amount = Decimal(string: "9.25")
        #expect(try approvals.reconcile(lower, original: wire).get().parameters.objectValue?["sum"] == .string("9.25"))
        #expect(approvals.mismatch(in: ProposedAction(toolName: "issue_refund", parameters: .object(["amount": .integer(2500)]), amount: 250)) != nil)
        #expect(approvals.mismatch(in: ProposedAction(toolName: "issue_refund", parameters: .object([:]), amount: 250)) == nil)
        // Only plain money agrees: no thousands separators, exponents, signs, or a missing stated amount.
        for given: JSONValue in [
            .string("250,000"), .string("250.000.0"), .string("2.5e2"), .string("250 "), .string("-250"), .integer(-250),
            .string("250abc"), .bool(true), .null,
        ] {
            #expect(
                approvals.mismatch(in: ProposedAction(toolName: "issue_refund", parameters: .object(["amount": given]), amount: 250)) != nil,
                "\(given)")
        }
        #expect(
            approvals.mismatch(in: ProposedAction(toolName: "issue_refund", parameters: .object(["amount": .integer(1_000_000)]))) != nil,
            "an argument with no stated amount beside it")
        #expect(
            approvals.mismatch(in: ProposedAction(toolName: "issue_refund", parameters: .object(["amount": .string("250.00")]), amount: 250)) == nil)
        // A nested argument, named by a path.
        approvals.amountParameters["nested"] = "refund/amount"
        let nested = ProposedAction(toolName: "nested", parameters: .object(["refund": .object(["amount": .integer(90)])]), amount: 90)
        #expect(approvals.mismatch(in: nested) == nil)
        var lowered = nested
        lowered.amount = 50
        let madeNested = try approvals.reconcile(lowered, original: nested).get()
        #expect(madeNested.parameters.objectValue?["refund"]?.objectValue?["amount"] == .integer(50))
        // An edit that states no amount may not change the argument.
        var sneaky = original
        sneaky.amount = nil
        sneaky.parameters = .object(["order": .string("42"), "amount": .integer(9_999)])
        #expect(throws: AmountMismatch.self) { _ = try approvals.reconcile(sneaky, original: original).get() }
    }

    @Test("the shipped policy text loads and is the one Policy.standard holds")
    func shippedLoads() throws {
        #expect(try Policy(yaml: Policy.standardYAML, source: "x") == Policy.standard)
        #expect(Policy.standard.wordRules.count == 6)
    }

    @Test(
        "answers to a confirmation: yes-words, no-words, phrases; both or neither is ambiguous",
        arguments: [
            ("Yes", ConfirmationAnswer.confirmed), ("yes please!", .confirmed), ("OK, go ahead", .confirmed), ("Sure.", .confirmed),
            ("No", .declined), ("nope", .declined), ("Don't do it", .declined), ("please cancel", .declined),
            ("maybe", .ambiguous), ("hmm, what time?", .ambiguous), ("yes... no", .ambiguous), ("I'm not sure", .ambiguous),
            ("yesterday", .ambiguous), ("", .ambiguous), ("going ahead", .ambiguous), ("not ok", .ambiguous),
            ("Do not do it", .declined), ("never, no", .declined),
        ])
    func classify(_ text: String, _ expected: ConfirmationAnswer) {
        #expect(Policy.standard.confirmation.classify(text) == expected, "\(text)")
    }

    @Test("confirmation settings from the file; a word that is both yes and no is refused")
    func confirmationSettings() throws {
        let custom = try Policy(
            yaml: """
                confirmation:
                  yes_words: [si, "d'accord"]
                  no_words: [non]
                  timeout_seconds: never
                  reprompt: Oui ou non ?
                """, source: "c.yaml")
        #expect(custom.confirmation.classify("D'accord") == .confirmed)
        #expect(custom.confirmation.classify("yes") == .ambiguous, "the file replaces the word lists")
        #expect(custom.confirmation.timeoutSeconds == nil)
        #expect(custom.confirmation.reprompt == "Oui ou non ?")
        let error = #expect(throws: PolicyError.self) {
            _ = try Policy(yaml: "confirmation:\n  yes_words: [ok]\n  no_words: [OK]\n", source: "c.yaml")
        }
        #expect(error?.message == "c.yaml:2: confirmation: \"ok\" is both a yes-word and a no-word", "\(String(describing: error))")
    }
}
