"""Errors quote what the user gave briefly, harmlessly and under the names the file uses.

Why: a 1 MB name once gave a 1 MB error; a byte that is not UTF-8 in a `--set` gave an encoder's
message naming no field; a newline in a file name could print a line that looks like another
error; a host template's own NAT was named by an internal name (`alice-0-nat`) the file does
not hold; `count: true` quietly meant 1.
"""

from __future__ import annotations

import pytest

from simnet.errors import ScenarioError, cut, shown_field
from simnet.net.plan import plan_network
from simnet.peer.external import find_command
from simnet.scenario.load import load_scenario, scenario_from_dict, source_of
from simnet.show import error

HOME = {"nats": {"home": {"preset": "full-cone"}}, "hosts": {"alice": {"behind": "home"}}}


def _error(data: dict[str, object], overrides: list[str] | None = None) -> str:
    with pytest.raises(ScenarioError) as caught:
        plan_network(scenario_from_dict(data, overrides or [], source="s.yaml"))
    return str(caught.value)


def test_cut_and_shown_field() -> None:
    assert cut("x" * 10, 5) == "xxxx…" and cut("short") == "short"
    assert shown_field("a\nb\x1b[2J") == "a\\nb\\x1b[2J"
    assert len(shown_field("y" * 1_000_000)) == 80


def test_a_huge_value_gives_a_short_error() -> None:
    message = _error({**HOME, "name": "a" * 1_000_000})
    assert len(message) < 600
    assert "name: 'aaaa" in message and "…' is not a scenario name" in message


@pytest.mark.parametrize("value", ["\udcff", "ok\udce9"])
def test_a_set_value_that_is_not_utf8_names_the_field(value: str) -> None:
    message = _error(HOME, [f"nats.home.preset={value}"])
    assert "nats.home.preset: the value is not UTF-8 text" in message
    assert "\\xff" in message or "\\xe9" in message


def test_a_newline_in_a_file_name_cannot_start_a_line() -> None:
    assert "\n" not in source_of("new\nerror: fake.yaml", ["a=b"])
    shown = error("new\nerror: fake.yaml: no such file\n  fix: x").plain
    assert shown.splitlines() == ["error: new\\nerror: fake.yaml: no such file", "  fix: x"]


def test_a_template_s_own_nat_is_named_as_the_file_names_it() -> None:
    data = {
        "nats": {"home": {"preset": "full-cone", "lan": "10.0.0.0/29"}},
        "hosts": {"alice": {"behind": "home", "count": 3, "own_nat": True}},
    }
    message = _error(data)
    assert "hosts.alice" in message and "nats.home" in message
    assert "alice-0-nat" not in message


def test_own_nat_on_a_single_host_is_valid() -> None:
    data = {"nats": {"home": {"preset": "full-cone"}}, "hosts": {"alice": {"behind": "home"}}}
    data["hosts"] = {"alice": {"behind": "home", "own_nat": True}}
    plan = plan_network(scenario_from_dict(data))
    assert "alice-nat" in plan.nodes


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ({"hosts": {"alice": {"behind": "home", "count": True}}}, "count: true is not a number"),
        ({"seed": False}, "seed: false is not a number"),
        ({"call": {"offerer": "alice", "answerer": "alice", "timeouts": {"ice_s": True}}}, "ice_s"),
    ],
)
def test_a_boolean_is_not_a_number(where: dict[str, object], field: str) -> None:
    assert field in _error({**HOME, **where})


def test_a_program_name_too_long_for_the_file_system_is_just_missing() -> None:
    assert find_command("/nonexistent" + "a" * 100_000) is None
    assert find_command("a" * 100_000) is None


def test_a_scenario_file_name_is_escaped_in_its_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x\nerror: fake.yaml"
    path.write_text("nats: {home: {preset: bogus}}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert "\nerror:" not in str(caught.value) and "x\\nerror: fake.yaml" in str(caught.value)


MIXES = [
    ("sides:\n  offerer:\n    - {class: a, share: 2}\n", "sides.offerer[0].share: Input should be"),
    ("sides:\n  offerer:\n    - {class: a, share: 0.5}\n", "sides.offerer: the shares sum to 0.5"),
    ("sides: {offerer: same}\n", "sides.offerer: give the offerers' classes as a list"),
    (
        "sides:\n  offerer:\n    - {class: a, share: 1, nats: [{preset: bogus}]}\n",
        "sides.offerer, class a: invalid class\n  nats[0].preset: unknown NAT preset 'bogus'",
    ),
]


@pytest.mark.parametrize(("text", "named"), MIXES)
def test_mix_errors_use_the_mix_file_s_names(text: str, named: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from simnet.population.mix import load_mix

    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_mix(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and named in message
    for internal in (": : ", "Value error", "list[NetworkClass]", "literal[", "a0", "b0"):
        assert internal not in message, message
    assert len(message.splitlines()) <= 3  # each problem once (both sides are one class)


def test_sweep_errors_name_the_sweep_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from simnet.run.sweep_plan import load_sweep, plan_sweep

    path = tmp_path / "my-sweep.yaml"
    path.write_text("name: s\nscenario: x.yaml\npoints: [{seed: 1}, {seed: 1}]\n")
    with pytest.raises(ScenarioError) as caught:
        plan_sweep(load_sweep(path))
    assert str(caught.value).startswith(f"{path} (sweep s): point")
