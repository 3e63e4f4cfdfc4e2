"""A mix is checked whole before its first call, and its estimate costs linear work.

Why: `simnet population` makes calls for minutes; a class whose network cannot be built (a LAN
too small for its host) failed only when its pair was drawn, after other calls, with no file
named and no estimate printed. And the estimate, which moves every class's share, did work that
grew with the cube of the class count (102 s at 500 classes), silently, after the calls: the
work is counted here (lines executed in the estimate's module), not timed.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import simnet.population.estimate as estimate_module
from simnet.errors import ScenarioError
from simnet.population.estimate import SampledCall, estimate, weighted_relay_share
from simnet.population.mix import MAX_CLASSES, Mix, load_mix, sample

PRESETS = ["full-cone", "restricted-cone", "port-restricted-cone", "symmetric"]


def write_mix(tmp_path: Path, sides: dict[str, Any], **fields: Any) -> Path:
    path = tmp_path / "mix.yaml"
    path.write_text(json.dumps({"sides": sides, **fields}))
    return path


def classes(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"class": f"c{i}", "share": 1 / n, "nats": [{"preset": PRESETS[i % 4]}], **extra}
        for i in range(n)
    ]


def refused(path: Path) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_mix(path)
    assert info.value.message.startswith(f"{path}: "), info.value.message
    return info.value


# --- every class is planned before anything runs ----------------------------------------------


@pytest.mark.parametrize("side", ["offerer", "answerer"])
def test_a_class_whose_lan_cannot_hold_its_host_is_refused_on_load(
    side: str, tmp_path: Path
) -> None:
    tiny = {"class": "tiny", "share": 0.5, "nats": [{"preset": "full-cone", "lan": "10.0.0.0/29"}]}
    fine = {"class": "fine", "share": 0.5, "nats": [{"preset": "full-cone"}]}
    sides = {"offerer": [fine, fine | {"class": "other"}], "answerer": "same"}
    sides[side] = [fine, tiny]
    error = refused(write_mix(tmp_path, sides))
    assert error.message.startswith(f"{tmp_path / 'mix.yaml'}: sides.{side}, class tiny: ")
    assert "nats[0]" in error.message and "10.0.0.0/29" in error.message
    assert "a0" not in error.message and "b0" not in error.message  # the scenario's own names
    assert error.fix is not None and "lan" in error.fix


def test_a_chain_whose_lans_overlap_names_the_nats_as_the_mix_writes_them(tmp_path: Path) -> None:
    chain = [
        {"preset": "full-cone", "lan": "10.0.1.0/24"},
        {"preset": "symmetric", "lan": "10.0.0.0/16"},
    ]
    error = refused(write_mix(tmp_path, {"offerer": [{"class": "x", "share": 1, "nats": chain}]}))
    assert "class x: nats[0].lan: 10.0.1.0/24 overlaps" in error.message
    assert "of nats[1]" in error.message


def test_a_class_field_error_names_the_class_and_the_field_once(tmp_path: Path) -> None:
    bad = {"class": "odd", "share": 1, "nats": [{"preset": "bogus"}], "link": {"delay_ms": -1}}
    error = refused(write_mix(tmp_path, {"offerer": [bad]}))
    lines = error.message.splitlines()
    assert lines[0] == f"{tmp_path / 'mix.yaml'}: sides.offerer, class odd: invalid class"
    assert sum("nats[0].preset" in line for line in lines) == 1  # not once per side
    assert sum(line.strip().startswith("link.delay_ms") for line in lines) == 1


def test_a_mix_field_error_is_at_the_field_the_file_writes(tmp_path: Path) -> None:
    sides = {"offerer": [{"class": "a", "share": 0.5}, {"class": "b", "share": -1}]}
    error = refused(write_mix(tmp_path, sides))
    assert "sides.offerer[1].share: Input should be greater than 0" in error.message
    assert "list[" not in error.message and "literal[" not in error.message


def test_the_classes_are_checked_with_the_runs_peers(tmp_path: Path) -> None:
    """A replayed-media call is one only some stacks make: the check uses the run's stacks."""
    path = write_mix(
        tmp_path, {"offerer": classes(2)}, call={"media": {"coding": "replay", "audio": True}}
    )
    replaying = load_mix(path)  # the default stack replays
    assert replaying.call["media"] == {"coding": "replay", "audio": True}
    with pytest.raises(ScenarioError, match=r"call\.media\.coding"):
        load_mix(path, ("chromium", "chromium"))


def test_a_side_has_at_most_max_classes(tmp_path: Path) -> None:
    error = refused(write_mix(tmp_path, {"offerer": classes(MAX_CLASSES + 1)}))
    assert f"sides.offerer: {MAX_CLASSES + 1:,} classes" in error.message


# --- the estimate ---------------------------------------------------------------------------


def reference_share(
    rates: Mapping[tuple[str, str], float],
    offerers: Mapping[str, float],
    answerers: Mapping[str, float],
) -> float:
    """The TURN share pair by pair, as the model defines it (quadratic, for checking)."""
    overall = sum(rates.values()) / len(rates) if rates else 0.0
    total = 0.0
    for a, wa in offerers.items():
        known = [r for (x, _), r in rates.items() if x == a]
        fallback = sum(known) / len(known) if known else overall
        for b, wb in answerers.items():
            total += wa * wb * rates.get((a, b), fallback)
    return total


def fleet(n_classes: int, calls: int, seed: int = 1) -> tuple[Mix, list[SampledCall]]:
    rng = random.Random(seed)
    weights = [rng.random() + 0.1 for _ in range(n_classes)]
    offerers = [{"class": f"c{i}", "share": w / sum(weights)} for i, w in enumerate(weights)]
    answerers = [{"class": f"d{i}", "share": 1 / n_classes} for i in range(n_classes)]
    mix = Mix.model_validate({"sides": {"offerer": offerers, "answerer": answerers}})
    drawn = sample(mix, calls, seed)
    outcomes = [
        SampledCall(a, b, rng.random() < 0.9, "relay" if rng.random() < 0.3 else "direct",
                    "udp", 100.0, 1e6, (100.0,))
        for a, _, b, _ in drawn
    ]  # fmt: skip
    return mix, outcomes


def test_the_linear_estimate_agrees_with_the_pair_by_pair_definition() -> None:
    mix, calls = fleet(12, 60)  # some pairs drawn, many not, one class maybe never
    result = estimate(calls, mix)
    shares = {
        side: {c.name: c.share for c in mix.classes(side)} for side in ("offerer", "answerer")
    }
    rates = estimate_module.pair_rates(calls)
    assert weighted_relay_share(rates, shares["offerer"], shares["answerer"]) == pytest.approx(
        reference_share(rates, shares["offerer"], shares["answerer"]), abs=1e-12
    )
    total = reference_share(rates, shares["offerer"], shares["answerer"])
    assert result.model_relay_share == round(total, 4)
    for row in result.sensitivity:
        side = shares[row.side]
        for delta, got in ((-0.1, row.relay_share_minus), (0.1, row.relay_share_plus)):
            target = min(1.0, max(0.0, side[row.network_class] + delta))
            scale = (1 - target) / (1 - side[row.network_class])
            moved = {k: target if k == row.network_class else v * scale for k, v in side.items()}
            both = {**shares, row.side: moved}
            assert got == pytest.approx(
                reference_share(rates, both["offerer"], both["answerer"]), abs=1e-4
            )
    for side, parts in result.contributions.items():
        for name, part in parts.items():
            only = {k: (v if k == name else 0.0) for k, v in shares[side].items()}
            both = {**shares, side: only}
            expected = reference_share(rates, both["offerer"], both["answerer"])
            assert part == pytest.approx(expected, abs=1e-4)


def lines_run(n_classes: int) -> int:
    """Lines of the estimate's module executed for a fleet of `n_classes` a side, 4 calls a
    class: a count of work that does not depend on the machine's speed."""
    mix, calls = fleet(n_classes, 4 * n_classes)
    count = 0
    module_file = estimate_module.__file__

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if frame.f_code.co_filename != module_file:
            return None
        if event == "line":
            count += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        estimate(calls, mix)
    finally:
        sys.settrace(previous)
    return count


def test_a_500_class_estimate_does_work_linear_in_its_classes_and_calls() -> None:
    """Four times the classes and calls: about four times the work (it was 64 times)."""
    small, large = lines_run(125), lines_run(500)
    assert large < 6 * small, (small, large)
    assert large < 200 * (2 * 500 + 4 * 500), large  # a few hundred lines a class or call
