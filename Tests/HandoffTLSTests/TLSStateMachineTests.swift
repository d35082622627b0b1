// Handoff — the TLS state machine as plain values: feed an event, check the action.
import Testing

@testable import HandoffTLS

@Suite("TLS state machine")
struct TLSStateMachineTests {
    private let boom = TLSError(code: .handshakeFailed, message: "boom")

    /// A machine that has completed its handshake.
    private func activeMachine() -> TLSStateMachine {
        var machine = TLSStateMachine()
        _ = machine.channelActive()
        _ = machine.handshakeStepped(.complete)
        return machine
    }

    @Test("channel active starts the handshake once")
    func activeStartsHandshake() {
        var machine = TLSStateMachine()
        #expect(machine.channelActive() == .startHandshake)
        #expect(machine.channelActive() == .none)
        #expect(machine.channelRead() == .feedAndContinueHandshake)
    }

    @Test("bytes before channel active start the handshake")
    func readWhileIdleStartsHandshake() {
        var machine = TLSStateMachine()
        #expect(machine.channelRead() == .startHandshakeAndFeed)
        #expect(machine.channelActive() == .none)
        #expect(machine.channelRead() == .feedAndContinueHandshake)
    }

    @Test("handshake steps: wait, then complete, then plaintext flows")
    func handshakeCompletes() {
        var machine = TLSStateMachine()
        _ = machine.channelActive()
        #expect(machine.handshakeStepped(.wantIO) == .sendAndWait)
        #expect(!machine.isReadingPlaintext)
        #expect(machine.handshakeStepped(.complete) == .completeHandshake)
        #expect(machine.isReadingPlaintext)
        #expect(machine.channelRead() == .feedAndReadPlaintext)
        // A late step result is ignored.
        #expect(machine.handshakeStepped(.complete) == .none)
    }

    @Test("writes are buffered before and during the handshake; flush waits for it")
    func writesBeforeHandshake() {
        var machine = TLSStateMachine()
        #expect(machine.write() == .buffer)
        #expect(machine.flush() == .flushAfterHandshake)
        _ = machine.channelActive()
        #expect(machine.write() == .buffer)
        #expect(machine.flush() == .flushAfterHandshake)
        _ = machine.handshakeStepped(.complete)
        #expect(machine.write() == .buffer)
        #expect(machine.flush() == .encryptAndFlush)
    }

    @Test("a failed handshake fails later writes with the same error and drops reads")
    func handshakeFailure() {
        var machine = TLSStateMachine()
        _ = machine.channelActive()
        #expect(machine.handshakeStepped(.failed(self.boom)) == .fail(self.boom))
        #expect(machine.write() == .fail(self.boom))
        #expect(machine.flush() == .none)
        #expect(machine.channelRead() == .discard)
        #expect(machine.handshakeTimedOut(after: "1 ms") == .none)
        #expect(machine.failed(TLSError(code: .protocolError, message: "later")) == .none)
        #expect(machine.closeRequested() == .closeNow)
        #expect(machine.channelInactive() == .cleanUp)
    }

    @Test("handshake timeout fails only while handshaking")
    func handshakeTimeout() {
        var idle = TLSStateMachine()
        #expect(idle.handshakeTimedOut(after: "10 ms") == .none)

        var handshaking = TLSStateMachine()
        _ = handshaking.channelActive()
        guard case .fail(let error) = handshaking.handshakeTimedOut(after: "10 ms") else {
            Issue.record("expected the timeout to fail the handshake")
            return
        }
        #expect(error.code == .handshakeTimeout)
        #expect(error.message.contains("10 ms"))

        var active = self.activeMachine()
        #expect(active.handshakeTimedOut(after: "10 ms") == .none)
        #expect(active.isReadingPlaintext)
    }

    @Test("orderly close: close_notify, then writes fail, reads continue until inactive")
    func orderlyClose() {
        var machine = self.activeMachine()
        #expect(machine.closeRequested() == .sendCloseNotifyAndClose)
        #expect(machine.closeRequested() == .joinPendingClose)
        #expect(machine.write() == .fail(TLSError(code: .closed, message: "write on a closing or closed TLS connection")))
        #expect(machine.flush() == .none)
        #expect(machine.channelRead() == .feedAndReadPlaintext)
        #expect(machine.closeNotifyReceived() == .none)
        // EOF while closing is expected, not an error.
        #expect(machine.channelInactive() == .cleanUp)
        #expect(machine.channelRead() == .discard)
    }

    @Test("the peer's close_notify is answered and closes the connection")
    func peerCloseNotify() {
        var machine = self.activeMachine()
        #expect(machine.closeNotifyReceived() == .sendCloseNotifyAndClose)
        #expect(machine.closeRequested() == .joinPendingClose)
        #expect(machine.channelInactive() == .cleanUp)
    }

    @Test("close before the handshake closes at once")
    func closeBeforeHandshake() {
        var idle = TLSStateMachine()
        #expect(idle.closeRequested() == .closeNow)
        #expect(idle.channelActive() == .none)

        var handshaking = TLSStateMachine()
        _ = handshaking.channelActive()
        #expect(handshaking.closeRequested() == .closeNow)
        #expect(handshaking.channelRead() == .discard)
        #expect(handshaking.channelInactive() == .cleanUp)
    }

    @Test("EOF without close_notify after the handshake is unexpectedEOF")
    func truncation() {
        var halfClosed = self.activeMachine()
        guard case .fail(let error) = halfClosed.inputClosed() else {
            Issue.record("expected inputClosed to fail")
            return
        }
        #expect(error.code == .unexpectedEOF)
        #expect(halfClosed.inputClosed() == .none)

        var reset = self.activeMachine()
        guard case .fireError(let inactiveError) = reset.channelInactive() else {
            Issue.record("expected channelInactive to report an error")
            return
        }
        #expect(inactiveError.code == .unexpectedEOF)
        #expect(reset.channelInactive() == .cleanUp)
    }

    @Test("EOF during the handshake is an error; before it, not")
    func eofDuringHandshake() {
        var handshaking = TLSStateMachine()
        _ = handshaking.channelActive()
        guard case .fireError(let error) = handshaking.channelInactive() else {
            Issue.record("expected an error")
            return
        }
        #expect(error.code == .unexpectedEOF)

        var idle = TLSStateMachine()
        #expect(idle.channelInactive() == .cleanUp)

        var notified = TLSStateMachine()
        _ = notified.channelActive()
        guard case .fail = notified.closeNotifyReceived() else {
            Issue.record("close_notify during the handshake must fail it")
            return
        }
    }

    @Test("a failure after the handshake is reported once")
    func failureAfterHandshake() {
        var machine = self.activeMachine()
        let error = TLSError(code: .protocolError, message: "bad record mac")
        #expect(machine.failed(error) == .fail(error))
        #expect(machine.failed(error) == .none)
        #expect(!machine.isReadingPlaintext)
        #expect(machine.channelRead() == .discard)
        #expect(machine.write() == .fail(error))
        #expect(machine.channelInactive() == .cleanUp)
    }
}
