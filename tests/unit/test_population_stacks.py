"""A fleet's stacks in a population mix: drawn with the networks, checked before any call, and
estimated per pair of stacks; a class that brings its office's HTTP proxy.

Why: a fleet runs browsers, apps and bots in proportions its team knows, and a network class can
fail one stack and not another (a proxy-only office: a browser relays through the proxy, a stack
without proxy support cannot). The draw must be reproducible from its seed, follow the shares,
and leave a mix's network draw as it was; a stack this machine cannot run must stop the run
before its first call, naming the file, the field and the fix.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
import pytest
from rich.console import Console
from scipy.stats import binom

import simnet.population.mix as mix_module
from simnet.cli import main
from simnet.errors import EnvironmentProblem, ScenarioError
from simnet.population.estimate import SampledCall, estimate
from simnet.population.mix import Mix, load_mix, missing_stacks, sample, scenario_for
from simnet.present.population import population_tables
from simnet.present.report.population import population
from simnet.present.report.rows import prepare
from simnet.results.schema import CallOutcome, ResultRow
from simnet.results.stats import wilson_interval

ROOT = Path(__file__).resolve().parents[2]
FIELD = ROOT / "scenarios" / "mixes" / "field.yaml"
TWO = [
    {"class": "cone", "share": 0.7, "nats": [{"preset": "full-cone"}]},
    {"class": "sym", "share": 0.3, "nats": [{"preset": "symmetric"}]},
]
CORP = {
    "class": "corp",
    "share": 0.5,
    "nats": [{"preset": "symmetric", "firewall": {"proxy_only": "proxy"}}],
    "servers": {"proxy": {"kind": "http-proxy", "connect_ports": [443]}},
}
OPEN = {"class": "public", "share": 0.5, "nats": []}


def mix(stacks: dict[str, Any] | None = None, **sides: Any) -> Mix:
    return Mix.model_validate({"name": "m", "sides": sides, "stacks": stacks})


def write(tmp_path: Path, **fields: Any) -> Path:
    path = tmp_path / "mix.yaml"
    path.write_text(json.dumps(fields))
    return path


# --- the draw ---------------------------------------------------------------------------------


def test_the_stacks_are_drawn_with_the_networks_from_the_seed() -> None:
    fleet = mix({"offerer": {"chromium": 0.7, "aiortc": 0.3}}, offerer=TWO)
    assert sample(fleet, 300, seed=5) == sample(fleet, 300, seed=5)
    assert sample(fleet, 300, seed=5) != sample(fleet, 300, seed=6)
    # stacks are drawn after the classes: the same seed draws the same networks as without them
    plain = mix(None, offerer=TWO)
    with_stacks = [(d.offerer_class, d.answerer_class) for d in sample(fleet, 300, seed=5)]
    assert with_stacks == [(d.offerer_class, d.answerer_class) for d in sample(plain, 300, 5)]
    assert {d.offerer_stack for d in sample(plain, 50, 5)} == {"aiortc"}  # no stacks: aiortc


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_drawn_stacks_follow_the_shares(seed: int) -> None:
    """Each side's stack share is binomial: the count lies inside the central 1 - 1e-9 of
    Binomial(n, share), a bound a correct draw misses once in a billion seeds (the seeds are
    fixed, so the test cannot flake)."""
    n = 4000
    stacks = {"offerer": {"chromium": 0.7, "firefox": 0.1, "aiortc": 0.2},
              "answerer": {"pion": 0.25, "aiortc": 0.75}}  # fmt: skip
    drawn = sample(mix(stacks, offerer=TWO), n, seed)
    for side, shares in stacks.items():
        for stack, share in shares.items():
            count = sum(getattr(d, f"{side}_stack") == stack for d in drawn)
            low, high = binom.interval(1 - 1e-9, n, share)
            assert low <= count <= high, (side, stack, count)


def test_answerer_same_takes_the_offerers_stacks_and_peers_replace_them() -> None:
    fleet = mix({"offerer": {"chromium": 0.5, "firefox": 0.5}}, offerer=TWO)
    assert fleet.stack_shares("answerer") == {"chromium": 0.5, "firefox": 0.5}
    assert {d.answerer_stack for d in sample(fleet, 200, 1)} == {"chromium", "firefox"}
    assert fleet.stacks_label() == "chromium 50 %, firefox 50 %"
    pinned = fleet.running(("aiortc", "chromium"))
    assert {(d.offerer_stack, d.answerer_stack) for d in sample(pinned, 200, 1)} == {
        ("aiortc", "chromium")
    }
    assert pinned.stacks_label() == "aiortc -> chromium"
    # --peers replaces the stacks, not the networks: the same seed, the same classes
    assert [d[::2] for d in sample(pinned, 200, 1)] == [d[::2] for d in sample(fleet, 200, 1)]


def test_load_mix_with_peers_replaces_the_files_stacks(tmp_path: Path) -> None:
    path = write(tmp_path, sides={"offerer": TWO}, stacks={"offerer": {"firefox": 1}})
    assert load_mix(path).stack_shares("offerer") == {"firefox": 1.0}
    assert load_mix(path, ("pion", "pion")).stack_shares("answerer") == {"pion": 1.0}


# --- checked before any call ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stacks", "named"),
    [
        ({"offerer": {"chromium": 0.5, "safari": 0.5}}, "stacks.offerer.safari: Input should be"),
        ({"offerer": {"chromium": 0.5, "aiortc": 0.4}}, "stacks.offerer: the shares sum to 0.9"),
        ({"offerer": {"chromium": 1}, "answerer": {"aiortc": 2}}, "stacks.answerer.aiortc"),
        ({"offerer": {}}, "stacks.offerer"),
        ({"answerer": {"aiortc": 1}}, "stacks.offerer"),
        ({"offerer": {"external": 1}}, "stacks.offerer.external"),
    ],
)
def test_a_stacks_section_that_is_no_split_is_refused(
    tmp_path: Path, stacks: dict[str, Any], named: str
) -> None:
    path = write(tmp_path, sides={"offerer": TWO}, stacks=stacks)
    with pytest.raises(ScenarioError) as info:
        load_mix(path)
    assert info.value.message.startswith(f"{path}: invalid mix"), info.value.message
    assert named in info.value.message and "[key]" not in info.value.message


def test_a_stack_that_cannot_make_the_mixs_call_names_the_stack(tmp_path: Path) -> None:
    stacks = {"offerer": {"aiortc": 0.5, "chromium": 0.5}}
    replay = {"media": {"coding": "replay", "audio": True}}
    path = write(tmp_path, sides={"offerer": TWO}, stacks=stacks, call=replay)
    with pytest.raises(ScenarioError) as info:
        load_mix(path)
    assert info.value.message.startswith(f"{path}: stacks.offerer.chromium: invalid call")
    assert "call.media.coding" in info.value.message


def test_a_stack_whose_program_is_missing_is_one_error_naming_file_field_and_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The doctor's check for the stack (its browser) fails: `simnet population` stops before
    building anything (exit 2), naming the mix's field, or `--peers` when that chose it."""
    path = write(tmp_path, sides={"offerer": TWO}, stacks={"offerer": {"aiortc": 0.6,
                 "firefox": 0.4}})  # fmt: skip
    fleet = load_mix(path)
    missing_stacks(fleet, path)  # this machine has Firefox (setup.sh)
    monkeypatch.setattr(mix_module, "find_program", lambda binaries: None)
    with pytest.raises(EnvironmentProblem) as info:
        missing_stacks(fleet, path)
    assert info.value.exit_code == 2
    assert info.value.message == (
        f"{path}: stacks.offerer.firefox: firefox peers need a Firefox browser, and this "
        "machine has none"
    )
    assert info.value.fix is not None and "setup.sh" in info.value.fix
    assert "stacks.offerer" in info.value.fix and "--peers aiortc" in info.value.fix
    with pytest.raises(EnvironmentProblem) as info:
        missing_stacks(fleet.running(("chromium", "aiortc")), path, "--peers")
    assert info.value.message.startswith("--peers: chromium peers need a Chromium browser")
    missing_stacks(fleet.running(("aiortc", "aiortc")), path, "--peers")  # needs no program


# --- the corporate proxy class ----------------------------------------------------------------


def test_a_class_brings_its_offices_proxy_into_each_side_of_the_call() -> None:
    offices = mix(offerer=[CORP, OPEN])
    corp, public = offices.by_name("offerer", "corp"), offices.by_name("offerer", "public")
    both = scenario_for(offices, corp, corp, ("chromium", "aiortc"))
    assert {n: s.kind for n, s in both.servers.items()} == {
        "a-proxy": "http-proxy", "b-proxy": "http-proxy", "turn": "turn",
        "signaling": "signaling",
    }  # fmt: skip
    assert both.servers["a-proxy"].proxy_ports == [443]
    firewalls = {n: nat.firewall for n, nat in both.nats.items()}
    assert {n: f.proxy_only for n, f in firewalls.items() if f} == {"a0": "a-proxy",
                                                                     "b0": "b-proxy"}  # fmt: skip
    one = scenario_for(offices, public, corp)
    assert set(one.servers) == {"b-proxy", "turn", "signaling"}


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"servers": {"proxy": {"kind": "turn"}}}, "servers.proxy: a class brings only"),
        ({"nats": [{"preset": "symmetric", "firewall": {"proxy_only": "prxy"}}]},
         "nats[0].firewall.proxy_only: 'prxy' is not an http-proxy server; http-proxy "
         "servers: proxy ("),
        ({"servers": {"proxy": {"kind": "http-proxy", "connect_ports": [0]}}},
         "servers.proxy.connect_ports"),
    ],
)  # fmt: skip
def test_a_proxy_class_mistake_reads_in_the_classs_own_names(
    tmp_path: Path, change: dict[str, Any], said: str
) -> None:
    path = write(tmp_path, sides={"offerer": [CORP | change, OPEN]})
    with pytest.raises(ScenarioError) as info:
        load_mix(path)
    assert said in info.value.message, info.value.message
    assert "a-proxy" not in info.value.message and "b-proxy" not in info.value.message


def test_the_field_mix_has_a_proxy_class_and_a_stack_split_this_machine_runs() -> None:
    field = load_mix(FIELD)
    proxy = field.by_name("offerer", "corporate-proxy")
    assert "assumption" in proxy.why and field.by_name("offerer", "corporate-udp-blocked")
    scenario = scenario_for(field, proxy, field.by_name("answerer", "home-cone"))
    assert scenario.servers["a-proxy"].kind == "http-proxy"
    assert scenario.nats["a0"].firewall is not None
    assert scenario.nats["a0"].firewall.proxy_only == "a-proxy"
    shares = field.stack_shares("offerer")
    assert field.stack_shares("answerer") == shares and abs(sum(shares.values()) - 1) < 1e-9
    missing_stacks(field, FIELD)  # every stack it names runs here (setup.sh installs them)
    said = FIELD.read_text().split("\nstacks:")[0].rsplit("answerer: same", 1)[1]
    assert "StatCounter" in said and "assumption" in said  # where the split comes from


# --- the estimate per pair of stacks ----------------------------------------------------------


def call(stacks: tuple[str, str], ok: bool, path: str | None = None) -> SampledCall:
    return SampledCall("cone", "cone", ok, path, "udp" if path == "relay" else None,
                       100.0 if ok else None, 1000.0, (), None if ok else "proxy-unsupported",
                       *stacks)  # fmt: skip


def test_the_estimate_gives_each_pair_of_stacks_its_shares_and_intervals() -> None:
    fleet = mix({"offerer": {"chromium": 0.5, "aiortc": 0.5}}, offerer=TWO)
    calls = (
        [call(("chromium", "chromium"), True, "relay")] * 6
        + [call(("chromium", "chromium"), True, "direct")] * 2
        + [call(("aiortc", "chromium"), False)] * 3
        + [call(("aiortc", "chromium"), True, "direct")]
    )
    result = estimate(calls, fleet)
    assert result.failed_share == 0.25 and result.calls == 12
    pairs = {(p.offerer_stack, p.answerer_stack): p for p in result.stack_pairs}
    assert list(pairs) == [("aiortc", "chromium"), ("chromium", "chromium")]
    bot, browser = pairs["aiortc", "chromium"], pairs["chromium", "chromium"]
    assert (bot.calls, bot.failed_share, bot.direct_share) == (4, 0.75, 0.25)
    assert (browser.calls, browser.relay_share, browser.failed_share) == (8, 0.75, 0.0)
    expected = wilson_interval(3, 4)
    assert bot.share_of("failed") == (0.75, round(expected.low, 4), round(expected.high, 4))
    assert result.stacks == ["aiortc -> chromium", "chromium"]
    # the presenter prints them as a table of their own
    console = Console(width=160, record=True)
    for part in population_tables("m", result, 1, Path("r")):
        console.print(part)
    text = console.export_text()
    assert "by pair of stacks" in text and "75.0 % (30.1 % - 95.4 %)" in text


def test_one_pair_of_stacks_prints_no_table_of_pairs() -> None:
    result = estimate([call(("chromium", "chromium"), True, "direct")] * 3, mix(offerer=TWO))
    assert len(result.stack_pairs) == 1 and result.stack_pairs[0].calls == 3
    console = Console(width=160, record=True)
    for part in population_tables("m", result, 1, Path("r")):
        console.print(part)
    assert "by pair of stacks" not in console.export_text()


def test_a_report_keeps_a_fleet_of_stacks_as_one_population() -> None:
    """Rows of a run that drew its stacks from the mix are one fleet in `simnet report` (one
    section, its pairs of stacks in a table), while runs of one stack each stay apart."""
    rows = []
    for k, (stacks, label, path) in enumerate(
        [(("chromium", "chromium"), "fleet", "direct")] * 3
        + [(("aiortc", "chromium"), "fleet", "relay")] * 2
        + [(("aiortc", "aiortc"), "aiortc", "relay")] * 2
    ):
        outcome = CallOutcome(connected=True, path=path, setup_ms=100.0, offerer_peer=stacks[0],
                              answerer_peer=stacks[1])  # fmt: skip
        row = ResultRow(call=outcome, scenario="m", scenario_hash="h", seed=0, run=k,
                        run_id=label, wall_ms=0.0)  # fmt: skip
        placed = row.placed(population="m", offerer_class="home", answerer_class="home",
                            population_stacks=label)  # fmt: skip
        rows.append(placed.columns())
    sections = population(prepare(pd.DataFrame(rows)))
    assert len(sections) == 2
    fleet = next(s for s in sections if "fleet" in s.title)
    assert "5 calls" in fleet.body and '<table class="population-stacks">' in fleet.body
    assert "<td>aiortc</td><td>chromium</td><td>2</td>" in fleet.body
    single = next(s for s in sections if "fleet" not in s.title)
    assert "2 calls" in single.body and "population-stacks" not in single.body


def test_simnet_population_stops_before_building_for_a_missing_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command's own path: exit 2, the error and its fix, no results folder, no call."""
    path = write(tmp_path, sides={"offerer": TWO}, stacks={"offerer": {"firefox": 1}})
    out = tmp_path / "results"
    monkeypatch.setattr(mix_module, "find_program", lambda binaries: None)
    monkeypatch.setattr(sys, "argv", ["simnet", "population", str(path), "--out", str(out)])
    with mock.patch("simnet.population.run.run_population") as run, pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2 and not run.called and not out.exists()
    said = " ".join(capsys.readouterr().err.split())
    assert f"{path}: stacks.offerer.firefox: firefox peers need a Firefox browser" in said
    assert "setup.sh" in said and "Traceback" not in said
