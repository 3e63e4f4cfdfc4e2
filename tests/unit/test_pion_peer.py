"""The pion peer's Python side: its build stamp (an unchanged agent is never rebuilt, a changed
one always is), its argv hook, and the agent's start-up and command answers when it is built."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import simnet.peer.pion as pion
from simnet.errors import EnvironmentProblem
from simnet.peer.pion import build, stamp
from simnet.peerkinds import KINDS, Launch, agent_argv


def _sources(root: Path) -> tuple[Path, Path, Path]:
    source = root / "agent"
    source.mkdir()
    (source / "main.go").write_text("package main\n")
    recipe = root / "build.py"
    recipe.write_text("# recipe\n")
    pion_dir = root / "webrtc"
    pion_dir.mkdir()
    return source, recipe, pion_dir


def test_the_digest_changes_with_a_go_file_the_recipe_or_pion_and_nothing_else(
    tmp_path: Path,
) -> None:
    source, recipe, pion_dir = _sources(tmp_path)
    first = stamp.source_digest(source, recipe, pion_dir)
    assert stamp.source_digest(source, recipe, pion_dir) == first
    (source / "notes.txt").write_text("not Go")
    assert stamp.source_digest(source, recipe, pion_dir) == first
    (source / "main.go").write_text("package main // changed\n")
    second = stamp.source_digest(source, recipe, pion_dir)
    assert second != first
    (source / "extra.go").write_text("package main\n")
    third = stamp.source_digest(source, recipe, pion_dir)
    assert third != second
    recipe.write_text("# another recipe\n")
    fourth = stamp.source_digest(source, recipe, pion_dir)
    assert fourth != third
    os.utime(pion_dir, ns=(1, 1))  # Debian's pion upgraded: the folder changed
    assert stamp.source_digest(source, recipe, pion_dir) != fourth


def test_a_build_is_current_only_with_its_binary_tone_and_matching_stamp(tmp_path: Path) -> None:
    binary, seal, tone = tmp_path / "simnet-pion", tmp_path / "stamp", tmp_path / "tone.opus"
    assert not stamp.is_current(binary, seal, tone, digest="abc")
    binary.write_text("#!/bin/sh\n")
    tone.write_bytes(b"\x00\x01\xf8")
    seal.write_text("abc\n")
    assert not stamp.is_current(binary, seal, tone, digest="abc")  # not executable
    binary.chmod(0o755)
    assert stamp.is_current(binary, seal, tone, digest="abc")
    assert not stamp.is_current(binary, seal, tone, digest="abd")  # the source changed
    tone.unlink()
    assert not stamp.is_current(binary, seal, tone, digest="abc")


def test_the_hook_builds_nothing_when_current_and_passes_scratch_tone_and_trust(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pion, "is_current", lambda: True)
    launch = Launch(ns="sn-x-alice", scratch=tmp_path / "pion-alice", trust=(tmp_path / "ca.pem",))
    argv = agent_argv(KINDS["pion"], launch)
    assert argv == [
        str(stamp.BINARY),
        "--scratch",
        str(tmp_path / "pion-alice"),
        "--tone",
        str(stamp.TONE),
        "--trust",
        str(tmp_path / "ca.pem"),
    ]
    proxied = Launch(ns="sn-x-alice", scratch=tmp_path, proxy="http://192.0.2.10:3128")
    assert agent_argv(KINDS["pion"], proxied)[-2:] == ["--proxy", "http://192.0.2.10:3128"]


def test_a_stale_agent_without_go_is_one_clear_error_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pion, "is_current", lambda: False)
    monkeypatch.setattr(pion, "find_go", lambda: None)
    with pytest.raises(EnvironmentProblem) as caught:
        pion.launch_argv(Launch(ns="sn-x-bob", scratch=tmp_path))
    assert "no Go toolchain" in str(caught.value) and "setup.sh" in str(caught.value)


def test_a_stale_agent_is_built_by_the_hook(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    built: list[bool] = []
    monkeypatch.setattr(pion, "is_current", lambda: False)
    monkeypatch.setattr(pion, "find_go", lambda: Path("/usr/bin/go"))
    monkeypatch.setattr(build, "build", lambda force=False: built.append(force) or 1.0)
    assert pion.ensure_built() == stamp.BINARY and built == [False]


def test_the_gopath_links_pions_versioned_import_paths_and_the_agent(tmp_path: Path) -> None:
    gocode = tmp_path / "gocode"
    for folder in build.VERSIONED.values():
        (gocode / folder).mkdir(parents=True)
    root = build.gopath(tmp_path / "build", gocode)
    assert build.gopath(tmp_path / "build", gocode) == root  # again: nothing to repair
    for versioned, folder in build.VERSIONED.items():
        assert (root / "src" / versioned).resolve() == (gocode / folder).resolve()
    assert (root / "src" / build.AGENT_IMPORT).resolve() == stamp.SOURCE_DIR


def test_the_doctor_finds_the_agent_or_the_go_toolchain() -> None:
    needed = KINDS["pion"].requirement
    assert needed is not None and needed.binaries[0] == str(stamp.BINARY)
    assert needed.binaries[1:] == ("go",) and "setup.sh" in needed.fix


def test_the_built_agent_says_ready_and_answers_every_command(tmp_path: Path) -> None:
    # setup.sh builds the agent; a checkout without it builds it here (Go from setup.sh too)
    pion.ensure_built()
    video = {"audio": True, "video": {"width": 320, "height": 240, "fps": 15}}
    call = {"cmd": "call", "role": "offer", "signaling_url_base": "http://192.0.2.1:1"}
    commands = [
        {"cmd": "ice-restart"},
        {"cmd": "no-such"},
        {**call, "room": "r", "peer": "a", "remote_peer": "b", "media": video},
        {"cmd": "exit"},
    ]
    done = subprocess.run(
        pion.agent_argv(tmp_path),
        input="not json\n" + "".join(json.dumps(c) + "\n" for c in commands),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    ready, refused, restart, unknown, no_video = events
    assert ready["event"] == "ready" and ready["protocol"] == 1 and ready["peer_kind"] == "pion"
    assert ready["peer_version"].startswith("pion/webrtc 3.")
    assert refused["event"] == "error"
    assert restart == {**restart, "event": "ice_restart", "supported": False}
    assert unknown["event"] == "error" and "no-such" in unknown["error"]
    assert no_video["event"] == "error" and "audio only" in no_video["error"]
    assert all(isinstance(e["t"], float) for e in events)


def test_a_failed_build_is_one_line_naming_go_and_the_fix_and_keeps_the_old_stamp(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    go.write_text(
        "#!/bin/sh\necho '# simnet-pion' >&2\necho 'main.go:1:1: syntax error' >&2\nexit 2\n"
    )
    go.chmod(0o755)
    seal = tmp_path / "build" / "stamp"
    monkeypatch.setattr(build, "BUILD_DIR", tmp_path / "build")
    monkeypatch.setattr(build, "BINARY", tmp_path / "build" / "simnet-pion")
    monkeypatch.setattr(build, "STAMP", seal)
    monkeypatch.setattr(build, "find_go", lambda: go)
    monkeypatch.setattr(build, "is_current", lambda digest=None: False)
    original = build.gopath
    monkeypatch.setattr(build, "gopath", lambda: original(tmp_path / "build"))
    with pytest.raises(EnvironmentProblem) as caught:
        build.build()
    problem = caught.value
    assert "\n" not in problem.message, problem.message
    assert "exit 2" in problem.message and "syntax error" in problem.message
    assert problem.fix is not None and "setup.sh" in problem.fix
    assert not seal.exists() and not (tmp_path / "build" / "simnet-pion").exists()
