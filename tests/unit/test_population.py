"""Population mixes and their estimate: sampling, intervals, contributions, sensitivity.

Why: the number a team takes from a population run ("19 % of our calls need TURN, 15-23 %")
is computed here; each step is checked where the answer is known: a seeded draw repeats, the
Wilson interval matches its textbook values, a class that always relays raises the TURN share
when it becomes more common, and a mix that cannot be a population is refused with its field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from scipy.stats import binomtest

from simnet.errors import ScenarioError
from simnet.population.estimate import SampledCall, _share, estimate, weighted_relay_share
from simnet.population.mix import Mix, load_mix, sample, scenario_for
from simnet.results.schema import CallOutcome, ResultRow
from simnet.results.stats import wilson_interval

ROOT = Path(__file__).resolve().parents[2]
FIELD = ROOT / "scenarios" / "mixes" / "field.yaml"


def mix(**sides: Any) -> Mix:
    return Mix.model_validate({"name": "m", "sides": sides})


TWO = [
    {"class": "cone", "share": 0.7, "nats": [{"preset": "full-cone"}]},
    {"class": "sym", "share": 0.3, "nats": [{"preset": "symmetric"}]},
]


def test_the_shipped_field_mix_loads_and_every_class_is_a_network() -> None:
    field = load_mix(FIELD)
    for side in ("offerer", "answerer"):
        assert abs(sum(c.share for c in field.classes(side)) - 1) < 1e-9
        assert all(c.why for c in field.classes(side))  # every share says where it comes from
    cgn = field.by_name("offerer", "mobile-cgn")
    scenario = scenario_for(field, cgn, field.by_name("answerer", "public"))
    assert scenario.hosts["bob"].behind == "internet"  # a public class has no NAT
    assert scenario.hosts["alice"].behind == "a0"
    assert scenario.hosts["alice"].peer == scenario.hosts["bob"].peer == "aiortc"  # the default
    mixed = scenario_for(field, cgn, cgn, ("chromium", "aiortc"))
    assert (mixed.hosts["alice"].peer, mixed.hosts["bob"].peer) == ("chromium", "aiortc")


def test_a_nat_chain_is_built_from_the_users_router_outwards() -> None:
    chain = mix(offerer=[{"class": "double", "share": 1.0,
                          "nats": [{"preset": "full-cone"}, {"preset": "symmetric"}]}])  # fmt: skip
    network = chain.by_name("offerer", "double")
    scenario = scenario_for(chain, network, network)
    assert scenario.hosts["alice"].behind == "a0"
    assert scenario.nats["a0"].behind == "a1" and scenario.nats["a1"].behind == "internet"
    assert scenario.nats["a1"].preset == "symmetric"


def test_a_seeded_draw_repeats_and_follows_the_shares() -> None:
    two = mix(offerer=TWO, answerer="same")
    assert sample(two, 200, seed=5) == sample(two, 200, seed=5)
    assert sample(two, 200, seed=5) != sample(two, 200, seed=6)
    draw = sample(two, 4000, seed=1)
    share = sum(call.offerer_class == "cone" for call in draw) / len(draw)
    assert 0.67 < share < 0.73  # 0.7 +- 4.6 standard errors


@pytest.mark.parametrize(
    ("sides", "named"),
    [
        ({"offerer": [{"class": "a", "share": 0.5}]}, "sum to 0.5, not 1"),
        ({"offerer": TWO, "answerer": [{"class": "a", "share": 0.9}]}, "sides.answerer"),
        ({"offerer": [{"class": "a", "share": 0.5}, {"class": "a", "share": 0.5}]}, "twice"),
        ({"offerer": "same"}, "sides.offerer"),
        ({"offerer": [{"class": "Bad Name", "share": 1.0}]}, "class"),
    ],
)
def test_a_mix_that_is_not_a_population_is_refused(
    tmp_path: Path, sides: dict[str, Any], named: str
) -> None:
    path = tmp_path / "mix.yaml"
    path.write_text(__import__("json").dumps({"sides": sides}))
    with pytest.raises(ScenarioError) as info:
        load_mix(path)
    assert str(info.value).startswith(str(path)) and named in str(info.value)


def test_a_class_that_is_no_network_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "mix.yaml"
    path.write_text('{"sides": {"offerer": [{"class": "odd", "share": 1.0, '
                    '"nats": [{"preset": "bogus-cone"}]}]}}')  # fmt: skip
    with pytest.raises(ScenarioError) as info:
        load_mix(path)
    assert "class odd" in str(info.value) and "bogus-cone" in str(info.value)


@pytest.mark.parametrize(("k", "n"), [(22, 100), (0, 10), (10, 10), (3, 500), (499, 500)])
def test_wilson_agrees_with_scipy(k: int, n: int) -> None:
    reference = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    interval = wilson_interval(k, n)
    low, high = interval.low, interval.high
    assert low == pytest.approx(reference.low, abs=1e-9)
    assert high == pytest.approx(reference.high, abs=1e-9)


def test_a_share_of_nothing_drawn_is_unknown() -> None:
    assert _share(0, 0) == (0.0, 0.0, 1.0)


def rows_for(pairs: dict[tuple[str, str], tuple[int, int]]) -> list[dict[str, Any]]:
    """(offerer class, answerer class) -> (direct calls, relayed calls)."""
    rows = []
    for (a, b), (direct, relayed) in pairs.items():
        for path, n in (("direct", direct), ("relay", relayed)):
            rows += [
                {
                    "offerer_class": a,
                    "answerer_class": b,
                    "connected": True,
                    "path": path,
                    "relay_protocol": "udp" if path == "relay" else None,
                    "setup_ms": 100.0,
                    "dc_bytes": 1000,
                }
                for _ in range(n)
            ]
    return rows


def test_the_estimate_its_contributions_and_sensitivity() -> None:
    two = mix(offerer=TWO, answerer="same")
    rows = rows_for({("cone", "cone"): (10, 0), ("cone", "sym"): (10, 0),
                     ("sym", "cone"): (10, 0), ("sym", "sym"): (0, 10)})  # fmt: skip
    result = estimate(rows, two)
    assert result.calls == 40 and result.relay_share == 0.25 and result.failed_share == 0
    assert result.relay_share_ci_low < 0.25 < result.relay_share_ci_high
    assert result.relay_protocol_shares == {"udp": 1.0}
    assert result.relayed_bytes_share == 0.25
    # only sym -> sym relays: 0.3 x 0.3 of the fleet
    assert result.model_relay_share == pytest.approx(0.09, abs=1e-4)
    assert result.contributions["offerer"]["sym"] == pytest.approx(0.09, abs=1e-4)
    assert result.contributions["offerer"]["cone"] == 0
    sym = next(s for s in result.sensitivity if (s.side, s.network_class) == ("offerer", "sym"))
    assert sym.relay_share_minus == pytest.approx(0.2 * 0.3, abs=1e-4)
    assert sym.relay_share_plus == pytest.approx(0.4 * 0.3, abs=1e-4)


def test_a_pair_never_drawn_takes_its_offerer_classes_rate() -> None:
    rates = {("cone", "cone"): 0.0, ("sym", "cone"): 1.0}
    share = weighted_relay_share(rates, {"cone": 0.5, "sym": 0.5}, {"cone": 0.5, "sym": 0.5})
    assert share == pytest.approx(0.5)


def test_a_live_row_and_its_stored_columns_give_the_same_estimate() -> None:
    """`simnet population` estimates from its rows as they end; a report estimates from the
    stored rows: the two must agree to the last digit."""
    two = mix(offerer=TWO, answerer="same")
    rows = []
    for k, (a, b, path) in enumerate(
        [("cone", "cone", "direct"), ("cone", "sym", "direct"), ("sym", "sym", "relay"),
         ("sym", "cone", None), ("sym", "sym", "relay")]
    ):  # fmt: skip
        call = CallOutcome(
            connected=path is not None,
            error=None if path else "ice-failed",
            path=path,
            relay_protocol="udp" if path == "relay" else None,
            setup_ms=120.0 + 10 * k if path else None,
            dc_bytes=1000 if path else None,
            media={"offerer_audio_sent_kbps": 32.0, "answerer_video_sent_kbps": 500.0 + k},
        )
        row = ResultRow(call=call, scenario="m", scenario_hash="", seed=0, run=k, run_id="r",
                        wall_ms=0.0)  # fmt: skip
        rows.append(row.placed(population="m", offerer_class=a, answerer_class=b))
    live = estimate([SampledCall.of_row(r) for r in rows], two)
    stored = pd.DataFrame([r.columns() for r in rows]).to_dict("records")
    assert estimate(stored, two) == live
    assert live.calls == 5 and live.failed_share == 0.2 and live.setup_ms_p50 == 135.0


def test_the_field_mix_phone_sits_directly_behind_an_endpoint_independent_cgn() -> None:
    """What field.yaml's header and its `why:` both say of the mobile class is what it builds:
    one carrier-grade NAT (no home router), endpoint-independent mapping, its LAN shared space."""
    field = load_mix(FIELD)
    cgn = field.by_name("offerer", "mobile-cgn")
    scenario = scenario_for(field, cgn, field.by_name("answerer", "public"))
    (router,) = scenario.routers()
    assert router.carrier and router.behind == "internet"
    assert router.behavior.mapping.value == "endpoint-independent"
    assert router.behavior.filtering.value == "address-and-port-dependent"
    header = FIELD.read_text().split("\nname:")[0]
    assert "endpoint-independent" in header and "symmetric-mapping" not in header
    assert "maps endpoint-independently" in cgn.why
