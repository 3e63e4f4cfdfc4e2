"""A router's IPv6 side and its black-holed families are rendered as `table inet
simnet_forward`: stateful filtering as RFC 6092 asks (open, address-dependent through a
dynamic set of pairs, address-and-port-dependent through conntrack alone), the firewall judging
IPv6 in a chain of its own, and a black-holed family dropped on its way out of the LAN. Every
ruleset the renderer can produce loads (nft -c, as root); an IPv4-only router renders none."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simnet.addresses import IPV4, IPV6, Family
from simnet.net.forward_rules import ADF_SET, FORWARD_TABLE, render_forward
from simnet.net.nftables import render_router
from simnet.net.plan import RouterPlan
from simnet.scenario.family import V6Filtering
from simnet.scenario.model import FirewallSpec
from simnet.scenario.nat import PRESETS, NatBehavior
from tests.unit.nat_behaviours import behaviours
from tests.unit.nft_scratch import nft_check

WAN4, LAN4 = IPv4Address("198.51.100.10"), IPv4Network("192.168.1.0/24")
WAN6, LAN6 = IPv6Address("2001:db8:0:1::a"), IPv6Network("2001:db8:3:1::/64")


def router(
    filtering: V6Filtering = V6Filtering.APDF,
    blackholed: frozenset[Family] = frozenset(),
    firewall: FirewallSpec | None = None,
    behavior: NatBehavior = PRESETS["port-restricted-cone"],
    v6: bool = True,
) -> RouterPlan:
    return RouterPlan(
        behavior,
        WAN4,
        LAN4,
        firewall,
        wan6=WAN6 if v6 else None,
        lan6=LAN6 if v6 else None,
        v6_filtering=filtering,
        blackholed=blackholed,
    )


def test_an_ipv4_only_router_has_no_forward_table() -> None:
    assert render_forward(router(v6=False)) == ""
    assert FORWARD_TABLE not in render_router(router(v6=False))


def test_apdf_lets_in_established_and_related_only() -> None:
    rules = render_forward(router(V6Filtering.APDF))
    assert rules.startswith(f"table inet {FORWARD_TABLE} {{")
    body = rules.splitlines()
    established = body.index("    ct state established,related accept")
    assert body.index('    iifname "wan" drop') > established
    assert ADF_SET not in rules and "nat" not in rules


def test_adf_remembers_pairs_for_the_binding_timeout_and_refreshes_them_outbound() -> None:
    behavior = PRESETS["port-restricted-cone"].model_copy(update={"udp_timeout_s": 7})
    rules = render_forward(router(V6Filtering.ADF, behavior=behavior))
    assert (
        f"set {ADF_SET} {{ type ipv6_addr . ipv6_addr; flags dynamic,timeout; timeout 7s; }}"
        in (rules)
    )
    lines = rules.splitlines()
    update = lines.index(f'    iifname "lan" update @{ADF_SET} {{ ip6 saddr . ip6 daddr }}')
    # before the established accept: every outbound packet refreshes its pair
    assert update < lines.index("    ct state established,related accept")
    assert f'    iifname "wan" ip6 daddr . ip6 saddr @{ADF_SET} accept' in lines
    assert lines[-3] == '    iifname "wan" drop'


def test_open_filters_nothing() -> None:
    rules = render_forward(router(V6Filtering.OPEN))
    assert "drop" not in rules


@pytest.mark.parametrize(("family", "word"), [(IPV4, "ipv4"), (IPV6, "ipv6")])
def test_a_blackholed_family_is_dropped_leaving_the_lan(family: Family, word: str) -> None:
    rules = render_forward(router(blackholed=frozenset({family})))
    assert f'    iifname "lan" meta nfproto {word} drop' in rules
    assert "icmp" not in rules and "reject" not in rules  # silently
    v4_only = render_forward(router(blackholed=frozenset({IPV4}), v6=False))
    assert '    iifname "lan" meta nfproto ipv4 drop' in v4_only


def test_the_firewall_judges_ipv6_in_its_own_chain_and_ipv4_in_the_nat_table() -> None:
    firewall = FirewallSpec(
        allow=["udp/3478"], block=[IPv4Network("10.9.0.0/16"), IPv6Network("2001:db8:9::/48")]
    )
    rules = render_router(router(firewall=firewall))
    nat_table, forward = rules.split(f"table inet {FORWARD_TABLE}")
    assert nat_table.startswith("table ip simnet {") and "2001:db8:9::/48" not in nat_table
    assert "ip daddr { 10.9.0.0/16 } drop" in nat_table
    assert "type filter hook forward priority filter - 1;" in forward
    assert "ip6 daddr { 2001:db8:9::/48 } drop" in forward and "10.9.0.0" not in forward
    assert 'iifname "lan" udp dport { 3478 } accept' in forward


filterings = st.sampled_from(list(V6Filtering))
families = st.frozensets(st.sampled_from([IPV4, IPV6]), max_size=1)
firewalls = st.one_of(
    st.none(),
    st.builds(
        FirewallSpec,
        block_udp=st.booleans(),
        allow=st.lists(st.sampled_from(["tcp/443", "udp/3478", "udp/53"]), max_size=2),
        block=st.lists(
            st.sampled_from([IPv4Network("10.9.0.0/16"), IPv6Network("2001:db8:9::/48")]),
            max_size=2,
            unique=True,
        ),
    ),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    b=behaviours, filtering=filterings, blackholed=families, firewall=firewalls, v6=st.booleans()
)
def test_every_rendered_forward_ruleset_loads(
    scratch_ns: str,
    b: NatBehavior,
    filtering: V6Filtering,
    blackholed: frozenset[Family],
    firewall: FirewallSpec | None,
    v6: bool,
) -> None:
    ruleset = render_router(router(filtering, blackholed, firewall, b, v6))
    if not ruleset:
        return
    done = nft_check(scratch_ns, ruleset)
    assert done.returncode == 0, f"nft rejected:\n{ruleset}\n{done.stderr}"
