// Handoff — TLSHandler: TLS over OpenSSL as a SwiftNIO duplex handler.
//
// Ciphertext from the socket goes into OpenSSL's memory BIO; plaintext comes
// out and goes up the pipeline, and back the other way. `TLSStateMachine`
// decides, this file carries out, `OpenSSLConnection` talks to libssl.
// Everything runs on the channel's event loop: no locks, no hops.
public import NIOCore

/// TLS for one connection, client or server depending on the context.
///
/// Add it first in the pipeline (closest to the socket). It
/// - starts the handshake when the channel becomes active (a client sends its
///   ClientHello at once) and fails it after ``TLSConfiguration/handshakeTimeout``;
/// - fires ``TLSUserEvent/handshakeCompleted(_:)`` inbound once, when the
///   handshake is done and before any plaintext is passed on;
/// - buffers plaintext written before that and sends it right after;
/// - completes a write's promise when its ciphertext has been written;
/// - on `close`, sends close_notify, flushes, then closes the channel; answers
///   a peer's close_notify with its own and closes;
/// - reports every failure as a ``TLSError`` through `fireErrorCaught`, then
///   closes. End of stream without close_notify after the handshake is
///   ``TLSError/Code/unexpectedEOF``.
public final class TLSHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private struct PendingWrite {
        var data: ByteBuffer
        var promise: EventLoopPromise<Void>?
    }

    /// Writes smaller than this are copied together and sealed as one TLS record.
    private static let coalescingLimit = 16 * 1024

    private let configuration: TLSConfiguration
    private let connection: OpenSSLConnection?
    private let setupError: TLSError?
    private var stateMachine = TLSStateMachine()
    private var pendingWrites = MarkedCircularBuffer<PendingWrite>(initialCapacity: 8)
    private var handshakeTimer: Scheduled<Void>?
    private var closeTimer: Scheduled<Void>?
    private var pendingClosePromise: EventLoopPromise<Void>?
    /// Reused to coalesce small writes; taken out while in use (no CoW copy).
    private var coalescingBuffer: ByteBuffer?

    /// What the handshake established, once it has completed (event loop only).
    public private(set) var sessionInfo: TLSSessionInfo?

    /// - Parameter context: the shared OpenSSL context; its configuration's
    ///   role decides whether this end is the client or the server.
    public init(context: TLSContext) {
        self.configuration = context.configuration
        do {
            self.connection = try OpenSSLConnection(context: context.native)
            self.setupError = nil
        } catch {
            self.connection = nil
            self.setupError = error
        }
    }

    /// The connection, which exists whenever the state machine is past `idle`
    /// (`startHandshake` fails the handler otherwise).
    private var openSSL: OpenSSLConnection {
        guard let connection = self.connection else {
            preconditionFailure("TLSHandler: no OpenSSL connection after a failed setup")
        }
        return connection
    }

    // MARK: Lifecycle

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive, case .startHandshake = self.stateMachine.channelActive() {
            self.startHandshake(context: context)
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.cancelTimers()
        self.failPendingWrites(TLSError(code: .closed, message: "TLS handler removed"))
    }

    public func channelActive(context: ChannelHandlerContext) {
        // Fired first so that, if the handshake fails at once, later handlers
        // see active before inactive.
        context.fireChannelActive()
        if case .startHandshake = self.stateMachine.channelActive() {
            self.startHandshake(context: context)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        let action = self.stateMachine.channelInactive()
        self.cancelTimers()
        let closedError = TLSError(code: .closed, message: "connection closed")
        switch action {
        case .fireError(let error):
            self.failPendingWrites(error)
            context.fireErrorCaught(error)
        case .cleanUp:
            self.failPendingWrites(closedError)
        }
        // The channel is closed, which is what a pending close asked for.
        if let promise = self.pendingClosePromise {
            self.pendingClosePromise = nil
            promise.succeed()
        }
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            switch self.stateMachine.inputClosed() {
            case .fail(let error):
                self.fail(context: context, error: error)
                return
            case .none:
                break
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: Handshake

    private func startHandshake(context: ChannelHandlerContext) {
        guard self.connection != nil else {
            let error = self.setupError ?? TLSError(code: .configuration, message: "TLS connection setup failed")
            if case .fail(let error) = self.stateMachine.failed(error) {
                self.fail(context: context, error: error)
            }
            return
        }
        let timeout = self.configuration.handshakeTimeout
        self.handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.handshakeTimerFired(context: context, timeout: timeout)
        }
        self.stepHandshake(context: context)
    }

    private func handshakeTimerFired(context: ChannelHandlerContext, timeout: TimeAmount) {
        self.handshakeTimer = nil
        let milliseconds = timeout.nanoseconds / 1_000_000
        if case .fail(let error) = self.stateMachine.handshakeTimedOut(after: "\(milliseconds) ms") {
            self.fail(context: context, error: error)
        }
    }

    private func stepHandshake(context: ChannelHandlerContext) {
        let connection = self.openSSL
        switch self.stateMachine.handshakeStepped(connection.handshake()) {
        case .sendAndWait:
            self.sendCiphertext(context: context)
        case .completeHandshake:
            self.handshakeTimer?.cancel()
            self.handshakeTimer = nil
            let info = connection.sessionInfo()
            self.sessionInfo = info
            context.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(info))
            // Writes flushed during the handshake ride in the same socket
            // write as our last handshake flight (the BIO keeps them in order).
            if self.pendingWrites.hasMark, self.stateMachine.isReadingPlaintext {
                self.encryptAndFlush(context: context)
            } else {
                self.sendCiphertext(context: context)
            }
            // The peer may have sent data right behind its last flight.
            if self.stateMachine.isReadingPlaintext {
                self.readPlaintext(context: context)
            }
        case .fail(let error):
            self.fail(context: context, error: error)
        case .none:
            break
        }
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let ciphertext = self.unwrapInboundIn(data)
        switch self.stateMachine.channelRead() {
        case .discard:
            return
        case .startHandshakeAndFeed:
            guard self.feed(context: context, ciphertext) else { return }
            self.startHandshake(context: context)
        case .feedAndContinueHandshake:
            guard self.feed(context: context, ciphertext) else { return }
            self.stepHandshake(context: context)
        case .feedAndReadPlaintext:
            guard self.feed(context: context, ciphertext) else { return }
            self.readPlaintext(context: context)
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
    }

    private func feed(context: ChannelHandlerContext, _ ciphertext: ByteBuffer) -> Bool {
        guard let connection = self.connection else {
            // Setup failed: startHandshake reports it.
            return true
        }
        if let error = connection.feed(ciphertext: ciphertext) {
            if case .fail(let error) = self.stateMachine.failed(error) {
                self.fail(context: context, error: error)
            }
            return false
        }
        return true
    }

    /// Decrypts everything buffered, firing one `channelRead` per filled buffer.
    private func readPlaintext(context: ChannelHandlerContext) {
        let connection = self.openSSL
        var buffer: ByteBuffer? = nil
        readLoop: while connection.hasBufferedInput {
            if buffer == nil {
                buffer = context.channel.allocator.buffer(capacity: connection.plaintextCapacityHint)
            }
            switch connection.readPlaintext(into: &buffer!) {
            case .bytes:
                if buffer!.writableBytes == 0 {
                    context.fireChannelRead(self.wrapInboundOut(buffer.take()!))
                    guard self.stateMachine.isReadingPlaintext else { return }
                }
            case .wantRead:
                break readLoop
            case .closeNotify:
                self.deliver(context: context, &buffer)
                switch self.stateMachine.closeNotifyReceived() {
                case .sendCloseNotifyAndClose:
                    self.sendCloseNotifyAndClose(context: context, mode: .all)
                case .fail(let error):
                    self.fail(context: context, error: error)
                case .none:
                    break
                }
                return
            case .failed(let error):
                // What was decrypted before the failure was authenticated: pass it on.
                self.deliver(context: context, &buffer)
                if case .fail(let error) = self.stateMachine.failed(error) {
                    self.fail(context: context, error: error)
                }
                return
            }
        }
        self.deliver(context: context, &buffer)
        // Post-handshake messages (a key update) may have produced output.
        if connection.pendingCiphertextCount > 0, self.stateMachine.isReadingPlaintext {
            self.sendCiphertext(context: context)
        }
    }

    private func deliver(context: ChannelHandlerContext, _ buffer: inout ByteBuffer?) {
        if let plaintext = buffer.take(), plaintext.readableBytes > 0, self.stateMachine.isReadingPlaintext {
            context.fireChannelRead(self.wrapInboundOut(plaintext))
        }
    }

    // MARK: Outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.stateMachine.write() {
        case .buffer:
            self.pendingWrites.append(PendingWrite(data: self.unwrapOutboundIn(data), promise: promise))
        case .fail(let error):
            promise?.fail(error)
        }
    }

    public func flush(context: ChannelHandlerContext) {
        switch self.stateMachine.flush() {
        case .encryptAndFlush:
            self.pendingWrites.mark()
            self.encryptAndFlush(context: context)
        case .flushAfterHandshake:
            self.pendingWrites.mark()
        case .none:
            break
        }
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .input {
            context.close(mode: mode, promise: promise)
            return
        }
        switch self.stateMachine.closeRequested() {
        case .sendCloseNotifyAndClose:
            self.pendingClosePromise = promise
            self.pendingWrites.mark()
            self.sendCloseNotifyAndClose(context: context, mode: mode)
        case .closeNow:
            self.cancelTimers()
            self.failPendingWrites(TLSError(code: .closed, message: "TLS connection closed before the handshake completed"))
            context.close(mode: mode, promise: promise)
        case .joinPendingClose:
            if let promise {
                if let pending = self.pendingClosePromise {
                    pending.futureResult.cascade(to: promise)
                } else {
                    self.pendingClosePromise = promise
                }
            }
        }
    }

    /// Sends flushed writes, then close_notify, in one socket write, and
    /// closes the channel once that is written (or after the handshake
    /// timeout, should the peer stop reading).
    private func sendCloseNotifyAndClose(context: ChannelHandlerContext, mode: CloseMode) {
        let connection = self.openSSL
        let (dataPromise, error) = self.encryptFlushedWrites(connection, allocator: context.channel.allocator)
        if let error {
            dataPromise?.fail(error)
            if case .fail(let error) = self.stateMachine.failed(error) {
                self.fail(context: context, error: error)
            }
            return
        }
        connection.shutdown()
        var ciphertext = context.channel.allocator.buffer(capacity: connection.pendingCiphertextCount)
        connection.drainCiphertext(into: &ciphertext)
        let written = dataPromise ?? context.eventLoop.makePromise(of: Void.self)
        self.closeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: self.configuration.handshakeTimeout) {
            self.closeTimer = nil
            self.finishClose(context: context, mode: mode)
        }
        written.futureResult.assumeIsolated().whenComplete { _ in
            self.finishClose(context: context, mode: mode)
        }
        context.write(self.wrapOutboundOut(ciphertext), promise: written)
        context.flush()
    }

    private func finishClose(context: ChannelHandlerContext, mode: CloseMode) {
        self.closeTimer?.cancel()
        self.closeTimer = nil
        let promise = self.pendingClosePromise
        self.pendingClosePromise = nil
        guard context.channel.isActive || promise != nil else { return }
        context.close(mode: mode, promise: promise)
    }

    /// Encrypts the flushed writes and sends them, behind anything OpenSSL
    /// already queued (such as the last handshake flight), in one socket write.
    private func encryptAndFlush(context: ChannelHandlerContext) {
        let connection = self.openSSL
        let (promise, error) = self.encryptFlushedWrites(connection, allocator: context.channel.allocator)
        if let error {
            promise?.fail(error)
            if case .fail(let error) = self.stateMachine.failed(error) {
                self.fail(context: context, error: error)
            }
            return
        }
        let pending = connection.pendingCiphertextCount
        guard pending > 0 else {
            promise?.succeed()
            return
        }
        var ciphertext = context.channel.allocator.buffer(capacity: pending)
        connection.drainCiphertext(into: &ciphertext)
        context.write(self.wrapOutboundOut(ciphertext), promise: promise)
        context.flush()
    }

    /// Pops the writes up to the flush mark and hands their plaintext to
    /// OpenSSL, copying small ones together so they are sealed as one record.
    /// Returns one promise that completes all of theirs, and the first error.
    private func encryptFlushedWrites(
        _ connection: OpenSSLConnection,
        allocator: ByteBufferAllocator
    ) -> (EventLoopPromise<Void>?, TLSError?) {
        guard let marked = self.pendingWrites.markedElementIndex else { return (nil, nil) }
        let count = self.pendingWrites.distance(from: self.pendingWrites.startIndex, to: marked) + 1
        if count == 1 {
            let write = self.pendingWrites.removeFirst()
            return (write.promise, connection.writePlaintext(write.data))
        }
        var promise: EventLoopPromise<Void>? = nil
        var error: TLSError? = nil
        var scratch = self.coalescingBuffer.take() ?? allocator.buffer(capacity: Self.coalescingLimit)
        scratch.clear()
        for _ in 0..<count {
            let write = self.pendingWrites.removeFirst()
            if let next = write.promise {
                if let lead = promise {
                    lead.futureResult.cascade(to: next)
                } else {
                    promise = next
                }
            }
            guard error == nil else { continue }
            if write.data.readableBytes >= Self.coalescingLimit {
                if scratch.readableBytes > 0 {
                    error = connection.writePlaintext(scratch)
                    scratch.clear()
                }
                if error == nil {
                    error = connection.writePlaintext(write.data)
                }
            } else {
                scratch.writeImmutableBuffer(write.data)
                if scratch.readableBytes >= Self.coalescingLimit {
                    error = connection.writePlaintext(scratch)
                    scratch.clear()
                }
            }
        }
        if error == nil, scratch.readableBytes > 0 {
            error = connection.writePlaintext(scratch)
        }
        scratch.clear()
        if scratch.capacity <= 4 * Self.coalescingLimit {
            self.coalescingBuffer = scratch
        }
        return (promise, error)
    }

    private func sendCiphertext(context: ChannelHandlerContext) {
        let connection = self.openSSL
        let pending = connection.pendingCiphertextCount
        guard pending > 0 else { return }
        var ciphertext = context.channel.allocator.buffer(capacity: pending)
        connection.drainCiphertext(into: &ciphertext)
        context.writeAndFlush(self.wrapOutboundOut(ciphertext), promise: nil)
    }

    // MARK: Failure

    /// Sends OpenSSL's alert (if it queued one), fails queued writes, reports
    /// the error and closes. The state machine has already moved to `failed`.
    private func fail(context: ChannelHandlerContext, error: TLSError) {
        self.cancelTimers()
        if self.connection != nil {
            self.sendCiphertext(context: context)
        }
        self.failPendingWrites(error)
        context.fireErrorCaught(error)
        let promise = self.pendingClosePromise
        self.pendingClosePromise = nil
        context.close(promise: promise)
    }

    private func failPendingWrites(_ error: TLSError) {
        while let write = self.pendingWrites.popFirst() {
            write.promise?.fail(error)
        }
    }

    private func cancelTimers() {
        self.handshakeTimer?.cancel()
        self.handshakeTimer = nil
        self.closeTimer?.cancel()
        self.closeTimer = nil
    }
}

@available(*, unavailable)
extension TLSHandler: Sendable {}
