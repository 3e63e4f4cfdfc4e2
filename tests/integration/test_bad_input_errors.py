"""More bad input through the real CLI: one clear error naming the option or field, exit 2.

Why: each case here once ended in a hang, a crash (exit 70), a message that named the wrong thing
or a long dump. Users meet these through the CLI, so the CLI is what is run.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import run_cli
from tests.integration.guarded_cli import assert_one_clear_error, run_guarded
from tests.unit.not_schedulers import flood, http, listener, silent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]


def _sweep(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        f"name: s\nscenario: {ROOT / 'scenarios' / 'direct-lan.yaml'}\n"
        "axes: {call.data_bytes: [10000]}\n"
    )
    return path


@pytest.mark.parametrize("serve", [silent, http, flood], ids=["silent", "http", "flood"])
@pytest.mark.parametrize("command", ["sweep", "population"])
def test_cluster_at_something_else_is_one_clear_error(
    command: str, serve: Any, tmp_path: Path, tools: Any
) -> None:
    target = _sweep(tmp_path) if command == "sweep" else ROOT / "scenarios/mixes/field.yaml"
    with listener(serve) as address:
        done, started = run_guarded(
            tools, command, str(target), "--cluster", address, "--out", str(tmp_path / "r")
        )
    assert not started
    line = assert_one_clear_error(done, [f"--cluster {address}: not a Dask scheduler"])
    assert len(line) < 300


@pytest.mark.parametrize("scheme", ["ucx", "tls", "ws"])
def test_cluster_schemes_simnet_cannot_use_are_one_clear_error(
    scheme: str, tmp_path: Path, tools: Any
) -> None:
    done, _ = run_guarded(
        tools, "sweep", str(_sweep(tmp_path)), "--cluster", f"{scheme}://127.0.0.1:1"
    )
    assert_one_clear_error(done, [f"{scheme}://", "is not supported", "tcp://HOST:PORT"])


def test_cluster_with_nothing_listening_says_so(tmp_path: Path, tools: Any) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    done, _ = run_guarded(tools, "sweep", str(_sweep(tmp_path)), "--cluster", f"127.0.0.1:{port}")
    assert_one_clear_error(done, ["no Dask scheduler answers there"])


NO_SUCH_PEER = """\
hosts:
  alice: {behind: internet}
  bob: {behind: internet, peer: {command: /nonexistent/peer}}
servers:
  sig: {kind: signaling}
"""


def test_validate_and_run_agree_on_a_missing_peer_program(tmp_path: Path, tools: Any) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(NO_SUCH_PEER)
    lines = []
    for command in ("validate", "run"):
        done, started = run_guarded(tools, command, str(path))
        assert not started
        lines.append(assert_one_clear_error(done, [str(path), "hosts.bob.peer.command"]))
    assert lines[0] == lines[1]


def test_exec_and_down_input_errors_exit_2(
    tmp_path: Path, scenario_file: Any, simnet_up: Any
) -> None:
    held = simnet_up(scenario_file("hosts:\n  alice: {behind: internet}\n")).wait_ready()
    run = ["--run", held.run_id]
    cases = [
        (["exec", "alice", *run, "--", "/tmp"], ["cannot run /tmp"]),  # a directory
        (["exec", "alice", *run, "--", str(tmp_path / "nope")], ["command not found"]),
        (["exec", "nobody", *run, "--", "true"], ["no host 'nobody'", "alice"]),
        (["exec", "alice", *run], ["no command given"]),
        (["exec", "alice", "--run", "x" * 10_000, "--", "true"], ["no network is being held"]),
        (["down", "nosuchrun"], ["no network is being held with run id nosuchrun"]),
    ]
    for args, names in cases:
        done = run_cli(*args)
        assert done.returncode == 2, (args, done.output)
        assert "Traceback" not in done.output and "internal error" not in done.output
        assert all(name in done.stderr for name in names), (args, done.stderr)
        assert len(done.stderr) < 500
    done = run_cli("exec", "alice", *run, "--", "true")  # and a good one still works
    assert done.returncode == 0, done.output


def test_a_peer_that_fails_to_start_is_quoted_not_cited(tmp_path: Path) -> None:
    """Its log is removed with the run before the error is shown: the message quotes it."""
    peer = tmp_path / "peer.sh"
    peer.write_text("#!/bin/sh\necho 'boom: cannot open the device' >&2\nexit 3\n")
    peer.chmod(0o755)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(NO_SUCH_PEER.replace("/nonexistent/peer", str(peer)))
    done = run_cli("run", str(scenario), timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.output
    assert "exited (code 3)" in done.stderr and "boom: cannot open the device" in done.stderr
    assert "/run/simnet" not in done.stderr  # no path to a log that no longer exists


@pytest.mark.parametrize("value", ["", "٣", "3x", "x"])
def test_a_count_option_takes_ascii_digits_only(value: str, tmp_path: Path) -> None:
    done = run_cli("population", str(ROOT / "scenarios/mixes/field.yaml"), "--calls", value)
    assert done.returncode == 2, done.output
    assert "--calls" in done.stderr and "Traceback" not in done.output


OK_SCENARIO = "nats:\n  home: {preset: full-cone}\nhosts:\n  alice: {behind: home}\n"


@pytest.mark.parametrize(
    ("name", "text", "args", "names"),
    [
        ("not-utf8-set", OK_SCENARIO, ["--set", "nats.home.preset=\udcff"],
         ["nats.home.preset", "not UTF-8", "\\xff"]),
        ("count-true", OK_SCENARIO.replace("home}", "home, count: true}"), [],
         ["hosts.alice", "count: true is not a number"]),
        ("huge-name", "name: " + "a" * 500_000 + "\n" + OK_SCENARIO, [], ["name: 'aaa", "…'"]),
        ("own-nat-29", "nats:\n  home: {preset: full-cone, lan: 10.0.0.0/29}\n"
         "hosts:\n  alice: {behind: home, count: 3, own_nat: true}\n", [],
         ["hosts.alice", "nats.home"]),
    ],
)  # fmt: skip
def test_error_quality_through_the_cli(
    name: str, text: str, args: list[str], names: list[str], tmp_path: Path, tools: Any
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    for command in ("validate", "up"):
        done, started = run_guarded(tools, command, str(path), *args)
        assert not started
        assert_one_clear_error(done, [str(path), *names])
        assert len(done.stderr) < 1000 and "alice-0-nat" not in done.stderr


def test_a_newline_in_a_file_name_cannot_fake_an_error_line(tmp_path: Path, tools: Any) -> None:
    path = tmp_path / "x\nerror: all is well.yaml"
    path.write_text(OK_SCENARIO.replace("full-cone", "bogus"))
    done, _ = run_guarded(tools, "validate", str(path))
    assert_one_clear_error(done, ["x\\nerror: all is well.yaml", "nats.home.preset"])


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("sides:\n  offerer:\n    - {class: a, share: 0.5}\n", "sides.offerer: the shares sum"),
        ("sides:\n  offerer:\n    - {class: a, share: 1, nats: [{preset: bogus}]}\n",
         "sides.offerer, class a: invalid class\n  nats[0].preset"),
    ],
)  # fmt: skip
def test_mix_errors_through_the_cli(text: str, named: str, tmp_path: Path, tools: Any) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    done, started = run_guarded(tools, "population", str(path), "--calls", "1")
    assert not started
    assert_one_clear_error(done, [str(path), named])
    assert ": : " not in done.stderr and "list[NetworkClass]" not in done.stderr
    assert " a0" not in done.stderr and " b0" not in done.stderr
