"""One HTTP/2 upstream connection, driven in memory against the h2 library as the server.

The connection's bytes go to a real h2 server state machine and back; a recorder stands
where the exchange would be and notes what the stream tells it.
"""

from __future__ import annotations

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    TrailersReceived,
)
from h2.settings import SettingCodes, Settings

from dispa.proxy.http2 import upstream as h2_upstream
from dispa.proxy.http2.upstream import MAX_CONTROL_EVENTS, STREAM_WINDOW, H2UpstreamConnection
from dispa.proxy.http2.upstream_pool import H2EndpointPool

REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/")]


class Transport:
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.buffer += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def get_write_buffer_size(self) -> int:
        return len(self.buffer)  # what the upstream has not read yet

    def take(self) -> bytes:
        data, self.buffer = bytes(self.buffer), bytearray()
        return data


class Recorder:
    """Stands in for the exchange: what the stream reported, in order."""

    def __init__(self) -> None:
        self.events: list = []
        self.gateway = self
        self.downstream = self
        self.now = 0.0

    def flush(self) -> None:
        pass

    def on_response_head(self, conn, response) -> None:
        self.events.append(("head", response.status))

    def on_response_data(self, conn, data) -> None:
        self.events.append(("data", data))

    def on_response_trailers(self, conn, headers) -> None:
        self.events.append(("trailers", headers))

    def on_response_end(self, conn) -> None:
        self.events.append(("end",))
        conn.release()

    def on_upstream_refused(self, conn) -> None:
        self.events.append(("refused",))

    def on_upstream_lost(self, conn) -> None:
        self.events.append(("lost",))

    def on_upstream_protocol_error(self, conn) -> None:
        self.events.append(("protocol_error",))

    def on_upstream_write_paused(self) -> None:
        self.events.append(("write_paused",))

    def on_upstream_write_resumed(self) -> None:
        self.events.append(("write_resumed",))


class Pair:
    """Our client connection and an h2 server, exchanging bytes on demand."""

    def __init__(self, max_streams: int = 100, window: int = 65535) -> None:
        self.pool = H2EndpointPool("127.0.0.1", 9, 0, 60.0)
        self.client = H2UpstreamConnection(self.pool)
        self.transport = Transport()
        self.client.connection_made(self.transport)
        self.server = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self.server.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: max_streams,
                SettingCodes.INITIAL_WINDOW_SIZE: window,
            },
        )
        self.server.initiate_connection()
        self.server_events: list = []
        self.exchange()
        self.pool.connections.append(self.client)

    def exchange(self) -> None:
        for _ in range(4):
            data = self.transport.take()
            if data:
                self.server_events += self.server.receive_data(data)
            back = self.server.data_to_send()
            if back:
                self.client.data_received(back)
            if not data and not back:
                return

    def stream(self, recorder: Recorder, end_stream: bool = True):
        stream = self.pool.take(0.0)
        stream.exchange = recorder
        stream.send_request(REQUEST, end_stream=end_stream)
        self.exchange()
        return stream

    def of_kind(self, kind) -> list:
        return [e for e in self.server_events if type(e) is kind]


async def test_a_response_with_trailers_reaches_the_exchange_in_order() -> None:
    pair = Pair()
    recorder = Recorder()
    stream = pair.stream(recorder)
    server = pair.server
    server.send_headers(stream.stream_id, [(b":status", b"200")])
    server.send_data(stream.stream_id, b"body")
    server.send_headers(stream.stream_id, [(b"grpc-status", b"0")], end_stream=True)
    pair.exchange()
    assert recorder.events == [
        ("head", 200),
        ("data", b"body"),
        ("trailers", [(b"grpc-status", b"0")]),
        ("end",),
    ]
    assert pair.client.active == 0 and stream.closed


async def test_streams_stop_at_the_peers_limit() -> None:
    pair = Pair(max_streams=2)
    first, second = pair.stream(Recorder()), pair.stream(Recorder())
    assert pair.pool.take(0.0) is None  # a third needs another connection
    first.close()  # reset (CANCEL): its slot is free again
    pair.exchange()
    assert pair.pool.take(0.0) is not None
    assert second.stream_id == 3


async def test_refused_stream_is_reported_as_refused() -> None:
    pair = Pair()
    recorder = Recorder()
    stream = pair.stream(recorder)
    pair.server.reset_stream(stream.stream_id, ErrorCodes.REFUSED_STREAM)
    pair.exchange()
    assert recorder.events == [("refused",)]
    other = Recorder()
    stream = pair.stream(other)
    pair.server.reset_stream(stream.stream_id, ErrorCodes.INTERNAL_ERROR)
    pair.exchange()
    assert other.events == [("lost",)]


async def test_goaway_refuses_streams_above_its_last_id_and_lets_the_others_finish() -> None:
    pair = Pair()
    below, above = Recorder(), Recorder()
    first = pair.stream(below)
    pair.stream(above)
    pair.server.close_connection(last_stream_id=first.stream_id)
    pair.exchange()
    assert above.events == [("refused",)]
    assert pair.pool.take(0.0) is None  # no new streams on it
    assert pair.client not in pair.pool.connections
    # The stream below the GOAWAY still gets its answer, then the connection closes.
    pair.server.state_machine.state = pair.server.state_machine.state.__class__.SERVER_OPEN
    pair.server.send_headers(first.stream_id, [(b":status", b"204")], end_stream=True)
    pair.exchange()
    assert below.events == [("head", 204), ("end",)]
    assert pair.transport.closed


async def test_response_window_opens_only_as_the_client_reads() -> None:
    pair = Pair()
    recorder = Recorder()
    stream = pair.stream(recorder)
    stream.pause_reading()  # the client downstream is slow
    server = pair.server
    server.send_headers(stream.stream_id, [(b":status", b"200")])
    for _ in range(12):  # most of the stream's window (h2 gives it back in large steps)
        server.send_data(stream.stream_id, b"x" * 16384)
    pair.exchange()
    assert server.local_flow_control_window(stream.stream_id) == STREAM_WINDOW - 12 * 16384
    stream.resume_reading()
    pair.exchange()
    assert server.local_flow_control_window(stream.stream_id) == STREAM_WINDOW


async def test_a_request_body_waits_for_window_and_pauses_the_client() -> None:
    pair = Pair(window=1000)
    recorder = Recorder()
    stream = pair.stream(recorder, end_stream=False)
    stream.send_data(b"y" * 300_000)  # past the high-water mark, beyond the window
    stream.end_request([(b"grpc-timeout", b"1S")])
    pair.exchange()
    assert ("write_paused",) in recorder.events
    received = sum(len(e.data) for e in pair.of_kind(DataReceived))
    assert received == 1000
    assert not pair.of_kind(StreamEnded)
    pair.server.increment_flow_control_window(400_000, stream_id=stream.stream_id)
    pair.server.increment_flow_control_window(400_000)
    pair.exchange()
    assert sum(len(e.data) for e in pair.of_kind(DataReceived)) == 300_000
    assert recorder.events[-1] == ("write_resumed",)
    (trailers,) = pair.of_kind(TrailersReceived)
    assert trailers.headers == [(b"grpc-timeout", b"1S")]
    assert len(pair.of_kind(RequestReceived)) == 1


async def test_a_full_socket_keeps_request_bytes_in_their_stream() -> None:
    pair = Pair(window=1_000_000)
    pair.server.increment_flow_control_window(1_000_000)
    recorder = Recorder()
    stream = pair.stream(recorder, end_stream=False)
    pair.client.pause_writing()  # the upstream reads slowly
    stream.send_data(b"y" * 300_000)
    stream.end_request()
    assert not pair.transport.buffer  # held in the stream, bounded by its high-water mark
    assert stream.output_bytes == 300_000
    assert ("write_paused",) in recorder.events
    pair.client.resume_writing()
    pair.exchange()
    assert sum(len(e.data) for e in pair.of_kind(DataReceived)) == 300_000
    assert pair.of_kind(StreamEnded)
    assert recorder.events[-1] == ("write_resumed",)


async def test_an_upstream_that_asks_without_reading_is_dropped(monkeypatch) -> None:
    monkeypatch.setattr(h2_upstream, "MAX_CONTROL_EVENTS", 10**9)  # not the flood count
    pair = Pair()
    recorder = Recorder()
    pair.stream(recorder, end_stream=True)
    pair.client.pause_writing()  # it stopped reading
    for _ in range(80):  # 80,000 PINGs, each answered with a 17-byte PING ACK
        for _ in range(1000):
            pair.server.ping(b"12345678")
        pair.client.data_received(pair.server.data_to_send())
        if pair.transport.aborted:
            break
    assert pair.transport.aborted
    assert len(pair.transport.buffer) < 2 * 1024 * 1024


async def test_an_upstream_flooding_control_frames_is_dropped() -> None:
    pair = Pair()
    recorder = Recorder()
    pair.stream(recorder, end_stream=True)
    for _ in range(MAX_CONTROL_EVENTS - 10):  # the opening SETTINGS counted too
        pair.server.ping(b"12345678")
    pair.exchange()
    assert not pair.transport.closed  # within the limit: answered
    for _ in range(20):
        pair.server.ping(b"12345678")
    pair.client.data_received(pair.server.data_to_send())
    assert pair.transport.aborted
    events = pair.server.receive_data(pair.transport.take())
    (goaway,) = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM


async def test_a_large_read_reaches_h2_in_slices_with_the_same_result() -> None:
    pair = Pair(window=1 << 20)
    recorder = Recorder()
    stream = pair.stream(recorder, end_stream=True)
    pair.server.send_headers(stream.stream_id, [(b":status", b"200")])
    for _ in range(15):
        pair.server.send_data(stream.stream_id, b"z" * 16384)
    pair.server.end_stream(stream.stream_id)
    data = pair.server.data_to_send()
    assert len(data) > 3 * 65536
    pair.client.data_received(data)
    assert recorder.events[0] == ("head", 200)
    assert b"".join(e[1] for e in recorder.events if e[0] == "data") == b"z" * 15 * 16384
    assert recorder.events[-1] == ("end",)
