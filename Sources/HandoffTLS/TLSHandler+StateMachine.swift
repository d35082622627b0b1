// Handoff — the TLS handler's state machine: which phase a connection is in,
// and what the handler must do for each event. Plain values, no I/O, no C.

/// The outcome of one handshake step, translated from `SSL_get_error` at the
/// OpenSSL boundary.
enum TLSHandshakeResult: Sendable, Hashable {
    case complete
    /// OpenSSL needs more bytes from the peer (send what it wrote, then wait).
    case wantIO
    case failed(TLSError)
}

/// The lifecycle of one TLS connection.
///
/// ```
/// idle ──active/read──▶ handshaking ──complete──▶ active ──close / close_notify──▶ closing ──inactive──▶ closed
///   │                        │                        │                                │
///   └──────close─────────────┴──fail/timeout/EOF──────┴──fail/EOF──▶ failed           └──▶ closed
/// ```
///
/// Each event method returns an action the handler carries out; the machine
/// itself never touches the channel or OpenSSL.
struct TLSStateMachine {
    private enum State: Hashable {
        /// Created; the channel is not active yet.
        case idle
        case handshaking
        case active
        /// Our close_notify is sent (or queued); the channel closes once it is out.
        case closing
        case closed
        case failed(TLSError)
    }

    private var state: State = .idle

    init() {}

    // MARK: Starting

    enum ChannelActiveAction: Hashable {
        /// Start the handshake timer and take the first handshake step
        /// (a client writes its ClientHello).
        case startHandshake
        case none
    }

    /// The channel became active, or the handler was added to an active channel.
    mutating func channelActive() -> ChannelActiveAction {
        switch self.state {
        case .idle:
            self.state = .handshaking
            return .startHandshake
        case .handshaking, .active, .closing, .closed, .failed:
            return .none
        }
    }

    // MARK: Reading

    enum ChannelReadAction: Hashable {
        /// Bytes arrived before channelActive: start the handshake, then feed them.
        case startHandshakeAndFeed
        /// Feed the ciphertext, then take a handshake step.
        case feedAndContinueHandshake
        /// Feed the ciphertext, then read plaintext until OpenSSL wants more.
        case feedAndReadPlaintext
        /// The connection is over; drop the bytes.
        case discard
    }

    mutating func channelRead() -> ChannelReadAction {
        switch self.state {
        case .idle:
            self.state = .handshaking
            return .startHandshakeAndFeed
        case .handshaking:
            return .feedAndContinueHandshake
        case .active, .closing:
            return .feedAndReadPlaintext
        case .closed, .failed:
            return .discard
        }
    }

    enum HandshakeStepAction: Hashable {
        /// Cancel the timer, fire `handshakeCompleted`, send buffered writes,
        /// then read any plaintext that came with the last flight.
        case completeHandshake
        /// Send what OpenSSL wrote (if anything) and wait for the peer.
        case sendAndWait
        /// Send OpenSSL's alert (if any), fail buffered writes, fire the error, close.
        case fail(TLSError)
        case none
    }

    mutating func handshakeStepped(_ result: TLSHandshakeResult) -> HandshakeStepAction {
        guard case .handshaking = self.state else { return .none }
        switch result {
        case .complete:
            self.state = .active
            return .completeHandshake
        case .wantIO:
            return .sendAndWait
        case .failed(let error):
            self.state = .failed(error)
            return .fail(error)
        }
    }

    /// Whether decrypted bytes may still be passed on (checked after each
    /// `fireChannelRead`, since the next handler may have closed us).
    var isReadingPlaintext: Bool {
        switch self.state {
        case .active, .closing: true
        case .idle, .handshaking, .closed, .failed: false
        }
    }

    enum CloseNotifyAction: Hashable {
        /// Answer with our close_notify, then close the channel.
        case sendCloseNotifyAndClose
        /// We are already closing.
        case none
        case fail(TLSError)
    }

    /// OpenSSL read a close_notify from the peer.
    mutating func closeNotifyReceived() -> CloseNotifyAction {
        switch self.state {
        case .active:
            self.state = .closing
            return .sendCloseNotifyAndClose
        case .handshaking:
            let error = TLSError(code: .unexpectedEOF, message: "peer sent close_notify during the TLS handshake")
            self.state = .failed(error)
            return .fail(error)
        case .idle, .closing, .closed, .failed:
            return .none
        }
    }

    enum FailureAction: Hashable {
        /// Send OpenSSL's alert (if any), fail buffered writes, fire the error, close.
        case fail(TLSError)
        case none
    }

    /// Decrypting or encrypting failed after the handshake (bad record, alert
    /// from the peer, …), or the connection could not be set up.
    mutating func failed(_ error: TLSError) -> FailureAction {
        switch self.state {
        case .idle, .handshaking, .active, .closing:
            self.state = .failed(error)
            return .fail(error)
        case .closed, .failed:
            return .none
        }
    }

    // MARK: Timeout

    mutating func handshakeTimedOut(after timeout: String) -> FailureAction {
        guard case .handshaking = self.state else { return .none }
        let error = TLSError(code: .handshakeTimeout, message: "TLS handshake did not complete within \(timeout)")
        self.state = .failed(error)
        return .fail(error)
    }

    // MARK: End of input

    /// The peer half-closed (`ChannelEvent.inputClosed`). Without a
    /// close_notify first, that may be a truncation attack.
    mutating func inputClosed() -> FailureAction {
        switch self.state {
        case .idle:
            self.state = .closed
            return .none
        case .handshaking:
            let error = TLSError(code: .unexpectedEOF, message: "connection closed during the TLS handshake")
            self.state = .failed(error)
            return .fail(error)
        case .active:
            let error = TLSError(code: .unexpectedEOF, message: "connection closed without a TLS close_notify")
            self.state = .failed(error)
            return .fail(error)
        case .closing, .closed, .failed:
            return .none
        }
    }

    enum ChannelInactiveAction: Hashable {
        /// The channel is gone: report the error (no close needed), drop buffered writes.
        case fireError(TLSError)
        /// Drop buffered writes and timers.
        case cleanUp
    }

    mutating func channelInactive() -> ChannelInactiveAction {
        switch self.inputClosed() {
        case .fail(let error):
            return .fireError(error)
        case .none:
            if case .closing = self.state { self.state = .closed }
            return .cleanUp
        }
    }

    // MARK: Writing and closing

    enum WriteAction: Hashable {
        /// Queue the plaintext; it is encrypted on flush (once the handshake is done).
        case buffer
        case fail(TLSError)
    }

    mutating func write() -> WriteAction {
        switch self.state {
        case .idle, .handshaking, .active:
            return .buffer
        case .closing, .closed:
            return .fail(TLSError(code: .closed, message: "write on a closing or closed TLS connection"))
        case .failed(let error):
            return .fail(error)
        }
    }

    enum FlushAction: Hashable {
        /// Encrypt the queued writes up to here, send the ciphertext, flush.
        case encryptAndFlush
        /// Remember the flush; queued writes go out when the handshake completes.
        case flushAfterHandshake
        case none
    }

    mutating func flush() -> FlushAction {
        switch self.state {
        case .idle, .handshaking: .flushAfterHandshake
        case .active: .encryptAndFlush
        case .closing, .closed, .failed: .none
        }
    }

    enum CloseAction: Hashable {
        /// Encrypt queued writes, queue close_notify, flush, and close once written.
        case sendCloseNotifyAndClose
        /// Nothing to say in TLS: fail queued writes and close the channel now.
        case closeNow
        /// A close is already under way; complete this promise with it.
        case joinPendingClose
    }

    mutating func closeRequested() -> CloseAction {
        switch self.state {
        case .active:
            self.state = .closing
            return .sendCloseNotifyAndClose
        case .idle, .handshaking:
            self.state = .closed
            return .closeNow
        case .closing:
            return .joinPendingClose
        case .closed, .failed:
            return .closeNow
        }
    }
}
