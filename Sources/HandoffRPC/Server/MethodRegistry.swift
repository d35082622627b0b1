// Handoff — the table of methods a server answers.

public import HandoffProto

/// Maps wire method names to handlers. The domain registers its methods here
/// with the generated descriptors (`registry.register(Health.ping) { … }`),
/// so requests and responses are typed and decoded in one place.
public struct MethodRegistry: Sendable {
    typealias UnaryBody = @Sendable ([UInt8], ServerCallContext) async throws -> [UInt8]
    typealias StreamingBody = @Sendable ([UInt8], ServerCallContext, RawResponseWriter) async throws -> Void

    enum Handler: Sendable {
        case unary(UnaryBody)
        case serverStreaming(StreamingBody)
    }

    private(set) var handlers: [String: Handler] = [:]
    /// Streams that never end on their own (a watch): a draining server ends
    /// them at once with UNAVAILABLE instead of waiting out the grace period.
    private(set) var endsOnDrain: Set<String> = []

    /// Runs before every call is dispatched, also for a method no handler
    /// serves: the place for authentication and authorization. It returns the
    /// caller's identity (handed to the handler as `ServerCallContext.identity`)
    /// or throws to end the call with that status before the request is decoded.
    public var accessCheck: (@Sendable (_ method: String, _ context: ServerCallContext) throws(RPCError) -> String?)?

    /// Runs every call's handler, given its context (after the access check):
    /// the place to bind task-locals a call's work reads, such as its trace
    /// context. nil runs the handler directly.
    public var callScope: (@Sendable (_ context: ServerCallContext, _ work: @Sendable () async throws -> [UInt8]) async throws -> [UInt8])?

    /// Told once of every call the server answered or gave up on, with its
    /// status and duration: the place for metrics and the access log.
    public var callObserver: (@Sendable (CallOutcome) -> Void)?

    public init() {}

    /// The wire names of every registered method.
    public var methodNames: [String] { handlers.keys.sorted() }

    /// Registers a unary method; a second registration replaces the first.
    public mutating func register<Request, Response>(
        _ method: UnaryMethod<Request, Response>,
        _ body: @escaping @Sendable (Request, ServerCallContext) async throws -> Response
    ) {
        handlers[method.fullName] = .unary { bytes, context in
            let request = try decodeRequest(Request.self, bytes)
            return try encodeResponse(try await body(request, context))
        }
    }

    /// Registers a server-streaming method: the body writes each response to
    /// the writer; returning ends the stream with OK, throwing with the error.
    /// `endsOnDrain`: an open-ended stream, ended with UNAVAILABLE as soon as
    /// the server starts shutting down (the client resumes elsewhere).
    public mutating func register<Request, Response>(
        _ method: ServerStreamingMethod<Request, Response>, endsOnDrain: Bool = false,
        _ body: @escaping @Sendable (Request, ServerCallContext, ResponseWriter<Response>) async throws -> Void
    ) {
        if endsOnDrain { self.endsOnDrain.insert(method.fullName) } else { self.endsOnDrain.remove(method.fullName) }
        handlers[method.fullName] = .serverStreaming { bytes, context, raw in
            let request = try decodeRequest(Request.self, bytes)
            try await body(request, context, ResponseWriter(raw: raw))
        }
    }
}

func decodeRequest<M: ProtoMessage>(_: M.Type, _ bytes: [UInt8]) throws(RPCError) -> M {
    do {
        return try M(serializedBytes: bytes)
    } catch {
        throw RPCError(code: .invalidArgument, message: "request is not a valid \(M.protoName): \(error.message)")
    }
}

func encodeResponse<M: ProtoMessage>(_ message: M) throws(RPCError) -> [UInt8] {
    do {
        return try message.serializedBytes()
    } catch {
        throw RPCError(code: .internalError, message: "the response could not be encoded", cause: error)
    }
}

/// How a call ended, for `MethodRegistry.callObserver`.
public struct CallOutcome: Sendable {
    /// Which of the server's own limits refused a call before it ran.
    public enum Refusal: String, Sendable {
        /// `max_calls_per_connection`.
        case callsPerConnection = "calls_per_connection"
        /// `max_calls_total`: the server's handler budget.
        case callsInServer = "calls_in_server"
    }

    /// The method's wire name as the client sent it (any text: a metrics
    /// label must be taken from the registered names, never from this).
    public var method: String
    /// Whether a handler is registered for `method`.
    public var registered: Bool
    public var callID: UInt64
    public var code: RPCError.Code
    public var message: String
    /// From the request's arrival to its status.
    public var duration: Duration
    /// The call's context; nil when it was refused before its context was made.
    public var context: ServerCallContext?
    public var refusal: Refusal?
}
