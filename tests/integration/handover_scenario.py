"""The handover scenario: alice moves from a Wi-Fi NAT to LTE mid-call, then ICE restarts."""

from __future__ import annotations

from typing import Any

HANDOVER: dict[str, Any] = {
    "name": "handover",
    "nats": {"wifi": {"preset": "port-restricted-cone"}, "lte": {"preset": "cgnat"}},
    "hosts": {"alice": {"behind": "wifi"}, "bob": {"behind": "internet"}},
    "servers": {"turn": {"kind": "turn"}, "signaling": {"kind": "signaling"}},
    "call": {
        "data_bytes": 0,
        "duration_s": 8,
        "timeline": [
            {"at_s": 2, "action": "move", "target": "alice", "to": "lte"},
            {"at_s": 3, "action": "ice-restart"},
        ],
    },
}
