// Handoff — handoff.v1.Sessions wired to the domain's SessionService.

import Crypto
import Foundation
public import HandoffCore
import HandoffProto
public import HandoffRPC

/// The domain's refusals as status codes: the one place they are chosen.
extension HandoffError: RPCErrorConvertible {
    public var rpcError: RPCError {
        switch self {
        case .invalid(let message): RPCError(code: .invalidArgument, message: message)
        case .notFound(let message): RPCError(code: .notFound, message: message)
        case .alreadyExists(let message): RPCError(code: .alreadyExists, message: message)
        case .staleVersion(let message): RPCError(code: .aborted, message: message)
        case .conflict(let message): RPCError(code: .failedPrecondition, message: message)
        case .forbidden(let message): RPCError(code: .permissionDenied, message: message)
        case .limitReached(let message), .volumeFull(let message): RPCError(code: .resourceExhausted, message: message)
        case .unreachable(let message): RPCError(code: .unavailable, message: message)
        case .callEnded(let message): RPCError(code: .cancelled, message: message)
        // The store's text stays in the logs; the caller learns it may retry.
        case .storeFailed: RPCError(code: .unavailable, message: "the store is unavailable; retry later", cause: self)
        }
    }
}

extension Identity {
    /// An actor as stored in records (`handoff://tenant/<t>/<role>/<name>`, or
    /// `system` for the server's own changes) as the protocol names it.
    init(actor: String) {
        if let principal = Principal(uri: actor) {
            let role: HandoffProto.Role =
                switch principal.role {
                case .agent: .agent
                case .operator: .operator
                case .approver: .approver
                case .admin: .admin
                }
            self.init(tenantID: principal.isGlobal ? "" : principal.tenant.rawValue, role: role, name: principal.name)
        } else if actor == Caller.systemIdentity {
            self.init(tenantID: "", role: .system, name: "handoffd")
        } else {
            self.init(name: actor)
        }
    }
}

extension SessionRecord {
    var proto: Session {
        Session(
            id: id, tenantID: tenant.rawValue, version: version, stateJSON: stateJSON,
            status: status == .awaitingConfirmation ? .awaitingConfirmation : status == .escalated ? .escalated : .active,
            labels: labels,
            createdAtUnixMs: createdAtMs, updatedAtUnixMs: updatedAtMs)
    }
}

extension TurnRecord {
    /// Who wrote the turn: operators' replies and the desk's own turns say so
    /// in their (canonical, sorted-key) metadata.
    var source: TurnSource {
        if metadataJSON.contains(#""source":"operator""#) { return .operator }
        if metadataJSON.contains(#""source":"system""#) { return .system }
        return .agent
    }

    func proto(tenant: TenantID) -> Turn {
        Turn(
            sessionID: sessionID, sequence: sequence, input: input, output: output, metadataJSON: metadataJSON,
            reasoning: reasoning, source: source, author: Identity(actor: author),
            createdAtUnixMs: createdAtMs)
    }
}

extension MemoryRecord {
    var proto: Memory {
        Memory(sessionID: sessionID, sequence: sequence, content: content, metadataJSON: metadataJSON, createdAtUnixMs: createdAtMs)
    }
}

extension EventRecord {
    var proto: Event {
        Event(
            sequence: sequence, sessionID: sessionID, action: event.action,
            actor: Identity(actor: event.actor), reasoning: event.reasoning,
            detailsJSON: event.detailsJSON, occurredAtUnixMs: event.occurredAtMs, prevHash: previousHash, hash: hash,
            traceparent: event.traceparent)
    }
}

/// The opaque page token of ListEvents: where the previous page ended.
/// `p:MASKED:TIME:SEQ:SESSION` when the store said where the event is
/// (one session's next page resumes its walk there), else `TIME:SEQ:SESSION`
/// (also what earlier releases issued; a time never starts with `p`).
///
/// The store's position counts every tenant's events, so it is masked: XOR
/// with an HMAC of the token's own session and seq under a key this process
/// draws at start. A caller learns nothing of other tenants' write volume
/// from it; after a restart an old token's position is wrong, is ignored by
/// the store, and its next page walks from the head (the same rows).
enum EventPageToken {
    /// The key's bytes (SymmetricKey itself is not Sendable).
    private static let key = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }

    private static func mask(sessionID: String, sequence: Int64) -> Int64 {
        let code = HMAC<SHA256>.authenticationCode(for: Data("\(sequence):\(sessionID)".utf8), using: SymmetricKey(data: key))
        return code.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) }
    }

    static func encode(_ position: EventPosition) -> String {
        let fields = "\(position.occurredAtMs):\(position.sequence):\(position.sessionID)"
        let masked = position.feedPosition.map { $0 ^ mask(sessionID: position.sessionID, sequence: position.sequence) }
        return Data((masked.map { "p:\($0):" } ?? "").appending(fields).utf8).base64EncodedString()
    }

    static func decode(_ token: String) throws(RPCError) -> EventPosition {
        let refusal = RPCError(code: .invalidArgument, message: "page_token is not one this server issued")
        guard let data = Data(base64Encoded: token), var text = String(data: data, encoding: .utf8) else { throw refusal }
        var feedPosition: Int64?
        if text.hasPrefix("p:") {
            let parts = text.dropFirst(2).split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let position = Int64(parts[0]) else { throw refusal }
            feedPosition = position
            text = String(parts[1])
        }
        let parts = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        // Sequences start at 1; a token of this server never holds less.
        guard parts.count == 3, let time = Int64(parts[0]), let sequence = Int64(parts[1]), sequence >= 1 else { throw refusal }
        let sessionID = String(parts[2])
        return EventPosition(
            occurredAtMs: time, sessionID: sessionID, sequence: sequence,
            feedPosition: feedPosition.map { $0 ^ mask(sessionID: sessionID, sequence: sequence) })
    }
}

extension MethodRegistry {
    /// Registers CreateSession, GetSession, UpdateState, AddTurn, AddMemory,
    /// GetContext and Admin/VerifyAuditChain.
    public mutating func registerSessions(_ sessions: SessionService) {
        register(Sessions.addTurn) { request, context in
            try requireSessionID(request.sessionID)
            let turn = try await sessions.addTurn(
                id: request.sessionID, input: request.input, output: request.output, metadataJSON: request.metadataJSON,
                reasoning: request.reasoning, caller: context.caller)
            return AddTurnResponse(turn: turn.proto(tenant: context.caller.tenant))
        }
        register(Sessions.addMemory) { request, context in
            try requireSessionID(request.sessionID)
            let memory = try await sessions.addMemory(
                id: request.sessionID, content: request.content, metadataJSON: request.metadataJSON,
                reasoning: request.reasoning, caller: context.caller)
            return AddMemoryResponse(memory: memory.proto)
        }
        register(Sessions.listEvents) { request, context in
            var query = EventQuery()
            query.sessionID = request.sessionID.isEmpty ? nil : request.sessionID
            query.actions = request.actions
            query.since = request.sinceUnixMs == 0 ? nil : request.sinceUnixMs
            query.until = request.untilUnixMs == 0 ? nil : request.untilUnixMs
            query.newestFirst = request.order == .newestFirst
            query.limit = try pageLimit(request.pageSize, maximum: sessions.maximumPageSize)
            query.after = request.pageToken.isEmpty ? nil : try EventPageToken.decode(request.pageToken)
            let page = try await sessions.listEvents(query: query, caller: context.caller)
            return ListEventsResponse(events: page.events.map(\.proto), nextPageToken: page.next.map(EventPageToken.encode) ?? "")
        }
        register(Sessions.getContext) { request, context in
            try requireSessionID(request.sessionID)
            let found = try await sessions.context(id: request.sessionID, turnLimit: Int(request.turnLimit), caller: context.caller)
            var session = found.session.proto
            if session.status == .escalated {
                session.escalationTicketID = try await sessions.escalationTicketID(id: request.sessionID, caller: context.caller) ?? ""
            }
            return GetContextResponse(
                session: session, turns: found.turns.map { $0.proto(tenant: found.session.tenant) },
                memories: found.memories.map(\.proto), totalTurns: found.totalTurns)
        }
        register(Admin.verifyAuditChain) { request, context in
            try requireSessionID(request.sessionID)
            let result = try await sessions.verifyAuditChain(id: request.sessionID, caller: context.caller)
            return VerifyAuditChainResponse(
                ok: result.firstBreak == nil, eventsChecked: Int64(result.eventsChecked),
                firstBrokenSequence: result.firstBreak?.sequence ?? 0, reason: result.firstBreak?.reason ?? "",
                headHash: result.headHash)
        }
        register(Sessions.createSession) { request, context in
            let record = try await sessions.create(
                id: request.sessionID, stateJSON: request.stateJSON, labels: request.labels, reasoning: request.reasoning,
                caller: context.caller)
            return CreateSessionResponse(session: record.proto)
        }
        register(Sessions.getSession) { request, context in
            try requireSessionID(request.sessionID)
            var session = try await sessions.get(id: request.sessionID, caller: context.caller).proto
            if session.status == .escalated {
                session.escalationTicketID = try await sessions.escalationTicketID(id: request.sessionID, caller: context.caller) ?? ""
            }
            return GetSessionResponse(session: session)
        }
        register(Sessions.updateState) { request, context in
            try requireSessionID(request.sessionID)
            let change: StateChange
            switch request.change {
            case .mergePatchJSON(let text):
                change = .mergePatch(try parse(text, field: "merge_patch_json"))
            case .replacementJSON(let text):
                change = .replacement(try parse(text, field: "replacement_json"))
            case nil:
                throw RPCError(code: .invalidArgument, message: "set merge_patch_json or replacement_json")
            }
            let record = try await sessions.updateState(
                id: request.sessionID, change: change, reasoning: request.reasoning,
                expectedVersion: request.expectedVersion, caller: context.caller)
            return UpdateStateResponse(version: record.version, stateJSON: record.stateJSON)
        }
    }
}

private func requireSessionID(_ id: String) throws(RPCError) {
    guard !id.isEmpty else { throw RPCError(code: .invalidArgument, message: "session_id is required") }
}

private func parse(_ text: String, field: String) throws(RPCError) -> JSONValue {
    do {
        return try JSONValue(parsing: text)
    } catch {
        throw RPCError(code: .invalidArgument, message: "\(field) is \(error.message)")
    }
}
