"""The NAT64 and DNS renderings: tayga's configuration, the NAT64's IPv4 ruleset, the zone
server's and the DNS64 resolver's unbound.conf and a namespace's resolv.conf, checked as text
and, where the tool is installed, by the tool's own checker (`nft -c`, `unbound-checkconf`)."""

from __future__ import annotations

import shutil
import subprocess
from contextlib import nullcontext
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest
from pyroute2 import NetlinkError

from simnet.cleanup import _own_netns_entry
from simnet.errors import EnvironmentProblem, SimnetError
from simnet.net import nat64, resolv
from simnet.net.nat64 import TUN_IF, Nat64, render_tayga, tun_routes
from simnet.net.nftables import render_router
from simnet.net.plan import RouterPlan
from simnet.scenario.nat import Filtering, Mapping, NatBehavior, PortAllocation
from simnet.services.dns import render_dns64, render_zone, server_name
from tests.unit.nat_behaviours import EVERY_BEHAVIOUR
from tests.unit.nft_scratch import nft_check

PREFIX = IPv6Network("2001:db8:64::/96")
POOL = IPv4Network("100.64.255.0/24")
WAN = IPv4Address("198.51.100.10")
CHECKCONF = shutil.which("unbound-checkconf")


def test_tayga_is_told_its_tun_prefix_pool_and_data_directory(tmp_path: Path) -> None:
    text = render_tayga(Nat64(PREFIX, POOL), tmp_path)
    assert text.splitlines() == [
        f"tun-device {TUN_IF}",
        "ipv4-addr 100.64.255.1",
        "prefix 2001:db8:64::/96",
        "dynamic-pool 100.64.255.0/24",
        f"data-dir {tmp_path}",
    ]


def test_the_tun_carries_the_prefix_and_the_pool() -> None:
    routes = tun_routes(Nat64(PREFIX, POOL))
    assert {(r.dst, r.dev) for r in routes} == {(PREFIX, TUN_IF), (POOL, TUN_IF)}


def test_an_address_is_synthesized_as_rfc_6052_writes_it() -> None:
    assert Nat64(PREFIX, POOL).synthesize(IPv4Address("192.0.2.10")) == "2001:db8:64::c000:20a"


@pytest.mark.parametrize(
    "prefix", [IPv6Network("64:ff9b::/96"), IPv6Network("2001:db8:64::/64")], ids=str
)
def test_the_well_known_prefix_and_other_lengths_are_refused(prefix: IPv6Network) -> None:
    with pytest.raises(SimnetError):
        Nat64(prefix, POOL)


LAN6 = IPv6Network("2001:db8:2::/64")


def render_nat64(behavior: NatBehavior) -> str:
    """The rulesets of a v6-only NAT64 carrier whose IPv4 side behaves as `behavior`."""
    router = RouterPlan(behavior, WAN, LAN6, None, lan6=LAN6, nat64_prefix=PREFIX, nat64_pool=POOL)
    return render_router(router)


def test_the_nat64_translates_its_pool_with_the_tun_as_inside() -> None:
    behavior = NatBehavior(hairpin=True)
    rules = render_nat64(behavior)
    assert rules.startswith("table ip simnet {")
    assert f'iifname "{TUN_IF}" ip daddr {WAN}' in rules  # hairpin in, from tayga
    assert f'oifname "{TUN_IF}" ct status dnat ip saddr {POOL}' in rules
    nat = rules.split("\n}\n")[0]  # the translation's table; the IPv6 side's comes after it
    assert '"lan"' not in nat and "ip6" not in nat


def test_a_carriers_symmetric_nat64_takes_a_random_port_per_destination() -> None:
    behavior = NatBehavior(
        mapping=Mapping.APDM, filtering=Filtering.APDF, port_allocation=PortAllocation.RANDOM
    )
    rules = render_nat64(behavior)
    assert f"snat ip to {WAN} random" in rules and "set busy" in rules
    assert "udp dport @used accept" not in rules  # nothing unsolicited comes in


def test_every_nat64_ruleset_is_accepted_by_nft(scratch_ns: str) -> None:
    for behavior in EVERY_BEHAVIOUR:
        ruleset = render_nat64(behavior)
        done = nft_check(scratch_ns, ruleset)
        assert done.returncode == 0, f"nft rejected:\n{ruleset}\n{done.stderr}"


def checkconf(tmp_path: Path, text: str) -> None:
    if CHECKCONF is None:
        pytest.skip("unbound is not installed")
    path = tmp_path / "unbound.conf"
    path.write_text(text)
    done = subprocess.run([CHECKCONF, str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{text}\n{done.stdout}{done.stderr}"


def test_the_zone_has_a_and_aaaa_records_and_nothing_else(tmp_path: Path) -> None:
    records = {
        server_name("turn"): [IPv4Address("192.0.2.10"), IPv6Address("2001:db8::a")],
        server_name("web"): [IPv4Address("192.0.2.11")],
    }
    text = render_zone([IPv4Address("192.0.2.1"), IPv6Address("2001:db8::1")], records)
    assert 'local-data: "turn.simnet.test. 60 IN A 192.0.2.10"' in text
    assert 'local-data: "turn.simnet.test. 60 IN AAAA 2001:db8::a"' in text
    assert 'local-data: "web.simnet.test. 60 IN A 192.0.2.11"' in text
    assert 'local-zone: "." static' in text  # no root, nothing forwarded out
    assert "interface: 192.0.2.1" in text and "interface: 2001:db8::1" in text
    assert "do-ip4: yes" in text and "do-ip6: yes" in text
    checkconf(tmp_path, text)


def test_the_dns64_resolver_synthesizes_in_the_carriers_prefix(tmp_path: Path) -> None:
    zone = [IPv4Address("192.0.2.1")]
    text = render_dns64([IPv6Address("2001:db8:2::1")], PREFIX, zone)
    assert 'module-config: "dns64 iterator"' in text
    assert "dns64-prefix: 2001:db8:64::/96" in text
    assert "forward-addr: 192.0.2.1" in text and 'name: "."' in text
    assert 'local-zone: "test." nodefault' in text  # else unbound answers NXDOMAIN itself
    assert "do-ip4: no" in text and "dns64-synthall" not in text
    checkconf(tmp_path, text)


def test_resolv_conf_names_the_resolvers_and_fails_fast() -> None:
    text = resolv.render([IPv6Address("2001:db8:2::1")])
    assert text.splitlines() == ["nameserver 2001:db8:2::1", "options timeout:1 attempts:2"]


def test_a_command_is_wrapped_only_where_the_namespace_has_a_resolv_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resolv, "ETC_NETNS", tmp_path)
    (tmp_path / "sn-abc-phone").mkdir()
    (tmp_path / "sn-abc-phone" / "resolv.conf").write_text("nameserver 2001:db8:2::1\n")
    assert resolv.wrap("sn-abc-phone", ["sh", "-c", "true"]) == [
        "ip", "netns", "exec", "sn-abc-phone", "sh", "-c", "true"
    ]  # fmt: skip
    assert resolv.wrap("sn-abc-phone", ["no-such-program-here"]) == ["no-such-program-here"]
    assert resolv.wrap("sn-abc-web", ["turnserver"]) == ["turnserver"]
    assert resolv.wrap(None, ["turnserver"]) == ["turnserver"]


def test_cleanup_removes_only_the_runs_own_etc_netns_entries() -> None:
    assert _own_netns_entry("/etc/netns/sn-abc123-phone", "sn-abc123-")
    assert not _own_netns_entry("/etc/netns/sn-def456-phone", "sn-abc123-")
    assert not _own_netns_entry("/etc/passwd", "sn-abc123-")
    assert not _own_netns_entry("/etc/netns/sn-abc123-phone/../../passwd", "sn-abc123-")
    assert not _own_netns_entry(42, "sn-abc123-")


def test_a_tun_the_kernel_refuses_is_an_environment_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No /dev/net/tun (a container without it) is one error with a fix, not a netlink traceback."""

    class NoTun:
        def __enter__(self) -> NoTun:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def link(self, *args: object, **kwargs: object) -> None:
            raise NetlinkError(19, "No such device")

    monkeypatch.setattr(nat64, "IPRoute", NoTun)
    monkeypatch.setattr(nat64.netns, "entered", lambda ns: nullcontext())
    with pytest.raises(EnvironmentProblem) as info:
        nat64.create_tun("sn-x-carrier")
    assert "TUN device in sn-x-carrier" in info.value.message and "/dev/net/tun" in str(
        info.value.fix
    )
