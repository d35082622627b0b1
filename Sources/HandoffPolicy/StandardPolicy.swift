// Handoff — the policy shipped with Handoff: the decision table of the
// product, and rules that classify common agent actions. `handoff policy
// default` prints it as a starting point for a policy file of one's own.

extension Policy {
    /// The decision table alone, without rules: what a file leaves out.
    ///
    /// | decision type | risk | strategy |
    /// |---|---|---|
    /// | informational | low | automate |
    /// | preferences | low-medium | confirm |
    /// | transactional | medium | explicit confirmation |
    /// | financial | high | escalate |
    /// | legal, medical | critical | escalate |
    /// | destructive | high | multi-factor confirmation |
    static let standardTable = Policy(
        version: "",
        types: [
            .informational: TypeDefaults(risk: .low, strategy: .automate),
            .preferences: TypeDefaults(risk: .lowMedium, strategy: .confirm),
            .transactional: TypeDefaults(risk: .medium, strategy: .explicitConfirm),
            .financial: TypeDefaults(risk: .high, strategy: .escalate),
            .legal: TypeDefaults(risk: .critical, strategy: .escalate),
            .medical: TypeDefaults(risk: .critical, strategy: .escalate),
            .destructive: TypeDefaults(risk: .high, strategy: .multiFactor),
        ],
        // A risk raised by a rule (an amount, personal data) needs at least this.
        riskStrategies: [
            .low: .automate, .lowMedium: .confirm, .medium: .explicitConfirm, .high: .multiFactor, .critical: .escalate,
        ],
        fallbackType: .informational, toolRules: [], wordRules: [], amount: nil, personalData: nil, confidence: nil,
        standingDecisions: [], samplingRate: 0)

    /// The shipped policy as YAML (what `Policy.standard` is read from).
    public static let standardYAML = """
        # Handoff risk policy. Every rule that matches is listed in the assessment
        # with why; the highest risk wins, and the most involved strategy.
        version: handoff-standard-1

        # What each decision type means: its risk and how it may proceed.
        decision_types:
          informational: {risk: low, strategy: automate}            # weather, facts
          preferences: {risk: low_medium, strategy: confirm}        # recommendations
          transactional: {risk: medium, strategy: explicit_confirm} # bookings, orders
          financial: {risk: high, strategy: escalate}               # payments, refunds
          legal: {risk: critical, strategy: escalate}               # legal advice
          medical: {risk: critical, strategy: escalate}             # medical advice, diagnosis
          destructive: {risk: high, strategy: multi_factor}         # deletions, cancellations

        # The least strategy a risk needs when a rule raises the risk by itself
        # (a booking above the amount threshold is high risk: multi-factor).
        risk_strategies:
          low: automate
          low_medium: confirm
          medium: explicit_confirm
          high: multi_factor
          critical: escalate

        # When no rule names a decision type.
        default_decision_type: informational

        # Tools whose name alone says what they are.
        tools:
          - id: tools.informational
            tools: [get_weather, get_time, lookup_fact, search_knowledge_base]
            decision_type: informational
          - id: tools.financial
            tools: [issue_refund, make_payment, charge_card, transfer_money]
            decision_type: financial
          - id: tools.destructive
            tools: [delete_account, delete_user_data, cancel_order, cancel_subscription]
            decision_type: destructive

        # Whole words, case-insensitive, in the description, the parameters' text
        # or the tool name. A word matches only itself: "update" would not match
        # "updated", so each form that matters is listed on purpose.
        words:
          - id: words.medical
            words: [diagnosis, diagnose, diagnosed, symptom, symptoms, medication, medications, prescription, dosage, dose, treatment]
            decision_type: medical
          - id: words.legal
            words: [legal, lawsuit, sue, attorney, lawyer, contract, liability]
            decision_type: legal
          - id: words.destructive
            words: [delete, deleted, deletion, erase, remove, wipe, purge, cancel, cancelled, canceled, cancellation, terminate, unsubscribe]
            decision_type: destructive
          - id: words.financial
            words: [refund, refunds, payment, payments, pay, charge, chargeback, transfer, invoice, reimburse]
            decision_type: financial
          - id: words.transactional
            words: [book, booking, order, purchase, buy, reserve, reservation, checkout, subscribe]
            decision_type: transactional
          - id: words.preferences
            words: [recommend, recommendation, recommendations, suggest, suggestion, prefer, preference, preferences]
            decision_type: preferences

        # Money above the threshold raises the risk.
        amount: {id: amount.high, threshold: 100, risk: high}

        # Parameters naming personal data (at any depth) raise the risk to at least this.
        personal_data:
          id: personal_data
          fields: [ssn, social_security_number, credit_card, card_number, cvv, password, medical_record, passport_number]
          risk: medium

        # A reported model confidence below the threshold goes to a human.
        confidence: {id: confidence.low, threshold: 0.70, strategy: escalate}

        # Standing decisions of tenants ("*": every tenant), for example:
        #   - {id: standing.acme.weather, tenant: acme, tool: get_weather, strategy: automate}
        standing_decisions: []

        # Share of automated actions also sent to operators for review after the fact.
        sampling_rate: 0.0

        # How long an undecided pending action waits before it expires (seconds, or never).
        pending_expiry_seconds: 3600

        # Reading the end user's answer to a confirmation: a yes-word (or phrase)
        # confirms, a no-word declines; both or neither re-prompts. An asked
        # confirmation expires unanswered after timeout_seconds (or never).
        confirmation:
          yes_words: [yes, y, yeah, yep, sure, ok, okay, confirm, confirmed, proceed, go ahead, do it, approve]
          no_words: [no, n, nope, nah, cancel, stop, decline, don't, do not, dont, abort]
          timeout_seconds: 600
          reprompt: Sorry, I need a clear yes or no.
          # The agent relays the end user's answers and codes (a chat agent). With
          # false, an agent identity may not answer a confirmation or enter a code.
          agent_relays_user: true

        # Escalation tickets: the first rule with a word in the reason sets the
        # priority (else normal); a ticket unclaimed past its SLA is breached and
        # rises to the top of the queue.
        escalation:
          priorities:
            - {words: [payment, payments, security, fraud, breach], priority: urgent}
            - {words: [complaint, complain, frustrated, angry, upset], priority: high}
          sla_seconds: {urgent: 300, high: 900, normal: 3600}
          # EscalationStats raises its alert above this share of sessions escalated
          # (over the last alert_window_seconds unless the caller names a window).
          alert_threshold: 0.15
          alert_window_seconds: 86400

        # Approval chains (RequestApproval, and the escalate strategy of the
        # decision types below when the action names an amount). An amount uses
        # the chain with the highest `above` it exceeds; each step lists who may
        # decide it: an approver identity (handoff://tenant/<t>/approver/<name>),
        # a bare approver name of the approval's tenant, role:approver, or
        # group:<name>. Nobody decides an approval they requested, nor two steps
        # of one chain.
        approvals:
          groups:
            managers: [role:approver]
            finance: [role:approver]
          chains:
            - {above: 0, steps: [[group:managers]]}
            - {above: 10000, steps: [[group:managers], [group:finance]]}
          # How long a step waits for its decision (seconds, or never), and what
          # then: reject (the approval expires, nothing is released) or escalate
          # (the chain moves on to its next level; the last level's expiry ends it).
          step_timeout_seconds: 86400
          on_expiry: reject
          route_decision_types: [financial]
        """

    /// The shipped policy.
    public static let standard: Policy = {
        do {
            return try Policy(yaml: standardYAML, source: "standard policy")
        } catch {
            // A test reads the same text; a broken shipped policy cannot get past it.
            preconditionFailure("the shipped policy does not load: \(error)")
        }
    }()
}
