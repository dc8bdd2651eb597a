"""Self-registration in etcd: a service puts its endpoint on a lease and keeps it alive.

``dispa register --etcd URL --pool web --instance web-1 --address 10.0.0.5:8080`` runs
``main_register``: it writes ``PREFIX/POOL/INSTANCE`` (see ``etcd_provider``) on a lease of
``ttl`` seconds and refreshes it every third of that. If the process dies, the lease runs out
and the instance vanishes from every gateway; on SIGTERM or SIGINT it revokes the lease, so
the instance goes at once. If etcd forgets the lease (it was down longer than the ttl), the
key is written again on a new lease.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal

import aetcd
import grpc

from dispa.discovery.etcd_provider import instance_key, split_endpoint
from dispa.discovery.parse import parse_endpoint

log = logging.getLogger("dispa.discovery.register")

_ETCD_ERRORS = (aetcd.ClientError, grpc.RpcError, TimeoutError, OSError)


async def register(
    endpoints: list[str],
    prefix: str,
    pool: str,
    instance: str,
    address: str,
    ttl: int = 10,
    weight: int = 1,
    region: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Keep ``address`` registered until ``stop`` is set (or the task is cancelled)."""
    endpoint = parse_endpoint({"address": address, "weight": weight, "region": region}, "endpoint")
    key = instance_key(prefix, pool, instance).encode()
    value = json.dumps(endpoint.to_config(), sort_keys=True).encode()
    stop = stop or asyncio.Event()
    attempt = 0
    lease = None
    client = None
    try:
        while not stop.is_set():
            host, port = split_endpoint(endpoints[attempt % len(endpoints)])
            client = aetcd.Client(host=host, port=port, timeout=max(1.0, ttl / 3))
            try:
                lease = await client.lease(ttl)
                await client.put(key, value, lease=lease)
                log.info("registered %s as %s on lease %x", address, key.decode(), lease.id)
                await _keep_alive(lease, ttl, stop)
            except _ETCD_ERRORS as error:
                log.warning("registration of %s: %s; retrying", key.decode(), error)
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=min(ttl / 3, 2.0))
            finally:
                if stop.is_set() and lease is not None:
                    # Deregister at once rather than after the ttl.
                    with contextlib.suppress(*_ETCD_ERRORS):
                        await asyncio.wait_for(lease.revoke(), timeout=2.0)
                await client.close()
                client = None
    except asyncio.CancelledError:
        if client is not None:
            await client.close()
        raise


async def _keep_alive(lease, ttl: int, stop: asyncio.Event) -> None:
    """Refresh until stopped; returns when etcd no longer knows the lease (to register again)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(0.2, ttl / 3))
        if stop.is_set():
            return
        reply = await lease.refresh()
        if reply is None or reply.TTL <= 0:
            log.warning("lease %x expired; registering again", lease.id)
            return


def main_register(argv: list[str] | None = None) -> int:
    """The body of ``dispa register``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="dispa register", description="Register this service's endpoint in etcd."
    )
    parser.add_argument("--etcd", action="append", required=True, help="etcd URL (repeatable)")
    parser.add_argument("--prefix", default="/dispa/discovery")
    parser.add_argument("--pool", required=True)
    parser.add_argument("--instance", required=True, help="unique id of this instance")
    parser.add_argument("--address", required=True, help="host:port the gateway should use")
    parser.add_argument("--ttl", type=int, default=10, help="seconds the key outlives us")
    parser.add_argument("--weight", type=int, default=1)
    parser.add_argument("--region")
    args = parser.parse_args(argv)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await register(
            args.etcd,
            args.prefix,
            args.pool,
            args.instance,
            args.address,
            args.ttl,
            args.weight,
            args.region,
            stop,
        )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(run())
    except ValueError as error:  # a bad address, weight or region
        print(f"dispa register: {error}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main_register())
