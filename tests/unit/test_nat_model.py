"""NAT model, probe classifiers, nftables renderer and scenario loading, without a network.

Why: `verify-nat` compares what a probe observes with what `compose`/`effective_behavior` predict
from the configuration, and builds each NAT from `render_router`. If the prediction, the
classifiers or the rendered rules were wrong, every later integration result would be judged
against the wrong yardstick. These tests pin the RFC 4787 meaning of each preset and knob, the
algebra of chained NATs, and that every behaviour the model can express renders to a ruleset
nftables accepts (checked with `nft -c` inside a scratch namespace, so nothing is changed).
"""

from __future__ import annotations

import subprocess
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simnet.errors import ScenarioError
from simnet.net.nftables import SEQUENTIAL_BASE, render_router
from simnet.net.plan import LAN_IF, WAN_IF, RouterPlan, plan_network
from simnet.probe.classify import (
    SEQUENTIAL_MAX_STEP,
    NatObservation,
    classify_allocation,
    classify_filtering,
    classify_mapping,
    lifetime_bounds,
)
from simnet.scenario.load import apply_override, load_scenario, scenario_from_dict
from simnet.scenario.model import FirewallSpec
from simnet.scenario.nat import (
    CARRIER_PRESETS,
    CGNAT_CARRIER,
    CGNAT_HOME,
    OPEN,
    PRESET_NAMES,
    PRESETS,
    Filtering,
    Mapping,
    NatBehavior,
    PortAllocation,
    compose,
    effective_behavior,
)
from tests.unit.nat_behaviours import behaviours, not_translating, translating
from tests.unit.nft_scratch import NFT, nft_check

# Restrictiveness written out here, independently of nat.py's own table.
MAPPING_ORDER = [Mapping.EIM, Mapping.ADM, Mapping.APDM]
FILTERING_ORDER = [Filtering.EIF, Filtering.ADF, Filtering.APDF]


def stricter_mapping(a: Mapping, b: Mapping) -> Mapping:
    return max(a, b, key=MAPPING_ORDER.index)


def stricter_filtering(a: Filtering, b: Filtering) -> Filtering:
    return max(a, b, key=FILTERING_ORDER.index)


# --- strategies -----------------------------------------------------------------------------

firewalls = st.one_of(
    st.none(),
    st.builds(
        FirewallSpec,
        block_udp=st.booleans(),
        allow=st.lists(
            st.builds(
                lambda proto, port: f"{proto}/{port}",
                st.sampled_from(["tcp", "udp"]),
                st.integers(1, 65535),
            ),
            max_size=4,
        ),
        block=st.lists(
            st.builds(
                lambda a, p: IPv4Network((a, p), strict=False),
                st.integers(0, 2**32 - 1),
                st.integers(8, 32),
            ),
            max_size=3,
        ),
    ),
)


def _knobs(b: NatBehavior) -> tuple[object, ...]:
    return (b.mapping, b.filtering, b.port_allocation)


# --- presets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "mapping", "filtering"),
    [
        ("full-cone", Mapping.EIM, Filtering.EIF),
        ("restricted-cone", Mapping.EIM, Filtering.ADF),
        ("port-restricted-cone", Mapping.EIM, Filtering.APDF),
        ("symmetric", Mapping.APDM, Filtering.APDF),
    ],
)
def test_cone_presets_are_the_rfc4787_behaviours_they_are_named_after(
    preset: str, mapping: Mapping, filtering: Filtering
) -> None:
    behaviour = PRESETS[preset]
    assert behaviour.translates
    assert (behaviour.mapping, behaviour.filtering) == (mapping, filtering)
    assert behaviour.udp_timeout_s >= 120  # RFC 4787 REQ-5


def test_rfc4787_words_are_the_rfc_terms() -> None:
    assert Mapping.EIM.value == "endpoint-independent"
    assert Mapping.ADM.value == "address-dependent"
    assert Mapping.APDM.value == "address-and-port-dependent"
    assert [f.value for f in FILTERING_ORDER] == [m.value for m in MAPPING_ORDER]


def test_open_preset_does_not_translate_or_filter() -> None:
    assert PRESETS["open"] == OPEN
    assert not OPEN.translates
    assert OPEN.filtering is Filtering.EIF


def test_symmetric_preset_does_not_preserve_ports() -> None:
    assert PRESETS["symmetric"].port_allocation is not PortAllocation.PRESERVE


def test_cgnat_is_a_home_router_behind_an_rfc6888_carrier() -> None:
    assert "cgnat" in PRESET_NAMES
    assert PRESETS["port-restricted-cone"] == CGNAT_HOME
    assert CGNAT_CARRIER.mapping is Mapping.EIM  # RFC 6888 REQ-1 -> RFC 4787 REQ-1
    assert CGNAT_CARRIER.port_allocation is not PortAllocation.PRESERVE
    scenario = scenario_from_dict({"nats": {"home": {"preset": "cgnat"}}})
    routers = {r.name: r for r in scenario.routers()}
    assert set(routers) == {"home", "home-carrier"}
    assert routers["home"].behind == "home-carrier"
    assert routers["home-carrier"].behind == "internet"
    assert routers["home-carrier"].carrier
    assert [r.name for r in scenario.routers()] == ["home-carrier", "home"]  # parents first


def test_cgn_is_the_carrier_nat_alone_with_its_lan_in_the_shared_range() -> None:
    """A phone directly behind a carrier-grade NAT: one device, the carrier's RFC 6888
    behaviour (the same as `cgnat`'s carrier), its LAN and hosts on 100.64.0.0/10."""
    assert "cgn" in PRESET_NAMES
    assert CARRIER_PRESETS["cgn"] == CGNAT_CARRIER
    scenario = scenario_from_dict(
        {"nats": {"mobile": {"preset": "cgn"}}, "hosts": {"phone": {"behind": "mobile"}}}
    )
    (router,) = scenario.routers()
    assert router.name == "mobile" and router.carrier and router.behind == "internet"
    assert router.behavior.mapping is Mapping.EIM
    assert router.behavior.filtering is Filtering.APDF
    assert router.behavior.port_allocation is PortAllocation.RANDOM
    assert router.behavior.hairpin
    plan = plan_network(scenario)
    (lan,) = plan.nodes["mobile"].addresses[LAN_IF]
    assert isinstance(lan.network, IPv4Network)
    assert lan.network.subnet_of(IPv4Network("100.64.0.0/10"))
    (phone,) = [a for addrs in plan.nodes["phone"].addresses.values() for a in addrs]
    assert phone in lan.network
    # knobs still override the preset, and the LAN stays the carrier's
    strict = scenario_from_dict({"nats": {"mobile": {"preset": "cgn", "mapping": "APDM"}}})
    (router,) = strict.routers()
    assert router.behavior.mapping is Mapping.APDM and router.carrier


# --- compose / effective_behavior -----------------------------------------------------------


@given(st.one_of(translating, st.just(OPEN)))
def test_composing_with_open_is_identity(b: NatBehavior) -> None:
    assert compose(OPEN, b) == b
    assert compose(b, OPEN) == b
    assert effective_behavior([OPEN, b, OPEN]) == b


@given(not_translating, translating)
def test_any_non_translating_router_is_transparent(router: NatBehavior, b: NatBehavior) -> None:
    assert compose(router, b) == b
    assert compose(b, router) == b


@given(not_translating, not_translating)
def test_routers_only_chain_does_not_translate(a: NatBehavior, b: NatBehavior) -> None:
    assert not compose(a, b).translates
    assert not effective_behavior([a, b]).translates


@given(translating, translating)
def test_chain_mapping_and_filtering_are_the_stricter_of_the_two(
    inner: NatBehavior, outer: NatBehavior
) -> None:
    chain = compose(inner, outer)
    assert chain.translates
    assert chain.mapping == stricter_mapping(inner.mapping, outer.mapping)
    assert chain.filtering == stricter_filtering(inner.filtering, outer.filtering)


@given(translating, translating)
def test_chain_timeout_is_the_minimum(inner: NatBehavior, outer: NatBehavior) -> None:
    assert compose(inner, outer).udp_timeout_s == min(inner.udp_timeout_s, outer.udp_timeout_s)


@given(translating, translating)
def test_chain_hairpin_needs_outer_hairpin_and_inner_endpoint_independent_filtering(
    inner: NatBehavior, outer: NatBehavior
) -> None:
    chain = compose(inner, outer)
    if chain.hairpin:
        assert outer.hairpin
        assert inner.filtering is Filtering.EIF


def test_a_chain_hairpins_with_outer_hairpin_and_inner_endpoint_independent_filtering() -> None:
    inner = PRESETS["full-cone"]
    outer = PRESETS["port-restricted-cone"]
    assert inner.filtering is Filtering.EIF and outer.hairpin
    assert compose(inner, outer).hairpin


@given(translating, translating)
def test_a_preserving_nat_keeps_the_other_nats_port_allocation(
    inner: NatBehavior, outer: NatBehavior
) -> None:
    chain = compose(inner, outer)
    if outer.port_allocation is PortAllocation.PRESERVE:
        assert chain.port_allocation is inner.port_allocation
    if inner.port_allocation is PortAllocation.PRESERVE:
        assert chain.port_allocation is outer.port_allocation


def test_a_sequential_outer_nat_hides_a_random_inner_allocation() -> None:
    inner = NatBehavior(port_allocation=PortAllocation.RANDOM)
    outer = NatBehavior(port_allocation=PortAllocation.SEQUENTIAL)
    assert compose(inner, outer).port_allocation is PortAllocation.SEQUENTIAL


@given(behaviours, behaviours, behaviours)
def test_composition_is_associative(a: NatBehavior, b: NatBehavior, c: NatBehavior) -> None:
    left = compose(compose(a, b), c)
    right = compose(a, compose(b, c))
    assert left.translates == right.translates
    assert _knobs(left) == _knobs(right)
    assert left.udp_timeout_s == right.udp_timeout_s


@given(st.lists(behaviours, max_size=5))
def test_effective_behavior_folds_compose_innermost_first(chain: list[NatBehavior]) -> None:
    expected = OPEN
    for nat in chain:
        expected = compose(expected, nat)
    assert effective_behavior(chain) == expected
    assert effective_behavior(iter(chain)) == expected  # any iterable, consumed once
    translating_nats = [n for n in chain if n.translates]
    result = effective_behavior(chain)
    assert result.translates == bool(translating_nats)
    if translating_nats:
        assert result.udp_timeout_s == min(n.udp_timeout_s for n in translating_nats)
        assert result.mapping == max((n.mapping for n in translating_nats), key=MAPPING_ORDER.index)
        assert result.filtering == max(
            (n.filtering for n in translating_nats), key=FILTERING_ORDER.index
        )
    else:
        assert not result.translates


@given(translating)
def test_a_single_nat_is_its_own_effective_behaviour(b: NatBehavior) -> None:
    assert effective_behavior([b]) == b


def test_effective_behavior_of_nothing_is_open() -> None:
    assert effective_behavior([]) == OPEN


# --- classification -------------------------------------------------------------------------

A1P1 = ("198.51.100.10", 40000)


@pytest.mark.parametrize(
    ("first", "other_address", "other_both", "expected"),
    [
        (A1P1, A1P1, A1P1, Mapping.EIM),
        (A1P1, ("198.51.100.10", 40001), ("198.51.100.10", 40001), Mapping.ADM),
        (A1P1, ("198.51.100.10", 40001), ("198.51.100.10", 40002), Mapping.APDM),
        # RFC 5780 4.3: test III only matters when test II already differs
        (A1P1, A1P1, ("198.51.100.10", 40002), Mapping.EIM),
        # a different public address counts as a different mapping
        (A1P1, ("198.51.100.11", 40000), ("198.51.100.11", 40000), Mapping.ADM),
        (A1P1, ("198.51.100.11", 40000), ("198.51.100.12", 40000), Mapping.APDM),
    ],
)
def test_classify_mapping(first, other_address, other_both, expected) -> None:
    assert classify_mapping(first, other_address, other_both) is expected


@pytest.mark.parametrize(
    ("from_other_address", "from_other_port", "expected"),
    [
        (True, True, Filtering.EIF),
        (True, False, Filtering.EIF),  # odd, but the address test decides first (RFC 5780 4.4)
        (False, True, Filtering.ADF),
        (False, False, Filtering.APDF),
    ],
)
def test_classify_filtering(from_other_address, from_other_port, expected) -> None:
    assert classify_filtering(from_other_address, from_other_port) is expected


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([(40000, 40000), (40001, 40001), (51234, 51234)], PortAllocation.PRESERVE),
        ([(40000, 40000)], PortAllocation.PRESERVE),
        ([(40000, 20000), (40100, 20001), (39000, 20002)], PortAllocation.SEQUENTIAL),
        (
            [(1, 20000), (2, 20000 + SEQUENTIAL_MAX_STEP), (3, 20000 + 2 * SEQUENTIAL_MAX_STEP)],
            PortAllocation.SEQUENTIAL,
        ),
        ([(1, 20000), (2, 20001 + SEQUENTIAL_MAX_STEP)], PortAllocation.RANDOM),
        ([(1, 20005), (2, 20004)], PortAllocation.RANDOM),  # going down is not sequential
        ([(1, 20005), (2, 20005)], PortAllocation.RANDOM),  # nor is standing still
        ([(1, 8270), (2, 8526), (3, 8782)], PortAllocation.RANDOM),  # byte-swapped counter
        ([(1, 33333)], PortAllocation.RANDOM),  # one sample, not preserved: no sequence seen
        ([(40000, 40000), (40001, 61234)], PortAllocation.RANDOM),
    ],
)
def test_classify_allocation(pairs, expected) -> None:
    assert classify_allocation(pairs) is expected


@given(st.lists(st.integers(1024, 65535), min_size=1, max_size=8))
def test_preserved_ports_classify_as_preserve(ports: list[int]) -> None:
    assert classify_allocation([(p, p) for p in ports]) is PortAllocation.PRESERVE


@given(
    st.integers(1024, 60000),
    st.lists(st.integers(1, SEQUENTIAL_MAX_STEP), min_size=1, max_size=7),
    st.lists(st.integers(1024, 65535), min_size=8, max_size=8, unique=True),
)
def test_increasing_small_steps_classify_as_sequential(
    start: int, steps: list[int], locals_: list[int]
) -> None:
    mapped = [start]
    for step in steps:
        mapped.append(mapped[-1] + step)
    pairs = list(zip(locals_, mapped, strict=False))
    if all(local == m for local, m in pairs):
        return  # astronomically unlikely: every local port happened to equal its mapping
    assert classify_allocation(pairs) is PortAllocation.SEQUENTIAL


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([(0.5, True), (1.0, True), (1.5, False), (2.0, False)], (1.0, 1.5)),
        ([(2.0, False), (0.5, True), (1.5, False), (1.0, True)], (1.0, 1.5)),  # order is free
        ([(0.5, True), (1.0, True)], (1.0, None)),  # never expired within the probe
        ([(0.5, False), (1.0, False)], (0.0, 0.5)),  # expired before the first delay
        ([], (0.0, None)),
    ],
)
def test_lifetime_bounds(results, expected) -> None:
    assert lifetime_bounds(results) == expected


def _observation(**update: object) -> NatObservation:
    fields: dict[str, object] = {
        "translates": True,
        "mapped_address": "198.51.100.10:40000",
        "mapping": Mapping.EIM,
        "filtering": Filtering.APDF,
        "port_allocation": PortAllocation.PRESERVE,
        "hairpin": True,
    }
    return NatObservation.model_validate({**fields, **update})


def test_observation_of_the_configured_behaviour_has_no_mismatch() -> None:
    assert _observation().mismatches(PRESETS["port-restricted-cone"], None) == []


def test_observation_mismatches_name_field_observed_and_configured() -> None:
    seen = _observation(mapping=Mapping.APDM, hairpin=False)
    wrong = seen.mismatches(PRESETS["port-restricted-cone"], None)
    assert wrong == [
        "mapping: observed address-and-port-dependent, configured endpoint-independent",
        "hairpin: observed false, configured true",
    ]


@pytest.mark.parametrize(
    ("timeout", "lower", "upper", "ok"),
    [
        (2, 1.5, 2.25, True),
        (2, 2.25, 2.5, False),  # lived longer than configured
        (2, 0.5, 1.0, False),  # expired early
        (2, 3.0, None, False),  # never expired although it should have within 3 s
        (5, 2.0, None, True),  # longer than the probe waits: not expiring is right
        (5, 2.0, 2.5, False),  # ...and expiring is wrong
    ],
)
def test_observation_lifetime_mismatch(timeout, lower, upper, ok) -> None:
    expected = PRESETS["full-cone"].model_copy(update={"udp_timeout_s": timeout})
    seen = _observation(filtering=Filtering.EIF, lifetime_lower_s=lower, lifetime_upper_s=upper)
    wrong = seen.mismatches(expected, lifetime_max_s=3)
    assert (wrong == []) is ok, wrong
    assert seen.mismatches(expected, lifetime_max_s=None) == []  # not probed: not judged


# --- render_router --------------------------------------------------------------------------

WAN = IPv4Address("198.51.100.10")
LAN = IPv4Network("192.168.1.0/24")


def plan(behaviour: NatBehavior, firewall: FirewallSpec | None = None) -> RouterPlan:
    return RouterPlan(behavior=behaviour, wan_address=WAN, lan=LAN, firewall=firewall)


def nat(**knobs: object) -> NatBehavior:
    return NatBehavior.model_validate(knobs)


@pytest.mark.parametrize(
    ("mapping", "present", "absent"),
    [
        (Mapping.EIM, "map eim", ("map adm", "set busy")),
        (Mapping.ADM, "map adm", ("map eim", "set busy")),
        (Mapping.APDM, "set busy", ("map eim", "map adm")),
    ],
)
def test_each_mapping_type_gets_its_own_state(
    mapping: Mapping, present: str, absent: tuple[str, ...]
) -> None:
    rules = render_router(plan(nat(mapping=mapping)))
    assert present in rules
    for name in absent:
        assert name not in rules
    for common in ("set used", "map rev_addr", "map rev_port"):
        assert common in rules
    reuse = {
        Mapping.EIM: f"ip saddr . udp sport @eim snat ip to {WAN} : ip saddr . udp sport map @eim",
        Mapping.ADM: "ip saddr . udp sport . ip daddr @adm snat",
        Mapping.APDM: f"ip saddr . udp sport @busy snat ip to {WAN} random",
    }[mapping]
    assert reuse in rules


@pytest.mark.parametrize("filtering", list(Filtering))
def test_filtering_decides_what_unsolicited_packets_get_through(filtering: Filtering) -> None:
    rules = render_router(plan(nat(filtering=filtering, hairpin=False)))
    assert ("set adf" in rules) is (filtering is Filtering.ADF)
    assert ("udp dport @used accept" in rules) is (filtering is Filtering.EIF)
    assert ("udp dport . ip saddr @adf accept" in rules) is (filtering is Filtering.ADF)
    delivers_from_wan = f'iifname "{WAN_IF}" udp dport @used dnat' in rules
    assert delivers_from_wan is (filtering is not Filtering.APDF)


@given(translating)
def test_unsolicited_inbound_is_decided_before_conntrack_confirms_it(b: NatBehavior) -> None:
    """The simultaneous-open guard is part of every translating NAT.

    docs/kernel-notes.md#simultaneous-open-pitfall says why.
    """
    rules = render_router(plan(b))
    assert "type filter hook prerouting priority -150; policy accept;" in rules
    assert f'iifname "{WAN_IF}" ct state new jump unsolicited' in rules
    unsolicited = rules.split("chain unsolicited {", 1)[1].split("}", 1)[0]
    assert unsolicited.strip().splitlines()[-1].strip() == "drop"
    assert f"timeout {b.udp_timeout_s}s;" in rules


@given(translating)
def test_hairpin_rules_only_when_hairpin_is_on(b: NatBehavior) -> None:
    rules = render_router(plan(b))
    hairpin_in = f'iifname "{LAN_IF}" ip daddr {WAN} udp dport @used dnat'
    hairpin_out = f'oifname "{LAN_IF}" ct status dnat ip saddr {LAN} jump translate'
    assert (hairpin_in in rules) is b.hairpin
    assert (hairpin_out in rules) is b.hairpin


@pytest.mark.parametrize("allocation", list(PortAllocation))
def test_port_allocation_rules(allocation: PortAllocation) -> None:
    rules = render_router(plan(nat(port_allocation=allocation)))
    translate = rules.split("chain translate {")[1].split("chain record {")[0]
    if allocation is PortAllocation.PRESERVE:
        assert f"udp sport @used snat ip to {WAN} random" in translate
        assert f"    snat ip to {WAN}\n" in translate
    elif allocation is PortAllocation.SEQUENTIAL:
        assert "numgen inc" in translate
        assert f"0 : {SEQUENTIAL_BASE}," in translate  # counter -> port in network byte order
    else:
        assert f"    snat ip to {WAN} random\n" in translate


def test_open_router_without_firewall_renders_nothing() -> None:
    assert render_router(plan(OPEN)) == ""


@given(not_translating)
def test_no_nat_table_for_a_non_translating_router(b: NatBehavior) -> None:
    assert render_router(plan(b)) == ""
    with_firewall = render_router(plan(b, FirewallSpec(block_udp=True)))
    assert with_firewall.startswith("table ip simnet {")
    assert "type nat" not in with_firewall
    assert "snat" not in with_firewall and "dnat" not in with_firewall
    assert "chain firewall" in with_firewall
    assert "meta l4proto udp drop" in with_firewall


def test_firewall_rules() -> None:
    firewall = FirewallSpec(allow=["tcp/443", "udp/3478"], block=[IPv4Network("10.9.0.0/16")])
    rules = render_router(plan(PRESETS["symmetric"], firewall))
    assert "type filter hook forward priority filter; policy accept;" in rules
    assert "ip daddr { 10.9.0.0/16 } drop" in rules
    assert f'iifname "{LAN_IF}" tcp dport {{ 443 }} accept' in rules
    assert f'iifname "{LAN_IF}" udp dport {{ 3478 }} accept' in rules
    assert rules.index("ct state established,related accept") < rules.index(
        f'iifname "{LAN_IF}" drop'
    )
    assert "meta l4proto udp drop" not in rules


# nft -c: every ruleset the renderer can produce must load. Checked inside a scratch namespace
# (nothing is applied even there: -c only parses and validates against the kernel).


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(b=behaviours, firewall=firewalls, prefix=st.integers(16, 29))
def test_every_rendered_ruleset_is_accepted_by_nft(
    scratch_ns: str, b: NatBehavior, firewall: FirewallSpec | None, prefix: int
) -> None:
    lan = IPv4Network(f"10.1.0.0/{prefix}")
    ruleset = render_router(RouterPlan(b, WAN, lan, firewall))
    if not ruleset:
        assert not b.translates and firewall is None
        return
    done = nft_check(scratch_ns, ruleset)
    assert done.returncode == 0, f"nft rejected:\n{ruleset}\n{done.stderr}"


def test_nft_check_really_checks(scratch_ns: str) -> None:
    """Guard against a check that accepts anything."""
    broken = render_router(plan(PRESETS["full-cone"])).replace("udp dport @used accept", "@nope")
    assert nft_check(scratch_ns, broken).returncode != 0
    listed = subprocess.run(
        ["ip", "netns", "exec", scratch_ns, NFT or "nft", "list", "ruleset"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.strip() == ""  # -c loaded nothing


# --- scenario loading and --set -------------------------------------------------------------


def test_apply_override_creates_nested_paths_and_parses_yaml_values() -> None:
    data: dict[str, object] = {"nats": {"home": {"preset": "full-cone"}}}
    apply_override(data, "nats.home.hairpin=false")
    apply_override(data, "nats.home.udp_timeout_s=30")
    apply_override(data, "nats.home.firewall.allow=[tcp/443, 'udp/3478']")
    apply_override(data, "nats.home.link.loss_pct=1.5")
    apply_override(data, "nats.office={preset: symmetric, lan: 10.20.0.0/24}")
    apply_override(data, "hosts.alice={behind: office}")
    apply_override(data, "description=")
    apply_override(data, "name=  spaced out ")
    assert data == {
        "nats": {
            "home": {
                "preset": "full-cone",
                "hairpin": False,
                "udp_timeout_s": 30,
                "firewall": {"allow": ["tcp/443", "udp/3478"]},
                "link": {"loss_pct": 1.5},
            },
            "office": {"preset": "symmetric", "lan": "10.20.0.0/24"},
        },
        "hosts": {"alice": {"behind": "office"}},
        "description": "",
        "name": "spaced out",
    }


def test_override_of_an_unknown_name_is_an_error_not_a_new_entry() -> None:
    data: dict[str, object] = {"nats": {"home": {}}}
    with pytest.raises(ScenarioError, match=r"no nats\.hom.*did you mean 'home'"):
        apply_override(data, "nats.hom.hairpin=false")
    with pytest.raises(ScenarioError, match=r"no hosts\.alice; known: none"):
        apply_override(data, "hosts.alice.behind=home")
    assert data == {"nats": {"home": {}}, "hosts": {}}


def test_override_next_to_a_non_string_name_is_a_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("nats: {1: {}}\n")
    with pytest.raises(ScenarioError):
        load_scenario(path, ["nats.home.hairpin=false"])


def test_apply_override_keeps_unparsable_yaml_as_text() -> None:
    data: dict[str, object] = {}
    apply_override(data, "description=a: b: c")
    assert data == {"description": "a: b: c"}


def test_apply_override_value_may_contain_equals() -> None:
    data: dict[str, object] = {}
    apply_override(data, "description=x=y")
    assert data == {"description": "x=y"}


@pytest.mark.parametrize(
    "override", ["nats.home.hairpin", "=true", "nats..home=1", ".x=1", "x.=1", "   =1"]
)
def test_malformed_overrides_are_scenario_errors(override: str) -> None:
    with pytest.raises(ScenarioError, match=r"expected dotted\.path=value"):
        apply_override({}, override)


def test_override_through_a_non_mapping_names_the_path() -> None:
    data = {"nats": {"home": "full-cone"}}
    with pytest.raises(ScenarioError, match=r"'nats\.home' is not a mapping") as info:
        apply_override(data, "nats.home.hairpin=false", source="s.yaml")
    assert "s.yaml" in info.value.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [("EIM", Mapping.EIM), ("eim", Mapping.EIM), (" Adm ", Mapping.ADM), ("APDM", Mapping.APDM)]
    + [(m.value, m) for m in Mapping],
)
def test_mapping_aliases(value: str, expected: Mapping) -> None:
    scenario = scenario_from_dict({"nats": {"home": {}}}, [f"nats.home.mapping={value}"])
    assert scenario.nats["home"].mapping is expected
    assert scenario.routers()[0].behavior.mapping is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("EIF", Filtering.EIF), ("adf", Filtering.ADF), ("ApDf", Filtering.APDF)]
    + [(f.value, f) for f in Filtering],
)
def test_filtering_aliases(value: str, expected: Filtering) -> None:
    scenario = scenario_from_dict({"nats": {"home": {"filtering": value}}})
    assert scenario.routers()[0].behavior.filtering is expected


def test_knobs_override_the_preset_and_only_them() -> None:
    scenario = scenario_from_dict(
        {"nats": {"home": {"preset": "symmetric"}}},
        ["nats.home.mapping=EIM", "nats.home.hairpin=false", "nats.home.udp_timeout_s=30"],
    )
    behaviour = scenario.routers()[0].behavior
    assert behaviour == PRESETS["symmetric"].model_copy(
        update={"mapping": Mapping.EIM, "hairpin": False, "udp_timeout_s": 30}
    )


def test_scenario_from_dict_does_not_modify_its_input() -> None:
    data = {"nats": {"home": {"preset": "full-cone"}}}
    scenario_from_dict(data, ["nats.home.hairpin=false", "hosts.alice={behind: home}"])
    assert data == {"nats": {"home": {"preset": "full-cone"}}}


def test_load_scenario_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "office.yaml"
    path.write_text("nats:\n  office: {preset: symmetric}\nhosts:\n  alice: {behind: office}\n")
    scenario = load_scenario(
        path,
        [
            "nats.office.preset=full-cone",
            "nats.office.filtering=ADF",
            "nats.office.firewall.allow=[tcp/443]",
            "hosts.bob={behind: office}",
            "servers.stun={kind: stun}",
            "seed=7",
        ],
    )
    assert scenario.name == "office"  # from the file name
    assert scenario.seed == 7
    router = scenario.routers()[0]
    assert router.behavior == PRESETS["full-cone"].model_copy(update={"filtering": Filtering.ADF})
    assert router.firewall == FirewallSpec(allow=["tcp/443"])
    assert set(scenario.hosts) == {"alice", "bob"}
    assert scenario.servers["stun"].kind == "stun"


def test_override_with_a_wrong_value_is_a_scenario_error_naming_file_and_field(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("nats: {home: {}}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, ["nats.home.mapping=sideways"])
    # the file and the override the bad value came from
    assert info.value.message.startswith(
        f"{path} with --set 'nats.home.mapping=sideways': invalid scenario"
    )
    assert "nats.home.mapping" in info.value.message
    assert "'sideways'" in info.value.message


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_loads_by_name(name: str) -> None:
    scenario = scenario_from_dict({"nats": {"x": {}}}, [f"nats.x.preset={name}"])
    assert scenario.nats["x"].preset == name
