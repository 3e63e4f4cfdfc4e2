"""Hostile or broken mix and sweep files, through the CLI: one clear error, exit 2, at once.

Why: `simnet population` and `simnet sweep` read their own files (a mix, a sweep) before they
build anything. Each case here once hung (a FIFO), crashed with exit 70 (/dev/zero, nesting,
25 axes, a NUL, `!!binary`), burned a minute of CPU (an alias chain), or failed only after
other calls had been made (a class or a point whose LAN cannot hold its host). Now each must
end within the subprocess's timeout with exit 2, one `error:` line naming the file, no
traceback, and no result written.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "scenarios" / "home-vs-carrier.yaml"
TIMEOUT_S = 60  # a hang or a minute of CPU fails the test; each case takes a few seconds

MIX = "sides:\n  offerer:\n    - {class: a, share: 1.0, nats: [{preset: full-cone}]}\n"
SWEEP = f"scenario: {BASE}\naxes: {{call.ice_policy: [all, relay]}}\n"


def laughs(levels: int) -> str:
    lines = ["&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "[" + ", ".join(lines) + "]"


CASES: dict[str, tuple[str, str | None, list[str]]] = {
    # name: (command, file text (None: made by the test), what the error names)
    "mix-fifo": ("population", None, ["FIFO", "not a regular file"]),
    "mix-dev-zero": ("population", None, ["character device"]),
    "mix-deep-sides": ("population", "sides: " + "{offerer: " * 5000 + "x" + "}" * 5000, ["nest"]),
    "mix-3-mib": ("population", MIX + "# padding\n" * 300_000, ["larger than 1 MiB"]),
    "mix-duplicate-key": ("population", "name: a\n" + MIX + "name: b\n", ["duplicate key 'name'"]),
    "mix-alias-bomb": ("population", f"description: {laughs(9)}\n" + MIX, ["1,000,000 values"]),
    "mix-share-zero": (
        "population",
        MIX + "    - {class: none, share: 0}\n",
        ["sides.offerer[1].share"],
    ),
    "mix-class-lan-unplannable": (
        "population",
        "sides:\n  offerer:\n    - {class: ok, share: 0.5, nats: [{preset: full-cone}]}\n"
        "    - {class: tiny, share: 0.5, nats: [{lan: 10.0.0.0/29}]}\n",
        ["class tiny", "nats[0]", "10.0.0.0/29"],
    ),
    "sweep-fifo": ("sweep", None, ["FIFO", "not a regular file"]),
    "sweep-dev-zero": ("sweep", None, ["character device"]),
    "sweep-alias-bomb": (
        "sweep",
        f"scenario: {BASE}\naxes: {{call.ice_policy: {laughs(9)}}}\n",
        ["1,000,000 values"],
    ),
    "sweep-25-axes": (
        "sweep",
        f"scenario: {BASE}\naxes:\n" + "".join(f"  call.x{i}: [1, 2]\n" for i in range(25)),
        ["33,554,432 points", "10,000"],
    ),
    "sweep-nul-scenario": (
        "sweep",
        'scenario: "\\0"\naxes: {call.ice_policy: [all]}\n',
        ["scenario", "NUL"],
    ),
    "sweep-binary": (
        "sweep",
        f"scenario: {BASE}\naxes: {{call.ice_policy: [!!binary aGVsbG8=]}}\n",
        ["!!binary", "not allowed"],
    ),
    "sweep-lan-axis": (
        "sweep",
        f"scenario: {BASE}\naxes:\n  nats.home.lan: [10.0.0.0/24, 10.0.0.0/29]\n",
        ["point 2 of 2", "nats.home.lan", "10.0.0.0/29"],
    ),
    "sweep-duplicate-key": ("sweep", SWEEP + "repeat: 2\nrepeat: 3\n", ["duplicate key 'repeat'"]),
}


def cli(tools: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*tools.simnet, *args], capture_output=True, text=True, timeout=TIMEOUT_S, env=tools.cli_env
    )


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_bad_mix_or_sweep_file_is_one_clear_error_before_anything_runs(
    name: str, tmp_path: Path, tools: Any
) -> None:
    command, text, names = CASES[name]
    path = tmp_path / "file.yaml"
    if name.endswith("fifo"):
        os.mkfifo(path)
    elif name.endswith("dev-zero"):
        path.symlink_to("/dev/zero")
    else:
        assert text is not None
        path.write_text(text)
    out = tmp_path / "results"

    done = cli(tools, command, str(path), "--out", str(out))

    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output, output
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, done.stderr
    assert str(path) in error_lines[0]
    for part in names:
        assert part in done.stderr, f"{part!r} not in {done.stderr!r}"
    assert not out.exists() or not list(out.rglob("*.parquet"))  # no call was made


@pytest.mark.integration
def test_merge_keys_are_accepted_by_validate(tmp_path: Path, tools: Any) -> None:
    path = tmp_path / "merged.yaml"
    path.write_text(
        "nats:\n  home: &h {preset: port-restricted-cone, udp_timeout_s: 30}\n"
        "  office: {<<: *h, hairpin: true}\n"
        "hosts: {alice: {behind: home}, bob: {behind: office}}\n"
    )
    done = cli(tools, "validate", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid" in done.stdout
