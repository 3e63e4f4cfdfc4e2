"""Link impairments without a kernel: the `link:` model, what each backend would install, and
the userspace delay line's decisions.

Why: the integration tests prove the common cases on real packets, but only here can every
combination be checked cheaply: that old scenario files keep their meaning, that `up`/`down`
override exactly what they say, that the two backends render the same intent (netem's options
versus nftables + NFQUEUE + tbf), and that the delay line's statistics (jitter distributions as
netem's tables, Gilbert-Elliott loss, FIFO order) hold over hundreds of thousands of packets.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import subprocess
import sys
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simnet.errors import EnvironmentProblem, ScenarioError, SimnetError
from simnet.net.impair import chooser
from simnet.net.impair.chooser import BACKEND_ENV, choose_backend, link_targets
from simnet.net.impair.nfqueue import Helper, NfqueueBackend, helper_argv, wait_ready
from simnet.net.impair.nfqueue_helper import Line
from simnet.net.impair.rules import (
    DUP_MARK,
    LinkTarget,
    egress_chain,
    helper_configs,
    netem_args,
    netem_batch,
    queue_rules,
    tbf_args,
    tbf_batch,
)
from simnet.net.impair.shaping import (
    DirectionConfig,
    Shaper,
    decode,
    encode,
    quantile,
    spread,
)
from simnet.net.plan import plan_network
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import Impairment, LinkSpec
from simnet.settings import SettingError
from tests.unit.impaired_link import SPARED, target

TC_TABLES = [Path(p) for p in ("/usr/lib/x86_64-linux-gnu/tc", "/usr/lib/tc", "/usr/lib64/tc")]


def link(**fields: Any) -> LinkSpec:
    return LinkSpec.model_validate(fields)


# --- the model ----------------------------------------------------------------------------


def test_old_link_fields_keep_their_meaning_in_both_directions() -> None:
    spec = link(delay_ms=10, jitter_ms=1, loss_pct=0.5, rate_kbit=1000)
    for direction in ("up", "down"):
        imp = spec.direction(direction)
        assert (imp.delay_ms, imp.jitter_ms, imp.loss_pct, imp.rate_kbit) == (10, 1, 0.5, 1000)
        assert imp.jitter_distribution == "uniform" and not imp.reorder
        assert imp.queue_packets == 1000  # netem's default limit


def test_up_and_down_override_only_the_fields_they_set() -> None:
    spec = link(delay_ms=20, rate_kbit=5000, up={"rate_kbit": 1000}, down={"delay_ms": 5})
    assert spec.direction("up").model_dump() == {
        **spec.direction("down").model_dump(),
        "rate_kbit": 1000,
        "delay_ms": 20,
    }
    assert (spec.direction("down").delay_ms, spec.direction("down").rate_kbit) == (5, 5000)


def test_a_direction_can_clear_what_the_link_sets() -> None:
    spec = link(rate_kbit=5000, loss_pct=3, down={"rate_kbit": None, "loss_pct": 0})
    assert spec.direction("down").is_ideal
    assert spec.direction("up").rate_kbit == 5000


def test_a_direction_loss_model_replaces_the_links() -> None:
    spec = link(loss_pct=2, up={"loss_burst": {"p_pct": 1, "r_pct": 30}})
    assert spec.direction("up").loss_pct == 0 and spec.direction("up").loss_burst is not None
    assert spec.direction("down").loss_pct == 2 and spec.direction("down").loss_burst is None
    swapped = link(loss_burst={"p_pct": 1, "r_pct": 30}, down={"loss_pct": 4})
    assert swapped.direction("down").loss_burst is None
    assert swapped.direction("down").loss_pct == 4


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"loss_pct": 1, "loss_burst": {"p_pct": 1, "r_pct": 9}}, "two loss models"),
        ({"up": {"loss_pct": 1, "loss_burst": {"p_pct": 1, "r_pct": 9}}}, "two loss models"),
        ({"jitter_distribution": "gaussian"}, "uniform"),
        ({"up": {"mtu": 1400}}, "unknown field 'mtu'"),
        ({"loss_burst": {"p_pct": 0, "r_pct": 10}}, "greater than 0"),
        ({"loss_burst": {"p": 1, "r": 10}}, "allowed: p_pct, r_pct"),
        ({"queue_packets": 0}, "greater than or equal to 1"),
        ({"mtu": 100}, "greater than or equal to 576"),
        ({"duplicate_pct": 101}, "less than or equal to 100"),
        ({"side": {"delay_ms": 1}}, "unknown field 'side'"),
    ],
)
def test_invalid_links_are_scenario_errors_that_say_why(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError, match=r"hosts\.alice\.link") as caught:
        scenario_from_dict({"hosts": {"alice": {"link": fields}}}, source="s.yaml")
    assert message in str(caught.value)


def test_loss_burst_figures() -> None:
    burst = link(loss_burst={"p_pct": 5, "r_pct": 50}).loss_burst
    assert burst is not None
    assert burst.mean_loss_pct == pytest.approx(100 * 5 / 55)
    assert burst.mean_bad_packets == pytest.approx(2)


@pytest.mark.parametrize(
    ("fields", "ideal"),
    [
        ({}, True),
        ({"reorder": True, "queue_packets": 10, "jitter_distribution": "pareto"}, True),
        ({"mtu": 1400}, False),
        ({"down": {"duplicate_pct": 1}}, False),
        ({"up": {"loss_burst": {"p_pct": 1, "r_pct": 50}}}, False),
    ],
)
def test_is_ideal(fields: dict[str, Any], ideal: bool) -> None:
    assert link(**fields).is_ideal is ideal


def test_the_plan_carries_links_and_no_longer_rejects_them() -> None:
    scenario = scenario_from_dict(
        {
            "nats": {"home": {"link": {"delay_ms": 5}}},
            "hosts": {"alice": {"behind": "home", "link": {"rate_kbit": 300}}, "bob": {}},
        }
    )
    plan = plan_network(scenario)
    ns = {name: f"sn-x-{name}" for name in plan.nodes}
    targets = {t.node: t for t in link_targets(plan, ns)}
    assert set(targets) == {"home", "alice"}  # bob's link is ideal
    home, alice = targets["home"], targets["alice"]
    assert (home.a_if, home.b_ns, home.forwards_from, home.b_bridge) == (
        "wan",
        "sn-x-internet",
        "lan",
        None,
    )
    assert (alice.a_if, alice.b_ns, alice.forwards_from, alice.b_bridge) == (
        "eth0",
        "sn-x-home",
        None,
        "lan",
    )
    assert (str(alice.lan), str(alice.gateway)) == ("192.168.1.0/24", "192.168.1.1")
    assert {home.queue("up"), home.queue("down"), alice.queue("up"), alice.queue("down")} == {
        0,
        1,
        2,
        3,
    }


# --- what the userspace backend installs ------------------------------------------------


def test_loss_without_delay_is_dropped_by_nftables_on_the_senders_egress() -> None:
    t = target({"loss_pct": 2.5, "down": {"loss_pct": 0.01}})
    up = egress_chain(t, "up")
    assert 'hook egress device "eth0"' in up
    assert "numgen random mod 1000000 < 25000 drop" in up
    down = egress_chain(t, "down")
    assert 'device "p3"' in down and "< 100 drop" in down
    assert queue_rules([t], {}) == {} and helper_configs(t) == []


def test_loss_with_a_delay_line_is_decided_by_the_helper() -> None:
    t = target({"loss_pct": 2.5, "delay_ms": 10})
    assert egress_chain(t, "up") == ""
    (up, down) = helper_configs(t)
    assert (up.queue, up.loss, up.delay_s, up.bind_in) == (0, 0.025, 0.010, ("sn-x-internet",))
    assert (down.queue, down.loss, down.bind_in) == (1, 0.025, ("sn-x-alice",))


def test_duplicates_are_marked_so_they_are_not_duplicated_again() -> None:
    chain = egress_chain(target({"duplicate_pct": 10}), "up")
    lines = [line.strip() for line in chain.splitlines()]
    mark = f"meta mark {DUP_MARK:#x} return"
    dup = next(line for line in lines if "dup to" in line)
    assert lines.index(mark) < lines.index(dup)
    assert f"meta mark set {DUP_MARK:#x}" in dup and dup.endswith('dup to "eth0"')
    assert "< 100000 " in dup


def test_queue_rules_feed_the_raw_table_before_conntrack_and_fail_closed() -> None:
    """Each direction is queued where it arrived over the veth: down in `a`, up in `b`."""
    rules = queue_rules([target({"delay_ms": 10})], {})
    assert rules == {
        "sn-x-internet": f"*raw\n{SPARED}-A PREROUTING -i p3 -j NFQUEUE --queue-num 0\nCOMMIT\n",
        "sn-x-alice": f"*raw\n{SPARED}-A PREROUTING -i eth0 -j NFQUEUE --queue-num 1\nCOMMIT\n",
    }
    assert not any("bypass" in text for text in rules.values())
    up_only = queue_rules([target({"up": {"jitter_ms": 3}}, router=True)], {})
    assert list(up_only) == ["sn-x-internet"]


def lan_target(node: str, index: int, spec: dict[str, Any], router: bool = False) -> LinkTarget:
    return LinkTarget(
        node=node,
        a_ns=f"sn-x-{node}",
        a_if="wan" if router else "eth0",
        b_ns="sn-x-home",
        b_if=f"l{index}",
        spec=LinkSpec.model_validate(spec),
        index=index,
        forwards_from="lan" if router else None,
        b_bridge="lan",
        lan=IPv4Network("192.168.1.0/24"),
        gateway=IPv4Address("192.168.1.1"),
    )


def test_on_a_lan_up_is_queued_by_mac_at_the_router_and_same_lan_traffic_at_home() -> None:
    home = LinkTarget(
        "home",
        "sn-x-home",
        "wan",
        "sn-x-internet",
        "p0",
        link(delay_ms=5),
        index=0,
        forwards_from="lan",
    )
    alice = lan_target("alice", 1, {"delay_ms": 10})
    inner = lan_target("inner", 2, {"up": {"delay_ms": 1}}, router=True)
    rules = queue_rules([home, alice, inner], {"alice": "02:aa", "inner": "02:bb"})
    assert rules["sn-x-home"].splitlines() == [
        "*raw",
        *SPARED.splitlines(),  # group management (IGMP) is link control, never delayed
        # frames that arrived from a LAN member first (an accepted verdict ends the chain) ...
        "-A PREROUTING -i lan -m mac --mac-source 02:aa -j NFQUEUE --queue-num 2",
        "-A PREROUTING -i lan -m mac --mac-source 02:bb -j NFQUEUE --queue-num 4",
        # ... then home's own down direction
        "-A PREROUTING -i wan -j NFQUEUE --queue-num 1",
        "COMMIT",
    ]
    assert rules["sn-x-alice"].splitlines() == [
        "*raw",
        *SPARED.splitlines(),
        "-A PREROUTING -i eth0 -j NFQUEUE --queue-num 3",
        "-A OUTPUT -o eth0 -d 192.168.1.1/32 -j RETURN",  # the gateway: queued at home
        "-A OUTPUT -o eth0 -d 192.168.1.0/24 -j NFQUEUE --queue-num 2",  # bridged: queued here
        "COMMIT",
    ]
    assert rules["sn-x-inner"].splitlines() == [
        "*raw",
        *SPARED.splitlines(),
        "-A OUTPUT -o wan -d 192.168.1.1/32 -j RETURN",
        "-A OUTPUT -o wan -d 192.168.1.0/24 -j NFQUEUE --queue-num 4",
        "-A PREROUTING -i lan -d 192.168.1.1/32 -j RETURN",
        "-A PREROUTING -i lan -d 192.168.1.0/24 -j NFQUEUE --queue-num 4",
        "COMMIT",
    ]
    up, down = helper_configs(alice)
    assert (up.queue, up.bind_in) == (2, ("sn-x-home", "sn-x-alice"))
    assert (down.queue, down.bind_in) == (3, ("sn-x-alice",))


def test_rate_is_tbf_on_each_senders_egress() -> None:
    t = target({"rate_kbit": 8000, "queue_packets": 50, "down": {"rate_kbit": 500}})
    assert tbf_batch(t, "up") == [
        "qdisc replace dev eth0 root handle 1: tbf rate 8000kbit burst 3028 limit 75700"
    ]
    assert tbf_batch(t, "down")[0].startswith("qdisc replace dev p3 root handle 1: tbf rate 500")
    fast = tbf_args(Impairment(rate_kbit=1_000_000), 1500)
    assert "burst 125000 " in fast  # 1 ms at 1 Gbit/s: more than two frames
    # a queue is never smaller than the bucket: tbf would refuse a full burst
    assert tbf_args(Impairment(rate_kbit=1000, queue_packets=1), 8986).endswith(
        "burst 18000 limit 18000"
    )


def test_helper_seeds_are_stable_and_differ_per_direction() -> None:
    t = target({"delay_ms": 1})
    up, down = helper_configs(t)
    assert up.seed != down.seed
    assert [c.seed for c in helper_configs(target({"delay_ms": 1}))] == [up.seed, down.seed]


def test_helper_argv_carries_namespace_and_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMNET_LINK_RT_PRIORITY", "0")
    t = target({"delay_ms": 3, "jitter_ms": 1, "jitter_distribution": "normal"})
    argv = helper_argv(t)
    assert argv[1:] == [
        "-m",
        "simnet.net.impair.nfqueue_helper",
        "--netns",
        "sn-x-alice",
        "--rt-priority",
        "0",
        "--config",
        argv[-1],
    ]
    assert decode(argv[-1]) == helper_configs(t)


@given(
    st.builds(
        DirectionConfig,
        name=st.text(max_size=5),
        queue=st.integers(0, 65535),
        delay_s=st.floats(0, 10),
        jitter_s=st.floats(0, 10),
        distribution=st.sampled_from(["uniform", "normal", "pareto"]),
        loss=st.floats(0, 1),
        burst=st.none() | st.tuples(*[st.floats(0, 1)] * 4),
        reorder=st.booleans(),
        queue_packets=st.integers(1, 10**6),
        seed=st.integers(0, 2**32 - 1),
        bind_in=st.lists(st.text(max_size=8), max_size=2).map(tuple),
    )
)
def test_helper_config_round_trips(config: DirectionConfig) -> None:
    assert decode(encode([config])) == [config]


# --- what the netem backend installs ------------------------------------------------------


def test_netem_gets_the_same_meaning() -> None:
    imp = Impairment.model_validate(
        {
            "delay_ms": 20,
            "jitter_ms": 5,
            "jitter_distribution": "pareto",
            "loss_burst": {"p_pct": 1, "r_pct": 25, "loss_in_bad_pct": 80},
            "duplicate_pct": 0.5,
            "queue_packets": 200,
        }
    )
    assert netem_args(imp) == (
        "netem limit 200 delay 20000us 5000us distribution pareto "
        "loss gemodel 1% 25% 80% 0% duplicate 0.5% rate 1000gbit"
    )
    uniform = netem_args(Impairment(delay_ms=1.5, jitter_ms=1, reorder=True, loss_pct=3))
    assert uniform == "netem limit 1000 delay 1500us 1000us loss random 3%"
    assert netem_args(Impairment(rate_kbit=100)) is None


def test_netem_with_a_rate_gets_tbf_as_its_child() -> None:
    t = target({"delay_ms": 10, "rate_kbit": 2000, "down": {"delay_ms": 0}})
    up = netem_batch(t, "up")
    assert up[0] == "qdisc replace dev eth0 root handle 1: netem limit 1000 delay 10000us"
    assert up[1].startswith("qdisc replace dev eth0 parent 1:1 handle 10: tbf rate 2000kbit")
    assert netem_batch(t, "down") == tbf_batch(t, "down")
    assert netem_batch(target({"up": {"loss_pct": 1}}), "down") == []


# --- backend choice -----------------------------------------------------------------------


def test_backend_is_forced_or_refused_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_probe(ns: str) -> bool:
        raise AssertionError("netem was probed although the backend was forced")

    monkeypatch.setattr(chooser, "netem_available", no_probe)
    monkeypatch.setenv(BACKEND_ENV, "nfqueue")
    assert isinstance(choose_backend("sn-x"), NfqueueBackend)
    monkeypatch.setenv(BACKEND_ENV, "tc")
    with pytest.raises(SettingError, match="not a link backend; allowed: auto, netem, nfqueue"):
        choose_backend("sn-x")
    monkeypatch.setattr(chooser, "netem_available", lambda ns: False)
    monkeypatch.setenv(BACKEND_ENV, "netem")
    with pytest.raises(EnvironmentProblem, match="no sch_netem"):
        choose_backend("sn-x")
    monkeypatch.setenv(BACKEND_ENV, "auto")
    assert choose_backend("sn-x").name == "nfqueue"
    monkeypatch.setattr(chooser, "netem_available", lambda ns: True)
    assert choose_backend("sn-x").name == "netem"


# --- the delay line's decisions -----------------------------------------------------------


def draws(config: DirectionConfig, n: int) -> list[float | None]:
    shaper = Shaper(config)
    return [shaper.due(i * 0.001) for i in range(n)]


@pytest.mark.parametrize("dist", ["uniform", "normal", "pareto"])
def test_jitter_samples_follow_the_distribution(dist: str) -> None:
    config = DirectionConfig("x", 0, delay_s=1.0, jitter_s=0.1, distribution=dist, reorder=True)
    shaper = Shaper(config)
    delays = sorted(shaper.delay() for _ in range(100_000))
    assert statistics.pstdev(delays) == pytest.approx(0.1 * spread(dist), rel=0.03)
    for q in (0.05, 0.5, 0.95):
        assert delays[int(q * len(delays))] == pytest.approx(1 + 0.1 * quantile(dist, q), abs=2e-3)


@pytest.mark.parametrize("dist", ["normal", "pareto"])
def test_distributions_are_netems_tables(dist: str) -> None:
    """Quantiles equal iproute2's tables (value/8192 sigma) to their quantisation."""
    table = next((d / f"{dist}.dist" for d in TC_TABLES if (d / f"{dist}.dist").exists()), None)
    if table is None:
        pytest.skip("iproute2's netem distribution tables are not installed")
    values = sorted(
        int(v) / 8192
        for line in table.read_text().splitlines()
        if not line.startswith("#")
        for v in line.split()
    )
    for i in range(64, len(values) - 64, 97):
        u = (i + 0.5) / len(values)
        assert quantile(dist, u) == pytest.approx(values[i], abs=0.02), f"u={u:.3f}"
    assert spread(dist) == pytest.approx(statistics.pstdev(values), rel=0.01)


def test_delay_is_never_negative() -> None:
    config = DirectionConfig(
        "x", 0, delay_s=0.001, jitter_s=0.01, distribution="normal", reorder=True
    )
    shaper = Shaper(config)
    assert min(shaper.delay() for _ in range(10_000)) == 0.0


def test_without_reorder_packets_leave_in_order() -> None:
    dues = draws(DirectionConfig("x", 0, delay_s=0.02, jitter_s=0.01), 5000)
    assert all(d is not None for d in dues)
    assert dues == sorted(dues)  # type: ignore[type-var]
    mixed = draws(DirectionConfig("x", 0, delay_s=0.02, jitter_s=0.01, reorder=True), 5000)
    assert mixed != sorted(mixed)  # type: ignore[type-var]


def test_same_seed_same_decisions() -> None:
    config = DirectionConfig("x", 0, jitter_s=0.01, loss=0.1, seed=42)
    assert draws(config, 1000) == draws(config, 1000)
    assert draws(config, 1000) != draws(DirectionConfig("x", 0, jitter_s=0.01, loss=0.1), 1000)


def test_independent_loss_rate() -> None:
    lost = [d is None for d in draws(DirectionConfig("x", 0, loss=0.07), 200_000)]
    assert sum(lost) / len(lost) == pytest.approx(0.07, abs=0.003)


@settings(max_examples=15, deadline=None)
@given(
    st.floats(0.01, 0.3),
    st.floats(0.05, 0.9),
    st.floats(0.5, 1),
    st.floats(0, 0.05),
)
def test_gilbert_elliott_loss_and_bursts(p: float, r: float, in_bad: float, in_good: float) -> None:
    n = 200_000
    shaper = Shaper(DirectionConfig("x", 0, burst=(p, r, in_bad, in_good), seed=3))
    states, lost = [], []
    for _ in range(n):
        states.append(shaper.bad)
        lost.append(shaper.lost())
    share = p / (p + r)
    want = share * in_bad + (1 - share) * in_good
    # a Markov chain's sum varies (1 + l) / (1 - l) times more than independent draws
    corr = 1 - p - r
    sd = math.sqrt(n * want * (1 - want) * (1 + abs(corr)) / (1 - abs(corr)) + n * 0.01)
    assert abs(sum(lost) - n * want) <= 4.5 * sd
    spells = [len(s) for s in "".join("b" if s else "." for s in states).split(".") if s]
    assert statistics.mean(spells) == pytest.approx(1 / r, rel=0.15)


def test_helper_line_releases_on_time_and_in_order() -> None:
    class FakePacket:
        def __init__(self, loop: asyncio.AbstractEventLoop, log: list[tuple[int, float]], i: int):
            self.loop, self.log, self.i = loop, log, i

        def accept(self) -> None:
            self.log.append((self.i, self.loop.time()))

        def drop(self) -> None:
            self.log.append((self.i, -1.0))

    async def scenario() -> tuple[list[tuple[int, float]], list[float]]:
        loop = asyncio.get_running_loop()
        line = Line(loop, DirectionConfig("x", 0, delay_s=0.02, jitter_s=0.01, seed=5))
        log: list[tuple[int, float]] = []
        arrived = []
        for i in range(20):
            arrived.append(loop.time())
            line.on_packet(FakePacket(loop, log, i))
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.05)
        return log, arrived

    log, arrived = asyncio.run(scenario())
    assert [i for i, _ in log] == list(range(20))
    for i, at in log:
        assert at - arrived[i] >= 0.01 - 1e-3  # never before delay - jitter


# --- the helper's start-up contract ------------------------------------------------------


def fake_helper(tmp_path: Path, script: str) -> Helper:
    log = tmp_path / "helper.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=sink)
    return Helper(target({"delay_ms": 1}), proc, log)


def test_the_builder_waits_for_ready_and_reports_a_helper_that_dies(tmp_path: Path) -> None:
    ready = fake_helper(tmp_path, "import time; time.sleep(0.05); print('ready', flush=True)")
    wait_ready([ready], deadline_s=10)
    ready.proc.wait()
    dead = fake_helper(tmp_path, "import sys; sys.stderr.write('cannot bind queue 0'); sys.exit(3)")
    with pytest.raises(SimnetError, match=r"exited with 3 before it was ready: cannot bind"):
        wait_ready([dead], deadline_s=10)


def test_a_stalled_helper_fails_the_build_at_the_deadline(tmp_path: Path) -> None:
    stalled = fake_helper(tmp_path, "import time; time.sleep(30)")
    try:
        with pytest.raises(SimnetError, match=r"not ready after 0\.2 s"):
            wait_ready([stalled], deadline_s=0.2)
    finally:
        stalled.proc.kill()
        stalled.proc.wait()


def test_the_helper_refuses_a_bad_config_without_touching_the_kernel() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simnet.net.impair.nfqueue_helper", "--config", "[{]"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "bad --config" in done.stderr and done.stdout == ""


def test_certain_loss_and_duplication_have_no_chance_condition() -> None:
    """100 % as `numgen random mod 1000000 < 1000000` is rejected by nft (range 0-999999)."""
    lost = egress_chain(target({"loss_pct": 100}), "up")
    assert "meta protocol ip drop" in lost and "numgen" not in lost
    doubled = egress_chain(target({"duplicate_pct": 100}), "up")
    assert f'meta protocol ip meta mark set {DUP_MARK:#x} dup to "eth0"' in doubled
    assert "numgen" not in doubled
    almost = egress_chain(target({"loss_pct": 99.9999}), "up")
    assert "numgen random mod 1000000 < 999999 drop" in almost
