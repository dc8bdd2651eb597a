"""DNS messages on the wire (RFC 1035, RFC 2782 for SRV): build a query, read an answer.

Pure bytes in, values out; the UDP exchange is in ``dns_client``. Only what discovery needs:
A, AAAA and SRV answers, with their TTLs.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

TYPE_A = 1
TYPE_CNAME = 5
TYPE_AAAA = 28
TYPE_SRV = 33
TYPES = {"A": TYPE_A, "AAAA": TYPE_AAAA, "SRV": TYPE_SRV}
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_NXDOMAIN = 3
RCODE_NAMES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class DnsError(Exception):
    """The server gave no usable answer (SERVFAIL, REFUSED, a truncated or garbled reply)."""


@dataclass(frozen=True)
class Record:
    name: str
    type: int
    ttl: int
    value: str | tuple[int, int, int, str]  # an address, or SRV (priority, weight, port, target)


@dataclass(frozen=True)
class Answer:
    rcode: int
    records: tuple[Record, ...]

    @property
    def exists(self) -> bool:
        """NXDOMAIN is an answer (the name is gone), not a failure of the server."""
        return self.rcode == RCODE_NOERROR


def build_query(query_id: int, name: str, record_type: int) -> bytes:
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)  # RD set, one question
    return header + _encode_name(name) + struct.pack("!HH", record_type, CLASS_IN)


def parse_answer(message: bytes, query_id: int) -> Answer:
    if len(message) < 12:
        raise DnsError("short DNS reply")
    reply_id, flags, questions, answers, _, _ = struct.unpack_from("!HHHHHH", message)
    if reply_id != query_id:
        raise DnsError("DNS reply to another query")
    if flags & 0x0200:
        raise DnsError("truncated DNS reply (the answer needs TCP)")
    rcode = flags & 0x000F
    if rcode not in (RCODE_NOERROR, RCODE_NXDOMAIN):
        raise DnsError(f"DNS server answered {RCODE_NAMES.get(rcode, rcode)}")
    offset = 12
    try:
        for _ in range(questions):
            _, offset = _decode_name(message, offset)
            offset += 4
        records = []
        for _ in range(answers):
            name, offset = _decode_name(message, offset)
            rtype, _, ttl, length = struct.unpack_from("!HHIH", message, offset)
            offset += 10
            records.append(Record(name, rtype, ttl, _decode_rdata(message, offset, rtype, length)))
            offset += length
    except (struct.error, IndexError, ValueError) as error:
        raise DnsError(f"garbled DNS reply: {error}") from None
    return Answer(rcode, tuple(records))


def _encode_name(name: str) -> bytes:
    labels = [label for label in name.rstrip(".").split(".") if label]
    return (
        b"".join(bytes([len(raw)]) + raw for raw in (lab.encode("idna") for lab in labels)) + b"\0"
    )


def _decode_name(message: bytes, offset: int) -> tuple[str, int]:
    labels: list[str] = []
    end = None  # where the name ends in the record, before the first compression pointer
    for _ in range(128):  # bounded: a pointer loop in a hostile reply must not hang us
        length = message[offset]
        if length & 0xC0 == 0xC0:
            end = end if end is not None else offset + 2
            offset = ((length & 0x3F) << 8) | message[offset + 1]
            continue
        if length == 0:
            return ".".join(labels), (end if end is not None else offset + 1)
        labels.append(message[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    raise ValueError("DNS name too long or looping")


def _decode_rdata(message: bytes, offset: int, rtype: int, length: int):
    if rtype == TYPE_A:
        return str(ipaddress.IPv4Address(message[offset : offset + 4]))
    if rtype == TYPE_AAAA:
        return str(ipaddress.IPv6Address(message[offset : offset + 16]))
    if rtype == TYPE_SRV:
        priority, weight, port = struct.unpack_from("!HHH", message, offset)
        target, _ = _decode_name(message, offset + 6)
        return (priority, weight, port, target)
    if rtype == TYPE_CNAME:
        return _decode_name(message, offset)[0]
    return message[offset : offset + length].hex()
