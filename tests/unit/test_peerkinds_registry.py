"""The registry of peer kinds (`simnet.peerkinds`) is the one place that names a kind and says
what it can do: every caller asks it.

Why: a kind named in an `if` somewhere else is a place a new kind (Firefox, pion) would have to
find and edit, and a capability written twice is one that drifts. Each test below changes the
registry and watches the caller follow, so a caller that stops asking fails here.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import sys
from ipaddress import IPv4Address
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args

import pytest

from simnet import peerkinds
from simnet.callspec import MediaSpec
from simnet.doctor import _peer_kind_checks
from simnet.peerkinds import (
    DEFAULT_KIND,
    EXTERNAL_KIND,
    KINDS,
    NAMED_KINDS,
    Launch,
    PeerKind,
    PeerKindSpec,
)
from simnet.results.store import environment
from simnet.run.one_call import _commands, _hosted_groups
from simnet.run.peers import hosted_argv, peer_argv, peer_pair
from simnet.scenario.load import scenario_from_dict
from simnet.scenario.model import CallSpec

ROOT = Path(__file__).resolve().parents[2]
SIMNET = ROOT / "simnet"


def _with(monkeypatch: pytest.MonkeyPatch, name: str, **capabilities: bool) -> None:
    """Let kind `name` do (or not do) `capabilities`, for one test."""
    spec = KINDS[name]
    changed = dataclasses.replace(spec.capabilities, **capabilities)
    monkeypatch.setitem(KINDS, name, dataclasses.replace(spec, capabilities=changed))


def test_the_registry_lists_the_kinds() -> None:
    assert list(KINDS)[:3] == ["aiortc", "chromium", "external"]  # a new kind comes after
    assert all(name == spec.name for name, spec in KINDS.items())
    # the names a scenario gives as a string are the registry's kinds given by name
    assert get_args(PeerKind) == NAMED_KINDS
    assert list(NAMED_KINDS) == [s.name for s in KINDS.values() if not s.by_command]
    assert EXTERNAL_KIND == "external" and KINDS[EXTERNAL_KIND].by_command
    assert DEFAULT_KIND in NAMED_KINDS


@pytest.mark.parametrize("name", list(KINDS))
def test_each_kind_is_a_folder_of_simnet_peer_with_its_hooks(name: str) -> None:
    """One folder per kind, holding the hooks the registry names."""
    spec = KINDS[name]
    assert (SIMNET / "peer" / name / "__init__.py").is_file()
    module, _, function = spec.argv.partition(":")
    assert module == f"simnet.peer.{name}" and callable(peerkinds.hook(spec.argv))
    assert function
    assert (spec.hosted_module is not None) == spec.capabilities.shared_process
    if spec.hosted_module is not None:
        assert spec.hosted_module.startswith(f"simnet.peer.{name}.")
        assert importlib.util.find_spec(spec.hosted_module) is not None


def test_argv_of_each_kind(tmp_path: Path) -> None:
    scenario = scenario_from_dict(
        {
            "hosts": {
                "a": {"peer": "aiortc"},
                "c": {"peer": "chromium"},
                "f": {"peer": "firefox"},
                "x": {"peer": {"command": "no-such-client --flag 'a b'"}},
            }
        }
    )
    trust = [tmp_path / "coturn.pem"]
    aiortc = peer_argv(scenario.hosts["a"], "sn-a", tmp_path, "a", trust)
    assert aiortc == [sys.executable, "-m", "simnet.peer.aiortc", "--netns", "sn-a"]
    chromium = peer_argv(scenario.hosts["c"], "sn-c", tmp_path, "c", trust)
    assert chromium[:3] == [sys.executable, "-m", "simnet.peer.chromium"]
    assert chromium[chromium.index("--netns") + 1] == "sn-c"
    assert chromium[chromium.index("--profile") + 1] == str(tmp_path / "chromium-c")
    assert chromium[chromium.index("--trust") + 1] == str(tmp_path / "coturn.pem")
    firefox = peer_argv(scenario.hosts["f"], "sn-f", tmp_path, "f", trust)
    assert firefox == [
        sys.executable,
        *("-m", "simnet.peer.firefox", "--netns", "sn-f"),
        *("--profile", str(tmp_path / "firefox-f")),
        *("--trust", str(tmp_path / "coturn.pem")),
    ]
    external = peer_argv(scenario.hosts["x"], "sn-x", tmp_path, "x", trust)
    assert external == ["no-such-client", "--flag", "a b"]  # not on PATH: run as named
    assert hosted_argv(KINDS["aiortc"]) == [sys.executable, "-m", "simnet.peer.aiortc.host"]
    with pytest.raises(ValueError, match="cannot share a process"):
        hosted_argv(KINDS["chromium"])
    # the hook itself, as a new kind's would be called
    launch = Launch(ns="sn-y", scratch=tmp_path / "y", command=["./client"])
    assert peerkinds.agent_argv(KINDS[EXTERNAL_KIND], launch)[0] == "./client"


def test_the_names_a_scenario_and_the_cli_accept_are_the_registrys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert peer_pair("chromium,aiortc") == ("chromium", "aiortc")
    with pytest.raises(ValueError, match="each one of aiortc, chromium"):
        peer_pair("safari")
    monkeypatch.setattr(peerkinds, "NAMED_KINDS", ("aiortc",))
    monkeypatch.setattr("simnet.run.peers.NAMED_KINDS", ("aiortc",))
    with pytest.raises(ValueError, match=r"each one of aiortc$"):
        peer_pair("chromium")


def test_replayed_media_comes_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    def problems() -> list[str]:
        scenario = scenario_from_dict({"hosts": {"a": {}, "b": {"peer": "chromium"}}})
        media = MediaSpec(audio=True, coding="replay")
        call = CallSpec(offerer="a", answerer="b", media=media)
        return [p for p in scenario.call_problems(call) if "replay" in p]

    assert problems() and "answerer's peer" in problems()[0]
    _with(monkeypatch, "chromium", replayed_media=True)
    assert problems() == []


def test_sharing_a_process_comes_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = scenario_from_dict(
        {"hosts": {"a": {}, "b": {"peer": "chromium"}, "c": {}, "d": {"peer": "chromium"}}}
    )
    shared = [["a", "b"], ["c", "d"]]
    assert _hosted_groups(scenario, shared, set()) == [["a"], ["c"]]
    # a peer behind a proxy gets an agent of its own: its proxy is that agent's --proxy
    assert _hosted_groups(scenario, shared, {"c"}) == [["a"]]
    _with(monkeypatch, "chromium", shared_process=True)
    assert _hosted_groups(scenario, shared, set()) == [["a"], ["b"], ["c"], ["d"]]
    _with(monkeypatch, "aiortc", shared_process=False)
    _with(monkeypatch, "chromium", shared_process=False)
    assert _hosted_groups(scenario, shared, set()) == []


def _services() -> Any:
    turn = SimpleNamespace(
        config=SimpleNamespace(listening_ips=[IPv4Address("203.0.113.5")]),
        cert_path=None,
        credentials=lambda: ("user", "secret"),
    )
    return SimpleNamespace(
        signaling=SimpleNamespace(base_url_for=lambda families: "https://198.51.100.1:443"),
        turn={"turn-a": turn, "turn-b": turn},
        families={},
    )


def test_several_turn_urls_comes_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that uses only one TURN URL is given one, so the row names the one it used."""
    scenario = scenario_from_dict(
        {
            "hosts": {"a": {}, "b": {"peer": "chromium"}},
            "servers": {
                "turn-a": {"kind": "turn"},
                "turn-b": {"kind": "turn"},
                "sig": {"kind": "signaling"},
            },
            "call": {"offerer": "a", "answerer": "b", "turn_transports": ["udp", "tcp"]},
        }
    )
    assert scenario.call is not None

    def urls() -> tuple[int, int]:
        offer, answer = _commands(scenario, scenario.call, _services(), "room")  # type: ignore[arg-type]
        return tuple(sum(len(s.urls) for s in c.ice_servers) for c in (offer, answer))  # type: ignore[return-value]

    one, every = urls()
    assert one < every
    _with(monkeypatch, "aiortc", several_turn_urls=True)
    assert urls() == (every, every)


def test_what_the_doctor_and_a_run_look_for_comes_from_the_registry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    browser = tmp_path / "browser"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    spec = KINDS["chromium"]
    assert spec.requirement is not None
    for binaries, ok in (((str(browser),), True), ((str(tmp_path / "none"),), False)):
        needed = dataclasses.replace(spec.requirement, binaries=binaries, fix="get one")
        monkeypatch.setitem(KINDS, "chromium", dataclasses.replace(spec, requirement=needed))
        check = next(c for c in _peer_kind_checks() if c.name == "browser chromium")
        assert check.name == "browser chromium" and check.ok is ok and check.fix == "get one"
        assert check.detail == (str(browser) if ok else "missing (Chromium peers: peer: chromium)")


def test_the_doctor_shows_the_version_a_kind_says_how_to_ask_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Firefox's check names the executable and its version (`firefox-esr --version`)."""
    browser = tmp_path / "firefox-esr"
    browser.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Mozilla Firefox 153.8.0esr"\n')
    browser.chmod(0o755)
    spec = KINDS["firefox"]
    assert spec.requirement is not None and spec.requirement.version_flag == "--version"
    needed = dataclasses.replace(spec.requirement, binaries=(str(browser),))
    monkeypatch.setitem(KINDS, "firefox", dataclasses.replace(spec, requirement=needed))
    (check,) = [c for c in _peer_kind_checks() if c.name == "browser firefox"]
    assert check.ok and check.detail == f"{browser} (Mozilla Firefox 153.8.0esr)"
    assert "apt-get install firefox-esr" in check.fix


def test_package_versions_a_row_records_come_from_the_registry() -> None:
    recorded = environment()
    for spec in KINDS.values():
        assert (f"{spec.name}_version" in recorded) == (spec.package is not None)
    assert recorded["aiortc_version"][0].isdigit()


def test_the_registry_is_plain_data_the_scenario_layer_can_import() -> None:
    """It imports the standard library only: the scenario model validates `peer:` with it."""
    tree = ast.parse((SIMNET / "peerkinds.py").read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert all(m.split(".")[0] in sys.stdlib_module_names or m == "__future__" for m in imported)


def _kind_literals() -> list[str]:
    """Every string constant naming a kind in simnet/, outside the registry and the kinds'
    own folders, as `path:line 'name'`."""
    names = set(KINDS)
    allowed = [SIMNET / "peerkinds.py", *(SIMNET / "peer" / name for name in KINDS)]
    found = []
    for path in sorted(SIMNET.rglob("*.py")):
        if any(path == a or a in path.parents for a in allowed):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    return found


def test_no_kind_is_named_outside_the_registry_and_its_folder() -> None:
    assert _kind_literals() == [], "ask simnet.peerkinds instead of naming a kind"


def test_a_kind_spec_says_everything_a_caller_asks() -> None:
    """The fields the callers read, present for every kind (a new kind's entry is complete)."""
    for spec in KINDS.values():
        assert isinstance(spec, PeerKindSpec) and spec.title and spec.version
        assert {f.name for f in dataclasses.fields(spec.capabilities)} >= {
            "trickle",
            "ice_restart",
            "several_turn_urls",
            "turn_tcp",
            "turn_tls",
            "ipv6",
            "http_proxy",
            "shared_process",
            "replayed_media",
        }
