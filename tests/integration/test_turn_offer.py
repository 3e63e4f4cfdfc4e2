"""A fleet's TURN offer on a network that lets only TCP 443 out, on the real thing.

The shipped `corporate-udp-blocked` network (UDP dropped, TCP only to 443), its call offered TURN
as a production fleet offers it: UDP on 3478, then TCP and TLS with a port each. aiortc allocates
on the UDP URL, gets no answer, and its agent falls back to the next transport's URL before it
sends its description; the row says which transport relayed and every attempt in order. A browser
gets every URL with its transport's port and relays through 443.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simnet.run.calls import run_scenario
from simnet.scenario import load_scenario

pytestmark = pytest.mark.integration

CORPORATE = Path(__file__).resolve().parents[2] / "scenarios" / "corporate-udp-blocked.yaml"
# aioice waits 5 s for its STUN and TURN answers before the fallback can start, which the default
# 5 s gathering bound would cut short: the aiortc calls raise both bounds, as the field mix does
OFFER = [
    "call.turn_transports=[udp, tcp, tls]",
    "call.stun=true",
    "call.expect=null",
    "call.data_bytes=10000",
]


def _call(*sets: str) -> dict[str, Any]:
    [row] = run_scenario(load_scenario(CORPORATE, [*OFFER, *sets]))
    return row


def _attempts(row: dict[str, Any], side: str) -> list[tuple[str, str, bool]]:
    return [
        (a["transport"], a["server"].rpartition(":")[2], a["ok"])
        for a in row["turn_attempts"]
        if a["side"] == side
    ]


def test_aiortc_falls_back_from_udp_to_tcp_on_443_and_the_row_says_so() -> None:
    row = _call(
        "call.turn_ports={udp: 3478, tcp: 443, tls: 443}",
        "call.timeouts={gathering_s: 10, signaling_s: 15}",
    )
    assert row["connected"], (row["error"], row["error_detail"], row["turn_attempts"])
    assert row["path"] == "relay" and row["relay_protocol"] == "tcp"
    assert not row.get("relay_protocol_inferred")
    assert row["relay_server"].endswith(":443")
    # alice (behind the office firewall) got no answer over UDP, then relayed over TCP
    assert _attempts(row, "offer") == [("udp", "3478", False), ("tcp", "443", True)]
    [udp] = [a for a in row["turn_attempts"] if a["side"] == "offer" and a["transport"] == "udp"]
    assert udp["error_code"] is None  # no answer: not a refusal, so the next transport was tried
    # bob at home relayed over UDP at once: no fallback on a network that needs none
    assert _attempts(row, "answer") == [("udp", "3478", True)]


def test_aiortc_tries_the_transports_in_order_until_one_relays() -> None:
    """TCP on 3478 is dropped too: UDP, then TCP, then TLS on 443 relays."""
    row = _call(
        "call.turn_ports={udp: 3478, tcp: 3478, tls: 443}",
        "call.timeouts={gathering_s: 16, signaling_s: 20}",
    )
    assert row["connected"], (row["error"], row["error_detail"], row["turn_attempts"])
    assert row["path"] == "relay" and row["relay_protocol"] == "tls"
    assert row["relay_server"].endswith(":443")
    assert _attempts(row, "offer") == [
        ("udp", "3478", False),
        ("tcp", "3478", False),
        ("tls", "443", True),
    ]


def test_a_browser_gets_every_transport_with_its_port_and_relays_through_443() -> None:
    row = _call(
        "call.turn_ports={udp: 3478, tcp: 443, tls: 443}",
        "hosts.alice.peer=chromium",
        "hosts.bob.peer=chromium",
    )
    assert row["connected"], (row["error"], row["error_detail"], row["turn_attempts"])
    assert row["path"] == "relay" and row["relay_protocol"] in ("tcp", "tls")
    assert row["relay_server"].endswith(":443")
    ports = {(a["transport"], a["server"].rpartition(":")[2]) for a in row["turn_attempts"]}
    assert ports <= {("udp", "3478"), ("tcp", "443"), ("tls", "443")}, ports
