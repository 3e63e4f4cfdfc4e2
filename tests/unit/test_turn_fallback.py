"""A fleet's TURN offer: a port per transport in every peer's URLs, and aiortc's agent trying the
transports in order when the first gives no relay candidate.

Why: a production fleet offers TURN over UDP on 3478 and over TCP and TLS on 443, and a client
behind a firewall that lets only HTTPS out relays over TCP or TLS. aiortc allocates on one TURN
URL per peer connection, so simnet's agent falls back to the next transport's URL inside the
gathering (`simnet.peer.aiortc.aioice_adapter`); these tests pin which URLs every peer kind
gets, the order the agent tries, and when it stops, without a network.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from ipaddress import IPv4Address, IPv6Address
from types import SimpleNamespace
from typing import Any

import pytest
from aioice import ice as aioice_ice
from aioice.ice import Candidate, Connection

from simnet.addresses import IPV4, IPV6
from simnet.peer.aiortc import aioice_adapter
from simnet.peer.aiortc.aioice_adapter import (
    GATHER_WINDOW_S,
    TurnRecorder,
    TurnUrl,
    recording_turn,
    turn_urls_by_transport,
    used_turn_url,
)
from simnet.peer.protocol import IceServer, TurnAttempt
from simnet.run.one_call import ice_servers
from simnet.scenario.load import scenario_from_dict

FLEET = {"udp": 3478, "tcp": 443, "tls": 443}


def _scenario(peer: str = "aiortc", **call: object) -> Any:
    return scenario_from_dict(
        {
            "hosts": {"a": {"peer": peer}, "b": {}},
            "servers": {"turn": {"kind": "turn"}, "sig": {"kind": "signaling"}},
            "call": {"offerer": "a", "answerer": "b", **call},
        }
    )


def _services(*addresses: IPv4Address | IPv6Address) -> Any:
    turn = SimpleNamespace(
        config=SimpleNamespace(listening_ips=list(addresses) or [IPv4Address("192.0.2.10")]),
        cert_path=None,
        credentials=lambda: ("user", "secret"),
    )
    return SimpleNamespace(turn={"turn": turn})


def _turn_urls(
    every: bool, client: frozenset[int] = frozenset({IPV4}), **call: object
) -> list[str]:
    scenario = _scenario(**call)
    services = _services(IPv4Address("192.0.2.10"), IPv6Address("2001:db8::10"))
    servers, _ = ice_servers(scenario, scenario.call, services, every=every, client=client)
    return [u for s in servers for u in s.urls if u.startswith("turn")]


# --- the URLs every peer gets ------------------------------------------------------------------


@pytest.mark.parametrize("every", [True, False])
def test_each_transport_has_its_port_of_turn_ports_in_the_order_listed(every: bool) -> None:
    assert _turn_urls(every, turn_ports=FLEET) == [
        "turn:192.0.2.10:3478?transport=udp",
        "turn:192.0.2.10:443?transport=tcp",
        "turns:192.0.2.10:443?transport=tcp",
    ]
    assert _turn_urls(every, turn_transports=["tls", "udp"], turn_ports={"tls": 443}) == [
        "turns:192.0.2.10:443?transport=tcp",
        "turn:192.0.2.10:3478?transport=udp",
    ]


def test_without_turn_ports_each_transport_has_coturn_s_default_port() -> None:
    assert _turn_urls(True) == [
        "turn:192.0.2.10:3478?transport=udp",
        "turn:192.0.2.10:3478?transport=tcp",
        "turns:192.0.2.10:5349?transport=tcp",
    ]


def test_a_dual_stack_client_gets_each_transport_for_each_family() -> None:
    urls = _turn_urls(False, frozenset({IPV4, IPV6}), turn_ports=FLEET)
    assert urls == [
        "turn:192.0.2.10:3478?transport=udp",
        "turn:[2001:db8::10]:3478?transport=udp",
        "turn:192.0.2.10:443?transport=tcp",
        "turn:[2001:db8::10]:443?transport=tcp",
        "turns:192.0.2.10:443?transport=tcp",
        "turns:[2001:db8::10]:443?transport=tcp",
    ]


# --- the order aiortc's agent tries them in ----------------------------------------------------


def _server(*urls: str) -> IceServer:
    return IceServer(urls=list(urls), username="user", credential="secret")


def test_the_first_url_of_each_transport_in_the_order_given() -> None:
    servers = [
        _server("stun:192.0.2.10:3478"),
        _server(
            "turn:192.0.2.10:3478?transport=udp",
            "turn:[2001:db8::10]:3478?transport=udp",
            "turn:192.0.2.10:443?transport=tcp",
            "turns:192.0.2.10:443?transport=tcp",
            "turn:[2001:db8::10]:443?transport=tcp",
        ),
    ]
    urls = turn_urls_by_transport(servers)
    assert [(u.transport, u.url) for u in urls] == [
        ("udp", "turn:192.0.2.10:3478?transport=udp"),
        ("tcp", "turn:192.0.2.10:443?transport=tcp"),
        ("tls", "turns:192.0.2.10:443?transport=tcp"),
    ]
    assert urls[2] == TurnUrl(
        url="turns:192.0.2.10:443?transport=tcp",
        transport="tls",
        server=("192.0.2.10", 443),
        username="user",
        password="secret",
    )
    assert (urls[2].ssl, urls[2].socket_type, urls[0].ssl, urls[0].socket_type) == (
        True,
        "tcp",
        False,
        "udp",
    )
    assert used_turn_url(servers) == urls[0].url  # aiortc's own choice comes first


def test_urls_aiortc_refuses_are_skipped_and_none_gives_nothing() -> None:
    refused = ["turns:192.0.2.10:443?transport=udp", "turn:192.0.2.10:3478?transport=sctp"]
    servers = [_server(*refused, "turn:192.0.2.10:443?transport=tcp")]
    assert [u.url for u in turn_urls_by_transport(servers)] == ["turn:192.0.2.10:443?transport=tcp"]
    assert turn_urls_by_transport([_server("stun:192.0.2.10:3478")]) == []
    assert used_turn_url([_server(*refused)]) is None


# --- when the agent falls back, and when it stops ----------------------------------------------


def _url(transport: str) -> TurnUrl:
    port = FLEET[transport]
    return TurnUrl(f"{transport}-url", transport, ("192.0.2.10", port), "user", "secret")  # type: ignore[arg-type]


def _candidate(kind: str) -> Candidate:
    return Candidate(
        foundation="1",
        component=1,
        transport="udp",
        priority=1,
        host="192.0.2.10",
        port=50000,
        type=kind,
    )


class _Allocations:
    """Stands in for aioice's `relayed_candidate`: each transport's outcome, the order asked."""

    def __init__(self, outcomes: dict[str, str]) -> None:
        self.outcomes = outcomes
        self.asked: list[str] = []
        self.budgets: list[float] = []

    async def __call__(self, **kwargs: Any) -> tuple[Candidate, object]:
        transport = "tls" if kwargs["turn_ssl"] else kwargs["turn_transport"]
        self.asked.append(transport)
        outcome = self.outcomes[transport]
        if outcome == "hang":
            await asyncio.sleep(3600)
        if outcome == "fail":
            raise ConnectionRefusedError("refused")
        return _candidate("relay"), SimpleNamespace(transport=transport)


def _gather(
    monkeypatch: pytest.MonkeyPatch,
    outcomes: dict[str, str],
    fallbacks: list[str],
    *,
    own: str = "host",
    answered: int | None = None,
    deadline_s: float | None = None,
) -> tuple[Connection, TurnRecorder, _Allocations]:
    """One gathering with aioice's own part replaced: it leaves one `own` candidate."""
    allocations = _Allocations(outcomes)
    monkeypatch.setattr(aioice_ice, "relayed_candidate", allocations)

    async def aioice_gathering(self: Connection) -> None:
        self._local_candidates.append(_candidate(own))

    monkeypatch.setattr(aioice_adapter, "_original_gather_candidates", aioice_gathering)

    async def run() -> tuple[Connection, TurnRecorder]:
        connection = Connection(ice_controlling=True, turn_server=("192.0.2.10", 3478))
        with recording_turn(None) as recorder:
            recorder.relay_url = "udp-url"
            recorder.fallbacks = [_url(t) for t in fallbacks]
            if answered is not None:
                recorder.attempts.append(
                    TurnAttempt(
                        server="192.0.2.10:3478",
                        transport="udp",
                        ok=False,
                        error="refused",
                        error_code=answered,
                        elapsed_ms=1.0,
                    )
                )
            if deadline_s is not None:
                recorder.deadline = time.monotonic() + deadline_s
            await connection.gather_candidates()
        return connection, recorder

    monkeypatch.setattr(Connection, "gather_candidates", Connection.gather_candidates)
    connection, recorder = asyncio.run(run())
    return connection, recorder, allocations


def _relays(connection: Connection) -> list[str]:
    return [str(p.transport) for p in connection._protocols if hasattr(p, "transport")]


def test_no_relay_candidate_tries_the_next_transports_in_order_until_one_relays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connection, recorder, allocations = _gather(
        monkeypatch, {"tcp": "fail", "tls": "ok"}, ["tcp", "tls"]
    )
    assert allocations.asked == ["tcp", "tls"]
    assert [c.type for c in connection.local_candidates] == ["host", "relay"]
    assert _relays(connection) == ["tls"]
    assert recorder.relay_url == "tls-url"  # the row names the URL that relayed


def test_the_first_transport_that_relays_ends_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    connection, recorder, allocations = _gather(
        monkeypatch, {"tcp": "ok", "tls": "ok"}, ["tcp", "tls"]
    )
    assert allocations.asked == ["tcp"]
    assert _relays(connection) == ["tcp"] and recorder.relay_url == "tcp-url"


def test_a_relay_candidate_of_aioice_s_own_needs_no_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, recorder, allocations = _gather(monkeypatch, {"tcp": "ok"}, ["tcp"], own="relay")
    assert allocations.asked == []
    assert recorder.relay_url == "udp-url"


def test_a_server_that_answered_with_an_error_is_not_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 401 (or a quota's 486/508) would be the answer over any transport: the call fails as
    turn-auth (turn-quota) as it did, without another allocation."""
    _, recorder, allocations = _gather(monkeypatch, {"tcp": "ok"}, ["tcp"], answered=401)
    assert allocations.asked == []
    assert recorder.refusal() == ("turn-auth", "the TURN server answered 401")


def test_every_transport_failing_leaves_the_candidates_aioice_gathered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connection, recorder, allocations = _gather(
        monkeypatch, {"tcp": "fail", "tls": "fail"}, ["tcp", "tls"]
    )
    assert allocations.asked == ["tcp", "tls"]
    assert [c.type for c in connection.local_candidates] == ["host"]
    assert recorder.relay_url == "udp-url"


def test_a_hanging_allocation_ends_with_the_gathering_timeout_and_the_next_is_not_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fallback stays inside the call's gathering timeout (less the margin for building the
    description), so it never turns into timeout:gathering by itself."""
    connection, _, allocations = _gather(
        monkeypatch, {"tcp": "hang", "tls": "ok"}, ["tcp", "tls"], deadline_s=0.3
    )
    assert allocations.asked == ["tcp"]
    assert [c.type for c in connection.local_candidates] == ["host"]


def test_no_time_left_tries_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, allocations = _gather(monkeypatch, {"tcp": "ok"}, ["tcp"], deadline_s=0.0)
    assert allocations.asked == []


def test_each_fallback_gets_aioice_s_own_window_at_most() -> None:
    recorder = TurnRecorder(None)
    assert recorder.budget() == GATHER_WINDOW_S
    recorder.deadline = time.monotonic() + 60
    assert recorder.budget() == GATHER_WINDOW_S
    recorder.deadline = time.monotonic() + 1
    assert 0 < recorder.budget() < 1


def test_the_window_is_aioice_s() -> None:
    window = inspect.signature(Connection.get_component_candidates).parameters["timeout"]
    assert window.default == GATHER_WINDOW_S
    relayed = inspect.signature(aioice_ice.relayed_candidate).parameters
    assert set(relayed) == {
        "component",
        "hide_related_address",
        "protocol_factory",
        "turn_server",
        "turn_username",
        "turn_password",
        "turn_ssl",
        "turn_transport",
    }
    connection = Connection(ice_controlling=True)
    for attribute in ("_components", "_local_candidates", "_protocols", "_transport_policy"):
        assert hasattr(connection, attribute), attribute
