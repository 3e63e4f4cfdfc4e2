"""A link changed during a call is measurably its new self, with real packets, on the userspace
backend: delay, jitter (each distribution), reordering and Gilbert-Elliott loss.

Why: a call's timeline (`simnet.call.timeline`) changes links with `live.set_link`; a result
after the change is only worth what the link then is. As in `test_impairments`, UDP probes
between two hosts of one built network measure each link before and after a change, to the
same bar: medians and quantiles within 1 ms, loss inside a 99.9% interval. The transitions
are all there: a delay line reconfigured (20 -> 80 ms, -> none, back to the scenario's), one
started during the call (a link without one, a direction without one, a LAN member whose up
direction is queued by MAC at its router), and one given up (kept as a pass-through). A dense
stream across a delay decrease checks that no packet overtakes one sent before it.

Printed (`-s`): the figures measured, for docs/guides/impairments.md and the report.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from scipy.stats import binom

from simnet.net import netns
from simnet.net.builder import Network, emulated_network
from simnet.net.impair import live
from simnet.net.impair.measure import HEADER, Probes, Receiver, StampedSocket, probe
from simnet.net.impair.shaping import quantile
from simnet.net.plan import plan_network
from simnet.net.registry import PREFIX, STATE_DIR
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import LinkSpec
from tests.solo import SOLO

pytestmark = [pytest.mark.integration, *SOLO]

BURST = {"p_pct": 5.0, "r_pct": 50.0}
LOSS_PCT = 10.0
# How early a delay line may release a packet: its timer lead (capped at 0.3 ms) plus 20 µs.
EARLIEST_MS = 0.35
SCENARIO: dict[str, Any] = {
    "name": "live-links",
    "seed": 11,
    "nats": {"home": {"preset": "full-cone", "link": {"delay_ms": 5}}},
    "hosts": {
        "sink": {},
        "d": {"link": {"delay_ms": 20}},
        "fifo": {"link": {"delay_ms": 80}},
        "half": {"link": {"up": {"delay_ms": 10}}},  # no delay line down at the start
        "jit": {"link": {"delay_ms": 30}},
        "lossy": {"link": {"loss_pct": LOSS_PCT}},  # loss without a delay line: nftables
        "lan": {"behind": "home"},  # no link of its own at the start
    },
}


@pytest.fixture(scope="module")
def net() -> Iterator[Network]:  # (not root: conftest skips every integration test)
    with emulated_network(plan_network(scenario_from_dict(SCENARIO)), "test-live") as net:
        yield net


def set_link(net: Network, node: str, link: dict[str, Any] | LinkSpec | None) -> float:
    """Change `node`'s link as a timeline does; returns how long that took (ms)."""
    spec = LinkSpec.model_validate(link) if isinstance(link, dict) else link
    started = time.monotonic()
    live.set_link(net.plan, {n: net.ns(n) for n in net.plan.nodes}, node, spec)
    return (time.monotonic() - started) * 1000


def up(net: Network, host: str, count: int = 200, interval_s: float = 0.005) -> Probes:
    return probe(net.ns(host), net.ns("sink"), str(net.address("sink")), count, interval_s, 64, 0.5)


def down(net: Network, host: str, count: int = 200, interval_s: float = 0.005) -> Probes:
    return probe(net.ns("sink"), net.ns(host), str(net.address(host)), count, interval_s, 64, 0.5)


def medians(net: Network, host: str) -> tuple[float, float]:
    """Median one-way delay up and down (ms); every probe arrives, in order."""
    out = []
    for probes in (up(net, host), down(net, host)):
        assert probes.lost == 0 and probes.reordered == 0, (host, probes.lost, probes.reordered)
        out.append(statistics.median(probes.delays_ms()))
    return out[0], out[1]


def helper_of(net: Network, node: str) -> int | None:
    found = net.run.info.get("links", {}).get("nodes", {}).get(node, {}).get("helper_pid")
    return int(found) if found is not None else None


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def binomial_ok(observed: int, n: int, pct: float) -> tuple[bool, str]:
    low, high = binom.interval(0.999, n, pct / 100)
    return low <= observed <= high, f"{observed}/{n}, 99.9% interval [{low:g}, {high:g}]"


# --- delay --------------------------------------------------------------------------------


def test_a_delay_line_takes_a_new_delay_gives_it_up_and_gets_the_scenarios_back(
    net: Network,
) -> None:
    helper = helper_of(net, "d")
    steps: list[tuple[str, dict[str, Any] | LinkSpec | None, tuple[float, float]]] = [
        ("80 ms", {"delay_ms": 80}, (80, 80)),
        ("none", None, (0, 0)),
        ("5 up, 40 down", {"delay_ms": 5, "down": {"delay_ms": 40}}, (5, 40)),
        ("scenario's", live.attachment(net.plan, "d").link, (20, 20)),
    ]
    report = [f"d at start: up/down median {medians(net, 'd')} ms"]
    for name, link, (want_up, want_down) in steps:
        took = set_link(net, "d", link)
        got_up, got_down = medians(net, "d")
        report.append(
            f"d -> {name} (change took {took:.1f} ms): up {got_up:.3f} ms (want {want_up}), "
            f"down {got_down:.3f} ms (want {want_down})"
        )
        assert abs(got_up - want_up) <= 1.0, "\n".join(report)
        assert abs(got_down - want_down) <= 1.0, "\n".join(report)
    assert helper_of(net, "d") == helper and helper is not None and process_alive(helper)
    print("\n".join(report))


def test_a_delay_decrease_lets_no_packet_overtake_an_earlier_one(net: Network) -> None:
    """80 ms -> none under a packet every 0.5 ms: what was held leaves when it was due, what
    comes after queues behind it (its delay falls from 80 ms to nothing over 80 ms), in order."""
    count, interval_s, change_at = 3000, 0.0005, 1000
    reached = threading.Event()
    outcome: list[Probes] = []

    def stream() -> None:
        outcome.append(
            probe(
                net.ns("fifo"), net.ns("sink"), str(net.address("sink")), count, interval_s,
                HEADER.size, 0.5, on_sent=lambda seq: reached.set() if seq == change_at else None,
            )
        )  # fmt: skip

    thread = threading.Thread(target=stream)
    thread.start()
    try:
        assert reached.wait(30), "the sender never reached the change"
        begun = time.monotonic_ns()
        set_link(net, "fifo", None)
        done = time.monotonic_ns()
    finally:
        thread.join()
    [probes] = outcome
    sent, arrivals = probes.sent_ns, probes.arrivals
    delay = {seq: (at - sent[seq]) / 1e6 for seq, at in arrivals}
    before = [d for seq, d in delay.items() if sent[seq] < begun]
    after = [d for seq, d in delay.items() if sent[seq] > done + 80_000_000]
    report = (
        f"{probes.received}/{count} arrived, {probes.reordered} reordered; change took "
        f"{(done - begun) / 1e6:.1f} ms; sent before it: median {statistics.median(before):.3f} "
        f"ms (min {min(before):.3f}); sent 80 ms after it: median "
        f"{statistics.median(after):.3f} ms (max {max(after):.3f})"
    )
    print(report)
    assert probes.lost == 0 and probes.duplicates == 0, report
    assert probes.reordered == 0, report
    assert abs(statistics.median(before) - 80) <= 1.0 and min(before) >= 80 - EARLIEST_MS, report
    assert statistics.median(after) <= 1.0, report
    arrived = [at for _, at in arrivals]
    assert arrived == sorted(arrived)


# --- delay lines started and given up during the call --------------------------------------


def test_a_link_without_a_delay_line_gets_one_and_keeps_it_as_a_pass_through() -> None:
    """The helper started during the call is the run's like any other: recorded in its state
    file (so `simnet cleanup` finds it) and stopped at teardown."""
    scenario = scenario_from_dict({"name": "live-new", "hosts": {"a": {}, "b": {}}})
    with emulated_network(plan_network(scenario), "test-live-new") as net:
        run_id = net.run.id
        between = {
            "up": lambda: probe(
                net.ns("a"), net.ns("b"), str(net.address("b")), 200, 0.005, 64, 0.5
            ),
            "down": lambda: probe(
                net.ns("b"), net.ns("a"), str(net.address("a")), 200, 0.005, 64, 0.5
            ),
        }
        before = {k: statistics.median(f().delays_ms()) for k, f in between.items()}
        assert helper_of(net, "a") is None
        took = set_link(net, "a", {"delay_ms": 30, "down": {"delay_ms": 12}})
        helper = helper_of(net, "a")
        assert helper is not None and process_alive(helper)
        state = json.loads((STATE_DIR / f"{run_id}.json").read_text())
        assert helper in state["pids"] and str(helper) in state["pid_starts"]
        delayed = {k: f() for k, f in between.items()}
        set_link(net, "a", None)
        passed = {k: f() for k, f in between.items()}
        report = (
            f"none: up {before['up']:.3f} down {before['down']:.3f} ms; "
            f"-> 30/12 ms (helper started, change took {took:.1f} ms): "
            + " ".join(f"{k} {statistics.median(p.delays_ms()):.3f}" for k, p in delayed.items())
            + " ms; -> none (pass-through): "
            + " ".join(f"{k} {statistics.median(p.delays_ms()):.3f}" for k, p in passed.items())
            + " ms"
        )
        print(report)
        for direction, want in (("up", 30), ("down", 12)):
            probes = delayed[direction]
            assert probes.lost == 0 and probes.reordered == 0, report
            assert abs(statistics.median(probes.delays_ms()) - want) <= 1.0, report
        for probes in passed.values():
            assert probes.lost == 0 and probes.reordered == 0, report
            assert statistics.median(probes.delays_ms()) <= 1.0, report
        assert process_alive(helper)  # kept, holding nothing
    assert not process_alive(helper)
    assert netns.list_names(f"{PREFIX}{run_id}-") == []


def test_a_direction_that_starts_to_delay_is_bound_in_the_running_helper(net: Network) -> None:
    helper = helper_of(net, "half")
    before = medians(net, "half")
    set_link(net, "half", {"up": {"delay_ms": 10}, "down": {"delay_ms": 40}})
    after = medians(net, "half")
    print(f"half: up/down {before} ms -> {after} ms (want 10/40)")
    assert abs(before[0] - 10) <= 1.0 and before[1] <= 1.0
    assert abs(after[0] - 10) <= 1.0 and abs(after[1] - 40) <= 1.0
    assert helper_of(net, "half") == helper  # the same process took the new direction


def test_a_lan_member_gets_a_delay_line_queued_by_mac_at_its_router(net: Network) -> None:
    """lan's up direction is queued at `home`, by lan's MAC among home's own rules (home's WAN
    link adds 5 ms up to the sink); its down direction at lan itself, measured from the
    gateway (the internet cannot reach a host behind a NAT unasked)."""
    lan, home = net.ns("lan"), net.ns("home")
    lan_addr = str(net.plan.nodes["lan"].addresses["eth0"][0].ip)
    gateway = str(net.plan.nodes["home"].addresses["lan"][0].ip)

    def paths() -> dict[str, float]:
        found = {
            "lan->sink": up(net, "lan"),
            "lan->gateway": probe(lan, home, gateway, 200, 0.005, 64, 0.5),
            "gateway->lan": probe(home, lan, lan_addr, 200, 0.005, 64, 0.5),
        }
        for path, probes in found.items():
            assert probes.lost == 0 and probes.reordered == 0, (path, probes.lost)
        return {path: statistics.median(p.delays_ms()) for path, p in found.items()}

    before = paths()
    set_link(net, "lan", {"delay_ms": 10, "down": {"delay_ms": 3}})
    after = paths()
    print(
        "lan: "
        + ", ".join(f"{k} {before[k]:.3f} -> {after[k]:.3f} ms" for k in before)
        + " (want 5 -> 15, 0 -> 10, 0 -> 3)"
    )
    for path, (was, now) in {
        "lan->sink": (5, 15),
        "lan->gateway": (0, 10),
        "gateway->lan": (0, 3),
    }.items():
        assert abs(before[path] - was) <= 1.0 and abs(after[path] - now) <= 1.0, path


# --- jitter and loss ----------------------------------------------------------------------


def test_jitter_and_reordering_change_with_the_link(net: Network) -> None:
    """A fixed delay becomes a jittered one (normal, then Pareto, with reordering: each packet's
    own sample), then a FIFO one (jittered but never reordered)."""
    n = 1500
    report = []
    for dist in ("normal", "pareto"):
        set_link(
            net,
            "jit",
            {"delay_ms": 50, "jitter_ms": 10, "jitter_distribution": dist, "reorder": True},
        )
        probes = up(net, "jit", n, 0.002)
        delays = probes.delays_ms()
        assert len(delays) == n
        for q in (0.1, 0.5, 0.9):
            want, got = 50 + 10 * quantile(dist, q), percentile(delays, q)
            report.append(f"jit {dist}: q{q:.0%} {got:.3f} ms (want {want:.3f})")
            assert abs(got - want) <= 1.0, "\n".join(report)
        assert probes.reordered > 0, f"{dist}: reorder allowed but none seen"
    set_link(net, "jit", {"delay_ms": 20, "jitter_ms": 10})
    fifo = up(net, "jit", 1000, 0.001)
    delays = fifo.delays_ms()
    report.append(
        f"jit 20±10 ms FIFO: {fifo.reordered} reordered, std {statistics.pstdev(delays):.2f} ms"
    )
    print("\n".join(report))
    assert fifo.received == 1000 and fifo.reordered == 0
    assert min(delays) >= 10 - EARLIEST_MS and statistics.pstdev(delays) > 1.0


def test_bursty_loss_comes_and_goes_with_the_link(net: Network) -> None:
    """Independent loss in nftables -> Gilbert-Elliott loss (a delay line starts) -> independent
    loss again (now the line's) -> no loss."""
    n = 4000
    set_link(net, "lossy", {"loss_burst": BURST})
    lost = up(net, "lossy", n, 0.0005).lost_sequence()
    share = BURST["p_pct"] / (BURST["p_pct"] + BURST["r_pct"])
    corr = 1 - (BURST["p_pct"] + BURST["r_pct"]) / 100
    sd = math.sqrt(n * share * (1 - share) * (1 + corr) / (1 - corr))
    runs = [len(r) for r in "".join("x" if x else "." for x in lost).split(".") if r]
    after_loss = [b for a, b in itertools.pairwise(lost) if a]
    again = sum(after_loss) / len(after_loss)
    report = [
        f"lossy -> burst: {sum(lost)}/{n} lost (want {n * share:.0f}), mean burst "
        f"{statistics.mean(runs):.2f}, P(loss | loss before) {again:.2f}"
    ]
    assert abs(sum(lost) - n * share) <= 3.29 * sd, report
    assert 1.6 <= statistics.mean(runs) <= 2.5, report
    assert again > 0.35, report

    set_link(net, "lossy", {"loss_pct": LOSS_PCT})
    independent = up(net, "lossy", 2000, 0.0005)
    ok, text = binomial_ok(independent.lost, 2000, LOSS_PCT)
    report.append(f"lossy -> {LOSS_PCT}% independent: lost {text}")
    assert ok, report

    set_link(net, "lossy", None)
    clean = up(net, "lossy", 2000, 0.0005)
    report.append(f"lossy -> none: {clean.lost} lost")
    print("\n".join(report))
    assert clean.lost == 0 and clean.reordered == 0


def test_the_helper_answers_each_change(net: Network) -> None:
    """The caller waits for the helper's answer, not a guessed time: a change is in force when
    `set_link` returns, so the very first probe after it has the new delay."""
    set_link(net, "d", {"delay_ms": 60})
    sender = StampedSocket(net.ns("d"), port=None)
    receiver = Receiver(net.ns("sink"))
    try:
        now = time.monotonic_ns()
        sender.send(HEADER.pack(0, now), (str(net.address("sink")), receiver.port), now)
        receiver.wait_quiet(1, 0.5, 5)
        [sent] = sender.sent_ns()
    finally:
        sender.close()
        receiver.close()
        set_link(net, "d", live.attachment(net.plan, "d").link)
    assert len(receiver.arrivals) == 1 and receiver.arrivals[0].kernel
    delay_ms = (receiver.arrivals[0].received_ns - sent) / 1e6
    assert abs(delay_ms - 60) <= 1.0, delay_ms
