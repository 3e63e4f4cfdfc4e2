"""NAT64 in a carrier router: tayga translates IPv6 to IPv4, nftables then translates the port.

An IPv6-only carrier's users reach IPv4-only servers through a NAT64 (RFC 6146): the user sends
to `prefix + IPv4 address` (an address its DNS64 resolver synthesized), the router translates
the packet to IPv4 and sends it from its own IPv4 WAN address. Here that is two stages, the
way tayga is deployed as a stateful NAT64 (tayga itself is stateless):

1. **tayga** (user space, over a TUN device) translates each IPv6 packet to IPv4 statelessly
   (RFC 7915), giving every IPv6 source an address of its own from a small IPv4 pool (its
   dynamic map), and translates the replies back.
2. **nftables** then masquerades the pool to the router's IPv4 WAN address with simnet's NAT
   rules (`simnet.net.nftables.render_router`): the NAT64's mapping, filtering and port
   allocation are those of any simnet NAT, the pool being its inside network and the TUN its
   inside interface.

Why tayga and not Jool: Jool is a kernel module and needs /lib/modules/$(uname -r) to be built
or loaded; kernels without it (docs/limits.md#nat64-and-dns64) cannot run it.
Why a network-specific prefix inside 2001:db8::/32 and not the well-known 64:ff9b::/96: RFC
6052 section 3.1 forbids the well-known prefix for non-global IPv4 addresses, and tayga enforces
it: to the documentation ranges simnet's internet lives in it answers ICMPv6 "destination
unreachable: no route" (docs/kernel-notes.md#nat64-tayga).

The TUN device and its routes are kernel objects, so the builder makes them (`tun_routes`,
`TUN_IF`); tayga attaches to the existing device, so a run's teardown (the namespace going away)
removes it whatever tayga did. tayga is started by the build too (`start_tayga`), like the link
delay lines: without it the router does not forward what its users send to the prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from pathlib import Path

from pyroute2 import IPRoute, NetlinkError

from simnet.errors import EnvironmentProblem, SimnetError
from simnet.net import netns
from simnet.net.plan import NAT64_IF, Route, RouterPlan
from simnet.net.process import ManagedProcess, start_logged
from simnet.net.registry import Run

TAYGA = "tayga"
TUN_IF = NAT64_IF  # the TUN device tayga attaches to, in the router's namespace
INSTALL_FIX = "run ./setup.sh (apt-get install tayga)"
READY_TIMEOUT_S = 10.0
WELL_KNOWN_PREFIX = IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class Nat64:
    """One NAT64: the IPv6 `prefix` (a /96) that embeds IPv4 addresses, and the IPv4 `pool`
    tayga gives its IPv6 users addresses from (its own address is the pool's first)."""

    prefix: IPv6Network
    pool: IPv4Network

    def __post_init__(self) -> None:
        if self.prefix.prefixlen != 96:
            raise SimnetError(f"a NAT64 prefix is a /96 here, not {self.prefix}")
        if self.prefix.overlaps(WELL_KNOWN_PREFIX):
            raise SimnetError(
                f"NAT64 prefix {self.prefix}: the well-known prefix cannot translate the "
                "emulated internet's non-global IPv4 addresses (RFC 6052 3.1)",
                fix="use a network-specific prefix inside 2001:db8::/32",
            )
        if self.pool.num_addresses < 4:
            raise SimnetError(f"NAT64 pool {self.pool} is too small (a /30 at least)")

    @property
    def tayga_address(self) -> IPv4Address:
        """tayga's own IPv4 address (the source of the ICMP errors it sends)."""
        return self.pool.network_address + 1

    def synthesize(self, address: IPv4Address) -> str:
        """The IPv6 address under which an IPv6-only host reaches IPv4 `address` (RFC 6052)."""
        return str(self.prefix.network_address + int(address))


def nat64_of(router: RouterPlan | None) -> Nat64 | None:
    """The NAT64 of a router the plan gives one (`nat64_prefix`, `nat64_pool`), else None."""
    if router is None or router.nat64_prefix is None or router.nat64_pool is None:
        return None
    return Nat64(router.nat64_prefix, router.nat64_pool)


def render_tayga(nat64: Nat64, data_dir: Path) -> str:
    """tayga's configuration file for `nat64` (pure).

    No `ipv6-addr`: with a network-specific prefix tayga takes `prefix + ipv4-addr` as its own
    IPv6 address. `data-dir` holds its dynamic map (which IPv6 user has which pool address)."""
    return (
        f"tun-device {TUN_IF}\n"
        f"ipv4-addr {nat64.tayga_address}\n"
        f"prefix {nat64.prefix}\n"
        f"dynamic-pool {nat64.pool}\n"
        f"data-dir {data_dir}\n"
    )


def tun_routes(nat64: Nat64) -> list[Route]:
    """What the router sends into tayga: the prefix (IPv6 to translate) and the pool (IPv4
    replies, once nftables has translated them back to a pool address)."""
    return [Route(nat64.prefix, dev=TUN_IF), Route(nat64.pool, dev=TUN_IF)]


def create_tun(ns: str) -> None:
    """The TUN device tayga will attach to, in namespace `ns` (made by the builder).

    Persistent, so that it exists, and carries routes, before tayga runs. The calling thread
    enters `ns` for it: pyroute2 makes a TUN with ioctls on /dev/net/tun, which create the
    device in the namespace of the calling thread, not in that of the netlink socket
    (docs/kernel-notes.md#nat64-tayga)."""
    try:
        with netns.entered(ns), IPRoute() as ipr:
            ipr.link("add", ifname=TUN_IF, kind="tuntap", mode="tun")
    except (OSError, NetlinkError) as exc:  # no /dev/net/tun, no TUN in the kernel
        raise EnvironmentProblem(
            f"cannot create the NAT64's TUN device in {ns}: {exc}",
            fix="give the machine (or container) /dev/net/tun and a kernel with TUN",
        ) from None


def _attached(ns: str) -> bool:
    """Has a process attached to the TUN (the device has a carrier once one has)?"""
    with netns.entered(ns), IPRoute() as ipr:
        links = ipr.get_links(ifname=TUN_IF)
        return bool(links) and links[0].get_attr("IFLA_CARRIER") == 1


def start_tayga(
    run: Run, ns: str, node: str, nat64: Nat64, *, timeout_s: float = READY_TIMEOUT_S
) -> ManagedProcess:
    """Start tayga for `nat64` in namespace `ns` (router `node`'s), registered with `run`.

    Ready when tayga has attached to the TUN device (its carrier comes up): from then on it
    translates. Its configuration and dynamic map live in the run's work directory, removed
    with the run."""
    workdir = run.workdir / f"tayga-{node}"
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = workdir / "tayga.conf"
    config.write_text(render_tayga(nat64, data_dir))
    log = workdir / "tayga.log"
    process = start_logged(
        run,
        f"tayga-{node}",
        [TAYGA, "--config", str(config), "--nodetach"],
        ns=ns,
        log=log,
        missing="tayga is not installed",
        fix=INSTALL_FIX,
    )
    try:
        process.wait_until(lambda: _attached(ns), "attached to its TUN device", timeout_s=timeout_s)
    except BaseException:
        process.stop()
        raise
    return process
