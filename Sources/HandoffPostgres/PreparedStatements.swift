// Handoff — the PostgreSQL store's hottest statements, prepared once per
// connection (postgres-nio keeps them) instead of parsed and planned on
// every write: the session's row locked, and an event appended with the
// session's head moved. Every write runs both.

import PostgresNIO

/// `SELECT … FOR UPDATE` of a session's head and version.
struct LockSessionStatement: PostgresPreparedStatement {
    static let name = "handoff_lock_session_v1"
    static let sql = "SELECT last_seq, last_hash, version FROM sessions WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    typealias Row = (Int64, ByteBuffer?, Int64)

    var tenant: String
    var id: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(tenant)
        bindings.append(id)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// The event inserted after the session's head, and the head (with the
/// state, when given) moved to it, in one statement; returns the event's position.
struct AppendEventStatement: PostgresPreparedStatement {
    static let name = "handoff_append_event_v1"
    static let sql = """
        WITH appended AS (
            INSERT INTO events (tenant_id, session_id, seq, position, action, actor, reasoning, details_json, occurred_at_ms,
                prev_hash, hash, traceparent)
            VALUES ($1, $2, $3, ((pg_current_xact_id()::text::bigint + $4) << 20) + $5, $6, $7, $8, $9, $10, $11, $12, $13)
            RETURNING position
        ), moved AS (
            UPDATE sessions SET last_seq = $3, last_hash = $12, version = COALESCE($14::bigint, version),
                state_json = COALESCE($15::text, state_json), updated_at_ms = COALESCE($16::bigint, updated_at_ms)
            WHERE tenant_id = $1 AND id = $2
        )
        SELECT position FROM appended
        """
    typealias Row = Int64
    static var bindingDataTypes: [PostgresDataType] {
        [.text, .text, .int8, .int8, .int8, .text, .text, .text, .text, .int8, .bytea, .bytea, .text, .int8, .text, .int8]
    }

    var tenant: String
    var sessionID: String
    var sequence: Int64
    var feedBase: Int64
    var index: Int64
    var event: NewEventFields
    var previousHash: [UInt8]
    var hash: [UInt8]
    var state: (version: Int64, json: String, updatedAtMs: Int64)?

    /// The event's columns (NewEvent is HandoffCore's; this file keeps to postgres-nio's types).
    struct NewEventFields: Sendable {
        var action, actor, reasoning, detailsJSON, traceparent: String
        var occurredAtMs: Int64
    }

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 16)
        bindings.append(tenant)
        bindings.append(sessionID)
        bindings.append(sequence)
        bindings.append(feedBase)
        bindings.append(index)
        bindings.append(event.action)
        bindings.append(event.actor)
        bindings.append(event.reasoning)
        bindings.append(event.detailsJSON)
        bindings.append(event.occurredAtMs)
        bindings.append(ByteBuffer(bytes: previousHash))
        bindings.append(ByteBuffer(bytes: hash))
        bindings.append(event.traceparent)
        bindings.append(state?.version)
        bindings.append(state?.json)
        bindings.append(state?.updatedAtMs)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Int64.self) }
}
