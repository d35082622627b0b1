// Handoff — the client side of one connection: calls out, responses matched
// back to their callers by call id, in whatever order they complete.

import HandoffProto
import NIOCore

/// What a caller asks the connection to do.
enum ClientOutbound: Sendable {
    case start(OutboundCall)
    case cancel(CallHandle, reason: RPCError)
}

/// Names a call before it has an id: ids are given out on the event loop, in
/// the order the REQUEST frames are written, so they increase on the wire
/// (what makes a GOAWAY's "calls above N were not started" true).
final class CallHandle: Sendable {
    /// 0 until the call is started; touched only on the connection's loop.
    let id: NIOLoopBoundBox<UInt64>
    init(eventLoop: any EventLoop) { id = NIOLoopBoundBox.makeBoxSendingValue(UInt64(0), eventLoop: eventLoop) }
}

/// A call to start: its frame fields and where its answer goes.
struct OutboundCall: Sendable {
    let handle: CallHandle
    let method: String
    let payload: [UInt8]
    let timeout: TimeAmount?
    let metadata: [MetadataEntry]
    let responder: Responder

    enum Responder: Sendable {
        /// One response payload, or the call's error.
        case unary(EventLoopPromise<[UInt8]>)
        /// Each streamed payload, then the end: nil for OK, else the error.
        case stream(onMessage: @Sendable ([UInt8]) -> Void, onEnd: @Sendable (RPCError?) -> Void)
    }
}

/// Runs the calls of one client connection; the last handler of the pipeline.
final class RPCClientConnectionHandler: ChannelDuplexHandler, EndOfTickFlushing {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Never
    typealias OutboundIn = ClientOutbound
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        let responder: OutboundCall.Responder
        /// When the caller stops waiting; nil for no deadline.
        var deadline: NIODeadline?
        var timeoutMs: UInt64
    }

    private var decoder: NIOSingleStepByteToMessageProcessor<FrameDecoder>
    private let maximumFrameSize: Int
    private var pending: [UInt64: Pending] = [:]
    /// Odd ids counting up from 1, as docs/PROTOCOL.md says.
    private var nextCallID: UInt64 = 1
    private(set) var context: ChannelHandlerContext?
    /// Set by a GOAWAY: calls above it were not started by the server.
    private var goAwayLastCallID: UInt64?
    private var closed: RPCError?
    private let keepaliveInterval: TimeAmount?
    /// How long a PING may go unanswered before the connection is given up:
    /// the interval unless set. Apart from the interval, so that a tick due
    /// while a PONG is on its way (a busy thread, a slow path) does not count
    /// as a dead peer: a tick before the deadline sends nothing and waits.
    private let keepaliveTimeout: TimeAmount?
    private var keepaliveTask: RepeatedTask?
    /// When the unanswered PING was sent; nil while none is.
    private var pingSentAt: NIODeadline?
    private let state: RPCClientConnection.SharedState
    /// One timer for the calls' deadlines (see `ConnectionDeadlines`).
    private var deadlines = ConnectionDeadlines()
    /// See `EndOfTickFlushing`.
    var flushScheduled = false

    init(
        maximumFrameSize: Int, keepaliveInterval: TimeAmount?, keepaliveTimeout: TimeAmount? = nil,
        state: RPCClientConnection.SharedState
    ) {
        self.decoder = NIOSingleStepByteToMessageProcessor(
            FrameDecoder(maximumFrameSize: maximumFrameSize), maximumBufferSize: maximumFrameSize + 4 + 65_536)
        self.keepaliveInterval = keepaliveInterval
        self.keepaliveTimeout = keepaliveTimeout ?? keepaliveInterval
        self.state = state
        self.maximumFrameSize = maximumFrameSize
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { startKeepalive(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startKeepalive(context: context)
        context.fireChannelActive()
    }

    private func startKeepalive(context: ChannelHandlerContext) {
        guard let interval = keepaliveInterval, keepaliveTask == nil else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        keepaliveTask = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            bound.value.keepaliveTick()
        }
    }

    private func keepaliveTick() {
        guard let context else { return }
        if let sent = pingSentAt {
            // Still waiting: no second PING on top of the first.
            guard let timeout = keepaliveTimeout, NIODeadline.now() - sent >= timeout else { return }
            // No answer within the timeout: the peer or the path is gone.
            failAll(RPCError(code: .unavailable, message: "keepalive timed out: no PONG from the server"))
            context.close(promise: nil)
            return
        }
        pingSentAt = .now()
        writeFrame(Envelope(kind: .ping, payload: []), context: context, flush: true)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(closed ?? RPCError(code: .unavailable, message: "connection closed"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        keepaliveTask?.cancel()
        deadlines.cancel()
        failAll(RPCError(code: .unavailable, message: "connection closed"))
        self.context = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let reason = RPCError(code: .unavailable, message: "connection failed: \(error)", cause: error)
        closed = reason
        failAll(reason)
        context.close(promise: nil)
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .start(let call):
            start(call, context: context)
        case .cancel(let handle, let reason):
            let callID = handle.id.value
            if callID != 0, let call = pending.removeValue(forKey: callID) {
                complete(call.responder, .failure(reason))
                writeFrame(Envelope(kind: .cancel, callID: callID), context: context, flush: false)
            }
        }
        promise?.succeed()
    }

    private func start(_ call: OutboundCall, context: ChannelHandlerContext) {
        if let reason = closed
            ?? goAwayLastCallID.map({ _ in
                RPCError(code: .unavailable, message: "the server is shutting down this connection; call not started")
            })
        {
            complete(call.responder, .failure(reason))
            return
        }
        let id = nextCallID
        nextCallID &+= 2
        call.handle.id.value = id
        var entry = Pending(responder: call.responder, deadline: nil, timeoutMs: 0)
        if let timeout = call.timeout {
            entry.timeoutMs = UInt64(max(1, timeout.nanoseconds / 1_000_000))
            entry.deadline = .now() + timeout
        }
        let request = Envelope(
            kind: .request, callID: id, method: call.method, timeoutMs: entry.timeoutMs,
            metadata: call.metadata, payload: call.payload)
        if let refusal = writeFrame(request, context: context, flush: false) {
            complete(call.responder, .failure(refusal))
            return
        }
        pending[id] = entry
        if let deadline = entry.deadline { armDeadlineTimer(at: deadline, context: context) }
    }

    private func armDeadlineTimer(at deadline: NIODeadline, context: ChannelHandlerContext) {
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        deadlines.arm(at: deadline, on: context.eventLoop) { bound.value.expireDeadlines() }
    }

    /// Fails every call past its deadline (cancelling it on the server), then
    /// sets the timer for the earliest deadline still ahead.
    private func expireDeadlines() {
        deadlines.cancel()
        guard let context else { return }
        let (expired, next) = ConnectionDeadlines.due(pending.lazy.map { ($0.key, $0.value.deadline) }, now: .now())
        for id in expired {
            guard let call = pending.removeValue(forKey: id) else { continue }
            complete(call.responder, .failure(RPCError(code: .deadlineExceeded, message: "deadline of \(call.timeoutMs) ms exceeded")))
            writeFrame(Envelope(kind: .cancel, callID: id), context: context, flush: false)
        }
        if !expired.isEmpty { context.flush() }
        if let next { armDeadlineTimer(at: next, context: context) }
    }

    /// Flushes once at the end of the event-loop tick, however many calls
    /// asked for it in the tick.
    func flush(context: ChannelHandlerContext) {
        flushAtEndOfTick(on: context.eventLoop)
    }

    /// Writes one frame; returns why it cannot be sent (and sends nothing) when
    /// it does not encode or exceeds the frame limit the server enforces too.
    @discardableResult
    private func writeFrame(_ envelope: Envelope, context: ChannelHandlerContext, flush: Bool) -> RPCError? {
        var buffer = context.channel.allocator.buffer(capacity: 64 + envelope.payload.count)
        do {
            try buffer.writeFrame(envelope)
        } catch {
            return RPCError(code: .invalidArgument, message: "the request frame cannot be encoded: \(error.message)")
        }
        guard buffer.readableBytes - 4 <= maximumFrameSize else {
            return RPCError(
                code: .resourceExhausted,
                message: "request frame of \(buffer.readableBytes - 4) bytes exceeds the limit of \(maximumFrameSize) bytes")
        }
        if flush {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        } else {
            context.write(wrapOutboundOut(buffer), promise: nil)
        }
        return nil
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        do {
            try decoder.process(buffer: buffer) { envelope in
                self.received(envelope, context: context)
            }
        } catch {
            let message = (error as? FrameError)?.message ?? "\(error)"
            let reason = RPCError(code: .internalError, message: "bad frame from the server: \(message)")
            closed = reason
            failAll(reason)
            context.close(promise: nil)
        }
    }

    private func received(_ envelope: Envelope, context: ChannelHandlerContext) {
        switch envelope.kind {
        case .message:
            if case .stream(let onMessage, _)? = pending[envelope.callID]?.responder {
                onMessage(envelope.payload)
            }
        case .end:
            // An END for a call no longer pending crossed a CANCEL or a deadline: drop it.
            guard let call = pending.removeValue(forKey: envelope.callID) else { return }
            let code = RPCError.Code(rawValue: envelope.statusCode)
            if code == .ok {
                complete(call.responder, .success(envelope.payload))
            } else {
                complete(call.responder, .failure(RPCError(code: code, message: envelope.statusMessage)))
            }
        case .ping:
            writeFrame(Envelope(kind: .pong, callID: envelope.callID, payload: envelope.payload), context: context, flush: true)
        case .pong:
            pingSentAt = nil
        case .goaway:
            goAwayLastCallID = envelope.callID
            state.markDraining()
            let notStarted = pending.filter { $0.key > envelope.callID }
            for (id, call) in notStarted {
                pending.removeValue(forKey: id)
                complete(
                    call.responder,
                    .failure(
                        RPCError(
                            code: .unavailable, message: "the server is shutting down (\(envelope.statusMessage)); call not started")))
            }
        case .request, .cancel, .unspecified, .unrecognized:
            let reason = RPCError(code: .internalError, message: "the server sent an invalid frame kind \(envelope.kind.rawValue)")
            closed = reason
            failAll(reason)
            context.close(promise: nil)
        }
    }

    private func complete(_ responder: OutboundCall.Responder, _ result: Result<[UInt8], RPCError>) {
        switch (responder, result) {
        case (.unary(let promise), .success(let payload)):
            promise.succeed(payload)
        case (.unary(let promise), .failure(let error)):
            promise.fail(error)
        case (.stream(_, let onEnd), .success):
            onEnd(nil)
        case (.stream(_, let onEnd), .failure(let error)):
            onEnd(error)
        }
    }

    private func failAll(_ reason: RPCError) {
        state.markClosed()
        let all = pending
        pending.removeAll()
        deadlines.cancel()
        for call in all.values {
            complete(call.responder, .failure(reason))
        }
    }
}

@available(*, unavailable)
extension RPCClientConnectionHandler: Sendable {}
