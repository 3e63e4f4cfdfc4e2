"""The emulator-bottleneck columns come from the kernel's real NFQUEUE counters: packets a
delay line handled, its peak rate, and a flag once that rate passes the configured ceiling.
The ceiling is lowered here (`SIMNET_EMULATOR_LIMIT_PPS`) so the flag's logic is exercised at a
rate any machine reaches; the default comes from benchmarks/impairment_fidelity.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from simnet.net.builder import Network, emulated_network
from simnet.net.impair import pressure
from simnet.net.impair.measure import blast
from simnet.net.plan import plan_network
from simnet.run.one_call import queue_namespaces
from simnet.scenario.load import scenario_from_dict
from tests.solo import SOLO

pytestmark = [pytest.mark.integration, *SOLO]

SCENARIO = {
    "name": "pressure",
    "hosts": {"sink": {}, "far": {"link": {"delay_ms": 5}}},
}


@pytest.fixture(scope="module")
def net() -> Iterator[Network]:  # (not root: conftest skips every integration test)
    with emulated_network(plan_network(scenario_from_dict(SCENARIO)), "test-pressure") as net:
        yield net


def send(net: Network, packets_per_s: float, seconds: float) -> dict[str, object]:
    """UDP from `far` to `sink` at a paced rate (64-byte datagrams), watched as a call is."""
    kbit = packets_per_s * (64 + 42) * 8 / 1000

    async def watched_blast() -> dict[str, object]:
        async with pressure.watched(queue_namespaces(net)) as emulator:
            await asyncio.to_thread(
                blast, net.ns("far"), net.ns("sink"), str(net.address("sink")), kbit, seconds, 64
            )
        return emulator.columns()

    return asyncio.run(watched_blast())


def test_a_quiet_link_is_counted_and_not_flagged(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(pressure.LIMIT_ENV, "5000")
    columns = send(net, 500, 1.0)
    # ~500 packets up through the line (the return direction carries nothing)
    assert 400 <= columns["emulator_packets"] <= 700, columns  # type: ignore[operator]
    assert 0 < columns["emulator_peak_pps"] < 2500, columns  # type: ignore[operator]
    assert columns["emulator_dropped"] == 0 and columns["emulator_limited"] is False, columns


def test_a_link_past_the_ceiling_flags_the_result(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(pressure.LIMIT_ENV, "5000")
    columns = send(net, 15_000, 1.0)
    assert columns["emulator_peak_pps"] > 5000, columns  # type: ignore[operator]
    assert columns["emulator_limited"] is True, columns
