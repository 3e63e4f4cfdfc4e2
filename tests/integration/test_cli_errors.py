"""Bad input to the CLI gives one clear error, exit code 2, no traceback, and builds nothing.

Why: users write scenarios by hand. A typo must be reported with the file and the field it is in
(not as a Python traceback, and not as a half-built network), and scripts must be able to tell a
bad scenario (2) from a failed run. `up` is run as well as `validate` because `up` is the command
that would create namespaces if validation let something through.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.guarded_cli import assert_one_clear_error, new_namespaces, run_guarded

GOOD = """\
nats:
  home: {preset: port-restricted-cone}
  corp: {preset: full-cone, firewall: {block_udp: true, allow: ["tcp/443"]}}
hosts:
  alice: {behind: home}
  bob: {behind: corp}
  web: {behind: internet}
"""


def case(
    name: str, text: str | None, names: list[str], *args: str, names_file: bool = True, **kw: Any
) -> Any:
    """A bad input: file contents (None: no file), what the message must name, CLI arguments.

    `names_file`: the `error:` line itself names the scenario file (an error in the syntax of a
    `--set` argument is about the argument, not the file, so it need not).
    """
    return pytest.param(text, list(args), names, names_file, id=name, **kw)


CASES = [
    case(
        "unknown-preset",
        "nats:\n  home: {preset: bogus-cone}\nhosts:\n  alice: {behind: home}\n",
        ["nats.home.preset", "bogus-cone"],
    ),
    case(
        "unknown-field",
        "nats:\n  home: {preset: full-cone, hairpn: true}\n",
        ["nats.home", "hairpn", "hairpin"],  # and it suggests the right name
    ),
    case(
        "lan-not-an-ip-network",
        "nats:\n  home: {preset: full-cone, lan: 10.0.0.300/24}\n",
        ["nats.home.lan", "10.0.0.300/24"],
    ),
    case(
        "lan-public-range",
        "nats:\n  home: {preset: full-cone, lan: 8.8.8.0/24}\n",
        ["nats.home.lan", "8.8.8.0/24"],
    ),
    case(
        "behind-missing-nat",
        "nats:\n  home: {}\nhosts:\n  alice: {behind: nowhere}\n",
        ["hosts.alice.behind", "nowhere"],
    ),
    case(
        "nat-loop",
        "nats:\n  a: {behind: b}\n  b: {behind: c}\n  c: {behind: a}\n",
        ["nats.a.behind", "loop"],
    ),
    case(
        "yaml-syntax",
        "nats:\n  home: {preset: full-cone\nhosts: [\n",
        ["not valid YAML", "line 3"],
    ),
    case("list-not-mapping", "- alice\n- bob\n", ["mapping", "list"]),
    case("missing-file", None, ["no such scenario file"]),
    case(
        "set-through-a-scalar",
        GOOD,
        ["--set", "hosts.alice.behind"],
        "--set",
        "hosts.alice.behind.x=1",
    ),
    case(
        "set-without-value",
        GOOD,
        ["--set", "nats.home.preset", "dotted.path=value"],
        "--set",
        "nats.home.preset",
        names_file=False,
    ),
    case("set-unknown-field", GOOD, ["nats.home", "hairpn"], "--set", "nats.home.hairpn=true"),
    case(
        "set-path-to-missing-nat",
        GOOD,
        ["--set", "nats.hom"],
        "--set",
        "nats.hom.hairpin=false",  # a typo of `home`
    ),
    case(
        "empty-file",
        "",
        ["empty"],
    ),
    # adversarial input: markup, escapes, nesting, limits
    case(
        "markup-in-a-name",
        'nats: {"[/]": {}}\n',
        ["nats.[/]", "'^[a-z][a-z0-9-]{0,19}$'"],  # the pattern, printed whole
    ),
    case(
        "markup-in-a-set-path",
        GOOD,
        ["--set 'nats.[/].preset=x'", "no nats.[/]"],
        "--set",
        "nats.[/].preset=x",
    ),
    case("markup-in-the-name", "name: '[/]'\n" + GOOD, ["name: '[/]' is not a scenario name"]),
    case(
        "escape-sequence-in-a-key",
        'nats: {home: {"\\e]0;x\\a": 1}}\n',
        ["unknown field '\\x1b]0;x\\x07'"],
    ),
    case(
        "deep-nesting-in-a-set-value",
        GOOD,
        ["--set 'call.timeline=[[[", "nested too deeply"],
        "--set",
        "call.timeline=" + "[" * 5000 + "]" * 5000,
        names_file=False,
    ),
    case("duplicate-key", "nats:\n  home: {}\n  home: {}\n", ["duplicate key 'home'", "line 2"]),
    case("seed-too-big", "seed: 99999999999999999999999\n", ["seed"]),
    case("name-with-slashes", "name: a/b/c\n", ["not a scenario name"]),
    case("name-escaping-out", "name: ../../escaped\n", ["not a scenario name"]),
    case(
        "cgnat-name-too-long-for-its-carrier",
        "nats:\n  abcdefghijklmnopqrst: {preset: cgnat}\n",
        ["abcdefghijklmnopqrst-carrier", "at most 12 characters"],
    ),
    case(
        "turn-server-not-a-turn-server",
        GOOD + "servers: {signaling: {kind: signaling}}\ncall: {offerer: alice, answerer: bob, "
        "turn_server: signaling}\n",
        ["call.turn_server: 'signaling' is not a TURN server"],
    ),
    case(
        "call-without-signaling",
        GOOD + "call: {offerer: alice, answerer: bob}\n",
        ["a call needs a signaling server"],
    ),
    case(
        "turn-port-coturn-does-not-serve",
        GOOD + "servers: {t: {kind: turn}, s: {kind: signaling}}\n"
        "call: {offerer: alice, answerer: bob, turn_ports: {tcp: 1234}}\n",
        ["call.turn_ports", "TURN/tcp on port 3478 or 443", "1234"],
    ),
    case(
        "region-on-a-signaling-server",
        "servers: {s: {kind: signaling, region: eu}}\n",
        ["servers.s: region", "only a TURN server"],
    ),
    case(
        "address-range-exhausted",
        "nats: {home: {lan: 192.168.1.0/29}}\nhosts:\n"
        + "".join(f"  h{i}: {{behind: home}}\n" for i in range(8)),
        ["too many hosts behind home", "192.168.1.0/29"],
    ),
    case(
        "range-exhausted-by-a-set",
        "nats: {home: {}}\nhosts:\n" + "".join(f"  h{i}: {{behind: home}}\n" for i in range(8)),
        ["--set 'nats.home.lan=192.168.1.0/29'", "exhausted"],
        "--set",
        "nats.home.lan=192.168.1.0/29",
    ),
]


@pytest.mark.integration
@pytest.mark.parametrize("command", ["validate", "up"])
@pytest.mark.parametrize(("text", "args", "names", "names_file"), CASES)
def test_bad_scenario_is_one_clear_error_and_builds_nothing(
    command: str,
    text: str | None,
    args: list[str],
    names: list[str],
    names_file: bool,
    tmp_path,
    tools,
) -> None:
    path = tmp_path / "bad-scenario.yaml"
    if text is not None:
        path.write_text(text)
    before = set(tools.namespaces())

    done, started = run_guarded(tools, command, str(path), *args)

    assert started == [], f"{command} started run(s) {started} for bad input"
    assert new_namespaces(tools, before) == set()
    error_line = assert_one_clear_error(done, names)
    if names_file:
        assert str(path) in error_line  # the file is named on the error line itself


@pytest.mark.integration
def test_valid_scenario_is_accepted(tmp_path, tools) -> None:
    """Control: the harness above does not reject everything."""
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)

    done = tools.run_cli("validate", str(path))

    assert done.returncode == 0, done.output
    assert "valid" in done.stdout


@pytest.mark.integration
@pytest.mark.parametrize(
    ("target", "names"),
    [
        ("no-such-preset", ["no-such-preset", "neither a NAT preset nor", "full-cone"]),
        ("missing.yaml", ["missing.yaml", "no such scenario file"]),
    ],
)
def test_verify_nat_unknown_target_is_one_clear_error(
    target: str, names: list[str], tmp_path, tools
) -> None:
    before = set(tools.namespaces())

    if target.endswith(".yaml"):
        target = str(tmp_path / target)

    done, started = run_guarded(tools, "verify-nat", target)

    assert started == []
    assert new_namespaces(tools, before) == set()
    assert_one_clear_error(done, names)


@pytest.mark.integration
def test_not_root_is_one_clear_error(tools: Any) -> None:
    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "home-vs-carrier.yaml"
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *tools.simnet,
         "run", str(scenario)],
        capture_output=True, text=True, timeout=60, env=tools.cli_env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "needs root" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_not_a_regular_file_is_refused_at_once(kind: str, tmp_path, tools) -> None:
    """A FIFO blocked `validate` forever and /dev/zero read until MemoryError: say what it is."""
    path = {"fifo": tmp_path / "x.yaml", "dev-zero": Path("/dev/zero"), "directory": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    done = tools.run_cli("validate", str(path))  # (run_cli has a timeout: a block fails it)
    error_line = assert_one_clear_error(done, ["not a regular file"])
    assert str(path) in error_line


@pytest.mark.integration
@pytest.mark.parametrize("file_name", ["bad-[bold]x.yaml", "[/]x.yaml"])
@pytest.mark.parametrize("exists", [True, False])
def test_file_names_with_brackets_are_printed_verbatim(
    file_name: str, exists: bool, tmp_path, tools
) -> None:
    path = tmp_path / file_name
    if exists:
        path.parent.mkdir(exist_ok=True)  # "[/]x.yaml" is x.yaml in a directory named "["
        path.write_text("nats: {home: {preset: bogus}}\n")
    done = tools.run_cli("validate", str(path))
    assert_one_clear_error(done, [f"{path}:"])


@pytest.mark.integration
def test_validate_notes_a_default_call_that_run_would_refuse(tmp_path, tools) -> None:
    """Without `call:`, `run` makes the default call; validate says if that cannot work."""
    path = tmp_path / "net.yaml"
    path.write_text(GOOD)
    done = tools.run_cli("validate", str(path))
    assert done.returncode == 0, done.output
    assert "a call needs a signaling server" in done.stdout


SHIPPED = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("SIMNET_LINK_RT_PRIORITY", "high", "from 0 to 99"),
        ("SIMNET_EMULATOR_LIMIT_PPS", "lots", "from 1 to 100000000"),
        ("SIMNET_LINK_BACKEND", "tc", "auto, netem, nfqueue"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_bad_setting_is_one_clear_error_before_anything_starts(
    command: str, name: str, value: str, allowed: str, tools
) -> None:
    before = set(tools.namespaces())
    done = subprocess.run(
        [*tools.simnet, command, str(SHIPPED / "direct-lan.yaml")],
        capture_output=True, text=True, timeout=60, env={**tools.cli_env, name: value},
    )  # fmt: skip
    assert_one_clear_error(done, [f"{name}='{value}'", allowed])
    assert new_namespaces(tools, before) == set()


@pytest.mark.integration
def test_format_accepts_csv_and_json_only(tools) -> None:
    done = tools.run_cli("run", str(SHIPPED / "direct-lan.yaml"), "--format", "xml")
    assert done.returncode == 2, done.output
    assert "'xml' is not one of 'csv', 'json'" in " ".join(done.stderr.split())


@pytest.mark.integration
@pytest.mark.parametrize("expect", ["as-shipped", "none"])
def test_a_connected_call_with_an_error_fails_the_run(expect: str, tmp_path, tools) -> None:
    """`data_bytes: 1000000000` gave connected: true, error: timeout:datachannel and exit 0.

    The data channel is given 0.5 s for 1 GB, which no link of this machine kind carries
    (that is 16 Gbit/s); the call itself connects."""
    args = ["--set", "call.data_bytes=1000000000", "--set", "call.timeouts.datachannel_s=0.5"]
    if expect == "none":
        args += ["--set", "call.expect=null"]
    done = tools.run_cli(
        "run", str(SHIPPED / "direct-lan.yaml"), "--json", "--out", str(tmp_path), *args,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.output
    row = json.loads(done.stdout.splitlines()[-1])
    assert row["connected"] is True and row["error"] == "timeout:datachannel"
    assert row["outcome"] == "failed"  # a connected call that timed out did not succeed
    label = "unexpected:" if expect == "as-shipped" else "failed:"
    assert f"{label} run 0: error 'timeout:datachannel', expected none" in done.stderr
    assert len(list(tmp_path.glob("*.parquet"))) == 1  # and its row is stored
