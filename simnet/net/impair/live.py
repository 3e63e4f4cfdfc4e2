"""Changing a built network while it carries a call: cut a link, change its impairment, reboot a
NAT. The timeline of a call (`simnet.call.timeline`) drives these.

Each function is blocking kernel work (`netns.entered`, never across an await); call it through
`asyncio.to_thread` from a coroutine.

* A cut is its own nftables `netdev` table at *both* ends of the attachment veth, dropping on
  ingress: packets leave the sender normally and vanish on the wire (no EPERM for the sender's
  socket), whichever link backend runs, and the link's own impairment stays untouched underneath,
  so removing the table is the whole restore.
* A new impairment replaces the link's qdiscs and loss/duplication chain. With the userspace
  backend this works only while no delay line is involved (delay, jitter, bursty loss run in a
  helper process whose configuration is fixed when it starts).
* A NAT flush empties conntrack (`conntrack -F`) and every dynamic set and map of simnet's NAT
  table in the router's namespace: the mappings and filters are gone, as after a reboot.
"""

from __future__ import annotations

import subprocess

import nftables

from simnet.errors import SimnetError
from simnet.net import netns
from simnet.net.impair.chooser import choose_backend
from simnet.net.impair.kernel import nft, tc_batch
from simnet.net.impair.rules import NFT_TABLE, LinkTarget, egress_chain, netem_batch, tbf_batch
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

    Both the current and the new impairment must do without a delay line when the backend is
    the userspace one (see the module's docstring).
    """
    veth = attachment(plan, node)
    mtu = veth.link.mtu if veth.link is not None else None
    new = _target(veth, ns_of, (spec or LinkSpec()).model_copy(update={"mtu": mtu}))
    old = _target(veth, ns_of, veth.link or LinkSpec())
    backend = choose_backend(old.a_ns)
    if backend.name != "netem":
        for which, target in (("scenario's", old), ("new", new)):
            if any(target.impairment(d).delays for d in DIRECTIONS):
                raise SimnetError(
                    f"{node}: the {which} link delays (delay, jitter or loss_burst); the "
                    "userspace link backend cannot change such a link during a call",
                    fix="change only loss, duplication and rate, or use a kernel with sch_netem",
                )
    for direction in DIRECTIONS:
        ns, dev = new.sender(direction)
        where = f"{node} ({direction})"
        with netns.entered(ns):
            subprocess.run(["tc", "qdisc", "del", "dev", dev, "root"], capture_output=True)
            nftables.Nftables().cmd(f"delete chain netdev {NFT_TABLE} egress_{dev}")
        if backend.name == "netem":
            tc_batch(ns, netem_batch(new, direction), where)
        else:
            tc_batch(ns, tbf_batch(new, direction), where)
            nft(ns, egress_chain(new, direction), where)


def _target(veth: Veth, ns_of: dict[str, str], spec: LinkSpec) -> LinkTarget:
    return LinkTarget(
        node=veth.a,
        a_ns=ns_of[veth.a],
        a_if=veth.a_if,
        b_ns=ns_of[veth.b],
        b_if=veth.b_if,
        spec=spec,
    )


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
