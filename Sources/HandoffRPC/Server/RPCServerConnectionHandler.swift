// Handoff — the server side of one connection: frames in, calls dispatched,
// responses out.
//
// Everything here runs on the connection's event loop. A call's handler is
// started with `Task.immediate` preferring this loop's executor, so a handler
// that does not suspend answers inside `channelRead`, and one that does
// resumes on this same thread: no hop to the global executor and back.

import HandoffProto
public import Logging
public import NIOCore

/// Serves the calls of one connection. Sits above TLS (plaintext bytes in and
/// out) and below nothing: it is the last handler of the server pipeline.
public final class RPCServerConnectionHandler: ChannelDuplexHandler, EndOfTickFlushing {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = Never
    public typealias OutboundIn = Never
    public typealias OutboundOut = ByteBuffer

    /// Limits and timeouts of one connection.
    public struct Configuration: Sendable {
        /// The largest envelope accepted (default 4 MiB).
        public var maximumFrameSize = 4 << 20
        /// Calls in flight at once; more are refused with RESOURCE_EXHAUSTED.
        public var maximumConcurrentCalls = 1024
        /// Handlers running at once across every connection that shares this
        /// configuration (one server's); more calls are refused with RESOURCE_EXHAUSTED.
        public var handlers = HandlerBudget(limit: 16_384)
        /// A connection that sends nothing for this long is closed with a
        /// GOAWAY (within a quarter more); nil never closes an idle connection.
        public var idleTimeout: TimeAmount? = .seconds(120)
        public init() {}
    }

    /// Sent down the pipeline (fireUserInboundEventTriggered) when the TLS
    /// handshake has identified the peer.
    public struct ConnectionInfoEvent: Sendable {
        public var info: ConnectionInfo
        public init(_ info: ConnectionInfo) { self.info = info }
    }

    /// Sent down the pipeline to begin a graceful close: GOAWAY now, new calls
    /// refused, the connection closed when the calls in flight have finished.
    public struct DrainEvent: Sendable {
        public init() {}
    }

    private struct Call {
        var task: Task<Void, Never>?
        let context: ServerCallContext
        /// When the client stops waiting, and the timeout it sent.
        var deadline: NIODeadline?
        var timeoutMs: UInt64 = 0
        var streaming: Bool
        let started: NIODeadline
        /// Ended with UNAVAILABLE when the connection drains (an open-ended stream).
        var endsOnDrain = false
    }

    private enum State {
        case active
        case draining
        case closed
    }

    private let registry: MethodRegistry
    private let configuration: Configuration
    private let logger: Logger
    private var decoder: NIOSingleStepByteToMessageProcessor<FrameDecoder>
    private var calls: [UInt64: Call] = [:]
    /// Calls already answered (cancelled by the client, past their deadline,
    /// or with a stream message too big) whose handlers have not returned
    /// yet: a handler need not stop at once when cancelled, so each still
    /// counts against `maximumConcurrentCalls` until it returns. Otherwise
    /// a client could start calls and cancel them, or give each a 1 ms
    /// deadline, faster than their work ends, without any bound.
    private var abandoned: Set<UInt64> = []
    private var highestCallID: UInt64 = 0
    private var state = State.active
    private var info = ConnectionInfo()
    private(set) var context: ChannelHandlerContext?
    private var executor: EventLoopTaskExecutor?
    private var inRead = false
    private var flushNeeded = false
    /// Stream message bytes written since `writeStreamMessage` last flushed.
    private var streamBytesSinceFlush = 0
    /// See `EndOfTickFlushing`.
    var flushScheduled = false
    private var readHeld = false
    private var writabilityWaiters: [EventLoopPromise<Void>] = []
    /// Reads since the idle check last ran, and how many checks in a row saw none.
    private var readsSinceIdleCheck = 0
    private var idleChecks = 0
    private var idleTask: RepeatedTask?
    /// One timer for the calls' deadlines (see `ConnectionDeadlines`).
    private var deadlines = ConnectionDeadlines()

    public init(registry: MethodRegistry, configuration: Configuration = .init(), logger: Logger) {
        self.registry = registry
        self.configuration = configuration
        self.logger = logger
        self.decoder = NIOSingleStepByteToMessageProcessor(
            FrameDecoder(maximumFrameSize: configuration.maximumFrameSize),
            maximumBufferSize: configuration.maximumFrameSize + 4 + 65_536
        )
    }

    /// Calls in flight (for tests and metrics).
    var callsInFlight: Int { calls.count }

    /// Calls answered early whose handlers still run (for tests).
    var abandonedCalls: Int { abandoned.count }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.executor = EventLoopTaskExecutor(eventLoop: context.eventLoop)
        if info.remoteAddress == nil, let address = context.channel.remoteAddress {
            info.remoteAddress = address.description
        }
        startIdleCheck(context: context)
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        idleTask?.cancel()
        cancelAll(reason: RPCError(code: .unavailable, message: "connection closed"))
        self.context = nil
    }

    /// Idle detection without a clock read per message: a check every quarter
    /// of the timeout counts reads, and four checks in a row with none close
    /// the connection (a half-open peer that vanished is found this way too).
    private func startIdleCheck(context: ChannelHandlerContext) {
        guard let timeout = configuration.idleTimeout else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let quarter = TimeAmount.nanoseconds(max(1_000_000, timeout.nanoseconds / 4))
        idleTask = context.eventLoop.scheduleRepeatedTask(initialDelay: quarter, delay: quarter) { _ in
            bound.value.idleCheck()
        }
    }

    private func idleCheck() {
        if readsSinceIdleCheck > 0 {
            readsSinceIdleCheck = 0
            idleChecks = 0
            return
        }
        idleChecks += 1
        if idleChecks >= 4, case .active = state {
            idleTask?.cancel()
            logger.debug("closing idle connection", metadata: ["remote": "\(info.remoteAddress ?? "?")"])
            sendGoAway(code: .unavailable, message: "idle timeout: nothing received")
            closeNow()
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        state = .closed
        cancelAll(reason: RPCError(code: .unavailable, message: "connection closed"))
        context.fireChannelInactive()
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A draining connection still reads: cancels and pings of calls in
        // flight matter, and new requests are answered UNAVAILABLE.
        if case .closed = state { return }
        readsSinceIdleCheck &+= 1
        processFrames(context: context, data: data)
    }

    private func processFrames(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        inRead = true
        defer { inRead = false }
        do {
            try decoder.process(buffer: buffer) { envelope in
                self.received(envelope, context: context)
            }
        } catch let error as FrameError {
            protocolViolation(code: error.code, message: error.message)
        } catch {
            protocolViolation(code: .internalError, message: "frame decoding failed")
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if flushNeeded {
            flushNeeded = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let event as ConnectionInfoEvent:
            var updated = event.info
            if updated.remoteAddress == nil { updated.remoteAddress = info.remoteAddress }
            info = updated
        case is DrainEvent:
            drain()
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)", "remote": "\(info.remoteAddress ?? "?")"])
        closeNow()
    }

    private func received(_ envelope: Envelope, context: ChannelHandlerContext) {
        switch envelope.kind {
        case .request:
            startCall(envelope, context: context)
        case .cancel:
            cancelCall(envelope.callID)
        case .ping:
            write(Envelope(kind: .pong, callID: envelope.callID, payload: envelope.payload))
        case .pong:
            break
        case .goaway:
            // The client will start nothing more; finish what is in flight, then close.
            drain(sendGoAway: false)
        case .message, .end, .unspecified, .unrecognized:
            protocolViolation(
                code: .invalidArgument,
                message: "frame kind \(envelope.kind.rawValue) is not valid from a client")
        }
    }

    // MARK: Calls

    private func startCall(_ envelope: Envelope, context: ChannelHandlerContext) {
        let id = envelope.callID
        guard id > highestCallID else {
            protocolViolation(
                code: .invalidArgument,
                message: "call id \(id) does not increase (the last was \(highestCallID)); ids are never reused")
            return
        }
        let now = NIODeadline.now()
        guard case .active = state else {
            // Above the GOAWAY's id: not started, so not counted as accepted.
            refuse(envelope, started: now, .unavailable, "the server is shutting down; call not started")
            return
        }
        highestCallID = id
        guard calls.count + abandoned.count < configuration.maximumConcurrentCalls else {
            let finishing =
                abandoned.isEmpty
                ? "" : "; \(abandoned.count) of them cancelled or past their deadline, their work still finishing"
            refuse(
                envelope, started: now, .resourceExhausted,
                "too many calls in flight on this connection (limit \(configuration.maximumConcurrentCalls)\(finishing))",
                refusal: .callsPerConnection)
            return
        }
        let deadline: NIODeadline? =
            envelope.timeoutMs > 0
            ? now + .milliseconds(Int64(clamping: envelope.timeoutMs)) : nil
        var checked = ServerCallContext(
            method: envelope.method, callID: id, metadata: envelope.metadata, deadline: deadline,
            connection: info, connectionLogger: logger)
        if let check = registry.accessCheck {
            do throws(RPCError) {
                checked.identity = try check(envelope.method, checked)
            } catch {
                refuse(envelope, started: now, error.code, error.message, context: checked)
                return
            }
        }
        let callContext = checked
        guard let handler = registry.handlers[envelope.method] else {
            refuse(envelope, started: now, .unimplemented, "unknown method \"\(envelope.method)\"", context: callContext)
            return
        }

        // The last refusal: from here the call runs, and its handler gives the place back.
        let handlers = configuration.handlers
        guard handlers.acquire() else {
            refuse(
                envelope, started: now, .resourceExhausted,
                "the server is running \(handlers.limit) calls, the most it takes at once; retry later",
                context: callContext, refusal: .callsInServer)
            return
        }

        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        var call = Call(task: nil, context: callContext, deadline: deadline, timeoutMs: envelope.timeoutMs, streaming: false, started: now)
        call.endsOnDrain = registry.endsOnDrain.contains(envelope.method)
        if let deadline { armDeadlineTimer(at: deadline, context: context) }
        let payload = envelope.payload
        var work: @Sendable () async throws -> [UInt8]
        switch handler {
        case .unary(let body):
            work = { try await body(payload, callContext) }
        case .serverStreaming(let body):
            call.streaming = true
            let writer = RawResponseWriter(callID: id, handler: bound)
            work = {
                try await body(payload, callContext, writer)
                return []
            }
        }
        if let scope = registry.callScope {
            let unscoped = work
            work = { try await scope(callContext, unscoped) }
        }
        calls[id] = call
        // Started after the call is recorded: a handler that does not suspend
        // finishes inside Task.immediate, and callFinished must find it.
        let loop = context.eventLoop
        let task = Task.immediate(executorPreference: executor) {
            // Whatever became of the call or its connection.
            defer { handlers.release() }
            let result: Result<[UInt8], any Error>
            do {
                result = .success(try await work())
            } catch {
                result = .failure(error)
            }
            if loop.inEventLoop {
                bound.value.callFinished(id, result)
            } else {
                loop.execute { bound.value.callFinished(id, result) }
            }
        }
        calls[id]?.task = task
        // Answered (and so abandoned) while Task.immediate ran it: a stream
        // whose first message was too big. Its handler may still be waiting.
        if abandoned.contains(id) { task.cancel() }
    }

    /// The handler returned or threw; answer unless the call was already ended
    /// (cancelled by the client, past its deadline, or the connection closed).
    private func callFinished(_ id: UInt64, _ result: Result<[UInt8], any Error>) {
        guard let call = calls.removeValue(forKey: id) else {
            abandoned.remove(id)
            return
        }
        switch result {
        case .success(let payload):
            write(.end(callID: id, status: .ok, message: "", payload: call.streaming ? [] : payload))
            observe(call, .ok, "")
        case .failure(let error):
            let status = status(for: error, callID: id)
            write(.end(callID: id, status: status.code, message: status.message))
            observe(call, status.code, status.message)
        }
        closeIfDrained()
    }

    /// Ends a call that never ran with `code`, and tells the observer.
    private func refuse(
        _ envelope: Envelope, started: NIODeadline, _ code: RPCError.Code, _ message: String,
        context: ServerCallContext? = nil, refusal: CallOutcome.Refusal? = nil
    ) {
        write(.end(callID: envelope.callID, status: code, message: message))
        guard let observer = registry.callObserver else { return }
        observer(
            CallOutcome(
                method: envelope.method, registered: registry.handlers[envelope.method] != nil, callID: envelope.callID,
                code: code, message: message, duration: Self.since(started), context: context, refusal: refusal))
    }

    /// Tells the observer how a call that ran has ended.
    private func observe(_ call: Call, _ code: RPCError.Code, _ message: String) {
        guard let observer = registry.callObserver else { return }
        observer(
            CallOutcome(
                method: call.context.method, registered: true, callID: call.context.callID, code: code, message: message,
                duration: Self.since(call.started), context: call.context, refusal: nil))
    }

    private static func since(_ start: NIODeadline) -> Duration {
        .nanoseconds((NIODeadline.now() - start).nanoseconds)
    }

    private func status(for error: any Error, callID: UInt64) -> RPCError {
        switch error {
        case let error as any RPCErrorConvertible:
            return error.rpcError
        case is CancellationError:
            return RPCError(code: .cancelled, message: "the call was cancelled")
        default:
            // Never leak a non-status error's text to the caller; log it here.
            logger.error("handler failed", metadata: ["call": "\(callID)", "error": "\(String(reflecting: error))"])
            return RPCError(code: .internalError, message: "internal error")
        }
    }

    private func armDeadlineTimer(at deadline: NIODeadline, context: ChannelHandlerContext) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        deadlines.arm(at: deadline, on: context.eventLoop) { bound.value.expireDeadlines() }
    }

    /// Ends every call past its deadline with DEADLINE_EXCEEDED (cancelling
    /// its handler), then sets the timer for the earliest deadline ahead.
    private func expireDeadlines() {
        deadlines.cancel()
        let (expired, next) = ConnectionDeadlines.due(calls.lazy.map { ($0.key, $0.value.deadline) }, now: .now())
        for id in expired {
            guard let call = calls.removeValue(forKey: id) else { continue }
            abandon(id, call)
            let message = "deadline of \(call.timeoutMs) ms exceeded"
            write(.end(callID: id, status: .deadlineExceeded, message: message))
            observe(call, .deadlineExceeded, message)
        }
        if let next, let context { armDeadlineTimer(at: next, context: context) }
        if !expired.isEmpty { closeIfDrained() }
    }

    private func cancelCall(_ id: UInt64) {
        guard let call = calls.removeValue(forKey: id) else { return }
        abandon(id, call)
        observe(call, .cancelled, "cancelled by the client")
        closeIfDrained()
    }

    /// Cancels the handler of a call that was just answered (or needs no
    /// answer); the call keeps its place until the handler returns.
    private func abandon(_ id: UInt64, _ call: Call) {
        abandoned.insert(id)
        call.task?.cancel()
    }

    private func cancelAll(reason: RPCError) {
        let all = calls
        calls.removeAll()
        deadlines.cancel()
        for call in all.values {
            call.task?.cancel()
            observe(call, reason.code, reason.message)
        }
        let waiters = writabilityWaiters
        writabilityWaiters.removeAll()
        for waiter in waiters { waiter.fail(reason) }
    }

    /// A streaming handler's message: written now, and the returned future
    /// completes when the connection can take more.
    func writeStreamMessage(callID: UInt64, payload: [UInt8], on loop: any EventLoop) -> EventLoopFuture<Void> {
        guard let context, calls[callID] != nil else {
            return loop.makeFailedFuture(RPCError(code: .cancelled, message: "the call has ended"))
        }
        write(Envelope(kind: .message, callID: callID, payload: payload))
        // A handler below (TLS) may hold what was written until a flush, out of
        // the channel's sight: flush every 64 KiB of stream data, so that a slow
        // reader turns the channel unwritable and the stream waits for it rather
        // than a whole stream (a backup) piling up in memory before the end of the tick.
        streamBytesSinceFlush += payload.count
        if streamBytesSinceFlush >= 64 << 10 {
            streamBytesSinceFlush = 0
            context.flush()
        }
        if context.channel.isWritable {
            return context.eventLoop.makeSucceededVoidFuture()
        }
        let promise = context.eventLoop.makePromise(of: Void.self)
        writabilityWaiters.append(promise)
        return promise.futureResult
    }

    // MARK: Outbound and flow control

    private func write(_ envelope: Envelope) {
        guard let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: 64 + envelope.payload.count)
        do {
            try buffer.writeFrame(envelope)
        } catch {
            // Only a status message with U+0000 can get here; send the status without it.
            logger.error("could not encode a frame", metadata: ["error": "\(error)"])
            buffer.clear()
            guard envelope.kind == .end || envelope.kind == .message else { return }
            try? buffer.writeFrame(.end(callID: envelope.callID, status: .internalError, message: "internal error"))
        }
        if buffer.readableBytes - 4 > configuration.maximumFrameSize, envelope.kind == .end || envelope.kind == .message {
            // The client enforces the same limit and would drop the connection.
            let size = buffer.readableBytes - 4
            buffer.clear()
            if envelope.kind == .message, let call = calls.removeValue(forKey: envelope.callID) { abandon(envelope.callID, call) }
            try? buffer.writeFrame(
                .end(
                    callID: envelope.callID, status: .resourceExhausted,
                    message: "response frame of \(size) bytes exceeds the limit of \(configuration.maximumFrameSize) bytes"))
        }
        context.write(wrapOutboundOut(buffer), promise: nil)
        scheduleFlush()
    }

    /// Responses written while reading are flushed together in
    /// channelReadComplete; others at the end of this loop tick, so replies
    /// that complete together share one syscall.
    private func scheduleFlush() {
        if inRead {
            flushNeeded = true
            return
        }
        guard let context else { return }
        flushAtEndOfTick(on: context.eventLoop)
    }

    public func read(context: ChannelHandlerContext) {
        // A client that does not read its responses gets no more requests
        // read from it: memory stays bounded by the calls in flight.
        if context.channel.isWritable {
            context.read()
        } else {
            readHeld = true
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            let waiters = writabilityWaiters
            writabilityWaiters.removeAll()
            for waiter in waiters { waiter.succeed() }
            if readHeld {
                readHeld = false
                context.read()
            }
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Closing

    private func drain(sendGoAway: Bool = true) {
        guard case .active = state else { return }
        state = .draining
        if sendGoAway {
            write(
                Envelope(
                    kind: .goaway, callID: highestCallID, statusCode: RPCError.Code.unavailable.rawValue,
                    statusMessage: "the server is shutting down"))
        }
        for (id, call) in calls where call.endsOnDrain {
            calls.removeValue(forKey: id)
            call.task?.cancel()
            let message = "the server is shutting down; watch again (from your last cursor) to resume"
            write(.end(callID: id, status: .unavailable, message: message))
            observe(call, .unavailable, message)
        }
        closeIfDrained()
    }

    private func closeIfDrained() {
        if case .draining = state, calls.isEmpty {
            closeNow()
        }
    }

    private func sendGoAway(code: RPCError.Code, message: String) {
        write(Envelope(kind: .goaway, callID: highestCallID, statusCode: code.rawValue, statusMessage: message))
    }

    private func protocolViolation(code: RPCError.Code, message: String) {
        logger.debug("protocol violation", metadata: ["reason": "\(message)", "remote": "\(info.remoteAddress ?? "?")"])
        sendGoAway(code: code, message: message)
        cancelAll(reason: RPCError(code: code, message: message))
        closeNow()
    }

    private func closeNow() {
        guard let context else { return }
        if case .closed = state { return }
        state = .closed
        flushScheduled = false
        context.flush()
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension RPCServerConnectionHandler: Sendable {}
