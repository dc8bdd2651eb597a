"""The keep-alive pool hands out connections that are ready to read."""

from __future__ import annotations

from dispa.proxy.upstream.connection import EndpointPool, UpstreamConnection


class Transport:
    def __init__(self) -> None:
        self.reading = True
        self.closed = False

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True


def pooled_connection(pool: EndpointPool) -> UpstreamConnection:
    connection = UpstreamConnection(pool)
    connection.connection_made(Transport())
    return connection


def test_a_connection_paused_for_a_slow_client_reads_again_once_pooled():
    # The response ended in the same read that paused it: reused while still paused, the
    # next request on it would never see its answer.
    pool = EndpointPool("127.0.0.1", 9, max_idle=4, idle_timeout=60.0)
    connection = pooled_connection(pool)
    connection.pause_reading()
    assert connection.transport.reading is False
    pool.put(connection, now=1.0)
    assert connection.transport.reading is True
    assert pool.take(now=2.0) is connection


def test_idle_connections_age_out_and_the_newest_is_reused_first():
    pool = EndpointPool("127.0.0.1", 9, max_idle=4, idle_timeout=10.0)
    old, new = pooled_connection(pool), pooled_connection(pool)
    pool.put(old, now=0.0)
    pool.put(new, now=5.0)
    assert pool.take(now=6.0) is new
    assert pool.take(now=11.0) is None and old.transport.closed
