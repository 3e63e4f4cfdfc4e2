"""An http-proxy server and a network whose only way out is that proxy.

`servers.NAME: {kind: http-proxy}` is squid with the ports `CONNECT` may reach and optional basic
authentication; `nats.X.firewall.proxy_only: NAME` lets nothing leave X's LAN except TCP to the
proxy's addresses and port. Bad input is one `ScenarioError` naming the file and field; the
rendered firewall loads (nft -c, as root) and accepts nothing else from the LAN."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from simnet.errors import EnvironmentProblem, ScenarioError
from simnet.net.nftables import render_router
from simnet.net.plan import LAN_IF, plan_network
from simnet.run import one_call
from simnet.run.proxied import ProxySide, proxy_figures
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import PROXY_PORT, CallSpec, ProxyAuth
from simnet.services.squid import (
    ProxyConfig,
    ProxyRequest,
    SquidFiles,
    parse_access_line,
    parse_active_requests,
    squid_config,
)
from tests.unit.nft_scratch import nft_check


def corporate(**proxy: Any) -> dict[str, Any]:
    return {
        "nats": {"corp": {"preset": "symmetric", "firewall": {"proxy_only": "proxy"}}},
        "hosts": {"alice": {"behind": "corp"}, "bob": {"behind": "internet"}},
        "servers": {
            "proxy": {"kind": "http-proxy", **proxy},
            "turn": {"kind": "turn"},
            "signaling": {"kind": "signaling"},
        },
    }


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(data, source="corp.yaml")
    return str(caught.value)


def test_proxy_only_must_name_an_http_proxy() -> None:
    data = corporate()
    data["nats"]["corp"]["firewall"]["proxy_only"] = "turn"
    message = error_of(data)
    assert message.startswith("corp.yaml")
    assert "nats.corp.firewall.proxy_only" in message and "'turn'" in message
    assert "http-proxy servers: proxy" in message
    data["nats"]["corp"]["firewall"]["proxy_only"] = "nowhere"
    assert "'nowhere' is not an http-proxy" in error_of(data)
    assert error_of(data).endswith(
        "(add `servers: {nowhere: {kind: http-proxy}}`)"
    )  # YAML to paste


@pytest.mark.parametrize("ports", [[0], [65536], [], ["x"]])
def test_connect_ports_out_of_range_are_refused(ports: list[Any]) -> None:
    message = error_of(corporate(connect_ports=ports))
    assert message.startswith("corp.yaml") and "connect_ports" in message


def test_proxy_fields_belong_to_a_proxy() -> None:
    data = corporate()
    data["servers"]["turn"]["connect_ports"] = [443]
    assert "only an http-proxy has them" in error_of(data)
    data = corporate()
    data["servers"]["turn"]["auth"] = {"user": "u", "password": "p"}
    assert "servers.turn" in error_of(data)
    assert "not rest" in error_of(corporate(auth="rest"))


def test_a_valid_proxy_has_its_defaults() -> None:
    scenario = scenario_from_dict(corporate(auth={"user": "alice", "password": "s3cret"}))
    proxy = scenario.servers["proxy"]
    assert proxy.proxy_ports == [443]
    assert proxy.proxy_auth == ProxyAuth(user="alice", password="s3cret")


def test_the_proxy_is_the_lans_only_way_out(scratch_ns: str) -> None:
    plan = plan_network(scenario_from_dict(corporate()))
    router = plan.nodes["corp"].router
    assert router is not None and router.proxy is not None
    addresses, port = router.proxy
    assert port == PROXY_PORT and addresses == tuple(plan.nodes["proxy"].all_addresses())
    ruleset = render_router(router)
    lines = [line.strip() for line in ruleset.splitlines()]
    accept = f'iifname "{LAN_IF}" ip daddr {{ {addresses[0]} }} tcp dport {PROXY_PORT} accept'
    assert accept in lines, ruleset
    assert lines.index(accept) < lines.index(f'iifname "{LAN_IF}" drop')
    done = nft_check(scratch_ns, ruleset)
    assert done.returncode == 0, f"nft rejected:\n{ruleset}\n{done.stderr}"


def test_squid_config_tunnels_only_to_connect_ports_and_asks_credentials() -> None:
    files = SquidFiles(Path("/run/x"))
    config = ProxyConfig((IPv4Address("192.0.2.9"),), (8443,), ProxyAuth(user="u", password="p"))
    text = squid_config(config, files).splitlines()
    assert "http_port 192.0.2.9:3128" in text
    assert "acl connect_ports port 8443" in text
    assert "http_access deny CONNECT !connect_ports" in text
    assert any(line.startswith("auth_param basic program") for line in text)
    assert text.index("http_access deny !users") < text.index("http_access allow all")
    assert "access_log stdio:/run/x/access.log squid" in text


def test_access_log_lines_are_read() -> None:
    line = (
        "1796554661.399      3 10.0.0.2 TCP_DENIED/403 3397 CONNECT 192.0.2.3:443 - HIER_NONE/- -"
    )
    request = parse_access_line(line)
    assert request is not None and request.denied
    assert (request.method, request.target, request.client) == (
        "CONNECT",
        "192.0.2.3:443",
        "10.0.0.2",
    )
    assert parse_access_line("garbage") is None


#: squid 5.7's `active_requests` during a Chromium call behind the proxy (cut): the manager's own
#: request, an open tunnel to TURN, and a request to Google that went nowhere.
ACTIVE_REQUESTS = """HTTP/1.1 200 OK
Server: squid/5.7

Connection: 0x559ce9df9908
\tFD 20, read 75, wrote 0
\tremote: 192.0.2.10:58160
\tlocal: 192.0.2.10:3128
uri http://simnet-proxy:3128/squid-internal-mgr/active_requests
logType TCP_MISS
start 1796564511.611701 (0.000000 seconds ago)

Connection: 0x559ce9dab9b8
\tFD 17, read 2432019, wrote 299875
\tremote: 198.51.100.10:48720
\tlocal: 192.0.2.10:3128
uri 192.0.2.11:443
logType TCP_TUNNEL
start 1796564500.547851 (11.063850 seconds ago)

Connection: 0x559ce9d55c58
\tremote: [2001:db8:1::10]:48704
uri accounts.google.com:443
logType NONE_NONE
start 1796564500.187120 (11.424581 seconds ago)
"""


def test_the_managers_open_tunnels_are_read() -> None:
    (tunnel,) = parse_active_requests(ACTIVE_REQUESTS)
    assert (tunnel.client, tunnel.target, tunnel.method) == (
        "198.51.100.10",
        "192.0.2.11:443",
        "CONNECT",
    )
    assert tunnel.time == 1796564500.547851 and not tunnel.denied
    v6 = ACTIVE_REQUESTS.replace("198.51.100.10:48720", "[2001:db8:1::10]:48720")
    assert [t.client for t in parse_active_requests(v6)] == ["2001:db8:1::10"]
    assert parse_active_requests("HTTP/1.1 403 Forbidden\r\n\r\n") == []


class _ClosingTunnel:
    """A proxy whose one tunnel closes right after the first question about it: open until
    then, logged from then on (squid writes the line as it drops the tunnel)."""

    def __init__(self) -> None:
        self.asked = 0
        self.tunnel = ProxyRequest(
            100.0, "198.51.100.10", "TCP_TUNNEL/200", "CONNECT", "192.0.2.10:443"
        )

    def _open(self) -> bool:
        self.asked += 1
        return self.asked == 1

    def open_tunnels(self) -> list[ProxyRequest]:
        return [self.tunnel] if self._open() else []

    def access_log(self) -> list[ProxyRequest]:
        return [] if self._open() else [self.tunnel]


def test_a_tunnel_closing_while_the_proxy_is_read_is_still_seen() -> None:
    """Pure logic of which reads see a tunnel: whenever it closes, the open tunnels (read
    first) or the log (read second) holds it."""
    sides = {"alice": ProxySide("proxy", "http://192.0.2.11:3128", frozenset({"198.51.100.10"}))}
    call = CallSpec(offerer="alice", answerer="bob")
    figures = proxy_figures(call, sides, {"proxy": _ClosingTunnel()}, {"192.0.2.10"}, 99.0)  # type: ignore[dict-item]
    assert figures is not None and figures.via_proxy and figures.target == "192.0.2.10:443"


def test_a_dual_stack_lan_reaches_the_proxy_over_both_families_only(scratch_ns: str) -> None:
    data = corporate()
    data["nats"]["corp"]["ip"] = "dual"
    plan = plan_network(scenario_from_dict(data))
    router = plan.nodes["corp"].router
    assert router is not None and router.proxy is not None and router.lan6 is not None
    ruleset = render_router(router)
    lines = [line.strip() for line in ruleset.splitlines()]
    for address in router.proxy[0]:
        ip = "ip" if address.version == 4 else "ip6"
        assert f'iifname "{LAN_IF}" {ip} daddr {{ {address} }} tcp dport {PROXY_PORT} accept' in (
            lines
        ), ruleset
    assert {a.version for a in router.proxy[0]} == {4, 6}
    assert lines.count(f'iifname "{LAN_IF}" drop') == 2  # the IPv4 chain's and the IPv6 one's
    done = nft_check(scratch_ns, ruleset)
    assert done.returncode == 0, f"nft rejected:\n{ruleset}\n{done.stderr}"


def test_a_machine_without_squid_is_told_before_anything_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(one_call, "squid_installed", lambda: False)
    scenario = scenario_from_dict(corporate())
    with pytest.raises(EnvironmentProblem, match=r"corp.yaml: servers.proxy is an http-proxy"):
        one_call.call_of(scenario, "corp.yaml")
