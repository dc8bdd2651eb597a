"""HTTP/2 floods from one client connection: each is cut off, and nobody else notices.

The attacker is a raw socket writing frames packed with ``struct`` (h2 would refuse to
make most of them), with a thread reading what the gateway sends back. Each attack runs
against a real gateway process in front of the demo upstream, bounded in time and in
frames, while a ``Probe`` (HTTP/1.1 on fresh connections) measures that other clients
keep being served; afterwards the gateway's RSS must come back near its baseline.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

import pytest
from conftest import HOST, http_get, make_config
from harness import Probe, rss_kib, wait_rss_within
from hpack import Encoder

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x6, 0x7, 0x8, 0x9
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
HEADER_TABLE_SIZE, INITIAL_WINDOW_SIZE = 0x1, 0x4
NO_ERROR, CANCEL, REFUSED_STREAM, ENHANCE_YOUR_CALM = 0x0, 0x8, 0x7, 0xB
MIB = 1024 * 1024


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes((kind, flags))
        + struct.pack(">I", stream_id)
        + payload
    )


def settings(**values: int) -> bytes:
    codes = {"header_table_size": HEADER_TABLE_SIZE, "initial_window_size": INITIAL_WINDOW_SIZE}
    return b"".join(struct.pack(">HI", codes[name], value) for name, value in values.items())


class H2Attacker:
    """A client that writes whatever frames it likes and records what comes back: every
    frame type seen, RST_STREAM codes, the GOAWAY's error code, and whether the gateway
    ended the connection."""

    def __init__(self, port: int, *, initial_window: int | None = None, read: bool = True):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.encoder = Encoder()
        self.goaway_code: int | None = None
        self.resets: dict[int, int] = {}
        self.headers_seen: set[int] = set()
        self.data_bytes = 0
        self.closed = threading.Event()  # EOF or reset from the gateway
        self.broken = False  # a send failed: the gateway is no longer reading
        self._lock = threading.Lock()
        self._buffer = b""
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        options = (
            settings(initial_window_size=initial_window) if initial_window is not None else b""
        )
        self.send(PREFACE + frame(SETTINGS, 0, 0, options) + frame(SETTINGS, ACK, 0))
        if read:
            self.start_reading()

    def start_reading(self) -> None:
        self._reader.start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        if self._reader.is_alive():
            self._reader.join(timeout=5)

    def __enter__(self) -> H2Attacker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ sending

    def send(self, data: bytes) -> bool:
        if self.broken:
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            self.broken = True
        return not self.broken

    def request_block(self, path: str = "/", method: str = "GET", extra=()) -> bytes:
        headers = [
            (":method", method),
            (":scheme", "http"),
            (":path", path),
            (":authority", "attacker.test"),
            *extra,
        ]
        return self.encoder.encode(headers)

    def flood(self, chunk: bytes, *, seconds: float, limit: int) -> int:
        """Send ``chunk`` again and again until the gateway hangs up, ``seconds`` pass or
        ``limit`` chunks went out; how many went out."""
        deadline = time.monotonic() + seconds
        sent = 0
        while sent < limit and time.monotonic() < deadline and not self.closed.is_set():
            if self.goaway_code is not None or not self.send(chunk):
                break
            sent += 1
        return sent

    # ------------------------------------------------------------ reading

    def wait_closed(self, timeout: float = 10.0) -> bool:
        return self.closed.wait(timeout)

    def _read_loop(self) -> None:
        self.sock.settimeout(0.5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            self._parse(data)
        self.closed.set()

    def _parse(self, data: bytes) -> None:
        buffer = self._buffer + data
        position = 0
        while len(buffer) - position >= 9:
            size = int.from_bytes(buffer[position : position + 3], "big")
            if len(buffer) - position - 9 < size:
                break
            kind = buffer[position + 3]
            stream_id = int.from_bytes(buffer[position + 5 : position + 9], "big") & 0x7FFFFFFF
            payload = buffer[position + 9 : position + 9 + size]
            position += 9 + size
            if kind == GOAWAY:
                self.goaway_code = struct.unpack(">I", payload[4:8])[0]
            elif kind == RST_STREAM:
                self.resets[stream_id] = struct.unpack(">I", payload)[0]
            elif kind == HEADERS:
                self.headers_seen.add(stream_id)
            elif kind == DATA:
                self.data_bytes += size
        self._buffer = buffer[position:]


# ---------------------------------------------------------------- the gateway under attack


@pytest.fixture(scope="module")
def target(module_processes, tmp_path_factory):
    upstream = module_processes.demo_upstream("h2-floods")
    # The probes have an upstream of their own: what is measured is the gateway, not an
    # upstream that an attack (400 streams of 50 MB) keeps busy.
    probe_upstream = module_processes.demo_upstream("h2-floods-probe")
    config = make_config(
        [
            {"name": "app", "endpoints": [{"address": upstream.address}]},
            {"name": "probe", "endpoints": [{"address": probe_upstream.address}]},
        ],
        [
            {"name": "probe", "match": {"host": "probe.test"}, "upstream": "probe"},
            {"name": "all", "match": {"path_prefix": "/"}, "upstream": "app"},
        ],
        listeners=[{"name": "public", "limits": {"header_timeout": "2s", "body_timeout": "2s"}}],
    )
    gateway = module_processes.gateway(config, tmp_path_factory.mktemp("h2-floods"))
    return gateway


def _baseline(gateway) -> int:
    """RSS once HTTP/2 is loaded and a few requests went through (the first h2 client
    imports the engine: that is not the attack's doing)."""
    with H2Attacker(gateway.port) as client:
        client.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, client.request_block("/")))
        deadline = time.monotonic() + 10
        while 1 not in client.headers_seen and time.monotonic() < deadline:
            time.sleep(0.02)
        assert 1 in client.headers_seen, "the gateway did not answer a plain HTTP/2 request"
    for _ in range(5):
        assert http_get(gateway.url("/"))[0] == 200
    time.sleep(0.3)
    return rss_kib(gateway.pid)


def _settle(probe_seconds: float) -> None:
    """Keep the probe running a little after the attack: a gateway still busy with it
    shows here."""
    time.sleep(probe_seconds)


def _assert_cut_off(attacker: H2Attacker, code: int = ENHANCE_YOUR_CALM) -> None:
    assert attacker.wait_closed(10), "the gateway kept the abusive connection open"
    assert attacker.goaway_code == code, f"GOAWAY code {attacker.goaway_code!r}, wanted {code}"


# ---------------------------------------------------------------- CONTINUATION


def test_empty_continuation_flood_is_cut_off(target):
    baseline = _baseline(target)
    with Probe(target.port) as probe, H2Attacker(target.port) as attacker:
        attacker.send(frame(HEADERS, 0, 1, attacker.request_block("/")))
        empty = frame(CONTINUATION, 0, 1) * 2000
        attacker.flood(empty, seconds=5, limit=30)  # 60,000 frames, 540 KB
        _assert_cut_off(attacker)
        _settle(2)
    assert probe.ratio >= 0.95, probe.summary()
    wait_rss_within(target.pid, baseline)


def test_continuation_flood_with_bytes_is_cut_off(target):
    """CONTINUATION frames that carry bytes never ending the block: stopped at the frame
    count, long before the block's bytes could be held."""
    baseline = _baseline(target)
    with Probe(target.port) as probe, H2Attacker(target.port) as attacker:
        block = attacker.request_block("/")
        attacker.send(frame(HEADERS, 0, 1, block))
        filler = frame(CONTINUATION, 0, 1, b"\x00\x01a\x01b" * 3000)  # literal fields
        attacker.flood(filler * 4, seconds=5, limit=500)
        _assert_cut_off(attacker)
        _settle(1)
    assert probe.ratio >= 0.95, probe.summary()
    wait_rss_within(target.pid, baseline)


# ---------------------------------------------------------------- rapid reset


def test_rapid_reset_on_four_connections(target):
    baseline = _baseline(target)
    attackers = [H2Attacker(target.port) for _ in range(4)]

    def attack(attacker: H2Attacker) -> None:
        block = attacker.request_block("/")
        stream_id = 1
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and stream_id < 2**31 - 400:
            batch = []
            for _ in range(100):
                batch.append(frame(HEADERS, END_STREAM | END_HEADERS, stream_id, block))
                batch.append(frame(RST_STREAM, 0, stream_id, struct.pack(">I", CANCEL)))
                stream_id += 2
            if attacker.goaway_code is not None or not attacker.send(b"".join(batch)):
                return

    try:
        with Probe(target.port) as probe:
            threads = [threading.Thread(target=attack, args=(a,)) for a in attackers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=15)
            for attacker in attackers:
                _assert_cut_off(attacker)
            _settle(1)
    finally:
        for attacker in attackers:
            attacker.close()
    assert probe.ratio >= 0.95, probe.summary()
    wait_rss_within(target.pid, baseline)


def test_rapid_reset_across_reads(target):
    """HEADERS and its RST_STREAM in separate writes: the exchange has started by the time
    the reset comes, and still the connection is cut off."""
    baseline = _baseline(target)
    with Probe(target.port) as probe, H2Attacker(target.port) as attacker:
        block = attacker.request_block("/slow?ms=5000")
        stream_id = 1
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and attacker.goaway_code is None:
            if not attacker.send(frame(HEADERS, END_STREAM | END_HEADERS, stream_id, block)):
                break
            time.sleep(0.0005)
            if not attacker.send(frame(RST_STREAM, 0, stream_id, struct.pack(">I", CANCEL))):
                break
            stream_id += 2
        _assert_cut_off(attacker)
        _settle(1)
    assert probe.ratio >= 0.95, probe.summary()
    wait_rss_within(target.pid, baseline)


def test_refused_stream_flood_is_cut_off(target):
    """Past the concurrent stream limit each new stream is refused; refusing them without
    end is the same work as resetting them."""
    baseline = _baseline(target)
    with Probe(target.port) as probe, H2Attacker(target.port) as attacker:
        slow = attacker.request_block("/slow?ms=8000")
        held = b"".join(
            frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * n, slow) for n in range(100)
        )
        attacker.send(held)
        time.sleep(0.3)
        block = attacker.request_block("/")
        stream_id = 201
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and attacker.goaway_code is None:
            batch = b"".join(
                frame(HEADERS, END_STREAM | END_HEADERS, stream_id + 2 * n, block)
                for n in range(100)
            )
            stream_id += 200
            if not attacker.send(batch):
                break
        _assert_cut_off(attacker)
        assert REFUSED_STREAM in attacker.resets.values()
        _settle(1)
    assert probe.ratio >= 0.95, probe.summary()
    wait_rss_within(target.pid, baseline)


# ---------------------------------------------------------------- control frame floods


def _control_flood(target, chunk: bytes, *, seconds: float = 4, opening: bytes = b"") -> None:
    baseline = _baseline(target)
    with Probe(target.port) as probe, H2Attacker(target.port) as attacker:
        if opening:
            attacker.send(opening)
        attacker.flood(chunk, seconds=seconds, limit=100_000)
        _assert_cut_off(attacker)
        _settle(1)
    assert probe.ratio >= 0.95, probe.summary()
    wait_rss_within(target.pid, baseline)


def test_settings_flood_is_cut_off(target):
    _control_flood(target, frame(SETTINGS, 0, 0, settings(header_table_size=4096)) * 500)


def test_ping_flood_is_cut_off(target):
    _control_flood(target, frame(PING, 0, 0, b"12345678") * 500)


def test_priority_flood_is_cut_off(target):
    priority = struct.pack(">IB", 0, 16)
    chunk = b"".join(frame(PRIORITY, 0, 2 * n + 1, priority) for n in range(500))
    _control_flood(target, chunk)


def test_window_update_flood_is_cut_off(target):
    _control_flood(target, frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) * 500)


def test_empty_data_flood_is_cut_off(target):
    attacker_block = Encoder().encode(
        [(":method", "POST"), (":scheme", "http"), (":path", "/"), (":authority", "a.test")]
    )
    opening = frame(HEADERS, END_HEADERS, 1, attacker_block)
    _control_flood(target, frame(DATA, 0, 1) * 500, opening=opening)


def test_unknown_frame_type_flood_is_cut_off(target):
    _control_flood(target, frame(0xEE, 0, 0, b"") * 500)


def test_settings_flood_from_a_client_that_never_reads(target):
    """The gateway answers each SETTINGS with an ACK; a client that never reads them must
    not make it hold them (nor read more from it while they pile up)."""
    baseline = _baseline(target)
    with Probe(target.port) as probe, H2Attacker(target.port, read=False) as attacker:
        attacker.sock.settimeout(0.2)
        chunk = frame(SETTINGS, 0, 0, settings(header_table_size=4096)) * 1000
        deadline = time.monotonic() + 3
        stalled_at = None
        while time.monotonic() < deadline:
            try:
                attacker.sock.sendall(chunk)
            except TimeoutError:
                stalled_at = stalled_at or time.monotonic()  # the gateway stopped reading
                continue
            except OSError:
                break
        peak = rss_kib(target.pid)
        attacker.sock.settimeout(10)
        attacker.start_reading()
        _assert_cut_off(attacker)
        _settle(1)
    assert peak - baseline < 32 * 1024, f"RSS grew by {peak - baseline} KiB"
    assert probe.ratio >= 0.95, probe.summary()
    wait_rss_within(target.pid, baseline)


def test_settings_frames_full_of_window_changes(target):
    """A SETTINGS frame of 2,730 INITIAL_WINDOW_SIZE entries with 100 streams open: the
    window change is applied once per frame, not once per entry and stream."""
    baseline = _baseline(target)
    with Probe(target.port) as probe, H2Attacker(target.port) as attacker:
        slow = attacker.request_block("/slow?ms=8000")
        attacker.send(
            b"".join(frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * n, slow) for n in range(100))
        )
        time.sleep(0.3)
        entries = b"".join(
            struct.pack(">HI", INITIAL_WINDOW_SIZE, 65535 + (n % 2)) for n in range(2730)
        )
        attacker.flood(frame(SETTINGS, 0, 0, entries), seconds=4, limit=2000)
        _settle(1)
    assert probe.ratio >= 0.95, probe.summary()
    wait_rss_within(target.pid, baseline)


# ---------------------------------------------------------------- header blocks


def test_hpack_bomb_is_cheap(target):
    """One 4 KB field put in the dynamic table, then blocks that name it thousands of
    times (one byte each): each would decode to megabytes of header list."""
    baseline = _baseline(target)
    with Probe(target.port) as probe, H2Attacker(target.port) as attacker:
        big_value = b"v" * 4000
        # Literal with incremental indexing, new name: it becomes dynamic index 62.
        insert = b"\x40\x03big" + b"\x7f" + _hpack_int(len(big_value), 7) + big_value
        head = attacker.request_block("/")
        attacker.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, head + insert))
        stream_id = 3
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and attacker.goaway_code is None and stream_id < 800:
            # 0xBE: indexed field 62, the big one; a varying static field keeps every
            # block distinct.
            variant = bytes((0x80 | (16 + stream_id % 45),))
            block = b"\x82\x86\x84" + variant + b"\xbe" * 16000
            if not attacker.send(frame(HEADERS, END_STREAM | END_HEADERS, stream_id, block)):
                break
            stream_id += 2
        _settle(1)
    assert probe.ratio >= 0.95, probe.summary()
    wait_rss_within(target.pid, baseline)


def _hpack_int(value: int, prefix: int) -> bytes:
    """The rest of an HPACK integer whose prefix (all ones) was written by the caller."""
    value -= (1 << prefix) - 1
    out = bytearray()
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_table_size_update_above_our_setting_is_a_compression_error(target):
    with H2Attacker(target.port) as attacker:
        # Dynamic table size update to 1 MiB (RFC 7541 6.3): above our 4,096.
        update = b"\x3f" + _hpack_int(MIB, 5)
        attacker.send(
            frame(HEADERS, END_STREAM | END_HEADERS, 1, update + attacker.request_block())
        )
        _assert_cut_off(attacker, code=0x9)


def test_unfinished_header_block_times_out(target):
    """HEADERS without END_HEADERS, then nothing: closed at the listener's header_timeout
    (2 s here), not at the idle timeout."""
    with H2Attacker(target.port) as attacker:
        attacker.send(frame(HEADERS, 0, 1, attacker.request_block("/")))
        started = time.monotonic()
        assert attacker.wait_closed(8), "an unfinished header block kept the connection"
        assert time.monotonic() - started < 6


def test_half_open_streams_are_answered_at_the_body_timeout(target):
    """100 streams whose requests never end (no body, no END_STREAM): each is answered at
    the listener's body_timeout (2 s here), and the connection goes on serving."""
    baseline = _baseline(target)
    with Probe(target.port) as probe, H2Attacker(target.port) as attacker:
        block = attacker.request_block("/", method="POST")
        attacker.send(b"".join(frame(HEADERS, END_HEADERS, 1 + 2 * n, block) for n in range(100)))
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and len(attacker.headers_seen) < 100:
            time.sleep(0.05)
        assert len(attacker.headers_seen) == 100, f"{len(attacker.headers_seen)} answered"
        attacker.send(frame(HEADERS, END_STREAM | END_HEADERS, 201, attacker.request_block()))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and 201 not in attacker.headers_seen:
            time.sleep(0.05)
        assert 201 in attacker.headers_seen
        assert attacker.goaway_code is None
    assert probe.ratio >= 0.95, probe.summary()
    wait_rss_within(target.pid, baseline)


# ---------------------------------------------------------------- response buffering


def test_zero_window_stalls_hold_bounded_memory(target):
    """400 streams of 50 MB each on 4 connections that grant no window: the gateway stops
    reading the upstreams instead of holding what they send."""
    baseline = _baseline(target)
    attackers = [H2Attacker(target.port, initial_window=0) for _ in range(4)]
    try:
        with Probe(target.port) as probe:
            for attacker in attackers:
                block = attacker.request_block("/bytes/50000000")
                attacker.send(
                    b"".join(
                        frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * n, block)
                        for n in range(100)
                    )
                )
            time.sleep(4)
            peak = rss_kib(target.pid)
            assert all(not attacker.closed.is_set() for attacker in attackers)
            assert attackers[0].headers_seen, "no response head came back"
    finally:
        for attacker in attackers:
            attacker.close()
    assert probe.ratio >= 0.95, probe.summary()
    assert peak - baseline < 48 * 1024, f"RSS grew by {peak - baseline} KiB with 400 stalls"
    wait_rss_within(target.pid, baseline, timeout=15)
