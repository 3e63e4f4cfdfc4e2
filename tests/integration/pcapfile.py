"""Reading a classic pcap file with `struct` (24 bytes of header, then a 16-byte header per
packet), not with simnet's own code: the tests' independent view of what crossed the wire."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

STUN_COOKIE = 0x2112A442


def packets(path: Path) -> list[bytes]:
    """Every packet of a classic pcap file (microsecond or nanosecond, either byte order)."""
    data = path.read_bytes()
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<"}.get(magic, ">")
    assert struct.unpack(f"{order}I", magic)[0] in (0xA1B2C3D4, 0xA1B23C4D), magic
    assert struct.unpack(f"{order}I", data[20:24])[0] == 1  # link type: Ethernet
    packets, offset = [], 24
    while offset < len(data):
        assert offset + 16 <= len(data), "a truncated record header: the file is incomplete"
        _, _, included, _ = struct.unpack(f"{order}IIII", data[offset : offset + 16])
        packet = data[offset + 16 : offset + 16 + included]
        assert len(packet) == included, "a truncated packet: the file is incomplete"
        packets.append(packet)
        offset += 16 + included
    return packets


def udp_ends(packet: bytes) -> tuple[str, str, bytes] | None:
    """(source, destination, payload) of an Ethernet/IPv4/UDP packet, else None."""
    parsed = udp_packet(packet)
    return None if parsed is None else (parsed[0], parsed[2], parsed[4])


def udp_packet(packet: bytes) -> tuple[str, int, str, int, bytes] | None:
    """(source, source port, destination, destination port, payload) of an Ethernet/IPv4/UDP
    packet, else None."""
    if len(packet) < 14 + 20 + 8 or packet[12:14] != b"\x08\x00":
        return None
    ip = packet[14:]
    header = (ip[0] & 0x0F) * 4
    if ip[9] != 17:
        return None
    source = str(ipaddress.IPv4Address(ip[12:16]))
    destination = str(ipaddress.IPv4Address(ip[16:20]))
    source_port, destination_port = struct.unpack("!HH", ip[header : header + 4])
    return source, source_port, destination, destination_port, ip[header + 8 :]


def is_stun(payload: bytes) -> bool:
    """A STUN message (TURN's Allocate, Refresh, CreatePermission, ChannelBind, Send, ICE's
    checks): the magic cookie at offset 4. ChannelData and relayed DTLS are not."""
    return len(payload) >= 8 and struct.unpack("!I", payload[4:8])[0] == STUN_COOKIE
