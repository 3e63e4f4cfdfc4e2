"""Changing a built network while it carries a call: cut a link, change its impairment, reboot a
NAT. The timeline of a call (`simnet.call.timeline`) drives these.

Each function is blocking kernel work (`netns.entered`, never across an await); call it through
`asyncio.to_thread` from a coroutine.

* A cut is its own nftables `netdev` table at *both* ends of the attachment veth, dropping on
  ingress: packets leave the sender normally and vanish on the wire (no EPERM for the sender's
  socket), whichever link backend runs, and the link's own impairment stays untouched underneath,
  so removing the table is the whole restore.
* A new impairment replaces the link's qdiscs and loss/duplication chain, whatever it changes.
  With netem, the netem qdisc is replaced: what it held is dropped, and the new one starts
  empty. With the userspace backend, delay, jitter, reordering and bursty loss change in the
  link's running delay line (`nfqueue.relink`): the packets it holds keep their release times
  and, without reordering, none after the change overtakes them; a link that starts to delay
  gets its helper (or new queue) first and its queue rules after, and one that stops delaying
  keeps its line as a pass-through, so that nothing it still holds is overtaken.
* A NAT flush empties conntrack (`conntrack -F`) and every dynamic set and map of simnet's NAT
  table in the router's namespace: the mappings and filters are gone, as after a reboot.
* A move re-attaches a host (`move`): its current interface loses its default route and address
  and goes down (its cable's carrier drops on the old LAN), the interface planned for the new
  network (`simnet.net.plan.Attachment`) comes up with its address and a default route through
  the new gateway, and the old NAT forgets the host (`forget_host`): its conntrack entries and
  its NAT state (mappings, reverse maps, permissions) of the old address are deleted. All of it
  netlink (pyroute2) and libnftables from this thread: no process is started.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import nftables
from pyroute2 import Conntrack, IPRoute

from simnet.addresses import IPAddress, default_route, host_network, socket_family
from simnet.errors import SimnetError
from simnet.net import netns
from simnet.net.forward_rules import ADF_SET, FORWARD_TABLE
from simnet.net.impair.chooser import choose_backend, link_target
from simnet.net.impair.kernel import clear_egress, nft, tc_batch
from simnet.net.impair.nfqueue import relink
from simnet.net.impair.rules import NFT_TABLE, netem_batch
from simnet.net.nftables import TABLE as NAT_TABLE
from simnet.net.plan import CORE, Attachment, NetworkPlan, Veth
from simnet.scenario.model import DIRECTIONS, LinkSpec

CUT_TABLE = "simnet_cut"
NAT_STATE = ("used", "rev_addr", "rev_port", "eim", "adm", "busy", "adf")  # nftables._state


def attachment(plan: NetworkPlan, node: str) -> Veth:
    """The veth that attaches `node` to its network (the core or its router's LAN)."""
    for veth in plan.veths:
        if veth.a == node:
            return veth
    raise SimnetError(f"'{node}' has no attachment link in this network")


def _cut_table(ifname: str) -> str:
    return f"{CUT_TABLE}_{ifname.replace('-', '_')}"


def _ends(veth: Veth, ns_of: dict[str, str]) -> list[tuple[str, str]]:
    return [(ns_of[veth.a], veth.a_if), (ns_of[veth.b], veth.b_if)]


def cut(plan: NetworkPlan, ns_of: dict[str, str], node: str, veth: Veth | None = None) -> None:
    """Drop every packet on `node`'s attachment link (`veth`: the one it is on now, if it has
    moved), both directions (idempotent)."""
    for ns, ifname in _ends(veth or attachment(plan, node), ns_of):
        table = _cut_table(ifname)
        nft(
            ns,
            f"table netdev {table} {{\n"
            f"  chain ingress {{\n"
            f'    type filter hook ingress device "{ifname}" priority -500; policy drop;\n'
            f"  }}\n"
            f"}}\n",
            f"cut of {node}",
        )


def uncut(plan: NetworkPlan, ns_of: dict[str, str], node: str, veth: Veth | None = None) -> None:
    """Remove a cut of `node`'s link (or of `veth`; nothing to do if there is none)."""
    for ns, ifname in _ends(veth or attachment(plan, node), ns_of):
        with netns.entered(ns):
            nftables.Nftables().cmd(f"delete table netdev {_cut_table(ifname)}")


def set_link(plan: NetworkPlan, ns_of: dict[str, str], node: str, spec: LinkSpec | None) -> None:
    """Make `node`'s link impairment `spec` (None: the ideal link), replacing the current one.

    Returns once the new impairment is in force (with the userspace backend: once the delay
    line has answered that it is). The link keeps its MTU.
    """
    veth = attachment(plan, node)
    mtu = veth.link.mtu if veth.link is not None else None
    new = link_target(plan, ns_of, veth, (spec or LinkSpec()).model_copy(update={"mtu": mtu}))
    backend = choose_backend(new.a_ns)
    if backend.name != "netem":
        relink(new)
        return
    for direction in DIRECTIONS:
        ns, dev = new.sender(direction)
        clear_egress(ns, dev, NFT_TABLE)
        tc_batch(ns, netem_batch(new, direction), f"{node} ({direction})")


def nat_flush(ns: str, name: str) -> None:
    """Reboot NAT `name` (in namespace `ns`): forget every connection and mapping."""
    with netns.entered(ns):
        done = subprocess.run(["conntrack", "-F"], capture_output=True, text=True)
        # an IPv6 side's state too: its connections, and the pairs of its address-dependent
        # filtering (neither exists in an IPv4-only router: nothing to flush, no error)
        subprocess.run(["conntrack", "-F", "-f", "ipv6"], capture_output=True, text=True)
        lib = nftables.Nftables()
        lib.cmd(f"flush set inet {FORWARD_TABLE} {ADF_SET}")
        family = _nat_table_family(lib)
        for state in NAT_STATE if family else ():
            for kind in ("set", "map"):
                rc, _, _ = lib.cmd(f"flush {kind} {family} {NAT_TABLE} {state}")
                if rc == 0:
                    break
    if done.returncode != 0:
        raise SimnetError(f"conntrack -F failed in NAT {name}: {done.stderr.strip()}")


def move(ns_of: dict[str, str], host: str, old: Attachment, new: Attachment) -> int:
    """Re-attach `host` from `old` to `new` (see the module's docstring); returns how many
    conntrack entries of the old address its old NAT deleted.

    Break before make, as a phone that walks out of Wi-Fi range: the old interface is gone
    before the new one is up, so no packet leaves from the old address once the new one exists.
    """
    with netns.entered(ns_of[host]), IPRoute() as ipr:
        before, after = _index(ipr, old.veth.a_if), _index(ipr, new.veth.a_if)
        ipr.flush_routes(oif=before)  # the default route, and a host's on-link core route
        ipr.addr(
            "del",
            index=before,
            family=socket_family(old.address.ip),
            address=str(old.address.ip),
            prefixlen=_prefix(old),
        )
        ipr.link("set", index=before, state="down")
        ipr.link("set", index=after, state="up")
        family = socket_family(new.address.ip)
        ipr.addr(
            "add", index=after, family=family, address=str(new.address.ip), prefixlen=_prefix(new)
        )
        if new.network == CORE:  # a public host reaches its gateway (the core) on-link
            gateway_route = str(host_network(new.gateway))
            ipr.route("add", family=family, dst=gateway_route, oif=after, scope=ROUTE_SCOPE_LINK)
        everywhere = str(default_route(new.gateway.version))
        ipr.route("add", family=family, dst=everywhere, gateway=str(new.gateway), oif=after)
    if old.network == CORE:
        return 0  # a public address: no NAT held anything for it
    return forget_host(ns_of[old.network], old.address.ip)


ROUTE_SCOPE_LINK = 253


def _prefix(attachment: Attachment) -> int:
    return attachment.address.network.prefixlen


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise SimnetError(f"interface {ifname} is missing; cannot move the host")
    return int(found[0])


def forget_host(ns: str, address: IPAddress) -> int:
    """Make the router in namespace `ns` forget `address` (a host that left its LAN): delete
    every conntrack entry from or to it, and every element of simnet's NAT state that maps or
    permits it. Returns the number of conntrack entries deleted."""
    with netns.entered(ns):
        ct = Conntrack()
        try:
            doomed = [
                entry
                for entry in ct.dump_entries()
                if str(address) in (entry.tuple_orig.saddr, entry.tuple_reply.saddr)
            ]
            deleted = 0
            for entry in doomed:
                try:
                    ct.delete(entry)
                    deleted += 1
                except OSError:  # it expired or was deleted meanwhile
                    continue
        finally:
            ct.close()
        _forget_nat_state(nftables.Nftables(), address)
    return deleted


def _nat_table_family(lib: nftables.Nftables) -> str | None:
    """The family (`ip`, `ip6`, `inet`) of the namespace's NAT table (`simnet.net.nftables`
    chooses it by the router's addresses), None if it has none."""
    rc, output, _ = lib.cmd("list tables")
    for line in str(output).splitlines() if rc == 0 else ():
        words = line.split()
        if len(words) == 3 and words[0] == "table" and words[2] == NAT_TABLE:
            return str(words[1])
    return None


def _forget_nat_state(lib: nftables.Nftables, address: IPAddress) -> None:
    """Delete `address`'s elements from the NAT table's sets and maps (`simnet.net.nftables`):
    those keyed by it (eim, adm, busy) and, through rev_addr, the external ports mapped to it
    (used, rev_addr, rev_port, adf). A router without the table (no NAT) has nothing to do."""
    family = _nat_table_family(lib)
    if family is None:
        return
    lib.set_json_output(True)
    state: dict[str, list[Any]] = {}
    for name in NAT_STATE:
        for kind in ("map", "set"):
            rc, output, _ = lib.cmd(f"list {kind} {family} {NAT_TABLE} {name}")
            if rc == 0:
                state[name] = _elements(output)
                break
    lib.set_json_output(False)
    if not state:
        return
    ip = str(address)
    ports = {_key(e) for e in state.get("rev_addr", []) if _value(e) == ip}
    doomed: dict[str, list[str]] = {}
    for name, elements in state.items():
        for element in elements:
            key = _key(element)
            parts = key if isinstance(key, list) else [key]
            mine = (name in ("eim", "adm", "busy") and parts[0] == ip) or (
                name in ("used", "rev_addr", "rev_port", "adf") and parts[0] in ports
            )
            if mine:
                doomed.setdefault(name, []).append(" . ".join(str(p) for p in parts))
    for name, keys in doomed.items():
        # one element at a time: one that timed out meanwhile must not keep the rest
        for key in keys:
            lib.cmd(f"delete element {family} {NAT_TABLE} {name} {{ {key} }}")


def _elements(output: str) -> list[Any]:
    """The `elem` list of `nft -j list map|set` output."""
    for item in json.loads(output).get("nftables", []):
        for kind in ("map", "set"):
            if kind in item:
                return list(item[kind].get("elem", []))
    return []


def _unwrap(value: Any) -> Any:
    """An element's part without its timeout/expiry wrapper."""
    if isinstance(value, dict) and "elem" in value:
        return _unwrap(value["elem"]["val"])
    if isinstance(value, dict) and "concat" in value:
        return [_unwrap(v) for v in value["concat"]]
    return value


def _key(element: Any) -> Any:
    """A set element, or a map element's key (a list for a concatenation)."""
    return _unwrap(element[0] if isinstance(element, list) else element)


def _value(element: Any) -> Any:
    return _unwrap(element[1]) if isinstance(element, list) else None
