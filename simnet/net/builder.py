"""Applies a network plan to the kernel: namespaces, veths, bridges, addresses, routes, nftables.

Everything goes through netlink (pyroute2) and libnftables from this process, one namespace at a
time, by switching the calling thread into each namespace (see `netns`). Every namespace is
registered with the run before it exists, so a failure half-way still tears down cleanly.

`timing_build()` records where a build's time goes, per kind of kernel operation (for
`benchmarks/topology.py`); outside it, the records cost one context-variable lookup each.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import nftables
from pyroute2 import IPRoute

from simnet.addresses import IPV6, IPAddress, socket_family
from simnet.errors import SimnetError
from simnet.net import netns
from simnet.net.impair.chooser import apply_links
from simnet.net.nat64 import TUN_IF, create_tun, nat64_of, start_tayga, tun_routes
from simnet.net.nftables import render_router
from simnet.net.plan import NetworkPlan, Node
from simnet.net.registry import Run
from simnet.signals import signals_held, sigterm_raises

ROUTE_SCOPE_LINK = 253
BODY = " / inside"  # suffix: what ran inside an enclosing operation (taken out of it)


@dataclass
class BuildTimes:
    """Seconds and counts per kind of kernel operation of the builds made inside
    `timing_build()`. An operation that encloses others (entering a namespace) includes them;
    its name + `BODY` is what ran inside, so `exclusive()` can take it out."""

    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # this thread's CPU in them

    def add(self, op: str, seconds: float, cpu_seconds: float = 0.0) -> None:
        self.seconds[op] = self.seconds.get(op, 0.0) + seconds
        self.counts[op] = self.counts.get(op, 0) + 1
        self.cpu_seconds[op] = self.cpu_seconds.get(op, 0.0) + cpu_seconds

    def exclusive(self, cpu: bool = False) -> dict[str, float]:
        """Seconds (wall, or with `cpu` this thread's CPU: the rest is waiting in the kernel)
        per operation, each counted once: an enclosing operation (a namespace switch) without
        what ran inside it."""
        seconds = self.cpu_seconds if cpu else self.seconds
        return {
            op: spent - seconds.get(op + BODY, 0.0)
            for op, spent in seconds.items()
            if not op.endswith(BODY)
        }


_times: ContextVar[BuildTimes | None] = ContextVar("simnet_build_times", default=None)


@contextlib.contextmanager
def timing_build() -> Iterator[BuildTimes]:
    """Record the operations of every build in this block (this thread and context only)."""
    times = BuildTimes()
    token = _times.set(times)
    try:
        yield times
    finally:
        _times.reset(token)


@contextlib.contextmanager
def _op(name: str) -> Iterator[None]:
    times = _times.get()
    if times is None:
        yield
        return
    start, cpu = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        times.add(name, time.perf_counter() - start, time.thread_time() - cpu)


@dataclass
class Network:
    """A built network: the plan plus where each node lives."""

    plan: NetworkPlan
    run: Run

    def ns(self, node: str) -> str:
        if node not in self.plan.nodes:
            raise SimnetError(
                f"no host '{node}' in this network; hosts: {', '.join(self.plan.nodes)}"
            )
        return self.run.ns_name(node)

    def address(self, node: str) -> IPAddress:
        return self.plan.nodes[node].address


def build(plan: NetworkPlan, run: Run) -> Network:
    """Create every namespace and object of `plan`, owned by `run`."""
    ns = {name: run.ns_name(name) for name in plan.nodes}
    run.info["nodes"] = ns
    with _handles() as iprs:
        for node in plan.nodes.values():
            with _op("register namespace with the run"):
                run.register_namespace(ns[node.name])
            create = "netns create (unshare + bind mount) and setns back"
            with _op(create), netns.created(ns[node.name]), _op(create + BODY):
                with _op("sysctls (base, written per namespace)"):
                    _base_sysctls(node)
                with _op("netlink socket (IPRoute)"):
                    iprs[node.name] = IPRoute()
                if nat64_of(node.router) is not None:  # a NAT64's TUN, for tayga to attach to
                    with _op("TUN create (NAT64)"):
                        create_tun(ns[node.name])
        for veth in plan.veths:
            fd = os.open(netns.path_of(ns[veth.b]), os.O_RDONLY)
            try:
                with _op("veth create (peer into its namespace)"):
                    iprs[veth.a].link(
                        "add",
                        ifname=veth.a_if,
                        kind="veth",
                        peer={"ifname": veth.b_if, "net_ns_fd": fd},
                    )
            finally:
                os.close(fd)
        for node in plan.nodes.values():
            _configure_links(iprs[node.name], node, plan)
        for node in plan.nodes.values():
            _configure_routes(iprs[node.name], node)
    for node in plan.nodes.values():
        if node.router is not None:
            enter = "setns into a router and back"
            with _op(enter), netns.entered(ns[node.name]), _op(enter + BODY):
                with _op("nftables ruleset load (libnftables)"):
                    apply_nft(render_router(node.router), where=node.name)
                if node.router.behavior.translates or node.router.lan6 is not None:
                    # the binding timeout: the NAT's, and the IPv6 firewall's (its conntrack)
                    with _op("conntrack sysctls"):
                        timeout = node.router.behavior.udp_timeout_s
                        netns.write_sysctl("net.netfilter.nf_conntrack_udp_timeout", timeout)
                        netns.write_sysctl("net.netfilter.nf_conntrack_udp_timeout_stream", timeout)
    # tayga attaches to the TUN the build made: from then on the NAT64s translate.
    for node in plan.nodes.values():
        if (nat64 := nat64_of(node.router)) is not None:
            with _op("tayga start (NAT64)"):
                start_tayga(run, ns[node.name], node.name, nat64)
    # Link impairments (delay, loss, rate, ...) last: their helpers are registered with `run`.
    with _op("link impairments"):
        apply_links(plan, run, ns)
    with _op("run state saved"):
        run.save()
    return Network(plan, run)


@contextlib.contextmanager
def _handles() -> Iterator[dict[str, IPRoute]]:
    iprs: dict[str, IPRoute] = {}
    try:
        yield iprs
    finally:
        for ipr in iprs.values():
            with _op("netlink socket close"):
                ipr.close()


def _base_sysctls(node: Node) -> None:
    """Per-namespace settings, made before any interface exists so they apply to all.

    IPv6 is on only in a namespace whose node has IPv6 addresses (`Node.families`): elsewhere
    its link-local addresses would only give ICE candidates that lead nowhere. Where it is on,
    duplicate address detection is off: no address of a plan is duplicated, and an address is
    usable at once instead of tentative for a second or more."""
    ipv6 = IPV6 in node.families
    netns.write_sysctl("net.ipv6.conf.all.disable_ipv6", 0 if ipv6 else 1)
    netns.write_sysctl("net.ipv6.conf.default.disable_ipv6", 0 if ipv6 else 1)
    netns.write_sysctl("net.ipv4.conf.all.rp_filter", 0)
    netns.write_sysctl("net.ipv4.conf.default.rp_filter", 0)
    netns.write_sysctl("net.ipv4.ip_forward", 1 if node.forwarding else 0)
    if ipv6:
        netns.write_sysctl("net.ipv6.conf.all.forwarding", 1 if node.forwarding else 0)
        netns.write_sysctl("net.ipv6.conf.all.accept_dad", 0)
        netns.write_sysctl("net.ipv6.conf.default.accept_dad", 0)
    # Where br_netfilter is loaded, bridged frames would traverse the IP hooks of our NATs: a
    # hairpinned packet is then sent back out the bridge port it came in on and dropped.
    for key in ("iptables", "ip6tables", "arptables"):
        with contextlib.suppress(OSError):
            netns.write_sysctl(f"net.bridge.bridge-nf-call-{key}", 0)


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise SimnetError(f"interface {ifname} vanished while building the network")
    return int(found[0])


def _configure_links(ipr: IPRoute, node: Node, plan: NetworkPlan) -> None:
    with _op("link up"):
        ipr.link("set", index=_index(ipr, "lo"), state="up")
    if nat64_of(node.router) is not None:  # made with the namespace (`build`)
        with _op("link up"):
            ipr.link("set", index=_index(ipr, TUN_IF), state="up")
    for bridge in node.bridges:
        with _op("bridge create"):
            ipr.link("add", ifname=bridge, kind="bridge")
    for veth in plan.veths:
        if veth.b == node.name and veth.b_bridge:
            with _op("bridge port (master)"):
                ipr.link("set", index=_index(ipr, veth.b_if), master=_index(ipr, veth.b_bridge))
    # a standby cable's host end stays down until a timeline moves the host onto it
    ifnames = [v.a_if for v in plan.veths if v.a == node.name and not v.standby]
    ifnames += [v.b_if for v in plan.veths if v.b == node.name]
    for ifname in [*node.bridges, *ifnames]:
        with _op("interface index lookup"):
            index = _index(ipr, ifname)
        for address in node.addresses.get(ifname, []):
            with _op("address add"):
                ipr.addr(
                    "add",
                    index=index,
                    family=socket_family(address.ip),
                    address=str(address.ip),
                    prefixlen=address.network.prefixlen,
                )
        with _op("link up"):
            ipr.link("set", index=index, state="up")


def _configure_routes(ipr: IPRoute, node: Node) -> None:
    nat64 = nat64_of(node.router)
    for route in [*node.routes, *(tun_routes(nat64) if nat64 is not None else [])]:
        spec: dict[str, object] = {
            "family": socket_family(route.dst.network_address),
            "dst": str(route.dst),
        }
        if route.blackhole:
            spec["type"] = "blackhole"
        else:
            if route.dev is not None:
                spec["oif"] = _index(ipr, route.dev)
            if route.via is not None:
                spec["gateway"] = str(route.via)
            else:
                spec["scope"] = ROUTE_SCOPE_LINK
        with _op("route add"):
            ipr.route("add", **spec)


def apply_nft(ruleset: str, where: str) -> None:
    """Load a ruleset into the calling thread's namespace through libnftables."""
    if not ruleset:
        return
    nft = nftables.Nftables()
    rc, _, error = nft.cmd(ruleset)
    if rc != 0:
        raise SimnetError(f"nftables rejected the rules for {where}: {error.strip()}")


@contextlib.contextmanager
def emulated_network(
    plan: NetworkPlan, label: str = "", hold_info: dict[str, object] | None = None
) -> Iterator[Network]:
    """Build `plan` for the duration of the block; everything is removed on any exit.

    SIGTERM raises `Terminated` inside the block, so a killed run cleans up like Ctrl-C does.
    """
    with sigterm_raises(), Run(label) as run:
        run.info.update(hold_info or {})
        with signals_held():
            network = build(plan, run)
        yield network
