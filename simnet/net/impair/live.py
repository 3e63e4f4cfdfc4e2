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
"""

from __future__ import annotations

import subprocess

import nftables

from simnet.errors import SimnetError
from simnet.net import netns
from simnet.net.impair.chooser import choose_backend, link_target
from simnet.net.impair.kernel import clear_egress, nft, tc_batch
from simnet.net.impair.nfqueue import relink
from simnet.net.impair.rules import NFT_TABLE, netem_batch
from simnet.net.nftables import TABLE as NAT_TABLE
from simnet.net.plan import NetworkPlan, Veth
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


def cut(plan: NetworkPlan, ns_of: dict[str, str], node: str) -> None:
    """Drop every packet on `node`'s attachment link, both directions (idempotent)."""
    for ns, ifname in _ends(attachment(plan, node), ns_of):
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


def uncut(plan: NetworkPlan, ns_of: dict[str, str], node: str) -> None:
    """Remove a cut of `node`'s link (nothing to do if there is none)."""
    for ns, ifname in _ends(attachment(plan, node), ns_of):
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
        lib = nftables.Nftables()
        for state in NAT_STATE:
            for kind in ("set", "map"):
                rc, _, _ = lib.cmd(f"flush {kind} ip {NAT_TABLE} {state}")
                if rc == 0:
                    break
    if done.returncode != 0:
        raise SimnetError(f"conntrack -F failed in NAT {name}: {done.stderr.strip()}")
