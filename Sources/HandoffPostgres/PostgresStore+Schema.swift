// Handoff — the PostgreSQL store: its schema, as versioned migrations run
// under an advisory lock (nodes that start together migrate once; the others
// wait, then find nothing left to do). The tables mirror the SQLite store's,
// with a tenant id on every row; what differs, and why:
// - each session's chain is extended with its row locked (`FOR UPDATE`), so
//   two nodes never append after the same event;
// - identifiers compare bytewise (COLLATE "C"), as in SQLite, so listings
//   order the same on both stores;
// - an event's feed position is `transaction id << 20 | index in the
//   transaction` (see `PostgresStore.changes`): readers take only positions
//   below the oldest transaction still running, so a position once read is
//   never undercut by a later commit, whichever node commits.

import PostgresNIO

extension PostgresStore {
    /// The migrations in the order they run; a new version is a new entry.
    static let migrations: [(version: Int, name: String, sql: [String])] = [
        (
            1, "sessions, events, turns, memories, pending actions, assessments, tickets, approvals",
            [
                """
                CREATE TABLE sessions (
                    tenant_id text COLLATE "C" NOT NULL,
                    id text COLLATE "C" NOT NULL,
                    version bigint NOT NULL,
                    state_json text NOT NULL,
                    status text NOT NULL,
                    labels_json text NOT NULL,
                    created_at_ms bigint NOT NULL,
                    updated_at_ms bigint NOT NULL,
                    last_seq bigint NOT NULL DEFAULT 0,
                    last_hash bytea,
                    PRIMARY KEY (tenant_id, id)
                )
                """,
                "CREATE INDEX sessions_by_creation ON sessions (tenant_id, created_at_ms)",
                """
                CREATE TABLE events (
                    tenant_id text COLLATE "C" NOT NULL,
                    session_id text COLLATE "C" NOT NULL,
                    seq bigint NOT NULL,
                    position bigint NOT NULL,
                    action text NOT NULL,
                    actor text NOT NULL,
                    reasoning text NOT NULL,
                    details_json text NOT NULL,
                    occurred_at_ms bigint NOT NULL,
                    prev_hash bytea NOT NULL,
                    hash bytea NOT NULL,
                    traceparent text NOT NULL DEFAULT '',
                    PRIMARY KEY (tenant_id, session_id, seq)
                )
                """,
                "CREATE UNIQUE INDEX events_by_position ON events (tenant_id, position)",
                "CREATE INDEX events_feed ON events (tenant_id, action, position)",
                "CREATE INDEX events_by_time ON events (tenant_id, occurred_at_ms, session_id, seq)",
                "CREATE INDEX events_by_action ON events (tenant_id, action, occurred_at_ms, session_id, seq)",
                """
                CREATE TABLE turns (
                    tenant_id text COLLATE "C" NOT NULL,
                    session_id text COLLATE "C" NOT NULL,
                    seq bigint NOT NULL,
                    input text NOT NULL,
                    output text NOT NULL,
                    metadata_json text NOT NULL,
                    reasoning text NOT NULL,
                    author text NOT NULL,
                    created_at_ms bigint NOT NULL,
                    PRIMARY KEY (tenant_id, session_id, seq)
                )
                """,
                """
                CREATE TABLE memories (
                    tenant_id text COLLATE "C" NOT NULL,
                    session_id text COLLATE "C" NOT NULL,
                    seq bigint NOT NULL,
                    content text NOT NULL,
                    metadata_json text NOT NULL,
                    created_at_ms bigint NOT NULL,
                    PRIMARY KEY (tenant_id, session_id, seq)
                )
                """,
                """
                CREATE TABLE pending_actions (
                    tenant_id text COLLATE "C" NOT NULL,
                    id text COLLATE "C" NOT NULL,
                    session_id text COLLATE "C" NOT NULL,
                    status text NOT NULL,
                    action_json text NOT NULL,
                    risk bigint NOT NULL,
                    decision_type text NOT NULL,
                    strategy bigint NOT NULL,
                    created_at_ms bigint NOT NULL,
                    updated_at_ms bigint NOT NULL,
                    expires_at_ms bigint NOT NULL,
                    idempotency_key text NOT NULL,
                    action_hash bytea NOT NULL,
                    assessed_version bigint NOT NULL,
                    awaiting_confirmation boolean NOT NULL DEFAULT false,
                    prompt text NOT NULL DEFAULT '',
                    reprompt_count bigint NOT NULL DEFAULT 0,
                    confirmation_expires_at_ms bigint NOT NULL DEFAULT 0,
                    release_token_hash bytea,
                    revision bigint NOT NULL DEFAULT 0,
                    mfa_code_hash bytea,
                    mfa_expires_at_ms bigint NOT NULL DEFAULT 0,
                    mfa_attempts_left bigint NOT NULL DEFAULT 0,
                    executed_at_ms bigint NOT NULL DEFAULT 0,
                    execution_key text,
                    result_json text,
                    execution_error text,
                    decided_by text NOT NULL DEFAULT '',
                    decision_comment text NOT NULL DEFAULT '',
                    PRIMARY KEY (tenant_id, id)
                )
                """,
                "CREATE INDEX pending_actions_by_session ON pending_actions (tenant_id, session_id, status)",
                """
                CREATE INDEX pending_actions_by_release_token ON pending_actions (tenant_id, release_token_hash)
                    WHERE release_token_hash IS NOT NULL
                """,
                "CREATE INDEX pending_actions_undecided ON pending_actions (created_at_ms) WHERE status = 'pending'",
                """
                CREATE TABLE assessments (
                    tenant_id text COLLATE "C" NOT NULL,
                    session_id text COLLATE "C" NOT NULL,
                    idempotency_key text NOT NULL,
                    request_hash bytea NOT NULL,
                    assessment_json text NOT NULL,
                    pending_action_id text,
                    created_at_ms bigint NOT NULL,
                    PRIMARY KEY (tenant_id, session_id, idempotency_key)
                )
                """,
                """
                CREATE TABLE tickets (
                    tenant_id text COLLATE "C" NOT NULL,
                    id text COLLATE "C" NOT NULL,
                    session_id text COLLATE "C" NOT NULL,
                    pending_action_id text NOT NULL,
                    reason text NOT NULL,
                    priority bigint NOT NULL,
                    status text NOT NULL,
                    created_by text NOT NULL,
                    assigned_to text NOT NULL,
                    created_at_ms bigint NOT NULL,
                    claimed_at_ms bigint NOT NULL,
                    resolved_at_ms bigint NOT NULL,
                    sla_deadline_ms bigint NOT NULL,
                    outcome bigint NOT NULL,
                    resolution_note text NOT NULL,
                    snapshot_json text NOT NULL,
                    revision bigint NOT NULL,
                    sla_breach_recorded boolean NOT NULL DEFAULT false,
                    queue_breached boolean NOT NULL DEFAULT false,
                    PRIMARY KEY (tenant_id, id)
                )
                """,
                "CREATE UNIQUE INDEX tickets_one_active ON tickets (tenant_id, session_id) WHERE status IN ('open', 'claimed')",
                "CREATE INDEX tickets_waiting ON tickets (tenant_id, session_id, created_at_ms) WHERE status = 'waiting'",
                "CREATE INDEX tickets_unresolved ON tickets (tenant_id, session_id) WHERE status <> 'resolved'",
                """
                CREATE INDEX tickets_queue_order ON tickets (tenant_id, queue_breached DESC, priority DESC, created_at_ms, id)
                    WHERE status <> 'resolved'
                """,
                "CREATE INDEX tickets_by_creation ON tickets (tenant_id, created_at_ms)",
                "CREATE INDEX tickets_sla ON tickets (sla_deadline_ms) WHERE status = 'open' AND NOT sla_breach_recorded",
                """
                CREATE TABLE approvals (
                    tenant_id text COLLATE "C" NOT NULL,
                    id text COLLATE "C" NOT NULL,
                    session_id text COLLATE "C" NOT NULL,
                    pending_action_id text NOT NULL,
                    action_json text NOT NULL,
                    edited_action_json text,
                    amount text NOT NULL,
                    currency text NOT NULL,
                    reason text NOT NULL,
                    requester text NOT NULL,
                    status text NOT NULL,
                    steps_json text NOT NULL,
                    current_level bigint NOT NULL,
                    due_at_ms bigint NOT NULL,
                    created_at_ms bigint NOT NULL,
                    decided_at_ms bigint NOT NULL,
                    revision bigint NOT NULL,
                    current_approvers text NOT NULL DEFAULT '',
                    PRIMARY KEY (tenant_id, id)
                )
                """,
                "CREATE UNIQUE INDEX approvals_one_pending ON approvals (tenant_id, pending_action_id) WHERE status = 'pending'",
                """
                CREATE INDEX approvals_listing ON approvals (tenant_id, (CASE WHEN due_at_ms = 0 THEN 9223372036854775807 ELSE due_at_ms END),
                    created_at_ms, id) WHERE status = 'pending'
                """,
                "CREATE INDEX approvals_due ON approvals (due_at_ms) WHERE status = 'pending' AND due_at_ms > 0",
                "CREATE TABLE feed_base (id integer PRIMARY KEY CHECK (id = 1), base bigint NOT NULL)",
            ]
        ),
        (
            // As SQLite's v20: the index by session held every action ever
            // assessed for one lookup; each refund wrote a random page of it.
            2, "only actions that wait for the user indexed by session",
            [
                "DROP INDEX pending_actions_by_session",
                """
                CREATE INDEX pending_actions_awaiting_user ON pending_actions (tenant_id, session_id)
                    WHERE status = 'pending' AND (awaiting_confirmation OR mfa_code_hash IS NOT NULL)
                """,
            ]
        ),
    ]
}
