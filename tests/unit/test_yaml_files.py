"""Every YAML file simnet reads (scenario, population mix, sweep) goes through one reader with
the same protections; each is tried here on each kind of file.

Why: a file is input a user (or a script) hands over, and every way it can be wrong must end in
one `ScenarioError` naming the file: a FIFO must not block, /dev/zero must not fill memory, a
deep or alias-multiplied document must be refused before anything reads it whole (the billion
laughs cost 42 s of CPU before, and one level more ten times that), and a key written twice must
not quietly lose one of its values. YAML merge keys, a common way to share settings, must work.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simnet.errors import ScenarioError
from simnet.population.mix import load_mix
from simnet.run.sweep_plan import load_sweep
from simnet.scenario.load import load_scenario
from simnet.scenario.yaml_file import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES, parse_yaml
from tests.unit.alarm import no_hang

ROOT = Path(__file__).resolve().parents[2]
BASE_SCENARIO = ROOT / "scenarios" / "home-vs-carrier.yaml"

# A valid file of each kind, and where a value can be put in it (`{value}`).
VALID = {
    "scenario": "nats: {home: {preset: full-cone}}\nhosts: {alice: {behind: home}}\n",
    "mix": "sides:\n  offerer:\n    - {class: a, share: 1.0, nats: [{preset: full-cone}]}\n",
    "sweep": f"scenario: {BASE_SCENARIO}\naxes: {{call.ice_policy: [all, relay]}}\n",
}
WITH_VALUE = {
    "scenario": "description: {value}\nnats: {{home: {{}}}}\n",
    "mix": "description: {value}\nsides: {{offerer: [{{class: a, share: 1.0}}]}}\n",
    "sweep": f"scenario: {BASE_SCENARIO}\n" + "axes: {{call.ice_policy: [{value}]}}\n",
}
LOADERS: dict[str, Callable[[Path], Any]] = {
    "scenario": load_scenario,
    "mix": load_mix,
    "sweep": load_sweep,
}
KINDS = sorted(LOADERS)


def refused(kind: str, path: Path) -> str:
    """The one error loading `path` as a `kind` file gives; it must name the file."""
    with no_hang(20), pytest.raises(ScenarioError) as info:
        LOADERS[kind](path)
    message = info.value.message
    assert message.startswith(f"{path}:"), message
    return message


def write(tmp_path: Path, text: str, name: str = "file.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_the_valid_file_of_each_kind_loads(kind: str, tmp_path: Path) -> None:
    """Control: the files the other tests spoil are valid as they stand."""
    LOADERS[kind](write(tmp_path, VALID[kind]))
    LOADERS[kind](write(tmp_path, WITH_VALUE[kind].format(value="all")))


@pytest.mark.parametrize("kind", KINDS)
def test_a_fifo_is_refused_without_blocking(kind: str, tmp_path: Path) -> None:
    fifo = tmp_path / "file.yaml"
    os.mkfifo(fifo)
    assert "FIFO" in refused(kind, fifo)


@pytest.mark.parametrize("kind", KINDS)
def test_a_symlink_to_dev_zero_is_refused_without_reading(kind: str, tmp_path: Path) -> None:
    link = tmp_path / "file.yaml"
    link.symlink_to("/dev/zero")
    assert "character device" in refused(kind, link)


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_over_a_mebibyte_is_refused(kind: str, tmp_path: Path) -> None:
    padding = "# padding\n" * (3 * MAX_FILE_BYTES // 10)  # 3 MiB
    assert "larger than 1 MiB" in refused(kind, write(tmp_path, VALID[kind] + padding))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000])
def test_deep_nesting_is_refused(kind: str, depth: int, tmp_path: Path) -> None:
    value = "[" * depth + "]" * depth
    message = refused(kind, write(tmp_path, WITH_VALUE[kind].format(value=value)))
    assert "nest" in message


def test_mix_sides_nested_5000_deep_is_one_error(tmp_path: Path) -> None:
    text = "sides: " + "{offerer: " * 5000 + "x" + "}" * 5000 + "\n"
    assert "nest" in refused("mix", write(tmp_path, text))


@pytest.mark.parametrize("kind", KINDS)
def test_a_key_given_twice_is_refused(kind: str, tmp_path: Path) -> None:
    text = "name: one\n" + VALID[kind] + "name: two\n"
    assert "duplicate key 'name' (first at line 1)" in refused(kind, write(tmp_path, text))


def billion_laughs(levels: int) -> str:
    """A chain of `levels` aliases, each a list of ten of the one before: 10**levels values."""
    lines = ["&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "[" + ", ".join(lines) + "]"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("levels", [9, 30])
def test_an_alias_bomb_is_refused_before_it_is_expanded(
    kind: str, levels: int, tmp_path: Path
) -> None:
    """30 levels is 10**30 values: only a check made before expanding can answer at all."""
    text = WITH_VALUE[kind].format(value=billion_laughs(levels))
    assert f"more than {MAX_VALUES:,} values" in refused(kind, write(tmp_path, text))


def test_aliases_below_the_bound_still_work() -> None:
    data = parse_yaml("base: &b [1, 2]\nuses: [*b, *b]\n", "f.yaml")
    assert data == {"base": [1, 2], "uses": [[1, 2], [1, 2]]}


@pytest.mark.parametrize("kind", KINDS)
def test_an_alias_inside_its_own_value_is_refused(kind: str, tmp_path: Path) -> None:
    text = WITH_VALUE[kind].format(value="&a [1, *a]")
    assert "contains it" in refused(kind, write(tmp_path, text))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tag", ["!!binary aGVsbG8=", "!!set {a, b}", "!!timestamp 2024-01-01",
                                 "!fancy x", "!!python/name:os.system"])  # fmt: skip
def test_values_that_are_not_plain_data_are_refused(kind: str, tag: str, tmp_path: Path) -> None:
    message = refused(kind, write(tmp_path, WITH_VALUE[kind].format(value=tag)))
    assert "not allowed" in message or "not valid YAML" in message


def test_an_unquoted_date_is_a_string() -> None:
    assert parse_yaml("when: 2024-01-01\n", "f.yaml") == {"when": "2024-01-01"}


# --- merge keys -------------------------------------------------------------------------------


def test_merge_keys_work_in_a_scenario(tmp_path: Path) -> None:
    text = (
        "nats:\n  home: &h {preset: port-restricted-cone, udp_timeout_s: 30}\n"
        "  office: {<<: *h, hairpin: true}\n"
        "  cafe: {<<: *h, udp_timeout_s: 60}\n"
    )
    scenario = load_scenario(write(tmp_path, text))
    office, cafe = scenario.nats["office"], scenario.nats["cafe"]
    assert office.preset == "port-restricted-cone" and office.hairpin is True
    assert cafe.udp_timeout_s == 60  # what the mapping writes overrides what it merges


def test_merge_keys_do_not_excuse_a_key_written_twice(tmp_path: Path) -> None:
    text = (
        "nats:\n  home: &h {preset: full-cone}\n  office: {<<: *h, hairpin: true, hairpin: false}\n"
    )
    assert "duplicate key 'hairpin'" in refused("scenario", write(tmp_path, text))


def test_merge_keys_work_in_a_mix(tmp_path: Path) -> None:
    text = (
        "sides:\n  offerer:\n"
        "    - {class: a, share: 0.5, nats: [&h {preset: port-restricted-cone}]}\n"
        "    - {class: b, share: 0.5, nats: [{<<: *h, hairpin: true}]}\n"
    )
    mix = load_mix(write(tmp_path, text))
    assert mix.by_name("offerer", "b").nats == [{"preset": "port-restricted-cone", "hairpin": True}]


def test_merge_keys_work_in_a_sweep(tmp_path: Path) -> None:
    text = (
        f"scenario: {BASE_SCENARIO}\n"
        "points:\n"
        "  - &relayed {call.ice_policy: relay, nats.carrier.preset: full-cone}\n"
        "  - {<<: *relayed, nats.carrier.preset: symmetric}\n"
    )
    sweep = load_sweep(write(tmp_path, text))
    assert sweep.points is not None
    assert sweep.points[1] == {"call.ice_policy": "relay", "nats.carrier.preset": "symmetric"}


def test_a_merged_mapping_that_is_not_a_mapping_is_one_error(tmp_path: Path) -> None:
    text = "nats:\n  home: &h full-cone\n  office: {<<: *h}\n"
    assert "not valid YAML" in refused("scenario", write(tmp_path, text))


# --- a file's contents as JSON: what the bounds leave is plain data ----------------------------


def test_what_the_reader_returns_is_json(tmp_path: Path) -> None:
    text = "a: &x {b: [1, 2.5, true, null, '2024-01-01', 2024-01-01]}\nc: {<<: *x, d: e}\n"
    json.dumps(parse_yaml(text, "f.yaml"))  # no bytes, dates or sets in it
