"""`loss_pct: 100` and `duplicate_pct: 100` work: every packet lost, every packet doubled.

Why: both validated, then the build failed in nftables ("Value 1000000 exceeds valid range
0-999999"): a chance of 100 % was rendered as `numgen random mod 1000000 < 1000000`. At 100 % the
rule now has no condition. Loss is tested both where nftables drops (no delay) and where the delay
line does (a delay is set), in both directions, and at 100 % as a timeline change of a live link.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from simnet.net.builder import Network, emulated_network
from simnet.net.impair import live
from simnet.net.impair.measure import probe
from simnet.net.plan import plan_network
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import LinkSpec

COUNT = 40
SCENARIO: dict[str, Any] = {
    "name": "certain-loss",
    "hosts": {
        "sink": {},
        "gone": {"link": {"loss_pct": 100}},  # nftables drops
        "gone-lined": {"link": {"delay_ms": 2, "loss_pct": 100}},  # the delay line drops
        "twice": {"link": {"duplicate_pct": 100}},
        "later": {},  # ideal until a live change makes it lose everything
    },
}


@pytest.fixture(scope="module")
def net() -> Iterator[Network]:
    with emulated_network(plan_network(scenario_from_dict(SCENARIO)), "test-certain") as net:
        yield net


def send(net: Network, src: str, dst: str) -> Any:
    return probe(net.ns(src), net.ns(dst), str(net.address(dst)), COUNT, 0.005, 64, 0.3)


@pytest.mark.integration
@pytest.mark.parametrize("host", ["gone", "gone-lined"])
def test_loss_of_100_percent_loses_every_packet_both_ways(net: Network, host: str) -> None:
    assert send(net, host, "sink").received == 0
    assert send(net, "sink", host).received == 0
    assert send(net, "sink", "twice").received == COUNT  # (control: the sink does receive)


@pytest.mark.integration
def test_duplicate_of_100_percent_doubles_every_packet(net: Network) -> None:
    for probes in (send(net, "twice", "sink"), send(net, "sink", "twice")):
        assert probes.received == COUNT
        copies = Counter(seq for seq, _ in probes.arrivals)
        # Each exactly twice (a copy is not copied again). `probe` stops listening once it has
        # `count` datagrams, which with copies is as soon as the last one is sent, so the last
        # one's copy may come too late to be counted.
        assert [copies[seq] for seq in range(COUNT - 1)] == [2] * (COUNT - 1)
        assert copies[COUNT - 1] in (1, 2)


@pytest.mark.integration
def test_a_live_change_to_100_percent_loss_is_applied(net: Network) -> None:
    plan = net.plan
    ns_of = {name: net.ns(name) for name in plan.nodes}
    live.set_link(plan, ns_of, "later", LinkSpec(loss_pct=100))
    try:
        assert send(net, "later", "sink").received == 0
    finally:
        live.set_link(plan, ns_of, "later", None)
    assert send(net, "later", "sink").received == COUNT
