"""`simnet run --pcap` captures each host's packets during each call, completely, and cleans up.

Why: a capture is what a failed call gets debugged from, so it must hold the call's packets
(not an empty or truncated file), be named in the call's row so it can be found, and must not
leave a tcpdump running after the run. The files are read here with `struct` (the pcap format
is 24 bytes of header, then a 16-byte header per packet), not with simnet's own code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simnet.results.store import load
from tests.integration.pcapfile import is_stun, udp_packet
from tests.integration.pcapfile import packets as _packets

pytestmark = pytest.mark.integration

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "home-vs-carrier.yaml"


def _stun_to(packet: bytes, server: tuple[str, int]) -> bool:
    """An IPv4/UDP packet to `server` whose payload is a STUN message (TURN runs over STUN:
    Allocate, Refresh, ChannelBind, Send; ChannelData is not STUN and is not counted)."""
    parsed = udp_packet(packet)
    return parsed is not None and parsed[2:4] == server and is_stun(parsed[4])


def _tcpdumps_writing_to(directory: Path) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline[0].endswith(b"tcpdump") and any(str(directory).encode() in a for a in cmdline):
            pids.append(int(entry))
    return pids


def test_a_relayed_call_is_captured_on_both_hosts(tmp_path: Path) -> None:
    """home-vs-carrier goes through TURN (a symmetric NAT): both hosts' captures hold STUN
    messages to the TURN server the row names, and the files are complete pcaps."""
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "simnet.cli", "run", str(SCENARIO), "--pcap", "--out", str(out),
         "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    row = load(out).iloc[0]
    assert row["path"] == "relay"
    files = json.loads(row["pcap_files"])
    assert set(files) == {"alice", "bob"}
    host, port = str(row["relay_server"]).rsplit(":", 1)
    for name, file in files.items():
        assert Path(file).name == file, "pcap_files names files beside the row, not paths"
        path = out / file
        assert path.name.endswith(f"-{name}.pcap")
        packets = _packets(path)
        to_turn = [p for p in packets if _stun_to(p, (host, int(port)))]
        assert to_turn, f"{name}: {len(packets)} packets, none of them STUN to {host}:{port}"
    assert _tcpdumps_writing_to(out) == []


def test_without_pcap_nothing_is_captured(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "simnet.cli", "run", str(SCENARIO), "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(out.glob("*.pcap")) == []
    assert "pcap_files" not in load(out).columns
