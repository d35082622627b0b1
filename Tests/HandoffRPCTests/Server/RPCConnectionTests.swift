// Handoff — calls over real loopback sockets: multiplexing, status codes,
// deadlines, cancellation, limits, flow control, keepalive, drain.

import HandoffProto
import HandoffTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import HandoffRPC

struct SecretFailure: Error {
    let text = "the database password is hunter2"
}

@Suite("RPC connections", .timeLimit(.minutes(1)))
struct RPCConnectionTests {
    private func pingRegistry(
        _ body: @escaping @Sendable (PingRequest, ServerCallContext) async throws -> PingResponse = { request, _ in
            PingResponse(payload: request.payload)
        }
    ) -> MethodRegistry {
        var registry = MethodRegistry()
        registry.register(Health.ping, body)
        return registry
    }

    /// Ping, whose handler waits at `gate` and does not stop when cancelled.
    private func gatedPing(_ gate: Gate) -> MethodRegistry {
        pingRegistry { request, _ in
            await gate.pass()
            return PingResponse(payload: request.payload)
        }
    }

    @Test("a unary call returns the handler's response")
    func unary() async throws {
        let loopback = try await Loopback(registry: pingRegistry())
        let client = try await loopback.connect()
        let response = try await client.call(Health.ping, PingRequest(payload: [1, 2, 3]))
        #expect(response.payload == [1, 2, 3])
        await client.close()
        try await loopback.shutdown()
    }

    @Test("1,000 concurrent calls on one connection complete out of order, each with its own answer")
    func thousandConcurrent() async throws {
        let order = Mutex<[UInt8]>([])
        let registry = pingRegistry { request, _ in
            // Later-started calls finish first: the sleep shrinks as the index grows.
            let index = Int(request.payload[0]) << 8 | Int(request.payload[1])
            try await Task.sleep(for: .microseconds((1000 - index) * 20))
            order.withLock { $0.append(request.payload[1]) }
            return PingResponse(payload: request.payload)
        }
        let loopback = try await Loopback(registry: registry)
        let client = try await loopback.connect()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<1000 {
                group.addTask {
                    let payload: [UInt8] = [UInt8(i >> 8), UInt8(i & 0xFF), 42]
                    let response = try await client.call(Health.ping, PingRequest(payload: payload))
                    #expect(response.payload == payload)
                }
            }
            try await group.waitForAll()
        }
        let finished = order.withLock { $0 }
        #expect(finished.count == 1000)
        #expect(finished != finished.sorted(), "completion order followed start order: not out of order")
        await client.close()
        try await loopback.shutdown()
    }

    @Test("an unknown method is UNIMPLEMENTED, naming it")
    func unknownMethod() async throws {
        let loopback = try await Loopback(registry: pingRegistry())
        let client = try await loopback.connect()
        let error = await #expect(throws: RPCError.self) {
            _ = try await client.call(Sessions.getSession, GetSessionRequest(sessionID: "s"))
        }
        #expect(error?.code == .unimplemented)
        #expect(error?.message.contains("handoff.v1.Sessions/GetSession") == true)
        // The connection stays usable.
        #expect(try await client.call(Health.ping, PingRequest()).payload == [])
        await client.close()
        try await loopback.shutdown()
    }

    @Test("a deadline ends the call with DEADLINE_EXCEEDED and cancels the server's work")
    func deadline() async throws {
        let cancelled = Signal()
        let loopback = try await Loopback(
            registry: pingRegistry { _, _ in
                do {
                    try await Task.sleep(for: .seconds(30))
                } catch {
                    cancelled.fire()
                    throw error
                }
                return PingResponse()
            })
        let client = try await loopback.connect()
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: RPCError.self) {
            _ = try await client.call(Health.ping, PingRequest(), options: CallOptions(timeout: .milliseconds(200)))
        }
        #expect(error?.code == .deadlineExceeded)
        #expect(clock.now - start < .seconds(5))
        #expect(await cancelled.wait(), "the server handler was not cancelled at the deadline")
        await client.close()
        try await loopback.shutdown()
    }

    @Test("the server enforces a deadline the client does not (a raw client that never gives up)")
    func serverSideDeadline() async throws {
        let loopback = try await Loopback(
            registry: pingRegistry { _, _ in
                try await Task.sleep(for: .seconds(30))
                return PingResponse()
            })
        let raw = try await loopback.connectRaw()
        try await raw.send(
            Envelope(
                kind: .request, callID: 1, method: Health.ping.fullName, timeoutMs: 150,
                payload: try PingRequest().serializedBytes()))
        let end = await raw.next()
        #expect(end?.kind == .end)
        #expect(end?.statusCode == RPCError.Code.deadlineExceeded.rawValue)
        try await loopback.shutdown()
    }

    @Test("many deadlines on one connection: each call ends at its own, a later short one first, calls without one untouched")
    func deadlinesShareOneTimer() async throws {
        // The payload's first byte is how long the handler works, in 100 ms steps (0: answer at once).
        let loopback = try await Loopback(
            registry: pingRegistry { request, _ in
                try await Task.sleep(for: .milliseconds(100 * Int(request.payload.first ?? 0)))
                return PingResponse(payload: request.payload)
            })
        // The server's own timer, with no client timer to hide behind: a raw client.
        let raw = try await loopback.connectRaw()
        let clock = ContinuousClock()
        let start = clock.now
        for (id, timeout, work) in [(1, 2500, 100), (3, 150, 100), (5, 0, 3), (7, 600, 100), (9, 5000, 0)] as [(UInt64, UInt64, UInt8)] {
            try await raw.send(
                Envelope(
                    kind: .request, callID: id, method: Health.ping.fullName, timeoutMs: timeout,
                    payload: try PingRequest(payload: [work]).serializedBytes()))
        }
        var ends: [UInt64: (status: UInt32, at: Duration)] = [:]
        var order: [UInt64] = []
        while ends.count < 5, let frame = await raw.next() {
            if frame.kind == .end {
                ends[frame.callID] = (frame.statusCode, clock.now - start)
                order.append(frame.callID)
            }
        }
        let deadline = RPCError.Code.deadlineExceeded.rawValue
        let ok = RPCError.Code.ok.rawValue
        #expect(ends.mapValues(\.status) == [1: deadline, 3: deadline, 5: ok, 7: deadline, 9: ok], "\(ends)")
        #expect(order.filter { [3, 7, 1].contains($0) } == [3, 7, 1], "deadlines ended out of order: \(order)")
        // Never early; late only by scheduling (the suite runs tests side by side on two cores: 1 s late was seen).
        for (id, due) in [(3, 150), (7, 600), (1, 2500)] as [(UInt64, Int)] {
            let at = ends[id]?.at ?? .zero
            #expect(at >= .milliseconds(due) && at < .milliseconds(due + 2000), "call \(id) ended at \(at), its deadline \(due) ms")
        }

        // The client's timer: a short deadline started after a long one still ends first.
        let client = try await loopback.connect()
        let long = Task {
            try await client.call(Health.ping, PingRequest(payload: [100]), options: CallOptions(timeout: .seconds(6)))
        }
        try await Task.sleep(for: .milliseconds(20))
        let shortStart = clock.now
        let error = await #expect(throws: RPCError.self) {
            _ = try await client.call(Health.ping, PingRequest(payload: [100]), options: CallOptions(timeout: .milliseconds(150)))
        }
        #expect(error?.code == .deadlineExceeded)
        #expect(clock.now - shortStart < .seconds(4), "the short deadline waited for the long one (6 s)")
        let answered = try await client.call(Health.ping, PingRequest(payload: [1]), options: CallOptions(timeout: .seconds(5)))
        #expect(answered.payload == [1])
        let longError = await #expect(throws: RPCError.self) { try await long.value }
        #expect(longError?.code == .deadlineExceeded)
        await client.close()
        try await loopback.shutdown()
    }

    @Test("cancelling the caller's task cancels the call on the server")
    func cancellation() async throws {
        let started = Signal()
        let cancelled = Signal()
        let loopback = try await Loopback(
            registry: pingRegistry { _, _ in
                started.fire()
                do {
                    try await Task.sleep(for: .seconds(30))
                } catch {
                    cancelled.fire()
                    throw error
                }
                return PingResponse()
            })
        let client = try await loopback.connect()
        let task = Task { try await client.call(Health.ping, PingRequest()) }
        #expect(await started.wait())
        task.cancel()
        let result = await task.result
        guard case .failure(let error as RPCError) = result else {
            Issue.record("expected an RPCError, got \(result)")
            return
        }
        #expect(error.code == .cancelled)
        #expect(await cancelled.wait(), "the server handler did not observe the cancel")
        await client.close()
        try await loopback.shutdown()
    }

    @Test("a handler's non-status error is INTERNAL without its text")
    func internalErrorsDoNotLeak() async throws {
        let loopback = try await Loopback(registry: pingRegistry { _, _ in throw SecretFailure() })
        let client = try await loopback.connect()
        let error = await #expect(throws: RPCError.self) { _ = try await client.call(Health.ping, PingRequest()) }
        #expect(error?.code == .internalError)
        #expect(error?.message == "internal error")
        #expect(error.map { "\($0)".contains("hunter2") } == false)
        await client.close()
        try await loopback.shutdown()
    }

    @Test("a handler's RPCError reaches the caller as sent")
    func statusErrors() async throws {
        let loopback = try await Loopback(
            registry: pingRegistry { _, _ in
                throw RPCError(code: .failedPrecondition, message: "action pa-1 was never released")
            })
        let client = try await loopback.connect()
        let error = await #expect(throws: RPCError.self) { _ = try await client.call(Health.ping, PingRequest()) }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message == "action pa-1 was never released")
        await client.close()
        try await loopback.shutdown()
    }

    @Test("calls beyond the per-connection limit are RESOURCE_EXHAUSTED")
    func inFlightLimit() async throws {
        let release = Signal()
        let entered = Atomic(0)
        var configuration = RPCServerConnectionHandler.Configuration()
        configuration.maximumConcurrentCalls = 2
        let loopback = try await Loopback(
            registry: pingRegistry { request, _ in
                entered.add(1, ordering: .relaxed)
                _ = await release.wait(timeout: .seconds(30))
                return PingResponse(payload: request.payload)
            },
            configuration: configuration)
        let client = try await loopback.connect()
        let first = Task { try await client.call(Health.ping, PingRequest(payload: [1])) }
        let second = Task { try await client.call(Health.ping, PingRequest(payload: [2])) }
        // Both in their handlers before the third is sent (not a fixed pause: a busy machine starts them late).
        try await until(seconds: 20) { entered.load(ordering: .relaxed) >= 2 }
        let error = await #expect(throws: RPCError.self) { _ = try await client.call(Health.ping, PingRequest(payload: [3])) }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message.contains("limit 2") == true)
        release.fire()
        #expect(try await first.value.payload == [1])
        #expect(try await second.value.payload == [2])
        await client.close()
        try await loopback.shutdown()
    }

    @Test("a call answered early (past its deadline, or cancelled) keeps its place under the limit until its handler returns")
    func abandonedCallsCount() async throws {
        // Handlers that do not stop when cancelled, until the gate opens.
        let gate = Gate()
        var configuration = RPCServerConnectionHandler.Configuration()
        configuration.maximumConcurrentCalls = 2
        let loopback = try await Loopback(
            registry: gatedPing(gate),
            configuration: configuration)
        let client = try await loopback.connect()
        // One call past its deadline, one cancelled by its caller: both answered.
        let late = await #expect(throws: RPCError.self) {
            _ = try await client.call(Health.ping, PingRequest(payload: [1]), options: CallOptions(timeout: .milliseconds(100)))
        }
        #expect(late?.code == .deadlineExceeded)
        let cancelled = Task { try await client.call(Health.ping, PingRequest(payload: [2])) }
        while gate.entered < 2 { try await Task.sleep(for: .milliseconds(5)) }
        cancelled.cancel()
        if case .success = await cancelled.result { Issue.record("the cancelled call succeeded") }
        // Their handlers still run: a third call is refused, and says why.
        let refused = await #expect(throws: RPCError.self) {
            _ = try await client.call(Health.ping, PingRequest(payload: [3]), options: CallOptions(timeout: .seconds(3)))
        }
        #expect(refused?.code == .resourceExhausted)
        #expect(refused?.message.contains("limit 2; 2 of them cancelled or past their deadline") == true, "\(String(describing: refused))")
        // Once they return, calls are taken again.
        gate.open()
        var answer: PingResponse?
        for _ in 0..<200 where answer == nil {
            answer = try? await client.call(Health.ping, PingRequest(payload: [4]))
            if answer == nil { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(answer?.payload == [4])
        await client.close()
        try await loopback.shutdown()
    }

    @Test("handlers still running count against the server's limit after their connection closed")
    func handlersOutliveConnections() async throws {
        let gate = Gate()
        var configuration = RPCServerConnectionHandler.Configuration()
        configuration.handlers = HandlerBudget(limit: 2)
        let loopback = try await Loopback(
            registry: gatedPing(gate),
            configuration: configuration)
        // Two clients each start a call and go away.
        for payload: UInt8 in [1, 2] {
            let client = try await loopback.connect()
            let call = Task { try await client.call(Health.ping, PingRequest(payload: [payload])) }
            while gate.entered < Int(payload) { try await Task.sleep(for: .milliseconds(5)) }
            await client.close()
            _ = await call.result
        }
        // Their handlers still run: a new client's call is refused.
        let client = try await loopback.connect()
        let refused = await #expect(throws: RPCError.self) {
            _ = try await client.call(Health.ping, PingRequest(payload: [3]), options: CallOptions(timeout: .seconds(3)))
        }
        #expect(refused?.code == .resourceExhausted)
        #expect(refused?.message == "the server is running 2 calls, the most it takes at once; retry later")
        gate.open()
        while configuration.handlers.current > 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(try await client.call(Health.ping, PingRequest(payload: [4])).payload == [4])
        await client.close()
        try await loopback.shutdown()
    }

    @Test("a server stream delivers every message, then ends OK")
    func serverStreaming() async throws {
        var registry = MethodRegistry()
        registry.register(Operators.watch) { request, _, writer in
            for i in 0..<5 {
                try await writer.write(DeskEvent(cursor: "\(request.resumeCursor)-\(i)"))
            }
        }
        let loopback = try await Loopback(registry: registry)
        let client = try await loopback.connect()
        var cursors: [String] = []
        for try await event in client.stream(Operators.watch, WatchRequest(resumeCursor: "c")) {
            cursors.append(event.cursor)
        }
        #expect(cursors == ["c-0", "c-1", "c-2", "c-3", "c-4"])
        await client.close()
        try await loopback.shutdown()
    }

    @Test("a client that stops reading a stream stalls the server's writer instead of growing its memory")
    func slowReader() async throws {
        let written = Atomic<Int>(0)
        var registry = MethodRegistry()
        registry.register(Operators.watch) { _, _, writer in
            let big = String(repeating: "x", count: 64 * 1024)
            for _ in 0..<2000 {  // 128 MiB if nothing held it back
                try await writer.write(DeskEvent(cursor: big))
                written.add(1, ordering: .relaxed)
            }
        }
        let loopback = try await Loopback(registry: registry)
        let raw = try await loopback.connectRaw(autoRead: false)
        try await raw.send(
            Envelope(
                kind: .request, callID: 1, method: Operators.watch.fullName, payload: try WatchRequest().serializedBytes()))
        try await Task.sleep(for: .seconds(1))
        let stalledAt = written.load(ordering: .relaxed)
        try await Task.sleep(for: .milliseconds(500))
        #expect(stalledAt < 200, "the writer ran ahead: \(stalledAt) messages of 64 KiB written to a client that reads nothing")
        #expect(written.load(ordering: .relaxed) == stalledAt, "the writer kept going")
        // Reading again lets the stream go on.
        raw.channel.read()
        try await raw.channel.setOption(.autoRead, value: true).get()
        try await Task.sleep(for: .milliseconds(500))
        #expect(written.load(ordering: .relaxed) > stalledAt)
        try await raw.channel.close()
        try await loopback.shutdown()
    }

    @Test("an oversize frame ends the connection with a GOAWAY naming the limit")
    func oversizeFrame() async throws {
        var configuration = RPCServerConnectionHandler.Configuration()
        configuration.maximumFrameSize = 1024
        let loopback = try await Loopback(registry: pingRegistry(), configuration: configuration)
        let raw = try await loopback.connectRaw()
        var prefix: [UInt8] = []
        withUnsafeBytes(of: UInt32(5000).bigEndian) { prefix.append(contentsOf: $0) }
        try await raw.sendBytes(prefix)
        let goaway = await raw.next()
        #expect(goaway?.kind == .goaway)
        #expect(goaway?.statusCode == RPCError.Code.resourceExhausted.rawValue)
        #expect(goaway?.statusMessage.contains("exceeds the limit of 1024 bytes") == true)
        #expect(await raw.next() == nil, "the connection stays open after the GOAWAY")
        try await loopback.shutdown()
    }

    @Test("garbage instead of a frame ends the connection with a GOAWAY")
    func garbage() async throws {
        let loopback = try await Loopback(registry: pingRegistry())
        let raw = try await loopback.connectRaw()
        try await raw.sendBytes([0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF])
        let goaway = await raw.next()
        #expect(goaway?.kind == .goaway)
        #expect(goaway?.statusMessage.contains("undecodable frame") == true)
        #expect(await raw.next() == nil)
        try await loopback.shutdown()
    }

    @Test("PING is answered with PONG carrying the same payload")
    func pingPong() async throws {
        let loopback = try await Loopback(registry: pingRegistry())
        let raw = try await loopback.connectRaw()
        try await raw.send(Envelope(kind: .ping, payload: [9, 8, 7]))
        let pong = await raw.next()
        #expect(pong?.kind == .pong)
        #expect(pong?.payload == [9, 8, 7])
        try await raw.channel.close()
        try await loopback.shutdown()
    }

    @Test("a connection that sends nothing is closed by the idle timeout")
    func idleTimeout() async throws {
        let loopback = try await Loopback(registry: pingRegistry(), idleTimeout: .milliseconds(300))
        let raw = try await loopback.connectRaw()
        let goaway = await raw.next()
        #expect(goaway?.kind == .goaway)
        #expect(goaway?.statusMessage.contains("idle") == true)
        #expect(await raw.next() == nil)
        try await loopback.shutdown()
    }

    @Test("client keepalive pings keep an otherwise idle connection open past the idle timeout")
    func keepalive() async throws {
        // Pings every 100 ms against a 2 s idle timeout, and a PONG deadline
        // far away: only the pings are under test here. (With the deadline
        // equal to the interval, as before, one 100 ms stall of the test's
        // thread on a busy machine closed the connection as a dead peer:
        // the "parallel stall" of issue 27; `keepaliveSurvivesAStall` pins it.)
        let loopback = try await Loopback(registry: pingRegistry(), idleTimeout: .seconds(2))
        let client = try await loopback.connect(keepalive: .milliseconds(100), keepaliveTimeout: .seconds(30))
        try await Task.sleep(for: .milliseconds(3000))
        #expect(client.isUsable)
        #expect(try await client.call(Health.ping, PingRequest(payload: [1])).payload == [1])
        await client.close()
        try await loopback.shutdown()
    }

    /// Holds its thread once, as a starved or descheduled thread would.
    private final class StallOnce: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let done = Atomic(false)
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if !done.exchange(true, ordering: .relaxed) { usleep(250_000) }
            context.fireChannelRead(data)
        }
    }

    @Test("a PONG late by a 250 ms stall of the loop, within the keepalive timeout, keeps the connection")
    func keepaliveSurvivesAStall() async throws {
        let loopback = try await Loopback(registry: pingRegistry(), idleTimeout: .seconds(2))
        let client = try await loopback.connect(keepalive: .milliseconds(100), keepaliveTimeout: .seconds(30))
        while loopback.children.all.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        try await loopback.children.all[0].pipeline.addHandler(StallOnce(), position: .first).get()
        try await Task.sleep(for: .seconds(1))
        #expect(client.isUsable, "a tick due while the PONG was late closed the connection")
        #expect(try await client.call(Health.ping, PingRequest(payload: [2])).payload == [2])
        await client.close()
        try await loopback.shutdown()
    }

    @Test("a peer that never answers PINGs is given up after the keepalive timeout, failing calls in flight")
    func keepaliveGivesUpOnASilentPeer() async throws {
        let gate = Gate()
        let loopback = try await Loopback(registry: gatedPing(gate), idleTimeout: .seconds(30))
        let client = try await loopback.connect(keepalive: .milliseconds(100), keepaliveTimeout: .milliseconds(400))
        // A call in flight first (its handler waits at the gate), so that it
        // is the keepalive that fails it, not a connection already closed.
        let inFlight = Task { try await client.call(Health.ping, PingRequest(payload: [3])) }
        while gate.entered == 0 { try await Task.sleep(for: .milliseconds(5)) }
        // The server reads nothing more: no PONG will come.
        let child = loopback.children.all[0]
        try await child.eventLoop.submit { child.setOption(ChannelOptions.autoRead, value: false) }.get().get()
        let started = ContinuousClock.now
        await #expect {
            _ = try await inFlight.value
        } throws: { error in
            (error as? RPCError)?.message.contains("keepalive timed out") == true
        }
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(!client.isUsable)
        gate.open()
        await client.close()
        try await loopback.shutdown()
    }

    @Test("draining lets calls in flight finish, refuses new ones, then closes")
    func drain() async throws {
        let started = Signal()
        let release = Signal()
        let loopback = try await Loopback(
            registry: pingRegistry { request, _ in
                started.fire()
                _ = await release.wait(timeout: .seconds(10))
                return PingResponse(payload: request.payload)
            })
        let client = try await loopback.connect()
        let inFlight = Task { try await client.call(Health.ping, PingRequest(payload: [7])) }
        #expect(await started.wait())
        #expect(loopback.drainAll() == 1)
        try await until(seconds: 10) { !client.isUsable }
        #expect(!client.isUsable, "the client did not see the GOAWAY")
        let refused = await #expect(throws: RPCError.self) { _ = try await client.call(Health.ping, PingRequest()) }
        #expect(refused?.code == .unavailable)
        release.fire()
        #expect(try await inFlight.value.payload == [7], "the call in flight did not finish")
        try await until(seconds: 10) { !client.channel.isActive }
        #expect(!client.channel.isActive, "the drained connection was not closed")
        try await loopback.shutdown()
    }

}

@Suite("RPC protocol rules", .timeLimit(.minutes(1)))
struct RPCProtocolRuleTests {
    @Test("a call id that does not increase ends the connection with a GOAWAY naming the rule")
    func callIDsIncrease() async throws {
        var registry = MethodRegistry()
        registry.register(Health.ping) { request, _ in PingResponse(payload: request.payload) }
        let loopback = try await Loopback(registry: registry)
        let raw = try await loopback.connectRaw()
        let ping = try PingRequest().serializedBytes()
        try await raw.send(Envelope(kind: .request, callID: 5, method: Health.ping.fullName, payload: ping))
        #expect(await raw.next()?.kind == .end)
        try await raw.send(Envelope(kind: .request, callID: 3, method: Health.ping.fullName, payload: ping))
        let goaway = await raw.next()
        #expect(goaway?.kind == .goaway)
        #expect(goaway?.statusMessage.contains("does not increase") == true)
        try await loopback.shutdown()
    }

    @Test("a response over the frame limit ends its call RESOURCE_EXHAUSTED; the connection stays up")
    func oversizeResponse() async throws {
        var configuration = RPCServerConnectionHandler.Configuration()
        configuration.maximumFrameSize = 2048
        var registry = MethodRegistry()
        registry.register(Health.ping) { request, _ in
            PingResponse(payload: [UInt8](repeating: 1, count: Int(request.payload.first ?? 0) * 100))
        }
        let loopback = try await Loopback(registry: registry, configuration: configuration)
        let client = try await loopback.connect()
        let error = await #expect(throws: RPCError.self) { _ = try await client.call(Health.ping, PingRequest(payload: [50])) }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message.contains("exceeds the limit of 2048 bytes") == true)
        #expect(try await client.call(Health.ping, PingRequest(payload: [1])).payload.count == 100)
        await client.close()
        try await loopback.shutdown()
    }

    @Test("a stream whose first message is over the frame limit ends RESOURCE_EXHAUSTED, and its handler is cancelled")
    func oversizeFirstStreamMessage() async throws {
        var configuration = RPCServerConnectionHandler.Configuration()
        configuration.maximumFrameSize = 2048
        let cancelled = Signal()
        var registry = MethodRegistry()
        registry.register(Operators.watch) { _, _, writer in
            // Written before the handler first suspends, so while Task.immediate still runs it.
            try? await writer.write(DeskEvent(cursor: String(repeating: "c", count: 4096)))
            do {
                try await Task.sleep(for: .seconds(30))
            } catch {
                cancelled.fire()
            }
        }
        let loopback = try await Loopback(registry: registry, configuration: configuration)
        let client = try await loopback.connect()
        var ended: (any Error)?
        do {
            for try await _ in client.stream(Operators.watch, WatchRequest()) {}
        } catch {
            ended = error
        }
        #expect((ended as? RPCError)?.code == .resourceExhausted)
        #expect(await cancelled.wait(), "the handler of the ended stream was not cancelled")
        await client.close()
        try await loopback.shutdown()
    }

    @Test("a request the client cannot send fails at once, without hanging")
    func unsendableRequest() async throws {
        var registry = MethodRegistry()
        registry.register(Health.ping) { request, _ in PingResponse(payload: request.payload) }
        let loopback = try await Loopback(registry: registry)
        let client = try await loopback.connect()
        let nul = await #expect(throws: RPCError.self) {
            _ = try await client.call(
                Health.ping, PingRequest(),
                options: CallOptions(metadata: [MetadataEntry(key: "x", value: "a\u{0}b")]))
        }
        #expect(nul?.code == .invalidArgument)
        let big = await #expect(throws: RPCError.self) {
            _ = try await client.call(Health.ping, PingRequest(payload: [UInt8](repeating: 0, count: 5 << 20)))
        }
        #expect(big?.code == .resourceExhausted)
        #expect(try await client.call(Health.ping, PingRequest(payload: [2])).payload == [2], "the connection broke")
        await client.close()
        try await loopback.shutdown()
    }
}
