// Handoff — the SQLite store: the schema and its migrations, in the order they ran. Each migration says why; the measurements behind them are in docs/STORAGE.md.

import Foundation
import GRDB
import HandoffCore

extension SQLiteStore {
    /// Versioned schema migrations; a new version is a new registered step.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: sessions and events") { db in
            try db.execute(
                sql: """
                    CREATE TABLE sessions (
                        tenant_id TEXT NOT NULL,
                        id TEXT NOT NULL,
                        version INTEGER NOT NULL,
                        state_json TEXT NOT NULL,
                        status TEXT NOT NULL,
                        labels_json TEXT NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        updated_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (tenant_id, id)
                    ) WITHOUT ROWID;
                    CREATE TABLE events (
                        tenant_id TEXT NOT NULL,
                        session_id TEXT NOT NULL,
                        seq INTEGER NOT NULL,
                        action TEXT NOT NULL,
                        actor TEXT NOT NULL,
                        reasoning TEXT NOT NULL,
                        details_json TEXT NOT NULL,
                        occurred_at_ms INTEGER NOT NULL,
                        prev_hash BLOB NOT NULL,
                        hash BLOB NOT NULL,
                        PRIMARY KEY (tenant_id, session_id, seq)
                    ) WITHOUT ROWID;
                    CREATE INDEX events_by_action ON events (tenant_id, action, occurred_at_ms);
                    """)
        }
        migrator.registerMigration("v2: turns and memories") { db in
            try db.execute(
                sql: """
                    CREATE TABLE turns (
                        tenant_id TEXT NOT NULL,
                        session_id TEXT NOT NULL,
                        seq INTEGER NOT NULL,
                        input TEXT NOT NULL,
                        output TEXT NOT NULL,
                        metadata_json TEXT NOT NULL,
                        reasoning TEXT NOT NULL,
                        author TEXT NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (tenant_id, session_id, seq)
                    ) WITHOUT ROWID;
                    CREATE TABLE memories (
                        tenant_id TEXT NOT NULL,
                        session_id TEXT NOT NULL,
                        seq INTEGER NOT NULL,
                        content TEXT NOT NULL,
                        metadata_json TEXT NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (tenant_id, session_id, seq)
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v3: events by time") { db in
            try db.execute(sql: "CREATE INDEX events_by_time ON events (tenant_id, occurred_at_ms, session_id, seq)")
        }
        migrator.registerMigration("v4: pending actions and assessments") { db in
            try db.execute(
                sql: """
                    CREATE TABLE pending_actions (
                        tenant_id TEXT NOT NULL,
                        id TEXT NOT NULL,
                        session_id TEXT NOT NULL,
                        status TEXT NOT NULL,
                        action_json TEXT NOT NULL,
                        risk INTEGER NOT NULL,
                        decision_type TEXT NOT NULL,
                        strategy INTEGER NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        updated_at_ms INTEGER NOT NULL,
                        expires_at_ms INTEGER NOT NULL,
                        idempotency_key TEXT NOT NULL,
                        action_hash BLOB NOT NULL,
                        assessed_version INTEGER NOT NULL,
                        PRIMARY KEY (tenant_id, id)
                    ) WITHOUT ROWID;
                    CREATE INDEX pending_actions_by_session ON pending_actions (tenant_id, session_id, status);
                    CREATE TABLE assessments (
                        tenant_id TEXT NOT NULL,
                        session_id TEXT NOT NULL,
                        idempotency_key TEXT NOT NULL,
                        request_hash BLOB NOT NULL,
                        assessment_json TEXT NOT NULL,
                        pending_action_id TEXT,
                        created_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (tenant_id, session_id, idempotency_key)
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v5: confirmations") { db in
            try db.execute(
                sql: """
                    ALTER TABLE pending_actions ADD COLUMN awaiting_confirmation INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE pending_actions ADD COLUMN prompt TEXT NOT NULL DEFAULT '';
                    ALTER TABLE pending_actions ADD COLUMN reprompt_count INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE pending_actions ADD COLUMN confirmation_expires_at_ms INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE pending_actions ADD COLUMN release_token_hash BLOB;
                    ALTER TABLE pending_actions ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
                    """)
        }
        migrator.registerMigration("v6: multi-factor codes") { db in
            try db.execute(
                sql: """
                    ALTER TABLE pending_actions ADD COLUMN mfa_code_hash BLOB;
                    ALTER TABLE pending_actions ADD COLUMN mfa_expires_at_ms INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE pending_actions ADD COLUMN mfa_attempts_left INTEGER NOT NULL DEFAULT 0;
                    """)
        }
        migrator.registerMigration("v7: executions") { db in
            try db.execute(
                sql: """
                    ALTER TABLE pending_actions ADD COLUMN executed_at_ms INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE pending_actions ADD COLUMN execution_key TEXT;
                    ALTER TABLE pending_actions ADD COLUMN result_json TEXT;
                    ALTER TABLE pending_actions ADD COLUMN execution_error TEXT;
                    CREATE INDEX pending_actions_by_release_token ON pending_actions (tenant_id, release_token_hash)
                        WHERE release_token_hash IS NOT NULL;
                    """)
        }
        migrator.registerMigration("v8: escalation tickets") { db in
            try db.execute(
                sql: """
                    CREATE TABLE tickets (
                        tenant_id TEXT NOT NULL,
                        id TEXT NOT NULL,
                        session_id TEXT NOT NULL,
                        pending_action_id TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        priority INTEGER NOT NULL,
                        status TEXT NOT NULL,
                        created_by TEXT NOT NULL,
                        assigned_to TEXT NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        claimed_at_ms INTEGER NOT NULL,
                        resolved_at_ms INTEGER NOT NULL,
                        sla_deadline_ms INTEGER NOT NULL,
                        outcome INTEGER NOT NULL,
                        resolution_note TEXT NOT NULL,
                        snapshot_json TEXT NOT NULL,
                        revision INTEGER NOT NULL,
                        PRIMARY KEY (tenant_id, id)
                    ) WITHOUT ROWID;
                    CREATE INDEX tickets_queue ON tickets (tenant_id, status, priority, created_at_ms);
                    CREATE UNIQUE INDEX tickets_one_unresolved ON tickets (tenant_id, session_id) WHERE status != 'resolved';
                    """)
        }
        migrator.registerMigration("v9: approval chains and recorded SLA breaches") { db in
            try db.execute(
                sql: """
                    CREATE TABLE approvals (
                        tenant_id TEXT NOT NULL,
                        id TEXT NOT NULL,
                        session_id TEXT NOT NULL,
                        pending_action_id TEXT NOT NULL,
                        action_json TEXT NOT NULL,
                        edited_action_json TEXT,
                        amount TEXT NOT NULL,
                        currency TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        requester TEXT NOT NULL,
                        status TEXT NOT NULL,
                        steps_json TEXT NOT NULL,
                        current_level INTEGER NOT NULL,
                        due_at_ms INTEGER NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        decided_at_ms INTEGER NOT NULL,
                        revision INTEGER NOT NULL,
                        PRIMARY KEY (tenant_id, id)
                    ) WITHOUT ROWID;
                    CREATE UNIQUE INDEX approvals_one_pending ON approvals (tenant_id, pending_action_id) WHERE status = 'pending';
                    CREATE INDEX approvals_pending ON approvals (tenant_id, status, due_at_ms, created_at_ms);
                    CREATE INDEX approvals_due ON approvals (due_at_ms) WHERE status = 'pending' AND due_at_ms > 0;
                    ALTER TABLE tickets ADD COLUMN sla_breach_recorded INTEGER NOT NULL DEFAULT 0;
                    CREATE INDEX tickets_sla ON tickets (sla_deadline_ms) WHERE status = 'open' AND sla_breach_recorded = 0;
                    """)
        }
        migrator.registerMigration("v10: who settled a pending action") { db in
            try db.execute(
                sql: """
                    ALTER TABLE pending_actions ADD COLUMN decided_by TEXT NOT NULL DEFAULT '';
                    ALTER TABLE pending_actions ADD COLUMN decision_comment TEXT NOT NULL DEFAULT '';
                    """)
        }
        migrator.registerMigration("v11: the queue's order in an index") { db in
            // ListQueue's first page must not sort the whole queue: its order
            // (recorded SLA breach of an open ticket, priority, age) is an index.
            try db.execute(
                sql: """
                    ALTER TABLE tickets ADD COLUMN queue_breached INTEGER NOT NULL DEFAULT 0;
                    UPDATE tickets SET queue_breached = (status = 'open' AND sla_breach_recorded = 1);
                    CREATE INDEX tickets_queue_order ON tickets (tenant_id, queue_breached DESC, priority DESC, created_at_ms, id)
                        WHERE status != 'resolved';
                    """)
        }
        migrator.registerMigration("v12: windows of sessions and tickets by creation time") { db in
            // EscalationStats and the escalation-rate alert count these per window.
            try db.execute(
                sql: """
                    CREATE INDEX sessions_by_creation ON sessions (tenant_id, created_at_ms);
                    CREATE INDEX tickets_by_creation ON tickets (tenant_id, created_at_ms);
                    """)
        }
        migrator.registerMigration("v13: one open or claimed ticket per session; more wait") { db in
            // A second escalated action of a session waits for the ticket in
            // hand instead of being folded into it (where nobody decided it).
            // `tickets_unresolved` keeps the lookups by session that say
            // `status != 'resolved'` off a scan of every ticket.
            try db.execute(
                sql: """
                    DROP INDEX tickets_one_unresolved;
                    CREATE UNIQUE INDEX tickets_one_active ON tickets (tenant_id, session_id) WHERE status IN ('open', 'claimed');
                    CREATE INDEX tickets_waiting ON tickets (tenant_id, session_id, created_at_ms) WHERE status = 'waiting';
                    CREATE INDEX tickets_unresolved ON tickets (tenant_id, session_id) WHERE status != 'resolved';
                    """)
        }
        migrator.registerMigration("v14: events in the order they were written") { db in
            // Kept in append order (rowid), a batch's events share the table's
            // last pages instead of one random page each (docs/STORAGE.md,
            // "Events in append order"). `events_by_action` now names the listing's
            // whole order: a WITHOUT ROWID table's index entries carried
            // (session_id, seq) implicitly, a rowid table's do not, and the
            // planner then walked every event of the tenant for one action.
            try db.execute(
                sql: """
                    CREATE TABLE events_appended (
                        position INTEGER PRIMARY KEY,
                        tenant_id TEXT NOT NULL,
                        session_id TEXT NOT NULL,
                        seq INTEGER NOT NULL,
                        action TEXT NOT NULL,
                        actor TEXT NOT NULL,
                        reasoning TEXT NOT NULL,
                        details_json TEXT NOT NULL,
                        occurred_at_ms INTEGER NOT NULL,
                        prev_hash BLOB NOT NULL,
                        hash BLOB NOT NULL
                    );
                    INSERT INTO events_appended (tenant_id, session_id, seq, action, actor, reasoning, details_json, occurred_at_ms, prev_hash, hash)
                        SELECT tenant_id, session_id, seq, action, actor, reasoning, details_json, occurred_at_ms, prev_hash, hash
                        FROM events ORDER BY occurred_at_ms, tenant_id, session_id, seq;
                    DROP TABLE events;
                    ALTER TABLE events_appended RENAME TO events;
                    CREATE UNIQUE INDEX events_by_session ON events (tenant_id, session_id, seq);
                    CREATE INDEX events_by_action ON events (tenant_id, action, occurred_at_ms, session_id, seq);
                    CREATE INDEX events_by_time ON events (tenant_id, occurred_at_ms, session_id, seq);
                    """)
        }
        migrator.registerMigration("v15: each session's head in its row; events chained by position") { db in
            // The session row holds the head of its chain (last seq, hash and
            // position) and each event the position of the session's previous
            // one, so the row is the only random page a write touches
            // (docs/STORAGE.md, "Chains by position"). Appending stays checked: the head moves only from the
            // seq it was read at.
            try db.execute(
                sql: """
                    ALTER TABLE sessions ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE sessions ADD COLUMN last_hash BLOB;
                    ALTER TABLE sessions ADD COLUMN last_position INTEGER;
                    ALTER TABLE events ADD COLUMN prev_position INTEGER;
                    UPDATE events SET prev_position = (
                        SELECT p.position FROM events p INDEXED BY events_by_session
                        WHERE p.tenant_id = events.tenant_id AND p.session_id = events.session_id AND p.seq = events.seq - 1)
                    WHERE seq > 1;
                    UPDATE sessions SET (last_seq, last_hash, last_position) = (
                        SELECT e.seq, e.hash, e.position FROM events e INDEXED BY events_by_session
                        WHERE e.tenant_id = sessions.tenant_id AND e.session_id = sessions.id ORDER BY e.seq DESC LIMIT 1)
                    WHERE EXISTS (SELECT 1 FROM events e INDEXED BY events_by_session WHERE e.tenant_id = sessions.tenant_id AND e.session_id = sessions.id);
                    DROP INDEX events_by_session;
                    """)
        }
        migrator.registerMigration("v16: the current step's approvers in a column") { db in
            // ListPendingApprovals filters by routing in SQL instead of reading
            // every pending approval of the tenant.
            try db.execute(sql: "ALTER TABLE approvals ADD COLUMN current_approvers TEXT NOT NULL DEFAULT ''")
            let rows = try Row.fetchAll(db, sql: "\(Self.approvalColumns) WHERE status = 'pending'")
            for row in rows {
                let approval = try Self.approval(row, tenant: TenantID(row[Self.approvalTenantColumn]))
                try db.execute(
                    sql: "UPDATE approvals SET current_approvers = ? WHERE tenant_id = ? AND id = ?",
                    arguments: [approval.currentApproversKey, approval.tenant.rawValue, approval.id])
            }
        }
        migrator.registerMigration("v17: the change feed's index") { db in
            // A tenant's events of one action in position (commit) order: the
            // desk feed reads its few actions after a cursor without walking
            // the state updates between.
            try db.execute(sql: "CREATE INDEX events_feed ON events (tenant_id, action, position)")
        }
        migrator.registerMigration("v18: pending approvals in listing order") { db in
            // ListPendingApprovals reads a page in this order and stops at its
            // limit, instead of sorting every pending approval of the tenant.
            try db.execute(
                sql: """
                    CREATE INDEX approvals_listing ON approvals (tenant_id, \(Self.dueKey), created_at_ms, id) WHERE status = 'pending'
                    """)
        }
        migrator.registerMigration("v19: the trace context of the call that wrote an event; undecided actions counted") { db in
            // W3C traceparent, empty when the call sent none (every event before v19).
            try db.execute(sql: "ALTER TABLE events ADD COLUMN traceparent TEXT NOT NULL DEFAULT ''")
            // The metrics' count of undecided actions, on every scrape, without a scan of every action ever assessed.
            try db.execute(sql: "CREATE INDEX pending_actions_undecided ON pending_actions (created_at_ms) WHERE status = 'pending'")
        }
        migrator.registerMigration("v20: only actions that wait for the user indexed by session") { db in
            // The index by session served one lookup (does the session wait for
            // its user?) and held every action ever assessed, keyed by session:
            // each refund handed to approvers wrote one random page of it (a
            // quarter of a group commit's WAL frames, docs/BENCHMARKS.md). Now
            // it holds only the actions that wait for a confirmation or a code.
            try db.execute(sql: "DROP INDEX pending_actions_by_session")
            // Written out, not shared with the lookup: a migration must not change once applied.
            try db.execute(
                sql: """
                    CREATE INDEX pending_actions_awaiting_user ON pending_actions (tenant_id, session_id)
                    WHERE status = 'pending' AND (awaiting_confirmation = 1 OR mfa_code_hash IS NOT NULL)
                    """)
        }
        return migrator
    }
}
