"""Calls from networks whose only way out is an HTTP proxy (`firewall.proxy_only`).

Which hosts are behind which proxy (`proxied_hosts`), the call a side's stack cannot make
there (`unsupported`: a kind without `Capabilities.http_proxy` would only wait out its ICE
timeout, so the call ends at once with `proxy-unsupported`), and what the proxy's access log says
about a call (`proxy_figures`): whether a side went through it, the TURN server it tunnelled to,
and whether it refused a tunnel the call needed (`proxy-refused`).

The log, and the tunnels still open (squid logs a tunnel only when it closes, which may be after
the row is made), are read by the client addresses squid sees (the host's own and its routers'
WAN addresses: a NAT in front of the host hides it) from the moment the call started; calls made
one after another (a scenario's calls) are told apart that way, concurrent calls of one network
behind the same proxy (a load level) are not.
"""

from __future__ import annotations

from dataclasses import dataclass

from simnet.net.builder import Network
from simnet.peerkinds import kind
from simnet.scenario.model import CallSpec, Scenario
from simnet.services.squid import ProxyRequest, SquidHandle


@dataclass(frozen=True)
class ProxySide:
    """The proxy a host's network lets out alone, and the addresses it sees the host by."""

    proxy: str  # the server's name
    url: str  # http://[user:password@]address:port (`SquidHandle.client_url`)
    clients: frozenset[str]


@dataclass(frozen=True)
class ProxyFigures:
    via_proxy: bool  # a side tunnelled through its proxy during the call
    target: str | None  # the TURN server host:port it tunnelled to
    refused: ProxyRequest | None  # a tunnel the proxy refused during the call


def proxied_hosts(
    network: Network, hosts: list[str], proxies: dict[str, SquidHandle]
) -> dict[str, ProxySide]:
    """Each of `hosts` behind a `proxy_only` firewall -> its proxy."""
    out: dict[str, ProxySide] = {}
    for host in hosts:
        routers = network.plan.routers_of(host)
        for router in routers:
            name = router.firewall.proxy_only if router.firewall else None
            if name is None or name not in proxies:
                continue
            clients = {str(a) for a in network.plan.nodes[host].all_addresses()}
            for r in routers:
                clients |= {str(a) for a in (r.wan_address, r.wan6) if a is not None}
            out[host] = ProxySide(name, proxies[name].client_url(), frozenset(clients))
            break
    return out


def unsupported(scenario: Scenario, call: CallSpec, sides: dict[str, ProxySide]) -> str | None:
    """Why the call cannot be made (a side behind a proxy its stack cannot use), or None."""
    for host in (call.offerer, call.answerer):
        peer = scenario.hosts[host].peer_kind
        if host in sides and not kind(peer).capabilities.http_proxy:
            return (
                f"{host}'s network lets out only the proxy {sides[host].proxy} "
                f"(firewall.proxy_only), and its stack ({peer}) cannot use an HTTP proxy"
            )
    return None


def proxy_figures(
    call: CallSpec,
    sides: dict[str, ProxySide],
    proxies: dict[str, SquidHandle],
    turn_addresses: set[str],
    since: float,
) -> ProxyFigures | None:
    """What the proxies logged for the call's sides since `since` (Unix time); None when no
    side is behind a proxy. `turn_addresses`: the TURN servers' addresses, and their names
    (a browser given `call.ice_urls: names` asks the proxy for `CONNECT name:443`)."""
    requests: list[ProxyRequest] = []
    for host in (call.offerer, call.answerer):
        side = sides.get(host)
        if side is None:
            continue
        proxy = proxies[side.proxy]
        # the open tunnels first, then the log: squid writes a tunnel's line as it drops it from
        # the open ones, so a tunnel closing between the two reads is in the second. Read the
        # other way round, it was in neither (CI30: `via_proxy` false for a relayed pion call)
        open_then_logged = (*proxy.open_tunnels(), *proxy.access_log())
        requests += [
            r
            for r in open_then_logged
            if r.method == "CONNECT" and r.client in side.clients and r.time >= since
        ]
    if not any(h in sides for h in (call.offerer, call.answerer)):
        return None
    tunnels = [r for r in requests if not r.denied]
    to_turn = [r for r in tunnels if r.target.rsplit(":", 1)[0].strip("[]") in turn_addresses]
    refused = next((r for r in requests if r.denied), None)
    return ProxyFigures(
        via_proxy=bool(tunnels),
        target=to_turn[0].target if to_turn else None,
        refused=refused,
    )
