"""The client's side of docs/PROTOCOL.md, against a scripted peer.

A real handoffd will not, on demand, withhold an answer past a deadline, send
a PING, or send a GOAWAY between two calls; this small TLS server (with the
development certificates and ALPN handoff/1) does exactly what each test says
and records every frame the client sends.
"""
from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Awaitable, Callable, List, Optional

import pytest

import handoff
from handoff.v1 import envelope_pb2, health_pb2, operators_pb2

E = envelope_pb2.Envelope
REQUEST, MESSAGE, END, CANCEL, PING, PONG, GOAWAY = (
    envelope_pb2.FRAME_KIND_REQUEST, envelope_pb2.FRAME_KIND_MESSAGE, envelope_pb2.FRAME_KIND_END,
    envelope_pb2.FRAME_KIND_CANCEL, envelope_pb2.FRAME_KIND_PING, envelope_pb2.FRAME_KIND_PONG,
    envelope_pb2.FRAME_KIND_GOAWAY)


class Peer:
    """One accepted connection of the fake server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: List[E]) -> None:
        self.reader = reader
        self.writer = writer
        self.log = log

    async def read(self, timeout: float = 5) -> Optional[E]:
        """The next frame from the client (None when it closed)."""
        try:
            prefix = await asyncio.wait_for(self.reader.readexactly(4), timeout)
            body = await asyncio.wait_for(self.reader.readexactly(int.from_bytes(prefix, "big")), timeout)
        except asyncio.IncompleteReadError:
            return None
        envelope = E.FromString(body)
        self.log.append(envelope)
        return envelope

    def send(self, envelope: E) -> None:
        body = envelope.SerializeToString()
        self.writer.write(len(body).to_bytes(4, "big") + body)

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)


Handler = Callable[[Peer], Awaitable[None]]


class FakeServer:
    def __init__(self, certs: Path, handler: Handler) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(certs / "server.pem"), str(certs / "server.key"))
        self.context.set_alpn_protocols(["handoff/1"])
        self.handler = handler
        self.frames: List[E] = []
        self.connections = 0
        self.server: Optional[asyncio.AbstractServer] = None

    async def __aenter__(self) -> "FakeServer":
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.context)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def address(self) -> str:
        assert self.server is not None
        return "127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(Peer(reader, writer, self.frames))
        finally:
            writer.close()


def client_for(fake: FakeServer, certs: Path, role: str = "agent", **options: object) -> handoff.AsyncClient:
    return handoff.AsyncClient.from_certs(fake.address, str(certs), role=role, **options)  # type: ignore[arg-type]


def pong(call_id: int, payload: bytes = b"") -> E:
    return E(kind=END, call_id=call_id, payload=health_pb2.PingResponse(payload=payload).SerializeToString())


def test_request_frames_deadline_and_cancel(certs: Path) -> None:
    """timeout_ms and metadata go out in the REQUEST; the deadline fires
    locally even though the peer never answers, and a CANCEL follows."""
    async def handler(peer: Peer) -> None:
        first = await peer.read()
        assert first is not None
        peer.send(pong(first.call_id, b"one"))
        while await peer.read() is not None:
            pass  # answer nothing more

    async def main() -> None:
        async with FakeServer(certs, handler) as fake:
            async with client_for(fake, certs, bearer_token="t0k", metadata=[("x-trace", "abc")]) as client:
                assert (await client.ping(b"one")).payload == b"one"
                started = asyncio.get_running_loop().time()
                with pytest.raises(handoff.DeadlineExceeded) as caught:
                    await client.ping(b"two", timeout=0.2)
                elapsed = asyncio.get_running_loop().time() - started
                assert 0.15 < elapsed < 1.0
                assert caught.value.code == handoff.StatusCode.DEADLINE_EXCEEDED
                await asyncio.sleep(0.1)
            requests = [f for f in fake.frames if f.kind == REQUEST]
            assert [r.call_id for r in requests] == [1, 3]
            assert requests[0].method == "handoff.v1.Health/Ping"
            assert 29_000 < requests[0].timeout_ms <= 30_000  # the default deadline (less the connect time)
            assert 150 <= requests[1].timeout_ms <= 200
            assert [(m.key, m.value) for m in requests[0].metadata] == [("authorization", "Bearer t0k"),
                                                                        ("x-trace", "abc")]
            cancels = [f for f in fake.frames if f.kind == CANCEL]
            assert [c.call_id for c in cancels] == [3]

    asyncio.run(main())


def test_answers_ping_and_ignores_stray_frames(certs: Path) -> None:
    async def handler(peer: Peer) -> None:
        request = await peer.read()
        assert request is not None
        peer.send(E(kind=PING, payload=b"probe-7"))
        reply = await peer.read()
        assert reply is not None and reply.kind == PONG and reply.payload == b"probe-7"
        peer.send(E(kind=END, call_id=999))  # a call the client is not waiting on: ignored
        peer.send(E(kind=MESSAGE, call_id=request.call_id, payload=b"\x0a\x01x"))  # MESSAGE on a unary call: ignored
        peer.send(pong(request.call_id, b"after-ping"))
        while await peer.read() is not None:
            pass

    async def main() -> None:
        async with FakeServer(certs, handler) as fake:
            async with client_for(fake, certs) as client:
                assert (await client.ping()).payload == b"after-ping"

    asyncio.run(main())


def test_keepalive_closes_a_connection_whose_peer_stopped_answering(certs: Path) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read(5) is not None:
            pass  # reads everything, answers nothing: no PONG, no END

    async def main() -> None:
        async with FakeServer(certs, handler) as fake:
            async with client_for(fake, certs, keepalive_interval=0.1) as client:
                started = asyncio.get_running_loop().time()
                with pytest.raises(handoff.Unavailable) as caught:
                    await client.ping(timeout=5)
                assert "keepalive timed out" in caught.value.message
                assert asyncio.get_running_loop().time() - started < 1.0
            assert [f.kind for f in fake.frames].count(PING) >= 1

    asyncio.run(main())


def test_goaway_retries_calls_not_started_on_a_new_connection(certs: Path) -> None:
    async def handler(peer: Peer) -> None:
        # First connection: both calls arrive; accept call 1 only (GOAWAY
        # last=1), then answer it.
        first = await peer.read()
        second = await peer.read()
        assert first is not None and second is not None and (first.call_id, second.call_id) == (1, 3)
        peer.send(E(kind=GOAWAY, call_id=1, status_code=14, status_message="the server is shutting down"))
        await asyncio.sleep(0.05)
        peer.send(pong(1, b"first"))
        await peer.read(1)

    async def handler2(peer: Peer) -> None:
        request = await peer.read()
        assert request is not None
        peer.send(pong(request.call_id, health_pb2.PingRequest.FromString(request.payload).payload))
        while await peer.read() is not None:
            pass

    connections: List[str] = []

    async def dispatch(peer: Peer) -> None:
        connections.append("c")
        await (handler(peer) if len(connections) == 1 else handler2(peer))

    async def main() -> None:
        async with FakeServer(certs, dispatch) as fake:
            async with client_for(fake, certs) as client:
                a, b = await asyncio.gather(client.ping(b"first"), client.ping(b"second"))
                assert a.payload == b"first"
                assert b.payload == b"second"  # not started on connection 1, retried on connection 2
                assert client.connect_count == 2
                requests = [f for f in fake.frames if f.kind == REQUEST]
                # Connection 2 numbers its calls from 1 again.
                assert [r.call_id for r in requests] == [1, 3, 1]

    asyncio.run(main())


def test_stream_cancel_on_exit(certs: Path) -> None:
    async def handler(peer: Peer) -> None:
        request = await peer.read()
        assert request is not None and request.method == "handoff.v1.Operators/Watch"
        for i in range(3):
            event = operators_pb2.DeskEvent(cursor=f"c-{i}", kind=operators_pb2.DESK_EVENT_KIND_TICKET_OPENED)
            peer.send(E(kind=MESSAGE, call_id=request.call_id, payload=event.SerializeToString()))
        while await peer.read() is not None:
            pass

    async def main() -> None:
        async with FakeServer(certs, handler) as fake:
            async with client_for(fake, certs, role="operator") as client:
                seen = []
                async with client.desk.watch() as events:
                    async for event in events:
                        seen.append(event.cursor)
                        if len(seen) == 2:
                            break
                assert seen == ["c-0", "c-1"]
                await asyncio.sleep(0.1)
                assert [(f.kind, f.call_id) for f in fake.frames if f.kind == CANCEL] == [(CANCEL, 1)]

    asyncio.run(main())


def test_stream_error_after_messages(certs: Path) -> None:
    async def handler(peer: Peer) -> None:
        request = await peer.read()
        assert request is not None
        event = operators_pb2.DeskEvent(cursor="c-1")
        peer.send(E(kind=MESSAGE, call_id=request.call_id, payload=event.SerializeToString()))
        peer.send(E(kind=END, call_id=request.call_id, status_code=11, status_message="cursor too old"))
        while await peer.read() is not None:
            pass

    async def main() -> None:
        async with FakeServer(certs, handler) as fake:
            async with client_for(fake, certs) as client:
                cursors = []
                with pytest.raises(handoff.OutOfRange) as caught:
                    async for event in client.desk.watch(resume_cursor="c-0"):
                        cursors.append(event.cursor)
                assert cursors == ["c-1"]
                assert caught.value.message == "cursor too old"

    asyncio.run(main())


def test_oversized_or_invalid_frame_from_the_server_closes_the_connection(certs: Path) -> None:
    async def handler(peer: Peer) -> None:
        request = await peer.read()
        assert request is not None
        peer.send_raw((5_000_000).to_bytes(4, "big"))  # announces more than 4 MiB
        await peer.read(1)

    async def main() -> None:
        async with FakeServer(certs, handler) as fake:
            async with client_for(fake, certs) as client:
                with pytest.raises(handoff.Internal) as caught:
                    await client.ping()
                assert "exceeds the limit" in caught.value.message
                assert client.connection is not None and client.connection.closed

    asyncio.run(main())


def test_unknown_status_codes_are_unknown(certs: Path) -> None:
    async def handler(peer: Peer) -> None:
        request = await peer.read()
        assert request is not None
        peer.send(E(kind=END, call_id=request.call_id, status_code=42, status_message="new"))
        await peer.read(1)

    async def main() -> None:
        async with FakeServer(certs, handler) as fake:
            async with client_for(fake, certs) as client:
                with pytest.raises(handoff.Unknown) as caught:
                    await client.ping()
                assert caught.value.code is handoff.StatusCode.UNKNOWN and caught.value.wire_code == 42
                assert str(caught.value).startswith("CODE_42: new")

    asyncio.run(main())


def test_refuses_a_server_without_alpn(certs: Path) -> None:
    async def main() -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(certs / "server.pem"), str(certs / "server.key"))
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        async with handoff.AsyncClient.from_certs(f"127.0.0.1:{port}", str(certs)) as client:
            with pytest.raises(handoff.Unavailable) as caught:
                await client.ping()
            assert "ALPN" in caught.value.message
        server.close()

    asyncio.run(main())


def test_connect_failure_is_unavailable_and_next_call_retries(certs: Path) -> None:
    async def main() -> None:
        async with handoff.AsyncClient.from_certs("127.0.0.1:1", str(certs)) as client:
            for _ in range(2):
                with pytest.raises(handoff.Unavailable) as caught:
                    await client.ping()
                assert "cannot connect" in caught.value.message
            assert client.connect_count == 0

    asyncio.run(main())
