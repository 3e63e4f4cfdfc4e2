"""The seed of a run (`simnet run --seed N|random`).

Why: a fixed seed replays one draw of the links' randomness; rates need many. `random` must
give fresh, independent seeds that a user can type back; a bad value must be one clear error
(exit 2) naming `--seed`, before anything is built; and the seed is the draw, not the scenario:
rows of one scenario under different seeds are one variant (one `scenario_hash`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import pytest

from simnet.cli import main
from simnet.run.one_call import scenario_digest
from simnet.scenario import load_scenario
from simnet.scenario.model import SEED_MAX
from simnet.scenario.seed import FRESH_SEED_BITS, parse_seed

LOSSY = Path(__file__).resolve().parents[2] / "scenarios" / "lossy-wifi.yaml"


def test_a_number_is_its_own_seed() -> None:
    assert parse_seed("0") == 0
    assert parse_seed("42") == 42
    assert parse_seed(str(SEED_MAX)) == SEED_MAX


def test_random_gives_fresh_seeds_that_can_be_typed_back() -> None:
    drawn = {parse_seed("random") for _ in range(20)}
    assert len(drawn) > 1  # 20 draws of 32 bits: a repeat of all of them is impossible
    for seed in drawn:
        assert 0 <= seed < 2**FRESH_SEED_BITS
        assert parse_seed(str(seed)) == seed


@pytest.mark.parametrize("text", ["", "abc", "-3", "1.5", "٣", str(SEED_MAX + 1), "x" * 10_000])
def test_anything_else_is_refused_with_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="is not a seed: give a whole number") as refused:
        parse_seed(text)
    assert len(str(refused.value)) < 200  # a long value is not echoed whole


def simnet(*args: str) -> int:
    with mock.patch.object(sys, "argv", ["simnet", *args]), pytest.raises(SystemExit) as exited:
        main()
    assert isinstance(exited.value.code, int)
    return exited.value.code


@pytest.mark.parametrize(
    "args", [("--seed", "abc"), ("--seed", "3", "--set", "seed=4")], ids=["bad", "twice"]
)
def test_a_bad_seed_is_a_usage_error_before_anything_is_built(
    args: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert simnet("run", str(LOSSY), "--out", str(tmp_path / "out"), *args) == 2
    said = capsys.readouterr().err
    assert "--seed" in said and "Traceback" not in said
    assert not (tmp_path / "out").exists()


def test_the_seed_is_the_draw_not_the_scenario() -> None:
    scenario = load_scenario(LOSSY)
    digests = {scenario_digest(scenario.model_copy(update={"seed": s})) for s in (0, 1, 2**40)}
    assert len(digests) == 1
    changed = load_scenario(LOSSY, ["call.data_bytes=0"])
    assert scenario_digest(changed) not in digests
