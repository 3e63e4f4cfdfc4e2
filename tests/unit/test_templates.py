"""Host templates (`count`, `own_nat`) and concurrent calls: what a load scenario stands for.

Why: a load scenario's 50 alices and their routers are never written out by the user, so the
names they get, the NAT each sits behind, which alice calls which bob, and every way such a file
can be wrong (a count of zero, a name too long or taken, more calls than hosts, more hosts than
the address plan holds) must be exactly as documented, before anything is built.
"""

from __future__ import annotations

from typing import Any

import pytest

from simnet.errors import ScenarioError
from simnet.net.plan import plan_network
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.templates import call_pairs, expand

SERVERS = {"turn": {"kind": "turn"}, "signaling": {"kind": "signaling"}}


def load(nats: dict[str, Any], hosts: dict[str, Any], call: dict[str, Any] | None = None) -> Any:
    data: dict[str, Any] = {"nats": nats, "hosts": hosts, "servers": SERVERS}
    if call is not None:
        data["call"] = call
    return scenario_from_dict(data)


def test_instances_are_numbered_and_own_nats_are_copies() -> None:
    scenario = load(
        {"home": {"preset": "symmetric", "udp_timeout_s": 30}, "carrier": {"preset": "cgnat"}},
        {
            "alice": {"behind": "home", "count": 3, "own_nat": True},
            "bob": {"behind": "carrier", "count": 2, "link": {"delay_ms": 5}},
        },
    )
    concrete = expand(scenario)
    assert list(concrete.hosts) == ["alice-0", "alice-1", "alice-2", "bob-0", "bob-1"]
    assert [concrete.hosts[f"alice-{i}"].behind for i in range(3)] == [
        "alice-0-nat",
        "alice-1-nat",
        "alice-2-nat",
    ]
    # each copy is the template's NAT, knobs included; the original, now unused, is not built
    assert "home" not in concrete.nats
    for i in range(3):
        assert concrete.nats[f"alice-{i}-nat"] == scenario.nats["home"]
    # a shared NAT stays one NAT; every instance keeps the template's link and peer
    assert {concrete.hosts[f"bob-{i}"].behind for i in range(2)} == {"carrier"}
    assert all(concrete.hosts[f"bob-{i}"].link == scenario.hosts["bob"].link for i in range(2))
    plan = plan_network(scenario)
    assert len([n for n in plan.nodes if n.startswith("alice-") and n.endswith("-nat")]) == 3


def test_a_nat_used_by_another_host_is_kept_beside_the_copies() -> None:
    scenario = load(
        {"home": {}},
        {"alice": {"behind": "home", "count": 2, "own_nat": True}, "carol": {"behind": "home"}},
    )
    assert {"home", "alice-0-nat", "alice-1-nat"} == set(expand(scenario).nats)


def test_without_templates_the_scenario_is_unchanged() -> None:
    scenario = load({"home": {}}, {"alice": {"behind": "home"}, "bob": {}})
    assert expand(scenario) is scenario


@pytest.mark.parametrize(("concurrent", "pairs"), [(1, 1), (3, 3), (4, 4)])
def test_instance_i_calls_instance_i(concurrent: int, pairs: int) -> None:
    scenario = load(
        {"home": {}},
        {"alice": {"behind": "home", "count": 4}, "bob": {"count": 5}},
        {"offerer": "alice", "answerer": "bob", "concurrent": concurrent, "ramp_per_s": 2},
    )
    assert scenario.call is not None
    expected = [(f"alice-{i}", f"bob-{i}") for i in range(pairs)]
    assert call_pairs(scenario, scenario.call) == expected
    concrete = expand(scenario)
    assert concrete.call is not None
    assert (concrete.call.offerer, concrete.call.answerer) == ("alice-0", "bob-0")


BAD = [
    pytest.param({"alice": {"count": 0}}, None, "hosts.alice.count", id="zero-count"),
    pytest.param(
        {"alice": {"behind": "home"}, "bob": {}},
        {"concurrent": 0},
        "call.concurrent",
        id="zero-calls",
    ),
    pytest.param({"alice": {"own_nat": True}}, None, "no NAT to copy", id="own-nat-on-internet"),
    pytest.param(
        {"alice-nineteen-abc": {"behind": "home", "count": 20}},
        None,
        "longer than 20 characters",
        id="instance-name-too-long",
    ),
    pytest.param(
        {"alice": {"behind": "home", "count": 2}, "alice-1": {}},
        None,
        "makes the name 'alice-1', already used",
        id="instance-name-taken",
    ),
    pytest.param(
        {"alice": {"behind": "home", "count": 2}, "bob": {"count": 3}},
        {"concurrent": 3},
        "hosts.alice.count is 2",
        id="more-calls-than-offerers",
    ),
    pytest.param(
        {"alice": {"behind": "home", "count": 2}, "bob": {"count": 2}},
        {"concurrent": 2, "duration_s": 5, "timeline": [{"at_s": 1, "action": "ice-restart"}]},
        "timeline",
        id="timeline-with-concurrent-calls",
    ),
    pytest.param(
        {"alice": {"behind": "home", "count": 2}, "bob": {}},
        {
            "duration_s": 5,
            "timeline": [{"at_s": 1, "action": "link", "target": "alice", "link": {"delay_ms": 5}}],
        },
        "'alice' is a template of 2 hosts",
        id="timeline-targets-a-template",
    ),
]


@pytest.mark.parametrize(("hosts", "call", "named"), BAD)
def test_a_bad_template_is_one_clear_error(
    hosts: dict[str, Any], call: dict[str, Any] | None, named: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        load({"home": {}}, hosts, None if call is None else {"offerer": "alice", **call})
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("nats", "hosts", "named"),
    [
        pytest.param(
            {"home": {"lan": "192.168.50.0/27"}},
            {"alice": {"behind": "home", "count": 30}},
            "too many hosts behind home: 192.168.50.0/27 is exhausted (it holds 21",
            id="lan-full",
        ),
        pytest.param(
            {"home": {}},
            {
                "alice": {"behind": "home", "count": 200, "own_nat": True},
                "bob": {"behind": "home", "count": 100, "own_nat": True},
            },
            "too many NATs on the internet",
            id="internet-full-of-nats",
        ),
        pytest.param({}, {"bob": {"count": 200}}, "too many hosts on the internet", id="public"),
    ],
)
def test_more_hosts_than_the_address_plan_holds_is_an_error_with_a_fix(
    nats: dict[str, Any], hosts: dict[str, Any], named: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        plan_network(load(nats, hosts))
    assert named in str(info.value)
    assert info.value.fix and "count" in info.value.fix


@pytest.mark.parametrize(
    ("levels", "named"),
    [([1, 5], "hosts.alice.count is 3"), ([0, 2], "at least 1 call"), ([], "at least 1 call")],
)
def test_a_load_larger_than_its_templates_is_one_clear_error(levels: list[int], named: str) -> None:
    from simnet.run.load import load_pairs

    scenario = load(
        {"home": {}},
        {"alice": {"behind": "home", "count": 3}, "bob": {"count": 4}},
        {"offerer": "alice", "answerer": "bob"},
    )
    with pytest.raises(ScenarioError) as info:
        load_pairs(scenario, levels, "load.yaml")
    assert str(info.value).startswith("load.yaml: ") and named in str(info.value)
    assert info.value.fix


def test_a_load_takes_the_first_pairs() -> None:
    from simnet.run.load import load_pairs

    scenario = load(
        {"home": {}},
        {"alice": {"behind": "home", "count": 3}, "bob": {"count": 4}},
        {"offerer": "alice", "answerer": "bob", "concurrent": 2},
    )
    assert load_pairs(scenario, [1, 3], "x") == [(f"alice-{i}", f"bob-{i}") for i in range(3)]
