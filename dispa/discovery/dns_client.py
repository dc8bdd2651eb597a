"""One DNS question over UDP with asyncio: send, wait for the matching reply, time out."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from dispa.discovery.dns_wire import Answer, DnsError, build_query, parse_answer


def system_nameserver(resolv_conf: Path = Path("/etc/resolv.conf")) -> tuple[str, int]:
    for line in resolv_conf.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            return parts[1], 53
    return "127.0.0.1", 53


class _Exchange(asyncio.DatagramProtocol):
    def __init__(self, query_id: int) -> None:
        self.query_id = query_id
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr) -> None:
        # Another reply (late, or spoofed) is ignored: only ours ends the wait.
        ours = len(data) >= 2 and int.from_bytes(data[:2], "big") == self.query_id
        if ours and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def query(
    server: tuple[str, int], name: str, record_type: int, timeout: float = 2.0, attempts: int = 2
) -> Answer:
    loop = asyncio.get_running_loop()
    last_error: Exception = DnsError("no attempt made")
    for _ in range(attempts):
        query_id = secrets.randbelow(1 << 16)
        transport, protocol = await loop.create_datagram_endpoint(
            lambda query_id=query_id: _Exchange(query_id), remote_addr=server
        )
        try:
            transport.sendto(build_query(query_id, name, record_type))
            async with asyncio.timeout(timeout):
                return parse_answer(await protocol.reply, query_id)
        except (TimeoutError, OSError) as error:
            last_error = error if str(error) else DnsError(f"no DNS reply from {server[0]}")
        finally:
            transport.close()
    raise last_error
