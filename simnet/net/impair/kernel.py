"""Small kernel operations both backends share: tc batches, nftables, MTU, netem detection.

Each runs with the calling thread inside the target namespace (`netns.entered`); a child process
(`tc`, `iptables-restore`) forked from that thread inherits the namespace, as `run.spawn` does.
"""

from __future__ import annotations

import shutil
import subprocess

import nftables
from pyroute2 import IPRoute

from simnet.addresses import IPV4, Family
from simnet.errors import EnvironmentProblem, SimnetError
from simnet.net import netns

_netem: bool | None = None


def tc_batch(ns: str, lines: list[str], where: str) -> None:
    if not lines:
        return
    with netns.entered(ns):
        done = subprocess.run(
            ["tc", "-batch", "-"], input="\n".join(lines) + "\n", capture_output=True, text=True
        )
    if done.returncode != 0:
        raise SimnetError(f"tc rejected the link settings of {where}: {done.stderr.strip()}")


def clear_egress(ns: str, dev: str, chain_table: str) -> None:
    """Remove what shapes `dev`'s egress (root qdisc, the egress chain of `chain_table`), if any:
    the first step of replacing a link's impairment."""
    with netns.entered(ns):
        subprocess.run(["tc", "qdisc", "del", "dev", dev, "root"], capture_output=True)
        nftables.Nftables().cmd(f"delete chain netdev {chain_table} egress_{dev}")


def nft(ns: str, ruleset: str, where: str) -> None:
    if not ruleset:
        return
    with netns.entered(ns):
        rc, _, error = nftables.Nftables().cmd(ruleset)
    if rc != 0:
        raise SimnetError(f"nftables rejected the link rules of {where}: {error.strip()}")


def iptables_restore(ns: str, rules: str, where: str, family: Family = IPV4) -> None:
    """Append `rules` (iptables-restore format; ip6tables' for `family` IPV6) without
    flushing what is there."""
    if not rules:
        return
    tool = "iptables" if family == IPV4 else "ip6tables"
    binary = shutil.which(f"{tool}-nft-restore") or shutil.which(f"{tool}-restore")
    if binary is None:
        raise EnvironmentProblem(
            f"{tool}-restore is missing; the userspace link backend feeds NFQUEUE through it",
            fix="apt-get install iptables (./setup.sh installs it)",
        )
    with netns.entered(ns):
        done = subprocess.run([binary, "--noflush"], input=rules, capture_output=True, text=True)
    if done.returncode != 0:
        raise SimnetError(f"iptables rejected the queue rules of {where}: {done.stderr.strip()}")


def set_mtu(ns: str, ifname: str, mtu: int) -> None:
    with netns.entered(ns), IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise SimnetError(f"interface {ifname} vanished while setting its MTU")
        ipr.link("set", index=found[0], mtu=mtu)


def mac_of(ns: str, ifname: str) -> str:
    with netns.entered(ns), IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise SimnetError(f"interface {ifname} vanished while reading its address")
        return str(ipr.get_links(found[0])[0].get_attr("IFLA_ADDRESS"))


def netem_available(ns: str) -> bool:
    """Can this kernel add a netem qdisc? Tried once per process, on `lo` of namespace `ns`."""
    global _netem
    if _netem is None:
        with netns.entered(ns):
            add = subprocess.run(
                ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"],
                capture_output=True,
            )
            if add.returncode == 0:
                subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True)
        _netem = add.returncode == 0
    return _netem
