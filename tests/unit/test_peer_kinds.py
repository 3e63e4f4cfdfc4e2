"""A host's `peer:`: the scenario field, the program each kind runs, and a missing program.

Why: a user picks the WebRTC stack per host; a typo or a machine without that stack must end in
one clear error before anything is built, and results of two stacks must never be pooled.
"""

from __future__ import annotations

import dataclasses
import stat
import sys
from pathlib import Path

import pandas as pd
import pytest

from simnet import peerkinds
from simnet.errors import EnvironmentProblem, ScenarioError
from simnet.results.stats import cell_columns
from simnet.run.peers import missing_programs, peer_argv
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import ExternalPeer


def _hosts(peer: object) -> dict[str, object]:
    return {"hosts": {"alice": {"peer": peer}, "bob": {}}}


def test_the_default_peer_is_aiortc_and_kinds_are_named() -> None:
    scenario = scenario_from_dict(_hosts("chromium"))
    assert scenario.hosts["bob"].peer == "aiortc"
    assert scenario.hosts["alice"].peer_kind == "chromium"
    external = scenario_from_dict(_hosts({"command": "./my-client --mode 'a b'"}))
    peer = external.hosts["alice"].peer
    assert isinstance(peer, ExternalPeer) and peer.argv == ["./my-client", "--mode", "a b"]
    assert external.hosts["alice"].peer_kind == "external"


@pytest.mark.parametrize(
    ("peer", "message"),
    [
        (
            "safari",
            "hosts.alice.peer: 'safari' is not a peer kind; "
            "use one of aiortc, chromium, pion, firefox",
        ),
        ({"cmd": "x"}, "hosts.alice.peer: unknown field 'cmd' (did you mean 'command'?)"),
        ({"command": "  "}, "hosts.alice.peer.command: empty; give the program to run"),
        ({"command": "a 'b"}, "hosts.alice.peer.command: cannot be split like a shell line"),
        (3, "hosts.alice.peer: Input should be a valid dictionary"),
    ],
)
def test_a_bad_peer_is_one_error_naming_the_field(peer: object, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(_hosts(peer), source="s.yaml")
    assert message in str(caught.value)


def test_each_kind_runs_its_program(tmp_path: Path) -> None:
    client = tmp_path / "client"
    client.write_text("#!/bin/sh\n")
    client.chmod(client.stat().st_mode | stat.S_IXUSR)
    scenario = scenario_from_dict(
        {"hosts": {"a": {}, "b": {"peer": {"command": f"{client} --x 1"}}}}
    )
    aiortc = peer_argv(scenario.hosts["a"], "ns", tmp_path, "a")
    assert aiortc == [sys.executable, "-m", "simnet.peer.aiortc", "--netns", "ns"]
    assert peer_argv(scenario.hosts["b"], "ns", tmp_path, "b") == [str(client), "--x", "1"]
    missing_programs(scenario.hosts, ["a", "b"], "s.yaml")  # nothing missing: no error
    # a symlink is run as named: a venv's bin/python resolved to the base interpreter would
    # lose the venv's packages
    link = tmp_path / "python-link"
    link.symlink_to(client)
    linked = scenario_from_dict({"hosts": {"a": {"peer": {"command": str(link)}}}})
    assert peer_argv(linked.hosts["a"], "ns", tmp_path, "a") == [str(link)]


def test_a_missing_program_is_an_exit_2_error_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "not-executable"
    plain.write_text("")
    scenario = scenario_from_dict(
        {
            "hosts": {
                "a": {"peer": {"command": f"{plain}"}},
                "b": {"peer": {"command": "no-such-client-anywhere"}},
                "c": {"peer": "chromium"},
            }
        }
    )
    for host, words in (
        ("a", "is not an executable file"),
        ("b", "is not an executable file on PATH"),
    ):
        with pytest.raises(EnvironmentProblem) as caught:
            missing_programs(scenario.hosts, [host], "s.yaml")
        assert f"s.yaml: hosts.{host}.peer.command" in caught.value.message
        assert words in caught.value.message and caught.value.exit_code == 2
    # a machine without Chromium: neither Debian's binary nor a launcher on PATH
    spec = peerkinds.KINDS["chromium"]
    assert spec.requirement is not None
    gone = dataclasses.replace(
        spec.requirement, binaries=(str(tmp_path / "no-chromium"), "chromium")
    )
    monkeypatch.setitem(peerkinds.KINDS, "chromium", dataclasses.replace(spec, requirement=gone))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvironmentProblem) as caught:
        missing_programs(scenario.hosts, ["c"], "s.yaml")
    assert "hosts.c.peer is chromium" in str(caught.value) and "apt-get install" in str(
        caught.value
    )


def test_peer_kinds_split_cells_only_where_a_call_was_not_aiortc() -> None:
    aiortc = pd.DataFrame(
        {"scenario": ["s"], "offerer_peer": ["aiortc"], "answerer_peer": ["aiortc"]}
    )
    mixed = aiortc.assign(offerer_peer=["chromium"])
    assert cell_columns(aiortc, aiortc) == ["scenario"]
    assert cell_columns(aiortc, mixed) == ["scenario", "offerer_peer", "answerer_peer"]
