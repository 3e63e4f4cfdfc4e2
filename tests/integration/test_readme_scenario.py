"""The README's first scenario is what a new user copies: `validate` calls it valid, shows the
links and the call it will make, and `simnet run` of the same file makes that call with the
outcome the file expects. A file whose call cannot be made is not "valid" without a but."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"


def _first_yaml() -> str:
    block = re.search(r"```yaml\n(.*?)```", README.read_text(), re.S)
    assert block, "the README has no YAML block"
    return block[1]


def test_the_readme_scenario_validates_shows_its_call_and_runs(tmp_path: Path, tools: Any) -> None:
    path = tmp_path / "readme.yaml"
    path.write_text(_first_yaml())
    done = tools.run_cli("validate", str(path))
    assert done.returncode == 0, done.output
    out = " ".join(done.stdout.split())
    assert out.endswith(f"{path}: valid")
    assert "links (up: from the node towards its network):" in out
    assert "ideal (no impairment): home, carrier, turn, signaling, alice, bob" in out
    assert "alice (aiortc) calls bob (aiortc), signaling server signaling (ws)" in out
    assert "must be: connected, path relay, relayed over udp" in out

    ran = tools.run_cli("run", str(path), "--json", "--out", str(tmp_path / "r"), timeout=120)
    assert ran.returncode == 0, ran.output
    (row,) = [json.loads(line) for line in ran.stdout.splitlines() if line.startswith("{")]
    assert row["connected"] and row["path"] == "relay" and row["relay_protocol"] == "udp"


def test_validate_says_when_run_cannot_make_the_call(tmp_path: Path, tools: Any) -> None:
    """Without a signaling server (and without `call:`, so nothing else refuses it), the network
    is valid but `run` would refuse the call: validate says both, and shows no call."""
    text = "\n".join(line for line in _first_yaml().splitlines() if "signaling" not in line).split(
        "call:"
    )[0]
    path = tmp_path / "nosignaling.yaml"
    path.write_text(text)
    done = tools.run_cli("validate", str(path))
    assert done.returncode == 0, done.output
    out = " ".join(done.stdout.split())
    assert "a call needs a signaling server" in out
    assert out.endswith(
        f"{path}: valid network, but `simnet run` cannot make its call (see the note)"
    )
    assert "calls bob" not in out
    ran = tools.run_cli("run", str(path), "--out", str(tmp_path / "r"))
    assert ran.returncode == 2 and "cannot make a call" in " ".join(ran.stderr.split()), ran.output
