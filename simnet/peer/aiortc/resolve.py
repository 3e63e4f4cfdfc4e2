"""ICE server names resolved the way the peer's host resolves them, before aiortc sees them.

A call may hand its peers names (`call.ice_urls: names`, e.g. `turn:turn.simnet.test:3478`).
aioice resolves a TURN server's name inside `loop.create_datagram_endpoint`, i.e. with
`getaddrinfo` on an executor thread and the process's /etc/resolv.conf: in a process hosting
peers of several namespaces that thread is in none of them, and no process started by simnet sees
a namespace's own resolv.conf (a namespace is entered with `setns`, not `ip netns exec`, so
nothing is bind-mounted over /etc/resolv.conf). So the agent resolves each name itself, as
`getaddrinfo` would on that host, and hands aiortc the addresses:

- the resolver is the namespace's: the nameservers of `/etc/netns/<namespace>/resolv.conf` (the
  iproute2 convention simnet's DNS writes), asked from a socket inside the namespace (the
  process is in it, or `simnet.peer.aiortc.namespaced` puts the socket there);
- AAAA and A records are asked, and kept only for a family the host has a global address of
  (`getaddrinfo`'s AI_ADDRCONFIG), IPv6 first (RFC 6724's default policy prefers a global IPv6
  destination to an IPv4 one): a DNS64 resolver's synthesized AAAA is then what an IPv6-only
  host uses, and a dual-stack host's first choice is IPv6;
- each URL with a name becomes one URL per address, in that order, in place; aiortc takes the
  first TURN URL it accepts (and IPv4 for STUN), as it takes the first address `getaddrinfo`
  gives.

A name that does not resolve is left out (its server gives no candidate, as in a browser), and
the call goes on with what remains.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path

from simnet.addresses import IPV6, Family, IPAddress
from simnet.peer.iceurl import IceUrl
from simnet.peer.protocol import IceServer

log = logging.getLogger("simnet.peer.aiortc.resolve")

NETNS_ETC = Path("/etc/netns")
RESOLVE_TIMEOUT_S = 3.0  # both queries, all nameservers


def resolv_conf(namespace: str) -> Path:
    """The resolver configuration of `namespace` (iproute2's per-namespace /etc)."""
    return NETNS_ETC / namespace / "resolv.conf"


def host_families() -> set[Family]:
    """The families the current namespace has a global (not loopback, not link-local) address
    of: aioice's own enumeration, which `simnet.peer.aiortc.namespaced` binds to the peer's
    namespace."""
    from aioice import ice  # aiortc's side only, where a call needs it

    families: set[Family] = set()
    for text in ice.get_host_addresses(use_ipv4=True, use_ipv6=True):
        address = ip_address(text)
        if not (address.is_loopback or address.is_link_local):
            families.add(address.version)
    return families


def ordered(addresses: list[IPAddress], families: set[Family]) -> list[IPAddress]:
    """`addresses` of the host's `families` only (all of them when the host has none), IPv6
    first, each family in the order the resolver gave."""
    usable = [a for a in addresses if a.version in families] if families else list(addresses)
    return sorted(usable, key=lambda a: 0 if a.version == IPV6 else 1)


async def lookup(name: str, namespace: str) -> list[IPAddress]:
    """The AAAA and A records of `name` from `namespace`'s resolver (none when it has no
    resolver or the name does not resolve)."""
    import dns.asyncresolver  # aioice's dependency, loaded only for a call with names
    import dns.exception

    conf = resolv_conf(namespace)
    if not conf.is_file():
        log.warning("no resolver for %s (%s is missing): %s is not resolved", namespace, conf, name)
        return []
    try:
        resolver = dns.asyncresolver.Resolver(filename=str(conf))
    except dns.exception.DNSException as exc:  # no nameserver in it
        log.warning("no resolver for %s (%s: %s): %s is not resolved", namespace, conf, exc, name)
        return []
    resolver.lifetime = RESOLVE_TIMEOUT_S
    found: list[IPAddress] = []
    for kind in ("AAAA", "A"):
        try:
            answer = await resolver.resolve(name, kind, search=False)
        except dns.exception.DNSException as exc:
            log.info("%s %s: %s", name, kind, exc)
            continue
        found += [ip_address(record.to_text()) for record in answer]
    return found


async def resolved_servers(
    servers: list[IceServer], namespace: Callable[[], str]
) -> list[IceServer]:
    """`servers` with every URL whose host is a name replaced by one URL per address the host
    would use (see the module's docstring); URLs with an address stay as they are.
    `namespace()` names the peer's namespace (asked only when a URL has a name)."""
    families: set[Family] | None = None
    cache: dict[str, list[IPAddress]] = {}
    out: list[IceServer] = []
    for server in servers:
        urls: list[str] = []
        for text in server.urls:
            try:
                url = IceUrl.parse(text)
            except ValueError:
                urls.append(text)  # aiortc skips it, as it would have
                continue
            if url.address is not None:
                urls.append(text)
                continue
            if families is None:
                families = host_families()
            if url.host not in cache:
                cache[url.host] = ordered(await lookup(url.host, namespace()), families)
            urls += [str(url.with_host(address)) for address in cache[url.host]]
        if urls:
            out.append(server.model_copy(update={"urls": urls}))
    return out
