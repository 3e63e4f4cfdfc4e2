"""What `simnet validate` shows besides the nodes: each link's impairment per direction (ideal
ones grouped) and the call `simnet run` would make, in words a user can check against the file."""

from __future__ import annotations

from typing import Any

from simnet.net.plan import plan_network
from simnet.present.network import call_lines, impairment_text, link_lines
from simnet.scenario.model import Impairment, LinkSpec, Scenario


def _scenario(**extra: Any) -> Scenario:
    spec: dict[str, Any] = {
        "nats": {"home": {"preset": "port-restricted-cone"}},
        "hosts": {
            "alice": {"behind": "home", "link": {"delay_ms": 40, "jitter_ms": 10,
                                                  "up": {"loss_pct": 2}}},
            "bob": {"behind": "internet", "peer": "chromium"},
        },
        "servers": {"turn": {"kind": "turn"}, "signaling": {"kind": "signaling"}},
    }  # fmt: skip
    spec.update(extra)
    return Scenario.model_validate(spec)


def _texts(lines: list[Any]) -> list[str]:
    return [line.plain for line in lines]


def test_each_direction_of_an_impaired_link_is_named_and_ideal_links_grouped() -> None:
    lines = _texts(link_lines(plan_network(_scenario())))
    assert lines[0] == "links (up: from the node towards its network):"
    assert (
        "  alice -> home LAN: up 40 ms ± 10 ms uniform, 2 % loss; down 40 ms ± 10 ms uniform"
        in lines
    )
    assert lines[-1] == "  ideal (no impairment): home, turn, signaling, bob"


def test_an_impairment_in_words() -> None:
    assert impairment_text(Impairment()) == "ideal"
    assert impairment_text(Impairment(delay_ms=5, rate_kbit=1000)) == "5 ms, 1000 kbit/s"
    assert impairment_text(Impairment(jitter_ms=3, jitter_distribution="pareto")) == (
        "0 ms, pareto jitter 3 ms"
    )
    assert impairment_text(Impairment(queue_packets=10)) == "queue 10 packets"
    mtu = LinkSpec(mtu=1400)
    assert impairment_text(mtu.direction("up")) == "ideal"


def test_the_call_is_shown_with_stacks_servers_and_expectation() -> None:
    scenario = _scenario(call={"offerer": "alice", "answerer": "bob", "data_bytes": 0,
                               "expect": {"path": "relay", "rtt_ms": [80, 200]}})  # fmt: skip
    assert _texts(call_lines(scenario)) == [
        "call:",
        "  alice (aiortc) calls bob (chromium), signaling server signaling (ws)",
        "  STUN, TURN turn over udp:3478/tcp:3478/tls:5349, ICE policy all",
        "  carries 0 bytes on the data channel",
        "  must be: connected, path relay, RTT 80-200 ms (else `simnet run` exits 1)",
    ]


def test_the_default_call_is_shown_as_such_and_an_impossible_one_not_at_all() -> None:
    lines = _texts(call_lines(_scenario()))
    assert lines[0] == "call (the default: the file has no `call:` section):"
    without = _scenario(servers={"turn": {"kind": "turn"}})
    assert call_lines(without) == []
